//! beets' album disambiguation rule, as a pure function a library calls to answer
//! [`Fields::aunique`](super::Fields::aunique).
//!
//! Invariants: the albums "sharing the identifiers" are those whose identifier values
//! all equal the current album's, a missing field counting as empty text (beets'
//! `get(field, "")`); the answer depends only on the values, never on the order of
//! `albums`.

use std::borrow::Cow;
use std::collections::HashSet;

use super::Fields;

/// The `%aunique` text for `current` (without brackets), or `None` when no other album
/// shares its identifier values.
///
/// `albums` is the library's albums, or any subset that holds every album sharing
/// `current`'s identifiers, and must include `current` itself (beets counts it: a
/// group of one is unique). Among the sharing albums, the first disambiguator whose
/// values are pairwise distinct wins and `current`'s value of it is returned (possibly
/// empty, which renders as nothing, as in beets). When no disambiguator tells them all
/// apart, `album_id` is returned (beets uses the album's database id).
pub fn aunique_disambiguator<'a, A>(
    current: &A,
    albums: impl IntoIterator<Item = &'a A>,
    identifiers: &[&str],
    disambiguators: &[&str],
    album_id: &str,
) -> Option<String>
where
    A: Fields + ?Sized + 'a,
{
    let value = |a: &'a A, name: &str| a.field(name).unwrap_or(Cow::Borrowed(""));
    let key: Vec<Cow<'_, str>> = identifiers
        .iter()
        .map(|k| current.field(k).unwrap_or(Cow::Borrowed("")))
        .collect();
    let sharing: Vec<&A> = albums
        .into_iter()
        .filter(|&a| identifiers.iter().zip(&key).all(|(k, v)| value(a, k) == *v))
        .collect();
    if sharing.len() <= 1 {
        return None;
    }
    for d in disambiguators {
        let distinct: HashSet<Cow<'_, str>> = sharing.iter().map(|&a| value(a, d)).collect();
        if distinct.len() == sharing.len() {
            return Some(current.field(d).unwrap_or(Cow::Borrowed("")).into_owned());
        }
    }
    Some(album_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::{AUNIQUE_DISAMBIGUATORS, AUNIQUE_IDENTIFIERS};
    use super::*;
    use std::collections::BTreeMap;

    fn album(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(current: usize, albums: &[BTreeMap<String, String>]) -> Option<String> {
        aunique_disambiguator(
            &albums[current],
            albums,
            AUNIQUE_IDENTIFIERS,
            AUNIQUE_DISAMBIGUATORS,
            "42",
        )
    }

    #[test]
    fn unique_album_gets_nothing() {
        let albums = [
            album(&[
                ("albumartist", "Crystal Castles"),
                ("album", "Crystal Castles"),
            ]),
            album(&[("albumartist", "Crystal Castles"), ("album", "(III)")]),
        ];
        assert_eq!(run(0, &albums), None);
        assert_eq!(run(1, &albums), None);
    }

    #[test]
    fn first_distinguishing_field_wins() {
        // Same albumtype, so `year` (the second disambiguator) is used.
        let albums = [
            album(&[
                ("albumartist", "Crystal Castles"),
                ("album", "Crystal Castles"),
                ("albumtype", "album"),
                ("year", "2008"),
            ]),
            album(&[
                ("albumartist", "Crystal Castles"),
                ("album", "Crystal Castles"),
                ("albumtype", "album"),
                ("year", "2010"),
            ]),
            album(&[("albumartist", "Weezer"), ("album", "Crystal Castles")]),
        ];
        assert_eq!(run(0, &albums).as_deref(), Some("2008"));
        assert_eq!(run(1, &albums).as_deref(), Some("2010"));
        assert_eq!(run(2, &albums), None);
    }

    #[test]
    fn missing_fields_count_as_empty() {
        // One album has no albumtype, the other an empty one: not distinct. Labels are.
        let albums = [
            album(&[("album", "X"), ("year", "1999"), ("label", "A")]),
            album(&[
                ("album", "X"),
                ("albumtype", ""),
                ("year", "1999"),
                ("label", "B"),
            ]),
        ];
        assert_eq!(run(0, &albums).as_deref(), Some("A"));
        // An empty distinguishing value is returned as is (renders as nothing).
        let albums = [
            album(&[("album", "X"), ("albumtype", "ep")]),
            album(&[("album", "X")]),
        ];
        assert_eq!(run(1, &albums).as_deref(), Some(""));
    }

    #[test]
    fn no_distinguishing_field_falls_back_to_the_id() {
        let albums = [
            album(&[("album", "X"), ("year", "2000")]),
            album(&[("album", "X"), ("year", "2000")]),
            album(&[("album", "X"), ("year", "2001")]),
        ];
        assert_eq!(run(2, &albums).as_deref(), Some("42"));
    }

    #[test]
    fn custom_lists_and_order_independence() {
        let albums = [
            album(&[("artist", "A"), ("album", "B"), ("format", "FLAC")]),
            album(&[("artist", "A"), ("album", "B"), ("format", "MP3")]),
        ];
        let got = |cur: usize, order: &[usize]| {
            aunique_disambiguator(
                &albums[cur],
                order.iter().map(|&i| &albums[i]),
                &["artist", "album"],
                &["year", "format"],
                "7",
            )
        };
        assert_eq!(got(1, &[0, 1]).as_deref(), Some("MP3"));
        assert_eq!(got(1, &[1, 0]).as_deref(), Some("MP3"));
        // Without the other album in the list the current one is unique.
        assert_eq!(got(1, &[1]), None);
    }
}
