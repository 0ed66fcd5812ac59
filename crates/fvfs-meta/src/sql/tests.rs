use super::*;
use crate::prelude::*;
use crate::sqlite::{schema, SqliteStore};
use crate::types::*;
use crate::MetaError;
use fvfs_types::{BlockId, CdcParams, Codec, Compression, FileKind, CHUNK_SIZE, ROOT_INO};
use fvfs_types::{Ino, Settings};

/// A formatted store on the engine under test (`crate::testing`).
pub(crate) fn store() -> (tempfile::TempDir, std::sync::Arc<dyn super::TestStore>) {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::testing::meta_url(dir.path());
    let s: std::sync::Arc<dyn super::TestStore> = match crate::MetaUrl::parse(&url).unwrap() {
        crate::MetaUrl::Sqlite(p) => std::sync::Arc::new(SqliteStore::open(&p, true).unwrap()),
        u @ crate::MetaUrl::Postgres(_) => {
            std::sync::Arc::new(crate::postgres::PgStore::open(&url, u.display(), true).unwrap())
        }
    };
    s.format(&settings(), 0, 0, 1).unwrap();
    (dir, s)
}

fn settings() -> Settings {
    Settings {
        uuid: uuid::Uuid::new_v4(),
        name: "t".into(),
        format_version: fvfs_types::FORMAT_VERSION,
        cdc: CdcParams::default(),
        compression: Compression::Zstd,
        storage: vec!["/tmp/x".into()],
        created: 0,
        tiers: vec![],
    }
}

/// A formatted SQLite store, for the tests of what is SQLite's own.
pub(crate) fn sqlite_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("meta.db"), true).unwrap();
    s.format(&settings(), 0, 0, 1).unwrap();
    (dir, s)
}

pub(crate) fn file<'a>() -> NewInode<'a> {
    NewInode {
        kind: FileKind::File,
        perm: 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
        target: None,
        now: 2,
        xattrs: &[],
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
    let u = s.unlink(ROOT_INO, b"f", 3, false).unwrap();
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
        ..RenameFlags::default()
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
            journal: None,
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
    let due = s.queue_due(i64::MAX, 10).unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(s.tier_usage(3).unwrap()[0].blocks, 1);
    s.queue_retry(due[0].id, i64::MAX - 1, "down").unwrap();
    assert_eq!(s.queue_due(0, 10).unwrap().len(), 0);
    s.queue_done(due[1].id, &id, due[1].tier).unwrap();
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

    let src_blocks = s.getattr(src.ino).unwrap().blocks;
    assert!(src_blocks > 0 && s.getattr(dst.ino).unwrap().blocks > src_blocks);
    let a = s.replace_content(dst.ino, src.ino, 7, 8).unwrap();
    assert_eq!(
        (a.ino, a.size, a.mtime, a.ctime, a.nlink),
        (dst.ino, 20, 7, 8, 2)
    );
    // st_blocks follows the content.
    assert_eq!(a.blocks, src_blocks);
    assert_eq!(s.getattr(src.ino).unwrap().blocks, 0);
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
            tx.query_row(
                "SELECT pins FROM blocks WHERE id = ?1",
                params![&id.0[..]],
                |r| r.get(0),
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

/// A data slice of `len` bytes at `pos` of `chunk` referencing block `id` (inserted by the
/// first commit that names it).
pub(super) fn data_commit(s: &dyn MetaStore, ino: Ino, chunk: u64, pos: u32, len: u32, id: u8) {
    let id = BlockId([id; 32]);
    let nb = NewBlock {
        id,
        size: len,
        stored_size: len,
        codec: Codec::Raw,
        tiers: 1,
    };
    let sl = NewSlice {
        chunk,
        pos,
        len,
        zero: false,
        blocks: vec![BlockRef { id, len }],
    };
    let end = chunk * fvfs_types::CHUNK_SIZE + pos as u64 + len as u64;
    s.commit(
        ino,
        &Commit {
            slices: std::slice::from_ref(&sl),
            new_blocks: &[nb],
            min_size: end,
            mtime: Some(9),
            ..Default::default()
        },
    )
    .unwrap();
}

#[test]
fn migration_to_v3_fills_st_blocks() {
    let (d, s) = sqlite_store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    data_commit(&s, f.ino, 0, 8192, 5000, 4);
    drop(s);
    // Back to a version-2 database: the new columns gone, the version lowered.
    let p = d.path().join("meta.db");
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch(
        "DROP TABLE holders;
         DROP TABLE hsm_dirs;
         DROP TABLE hsm_files;
         DROP TABLE hsm_requests;
         DROP TABLE music_origins;
         DROP TABLE music_tracks;
         DROP TABLE music_collections;
         DROP TABLE music_views;
         DROP TABLE music_entries;
         DROP TABLE music_cache;
         DROP TABLE write_journal;
         ALTER TABLE inodes DROP COLUMN alloc_bytes;
         ALTER TABLE chunks DROP COLUMN alloc_bytes;
         DROP TABLE locks; ALTER TABLE orphans DROP COLUMN session;
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(c);
    let s = SqliteStore::open(&p, false).unwrap();
    assert_eq!(
        s.getattr(f.ino).unwrap().blocks,
        16,
        "8192..13192: two 4 KiB units"
    );
    let c = rusqlite::Connection::open(&p).unwrap();
    let v: u32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, schema::SCHEMA_VERSION);
}

#[test]
fn xattrs_with_create_and_setattr_are_one_change() {
    let (_d, s) = store();
    let acl: &[u8] = b"system.posix_acl_access";
    let new = NewInode {
        xattrs: &[(acl, b"v1"), (b"user.k", b"x")],
        ..file()
    };
    let f = s.create(ROOT_INO, b"f", &new).unwrap();
    assert_eq!(s.get_xattr(f.ino, acl).unwrap(), b"v1");
    assert_eq!(s.list_xattr(f.ino).unwrap().len(), 2);
    // A refused create leaves no xattr behind (the name exists).
    assert!(matches!(
        s.create(ROOT_INO, b"f", &new),
        Err(MetaError::Exists)
    ));
    let set = SetAttr {
        perm: Some(0o751),
        ..Default::default()
    };
    let a = s
        .setattr_xattr(
            f.ino,
            &set,
            XattrChange::Set {
                name: acl,
                value: b"v2",
            },
            20,
        )
        .unwrap();
    assert_eq!((a.perm, a.ctime), (0o751, 20));
    assert_eq!(s.get_xattr(f.ino, acl).unwrap(), b"v2");
    let a = s
        .setattr_xattr(
            f.ino,
            &SetAttr::default(),
            XattrChange::Remove { name: acl },
            21,
        )
        .unwrap();
    assert_eq!((a.perm, a.ctime), (0o751, 21));
    assert!(matches!(s.get_xattr(f.ino, acl), Err(MetaError::NoAttr)));
    // Removing a missing one is no error; a too-big value rolls the mode back.
    s.setattr_xattr(f.ino, &set, XattrChange::Remove { name: acl }, 22)
        .unwrap();
    let big = vec![0u8; 70_000];
    let chmod = SetAttr {
        perm: Some(0o700),
        ..Default::default()
    };
    assert!(matches!(
        s.setattr_xattr(
            f.ino,
            &chmod,
            XattrChange::Set {
                name: acl,
                value: &big
            },
            23
        ),
        Err(MetaError::AttrTooBig)
    ));
    assert_eq!(s.getattr(f.ino).unwrap().perm, 0o751);
}

#[test]
fn unknown_stored_codes_are_corruption_not_defaults() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    s.write(|tx| {
        tx.execute(
            "UPDATE inodes SET kind = 9 WHERE ino = ?1",
            params![f.ino as i64],
        )?;
        tx.execute(
            "UPDATE dentries SET kind = 9 WHERE ino = ?1",
            params![f.ino as i64],
        )?;
        Ok(())
    })
    .unwrap();
    let corrupt = |r: Result<String, MetaError>| match r {
        Err(MetaError::Corrupt(why)) => why,
        other => panic!("expected Corrupt, got {other:?}"),
    };
    let why = corrupt(s.getattr(f.ino).map(|a| format!("{a:?}")));
    assert!(why.contains("inode kind code 9"), "{why}");
    corrupt(s.lookup(ROOT_INO, b"f").map(|a| format!("{a:?}")));
    corrupt(s.readdir(ROOT_INO, 0, 10).map(|e| format!("{e:?}")));

    let id = BlockId([9; 32]);
    let nb = NewBlock {
        id,
        size: 10,
        stored_size: 10,
        codec: Codec::Raw,
        tiers: 0b001,
    };
    let g = s.create(ROOT_INO, b"g", &file()).unwrap();
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
        ..Default::default()
    };
    s.commit(g.ino, &c).unwrap();
    s.write(|tx| tx.execute("UPDATE blocks SET codec = 77", params![]))
        .unwrap();
    let why = corrupt(s.get_block(&id).map(|b| format!("{b:?}")));
    assert!(why.contains("block codec code 77"), "{why}");
}

/// A dump loaded into an empty store dumps again byte for byte, with names that are not
/// UTF-8, xattrs, slices, blocks, the replication queue and counters; sessions stay out;
/// a formatted store refuses a load and a refused load leaves nothing.
#[test]
fn dump_load_dump_is_equal_and_load_needs_an_empty_store() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"caf\xe9 \"q\"\n", &file()).unwrap();
    s.set_xattr(f.ino, b"user.k", &[0, 1, 255], XattrMode::Any, 3)
        .unwrap();
    let id = BlockId([9; 32]);
    s.commit(
        f.ino,
        &Commit {
            slices: &[NewSlice {
                chunk: 0,
                pos: 0,
                len: 100,
                zero: false,
                blocks: vec![BlockRef { id, len: 100 }],
            }],
            new_blocks: &[NewBlock {
                id,
                size: 100,
                stored_size: 50,
                codec: Codec::Zstd,
                tiers: 1,
            }],
            min_size: 100,
            mtime: Some(5),
            replicate_to: 0b10,
            supersede: &[],
            journal: None,
        },
    )
    .unwrap();
    s.bump_counter("repaired", 3).unwrap();
    s.register_session("h", 1, "/m", 1).unwrap();
    let mut first = Vec::new();
    let totals = s.dump(&mut first).unwrap();
    let text = String::from_utf8(first.clone()).unwrap();
    assert!(!text.contains("\"table\":\"sessions\""), "{text}");
    assert!(text.contains("{\"hex\":\"636166e9202271220a\"}"), "{text}");

    // Into a new store of the engine under test and into SQLite: on PostgreSQL this
    // moves the metadata across engines, and the dump of the copy is the same text.
    let dir = tempfile::tempdir().unwrap();
    let copies: [std::sync::Arc<dyn MetaStore>; 2] = [
        crate::open(&crate::testing::meta_url(dir.path()), true).unwrap(),
        std::sync::Arc::new(SqliteStore::open(&dir.path().join("m2.db"), true).unwrap()),
    ];
    for t in copies {
        assert_eq!(t.load(&mut first.as_slice()).unwrap(), totals);
        let mut second = Vec::new();
        t.dump(&mut second).unwrap();
        assert_eq!(String::from_utf8(second).unwrap(), text, "{}", t.describe());
        assert_eq!(t.get_xattr(f.ino, b"user.k").unwrap(), vec![0, 1, 255]);
        assert_eq!(t.get_block(&id).unwrap().unwrap().refcount, 1);
        assert!(t.sessions().unwrap().is_empty());
        // The id generators moved past the loaded ids: a new file gets a new inode.
        let n = t.create(ROOT_INO, b"after-load", &file()).unwrap();
        assert!(n.ino > f.ino, "{}: {} after {}", t.describe(), n.ino, f.ino);
    }

    assert!(matches!(
        s.load(&mut first.as_slice()),
        Err(MetaError::AlreadyFormatted(_))
    ));
    let u = SqliteStore::open(&dir.path().join("m3.db"), true).unwrap();
    let cut = &first[..first.len() - 10];
    assert!(matches!(u.load(&mut &cut[..]), Err(MetaError::Dump(_))));
    assert!(matches!(u.settings(), Err(MetaError::NotFormatted(_))));
}
