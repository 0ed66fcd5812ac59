//! Reference models on a real FUSE mount of the engine (`fvfsd mount`; needs root and
//! /dev/fuse, skipped without them unless `FVFS_REQUIRE_PRIVILEGED=1`):
//!
//! - `the_mount_matches_the_model`: the shared namespace and data model
//!   (`fvfs_testkit::model`, the one the engine and the LAN client run) through `std::fs`
//!   on the mount: create, mkdir, pwrite at offsets (holes), write + fsync, truncate,
//!   rename, link, unlink, unlink while open, rmdir; outcomes and errnos, listings, bytes,
//!   sizes and link counts must match the model after every step. Reopen unmounts and
//!   mounts again (a new process: every cache, the kernel's included, is dropped). Each
//!   case runs in its own directory of one mount; nothing is skipped. Cases:
//!   `FVFS_POSIX_MODEL_CASES` (default 64, about 5 s with its remounts); failing seeds are kept in
//!   `tests/posix_model.proptest-regressions`.
//! - `random_overwrites_match_a_model`: one file's contents under large random writes,
//!   truncates, fsyncs, hole punching and reopens, compared with an in-memory Vec after
//!   every step. After each fsync, st_blocks must count exactly the 4 KiB units that hold
//!   written data (holes from seeks past the end, truncation and punching excluded).
//!   Cases: `FVFS_POSIX_BLOCKS_CASES` (default 24).

mod common;
use common::Fixture;
use fvfs_testkit::model::{self, Stat, Sut, R};
use fvfs_types::FileKind;
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::IntoRawFd;
use std::path::{Path, PathBuf};

/// The two tests take turns: st_blocks after fsync was seen off (2800 vs 3664) while the
/// other test remounted its own fixture at the same time (left for later; see the report
/// of the branch `model`).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One case's directory on the mount, through `std::fs`.
struct Mount<'a> {
    fx: &'a RefCell<Fixture>,
    root: PathBuf,
    files: HashMap<u64, File>,
    next: u64,
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn kind(t: std::fs::FileType) -> FileKind {
    if t.is_dir() {
        FileKind::Dir
    } else if t.is_file() {
        FileKind::File
    } else {
        FileKind::Symlink
    }
}

impl Mount<'_> {
    fn at(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
    }
    fn file(&self, fh: u64) -> R<&File> {
        self.files.get(&fh).ok_or(libc::EBADF)
    }
}

impl Sut for Mount<'_> {
    fn create(&mut self, path: &str) -> R {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(self.at(path))
            .map(drop)
            .map_err(errno)
    }
    fn mkdir(&mut self, path: &str) -> R {
        std::fs::create_dir(self.at(path)).map_err(errno)
    }
    fn open(&mut self, path: &str, write: bool) -> R<u64> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(self.at(path))
            .map_err(errno)?;
        self.next += 1;
        self.files.insert(self.next, f);
        Ok(self.next)
    }
    fn write(&mut self, fh: u64, off: u64, data: &[u8]) -> R<usize> {
        self.file(fh)?.write_at(data, off).map_err(errno)
    }
    fn fsync(&mut self, fh: u64) -> R {
        self.file(fh)?.sync_all().map_err(errno)
    }
    fn read(&mut self, fh: u64, off: u64, len: u32) -> R<Vec<u8>> {
        let mut buf = vec![0; len as usize];
        let n = self.file(fh)?.read_at(&mut buf, off).map_err(errno)?;
        buf.truncate(n);
        Ok(buf)
    }
    fn close(&mut self, fh: u64) -> R {
        // close(2)'s own result: it reports what the flush at close could not write.
        let fd = self.files.remove(&fh).ok_or(libc::EBADF)?.into_raw_fd();
        match unsafe { libc::close(fd) } {
            0 => Ok(()),
            _ => Err(errno(std::io::Error::last_os_error())),
        }
    }
    fn truncate(&mut self, path: &str, size: u64) -> R {
        let p = CString::new(self.at(path).as_os_str().as_bytes()).unwrap();
        match unsafe { libc::truncate(p.as_ptr(), size as libc::off_t) } {
            0 => Ok(()),
            _ => Err(errno(std::io::Error::last_os_error())),
        }
    }
    fn rename(&mut self, from: &str, to: &str) -> R {
        std::fs::rename(self.at(from), self.at(to)).map_err(errno)
    }
    fn link(&mut self, from: &str, to: &str) -> R {
        std::fs::hard_link(self.at(from), self.at(to)).map_err(errno)
    }
    fn unlink(&mut self, path: &str) -> R {
        std::fs::remove_file(self.at(path)).map_err(errno)
    }
    fn rmdir(&mut self, path: &str) -> R {
        std::fs::remove_dir(self.at(path)).map_err(errno)
    }
    fn readdir(&mut self, path: &str) -> R<Vec<(String, FileKind)>> {
        let mut out = Vec::new();
        for d in std::fs::read_dir(self.at(path)).map_err(errno)? {
            let d = d.map_err(errno)?;
            let t = d.file_type().map_err(errno)?;
            out.push((d.file_name().to_string_lossy().into_owned(), kind(t)));
        }
        Ok(out)
    }
    fn stat(&mut self, path: &str) -> R<Stat> {
        let m = std::fs::symlink_metadata(self.at(path)).map_err(errno)?;
        Ok(Stat {
            ino: m.ino(),
            kind: kind(m.file_type()),
            size: m.len(),
            nlink: m.nlink() as u32,
        })
    }
    fn reopen(&mut self) {
        assert!(self.files.is_empty(), "reopen with files open");
        let mut fx = self.fx.borrow_mut();
        fx.unmount();
        fx.mount();
    }
}

#[test]
fn the_mount_matches_the_model() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let mnt: &Path = &f.mnt.clone();
    let fx = RefCell::new(f);
    let case = std::sync::atomic::AtomicU32::new(0);
    let cases = model::cases("FVFS_POSIX_MODEL_CASES", 64);
    model::run("mount model", cases, file!(), || {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = mnt.join(format!("case-{n}"));
        std::fs::create_dir(&root).unwrap();
        Mount {
            fx: &fx,
            root,
            files: HashMap::new(),
            next: 0,
        }
    });
}

#[derive(Clone, Debug)]
enum Op {
    Write { off: u64, len: usize, byte: u8 },
    Truncate(u64),
    Fsync,
    Reopen,
    PunchHole { off: u64, len: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..3_000_000, 1usize..400_000, any::<u8>()).prop_map(|(off, len, byte)| Op::Write { off, len, byte }),
        1 => (0u64..3_500_000).prop_map(Op::Truncate),
        1 => Just(Op::Fsync),
        1 => Just(Op::Reopen),
        1 => (0u64..3_000_000, 1u64..300_000).prop_map(|(off, len)| Op::PunchHole { off, len }),
    ]
}

/// st_blocks (512-byte units) of the 4 KiB units holding any byte `written` marks.
fn model_blocks(written: &[bool]) -> u64 {
    written.chunks(4096).filter(|u| u.contains(&true)).count() as u64 * 8
}

fn check(file: &mut std::fs::File, model: &[u8]) {
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut got = Vec::new();
    file.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), model.len(), "size differs");
    if got != model {
        let i = got.iter().zip(model).position(|(a, b)| a != b).unwrap();
        panic!("content differs at byte {i}");
    }
}

#[test]
fn random_overwrites_match_a_model() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let mnt = f.mnt.clone();
    let case = std::sync::atomic::AtomicU32::new(0);
    let cfg = ProptestConfig {
        cases: model::cases("FVFS_POSIX_BLOCKS_CASES", 24),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(cfg, |(ops in proptest::collection::vec(op(), 1..40))| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = mnt.join(format!("model-{n}"));
        let open = || std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).unwrap();
        let mut file = open();
        let mut model: Vec<u8> = Vec::new();
        let mut written: Vec<bool> = Vec::new();
        for op in ops {
            match op {
                Op::Write { off, len, byte } => {
                    file.seek(SeekFrom::Start(off)).unwrap();
                    file.write_all(&vec![byte; len]).unwrap();
                    let end = off as usize + len;
                    if model.len() < end { model.resize(end, 0); written.resize(end, false); }
                    model[off as usize..end].fill(byte);
                    written[off as usize..end].fill(true);
                }
                Op::Truncate(n) => {
                    file.set_len(n).unwrap();
                    model.resize(n as usize, 0);
                    written.resize(n as usize, false);
                }
                Op::Fsync => {
                    file.sync_all().unwrap();
                    let blocks = std::os::unix::fs::MetadataExt::blocks(&file.metadata().unwrap());
                    assert_eq!(blocks, model_blocks(&written), "st_blocks after fsync");
                }
                Op::Reopen => { drop(file); file = open(); }
                Op::PunchHole { off, len } => {
                    let rc = unsafe {
                        libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&file),
                            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off as i64, len as i64)
                    };
                    assert_eq!(rc, 0, "punch hole failed: {}", std::io::Error::last_os_error());
                    let end = ((off + len) as usize).min(model.len());
                    if (off as usize) < end {
                        model[off as usize..end].fill(0);
                        written[off as usize..end].fill(false);
                    }
                }
            }
            check(&mut file, &model);
        }
        drop(file);
        std::fs::remove_file(&path).unwrap();
    });
}
