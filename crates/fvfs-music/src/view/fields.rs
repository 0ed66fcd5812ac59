//! A row of the index as a view's template sees it: beets' field names (`tags::field`)
//! and `%aunique`, which needs the whole library and is answered by the view's builder.

use crate::template::Fields;
use fvfs_meta::MusicTrack;
use std::borrow::Cow;

/// What `%aunique{identifiers,disambiguators}` renders for a track's album.
pub type Aunique<'a> = &'a dyn Fn(&MusicTrack, &[&str], &[&str]) -> Option<String>;

/// `track`'s fields, with the builder's `%aunique`.
pub struct TrackFields<'a> {
    pub track: &'a MusicTrack,
    pub aunique: Aunique<'a>,
}

impl Fields for TrackFields<'_> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        crate::tags::field(self.track, name)
    }
    fn aunique(&self, identifiers: &[&str], disambiguators: &[&str]) -> Option<String> {
        (self.aunique)(self.track, identifiers, disambiguators)
    }
}
