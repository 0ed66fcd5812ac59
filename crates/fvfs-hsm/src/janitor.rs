//! The janitor: a policy in the style of Robinhood that frees space on the managed
//! filesystems. When a managed directory's filesystem is fuller than `high_pct`, it
//! archives and releases qualifying files, oldest access first, until the filesystem is
//! under `low_pct`, at most `bytes_per_sec` a second, two files in flight (one being
//! archived while the other's durable copy is verified and it is released).
//!
//! A file qualifies when it is a regular file on the directory's filesystem (the walk
//! does not cross mounts or follow symlinks), not pinned, not already a stub, not
//! accessed for `min_atime_age` nor modified for `min_mtime_age`, at least `min_size`
//! bytes, its path relative to the directory matches one of `include` (every file when
//! empty) and none of `exclude`, and its extension is one of `extensions` (any when
//! empty).
//!
//! Invariants: the janitor releases only through `Hsm::release`, so everything release
//! checks (durable and verified payload, write lease, unchanged file) holds for it too;
//! a file that fails a step is skipped for this pass and logged, never retried in a loop.

use crate::error::{HsmError, Result};
use crate::{marker, Hsm};
use futures::StreamExt;
use fvfs_vfs::worker::{Worker, WorkerState};
use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// `[hsm.janitor]`.
#[derive(Clone, Debug)]
pub struct JanitorPolicy {
    /// Start when the managed filesystem is fuller than this (percent of its blocks).
    pub high_pct: f64,
    /// Stop once it is at or under this.
    pub low_pct: f64,
    pub min_atime_age: Duration,
    pub min_mtime_age: Duration,
    pub min_size: u64,
    /// Globs on the path relative to the managed directory (`*`, `?`, `**`).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Extensions without the dot, compared without case.
    pub extensions: Vec<String>,
    /// Bytes archived per second at most.
    pub bytes_per_sec: u64,
    /// How often usage is checked.
    pub interval: Duration,
}

impl Default for JanitorPolicy {
    fn default() -> Self {
        JanitorPolicy {
            high_pct: 90.0,
            low_pct: 80.0,
            min_atime_age: Duration::from_secs(30 * 86_400),
            min_mtime_age: Duration::from_secs(30 * 86_400),
            min_size: 1 << 20,
            include: Vec::new(),
            exclude: Vec::new(),
            extensions: Vec::new(),
            bytes_per_sec: 200 << 20,
            interval: Duration::from_secs(300),
        }
    }
}

/// What one janitor pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JanitorRun {
    pub released: u64,
    pub released_bytes: u64,
    pub skipped: u64,
    /// Usage of each managed filesystem before and after, percent.
    pub usage: Vec<(PathBuf, f64, f64)>,
}

/// Used share of the filesystem holding `dir`, percent.
pub fn usage_pct(dir: &Path) -> Result<f64> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| HsmError::NotManaged(dir.to_path_buf()))?;
    // SAFETY: st is plain data the kernel fills; c is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } < 0 {
        return Err(HsmError::io(
            "statvfs",
            dir,
            std::io::Error::last_os_error(),
        ));
    }
    if st.f_blocks == 0 {
        return Ok(0.0);
    }
    Ok((st.f_blocks - st.f_bfree) as f64 * 100.0 / st.f_blocks as f64)
}

/// Shell-style match of `pat` against `text`: `*` any run without `/`, `**` any run,
/// `?` one character other than `/`.
pub fn glob(pat: &str, text: &str) -> bool {
    fn m(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => match p[2..].strip_prefix(b"/") {
                // `**/`: zero or more whole directories.
                Some(r) => (0..=t.len()).any(|i| (i == 0 || t[i - 1] == b'/') && m(r, &t[i..])),
                // `**` elsewhere: any run, slashes included.
                None => (0..=t.len()).any(|i| m(&p[2..], &t[i..])),
            },
            Some(b'*') => {
                for i in 0..=t.len() {
                    if m(&p[1..], &t[i..]) {
                        return true;
                    }
                    if i < t.len() && t[i] == b'/' {
                        return false;
                    }
                }
                false
            }
            Some(b'?') => !t.is_empty() && t[0] != b'/' && m(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && m(&p[1..], &t[1..]),
        }
    }
    m(pat.as_bytes(), text.as_bytes())
}

/// Files archived and released at once by a pass.
const IN_FLIGHT: usize = 2;

struct Candidate {
    path: PathBuf,
    atime: i64,
    size: u64,
}

impl JanitorPolicy {
    fn qualifies(&self, rel: &str, md: &std::fs::Metadata, now: i64) -> bool {
        let secs = |d: Duration| d.as_secs() as i64;
        if !md.file_type().is_file()
            || md.len() < self.min_size
            || now - md.atime() < secs(self.min_atime_age)
            || now - md.mtime() < secs(self.min_mtime_age)
        {
            return false;
        }
        if !self.include.is_empty() && !self.include.iter().any(|g| glob(g, rel)) {
            return false;
        }
        if self.exclude.iter().any(|g| glob(g, rel)) {
            return false;
        }
        if !self.extensions.is_empty() {
            let ext = Path::new(rel)
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if !self.extensions.iter().any(|e| e.to_lowercase() == ext) {
                return false;
            }
        }
        true
    }
}

/// Regular files under `dir` on its filesystem, with their metadata (no symlinks).
fn walk(dir: &Path, dev: u64, out: &mut Vec<(PathBuf, std::fs::Metadata)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.dev() != dev {
            continue;
        }
        if md.is_dir() {
            walk(&p, dev, out);
        } else if md.is_file() {
            out.push((p, md));
        }
    }
}

impl Hsm {
    /// One janitor pass over every managed directory.
    pub async fn janitor_pass(&self, policy: &JanitorPolicy) -> Result<JanitorRun> {
        let mut run = JanitorRun::default();
        for d in self.dirs()? {
            let dir = PathBuf::from(&d.path);
            let before = usage_pct(&dir)?;
            if before <= policy.high_pct {
                run.usage.push((dir, before, before));
                continue;
            }
            let dev = std::fs::metadata(&dir)
                .map_err(|e| HsmError::io("stat", &dir, e))?
                .dev();
            let now = fvfs_vfs::now_ns() / 1_000_000_000;
            let mut files = Vec::new();
            walk(&dir, dev, &mut files);
            let mut cands: Vec<Candidate> = files
                .into_iter()
                .filter(|(p, md)| {
                    let rel = p.strip_prefix(&dir).unwrap_or(p).to_string_lossy();
                    policy.qualifies(&rel, md, now)
                })
                .map(|(path, md)| Candidate {
                    path,
                    atime: md.atime() * 1_000_000_000 + md.atime_nsec(),
                    size: md.len(),
                })
                .collect();
            cands.sort_by_key(|c| c.atime);
            let start = Instant::now();
            let mut archived_bytes = 0u64;
            // Two files in flight, oldest first: the next file is read, cut and uploaded
            // while the durable copy of the previous one is read back and it is released.
            // Usage is looked at before each file is taken, so a pass stops at most one
            // file past the low mark.
            let low = policy.low_pct;
            let over_low = |_: &Candidate| {
                futures::future::ready(usage_pct(&dir).map(|u| u > low).unwrap_or(false))
            };
            let mut done = futures::stream::iter(cands)
                .take_while(over_low)
                .map(|c| async move {
                    let r = self.janitor_one(&c.path).await;
                    (c, r)
                })
                .buffered(IN_FLIGHT);
            while let Some((c, r)) = done.next().await {
                match r {
                    Ok(true) => {
                        run.released += 1;
                        run.released_bytes += c.size;
                    }
                    Ok(false) => run.skipped += 1,
                    Err(e) => {
                        tracing::info!(path = %c.path.display(), error = %e, "janitor skipped a file");
                        run.skipped += 1;
                    }
                }
                // The rate bound: never ahead of bytes_per_sec since the pass started.
                archived_bytes += c.size;
                if policy.bytes_per_sec > 0 {
                    let due = Duration::from_secs_f64(
                        archived_bytes as f64 / policy.bytes_per_sec as f64,
                    );
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            drop(done);
            let after = usage_pct(&dir)?;
            tracing::info!(dir = %dir.display(), before, after, released = run.released, "janitor pass");
            run.usage.push((dir, before, after));
        }
        Ok(run)
    }

    /// Archives `path` if needed, makes its payload durable, and releases it. False when
    /// it is pinned or already a stub.
    async fn janitor_one(&self, path: &Path) -> Result<bool> {
        let fd = crate::open_file(path, false)?;
        if let Some(m) = marker::read(fd.as_fd(), path)? {
            if m.released || self.file(m.id).map(|r| r.pinned).unwrap_or(false) {
                return Ok(false);
            }
        }
        drop(fd);
        // Straight to the durable tier: the release that follows needs the copy there,
        // and a copy on a hotter tier would only be replicated and then evicted.
        self.archive_to(path, fvfs_vfs::Placement::Durable).await?;
        let (_, canon, _) = self.locate(path)?;
        match self.release(&canon).await {
            Err(HsmError::NotDurable(_)) => {
                self.tiering.request_flush();
                self.tiering.replicate_all(Duration::from_secs(300)).await?;
                self.release(&canon).await?;
            }
            other => {
                other?;
            }
        }
        Ok(true)
    }
}

/// Runs janitor passes every `interval`.
pub struct JanitorWorker {
    hsm: Weak<Hsm>,
    policy: JanitorPolicy,
}

impl JanitorWorker {
    pub fn new(hsm: &Arc<Hsm>, policy: JanitorPolicy) -> JanitorWorker {
        JanitorWorker {
            hsm: Arc::downgrade(hsm),
            policy,
        }
    }
}

impl Worker for JanitorWorker {
    type Error = HsmError;
    fn name(&self) -> String {
        "hsm-janitor".into()
    }
    fn work(&mut self) -> futures::future::BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            let Some(hsm) = self.hsm.upgrade() else {
                return Ok(WorkerState::Done);
            };
            hsm.janitor_pass(&self.policy).await?;
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(self.policy.interval))
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("*.mkv", "a.mkv"));
        assert!(!glob("*.mkv", "d/a.mkv"), "* stops at /");
        assert!(glob("**/*.mkv", "d/e/a.mkv"));
        assert!(glob("**/*.mkv", "a.mkv"));
        assert!(glob("films/**", "films/x/y.mkv"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "a/c"));
        assert!(!glob("*.mkv", "a.mp4"));
        assert!(glob("photos/*/raw/*", "photos/2024/raw/x.cr2"));
    }
}
