//! st_blocks accounting (`alloc.rs`) through commits, truncation and compaction, on the
//! engine under test (`crate::testing`).

use super::tests::{data_commit, file, store};
use crate::types::*;
use fvfs_types::{BlockId, FileKind, ROOT_INO};

#[test]
fn st_blocks_count_stored_data_only() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"sparse", &file()).unwrap();
    assert_eq!(f.blocks, 0);
    const M: u32 = 1 << 20;
    // Three 1 MiB regions of a 100 MiB file (chunks 0 and 1).
    data_commit(&*s, f.ino, 0, 0, M, 1);
    data_commit(&*s, f.ino, 0, 40 * M, M, 2);
    data_commit(&*s, f.ino, 1, 20 * M, M, 3);
    let a = s.truncate(f.ino, 100 << 20, 10).unwrap();
    assert_eq!((a.size, a.blocks), (100 << 20, 3 * 2048));
    assert_eq!(s.getattr(f.ino).unwrap().blocks, 3 * 2048);
    // A punched hole (a zero slice) inside the first region.
    s.commit(
        f.ino,
        &Commit {
            slices: &[NewSlice {
                chunk: 0,
                pos: 4096,
                len: 8192,
                zero: true,
                blocks: vec![],
            }],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.getattr(f.ino).unwrap().blocks, 3 * 2048 - 16);
    // Truncating into the second region drops the third and half the second.
    let a = s.truncate(f.ino, 40 * M as u64 + M as u64 / 2, 11).unwrap();
    assert_eq!(a.blocks, 2048 - 16 + 1024);
    // Compaction (replace_chunk) recounts: one small slice left in chunk 0. It replaces
    // only the slices it was made from: made from an older view of the chunk (one slice
    // fewer, as if another host wrote meanwhile), it changes nothing.
    let id = BlockId([1; 32]);
    let merged = [NewSlice {
        chunk: 0,
        pos: 100,
        len: 10,
        zero: false,
        blocks: vec![BlockRef { id, len: 10 }],
    }];
    let ids: Vec<u64> = s
        .read_chunk(f.ino, 0)
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert!(ids.len() > 1, "{ids:?}");
    let stale = &ids[..ids.len() - 1];
    assert!(!s.replace_chunk(f.ino, 0, stale, &merged, &[], 0).unwrap());
    assert_eq!(
        s.read_chunk(f.ino, 0).unwrap().len(),
        ids.len(),
        "unchanged"
    );
    assert_eq!(a.blocks, s.getattr(f.ino).unwrap().blocks);
    assert!(s.replace_chunk(f.ino, 0, &ids, &merged, &[], 0).unwrap());
    assert_eq!(s.getattr(f.ino).unwrap().blocks, 8);
    // Directories and symlinks report their size.
    let d = s
        .create(
            ROOT_INO,
            b"l",
            &NewInode {
                kind: FileKind::Symlink,
                perm: 0o777,
                target: Some(&[b'x'; 600]),
                ..file()
            },
        )
        .unwrap();
    assert_eq!(d.blocks, 2);
}
