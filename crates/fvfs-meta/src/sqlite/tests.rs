use super::*;
use fvfs_types::{BlockId, CdcParams, Codec, Compression, FileKind, CHUNK_SIZE, ROOT_INO};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("meta.db"), true).unwrap();
    let settings = Settings {
        uuid: uuid::Uuid::new_v4(),
        name: "t".into(),
        format_version: fvfs_types::FORMAT_VERSION,
        cdc: CdcParams::default(),
        compression: Compression::Zstd,
        storage: vec!["/tmp/x".into()],
        created: 0,
        tiers: vec![],
    };
    s.format(&settings, 0, 0, 1).unwrap();
    (dir, s)
}

fn file<'a>() -> NewInode<'a> {
    NewInode {
        kind: FileKind::File,
        perm: 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
        target: None,
        now: 2,
    }
}

#[test]
fn create_lookup_unlink_orphan() {
    let (_d, s) = store();
    let a = s.create(ROOT_INO, b"f", &file()).unwrap();
    assert_eq!(s.lookup(ROOT_INO, b"f").unwrap().ino, a.ino);
    assert!(matches!(
        s.create(ROOT_INO, b"f", &file()),
        Err(MetaError::Exists)
    ));
    let u = s.unlink(ROOT_INO, b"f", 3).unwrap();
    assert_eq!(u.nlink, 0);
    assert_eq!(s.orphans().unwrap(), vec![a.ino]);
    s.purge_inode(a.ino).unwrap();
    assert!(s.orphans().unwrap().is_empty());
    assert!(matches!(s.getattr(a.ino), Err(MetaError::NotFound)));
}

#[test]
fn dirs_and_rename() {
    let (_d, s) = store();
    let dir = NewInode {
        kind: FileKind::Dir,
        perm: 0o755,
        ..file()
    };
    let a = s.create(ROOT_INO, b"a", &dir).unwrap();
    let b = s.create(ROOT_INO, b"b", &dir).unwrap();
    assert_eq!(s.getattr(ROOT_INO).unwrap().nlink, 4);
    s.create(a.ino, b"x", &file()).unwrap();
    assert!(matches!(
        s.rmdir(ROOT_INO, b"a", 3),
        Err(MetaError::NotEmpty)
    ));
    assert!(matches!(
        s.rename(ROOT_INO, b"b", a.ino, b"x", RenameFlags::default(), 3),
        Err(MetaError::NotDir)
    ));
    assert!(matches!(
        s.rename(ROOT_INO, b"a", b.ino, b"a", RenameFlags::default(), 3)
            .map(|_| ()),
        Ok(())
    ));
    assert_eq!(s.getattr(b.ino).unwrap().nlink, 3);
    assert_eq!(s.getattr(a.ino).unwrap().parent, b.ino);
    assert!(matches!(
        s.rename(ROOT_INO, b"b", a.ino, b"b", RenameFlags::default(), 3),
        Err(MetaError::Invalid(_))
    ));
    let names: Vec<_> = s
        .readdir(ROOT_INO, 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![b"b".to_vec()]);
    assert!(s.nlink_mismatches().unwrap().is_empty());
}

#[test]
fn exchange() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    let dir = NewInode {
        kind: FileKind::Dir,
        perm: 0o755,
        ..file()
    };
    let d = s.create(ROOT_INO, b"d", &dir).unwrap();
    let flags = RenameFlags {
        exchange: true,
        noreplace: false,
    };
    s.rename(ROOT_INO, b"f", ROOT_INO, b"d", flags, 4).unwrap();
    assert_eq!(s.lookup(ROOT_INO, b"f").unwrap().ino, d.ino);
    assert_eq!(s.lookup(ROOT_INO, b"d").unwrap().ino, f.ino);
}

#[test]
fn slices_refcounts_truncate() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    let id = BlockId([7; 32]);
    let nb = NewBlock {
        id,
        size: 100,
        stored_size: 50,
        codec: Codec::Zstd,
        tiers: 1,
    };
    let sl = NewSlice {
        chunk: 0,
        pos: 0,
        len: 100,
        zero: false,
        blocks: vec![BlockRef { id, len: 100 }],
    };
    s.commit(
        f.ino,
        &Commit {
            slices: std::slice::from_ref(&sl),
            new_blocks: &[nb],
            min_size: 100,
            mtime: Some(5),
            replicate_to: 0b100,
            supersede: &[],
        },
    )
    .unwrap();
    s.commit(
        f.ino,
        &Commit {
            slices: std::slice::from_ref(&sl),
            min_size: 100,
            mtime: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.get_block(&id).unwrap().unwrap().refcount, 2);
    let missing = NewSlice {
        blocks: vec![BlockRef {
            id: BlockId([8; 32]),
            len: 100,
        }],
        ..sl
    };
    assert!(matches!(
        s.commit(
            f.ino,
            &Commit {
                slices: &[missing],
                min_size: 100,
                ..Default::default()
            }
        ),
        Err(MetaError::MissingBlock(_))
    ));
    assert_eq!(
        s.get_block(&id).unwrap().unwrap().refcount,
        2,
        "failed commit rolled back"
    );
    let a = s.truncate(f.ino, 10, 6).unwrap();
    assert_eq!(a.size, 10);
    let slices = s.read_chunk(f.ino, 0).unwrap();
    assert_eq!(slices.len(), 3);
    assert!(slices[2].zero && slices[2].pos == 10 && slices[2].len == 90);
    s.truncate(f.ino, 0, 7).unwrap();
    assert!(s.read_chunk(f.ino, 0).unwrap().is_empty());
    assert_eq!(s.get_block(&id).unwrap().unwrap().refcount, 0);
    assert_eq!(s.garbage_blocks(10, 0).unwrap().len(), 0, "too fresh");
    assert_eq!(s.garbage_blocks(10, i64::MAX).unwrap().len(), 1);
    assert_eq!(s.forget_blocks(&[id]).unwrap(), vec![id]);
    assert!(s.refcount_mismatches().unwrap().is_empty());
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("meta.db");
    drop(SqliteStore::open(&p, true).unwrap());
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(c);
    assert!(matches!(
        SqliteStore::open(&p, false),
        Err(MetaError::TooNew { .. })
    ));
}

#[test]
fn replication_queue_and_tier_bits() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    let id = BlockId([9; 32]);
    let nb = NewBlock {
        id,
        size: 10,
        stored_size: 10,
        codec: Codec::Raw,
        tiers: 0b001,
    };
    let sl = NewSlice {
        chunk: 0,
        pos: 0,
        len: 10,
        zero: false,
        blocks: vec![BlockRef { id, len: 10 }],
    };
    let c = Commit {
        slices: std::slice::from_ref(&sl),
        new_blocks: &[nb],
        min_size: 10,
        replicate_to: 0b110,
        ..Default::default()
    };
    s.commit(f.ino, &c).unwrap();
    let due = s.wal_due(i64::MAX, 10).unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(s.tier_usage(3).unwrap()[0].blocks, 1);
    s.wal_retry(due[0].id, i64::MAX - 1, "down").unwrap();
    assert_eq!(s.wal_due(0, 10).unwrap().len(), 0);
    s.wal_done(due[1].id, &id, due[1].tier).unwrap();
    let row = s.get_block(&id).unwrap().unwrap();
    assert_eq!(row.tiers, 0b001 | (1 << due[1].tier));
    // Inserting a tier at the front shifts every bit up.
    let mut settings = s.settings().unwrap();
    settings.name = "moved".into();
    s.insert_tier(&settings, 0).unwrap();
    assert_eq!(
        s.get_block(&id).unwrap().unwrap().tiers,
        (0b001 | (1 << due[1].tier)) << 1
    );
    // Pins follow the pinned file's references.
    s.pin_file(f.ino, true).unwrap();
    assert!(s.evict_candidates(1, 2, 10).unwrap().is_empty());
    s.pin_file(f.ino, false).unwrap();
}

#[test]
fn replace_content_moves_slices_and_references() {
    let (_d, s) = store();
    let dst = s.create(ROOT_INO, b"dst", &file()).unwrap();
    s.link(dst.ino, ROOT_INO, b"dst2", 3).unwrap();
    let src = s.create(ROOT_INO, b"src", &file()).unwrap();
    let (old, new, shared) = (BlockId([1; 32]), BlockId([2; 32]), BlockId([3; 32]));
    let nb = |id| NewBlock {
        id,
        size: 10,
        stored_size: 10,
        codec: Codec::Raw,
        tiers: 1,
    };
    let sl = |chunk, ids: &[BlockId]| NewSlice {
        chunk,
        pos: 0,
        len: 10 * ids.len() as u32,
        zero: false,
        blocks: ids.iter().map(|&id| BlockRef { id, len: 10 }).collect(),
    };
    let commit = |ino, slices: &[NewSlice], blocks: &[NewBlock], size| {
        let c = Commit {
            slices,
            new_blocks: blocks,
            min_size: size,
            mtime: Some(4),
            ..Default::default()
        };
        s.commit(ino, &c).unwrap();
    };
    // dst: two chunks (old, shared); src: one chunk (new, shared), 20 bytes.
    commit(
        dst.ino,
        &[sl(0, &[old]), sl(1, &[shared])],
        &[nb(old), nb(shared)],
        CHUNK_SIZE + 10,
    );
    commit(src.ino, &[sl(0, &[new, shared])], &[nb(new)], 20);
    s.pin_file(dst.ino, true).unwrap();
    let refs = |id| s.get_block(&id).unwrap().unwrap().refcount;
    assert_eq!((refs(old), refs(new), refs(shared)), (1, 1, 2));

    let a = s.replace_content(dst.ino, src.ino, 7, 8).unwrap();
    assert_eq!(
        (a.ino, a.size, a.mtime, a.ctime, a.nlink),
        (dst.ino, 20, 7, 8, 2)
    );
    assert_eq!((refs(old), refs(new), refs(shared)), (0, 1, 1));
    let chunk0 = s.read_chunk(dst.ino, 0).unwrap();
    assert_eq!(chunk0.len(), 1);
    assert_eq!(
        chunk0[0].blocks.iter().map(|b| b.id).collect::<Vec<_>>(),
        [new, shared]
    );
    assert!(s.read_chunk(dst.ino, 1).unwrap().is_empty());
    assert_eq!(s.chunk_slice_count(dst.ino, 0).unwrap(), 1);
    assert_eq!(s.chunk_slice_count(dst.ino, 1).unwrap(), 0);
    assert_eq!(s.lookup(ROOT_INO, b"dst2").unwrap().size, 20);
    // The source is left empty; the pin of dst now covers the moved blocks.
    assert_eq!(s.getattr(src.ino).unwrap().size, 0);
    assert!(s.read_chunk(src.ino, 0).unwrap().is_empty());
    assert_eq!(s.chunk_slice_count(src.ino, 0).unwrap(), 0);
    let pins = |id: BlockId| -> i64 {
        s.read(|tx| {
            Ok(
                tx.query_row("SELECT pins FROM blocks WHERE id = ?1", [&id.0[..]], |r| {
                    r.get(0)
                })?,
            )
        })
        .unwrap()
    };
    assert_eq!((pins(old), pins(new), pins(shared)), (0, 1, 1));
    assert!(s.refcount_mismatches().unwrap().is_empty());
    // Directories and special files are refused, and so is the file itself.
    assert!(matches!(
        s.replace_content(ROOT_INO, src.ino, 9, 9),
        Err(MetaError::IsDir)
    ));
    assert!(matches!(
        s.replace_content(dst.ino, dst.ino, 9, 9),
        Err(MetaError::Invalid(_))
    ));
}
