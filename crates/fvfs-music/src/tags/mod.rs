//! Tags and audio properties of a track, read through a ranged, block-caching reader.
