//! The HSM face end to end on a loop-mounted ext4 image, with the real engine (SQLite
//! metadata, a hot directory tier and a durable S3 tier served by the in-process test
//! server) and the real fanotify listener: archive → release → every way of reading a
//! stub gives the original bytes; partial reads recall only their blocks; writes and
//! truncates keep every old byte; renames and hard links keep the identity; an
//! unreachable tier gives EIO and leaves the stub recallable; a file changed or open
//! during archiving is not released. Root only (skips fail under
//! FVFS_REQUIRE_PRIVILEGED=1).

mod common;

use common::Ext4;
use fvfs_chunk::{BlockStore, BlockStoreConfig};
use fvfs_hsm::{BulkPolicy, Hsm, HsmConfig, HsmError, Listener, Marker};
use fvfs_meta::{HsmState, MetaStore};
use fvfs_testkit::S3Server;
use fvfs_tier::{S3Credentials, Tier, TierOptions, TierSpec};
use fvfs_types::{CdcParams, Compression, Settings, TierSettings, FORMAT_VERSION};
use fvfs_vfs::{TierPolicy, Tiering};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Fields drop in this order: the listener before the engine, the image last.
struct Env {
    listener: Option<Listener>,
    hsm: Arc<Hsm>,
    tiering: Arc<Tiering>,
    meta: Arc<dyn MetaStore>,
    s3: S3Server,
    rt: tokio::runtime::Runtime,
    data: PathBuf,
    fs: Ext4,
}

fn tier(name: &str, location: &str, durable: bool) -> TierSettings {
    TierSettings {
        durable,
        ..TierSettings::new(name, location)
    }
}

use fvfs_testkit::pseudo_random as payload;

impl Env {
    /// A managed directory `data` on a fresh image; with `hot`, a hot directory tier in
    /// front of the durable S3 tier.
    fn new(image_mib: u64, hot: bool) -> Option<Env> {
        Env::with_config(image_mib, hot, HsmConfig::default())
    }

    fn with_config(image_mib: u64, hot: bool, hsm_cfg: HsmConfig) -> Option<Env> {
        let fs = Ext4::with_size_mib(image_mib)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let scratch = fs.scratch().to_path_buf();
        let s3 = rt
            .block_on(S3Server::start(&scratch.join("s3"), "fvfs"))
            .unwrap();
        let hot_dir = scratch.join("hot");
        std::fs::create_dir(&hot_dir).unwrap();
        let mut tiers = Vec::new();
        if hot {
            tiers.push(tier("hot", &hot_dir.display().to_string(), false));
        }
        tiers.push(tier("s3", &s3.location("blocks"), true));
        let meta = fvfs_meta::open(
            &format!("sqlite://{}", scratch.join("meta.db").display()),
            true,
        )
        .unwrap();
        let settings = Settings {
            uuid: "6f1c1d6e-0000-4000-8000-000000000010".parse().unwrap(),
            name: "hsm".into(),
            format_version: FORMAT_VERSION,
            cdc: CdcParams::default(),
            compression: Compression::Zstd,
            storage: vec![],
            created: 0,
            tiers: tiers.clone(),
        };
        meta.format(&settings, 0, 0, fvfs_vfs::now_ns()).unwrap();
        let opts = TierOptions {
            credentials: Some(S3Credentials {
                access_key_id: s3.access_key.clone(),
                secret_access_key: s3.secret_key.clone(),
                session_token: None,
            }),
            op_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(2),
            retries: 0,
            check_timeout: Duration::from_secs(2),
        };
        let opened = tiers
            .iter()
            .map(|t| Tier::open_with(&TierSpec::parse(&t.location).unwrap(), &opts).unwrap())
            .collect();
        let cfg = BlockStoreConfig {
            compression: Compression::Zstd,
            mem_cache_bytes: 0,
            disk_cache: None,
            upload_concurrency: 4,
        };
        let store = Arc::new(BlockStore::with_tiers(opened, tiers.len() - 1, cfg).unwrap());
        let tiering = Tiering::new(
            meta.clone(),
            store,
            TierPolicy::default(),
            Duration::from_secs(3600),
        )
        .unwrap();
        let hsm = Hsm::new(meta.clone(), tiering.clone(), hsm_cfg);
        let data = fs.path("data");
        std::fs::create_dir(&data).unwrap();
        hsm.add_dir(&data).unwrap();
        let listener = Listener::start(hsm.clone(), rt.handle().clone(), None).unwrap();
        Some(Env {
            fs,
            rt,
            s3,
            meta,
            tiering,
            hsm,
            listener: Some(listener),
            data,
        })
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.data.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn archive(&self, p: &Path) -> u64 {
        match self.rt.block_on(self.hsm.archive(p)).unwrap() {
            fvfs_hsm::Archived::New { id, .. } => id,
            other => panic!("{other:?}"),
        }
    }

    fn flush(&self) {
        let left = self
            .rt
            .block_on(self.tiering.replicate_all(Duration::from_secs(60)))
            .unwrap();
        assert_eq!(left, 0);
    }

    fn release(&self, p: &Path) -> u64 {
        self.rt.block_on(self.hsm.release(p)).unwrap()
    }

    /// Archive, replicate, release: `p` becomes a stub with no data blocks on disk.
    fn stub(&self, p: &Path) -> u64 {
        let id = self.archive(p);
        self.flush();
        self.release(p);
        // Punched: at most one filesystem block remains (ext4 keeps a large xattr there).
        let m = std::fs::metadata(p).unwrap();
        assert!(
            m.blocks() * 512 <= m.blksize(),
            "{} punched: {} blocks",
            p.display(),
            m.blocks()
        );
        id
    }

    fn marker(&self, p: &Path) -> Option<Marker> {
        let f = std::fs::File::open(p).unwrap();
        fvfs_hsm::marker::read(f.as_fd(), p).unwrap()
    }

    /// Waits until the recall that answered a read at `off` of `p` is done: a reader is
    /// answered once its pages are durable, the rest of their blocks and the catalog
    /// record follow under the file's recall lock, which another access at the same
    /// (now resident) offset waits for.
    fn settle(&self, p: &Path, off: u64) {
        let mut b = [0u8; 1];
        std::fs::File::open(p)
            .unwrap()
            .read_exact_at(&mut b, off)
            .unwrap();
    }

    fn recalled_bytes(&self) -> u64 {
        self.hsm.counters.recalled_bytes.load(Ordering::Relaxed)
    }

    /// Stops the listener and starts a new one (as a restarted daemon would).
    fn restart_listener(&mut self) {
        if let Some(l) = self.listener.take() {
            l.stop();
        }
        self.listener =
            Some(Listener::start(self.hsm.clone(), self.rt.handle().clone(), None).unwrap());
    }
}

fn sh(cmd: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn released_files_read_byte_identical_through_cat_cp_mmap_and_exec() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let big = payload(5 << 20, 1);
    let text = b"a small text file\n".repeat(100);
    let a = env.file("big.bin", &big);
    let b = env.file("small.txt", &text);
    let exe = env.data.join("true");
    std::fs::copy("/bin/true", &exe).unwrap();
    let exe_bytes = std::fs::read(&exe).unwrap();
    let mtime = std::fs::metadata(&a).unwrap().mtime();
    for p in [&a, &b, &exe] {
        env.stub(p);
        assert!(env.marker(p).unwrap().released);
    }
    // Size and times unchanged by the release.
    assert_eq!(std::fs::metadata(&a).unwrap().len(), big.len() as u64);
    assert_eq!(std::fs::metadata(&a).unwrap().mtime(), mtime);
    // cat (another process), cp, mmap, exec.
    let got = sh("cat", &[a.to_str().unwrap()]).stdout;
    let zeros = got.iter().filter(|b| **b == 0).count();
    eprintln!(
        "DEBUG len {} zeros {} recalled {} failures {}",
        got.len(),
        zeros,
        env.recalled_bytes(),
        env.hsm.counters.recall_failures.load(Ordering::Relaxed)
    );
    assert!(got == big, "cat of a stub");
    let copy = env.fs.scratch().join("copy.txt");
    sh("cp", &[b.to_str().unwrap(), copy.to_str().unwrap()]);
    assert_eq!(std::fs::read(&copy).unwrap(), text);
    sh("/bin/sh", &["-c", &format!("{} && echo ok", exe.display())]);
    assert_eq!(std::fs::read(&exe).unwrap(), exe_bytes);
    // Every file read whole is archived again (payload kept), no longer a stub.
    for p in [&a, &b, &exe] {
        let m = env.marker(p).unwrap();
        assert!(!m.released, "{}", p.display());
        assert_eq!(
            env.meta.hsm_get(m.id).unwrap().unwrap().state,
            HsmState::Archived
        );
    }
    assert_eq!(
        std::fs::metadata(&a).unwrap().mtime(),
        mtime,
        "a read is not a write"
    );
    // mmap of a fresh stub: one event for the mapping, then plain page faults.
    env.release(&a);
    let f = std::fs::File::open(&a).unwrap();
    let len = big.len();
    // SAFETY: a read-only shared mapping of an open file, unmapped below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED);
    // SAFETY: ptr maps len readable bytes.
    let mapped = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }.to_vec();
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(ptr, len) };
    assert!(mapped == big, "mmap of a stub sees the original bytes");
}

#[test]
fn a_partial_read_of_a_1_gib_stub_recalls_only_the_blocks_it_touches() {
    let Some(env) = Env::new(1536, true) else {
        return;
    };
    let data = payload(1 << 30, 2);
    let p = env.file("large.bin", &data);
    let id = env.stub(&p);
    let row = env.meta.hsm_get(id).unwrap().unwrap();
    let before = env.recalled_bytes();
    let off = 700 << 20;
    let f = std::fs::File::open(&p).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, off).unwrap();
    assert_eq!(&buf[..], &data[off as usize..off as usize + 4096]);
    env.settle(&p, off);
    // The blocks overlapping the page-aligned range the kernel reported, and no more.
    let mut at = 0u64;
    let mut expected = 0u64;
    for b in &row.blocks {
        let end = at + b.len as u64;
        if at < off + 4096 && end > off {
            expected += b.len as u64;
        }
        at = end;
    }
    assert!(expected > 0 && expected < 16 << 20, "{expected}");
    assert_eq!(env.recalled_bytes() - before, expected);
    assert!(env.marker(&p).unwrap().released, "still a stub");
    let on_disk = std::fs::metadata(&p).unwrap().blocks() * 512;
    assert!(
        on_disk >= expected && on_disk < expected + (1 << 20),
        "{on_disk}"
    );
}

#[test]
fn releasing_a_partly_recalled_stub_again_frees_its_blocks_unless_it_was_written() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let data = payload(24 << 20, 12);
    let p = env.file("again.bin", &data);
    let id = env.stub(&p);
    let f = std::fs::File::open(&p).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, 10 << 20).unwrap();
    assert!(buf[..] == data[10 << 20..(10 << 20) + 4096]);
    drop(f);
    env.settle(&p, 10 << 20);
    let before = std::fs::metadata(&p).unwrap();
    assert!(
        before.blocks() * 512 >= 1 << 18,
        "the recalled block is on disk"
    );
    assert_eq!(env.release(&p), id);
    let after = std::fs::metadata(&p).unwrap();
    assert!(
        after.blocks() * 512 <= after.blksize(),
        "punched again: {} blocks",
        after.blocks()
    );
    assert_eq!(after.mtime_nsec(), before.mtime_nsec());
    assert_eq!(after.mtime(), before.mtime());
    let row = env.meta.hsm_get(id).unwrap().unwrap();
    assert_eq!(row.state, HsmState::Released);
    assert!(row.resident.iter().all(|b| *b == 0));
    assert!(std::fs::read(&p).unwrap() == data, "recalls byte-identical");

    // Written after a partial recall: not released again, every byte kept.
    let q = env.file("written.bin", &data);
    let qid = env.stub(&q);
    let w = std::fs::OpenOptions::new().write(true).open(&q).unwrap();
    w.write_all_at(b"XY", 5 << 20).unwrap();
    drop(w);
    let err = env.rt.block_on(env.hsm.release(&q)).unwrap_err();
    assert!(matches!(err, HsmError::Changed(..)), "{err}");
    assert!(env.marker(&q).unwrap().released, "still a stub");
    let mut want = data.clone();
    want[5 << 20..(5 << 20) + 2].copy_from_slice(b"XY");
    assert!(std::fs::read(&q).unwrap() == want, "old and new bytes");
    assert!(
        env.meta.hsm_get(qid).unwrap().is_none(),
        "an ordinary file again"
    );
}

#[test]
fn writes_and_truncates_of_stubs_keep_every_old_byte() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let data = payload(6 << 20, 3);
    let p = env.file("w.bin", &data);
    let id = env.stub(&p);
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    let at = (3 << 20) + 10;
    f.write_all_at(b"HELLO", at).unwrap();
    drop(f);
    let mut want = data.clone();
    want[at as usize..at as usize + 5].copy_from_slice(b"HELLO");
    assert!(
        std::fs::read(&p).unwrap() == want,
        "old bytes around the write survive"
    );
    // Modified: an ordinary file again, the stale payload forgotten.
    assert!(env.marker(&p).is_none());
    assert!(env.meta.hsm_get(id).unwrap().is_none());

    // Truncate a stub to half, then grow it back: the first half is the old bytes, the
    // rest zeros (never payload bytes from beyond the cut).
    let q = env.file("t.bin", &data);
    env.stub(&q);
    let half = data.len() as u64 / 2 + 123;
    let f = std::fs::OpenOptions::new().write(true).open(&q).unwrap();
    f.set_len(half).unwrap();
    f.set_len(data.len() as u64).unwrap();
    drop(f);
    let got = std::fs::read(&q).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got[..half as usize] == data[..half as usize]);
    assert!(got[half as usize..].iter().all(|b| *b == 0));
    assert!(env.marker(&q).is_none());

    // open(O_TRUNC) gives no event: the next write still must not bring old bytes back.
    let r = env.file("o.bin", &data);
    env.stub(&r);
    std::fs::write(&r, b"new").unwrap();
    assert_eq!(std::fs::read(&r).unwrap(), b"new");
}

#[test]
fn renamed_moved_and_linked_stubs_recall_also_after_a_listener_restart() {
    let Some(mut env) = Env::new(256, true) else {
        return;
    };
    let data = payload(3 << 20, 4);
    let p = env.file("r.bin", &data);
    env.stub(&p);
    std::fs::create_dir(env.data.join("sub")).unwrap();
    let moved = env.data.join("sub/renamed.bin");
    std::fs::rename(&p, &moved).unwrap();
    let link = env.data.join("link.bin");
    std::fs::hard_link(&moved, &link).unwrap();
    // The listener restarts (marks die with it): it finds the stub by handle.
    env.restart_listener();
    assert_eq!(std::fs::read(&link).unwrap(), data);
    assert_eq!(std::fs::read(&moved).unwrap(), data);
}

#[test]
fn an_unreachable_tier_gives_eio_and_the_stub_recalls_later() {
    let Some(env) = Env::new(256, false) else {
        return;
    };
    let data = payload(2 << 20, 5);
    let p = env.file("u.bin", &data);
    env.stub(&p);
    env.rt.block_on(env.s3.stop());
    let err = std::fs::read(&p).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(env.marker(&p).unwrap().released);
    let m = std::fs::metadata(&p).unwrap();
    assert!(m.blocks() * 512 <= m.blksize(), "the stub is unchanged");
    assert!(env.hsm.counters.recall_failures.load(Ordering::Relaxed) > 0);
    env.rt.block_on(env.s3.restart()).unwrap();
    // Later: the first request after the restart may meet a connection the server closed
    // (the test tiers do not retry), so a reader that retries gets the bytes.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let got = loop {
        match std::fs::read(&p) {
            Ok(got) => break got,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still EIO 20 s after S3 came back"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(got == data);
}

#[test]
fn files_changed_or_open_are_not_released_and_unarchived_files_are_refused() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let data = payload(1 << 20, 6);
    let p = env.file("c.bin", &data);
    env.archive(&p);
    env.flush();
    // Open elsewhere: no write lease.
    let held = std::fs::File::open(&p).unwrap();
    assert!(matches!(
        env.rt.block_on(env.hsm.release(&p)),
        Err(HsmError::Busy(_))
    ));
    drop(held);
    // Changed since its archive: not released, the marker and the payload go.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap()
        .write_all_at(b"x", data.len() as u64)
        .unwrap();
    assert!(matches!(
        env.rt.block_on(env.hsm.release(&p)),
        Err(HsmError::Changed(..))
    ));
    assert!(env.marker(&p).is_none());
    assert_eq!(std::fs::metadata(&p).unwrap().len(), data.len() as u64 + 1);
    // Never archived.
    let q = env.file("n.bin", b"plain");
    assert!(matches!(
        env.rt.block_on(env.hsm.release(&q)),
        Err(HsmError::NotArchived(_))
    ));
    // Not durable yet: archived but not replicated.
    let r = env.file("d.bin", &payload(1 << 20, 7));
    env.archive(&r);
    let res = env.rt.block_on(env.hsm.release(&r));
    assert!(matches!(res, Err(HsmError::NotDurable(_))), "{res:?}");
    // Outside every managed directory.
    let outside = env.fs.path("outside.bin");
    std::fs::write(&outside, b"x").unwrap();
    assert!(matches!(
        env.rt.block_on(env.hsm.archive(&outside)),
        Err(HsmError::NotManaged(_))
    ));
}

#[test]
fn queued_requests_archive_release_recall_and_pin() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let data = payload(2 << 20, 8);
    let p = env.file("q.bin", &data);
    let path = p.to_str().unwrap().as_bytes();
    let now = fvfs_vfs::now_ns();
    let a = env.meta.hsm_request("archive", path, now).unwrap();
    let bad = env.meta.hsm_request("explode", path, now).unwrap();
    assert_eq!(env.rt.block_on(env.hsm.serve_requests()).unwrap(), 2);
    let done = env.meta.hsm_request_get(a).unwrap().unwrap();
    assert!(
        done.ok && done.message.starts_with("archived (id "),
        "{done:?}"
    );
    let done = env.meta.hsm_request_get(bad).unwrap().unwrap();
    assert!(
        !done.ok && done.message.contains("unknown HSM operation"),
        "{done:?}"
    );
    env.flush();
    let r = env.meta.hsm_request("release", path, now).unwrap();
    env.rt.block_on(env.hsm.serve_requests()).unwrap();
    assert!(env.meta.hsm_request_get(r).unwrap().unwrap().ok);
    assert!(env.marker(&p).unwrap().released);
    // A whole recall through the listener (this process's own descriptor never writes).
    let msg = env.rt.block_on(env.hsm.execute("recall", &p)).unwrap();
    assert!(msg.ends_with(", whole)"), "{msg}");
    assert!(!env.marker(&p).unwrap().released);
    env.release(&p);
    // Pinning a stub recalls it whole; a pinned file is never released.
    env.rt.block_on(env.hsm.execute("pin", &p)).unwrap();
    assert!(!env.marker(&p).unwrap().released);
    let res = env.rt.block_on(env.hsm.release(&p));
    assert!(matches!(res, Err(HsmError::Pinned(_))), "{res:?}");
    env.rt.block_on(env.hsm.execute("unpin", &p)).unwrap();
    env.release(&p);
    assert_eq!(std::fs::read(&p).unwrap(), data);
}

#[test]
fn the_janitor_brings_usage_under_the_low_mark_oldest_first() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let day = 86_400u64;
    let now = std::time::SystemTime::now();
    let mut files = Vec::new();
    // Oldest first: file i was last touched 20 - i days ago. The oldest is a .txt, which
    // the policy's extensions leave alone.
    for i in 0..12u64 {
        let name = if i == 0 {
            "keep.txt".to_string()
        } else {
            format!("f{i:02}.bin")
        };
        let p = env.file(&name, &payload(12 << 20, 100 + i));
        let t = now - Duration::from_secs((20 - i) * day);
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
            .unwrap();
        f.sync_all().unwrap();
        files.push(p);
    }
    let young = env.file("young.bin", &payload(4 << 20, 99));
    let before = fvfs_hsm::usage_pct(&env.data).unwrap();
    assert!(before > 45.0, "{before}");
    let policy = fvfs_hsm::JanitorPolicy {
        high_pct: before - 5.0,
        low_pct: before - 25.0,
        min_atime_age: Duration::from_secs(day),
        min_mtime_age: Duration::from_secs(day),
        min_size: 1 << 20,
        extensions: vec!["bin".into()],
        bytes_per_sec: 0,
        ..fvfs_hsm::JanitorPolicy::default()
    };
    let run = env.rt.block_on(env.hsm.janitor_pass(&policy)).unwrap();
    let after = fvfs_hsm::usage_pct(&env.data).unwrap();
    assert!(after <= policy.low_pct, "{before} -> {after}: {run:?}");
    assert!(run.released >= 1, "{run:?}");
    // The janitor wrote its payloads straight to the durable tier (bit 1), not the hot
    // one (bit 0): a hot copy of what it releases would only be replicated and evicted.
    let rows = env.meta.hsm_list(Some(HsmState::Released)).unwrap();
    assert_eq!(rows.len(), run.released as usize);
    for f in &rows {
        for b in &f.blocks {
            let tiers = env.meta.get_block(&b.id).unwrap().unwrap().tiers;
            assert_eq!(tiers, 0b10, "{}", String::from_utf8_lossy(&f.path));
        }
    }
    // Exactly the oldest qualifying files went, in order; the .txt and the young file stayed.
    let released: Vec<bool> = files
        .iter()
        .map(|p| env.marker(p).is_some_and(|m| m.released))
        .collect();
    assert!(!released[0], "excluded by extension");
    let n = run.released as usize;
    assert_eq!(
        released[1..],
        [vec![true; n], vec![false; 11 - n]].concat()[..]
    );
    assert!(env.marker(&young).is_none(), "too young");
    // And they still read back.
    assert_eq!(std::fs::read(&files[1]).unwrap(), payload(12 << 20, 101));
    // Under the high mark: a pass does nothing.
    let idle = env.rt.block_on(env.hsm.janitor_pass(&policy)).unwrap();
    assert_eq!(idle.released, 0);
}

#[test]
fn backup_tools_are_refused_or_queued_and_the_recall_rate_is_bounded() {
    let cfg = HsmConfig {
        bulk_commands: vec!["cat".into()],
        bulk_policy: BulkPolicy::Refuse,
        recall_bytes_per_sec: 2 << 20,
        ..HsmConfig::default()
    };
    let Some(env) = Env::with_config(256, true, cfg) else {
        return;
    };
    let data = payload(16 << 20, 9);
    let p = env.file("storm.bin", &data);
    let id = env.stub(&p);
    // A "backup tool" is refused at open; metadata stays free.
    let out = Command::new("cat").arg(&p).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Resource temporarily unavailable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&p).unwrap().len(), data.len() as u64);
    assert_eq!(env.recalled_bytes(), 0);
    // Any other process reads it, at 2 MiB/s at most. Recalls fetch up to 8 blocks at a
    // time, each booking its bytes: everything but the last 8 blocks waits for the rate.
    let lens: Vec<u64> = env
        .meta
        .hsm_get(id)
        .unwrap()
        .unwrap()
        .blocks
        .iter()
        .map(|b| b.len as u64)
        .collect();
    let widest = lens
        .windows(8.min(lens.len()))
        .map(|w| w.iter().sum::<u64>())
        .max()
        .unwrap();
    let lower = (data.len() as u64 - widest) as f64 / (2 << 20) as f64;
    assert!(lower >= 1.0, "{lens:?}");
    let t = std::time::Instant::now();
    assert!(std::fs::read(&p).unwrap() == data);
    assert!(
        t.elapsed().as_secs_f64() >= lower * 0.95,
        "{:?} < {lower} s",
        t.elapsed()
    );

    // Queued: the tool gets the whole file before its open returns.
    let cfg = HsmConfig {
        bulk_commands: vec!["cat".into()],
        bulk_policy: BulkPolicy::Queue,
        ..HsmConfig::default()
    };
    let Some(env) = Env::with_config(256, true, cfg) else {
        return;
    };
    let p = env.file("queued.bin", &data);
    env.stub(&p);
    assert!(sh("cat", &[p.to_str().unwrap()]).stdout == data);
    assert_eq!(env.recalled_bytes(), data.len() as u64);
    assert!(!env.marker(&p).unwrap().released, "recalled whole at open");
}
