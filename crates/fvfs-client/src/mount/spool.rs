//! The spool of uploads the daemon could not take: a closed file's content that must reach
//! the daemon, kept on local disk until it does.
//!
//! Layout (`<cache dir>/pending/`, mode 0700): for each entry `KEY`, `KEY.json` holds its
//! [`SpoolMeta`] (destination path, mode, owner, times, length, BLAKE3 and the version
//! `V`, its save time) and `KEY.V.data` the file's whole content. A save writes the new
//! version's data, then its `.json`, each to a temporary name, fsynced and renamed, fsyncs
//! the directory, and only then deletes older versions' data: at any instant `KEY.json`
//! names a whole data file, so a crash mid-save leaves the previous version intact. Data
//! files no `.json` names (superseded, or from a save that never finished, which therefore
//! never let a `close` succeed) are deleted with the session's leftovers. An entry whose
//! data does not match its length and hash is reported, never uploaded. Entries are plain
//! files so that a user can recover one by hand.
//!
//! Keys are `SESSION-INO`. A running mount holds an exclusive `flock` on `SESSION.lock`
//! for its lifetime, so another mount sharing the cache directory never takes over the
//! entries of a live one; those of an ended session are anyone's to upload.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where a spooled content goes and with which attributes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpoolMeta {
    /// Daemon path of the file (its name at the time it was spooled).
    pub path: String,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime_ns: Option<i64>,
    pub mtime_ns: Option<i64>,
    pub len: u64,
    /// BLAKE3 (hex) of the content.
    pub blake3: String,
    /// When it was spooled (ns since the epoch).
    pub spooled_ns: i64,
}

/// One complete entry found on disk.
#[derive(Debug)]
pub struct SpoolEntry {
    pub key: String,
    pub meta: SpoolMeta,
    pub data: PathBuf,
}

pub struct Spool {
    dir: PathBuf,
    /// This run's session name and its held lock.
    session: String,
    _lock: File,
}

impl Spool {
    /// Opens (creating) the spool directory for a new session named `session` (no `-`).
    pub fn open(dir: &Path, session: &str) -> std::io::Result<Spool> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let lock = new_file(&dir.join(format!("{session}.lock")))?;
        if !try_lock(&lock)? {
            return Err(std::io::Error::other(format!(
                "spool session {session} is already in use"
            )));
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            session: session.to_string(),
            _lock: lock,
        })
    }

    /// The key of this session's entry for inode `ino`.
    pub fn key(&self, ino: u64) -> String {
        format!("{}-{ino}", self.session)
    }

    /// Whether entry (or temporary) `name` belongs to a running mount, this one included.
    pub fn live(&self, name: &str) -> bool {
        name.split('-').next() == Some(self.session.as_str()) || live(&self.dir, name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data_path(&self, key: &str, meta: &SpoolMeta) -> PathBuf {
        // The same name `scan` derives.
        self.dir.join(format!("{key}.{:x}.data", meta.spooled_ns))
    }

    /// Removes the files of entry `key` (all if `keep` is None) but the one named `keep`.
    fn remove_data(&self, key: &str, keep: Option<&Path>) -> std::io::Result<()> {
        let prefix = format!("{key}.");
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with(&prefix) || !name.ends_with(".data") {
                continue;
            }
            if keep.is_some_and(|k| k.file_name() == Some(e.file_name().as_os_str())) {
                continue;
            }
            match std::fs::remove_file(e.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Saves the first `meta.len` bytes of `src` as entry `key`, replacing any earlier
    /// version of it (`meta.spooled_ns` must differ from theirs). Durable when it returns.
    pub fn save(&self, key: &str, src: &File, meta: &SpoolMeta) -> std::io::Result<PathBuf> {
        let data = self.data_path(key, meta);
        let tmp = data.with_extension("data.tmp");
        {
            let out = new_file(&tmp)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0u64;
            while off < meta.len {
                let n = (meta.len - off).min(buf.len() as u64) as usize;
                src.read_exact_at(&mut buf[..n], off)?;
                out.write_all_at(&buf[..n], off)?;
                off += n as u64;
            }
            out.sync_all()?;
        }
        std::fs::rename(&tmp, &data)?;
        let tmp = self.dir.join(format!("{key}.json.tmp"));
        {
            let mut out = new_file(&tmp)?;
            out.write_all(&serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?)?;
            out.sync_all()?;
        }
        std::fs::rename(&tmp, self.meta_path(key))?;
        File::open(&self.dir)?.sync_all()?;
        self.remove_data(key, Some(&data))?;
        Ok(data)
    }

    /// Forgets entry `key` (after its upload).
    pub fn remove(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.meta_path(key)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.remove_data(key, None)
    }

    /// Every complete entry of a session that is not running, oldest first. Leftover
    /// temporaries of an interrupted save and lock files of ended sessions without entries
    /// are removed; unreadable entries are logged and left for the user.
    pub fn list_orphans(&self) -> std::io::Result<Vec<SpoolEntry>> {
        let mut out = Vec::new();
        let mut locks = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let name = e?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(session) = name.strip_suffix(".lock") {
                locks.push(session.to_string());
                continue;
            }
            if self.live(name) {
                continue;
            }
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(self.dir.join(name));
                continue;
            }
            let Some(key) = name.strip_suffix(".json") else {
                continue;
            };
            let meta = std::fs::read(self.dir.join(name))
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<SpoolMeta>(&b).map_err(|e| e.to_string()));
            match meta {
                Ok(meta) => out.push(SpoolEntry {
                    key: key.to_string(),
                    data: self.data_path(key, &meta),
                    meta,
                }),
                Err(error) => {
                    tracing::error!(entry = %self.dir.join(name).display(), %error, "unreadable pending upload left in the spool")
                }
            }
        }
        // Data of ended sessions that no entry names.
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".data")
                && !self.live(&name)
                && !out
                    .iter()
                    .any(|o| o.data.file_name() == Some(e.file_name().as_os_str()))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
        for session in locks {
            let prefix = format!("{session}-");
            let has_entries = std::fs::read_dir(&self.dir)?
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix));
            if !has_entries && !self.live(&prefix) {
                let _ = std::fs::remove_file(self.dir.join(format!("{session}.lock")));
            }
        }
        out.sort_by_key(|e| e.meta.spooled_ns);
        Ok(out)
    }
}

/// One entry as `fvfsc pending` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PendingUpload {
    /// Daemon path the content goes to.
    pub path: String,
    pub len: u64,
    /// When it was spooled (ns since the epoch).
    pub spooled_ns: i64,
    /// A running mount is retrying it (else the next mount of this cache uploads it).
    pub retrying: bool,
    /// The file that holds the content.
    pub data: PathBuf,
}

/// Every entry in the spool directory `dir`, oldest first, without taking any (read only:
/// nothing is created, removed or locked for long).
pub fn scan(dir: &Path) -> std::io::Result<Vec<PendingUpload>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name();
        let Some(key) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        let Ok(meta) = std::fs::read(e.path())
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<SpoolMeta>(&b).map_err(|e| e.to_string()))
        else {
            continue;
        };
        let retrying = live(dir, key);
        out.push(PendingUpload {
            path: meta.path.clone(),
            len: meta.len,
            spooled_ns: meta.spooled_ns,
            retrying,
            data: dir.join(format!("{key}.{:x}.data", meta.spooled_ns)),
        });
    }
    out.sort_by_key(|p| p.spooled_ns);
    Ok(out)
}

/// Whether the session of entry (or file) `name` in `dir` is held by a running mount: its
/// lock file exists and cannot be locked.
fn live(dir: &Path, name: &str) -> bool {
    let session = name.split('-').next().unwrap_or_default();
    match File::open(dir.join(format!("{session}.lock"))) {
        Ok(f) => !try_lock(&f).unwrap_or(false),
        Err(_) => false,
    }
}

/// Takes an exclusive `flock` on `f` without waiting; false if another holder has it.
fn try_lock(f: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

impl Drop for Spool {
    /// A session that leaves no entry leaves no lock file.
    fn drop(&mut self) {
        let prefix = format!("{}-", self.session);
        let empty = std::fs::read_dir(&self.dir).is_ok_and(|d| {
            !d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        });
        if empty {
            let _ = std::fs::remove_file(self.dir.join(format!("{}.lock", self.session)));
        }
    }
}

fn new_file(p: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str, data: &[u8], at: i64) -> SpoolMeta {
        SpoolMeta {
            path: path.into(),
            mode: Some(0o640),
            uid: Some(1),
            gid: Some(2),
            atime_ns: None,
            mtime_ns: Some(5),
            len: data.len() as u64,
            blake3: blake3::hash(data).to_hex().to_string(),
            spooled_ns: at,
        }
    }

    #[test]
    fn entries_of_ended_sessions_are_found_and_live_ones_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("pending");
        let one = Spool::open(&dir, "s1").unwrap();
        let src = tempfile::tempfile().unwrap();
        src.write_all_at(b"first version", 0).unwrap();
        let (a, b) = (one.key(7), one.key(8));
        one.save(&a, &src, &meta("x/a", b"first version", 2))
            .unwrap();
        src.write_all_at(b"second", 0).unwrap();
        one.save(&b, &src, &meta("b", b"second", 1)).unwrap();
        one.save(&a, &src, &meta("x/a", b"second", 3)).unwrap();
        // An interrupted save leaves a temporary, which does not count as an entry, and
        // maybe a whole data file that no entry names yet.
        std::fs::write(dir.join(format!("{a}.9.data.tmp")), b"junk").unwrap();
        std::fs::write(dir.join(format!("{a}.9.data")), b"never acknowledged").unwrap();
        // While session 1 runs, session 2 neither sees nor takes its entries.
        let two = Spool::open(&dir, "s2").unwrap();
        assert!(Spool::open(&dir, "s2").is_err(), "a session is locked");
        assert!(two.list_orphans().unwrap().is_empty());
        assert!(
            one.list_orphans().unwrap().is_empty(),
            "its own are not orphans"
        );
        let seen = scan(&dir).unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|p| p.retrying && p.data.exists()));
        assert_eq!((seen[1].path.as_str(), seen[1].len), ("x/a", 6));
        drop(one);
        assert!(scan(&dir).unwrap().iter().all(|p| !p.retrying));
        let got = two.list_orphans().unwrap();
        assert_eq!(
            got.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            [b.as_str(), a.as_str()]
        );
        assert_eq!(got[1].meta, meta("x/a", b"second", 3));
        assert_eq!(std::fs::read(&got[1].data).unwrap(), b"second");
        assert!(!dir.join(format!("{a}.9.data.tmp")).exists());
        assert!(!dir.join(format!("{a}.9.data")).exists());
        assert!(
            !dir.join(format!("{a}.2.data")).exists(),
            "the superseded version went"
        );
        two.remove(&a).unwrap();
        two.remove(&a).unwrap();
        assert_eq!(two.list_orphans().unwrap().len(), 1);
        assert!(dir.join("s1.lock").exists(), "s1 still has an entry");
        two.remove(&b).unwrap();
        assert!(two.list_orphans().unwrap().is_empty());
        assert!(
            !dir.join("s1.lock").exists(),
            "an ended, empty session's lock goes"
        );
        drop(two);
        assert!(!dir.join("s2.lock").exists());
    }
}
