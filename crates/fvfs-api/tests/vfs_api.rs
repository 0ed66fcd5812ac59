//! The engine's API-face operations (fvfs-vfs api.rs) on a real engine: manifests of
//! files with overwrites and holes, and uploads that are aborted or dropped.

mod common;

use fvfs_vfs::{Ctx, NewOwner, OpenFlags, ROOT_INO};

const MIB: u64 = 1 << 20;

async fn rebuild(vfs: &fvfs_vfs::Vfs, ino: u64) -> Vec<u8> {
    let layout = vfs.manifest(ino).await.unwrap();
    let mut out = vec![0u8; layout.size as usize];
    let mut last_end = 0;
    for p in &layout.pieces {
        assert!(p.offset >= last_end, "pieces sorted and disjoint");
        assert!(p.offset + p.len <= layout.size);
        last_end = p.offset + p.len;
        let b = vfs.read_block(&p.id).await.unwrap();
        assert_eq!(b.len() as u64, p.block_len);
        assert_eq!(blake3::hash(&b).as_bytes(), &p.id.0);
        let (o, bo, n) = (p.offset as usize, p.block_offset as usize, p.len as usize);
        out[o..o + n].copy_from_slice(&b[bo..bo + n]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_with_overwrites_and_holes_reproduces_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let vfs = common::engine(dir.path());
    let (a, fh) = vfs
        .create(Ctx::root(), ROOT_INO, b"f", 0o100644, 0, libc::O_RDWR)
        .unwrap();
    let mut want = vec![0u8; 0];
    let mut write = |off: u64, data: Vec<u8>| {
        let end = off as usize + data.len();
        if want.len() < end {
            want.resize(end, 0);
        }
        want[off as usize..end].copy_from_slice(&data);
        (off, data)
    };
    let steps = vec![
        write(0, common::data(3 * MIB as usize, 1)),
        write(MIB, common::data(100_000, 2)),
        // A hole, then data across the 64 MiB chunk boundary.
        write(64 * MIB - 10_000, common::data(20_000, 3)),
        write(2 * MIB + 5, common::data(7, 4)),
    ];
    for (i, (off, data)) in steps.into_iter().enumerate() {
        vfs.write(fh, off, &data).await.unwrap();
        if i % 2 == 0 {
            vfs.fsync(fh).await.unwrap();
        }
    }
    // Uncommitted writes are committed by manifest itself.
    assert!(rebuild(&vfs, a.ino).await == want);
    // Shrink, then extend: the cut part reads as zeros.
    vfs.truncate(a.ino, 2 * MIB).await.unwrap();
    vfs.truncate(a.ino, 3 * MIB).await.unwrap();
    want.truncate(2 * MIB as usize);
    want.resize(3 * MIB as usize, 0);
    assert!(rebuild(&vfs, a.ino).await == want);
    let read = vfs.read(fh, 0, (3 * MIB) as u32).await.unwrap();
    assert!(read == want);
    vfs.release(fh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let vfs = common::engine(dir.path());
    let owner = NewOwner {
        mode: 0o640,
        uid: Some(7),
        gid: Some(8),
    };
    let mut up = vfs.begin_upload(ROOT_INO, b"t", owner).unwrap();
    up.write(b"abc").await.unwrap();
    assert!(
        vfs.lookup(ROOT_INO, b"t").is_err(),
        "invisible before finish"
    );
    let (a, existed) = up.finish(None, false).await.unwrap();
    assert!(!existed);
    assert_eq!((a.perm, a.uid, a.gid, a.size), (0o640, 7, 8, 3));

    let mut up = vfs.begin_upload(ROOT_INO, b"t", owner).unwrap();
    up.write(b"zzzz").await.unwrap();
    up.abort().await;
    let mut up = vfs.begin_upload(ROOT_INO, b"t", owner).unwrap();
    up.write(b"yyyy").await.unwrap();
    drop(up);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (list, _) = vfs.list_sorted(ROOT_INO, None, 10, |_| true).unwrap();
    assert_eq!(list.len(), 1, "only t is left");
    let fh = vfs
        .open(
            a.ino,
            OpenFlags {
                read: true,
                write: false,
                append: false,
            },
        )
        .unwrap();
    assert_eq!(vfs.read(fh, 0, 100).await.unwrap(), b"abc");
    vfs.release(fh).await.unwrap();

    let (d, created) = vfs
        .mkdir_p(
            &["p", "q"],
            NewOwner {
                mode: 0o755,
                uid: None,
                gid: None,
            },
        )
        .unwrap();
    assert!(created);
    assert_eq!(vfs.resolve_path(&["p", "q"]).unwrap().ino, d.ino);
    assert!(vfs.resolve_path(&["t", "x"]).is_err());
}
