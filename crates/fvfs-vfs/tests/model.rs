//! A reference model of the engine's POSIX semantics that needs no root and no FUSE:
//! random sequences of namespace and data operations run on `Vfs` (real SQLite metadata,
//! a real block store on a local directory) and on an in-memory tree. Every operation's
//! outcome (success or its errno) must match the model's, and after every operation
//! every listing, every file's bytes, size and link count must match too.
//!
//! Operations: create, mkdir, write at an offset (holes included), write + fsync,
//! truncate, rename (files and directories, over files, over empty and non-empty
//! directories, into its own subtree), link, unlink, unlink while a handle is open (the
//! handle still reads the bytes), rmdir, and reopening the engine from its metadata.
//!
//! Cases per run: `FVFS_MODEL_CASES` (default 10,000 sequences of up to 23 operations,
//! about 80 s on 2 cores).
//! A failing sequence is shrunk and its seed kept in `tests/model.proptest-regressions`,
//! which is committed: every later run replays it first.

use fvfs_chunk::{BlockStore, BlockStoreConfig};
use fvfs_meta::{MetaStore, RenameFlags};
use fvfs_tier::{Tier, TierSpec};
use fvfs_types::{
    CdcParams, Compression, FileKind, Ino, Settings, TierSettings, FORMAT_VERSION, ROOT_INO,
};
use fvfs_vfs::{Attr, Ctx, OpenFlags, Vfs, VfsConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

const NAMES: [&str; 3] = ["a", "b", "c"];
const RW: OpenFlags = OpenFlags::READ_WRITE;
const RO: OpenFlags = OpenFlags::READ;

/// A path of one or two names from [`NAMES`].
type P = Vec<usize>;

#[derive(Clone, Debug)]
enum Op {
    Create(P),
    Mkdir(P),
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

fn op() -> impl Strategy<Value = Op> {
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

fn name(p: &P) -> &'static [u8] {
    NAMES[*p.last().unwrap()].as_bytes()
}

// ---------------------------------------------------------------------------------------
// The model

#[derive(Clone, Debug)]
enum Entry {
    File(usize),
    Dir(BTreeMap<&'static str, Entry>),
}

#[derive(Default)]
struct Model {
    root: BTreeMap<&'static str, Entry>,
    /// Contents by file id (hard links share one id).
    files: Vec<Vec<u8>>,
}

type R<T = ()> = Result<T, i32>;

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

fn name_str(p: &P) -> &'static str {
    NAMES[*p.last().unwrap()]
}

fn bytes(len: usize, b: u8) -> Vec<u8> {
    (0..len).map(|i| b.wrapping_add(i as u8)).collect()
}

// ---------------------------------------------------------------------------------------
// The engine

struct Env {
    _dir: tempfile::TempDir,
    url: String,
    tier: PathBuf,
    vfs: Option<Arc<Vfs>>,
}

fn settings(loc: &str) -> Settings {
    Settings {
        uuid: "6f1c1d6e-0000-4000-8000-00000000000a".parse().unwrap(),
        name: "model".into(),
        format_version: FORMAT_VERSION,
        cdc: CdcParams::default(),
        compression: Compression::Zstd,
        storage: vec![loc.into()],
        created: 0,
        tiers: vec![TierSettings {
            name: "t0".into(),
            location: loc.into(),
            high_watermark: None,
            low_watermark: None,
            durable: true,
            keep_copy: false,
        }],
    }
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let tier = dir.path().join("tier");
        std::fs::create_dir(&tier).unwrap();
        let url = format!("sqlite://{}/meta.db", dir.path().display());
        let meta = fvfs_meta::open(&url, true).unwrap();
        meta.format(
            &settings(&tier.display().to_string()),
            0,
            0,
            fvfs_vfs::now_ns(),
        )
        .unwrap();
        let mut e = Env {
            _dir: dir,
            url,
            tier,
            vfs: None,
        };
        e.open(meta);
        e
    }
    fn open(&mut self, meta: Arc<dyn MetaStore>) {
        let loc = self.tier.display().to_string();
        let t = Tier::open(&TierSpec::parse(&loc).unwrap()).unwrap();
        let cfg = BlockStoreConfig {
            compression: Compression::Zstd,
            mem_cache_bytes: 0,
            disk_cache: None,
            upload_concurrency: 2,
        };
        let store = Arc::new(BlockStore::with_tiers(vec![t], 0, cfg).unwrap());
        let cfg = VfsConfig {
            purge_orphans: true,
            ..VfsConfig::default()
        };
        self.vfs = Some(Vfs::new(meta, store, cfg).unwrap());
    }
    /// Drops the engine and builds a new one from the metadata on disk.
    fn reopen(&mut self) {
        let old = self.vfs.take().unwrap();
        assert_eq!(Arc::strong_count(&old), 1, "the engine is still referenced");
        drop(old);
        let meta = fvfs_meta::open(&self.url, false).unwrap();
        self.open(meta);
    }
    fn vfs(&self) -> &Vfs {
        self.vfs.as_ref().unwrap()
    }
    fn walk(&self, comps: &[usize]) -> R<Attr> {
        let v = self.vfs();
        let mut a = v.getattr(ROOT_INO).map_err(|e| e.errno())?;
        for &c in comps {
            if a.kind != FileKind::Dir {
                return Err(libc::ENOTDIR);
            }
            a = v
                .lookup(a.ino, NAMES[c].as_bytes())
                .map_err(|e| e.errno())?;
        }
        Ok(a)
    }
    fn parent(&self, p: &P) -> R<Attr> {
        let a = self.walk(&p[..p.len() - 1])?;
        if a.kind != FileKind::Dir {
            return Err(libc::ENOTDIR);
        }
        Ok(a)
    }
    async fn read_all(&self, fh: u64, size: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let got = self
                .vfs()
                .read(fh, out.len() as u64, 1 << 20)
                .await
                .unwrap();
            if got.is_empty() {
                break;
            }
            out.extend_from_slice(&got);
            assert!(out.len() as u64 <= size, "read past the size {size}");
        }
        out
    }
}

/// Runs `op` on the model and the engine; both outcomes must be equal.
async fn step(env: &mut Env, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let e = |r: fvfs_vfs::Result<()>| r.map_err(|e| e.errno());
    let ctx = Ctx::root();
    let (want, got): (R, R) = match op {
        Op::Create(p) => {
            let id = m.files.len();
            let want = m.insert(p, Entry::File(id));
            if want.is_ok() {
                m.files.push(Vec::new());
            }
            let got = async {
                let d = env.parent(p)?;
                let v = env.vfs();
                let (_, fh) = v
                    .create(ctx, d.ino, name(p), 0o644, 0, libc::O_RDWR)
                    .map_err(|e| e.errno())?;
                e(v.release(fh).await)
            }
            .await;
            (want, got)
        }
        Op::Mkdir(p) => {
            let want = m.insert(p, Entry::Dir(BTreeMap::new()));
            let got = async {
                let d = env.parent(p)?;
                e(env.vfs().mkdir(ctx, d.ino, name(p), 0o755, 0).map(drop))
            }
            .await;
            (want, got)
        }
        Op::Write(p, off, len, b) | Op::WriteSync(p, off, len, b) => {
            let sync = matches!(op, Op::WriteSync(..));
            let id = match m.file(p) {
                Ok(Some(id)) => id,
                Ok(None) => return Ok(()), // a directory: open(2) for writing is EISDIR in the kernel
                Err(errno) => {
                    prop_assert_eq!(env.walk(p).map(drop), Err(errno), "{:?}", op);
                    return Ok(());
                }
            };
            let data = bytes(*len, *b);
            m.write(id, *off, &data);
            let a = env.walk(p).unwrap();
            let v = env.vfs();
            let fh = v.open(a.ino, RW).unwrap();
            let n = v.write(fh, *off, &data).await.unwrap();
            prop_assert_eq!(n as usize, data.len());
            if sync {
                v.fsync(fh).await.unwrap();
            }
            v.release(fh).await.unwrap();
            (Ok(()), Ok(()))
        }
        Op::Truncate(p, size) => {
            let id = match m.file(p) {
                Ok(Some(id)) => id,
                Ok(None) => return Ok(()),
                Err(errno) => {
                    prop_assert_eq!(env.walk(p).map(drop), Err(errno), "{:?}", op);
                    return Ok(());
                }
            };
            m.files[id].resize(*size as usize, 0);
            let a = env.walk(p).unwrap();
            let got = e(env.vfs().truncate(a.ino, *size).await.map(drop));
            (Ok(()), got)
        }
        Op::Rename(s, d) => {
            let want = m.rename(s, d);
            let got = async {
                let sp = env.parent(s)?;
                let dp = env.parent(d)?;
                e(env
                    .vfs()
                    .rename(sp.ino, name(s), dp.ino, name(d), RenameFlags::default()))
            }
            .await;
            (want, got)
        }
        Op::Link(s, d) => {
            // As linkat(2) orders its checks: both paths, the new name, then the kind.
            let want = m.get(s).cloned().and_then(|src| {
                let dd = m.dir(&d[..d.len() - 1])?;
                match src {
                    _ if dd.contains_key(name_str(d)) => Err(libc::EEXIST),
                    Entry::Dir(_) => Err(libc::EPERM),
                    Entry::File(id) => m.insert(d, Entry::File(id)),
                }
            });
            let got = async {
                let a = env.walk(s)?;
                let dp = env.parent(d)?;
                e(env.vfs().link(a.ino, dp.ino, name(d)).map(drop))
            }
            .await;
            (want, got)
        }
        Op::Unlink(p) | Op::UnlinkOpen(p) => {
            let want = match m.get(p) {
                Err(errno) => Err(errno),
                Ok(Entry::Dir(_)) => Err(libc::EISDIR),
                Ok(Entry::File(_)) => Ok(()),
            };
            let open = match (&want, op) {
                (Ok(()), Op::UnlinkOpen(_)) => {
                    let id = m.file(p).unwrap().unwrap();
                    let a = env.walk(p).unwrap();
                    Some((m.files[id].clone(), env.vfs().open(a.ino, RO).unwrap()))
                }
                _ => None,
            };
            if want.is_ok() {
                m.remove(p);
            }
            let got = async {
                let d = env.parent(p)?;
                e(env.vfs().unlink(d.ino, name(p)))
            }
            .await;
            if let Some((content, fh)) = open {
                let back = env.read_all(fh, content.len() as u64).await;
                env.vfs().release(fh).await.unwrap();
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
            let got = async {
                let d = env.parent(p)?;
                e(env.vfs().rmdir(d.ino, name(p)))
            }
            .await;
            (want, got)
        }
        Op::Reopen => {
            env.reopen();
            (Ok(()), Ok(()))
        }
    };
    prop_assert_eq!(got, want, "{:?}", op);
    Ok(())
}

/// Every listing, size, content and link count of the engine equals the model's.
async fn check(env: &Env, m: &Model) -> Result<(), TestCaseError> {
    let mut inos: HashMap<usize, Ino> = HashMap::new();
    let mut links: HashMap<usize, u32> = HashMap::new();
    let mut stack: Vec<(Ino, &BTreeMap<&'static str, Entry>, String)> =
        vec![(ROOT_INO, &m.root, String::new())];
    let v = env.vfs();
    while let Some((ino, dir, at)) = stack.pop() {
        let listed: Vec<(String, FileKind)> = v
            .readdir(ino, 0, 1000)
            .unwrap()
            .into_iter()
            .filter(|d| d.name != b"." && d.name != b"..")
            .map(|d| (String::from_utf8(d.name).unwrap(), d.kind))
            .collect();
        let mut listed = listed;
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
        prop_assert_eq!(&listed, &want, "listing of {}/", at);
        for (n, e) in dir {
            let a = v.lookup(ino, n.as_bytes()).unwrap();
            let p = format!("{at}/{n}");
            match e {
                Entry::Dir(sub) => stack.push((a.ino, sub, p)),
                Entry::File(id) => {
                    *links.entry(*id).or_default() += 1;
                    if let Some(prev) = inos.insert(*id, a.ino) {
                        prop_assert_eq!(prev, a.ino, "hard links of {} differ", p);
                    }
                    let content = &m.files[*id];
                    prop_assert_eq!(a.size, content.len() as u64, "size of {}", p);
                    let fh = v.open(a.ino, RO).unwrap();
                    let back = env.read_all(fh, a.size).await;
                    v.release(fh).await.unwrap();
                    prop_assert!(&back == content, "content of {}", p);
                }
            }
        }
    }
    for (id, n) in links {
        let a = v.getattr(inos[&id]).unwrap();
        prop_assert_eq!(a.nlink, n, "link count of file {}", id);
    }
    Ok(())
}

#[test]
fn the_engine_matches_the_model() {
    let cases = std::env::var("FVFS_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    runner
        .run(&prop::collection::vec(op(), 1..24), |ops| {
            rt.block_on(async {
                let mut env = Env::new();
                let mut m = Model::default();
                for op in &ops {
                    step(&mut env, &mut m, op).await?;
                    check(&env, &m).await?;
                }
                Ok(())
            })
        })
        .unwrap();
    eprintln!(
        "model: {cases} sequences in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
