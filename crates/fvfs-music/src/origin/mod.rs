//! The read-only origins a music library is read from.
