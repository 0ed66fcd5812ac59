//! The writeback spool: buffered writes that are still uncommitted when the process stops
//! (the tiers or the descriptors kept failing through the bounded retry) are saved to
//! files in a spool directory and committed at the next start, before anything is served.
//! docs/FORMAT.md ("Writeback spool") describes the layout, so an entry can be recovered
//! by hand.
//!
//! Invariants:
//! - A spool file is complete or absent: it is written as `.NAME.tmp`, fsynced, renamed to
//!   `NAME`, and the directory is fsynced.
//! - A spool file is removed only after its bytes are committed and the metadata synced.
//! - Spooling may run while descriptors are exhausted: the spool holds its directory and
//!   one reserve descriptor open from the start, and frees the reserve to write a file.

use crate::{OpenFlags, Result, Vfs, VfsError};
use fvfs_chunk::codec::block_id;
use fvfs_meta::MetaError;
use fvfs_types::{FileKind, Ino};
use parking_lot::Mutex;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Spool entries end with this.
pub const SPOOL_SUFFIX: &str = ".spool";
const MAGIC: &str = "fvfs-spool 1";
/// Longest header accepted when reading an entry.
const MAX_HEADER: u64 = 16 << 20;

/// The spool directory of one filesystem.
pub struct Spool {
    dir: PathBuf,
    dir_fd: File,
    reserve: Mutex<Option<File>>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> VfsError {
    VfsError::Internal(format!("{what} {}: {e}", path.display()))
}

/// One spool entry's header: the inode, its size and mtime, and the extents (file
/// offset, length, BLAKE3 of the bytes) whose bytes follow the header in order.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    ino: Ino,
    size: u64,
    mtime: i64,
    extents: Vec<(u64, u64, String)>,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut h = format!(
            "{MAGIC}\nino {}\nsize {}\nmtime_ns {}\n",
            self.ino, self.size, self.mtime
        );
        for (off, len, hash) in &self.extents {
            h.push_str(&format!("extent {off} {len} {hash}\n"));
        }
        h.push_str("data\n");
        h.into_bytes()
    }

    /// Reads a header up to and including its `data` line.
    fn read(r: &mut impl BufRead) -> std::result::Result<Header, String> {
        let mut lines = Vec::new();
        let mut limited = r.take(MAX_HEADER);
        loop {
            let mut line = String::new();
            match limited.read_line(&mut line) {
                Ok(0) => return Err("no data line".into()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
            let line = line
                .strip_suffix('\n')
                .ok_or("truncated header")?
                .to_string();
            if line == "data" {
                break;
            }
            lines.push(line);
        }
        if lines.first().map(String::as_str) != Some(MAGIC) {
            return Err(format!("not a spool entry (first line is not {MAGIC:?})"));
        }
        let mut h = Header {
            ino: 0,
            size: 0,
            mtime: 0,
            extents: Vec::new(),
        };
        let num = |v: Option<&str>| -> std::result::Result<u64, String> {
            v.and_then(|v| v.parse().ok())
                .ok_or_else(|| "bad number".to_string())
        };
        for l in &lines[1..] {
            let mut w = l.split(' ');
            match w.next() {
                Some("ino") => h.ino = num(w.next())?,
                Some("size") => h.size = num(w.next())?,
                Some("mtime_ns") => {
                    h.mtime = w.next().and_then(|v| v.parse().ok()).ok_or("bad mtime")?
                }
                Some("extent") => {
                    let off = num(w.next())?;
                    let len = num(w.next())?;
                    let hash = w.next().ok_or("extent without hash")?.to_string();
                    h.extents.push((off, len, hash));
                }
                _ => return Err(format!("unknown header line {l:?}")),
            }
        }
        if h.ino == 0 {
            return Err("no ino line".into());
        }
        Ok(h)
    }
}

impl Spool {
    /// Opens (creates, mode 0700) the spool directory and takes the reserve descriptor.
    pub fn open(dir: &Path) -> Result<Spool> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err("cannot set the mode of", dir, e))?;
        let dir_fd = File::open(dir).map_err(|e| io_err("cannot open", dir, e))?;
        let reserve = File::open("/dev/null").map_err(|e| io_err("cannot open", dir, e))?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            dir_fd,
            reserve: Mutex::new(Some(reserve)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The spool entries, oldest first.
    pub fn entries(&self) -> Result<Vec<PathBuf>> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| io_err("cannot list", &self.dir, e))?;
        let mut out: Vec<(i64, PathBuf)> = Vec::new();
        for e in rd {
            let e = e.map_err(|e| io_err("cannot list", &self.dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(SPOOL_SUFFIX) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let ns = stem
                .rsplit('-')
                .next()
                .and_then(|v| i64::from_str_radix(v, 16).ok())
                .unwrap_or(0);
            out.push((ns, e.path()));
        }
        out.sort();
        Ok(out.into_iter().map(|(_, p)| p).collect())
    }

    /// Writes one entry durably (see the module invariants); returns its path.
    fn write_entry(&self, h: &Header, extents: &[(u64, Vec<u8>)]) -> Result<PathBuf> {
        let name = format!("{}-{:x}{SPOOL_SUFFIX}", h.ino, crate::now_ns());
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        // This may need the last free descriptor: give the reserve up while writing.
        drop(self.reserve.lock().take());
        let written = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&h.encode())?;
            for (_, bytes) in extents {
                f.write_all(bytes)?;
            }
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            self.dir_fd.sync_all()
        })();
        if let Ok(f) = File::open("/dev/null") {
            *self.reserve.lock() = Some(f);
        }
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err("cannot write the spool entry", &path, e)
        })?;
        Ok(path)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| io_err("cannot remove", path, e))?;
        self.dir_fd
            .sync_all()
            .map_err(|e| io_err("cannot sync", &self.dir, e))
    }
}

impl Vfs {
    /// Writes every buffer that still holds uncommitted bytes to `spool`, one entry per
    /// inode (inodes without links are skipped: the next start purges them). Returns
    /// the entries written.
    pub async fn spool_dirty(&self, spool: &Spool) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for ino in self.handles.open_inodes() {
            let Some(st) = self.handles.state(ino) else {
                continue;
            };
            let fs = st.file.lock().await;
            let Some((size, mtime)) = fs.pending() else {
                continue;
            };
            match self.meta.getattr(ino) {
                Ok(a) if a.nlink == 0 => continue,
                Err(MetaError::NotFound) => continue,
                _ => {}
            }
            let extents = fs.extents_bytes();
            let h = Header {
                ino,
                size,
                mtime,
                extents: extents
                    .iter()
                    .map(|(off, b)| (*off, b.len() as u64, block_id(b).to_string()))
                    .collect(),
            };
            out.push(spool.write_entry(&h, &extents)?);
        }
        Ok(out)
    }

    /// Commits every spool entry (oldest first) and removes it once committed. An entry
    /// whose inode is gone (or lost its last link) is left in place and logged at ERROR.
    /// The first entry that cannot be committed stops the replay with its error (the
    /// caller should not serve: the entry stays for the next attempt). Returns the number
    /// of entries committed.
    pub async fn replay_spool(&self, spool: &Spool) -> Result<usize> {
        let mut n = 0;
        for path in spool.entries()? {
            let committed = self.replay_entry(&path).await.map_err(|e| {
                VfsError::Internal(format!(
                    "cannot commit the spooled writes of {}: {e}",
                    path.display()
                ))
            })?;
            if committed {
                spool.remove(&path)?;
                tracing::info!(file = %path.display(), "committed spooled writes");
                n += 1;
            }
        }
        Ok(n)
    }

    /// Commits one entry; false if its inode has no file to take it any more.
    async fn replay_entry(&self, path: &Path) -> Result<bool> {
        let f = File::open(path).map_err(|e| io_err("cannot open", path, e))?;
        let mut r = BufReader::new(f);
        let h = Header::read(&mut r).map_err(|e| MetaError::Corrupt(e.to_string()))?;
        match self.meta.getattr(h.ino) {
            Ok(a) if a.kind == FileKind::File && a.nlink > 0 => {}
            Ok(_) | Err(MetaError::NotFound) => {
                tracing::error!(
                    file = %path.display(),
                    ino = h.ino,
                    "the file of a spool entry is gone; the entry is left for recovery by hand"
                );
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        let fh = self.open(h.ino, OpenFlags::WRITE)?;
        let written = async {
            let st = self.handles.get(fh)?.state.clone();
            for (off, len, hash) in &h.extents {
                let mut buf = vec![0u8; *len as usize];
                r.read_exact(&mut buf)
                    .map_err(|e| io_err("cannot read", path, e))?;
                if block_id(&buf).to_string() != *hash {
                    return Err(MetaError::Corrupt(format!(
                        "extent at {off}: the bytes do not match their BLAKE3"
                    ))
                    .into());
                }
                let mut fs = st.file.lock().await;
                self.buffer_write(&st, &mut fs, *off, &buf).await?;
            }
            let mut fs = st.file.lock().await;
            let size = fs.pending().map_or(0, |p| p.0).max(h.size);
            fs.set_pending(size, h.mtime);
            crate::write::publish(&st, &fs);
            Ok::<_, VfsError>(())
        }
        .await;
        // The release commits the buffer (and fails if it cannot).
        let released = self.release(fh).await;
        written?;
        released?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            ino: 42,
            size: 1 << 40,
            mtime: -5,
            extents: vec![(0, 5, "ab".into()), (1 << 33, 7, "cd".into())],
        };
        let enc = h.encode();
        let mut bytes = enc.clone();
        bytes.extend_from_slice(b"payload");
        let mut r = std::io::Cursor::new(&bytes);
        assert_eq!(Header::read(&mut r).unwrap(), h);
        assert_eq!(r.position() as usize, enc.len());
        let text = String::from_utf8(enc).unwrap();
        assert_eq!(
            text,
            "fvfs-spool 1\nino 42\nsize 1099511627776\nmtime_ns -5\n\
             extent 0 5 ab\nextent 8589934592 7 cd\ndata\n"
        );
        for bad in [
            &b"fvfs-spool 2\nino 1\ndata\n"[..],
            b"fvfs-spool 1\nino 1\n",
            b"fvfs-spool 1\nsize 1\ndata\n",
            b"fvfs-spool 1\nino 1\nextent 0 5\ndata\n",
            b"fvfs-spool 1\nino x\ndata\n",
        ] {
            assert!(Header::read(&mut std::io::Cursor::new(bad)).is_err());
        }
    }
}
