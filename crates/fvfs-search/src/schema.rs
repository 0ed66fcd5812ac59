//! The index's schema and what one track becomes in it.
//!
//! Owns: the fields (by name), the analyzer shared by indexing and querying, and the
//! document and digest of a track.
//!
//! Invariants:
//! - One document per indexed track, keyed by the `id` field (indexed, so a track is
//!   deleted by term; fast, so a hit is mapped back to its track). Nothing is stored.
//! - Every text field, and `all` (every text field's words, for words without a field), is
//!   analysed by [`analyzer`]: split on anything not alphanumeric, lowercased, diacritics
//!   folded to ASCII. A query word goes through the same analyzer, so "Motorhead" and
//!   "Motörhead" are the same term.
//! - `digest` is a hash of the track's scanned stamp and of every value indexed for it (and
//!   of [`LAYOUT`]): a sync re-indexes a track exactly when its digest changed, which covers
//!   a rescan (new stamp), an edit of the row that kept the stamp, and a change of what this
//!   crate indexes.

use std::borrow::Cow;

use fvfs_meta::MusicTrack;
use fvfs_music::tags::field;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::TantivyDocument;

/// The name the analyzer is registered under in the index's tokenizer manager.
pub(crate) const TOKENIZER: &str = "fvfs_fold";

/// Bumped whenever what a track's document holds changes: every digest changes with it,
/// so the next sync re-indexes every track.
const LAYOUT: u32 = 1;

/// Words longer than this (in bytes) are not indexed: they are noise (hashes, URLs).
const MAX_TOKEN_LEN: usize = 64;

/// A field a query word can be restricted to with `name:word`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TextField {
    Title,
    Artist,
    Album,
    AlbumArtist,
    Genre,
    Year,
    Format,
    Path,
    Extra,
}

impl TextField {
    pub(crate) const ALL: [TextField; 9] = [
        TextField::Title,
        TextField::Artist,
        TextField::Album,
        TextField::AlbumArtist,
        TextField::Genre,
        TextField::Year,
        TextField::Format,
        TextField::Path,
        TextField::Extra,
    ];

    /// The field's name in the schema and in queries.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TextField::Title => "title",
            TextField::Artist => "artist",
            TextField::Album => "album",
            TextField::AlbumArtist => "albumartist",
            TextField::Genre => "genre",
            TextField::Year => "year",
            TextField::Format => "format",
            TextField::Path => "path",
            TextField::Extra => "extra",
        }
    }

    /// The field a query names (ASCII case ignored; beets' `album_artist` is accepted).
    pub(crate) fn parse(name: &str) -> Option<TextField> {
        let name = name.to_ascii_lowercase();
        if name == "album_artist" {
            return Some(TextField::AlbumArtist);
        }
        TextField::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The values of this field for `t`, as the views see them (`fvfs_music::tags::field`:
    /// a title falls back to the file name, an album artist to the artist).
    fn values<'a>(self, t: &'a MusicTrack) -> Vec<Cow<'a, str>> {
        match self {
            TextField::Path => vec![Cow::Borrowed(t.path.as_str())],
            TextField::Extra => t
                .extra
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(_, v)| Cow::Borrowed(v.as_str()))
                .collect(),
            f => field(t, f.name()).into_iter().collect(),
        }
    }
}

/// The schema's fields.
#[derive(Clone, Debug)]
pub(crate) struct Fields {
    pub(crate) id: Field,
    pub(crate) digest: Field,
    pub(crate) all: Field,
    /// By `TextField as usize`.
    text: [Field; 9],
}

impl Fields {
    pub(crate) fn text(&self, f: TextField) -> Field {
        self.text[f as usize]
    }
}

/// The schema of a new index and its fields.
pub(crate) fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let id = b.add_u64_field("id", NumericOptions::default().set_indexed().set_fast());
    let digest = b.add_u64_field("digest", NumericOptions::default().set_fast());
    // Frequencies and field norms for BM25; no positions (no phrase queries).
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let all = b.add_text_field("all", text.clone());
    let text = TextField::ALL.map(|f| b.add_text_field(f.name(), text.clone()));
    let fields = Fields {
        id,
        digest,
        all,
        text,
    };
    (b.build(), fields)
}

/// The analyzer of indexed values and query words.
pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_LEN))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// A track's document (an unreadable track has none: the caller skips it).
pub(crate) fn document(fields: &Fields, t: &MusicTrack, digest: u64) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_u64(fields.id, t.id);
    doc.add_u64(fields.digest, digest);
    for f in TextField::ALL {
        for v in f.values(t) {
            doc.add_text(fields.text(f), &v);
            doc.add_text(fields.all, &v);
        }
    }
    doc
}

/// The digest of what the index holds for `t` (see the module's invariants).
pub(crate) fn digest(t: &MusicTrack) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&LAYOUT.to_le_bytes());
    h.update(&t.scanned.to_le_bytes());
    for f in TextField::ALL {
        for v in f.values(t) {
            h.update(&(v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        // A separator, so that a value moving between fields changes the digest.
        h.update(&[0xff]);
    }
    let bytes = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut a = analyzer();
        let mut stream = a.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn analyzer_folds_case_and_diacritics_and_splits_on_punctuation() {
        assert_eq!(tokens("Motörhead"), ["motorhead"]);
        assert_eq!(tokens("Beyoncé — Déjà Vu"), ["beyonce", "deja", "vu"]);
        assert_eq!(
            tokens("/Music/AC-DC/01 Hells_Bells.flac"),
            ["music", "ac", "dc", "01", "hells", "bells", "flac"]
        );
    }

    #[test]
    fn field_names_parse_case_insensitively() {
        assert_eq!(TextField::parse("Artist"), Some(TextField::Artist));
        assert_eq!(
            TextField::parse("album_artist"),
            Some(TextField::AlbumArtist)
        );
        assert_eq!(TextField::parse("composer"), None);
        for f in TextField::ALL {
            assert_eq!(TextField::parse(f.name()), Some(f));
        }
    }

    #[test]
    fn digest_changes_with_stamp_and_tags() {
        let t = MusicTrack {
            id: 1,
            path: "a/b.flac".into(),
            title: Some("x".into()),
            scanned: 5,
            ..MusicTrack::default()
        };
        let mut stamped = t.clone();
        stamped.scanned = 6;
        let mut retagged = t.clone();
        retagged.title = Some("y".into());
        assert_ne!(digest(&t), digest(&stamped));
        assert_ne!(digest(&t), digest(&retagged));
        assert_eq!(digest(&t), digest(&t.clone()));
    }
}
