//! A reference model of POSIX namespace and data semantics, shared by every filesystem
//! face: random sequences of operations run on a system under test ([`Sut`]) and on an
//! in-memory tree ([`Model`]). Every operation's outcome (success or its errno) must
//! match the model's, and after every operation every listing, every file's bytes, size
//! and link count must match too ([`check`]).
//!
//! Operations ([`Op`]): create, mkdir, write at an offset (holes included), write +
//! fsync, truncate, rename (files and directories, over files, over empty and non-empty
//! directories, into its own subtree), link, unlink, unlink while a handle is open (the
//! handle still reads the bytes), rmdir, and reopen (the system drops what it caches and
//! rebuilds itself from what it keeps durably).
//!
//! Systems: [`Sut`] is path-based and errno-returning, so a real mount implements it with
//! `std::fs`; [`OnOps`] implements it once over any `fvfs_fuse::FsOps` face (the engine's
//! `EngineOps`, the LAN client's `ClientFs`), issuing the calls the kernel would. A
//! system that lacks an operation says so through [`Sut::supports`]; the model then skips
//! that operation for it and checks everything else as strictly as for the others.
//!
//! [`run`] drives one system through proptest: the strategy ([`ops`]) is stable, so a
//! failing sequence's seed, kept in a regressions file next to the test, replays the same
//! sequence on every later run.

use fvfs_fuse::ops::{self, FileKind, FsOps, RenameFlags, SetAttr};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;

/// The names every path is made of: few, so operations collide often.
pub const NAMES: [&str; 3] = ["a", "b", "c"];

/// A path of one or two names from [`NAMES`].
pub type P = Vec<usize>;

#[derive(Clone, Debug)]
pub enum Op {
    Create(P),
    Mkdir(P),
    /// Path, offset, length, first byte.
    Write(P, u64, usize, u8),
    WriteSync(P, u64, usize, u8),
    Truncate(P, u64),
    Rename(P, P),
    Link(P, P),
    Unlink(P),
    UnlinkOpen(P),
    Rmdir(P),
    Reopen,
}

fn path() -> impl Strategy<Value = P> {
    prop::collection::vec(0..NAMES.len(), 1..=2)
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![0..70_000u64, Just(1 << 20), 0..16u64]
}

/// One operation. Changing this strategy invalidates the seeds of every regressions file.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => path().prop_map(Op::Create),
        2 => path().prop_map(Op::Mkdir),
        3 => (path(), offset(), 0..5000usize, any::<u8>()).prop_map(|(p, o, l, b)| Op::Write(p, o, l, b)),
        1 => (path(), offset(), 0..5000usize, any::<u8>()).prop_map(|(p, o, l, b)| Op::WriteSync(p, o, l, b)),
        1 => (path(), offset()).prop_map(|(p, s)| Op::Truncate(p, s)),
        2 => (path(), path()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => (path(), path()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => path().prop_map(Op::Unlink),
        1 => path().prop_map(Op::UnlinkOpen),
        1 => path().prop_map(Op::Rmdir),
        1 => Just(Op::Reopen),
    ]
}

/// One test case: a sequence of up to 23 operations.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..24)
}

/// Success or an errno.
pub type R<T = ()> = Result<T, i32>;

/// What a system reports of one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub ino: u64,
    pub kind: FileKind,
    pub size: u64,
    pub nlink: u32,
}

/// Operations a system may not offer (see [`Sut::supports`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// link(2). Without it, [`Op::Link`] is skipped.
    HardLinks,
    /// A handle open on an unlinked file still reads its bytes. Without it,
    /// [`Op::UnlinkOpen`] runs as a plain unlink.
    UnlinkOpen,
}

/// A filesystem under test. Paths are relative to its root, names joined by `/` (`""` is
/// the root); errors are errnos, as the syscall of the same name returns them.
pub trait Sut {
    /// open(O_RDWR | O_CREAT | O_EXCL, 0644) then close.
    fn create(&mut self, path: &str) -> R;
    fn mkdir(&mut self, path: &str) -> R;
    /// open(O_RDWR) or open(O_RDONLY): a handle for the calls below.
    fn open(&mut self, path: &str, write: bool) -> R<u64>;
    /// pwrite(2): the bytes written.
    fn write(&mut self, fh: u64, off: u64, data: &[u8]) -> R<usize>;
    fn fsync(&mut self, fh: u64) -> R;
    /// pread(2): at most `len` bytes, empty at the end.
    fn read(&mut self, fh: u64, off: u64, len: u32) -> R<Vec<u8>>;
    fn close(&mut self, fh: u64) -> R;
    /// truncate(2) by path.
    fn truncate(&mut self, path: &str, size: u64) -> R;
    fn rename(&mut self, from: &str, to: &str) -> R;
    fn link(&mut self, from: &str, to: &str) -> R;
    fn unlink(&mut self, path: &str) -> R;
    fn rmdir(&mut self, path: &str) -> R;
    /// The names and kinds in a directory, without `.` and `..`, in any order.
    fn readdir(&mut self, path: &str) -> R<Vec<(String, FileKind)>>;
    /// lstat(2).
    fn stat(&mut self, path: &str) -> R<Stat>;
    /// Drops what the system caches and rebuilds it from its durable state. No handle is
    /// open when it is called.
    fn reopen(&mut self);
    fn supports(&self, _feature: Feature) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------
// The model

#[derive(Clone, Debug)]
pub enum Entry {
    File(usize),
    Dir(BTreeMap<&'static str, Entry>),
}

/// The in-memory filesystem every system is compared with.
#[derive(Default)]
pub struct Model {
    pub root: BTreeMap<&'static str, Entry>,
    /// Contents by file id (hard links share one id).
    pub files: Vec<Vec<u8>>,
}

fn name_str(p: &P) -> &'static str {
    NAMES[*p.last().unwrap()]
}

/// `[0, 1]` → `"a/b"`.
pub fn path_str(p: &[usize]) -> String {
    p.iter().map(|&c| NAMES[c]).collect::<Vec<_>>().join("/")
}

impl Model {
    fn dir(&self, comps: &[usize]) -> R<&BTreeMap<&'static str, Entry>> {
        let mut d = &self.root;
        for &c in comps {
            match d.get(NAMES[c]) {
                None => return Err(libc::ENOENT),
                Some(Entry::File(_)) => return Err(libc::ENOTDIR),
                Some(Entry::Dir(m)) => d = m,
            }
        }
        Ok(d)
    }
    fn dir_mut(&mut self, comps: &[usize]) -> &mut BTreeMap<&'static str, Entry> {
        let mut d = &mut self.root;
        for &c in comps {
            match d.get_mut(NAMES[c]) {
                Some(Entry::Dir(m)) => d = m,
                _ => unreachable!("checked by dir()"),
            }
        }
        d
    }
    fn get(&self, p: &P) -> R<&Entry> {
        let d = self.dir(&p[..p.len() - 1])?;
        d.get(name_str(p)).ok_or(libc::ENOENT)
    }
    fn file(&self, p: &P) -> R<Option<usize>> {
        match self.get(p)? {
            Entry::File(id) => Ok(Some(*id)),
            Entry::Dir(_) => Ok(None),
        }
    }
    fn insert(&mut self, p: &P, e: Entry) -> R {
        let d = self.dir(&p[..p.len() - 1])?;
        if d.contains_key(name_str(p)) {
            return Err(libc::EEXIST);
        }
        self.dir_mut(&p[..p.len() - 1]).insert(name_str(p), e);
        Ok(())
    }
    fn remove(&mut self, p: &P) -> Entry {
        self.dir_mut(&p[..p.len() - 1])
            .remove(name_str(p))
            .expect("checked")
    }
    fn write(&mut self, id: usize, off: u64, data: &[u8]) {
        let f = &mut self.files[id];
        let end = off as usize + data.len();
        if data.is_empty() {
            return;
        }
        if f.len() < end {
            f.resize(end, 0);
        }
        f[off as usize..end].copy_from_slice(data);
    }
    fn rename(&mut self, s: &P, d: &P) -> R {
        // renameat(2) resolves both parents before it looks the old name up.
        let sd = self.dir(&s[..s.len() - 1])?;
        let dd = self.dir(&d[..d.len() - 1])?;
        let src = sd.get(name_str(s)).ok_or(libc::ENOENT)?.clone();
        if s == d {
            return Ok(());
        }
        if matches!(src, Entry::Dir(_)) && d.len() > s.len() && d[..s.len()] == s[..] {
            return Err(libc::EINVAL);
        }
        if s.len() > d.len() && s[..d.len()] == d[..] {
            // The target is an ancestor of the source (Linux: ENOTEMPTY).
            return Err(libc::ENOTEMPTY);
        }
        match (&src, dd.get(name_str(d))) {
            (_, None) => {}
            (Entry::File(a), Some(Entry::File(b))) if a == b => return Ok(()),
            (Entry::File(_), Some(Entry::File(_))) => {}
            (Entry::File(_), Some(Entry::Dir(_))) => return Err(libc::EISDIR),
            (Entry::Dir(_), Some(Entry::File(_))) => return Err(libc::ENOTDIR),
            (Entry::Dir(_), Some(Entry::Dir(m))) if !m.is_empty() => return Err(libc::ENOTEMPTY),
            (Entry::Dir(_), Some(Entry::Dir(_))) => {}
        }
        let e = self.remove(s);
        self.dir_mut(&d[..d.len() - 1]).insert(name_str(d), e);
        Ok(())
    }
}

/// `len` bytes counting up from `b`.
pub fn bytes(len: usize, b: u8) -> Vec<u8> {
    (0..len).map(|i| b.wrapping_add(i as u8)).collect()
}

/// A failed call where success was due.
fn must<T>(r: R<T>, what: &str, op: &Op) -> Result<T, TestCaseError> {
    r.map_err(|e| {
        TestCaseError::fail(format!(
            "{what} failed ({}) during {op:?}",
            std::io::Error::from_raw_os_error(e)
        ))
    })
}

/// Reads the whole file behind `fh`, which must not hold more than `size` bytes.
fn read_all<S: Sut>(sut: &mut S, fh: u64, size: u64, op: &Op) -> Result<Vec<u8>, TestCaseError> {
    let mut out = Vec::new();
    loop {
        let got = must(sut.read(fh, out.len() as u64, 1 << 20), "read", op)?;
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
        prop_assert!(out.len() as u64 <= size, "read past the size {}", size);
    }
    Ok(out)
}

/// Runs `op` on the model and the system; both outcomes must be equal.
pub fn step<S: Sut>(sut: &mut S, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let (want, got): (R, R) = match op {
        Op::Create(p) => {
            let id = m.files.len();
            let want = m.insert(p, Entry::File(id));
            if want.is_ok() {
                m.files.push(Vec::new());
            }
            (want, sut.create(&path_str(p)))
        }
        Op::Mkdir(p) => {
            let want = m.insert(p, Entry::Dir(BTreeMap::new()));
            (want, sut.mkdir(&path_str(p)))
        }
        Op::Write(p, off, len, b) | Op::WriteSync(p, off, len, b) => {
            let sync = matches!(op, Op::WriteSync(..));
            let ps = path_str(p);
            let id = match m.file(p) {
                Ok(Some(id)) => id,
                Ok(None) => return Ok(()), // a directory: open(2) for writing is EISDIR in the kernel
                Err(errno) => {
                    let got = sut.open(&ps, true);
                    if let Ok(fh) = got {
                        let _ = sut.close(fh);
                    }
                    prop_assert_eq!(got.map(drop), Err(errno), "{:?}", op);
                    return Ok(());
                }
            };
            let data = bytes(*len, *b);
            m.write(id, *off, &data);
            let fh = must(sut.open(&ps, true), "open", op)?;
            let n = must(sut.write(fh, *off, &data), "write", op)?;
            prop_assert_eq!(n, data.len(), "{:?}", op);
            if sync {
                must(sut.fsync(fh), "fsync", op)?;
            }
            (Ok(()), sut.close(fh))
        }
        Op::Truncate(p, size) => {
            let want = match m.file(p) {
                Ok(Some(id)) => {
                    m.files[id].resize(*size as usize, 0);
                    Ok(())
                }
                Ok(None) => return Ok(()), // a directory: EISDIR in the kernel
                Err(errno) => Err(errno),
            };
            (want, sut.truncate(&path_str(p), *size))
        }
        Op::Rename(s, d) => (m.rename(s, d), sut.rename(&path_str(s), &path_str(d))),
        Op::Link(s, d) => {
            if !sut.supports(Feature::HardLinks) {
                return Ok(());
            }
            // As linkat(2) orders its checks: both paths, the new name, then the kind.
            let want = m.get(s).cloned().and_then(|src| {
                let dd = m.dir(&d[..d.len() - 1])?;
                match src {
                    _ if dd.contains_key(name_str(d)) => Err(libc::EEXIST),
                    Entry::Dir(_) => Err(libc::EPERM),
                    Entry::File(id) => m.insert(d, Entry::File(id)),
                }
            });
            (want, sut.link(&path_str(s), &path_str(d)))
        }
        Op::Unlink(p) | Op::UnlinkOpen(p) => {
            let ps = path_str(p);
            let want = match m.get(p) {
                Err(errno) => Err(errno),
                Ok(Entry::Dir(_)) => Err(libc::EISDIR),
                Ok(Entry::File(_)) => Ok(()),
            };
            let open_too = matches!(op, Op::UnlinkOpen(_)) && sut.supports(Feature::UnlinkOpen);
            let open = match &want {
                Ok(()) if open_too => {
                    let id = m.file(p).unwrap().unwrap();
                    let fh = must(sut.open(&ps, false), "open", op)?;
                    Some((m.files[id].clone(), fh))
                }
                _ => None,
            };
            if want.is_ok() {
                m.remove(p);
            }
            let got = sut.unlink(&ps);
            if let Some((content, fh)) = open {
                let back = read_all(sut, fh, content.len() as u64, op)?;
                must(sut.close(fh), "close", op)?;
                prop_assert!(
                    back == content,
                    "an unlinked open file lost its bytes: {:?}",
                    op
                );
            }
            (want, got)
        }
        Op::Rmdir(p) => {
            let want = match m.get(p) {
                Err(errno) => Err(errno),
                Ok(Entry::File(_)) => Err(libc::ENOTDIR),
                Ok(Entry::Dir(d)) if !d.is_empty() => Err(libc::ENOTEMPTY),
                Ok(Entry::Dir(_)) => Ok(()),
            };
            if want.is_ok() {
                m.remove(p);
            }
            (want, sut.rmdir(&path_str(p)))
        }
        Op::Reopen => {
            sut.reopen();
            (Ok(()), Ok(()))
        }
    };
    prop_assert_eq!(got, want, "{:?}", op);
    Ok(())
}

/// Every listing, kind, size, content and link count of the system equals the model's,
/// and the names of one file (hard links) share one inode.
pub fn check<S: Sut>(sut: &mut S, m: &Model, after: &Op) -> Result<(), TestCaseError> {
    // File id → (its inode, its link count, the first path seen, the names counted).
    let mut files: HashMap<usize, (u64, u32, String, u32)> = HashMap::new();
    let mut stack: Vec<(String, &BTreeMap<&'static str, Entry>)> = vec![(String::new(), &m.root)];
    while let Some((at, dir)) = stack.pop() {
        let mut listed = must(sut.readdir(&at), "readdir", after)?;
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        let want: Vec<(String, FileKind)> = dir
            .iter()
            .map(|(n, e)| {
                let k = match e {
                    Entry::File(_) => FileKind::File,
                    Entry::Dir(_) => FileKind::Dir,
                };
                (n.to_string(), k)
            })
            .collect();
        prop_assert_eq!(&listed, &want, "listing of /{} after {:?}", at, after);
        for (n, e) in dir {
            let p = if at.is_empty() {
                n.to_string()
            } else {
                format!("{at}/{n}")
            };
            let st = must(sut.stat(&p), "stat", after)?;
            match e {
                Entry::Dir(sub) => {
                    prop_assert_eq!(st.kind, FileKind::Dir, "kind of /{}", p);
                    stack.push((p, sub));
                }
                Entry::File(id) => {
                    prop_assert_eq!(st.kind, FileKind::File, "kind of /{}", p);
                    let seen = files
                        .entry(*id)
                        .or_insert_with(|| (st.ino, st.nlink, p.clone(), 0));
                    seen.3 += 1;
                    prop_assert_eq!(seen.0, st.ino, "hard links /{} and /{} differ", &seen.2, p);
                    let content = &m.files[*id];
                    prop_assert_eq!(
                        st.size,
                        content.len() as u64,
                        "size of /{} after {:?}",
                        p,
                        after
                    );
                    let fh = must(sut.open(&p, false), "open", after)?;
                    let back = read_all(sut, fh, st.size, after)?;
                    must(sut.close(fh), "close", after)?;
                    if &back != content {
                        let at = back.iter().zip(content).position(|(a, b)| a != b);
                        prop_assert!(
                            false,
                            "content of /{} differs (first at {:?}) after {:?}",
                            p,
                            at,
                            after
                        );
                    }
                }
            }
        }
    }
    for (nlink, path, names) in files.values().map(|f| (f.1, &f.2, f.3)) {
        prop_assert_eq!(nlink, names, "link count of /{}", path);
    }
    Ok(())
}

/// The case count: the environment variable `var` if set, else `default`.
pub fn cases(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs `cases` random sequences, each on a fresh system from `new`, and panics with the
/// shrunk sequence if one fails. Seeds of failures are kept in
/// `<source_file without .rs>.proptest-regressions` (pass `file!()`) and replayed first.
pub fn run<S: Sut>(name: &str, cases: u32, source_file: &'static str, new: impl Fn() -> S) {
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(source_file),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    runner
        .run(&ops(), |ops| {
            let mut sut = new();
            let mut m = Model::default();
            for op in &ops {
                step(&mut sut, &mut m, op)?;
                check(&mut sut, &m, op)?;
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "{name}: {cases} sequences in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

mod on_ops;
pub use on_ops::{Face, OnOps};
