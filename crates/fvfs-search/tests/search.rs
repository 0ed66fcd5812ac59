//! The search index against a real SQLite music store and a real tantivy index in a
//! temporary directory: matching (exact, prefix, fuzzy, accents, AND, fields), ranking,
//! sync (removed, retagged and unreadable tracks, paging), two processes' views of one
//! index, and bad queries. Result sets are asserted exactly.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fvfs_meta::{MetaStore, MusicStore, MusicTrack};
use fvfs_music::search::{SearchError, TrackSearch};
use fvfs_search::{SearchIndex, SyncStats};

struct Fixture {
    _dir: tempfile::TempDir,
    meta: Arc<dyn MetaStore>,
    index_dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("meta.db").display());
        let meta = fvfs_meta::open(&url, true).unwrap();
        let index_dir = dir.path().join("search");
        Fixture {
            _dir: dir,
            meta,
            index_dir,
        }
    }

    fn store(&self) -> &dyn MusicStore {
        &*self.meta
    }

    fn put(&self, t: &MusicTrack) -> u64 {
        self.store().music_track_put(t).unwrap()
    }

    fn open(&self) -> SearchIndex {
        SearchIndex::open(&self.index_dir).unwrap()
    }
}

struct Tags<'a> {
    path: &'a str,
    title: &'a str,
    artist: &'a str,
    album: &'a str,
    genre: &'a str,
    year: u32,
    format: &'a str,
}

fn track(t: Tags<'_>) -> MusicTrack {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    MusicTrack {
        origin: "nas".into(),
        path: t.path.into(),
        size: 1000,
        mtime_ns: 1,
        format: t.format.into(),
        title: opt(t.title),
        artist: opt(t.artist),
        album: opt(t.album),
        genre: opt(t.genre),
        year: (t.year > 0).then_some(t.year),
        scanned: 100,
        ..MusicTrack::default()
    }
}

/// The library of most tests, by name.
struct Library {
    motorhead: u64,
    beyonce: u64,
    bjork: u64,
    metallica: u64,
    massive: u64,
    daft: u64,
    broken: u64,
}

fn library(f: &Fixture) -> Library {
    let motorhead = f.put(&track(Tags {
        path: "Motörhead/Ace of Spades/01 Ace of Spades.flac",
        title: "Ace of Spades",
        artist: "Motörhead",
        album: "Ace of Spades",
        genre: "Heavy Metal",
        year: 1980,
        format: "flac",
    }));
    let beyonce = f.put(&track(Tags {
        path: "Beyoncé/I Am... Sasha Fierce/03 Halo.mp3",
        title: "Halo",
        artist: "Beyoncé",
        album: "I Am... Sasha Fierce",
        genre: "Pop",
        year: 2008,
        format: "mp3",
    }));
    let mut joga = track(Tags {
        path: "Björk/Homogenic/03 Jóga.flac",
        title: "Jóga",
        artist: "Björk",
        album: "Homogenic",
        genre: "Electronic",
        year: 1997,
        format: "flac",
    });
    joga.extra = vec![("label".into(), "One Little Indian".into())];
    let bjork = f.put(&joga);
    let metallica = f.put(&track(Tags {
        path: "Metallica/Master of Puppets/02 Master of Puppets.flac",
        title: "Master of Puppets",
        artist: "Metallica",
        album: "Master of Puppets",
        genre: "Heavy Metal",
        year: 1986,
        format: "flac",
    }));
    let massive = f.put(&track(Tags {
        path: "Massive Attack/Mezzanine/03 Teardrop.ogg",
        title: "Teardrop",
        artist: "Massive Attack",
        album: "Mezzanine",
        genre: "Trip Hop",
        year: 1998,
        format: "ogg",
    }));
    let daft = f.put(&track(Tags {
        path: "Daft Punk/Discovery/04 Harder Better Faster Stronger.m4a",
        title: "Harder Better Faster Stronger",
        artist: "Daft Punk",
        album: "Discovery",
        genre: "Electronic",
        year: 2001,
        format: "m4a",
    }));
    let mut bad = track(Tags {
        path: "broken/Metallica - One.mp3",
        title: "One",
        artist: "Metallica",
        album: "Justice",
        genre: "Thrash",
        year: 1988,
        format: "mp3",
    });
    bad.error = Some("truncated frame".into());
    let broken = f.put(&bad);
    Library {
        motorhead,
        beyonce,
        bjork,
        metallica,
        massive,
        daft,
        broken,
    }
}

/// The synced index of [`library`].
fn synced() -> (Fixture, Library, SearchIndex) {
    let f = Fixture::new();
    let lib = library(&f);
    let ix = f.open();
    let stats = ix.sync(f.store()).unwrap();
    assert_eq!(
        stats,
        SyncStats {
            indexed: 6,
            deleted: 0,
            unchanged: 0,
            unreadable: 1,
        }
    );
    (f, lib, ix)
}

fn found(ix: &SearchIndex, q: &str) -> BTreeSet<u64> {
    ix.search(q, 100)
        .unwrap_or_else(|e| panic!("{q:?}: {e}"))
        .into_iter()
        .map(|h| h.track)
        .collect()
}

fn set<const N: usize>(ids: [u64; N]) -> BTreeSet<u64> {
    ids.into_iter().collect()
}

#[test]
fn exact_words() {
    let (_f, l, ix) = synced();
    assert_eq!(found(&ix, "teardrop"), set([l.massive]));
    assert_eq!(found(&ix, "Metallica"), set([l.metallica]));
    assert_eq!(found(&ix, "homogenic"), set([l.bjork]));
    assert_eq!(found(&ix, "zeppelin"), set([]));
}

#[test]
fn prefixes() {
    let (_f, l, ix) = synced();
    assert_eq!(found(&ix, "mezz"), set([l.massive]));
    assert_eq!(found(&ix, "harde"), set([l.daft]));
    // "metal" (genre of two) and "metallica".
    assert_eq!(found(&ix, "met"), set([l.motorhead, l.metallica]));
    // Motörhead, metal, master, massive, mezzanine, and the formats mp3 and m4a.
    assert_eq!(
        found(&ix, "m"),
        set([l.motorhead, l.beyonce, l.metallica, l.massive, l.daft])
    );
}

#[test]
fn fuzzy_words() {
    let (_f, l, ix) = synced();
    // One edit on a word of 4 to 7 characters.
    assert_eq!(found(&ix, "tardrop"), set([l.massive]));
    assert_eq!(found(&ix, "hslo"), set([l.beyonce]));
    // A transposition is one edit.
    assert_eq!(found(&ix, "hlao"), set([l.beyonce]));
    // Two edits on a word of 8 or more.
    assert_eq!(found(&ix, "metalika"), set([l.metallica]));
    assert_eq!(found(&ix, "metalicca"), set([l.metallica]));
    // Two edits are too many under 8 characters, and words under 4 are never fuzzy.
    assert_eq!(found(&ix, "hxlx"), set([]));
    assert_eq!(found(&ix, "xalo"), set([l.beyonce]));
    assert_eq!(found(&ix, "alo"), set([]));
}

#[test]
fn exact_ranks_above_prefix_above_fuzzy() {
    let f = Fixture::new();
    // Put first: on a tie it would come first.
    let goldy = f.put(&track(Tags {
        path: "d/goldy.flac",
        title: "Goldy",
        artist: "Hank Williams",
        album: "Honky Tonk",
        genre: "Country",
        year: 1951,
        format: "flac",
    }));
    let gold = f.put(&track(Tags {
        path: "a/gold.flac",
        title: "Gold",
        artist: "Spandau Ballet",
        album: "True",
        genre: "Pop",
        year: 1983,
        format: "flac",
    }));
    let golden = f.put(&track(Tags {
        path: "b/golden.flac",
        title: "Golden",
        artist: "Jill Scott",
        album: "Beautifully Human",
        genre: "Soul",
        year: 2004,
        format: "flac",
    }));
    let hold = f.put(&track(Tags {
        path: "c/hold.flac",
        title: "Hold On",
        artist: "Wilson Phillips",
        album: "Wilson Phillips",
        genre: "Pop",
        year: 1990,
        format: "flac",
    }));
    let ix = f.open();
    ix.sync(f.store()).unwrap();
    let hits = ix.search("gold", 10).unwrap();
    let order: Vec<u64> = hits.iter().map(|h| h.track).collect();
    // "goldy" is a prefix and a fuzzy match, as "gold" is: only BM25 sets them apart.
    assert_eq!(order, [gold, goldy, golden, hold]);
    assert!(hits.windows(2).all(|w| w[0].score > w[1].score), "{hits:?}");
    assert_eq!(ix.search("gold", 2).unwrap().len(), 2);
    assert!(ix.search("gold", 0).unwrap().is_empty());
}

#[test]
fn accents_and_case_are_folded() {
    let (f, l, ix) = synced();
    // Words that fuzzy matching would not reach: two accents in four letters, three
    // letters (never fuzzy).
    let deja = f.put(&track(Tags {
        path: "Beyoncé/B'Day/04 Déjà Vu.flac",
        title: "Déjà Vu",
        artist: "Beyoncé",
        album: "B'Day",
        genre: "R&B",
        year: 2006,
        format: "flac",
    }));
    let sigur = f.put(&track(Tags {
        path: "Sigur Rós/Takk/02 Hoppípolla.flac",
        title: "Hoppípolla",
        artist: "Sigur Rós",
        album: "Takk...",
        genre: "Post-Rock",
        year: 2005,
        format: "flac",
    }));
    ix.sync(f.store()).unwrap();
    assert_eq!(found(&ix, "deja vu"), set([deja]));
    assert_eq!(found(&ix, "DÉJÀ"), set([deja]));
    assert_eq!(found(&ix, "ros"), set([sigur]));
    assert_eq!(found(&ix, "bjo"), set([l.bjork]));
    assert_eq!(found(&ix, "beyonce"), set([l.beyonce, deja]));
    assert_eq!(found(&ix, "motorhead"), set([l.motorhead]));
    assert_eq!(found(&ix, "MOTÖRHEAD"), set([l.motorhead]));
    assert_eq!(found(&ix, "bjork joga"), set([l.bjork]));
    assert_eq!(found(&ix, "Metállica"), set([l.metallica]));
}

#[test]
fn every_word_must_match() {
    let (_f, l, ix) = synced();
    assert_eq!(found(&ix, "heavy metal"), set([l.motorhead, l.metallica]));
    assert_eq!(found(&ix, "metal 1980"), set([l.motorhead]));
    assert_eq!(found(&ix, "puppets master"), set([l.metallica]));
    assert_eq!(found(&ix, "metallica 1980"), set([]));
    assert_eq!(found(&ix, "electronic flac"), set([l.bjork]));
}

#[test]
fn field_restricts_a_word() {
    let (_f, l, ix) = synced();
    assert_eq!(found(&ix, "artist:metallica"), set([l.metallica]));
    assert_eq!(found(&ix, "album:mezzanine"), set([l.massive]));
    assert_eq!(found(&ix, "title:mezzanine"), set([]));
    assert_eq!(found(&ix, "title:spades"), set([l.motorhead]));
    assert_eq!(found(&ix, "year:1997"), set([l.bjork]));
    assert_eq!(found(&ix, "year:199"), set([l.bjork, l.massive]));
    assert_eq!(
        found(&ix, "format:flac"),
        set([l.motorhead, l.bjork, l.metallica])
    );
    assert_eq!(found(&ix, "genre:electronic"), set([l.bjork, l.daft]));
    assert_eq!(found(&ix, "Genre:Electronic year:2001"), set([l.daft]));
    // The album artist falls back to the artist, as in the views.
    assert_eq!(found(&ix, "albumartist:bjork"), set([l.bjork]));
    assert_eq!(found(&ix, "extra:indian"), set([l.bjork]));
    assert_eq!(found(&ix, "path:homogenic"), set([l.bjork]));
    assert_eq!(found(&ix, "path:broken"), set([]));
    // Fuzzy and prefix inside a field.
    assert_eq!(found(&ix, "artist:metalica"), set([l.metallica]));
    assert_eq!(found(&ix, "artist:daf"), set([l.daft]));
    assert_eq!(found(&ix, "genre:punk"), set([]));
}

#[test]
fn a_removed_track_disappears_after_sync() {
    let (f, l, ix) = synced();
    assert_eq!(found(&ix, "teardrop"), set([l.massive]));
    assert_eq!(f.store().music_tracks_delete(&[l.massive]).unwrap(), 1);
    assert_eq!(
        found(&ix, "teardrop"),
        set([l.massive]),
        "not before a sync"
    );
    let stats = ix.sync(f.store()).unwrap();
    assert_eq!((stats.indexed, stats.deleted, stats.unchanged), (0, 1, 5));
    assert_eq!(found(&ix, "teardrop"), set([]));
    assert_eq!(found(&ix, "massive"), set([]));
    assert_eq!(ix.indexed_tracks(), 5);
}

#[test]
fn a_retagged_track_is_found_by_its_new_tags_only() {
    let (f, l, ix) = synced();
    let mut retagged = f.store().music_track_get(l.daft).unwrap().unwrap();
    retagged.title = Some("One More Time".into());
    retagged.scanned += 1;
    assert_eq!(f.put(&retagged), l.daft);
    let stats = ix.sync(f.store()).unwrap();
    assert_eq!((stats.indexed, stats.deleted, stats.unchanged), (1, 0, 5));
    assert_eq!(found(&ix, "title:harder"), set([]));
    assert_eq!(found(&ix, "title:time"), set([l.daft]));
    // The path did not change.
    assert_eq!(found(&ix, "path:harder"), set([l.daft]));
    assert_eq!(found(&ix, "daft one more"), set([l.daft]));
    // Still one document for the track.
    assert_eq!(ix.indexed_tracks(), 6);
    // Nothing changed: nothing done.
    let again = ix.sync(f.store()).unwrap();
    assert_eq!((again.indexed, again.deleted, again.unchanged), (0, 0, 6));
}

#[test]
fn a_sync_is_skipped_until_the_tracks_change() {
    let (f, l, ix) = synced();
    let changes = f.store().music_changes().unwrap();
    assert!(changes > 0, "puts count as changes");
    assert_eq!(ix.synced_changes().unwrap(), Some(changes));
    assert_eq!(ix.sync_if_changed(f.store()).unwrap(), None);
    // A reopened index keeps the marker (it is in the commit).
    assert_eq!(f.open().synced_changes().unwrap(), Some(changes));
    // Any change of the tracks brings the sync back, once.
    let mut retagged = f.store().music_track_get(l.daft).unwrap().unwrap();
    retagged.title = Some("One More Time".into());
    retagged.scanned += 1;
    f.put(&retagged);
    let stats = ix.sync_if_changed(f.store()).unwrap().expect("a sync");
    assert_eq!((stats.indexed, stats.deleted, stats.unchanged), (1, 0, 5));
    assert_eq!(found(&ix, "title:time"), set([l.daft]));
    assert_eq!(ix.sync_if_changed(f.store()).unwrap(), None);
    f.store().music_tracks_delete(&[l.massive]).unwrap();
    let stats = ix.sync_if_changed(f.store()).unwrap().expect("a sync");
    assert_eq!((stats.indexed, stats.deleted), (0, 1));
    assert_eq!(ix.refresh(f.store()).unwrap(), 0);
    assert_eq!(
        ix.synced_changes().unwrap(),
        Some(f.store().music_changes().unwrap())
    );
}

#[test]
fn unreadable_tracks_are_never_found() {
    let (f, l, ix) = synced();
    assert_eq!(found(&ix, "justice"), set([]));
    assert_eq!(found(&ix, "thrash"), set([]));
    assert_eq!(found(&ix, "metallica"), set([l.metallica]));
    let _ = l.broken;
    // A track indexed while readable, then rescanned as unreadable, leaves the index.
    let mut bad = f.store().music_track_get(l.metallica).unwrap().unwrap();
    bad.error = Some("bad header".into());
    bad.scanned += 1;
    f.put(&bad);
    let stats = ix.sync(f.store()).unwrap();
    assert_eq!((stats.deleted, stats.unreadable), (1, 2));
    assert_eq!(found(&ix, "metallica"), set([]));
    assert_eq!(found(&ix, "puppets"), set([]));
}

#[test]
fn a_second_open_sees_the_first_ones_commits() {
    let f = Fixture::new();
    let l = library(&f);
    let a = f.open();
    let b = f.open();
    assert_eq!(found(&b, "teardrop"), set([]));
    a.sync(f.store()).unwrap();
    // b never reloads by hand: its reader follows commits on its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    while found(&b, "teardrop").is_empty() {
        assert!(Instant::now() < deadline, "b never saw a's commit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(found(&b, "teardrop"), set([l.massive]));
    // b's sync starts from a's commit, and a sees b's.
    f.store().music_tracks_delete(&[l.massive]).unwrap();
    let stats = b.sync(f.store()).unwrap();
    assert_eq!((stats.indexed, stats.deleted, stats.unchanged), (0, 1, 5));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !found(&a, "teardrop").is_empty() {
        assert!(Instant::now() < deadline, "a never saw b's commit");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A reopened index has it all.
    drop((a, b));
    assert_eq!(found(&f.open(), "mezzanine"), set([]));
    assert_eq!(f.open().indexed_tracks(), 5);
}

#[test]
fn bad_queries_are_refused() {
    let (_f, _l, ix) = synced();
    for q in [
        "",
        "   ",
        "!!! --",
        "composer:bach",
        "artist:",
        "label:indian",
    ] {
        match ix.search(q, 10) {
            Err(SearchError::BadQuery { query, .. }) => assert_eq!(query, q),
            other => panic!("{q:?}: {other:?}"),
        }
    }
}

/// A pseudo-random word of 10 letters for `i` (no two within a few edits of each other).
fn word(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

#[test]
fn sync_pages_through_many_tracks() {
    let f = Fixture::new();
    let n = 4100u64;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(f.put(&track(Tags {
            path: &format!("bulk/{i:05}.flac"),
            title: &word(i),
            artist: "Bulk",
            album: "",
            genre: "",
            year: 0,
            format: "flac",
        })));
    }
    let ix = f.open();
    let first = ix.sync(f.store()).unwrap();
    assert_eq!((first.indexed, first.deleted), (n, 0));
    // Removed: the first, both sides of the first page boundary, the last.
    let gone = [ids[0], ids[1999], ids[2000], ids[4099]];
    f.store().music_tracks_delete(&gone).unwrap();
    let mut t = f.store().music_track_get(ids[3000]).unwrap().unwrap();
    t.title = Some("Renamed".into());
    t.scanned += 1;
    f.put(&t);
    let second = ix.sync(f.store()).unwrap();
    assert_eq!(
        (second.indexed, second.deleted, second.unchanged),
        (1, 4, n - 5)
    );
    assert_eq!(ix.indexed_tracks(), n - 4);
    assert_eq!(found(&ix, &word(0)), set([]));
    assert_eq!(found(&ix, &word(4099)), set([]));
    assert_eq!(found(&ix, &word(2001)), set([ids[2001]]));
    assert_eq!(found(&ix, "renamed"), set([ids[3000]]));
    assert_eq!(found(&ix, &word(3000)), set([]));
}
