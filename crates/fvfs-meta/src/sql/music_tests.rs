//! Tests of the music index: origins, tracks keyed by (origin, path), copies by quick id,
//! collections, and a view's generations (written beside the served one, then swapped).

use super::tests::store;
use crate::prelude::*;
use crate::store::{MusicEntry, MusicNode, MusicOrigin, MusicTrack, MUSIC_ROOT};
use crate::MetaError;

fn origin(id: &str, priority: i64) -> MusicOrigin {
    MusicOrigin {
        id: id.into(),
        spec: format!("fs:/music/{id}"),
        priority,
        added: 7,
    }
}

fn track(origin: &str, path: &str, quick: u8) -> MusicTrack {
    MusicTrack {
        origin: origin.into(),
        path: path.into(),
        size: 1234,
        mtime_ns: 99,
        etag: Some("\"e1\"".into()),
        quick_id: [quick; 32],
        format: "flac".into(),
        title: Some("Jóga".into()),
        artist: Some("Björk".into()),
        album: Some("Homogenic".into()),
        albumartist: None,
        genre: Some("Electronic".into()),
        year: Some(1997),
        track: Some(3),
        disc: Some(1),
        duration_ms: Some(305_000),
        bitrate_kbps: Some(900),
        sample_rate: Some(44_100),
        extra: vec![("label".into(), "One Little Indian".into())],
        has_cover: true,
        error: None,
        scanned: 5,
        ..MusicTrack::default()
    }
}

#[test]
fn origins_sort_by_priority_and_removing_one_removes_its_tracks() {
    let (_d, s) = store();
    s.music_origin_put(&origin("nas", 2)).unwrap();
    s.music_origin_put(&origin("local", 1)).unwrap();
    let mut changed = origin("nas", 0);
    changed.spec = "s3:bucket".into();
    s.music_origin_put(&changed).unwrap();
    let ids: Vec<_> = s
        .music_origins()
        .unwrap()
        .into_iter()
        .map(|o| (o.id, o.spec))
        .collect();
    assert_eq!(
        ids,
        [
            ("nas".to_string(), "s3:bucket".to_string()),
            ("local".into(), "fs:/music/local".into())
        ]
    );
    let a = s.music_track_put(&track("nas", "a.flac", 1)).unwrap();
    let b = s.music_track_put(&track("local", "a.flac", 1)).unwrap();
    assert!(s.music_origin_remove("nas").unwrap());
    assert!(!s.music_origin_remove("nas").unwrap());
    assert_eq!(s.music_track_get(a).unwrap(), None);
    assert!(s.music_track_get(b).unwrap().is_some());
    assert_eq!(s.music_track_count(None).unwrap(), 1);
    assert_eq!(s.music_track_count(Some("local")).unwrap(), 1);
    assert_eq!(s.music_track_count(Some("nas")).unwrap(), 0);
}

#[test]
fn a_track_round_trips_and_keeps_its_id_across_rescans() {
    let (_d, s) = store();
    let t = track("local", "Björk/Homogenic/03.flac", 4);
    let id = s.music_track_put(&t).unwrap();
    let mut want = t.clone();
    want.id = id;
    assert_eq!(s.music_track_get(id).unwrap(), Some(want.clone()));
    // The same (origin, path) after a tag edit: same id, new fields.
    let mut edited = t.clone();
    edited.title = Some("Joga (edit)".into());
    edited.extra = vec![("comment".into(), "a\nb\\c".into())];
    edited.error = Some("truncated".into());
    assert_eq!(s.music_track_put(&edited).unwrap(), id);
    let got = s.music_track_get(id).unwrap().unwrap();
    assert_eq!(got.title.as_deref(), Some("Joga (edit)"));
    assert_eq!(got.extra, edited.extra);
    assert_eq!(got.error.as_deref(), Some("truncated"));
    s.music_set_content_hash(id, &[8; 32]).unwrap();
    assert_eq!(
        s.music_track_get(id).unwrap().unwrap().content_hash,
        Some([8; 32])
    );
    assert!(matches!(
        s.music_set_content_hash(id + 100, &[8; 32]),
        Err(MetaError::NotFound)
    ));
}

#[test]
fn tracks_page_stamp_group_by_quick_id_and_delete() {
    let (_d, s) = store();
    let ids: Vec<u64> = (0..5)
        .map(|i| {
            s.music_track_put(&track(
                if i < 3 { "a" } else { "b" },
                &format!("t{i}"),
                i as u8 % 2,
            ))
            .unwrap()
        })
        .collect();
    let page: Vec<u64> = s
        .music_tracks(None, ids[1], 2)
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(page, [ids[2], ids[3]]);
    let of_b: Vec<u64> = s
        .music_tracks(Some("b"), 0, 10)
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(of_b, [ids[3], ids[4]]);
    let stamps: Vec<_> = s
        .music_stamps("a")
        .unwrap()
        .into_iter()
        .map(|st| (st.id, st.path))
        .collect();
    assert_eq!(
        stamps,
        [
            (ids[0], "t0".into()),
            (ids[1], "t1".into()),
            (ids[2], "t2".to_string())
        ]
    );
    let copies: Vec<u64> = s
        .music_copies(&[1; 32])
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(copies, [ids[1], ids[3]]);
    assert_eq!(s.music_tracks_delete(&[ids[0], ids[0] + 1000]).unwrap(), 1);
    assert_eq!(s.music_track_count(None).unwrap(), 4);
    assert_eq!(s.music_track_count(Some("b")).unwrap(), 2);
}

#[test]
fn collections_are_named_queries() {
    let (_d, s) = store();
    let id = s
        .music_collection_put("90s", "year:[1990 TO 1999]", 1)
        .unwrap();
    assert_eq!(s.music_collection_put("90s", "year:199*", 2).unwrap(), id);
    s.music_collection_put("jazz", "genre:jazz", 3).unwrap();
    let all: Vec<_> = s
        .music_collections()
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.query, c.created))
        .collect();
    assert_eq!(
        all,
        [
            ("90s".into(), "year:199*".into(), 1),
            ("jazz".to_string(), "genre:jazz".to_string(), 3)
        ]
    );
    assert!(s.music_collection_remove("jazz").unwrap());
    assert_eq!(s.music_collections().unwrap().len(), 1);
}

fn dir(parent: u64, name: &str, id: u64) -> MusicEntry {
    MusicEntry {
        parent,
        name: name.into(),
        node: MusicNode::Dir(id),
    }
}

fn file(parent: u64, name: &str, track: u64) -> MusicEntry {
    MusicEntry {
        parent,
        name: name.into(),
        node: MusicNode::Track(track),
    }
}

#[test]
fn a_view_serves_one_generation_until_the_next_is_swapped_in() {
    let (_d, s) = store();
    let v = s
        .music_view_put("artists", "$artist/$album/$title")
        .unwrap();
    assert_eq!(
        s.music_view_put("artists", "$albumartist/$album/$title")
            .unwrap(),
        v
    );
    let view = s.music_views().unwrap().pop().unwrap();
    assert_eq!(
        (view.template.as_str(), view.generation),
        ("$albumartist/$album/$title", 0)
    );
    let gen1 = [
        dir(MUSIC_ROOT, "Björk", 2),
        dir(2, "Homogenic", 3),
        file(3, "Jóga.flac", 10),
        file(3, "Bachelorette.flac", 11),
    ];
    s.music_view_write(v, 1, &gen1).unwrap();
    assert_eq!(
        s.music_lookup(v, MUSIC_ROOT, "Björk").unwrap(),
        None,
        "generation 0 is served"
    );
    s.music_view_swap(v, 1).unwrap();
    assert_eq!(
        s.music_lookup(v, MUSIC_ROOT, "Björk").unwrap(),
        Some(gen1[0].clone())
    );
    let names: Vec<_> = s
        .music_readdir(v, 3, None, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["Bachelorette.flac", "Jóga.flac"]);
    let rest: Vec<_> = s
        .music_readdir(v, 3, Some("Bachelorette.flac"), 10)
        .unwrap()
        .into_iter()
        .map(|e| e.node)
        .collect();
    assert_eq!(rest, [MusicNode::Track(10)]);
    assert_eq!(s.music_dir_entry(v, 3).unwrap(), Some(gen1[1].clone()));
    assert_eq!(s.music_dir_entry(v, MUSIC_ROOT).unwrap(), None);
    // The served generation is never written into.
    assert!(s.music_view_write(v, 1, &gen1).is_err());
    // Generation 2 is invisible until its swap, which drops generation 1.
    s.music_view_write(v, 2, &[dir(MUSIC_ROOT, "Sigur Rós", 4)])
        .unwrap();
    assert!(s.music_lookup(v, MUSIC_ROOT, "Björk").unwrap().is_some());
    s.music_view_swap(v, 2).unwrap();
    assert_eq!(s.music_lookup(v, MUSIC_ROOT, "Björk").unwrap(), None);
    assert!(s
        .music_lookup(v, MUSIC_ROOT, "Sigur Rós")
        .unwrap()
        .is_some());
    s.music_view_swap(v, 1).unwrap();
    assert_eq!(
        s.music_readdir(v, MUSIC_ROOT, None, 10).unwrap(),
        [],
        "generation 1 was dropped"
    );
    assert!(matches!(
        s.music_lookup(v + 9, MUSIC_ROOT, "x"),
        Err(MetaError::NotFound)
    ));
}

#[test]
fn a_track_keeps_its_audio_span() {
    let (_d, s) = store();
    s.music_origin_put(&origin("nas", 1)).unwrap();
    let mut t = track("nas", "a.flac", 1);
    t.audio = Some(crate::AudioSpan {
        start: 4096,
        len: 1000,
        id: [7; 32],
    });
    let id = s.music_track_put(&t).unwrap();
    assert_eq!(s.music_track_get(id).unwrap().unwrap().audio, t.audio);
    t.audio = None;
    s.music_track_put(&t).unwrap();
    assert_eq!(s.music_track_get(id).unwrap().unwrap().audio, None);
}

fn window(key: u8, idx: u64, bytes: u64, at: i64) -> crate::MusicWindow {
    let mut k = vec![key; 32];
    k.extend_from_slice(&idx.to_be_bytes());
    crate::MusicWindow {
        key: k,
        blocks: vec![crate::BlockRef {
            id: fvfs_types::BlockId([key; 32]),
            len: bytes as u32,
        }],
        bytes,
        last_access: at,
    }
}

#[test]
fn cache_windows_by_key_lru_and_piece() {
    let (_d, s) = store();
    let (a0, a1, b0) = (
        window(1, 0, 100, 10),
        window(1, 1, 50, 20),
        window(2, 0, 70, 5),
    );
    for w in [&a0, &a1, &b0] {
        s.music_cache_put(w).unwrap();
    }
    assert_eq!(s.music_cache_get(&a1.key).unwrap(), Some(a1.clone()));
    assert_eq!(s.music_cache_get(&[9; 40]).unwrap(), None);
    let oldest: Vec<_> = s
        .music_cache_oldest(2)
        .unwrap()
        .into_iter()
        .map(|w| w.key)
        .collect();
    assert_eq!(oldest, vec![b0.key.clone(), a0.key.clone()]);
    // A touch moves a window to the back; an older time never moves it forward.
    s.music_cache_touch(&[(b0.key.clone(), 30), (a1.key.clone(), 1)])
        .unwrap();
    let order: Vec<_> = s
        .music_cache_oldest(9)
        .unwrap()
        .into_iter()
        .map(|w| w.key)
        .collect();
    assert_eq!(order, vec![a0.key.clone(), a1.key.clone(), b0.key.clone()]);
    assert_eq!(
        s.music_cache_keys_of(&[[1; 32]]).unwrap(),
        vec![a0.key.clone(), a1.key.clone()]
    );
    let t = s.music_cache_totals().unwrap();
    assert_eq!((t.windows, t.blocks, t.bytes), (3, 3, 220));
    assert!(s.music_cache_remove(&a0.key).unwrap());
    assert!(!s.music_cache_remove(&a0.key).unwrap());
    assert_eq!(s.music_cache_totals().unwrap().bytes, 120);
}

#[test]
fn a_version_6_database_gains_audio_spans_and_the_cache() {
    let (d, s) = super::tests::sqlite_store();
    s.music_origin_put(&origin("nas", 1)).unwrap();
    let id = s.music_track_put(&track("nas", "a.flac", 1)).unwrap();
    drop(s);
    let p = d.path().join("meta.db");
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch(
        "DROP TABLE music_cache; DROP TABLE write_journal; DROP INDEX music_entries_track;
         ALTER TABLE music_tracks DROP COLUMN audio_start;
         ALTER TABLE music_tracks DROP COLUMN audio_len;
         ALTER TABLE music_tracks DROP COLUMN audio_id;
         DROP TABLE locks; ALTER TABLE orphans DROP COLUMN session;
         PRAGMA user_version = 6;",
    )
    .unwrap();
    drop(c);
    let s = crate::sqlite::SqliteStore::open(&p, false).unwrap();
    let t = s.music_track_get(id).unwrap().unwrap();
    assert_eq!((t.path.as_str(), t.audio), ("a.flac", None));
    s.music_cache_put(&window(1, 0, 10, 1)).unwrap();
    assert_eq!(s.music_cache_totals().unwrap().windows, 1);
}
