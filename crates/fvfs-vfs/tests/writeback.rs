//! The retained state of files whose commit failed, with a tier that fails on demand: the
//! durable tier's directory and a regular file swap paths (renameat2 RENAME_EXCHANGE), so
//! that every block write fails, and swap back. The exchange is atomic: with two steps, a
//! retry running in between recreates the directory. Real SQLite metadata, real block
//! store, no mocks.

mod common;

use fvfs_chunk::BlockStore;
use fvfs_meta::MetaError;
use fvfs_types::ROOT_INO;
use fvfs_vfs::{Ctx, OpenFlags, Spool, Vfs, VfsConfig, VfsError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tier: PathBuf,
    meta: Arc<dyn fvfs_meta::MetaStore>,
    store: Arc<BlockStore>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let tier = root.join("tier");
    std::fs::write(root.join("blocker"), b"not a directory").unwrap();
    let (meta, store) = common::one_tier(&root, &tier, "6f1c1d6e-0000-4000-8000-000000000001");
    Env {
        _dir: dir,
        root,
        tier,
        meta,
        store,
    }
}

impl Env {
    fn vfs(&self, cfg: VfsConfig) -> Arc<Vfs> {
        Vfs::new(self.meta.clone(), self.store.clone(), cfg).unwrap()
    }
    /// Swaps the tier's path with the regular file `blocker`, atomically.
    fn swap_tier(&self) {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let (a, b) = (c(&self.tier), c(&self.root.join("blocker")));
        // SAFETY: two NUL-terminated paths that live across the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    }
    /// Every block write fails from now on.
    fn break_tier(&self) {
        self.swap_tier();
    }
    fn heal_tier(&self) {
        self.swap_tier();
    }
}

const RW: OpenFlags = OpenFlags::READ_WRITE;
const RO: OpenFlags = OpenFlags::READ;

/// A new file holding `data` whose last close failed to commit (the tier is broken).
async fn retained_file(vfs: &Vfs, name: &str, data: &[u8]) -> u64 {
    let (a, fh) = common::create(vfs, name.as_bytes());
    assert_eq!(vfs.write(fh, 0, data).await.unwrap() as usize, data.len());
    let e = vfs.release(fh).await.unwrap_err();
    assert_eq!(e.errno(), libc::EIO, "{e}");
    a.ino
}

fn retained(vfs: &Vfs) -> Vec<u64> {
    let mut v = vfs.retained_inodes();
    v.sort();
    v
}

async fn read_all(vfs: &Vfs, ino: u64) -> Vec<u8> {
    let fh = vfs.open(ino, RO).unwrap();
    let got = vfs.read(fh, 0, 64 << 20).await.unwrap();
    vfs.release(fh).await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_last_close_keeps_the_bytes_until_they_are_committed() {
    let env = env();
    let vfs = env.vfs(closes_commit());
    env.break_tier();
    let (a, fh) = vfs
        .create(Ctx::root(), ROOT_INO, b"f", 0o644, 0, libc::O_RDWR)
        .unwrap();
    vfs.write(fh, 0, b"hello").await.unwrap();
    assert_eq!(vfs.fsync(fh).await.unwrap_err().errno(), libc::EIO);
    assert_eq!(vfs.release(fh).await.unwrap_err().errno(), libc::EIO);
    assert_eq!(vfs.retained_inodes(), vec![a.ino]);
    // Visible (size, bytes) though not committed.
    assert_eq!(vfs.getattr(a.ino).unwrap().size, 5);
    assert_eq!(env.meta.getattr(a.ino).unwrap().size, 0);
    let rh = vfs.open(a.ino, RO).unwrap();
    assert_eq!(vfs.read(rh, 0, 100).await.unwrap(), b"hello");
    // fsync through any handle fails while the bytes are not stored.
    assert_eq!(vfs.fsync(rh).await.unwrap_err().errno(), libc::EIO);
    vfs.release(rh).await.unwrap();
    assert_eq!(
        vfs.retained_inodes(),
        vec![a.ino],
        "a reader's close keeps them"
    );
    assert!(vfs.writeback_pass().await.is_err());

    env.heal_tier();
    assert_eq!(vfs.writeback_pass().await.unwrap(), 1);
    assert!(vfs.retained_inodes().is_empty());
    assert_eq!(env.meta.getattr(a.ino).unwrap().size, 5);
    assert_eq!(read_all(&vfs, a.ino).await, b"hello");
    // Stored for good: a fresh engine on the same metadata reads them.
    drop(vfs);
    let vfs = env.vfs(closes_commit());
    assert_eq!(read_all(&vfs, a.ino).await, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_unlink_rename_and_reopen_of_retained_files() {
    let env = env();
    let vfs = env.vfs(closes_commit());
    env.break_tier();
    let a = retained_file(&vfs, "a", b"aaaa").await;
    let b = retained_file(&vfs, "b", b"bbbb").await;
    let c = retained_file(&vfs, "c", b"cccc").await;
    let d = retained_file(&vfs, "d", b"dddd").await;
    let e = retained_file(&vfs, "e", b"eeee").await;
    assert_eq!(retained(&vfs), vec![a, b, c, d, e]);

    // Truncating drops the bytes past the new size without any upload.
    let attr = vfs.truncate(a, 0).await.unwrap();
    assert_eq!(attr.size, 0);
    assert_eq!(vfs.getattr(a).unwrap().size, 0);
    // Extending keeps the buffered bytes and reads zeros after them; the mtime is the
    // truncate's, and stays so once the bytes are committed.
    let ext = vfs.truncate(e, 10).await.unwrap();
    assert_eq!(vfs.getattr(e).unwrap().size, 10);
    assert_eq!(read_all(&vfs, e).await, b"eeee\0\0\0\0\0\0");
    // Unlinking the last name drops the bytes and purges the inode.
    vfs.unlink(ROOT_INO, b"b").unwrap();
    assert!(matches!(env.meta.getattr(b), Err(MetaError::NotFound)));
    // So does a rename over it; the renamed file keeps its bytes.
    vfs.rename(ROOT_INO, b"d", ROOT_INO, b"c", Default::default())
        .unwrap();
    assert!(matches!(env.meta.getattr(c), Err(MetaError::NotFound)));
    assert_eq!(retained(&vfs), vec![d, e]);
    // A new open shares the retained buffer: an append lands after it.
    let fh = vfs.open(d, RW).unwrap();
    assert_eq!(vfs.getattr(d).unwrap().size, 4);
    vfs.write(fh, 4, b"+more").await.unwrap();
    assert!(vfs.release(fh).await.is_err());
    assert_eq!(retained(&vfs), vec![d, e]);
    assert_eq!(read_all(&vfs, d).await, b"dddd+more");

    env.heal_tier();
    assert_eq!(vfs.writeback_pass().await.unwrap(), 2);
    assert!(vfs.retained_inodes().is_empty());
    assert_eq!(env.meta.getattr(d).unwrap().size, 9);
    assert_eq!(env.meta.lookup(ROOT_INO, b"c").unwrap().ino, d);
    assert_eq!(read_all(&vfs, d).await, b"dddd+more");
    assert_eq!(env.meta.getattr(a).unwrap().size, 0);
    let committed = env.meta.getattr(e).unwrap();
    assert_eq!((committed.size, committed.mtime), (10, ext.mtime));
    assert_eq!(read_all(&vfs, e).await, b"eeee\0\0\0\0\0\0");
    assert!(env.meta.refcount_mismatches().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_retained_bytes_refuse_new_writes() {
    let env = env();
    let vfs = env.vfs(VfsConfig {
        max_retained_bytes: 1 << 20,
        ..closes_commit()
    });
    env.break_tier();
    let x = retained_file(&vfs, "x", &vec![7u8; 2 << 20]).await;
    let (_, fh) = vfs
        .create(Ctx::root(), ROOT_INO, b"y", 0o644, 0, libc::O_RDWR)
        .unwrap();
    let e = vfs.write(fh, 0, b"more").await.unwrap_err();
    assert!(matches!(e, VfsError::Backlog(n) if n == 2 << 20), "{e}");
    assert_eq!(e.errno(), libc::ENOSPC);
    env.heal_tier();
    vfs.writeback_pass().await.unwrap();
    assert_eq!(vfs.write(fh, 0, b"more").await.unwrap(), 4);
    vfs.release(fh).await.unwrap();
    assert_eq!(read_all(&vfs, x).await, vec![7u8; 2 << 20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_cannot_commit_spools_and_a_start_replays() {
    let env = env();
    let vfs = env.vfs(closes_commit());
    let spool = Spool::open(&env.root.join("spool")).unwrap();
    env.break_tier();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let f = retained_file(&vfs, "f", &body).await;
    // A file still open at stop, with two extents, is spooled too.
    let (g, fh) = vfs
        .create(Ctx::root(), ROOT_INO, b"g", 0o644, 0, libc::O_RDWR)
        .unwrap();
    let g = g.ino;
    vfs.write(fh, 0, b"head").await.unwrap();
    vfs.write(fh, 100_000, b"tail").await.unwrap();
    vfs.stop_writeback(Some(&spool), Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(spool.entries().unwrap().len(), 2);
    drop(vfs);

    // The next start: the tier is back, the entries are committed and removed.
    env.heal_tier();
    let vfs = env.vfs(closes_commit());
    assert_eq!(vfs.replay_spool(&spool).await.unwrap(), 2);
    assert!(spool.entries().unwrap().is_empty());
    assert_eq!(read_all(&vfs, f).await, body);
    let mut want = vec![0u8; 100_004];
    want[..4].copy_from_slice(b"head");
    want[100_000..].copy_from_slice(b"tail");
    assert_eq!(env.meta.getattr(g).unwrap().size, 100_004);
    assert_eq!(read_all(&vfs, g).await, want);
}

/// A config without the write journal (as over a remote hottest tier): fsync and close
/// store blocks, so they meet the broken tier as these tests intend.
fn closes_commit() -> VfsConfig {
    VfsConfig {
        write_journal: false,
        ..VfsConfig::default()
    }
}

/// Without the write journal, an fsync stores the tail as provisional slices; after
/// appends only the new bytes, after an overwrite the whole tail again. Either way, an
/// engine dropped without any close (a crash) leaves exactly the fsynced bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsynced_appends_and_overwrites_survive_a_crash_without_the_journal() {
    let env = env();
    let vfs = env.vfs(closes_commit());
    let (a, fh) = vfs
        .create(Ctx::root(), ROOT_INO, b"log", 0o644, 0, libc::O_RDWR)
        .unwrap();
    let mut want = Vec::new();
    for i in 0..20u8 {
        let chunk = vec![i; 3000];
        vfs.write(fh, want.len() as u64, &chunk).await.unwrap();
        want.extend_from_slice(&chunk);
        vfs.fsync(fh).await.unwrap();
    }
    // An overwrite inside what earlier fsyncs stored, then one more append.
    vfs.write(fh, 100, b"overwritten").await.unwrap();
    want[100..111].copy_from_slice(b"overwritten");
    vfs.write(fh, want.len() as u64, b"tail").await.unwrap();
    want.extend_from_slice(b"tail");
    vfs.fsync(fh).await.unwrap();
    // Bytes written after the last fsync may be lost.
    vfs.write(fh, 50, b"unsynced").await.unwrap();
    drop(vfs);
    let vfs = env.vfs(closes_commit());
    assert_eq!(vfs.getattr(a.ino).unwrap().size, want.len() as u64);
    let got = read_all(&vfs, a.ino).await;
    assert!(got == want, "the fsynced content after a crash");
}

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A flush in the middle of writing a file too big to journal (any forked process that
/// execs closes its inherited descriptor) stores the tail so far, yet the file ends up cut
/// into the same blocks as without it: a second copy written that way adds no block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_mid_write_does_not_move_block_boundaries() {
    let env = env();
    let vfs = env.vfs(VfsConfig::default());
    let content = noise(12 << 20, 7);
    let mut stats = Vec::new();
    for (name, flush_at) in [("a", None), ("b", Some(5 << 20 | 12345))] {
        let (_, fh) = common::create(&vfs, name.as_bytes());
        let mut pos = 0;
        for piece in content.chunks(100_000) {
            vfs.write(fh, pos as u64, piece).await.unwrap();
            pos += piece.len();
            if flush_at.is_some_and(|at| pos >= at && pos - piece.len() < at) {
                vfs.flush(fh).await.unwrap();
            }
        }
        vfs.flush(fh).await.unwrap();
        vfs.release(fh).await.unwrap();
        stats.push(env.meta.stats().unwrap());
    }
    assert_eq!(
        stats[1].blocks, stats[0].blocks,
        "the copy flushed mid-write added blocks: {:?} -> {:?}",
        stats[0], stats[1]
    );
    assert_eq!(stats[1].referenced_bytes, 2 * stats[0].referenced_bytes);
    let b = vfs.lookup(ROOT_INO, b"b").unwrap();
    assert!(read_all(&vfs, b.ino).await == content, "b reads back");
}
