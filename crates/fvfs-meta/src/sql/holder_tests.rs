//! Tests of the holders: references held besides file slices, GC and fsck with them, and
//! the upgrade of a version-3 database.

use super::tests::{data_commit, file, sqlite_store, store};
use super::*;
use crate::prelude::*;
use crate::sqlite::{schema, SqliteStore};
use crate::types::*;
use crate::MetaError;
use fvfs_types::{BlockId, Codec, ROOT_INO};

fn refcount(s: &dyn MetaStore, id: &BlockId) -> u64 {
    s.get_block(id).unwrap().unwrap().refcount
}

fn holder(kind: &str, key: &[u8]) -> Holder {
    Holder {
        kind: kind.into(),
        key: key.to_vec(),
    }
}

#[test]
fn held_block_outlives_its_files_until_released() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    data_commit(&*s, f.ino, 0, 0, 4096, 4);
    let id = BlockId([4; 32]);
    assert_eq!(s.hold("hsm", b"k1", &[id], &[], 0).unwrap(), 1);
    assert_eq!(
        s.hold("hsm", b"k1", &[id], &[], 0).unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(
        s.hold("music", b"x", &[id, id], &[], 0).unwrap(),
        1,
        "once per row"
    );
    assert_eq!(refcount(&*s, &id), 3);
    assert_eq!(s.held_by("hsm", b"k1").unwrap(), vec![id]);
    let other = BlockId([5; 32]);
    assert_eq!(
        s.holds("hsm", b"k1", &[other, id, id]).unwrap(),
        vec![false, true, true]
    );
    assert_eq!(s.holds("hsm", b"k2", &[id]).unwrap(), vec![false]);
    assert_eq!(s.holds("music", b"k1", &[id]).unwrap(), vec![false]);
    assert_eq!(
        s.holders_of(&id).unwrap(),
        vec![holder("hsm", b"k1"), holder("music", b"x")]
    );
    assert!(s.refcount_mismatches().unwrap().is_empty());

    // The file goes: the holders keep the block live.
    s.unlink(ROOT_INO, b"f", 3, false).unwrap();
    s.purge_inode(f.ino).unwrap();
    assert_eq!(refcount(&*s, &id), 2);
    assert!(s.garbage_blocks(10, i64::MAX).unwrap().is_empty());
    assert!(s.forget_blocks(&[id]).unwrap().is_empty());
    assert!(s.refcount_mismatches().unwrap().is_empty());

    assert_eq!(s.release("hsm", b"k1").unwrap(), vec![id]);
    assert!(s.release("hsm", b"k1").unwrap().is_empty(), "released once");
    assert_eq!(refcount(&*s, &id), 1);
    assert!(s.garbage_blocks(10, i64::MAX).unwrap().is_empty());
    s.release("music", b"x").unwrap();
    assert_eq!(refcount(&*s, &id), 0);
    assert!(s.held_by("music", b"x").unwrap().is_empty());
    assert!(
        s.garbage_blocks(10, 0).unwrap().is_empty(),
        "within the grace"
    );
    assert_eq!(s.garbage_blocks(10, i64::MAX).unwrap().len(), 1);
    assert_eq!(s.forget_blocks(&[id]).unwrap(), vec![id]);
    assert!(s.refcount_mismatches().unwrap().is_empty());
}

#[test]
fn hold_inserts_new_blocks_queues_them_and_is_atomic() {
    let (_d, s) = store();
    let id = BlockId([5; 32]);
    let nb = NewBlock {
        id,
        size: 10,
        stored_size: 10,
        codec: Codec::Raw,
        tiers: 1,
    };
    let missing = BlockId([6; 32]);
    assert!(matches!(
        s.hold("hsm", b"k", &[id, missing], &[nb], 0b10),
        Err(MetaError::MissingBlock(b)) if b == missing
    ));
    assert!(s.get_block(&id).unwrap().is_none(), "rolled back");
    assert!(s.held_by("hsm", b"k").unwrap().is_empty());
    assert!(matches!(
        s.hold("file", b"k", &[id], &[nb], 0),
        Err(MetaError::Invalid(_))
    ));

    assert_eq!(s.hold("hsm", b"k", &[id], &[nb], 0b10).unwrap(), 1);
    assert_eq!(refcount(&*s, &id), 1);
    let (queued, n) = s.queue_list(10).unwrap();
    assert_eq!(n, 1);
    assert_eq!((queued[0].block, queued[0].tier), (id, 1));
    assert_eq!(s.queue_missing(1, 0).unwrap(), 0, "already queued");
    assert_eq!(s.tier_usage(1).unwrap()[0].blocks, 1, "a live block");
}

#[test]
fn gc_skips_held_blocks_whatever_the_refcount_and_fsck_counts_holders() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    data_commit(&*s, f.ino, 0, 0, 100, 7);
    let id = BlockId([7; 32]);
    s.hold("music", b"song", &[id], &[], 0).unwrap();
    s.truncate(f.ino, 0, 4).unwrap();
    // A wrong count (an old fsck, a bug) does not make a held block garbage.
    s.set_refcount(&id, 0).unwrap();
    assert!(s.garbage_blocks(10, i64::MAX).unwrap().is_empty());
    assert!(s.forget_blocks(&[id]).unwrap().is_empty());
    assert!(s.get_block(&id).unwrap().is_some());
    assert_eq!(s.refcount_mismatches().unwrap(), vec![(id, 0, 1)]);
}

#[test]
fn dangling_holds_are_reported_and_dropped() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    data_commit(&*s, f.ino, 0, 0, 100, 8);
    let id = BlockId([8; 32]);
    s.hold("hsm", b"a", &[id], &[], 0).unwrap();
    assert!(s.dangling_holds().unwrap().is_empty());
    s.write(|tx| {
        tx.execute("DELETE FROM blocks WHERE id = ?1", params![&id.0[..]])?;
        Ok(())
    })
    .unwrap();
    assert_eq!(s.dangling_holds().unwrap(), vec![(holder("hsm", b"a"), id)]);
    assert_eq!(s.drop_dangling_holds().unwrap(), 1);
    assert!(s.dangling_holds().unwrap().is_empty());
    assert!(s.held_by("hsm", b"a").unwrap().is_empty());
}

#[test]
fn version_3_database_upgrades_to_holders() {
    let (d, s) = sqlite_store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    data_commit(&s, f.ino, 0, 0, 100, 9);
    drop(s);
    let p = d.path().join("meta.db");
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch(
        "DROP TABLE holders; DROP TABLE hsm_dirs; DROP TABLE hsm_files; DROP TABLE hsm_requests; \
         DROP TABLE music_origins; DROP TABLE music_tracks; DROP TABLE music_collections; DROP TABLE music_views; DROP TABLE music_entries; DROP TABLE music_cache; DROP TABLE write_journal; DROP TABLE locks; ALTER TABLE orphans DROP COLUMN session; PRAGMA user_version = 3;",
    )
    .unwrap();
    drop(c);

    let s = SqliteStore::open(&p, false).unwrap();
    let id = BlockId([9; 32]);
    assert_eq!(s.getattr(f.ino).unwrap().size, 100, "data kept");
    assert_eq!(s.hold("hsm", b"k", &[id], &[], 0).unwrap(), 1);
    assert_eq!(refcount(&s, &id), 2);
    assert!(s.refcount_mismatches().unwrap().is_empty());
    drop(s);
    let c = rusqlite::Connection::open(&p).unwrap();
    let v: u32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, schema::SCHEMA_VERSION);
    assert_eq!(v, 10);
}

/// The HSM catalog: rows round-trip, ids are assigned, a state filter lists, and
/// `hsm_forget` drops the row and its payload's holds in one step.
#[test]
fn hsm_catalog_rows_round_trip_and_forget_releases_the_holds() {
    use crate::store::{hsm_holder_key, HsmFile, HsmState, HSM_HOLDER};
    let (_d, s) = store();
    let dir = s.hsm_add_dir("/data/media", 5).unwrap();
    assert_eq!(s.hsm_add_dir("/data/media", 6).unwrap(), dir, "idempotent");
    assert_eq!(s.hsm_dirs().unwrap().len(), 1);
    let b = NewBlock {
        id: BlockId([7; 32]),
        size: 4096,
        stored_size: 4096,
        codec: Codec::Raw,
        tiers: 1,
    };
    let mut f = HsmFile {
        id: 0,
        dir,
        path: b"a/b.mkv".to_vec(),
        handle: vec![1, 2, 3],
        state: HsmState::Archiving,
        pinned: false,
        size: 4096,
        mtime_ns: 11,
        ctime_ns: 12,
        hash: [9; 32],
        blocks: vec![BlockRef {
            id: b.id,
            len: 4096,
        }],
        resident: vec![],
        archived_at: 13,
        last_recall: None,
    };
    f.id = s.hsm_new(&f).unwrap();
    let key = hsm_holder_key(f.id);
    s.hold(HSM_HOLDER, &key, &[b.id], std::slice::from_ref(&b), 0)
        .unwrap();
    f.state = HsmState::Released;
    f.resident = vec![1];
    s.hsm_put(&f).unwrap();
    assert_eq!(s.hsm_get(f.id).unwrap().as_ref(), Some(&f));
    assert_eq!(
        s.hsm_list(Some(HsmState::Released)).unwrap(),
        vec![f.clone()]
    );
    assert!(s.hsm_list(Some(HsmState::Archived)).unwrap().is_empty());
    assert_eq!(s.get_block(&b.id).unwrap().unwrap().refcount, 1);

    assert!(s.hsm_forget(f.id).unwrap());
    assert!(s.hsm_get(f.id).unwrap().is_none());
    assert!(s.held_by(HSM_HOLDER, &key).unwrap().is_empty());
    assert_eq!(s.get_block(&b.id).unwrap().unwrap().refcount, 0);
    assert!(!s.hsm_forget(f.id).unwrap());
    let missing = HsmFile { id: 999, ..f };
    assert!(matches!(s.hsm_put(&missing), Err(MetaError::NotFound)));

    // Requests: due ones by due time, done ones no longer listed, pruned by age.
    let r1 = s.hsm_request("archive", b"/d/a", 10).unwrap();
    let r2 = s.hsm_request("release", b"/d/b", 5).unwrap();
    let r3 = s.hsm_request("recall", b"/d/c", 50).unwrap();
    let due: Vec<u64> = s
        .hsm_requests_due(20, 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(due, vec![r2, r1]);
    s.hsm_request_done(r2, false, "not archived", 21).unwrap();
    let got = s.hsm_request_get(r2).unwrap().unwrap();
    assert_eq!(
        (got.done, got.ok, got.message.as_str()),
        (Some(21), false, "not archived")
    );
    let due: Vec<u64> = s
        .hsm_requests_due(100, 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(due, vec![r1, r3]);
    assert_eq!(s.hsm_requests_prune(22).unwrap(), 1);
    assert!(s.hsm_request_get(r2).unwrap().is_none());
    assert!(matches!(
        s.hsm_request_done(999, true, "", 0),
        Err(MetaError::NotFound)
    ));
}
