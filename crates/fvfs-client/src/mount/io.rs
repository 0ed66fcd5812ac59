//! File contents through the client mount: create, open, read, write, flush and release.
//!
//! Invariants: reads of a handle come from the inode's local copy when one exists, else
//! from the manifest fetched at open, block by block through the verified caches. The
//! first write or truncate of an inode makes its local copy (an anonymous file in the
//! cache's `tmp/`, filled from the content at open unless the open truncated) which all
//! its handles share. A dirty copy is uploaded whole (`PUT` with its BLAKE3, so the server
//! rejects a torn body) at flush, fsync and release, with the file's current mode and
//! owner; the daemon replaces the file atomically. A copy whose inode lost its path
//! (unlinked or renamed over) is discarded, never uploaded to another file's path. A copy
//! the daemon cannot take goes to the spool and stays pending (`pending.rs`).

use crate::client::{ByteStream, ClientError};
use crate::mount::errno::{errno, io_errno};
use crate::mount::fs::{name_str, ClientFs};
use crate::mount::handles::{sort_pieces, Handle, OpenFile, Seg};
use crate::mount::pending::UploadError;
use bytes::Bytes;
use fvfs_fuse::ops::{Attr, Ctx};
use fvfs_fuse::Errno;
use fvfs_types::api::{CreateRequest, ErrorCode, Kind, Manifest, SetAttrRequest, Stat};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Bytes per chunk when hashing and uploading a local copy.
const CHUNK: u64 = 1 << 20;

impl ClientFs {
    fn fetch_manifest(&self, ino: u64) -> Result<Manifest, Errno> {
        let path = self.path(ino)?;
        let mut m = self.call("manifest", self.client.manifest(&path))?;
        sort_pieces(&mut m);
        Ok(m)
    }

    /// Creates an empty regular file (or finds the existing one unless `excl`): returns
    /// its attributes and whether it existed.
    pub(super) fn create_file(
        &self,
        req: &Ctx,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        excl: bool,
    ) -> Result<(Attr, bool), Errno> {
        let name = name_str(name)?;
        let path = self.child_path(parent, name)?;
        // The kernel's negative entry may be stale: a PUT would replace an existing file.
        match self.rt.block_on(self.client.stat(&path)) {
            Ok(st) if excl => {
                let _ = st;
                return Err(Errno::EEXIST);
            }
            Ok(st) if st.kind == Kind::Dir => return Err(Errno::EISDIR),
            Ok(st) => {
                let ino = self
                    .inodes
                    .lock()
                    .bind(parent, name, st.ino, st.kind == Kind::Dir);
                return Ok((self.attr(ino, &st), true));
            }
            Err(ClientError::Api {
                code: ErrorCode::NotFound,
                ..
            }) => {}
            Err(e) => return Err(errno("create", &e)),
        }
        let (uid, gid, _) = self.owner(req, parent)?;
        let opts = CreateRequest {
            mode: Some(mode & !umask & 0o7777),
            uid,
            gid,
            ..Default::default()
        };
        let empty = blake3::hash(b"").to_hex();
        let body: ByteStream = Box::pin(futures::stream::empty());
        let st = self.call(
            "create",
            self.client
                .put(&path, body, Some(0), Some(empty.as_str()), &opts),
        )?;
        let ino = self.inodes.lock().bind(parent, name, st.ino, false);
        Ok((self.attr(ino, &st), false))
    }

    pub(super) fn open_file(&self, ino: u64, flags: i32) -> Result<u64, Errno> {
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let trunc = write && flags & libc::O_TRUNC != 0;
        let append = flags & libc::O_APPEND != 0;
        let has_copy = self
            .handles
            .file(ino)
            .is_some_and(|s| s.lock().temp.is_some());
        let manifest = if trunc || has_copy {
            None
        } else {
            Some(Arc::new(self.fetch_manifest(ino)?))
        };
        let fh = self.handles.open(Handle {
            ino,
            write,
            append,
            manifest,
        });
        if trunc {
            let res = self.truncate_copy(ino);
            if res.is_err() {
                self.handles.close(fh, false);
            }
            res?;
        }
        Ok(fh)
    }

    /// O_TRUNC: the inode's local copy becomes empty (and dirty).
    fn truncate_copy(&self, ino: u64) -> Result<(), Errno> {
        let state = self.handles.file(ino).ok_or(Errno::EBADF)?;
        let mut st = state.lock();
        match &st.temp {
            Some(t) => t.set_len(0).map_err(|e| io_errno("truncate", &e))?,
            None => st.temp = Some(self.new_copy()?),
        }
        st.dirty = true;
        st.changed_ns = Some(now_ns());
        Ok(())
    }

    /// A local copy of `ino`'s current content on the daemon, to be cut to `len` (an
    /// empty one for `len` 0: nothing needs fetching).
    pub(super) fn current_copy(&self, ino: u64, len: u64) -> Result<File, Errno> {
        if len == 0 {
            return self.new_copy();
        }
        let m = self.fetch_manifest(ino)?;
        self.fill_copy(&m)
    }

    fn new_copy(&self) -> Result<File, Errno> {
        tempfile::tempfile_in(&self.tmp_dir).map_err(|e| io_errno("temporary file", &e))
    }

    /// Makes the inode's local copy from the content `h` opened, if there is none yet.
    pub(super) fn ensure_temp(&self, st: &mut OpenFile, h: &Handle) -> Result<(), Errno> {
        if st.temp.is_some() {
            return Ok(());
        }
        let m = match &h.manifest {
            Some(m) => m.clone(),
            None => Arc::new(self.fetch_manifest(h.ino)?),
        };
        st.temp = Some(self.fill_copy(&m)?);
        Ok(())
    }

    /// A new local copy holding the content `m` describes.
    fn fill_copy(&self, m: &Manifest) -> Result<File, Errno> {
        let file = self.new_copy()?;
        file.set_len(m.size)
            .map_err(|e| io_errno("temporary file", &e))?;
        let mut buf = Vec::new();
        for p in m.pieces.iter().filter(|p| p.offset < m.size) {
            buf.clear();
            let seg = Seg::Block {
                id: &p.id,
                from: p.block_offset,
                len: p.len.min(m.size - p.offset),
            };
            self.blocks.segment(&seg, &mut buf)?;
            file.write_all_at(&buf, p.offset)
                .map_err(|e| io_errno("temporary file", &e))?;
        }
        Ok(file)
    }

    /// Before the file `ino` loses its path (unlink, rename over it): an open file gets a
    /// local copy, so that its handles keep reading it after the daemon frees its blocks.
    pub(super) fn keep_open_copy(&self, ino: u64) {
        let Some(state) = self.handles.file(ino) else {
            return;
        };
        let mut st = state.lock();
        if st.temp.is_some() {
            return;
        }
        let copy = self.fetch_manifest(ino).and_then(|m| self.fill_copy(&m));
        match copy {
            Ok(f) => st.temp = Some(f),
            Err(e) => {
                tracing::warn!(ino, errno = ?e, "cannot keep a copy of an open file being removed")
            }
        }
    }

    pub(super) fn read_file(&self, fh: u64, off: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let h = self.handles.get(fh).ok_or(Errno::EBADF)?;
        if let Some(state) = self.handles.file(h.ino) {
            let st = state.lock();
            if let Some(t) = &st.temp {
                return Self::read_local(t, off, size).map_err(|e| io_errno("read", &e));
            }
        }
        let m = match &h.manifest {
            Some(m) => m.clone(),
            None => Arc::new(self.fetch_manifest(h.ino)?),
        };
        self.blocks.read(&m, off, size as u64)
    }

    pub(super) fn write_file(&self, fh: u64, off: u64, data: &[u8]) -> Result<u32, Errno> {
        let h = self.handles.get(fh).ok_or(Errno::EBADF)?;
        if !h.write {
            return Err(Errno::EBADF);
        }
        let state = self.handles.file(h.ino).ok_or(Errno::EBADF)?;
        let mut st = state.lock();
        self.ensure_temp(&mut st, &h)?;
        let Some(t) = &st.temp else {
            return Err(Errno::EIO);
        };
        let off = if h.append {
            t.metadata().map_err(|e| io_errno("write", &e))?.len()
        } else {
            off
        };
        t.write_all_at(data, off)
            .map_err(|e| io_errno("write", &e))?;
        st.dirty = true;
        st.changed_ns = Some(now_ns());
        Ok(data.len() as u32)
    }

    /// fallocate(2) on the inode's local copy (made as for a write): the modes the local
    /// filesystem supports (0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE...) with its
    /// errors; the copy is uploaded whole at flush like any write.
    pub(super) fn fallocate_file(
        &self,
        fh: u64,
        off: u64,
        len: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let h = self.handles.get(fh).ok_or(Errno::EBADF)?;
        if !h.write {
            return Err(Errno::EBADF);
        }
        let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else {
            return Err(Errno::EFBIG);
        };
        let state = self.handles.file(h.ino).ok_or(Errno::EBADF)?;
        let mut st = state.lock();
        self.ensure_temp(&mut st, &h)?;
        let Some(t) = &st.temp else {
            return Err(Errno::EIO);
        };
        use std::os::fd::AsRawFd;
        // SAFETY: fallocate on a descriptor the open copy owns; no memory is passed.
        if unsafe { libc::fallocate(t.as_raw_fd(), mode, off, len) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        st.dirty = true;
        st.changed_ns = Some(now_ns());
        Ok(())
    }

    /// `flush` (each close) and `fsync`: the inode's dirty copy goes to the daemon. A close
    /// succeeds when the daemon cannot be reached but the copy is safe in the spool; an
    /// fsync does not (the daemon does not have the content).
    pub(super) fn flush_handle(&self, fh: u64, fsync: bool) -> Result<(), Errno> {
        let h = self.handles.get(fh).ok_or(Errno::EBADF)?;
        let Some(state) = self.handles.file(h.ino) else {
            return Ok(());
        };
        let mut st = state.lock();
        if !st.dirty {
            return Ok(());
        }
        match self.sync_copy(h.ino, &mut st) {
            Ok(()) => Ok(()),
            Err(e) if e.retry && !fsync && Self::spooled_current(&st) => Ok(()),
            Err(e) => Err(e.errno),
        }
    }

    /// The last step of a close. A copy whose upload failed stays pending (kept with its
    /// inode, retried by the uploads worker) if the failure may pass.
    pub(super) fn release_handle(&self, fh: u64) -> Result<(), Errno> {
        let h = self.handles.get(fh).ok_or(Errno::EBADF)?;
        let mut keep = false;
        if let Some(state) = self.handles.file(h.ino) {
            let mut st = state.lock();
            // A version already spooled after a failed flush waits for the worker.
            if st.dirty && !Self::spooled_current(&st) {
                if let Err(e) = self.sync_copy(h.ino, &mut st) {
                    tracing::debug!(fh, errno = ?e.errno, "upload at release failed");
                }
            }
            keep = st.dirty && Self::spooled_current(&st);
        }
        self.handles.close(fh, keep);
        Ok(())
    }

    /// Uploads every dirty local copy (unmount); what the daemon cannot take stays in the
    /// spool for the next mount. After one failure that may pass the others go straight
    /// to the spool: an unreachable daemon must not hold the unmount for a timeout per file.
    pub(super) fn flush_all(&self) {
        let mut reachable = true;
        for (ino, state) in self.handles.all() {
            let mut st = state.lock();
            if !st.dirty {
                continue;
            }
            let res = if reachable {
                self.sync_copy(ino, &mut st)
            } else {
                Err(self.spool_only(ino, &mut st))
            };
            if let Err(e) = res {
                reachable &= !e.retry;
                if Self::spooled_current(&st) {
                    tracing::warn!(ino, error = e.msg, spool = %self.spool.dir().display(), "not uploaded at unmount: the next `fvfsc mount` with this cache directory uploads it");
                } else {
                    tracing::error!(
                        ino,
                        error = e.msg,
                        "upload at unmount failed and the spool could not keep it: writes lost"
                    );
                }
            }
        }
    }

    /// Uploads the inode's dirty local copy as the file's new content.
    pub(super) fn upload(&self, ino: u64, st: &mut OpenFile) -> Result<(), UploadError> {
        let path = self.inodes.lock().path(ino);
        let (Some(path), Some(t)) = (path, &st.temp) else {
            // Unlinked or replaced since: nobody can see this content any more.
            st.dirty = false;
            return Ok(());
        };
        let io = |e: std::io::Error| UploadError::io("upload", &e);
        let len = t.metadata().map_err(io)?.len();
        let hash = hash_file(t, len).map_err(io)?;
        // The current mode and owner: a PUT makes a new inode, which must keep them (the
        // owner only if the token may name it; else the daemon makes it its identity).
        let opts = match self.rt.block_on(self.client.stat(&path)) {
            Ok(cur) => CreateRequest {
                mode: Some(cur.mode & 0o7777),
                uid: Some(cur.uid),
                gid: Some(cur.gid),
                ..Default::default()
            },
            Err(ClientError::Api {
                code: ErrorCode::NotFound,
                ..
            }) => match self.attrs.lock().get(&ino) {
                Some(a) => CreateRequest {
                    mode: Some(a.perm),
                    uid: Some(a.uid),
                    gid: Some(a.gid),
                    ..Default::default()
                },
                None => CreateRequest::default(),
            },
            Err(e) => return Err(UploadError::client(&e)),
        };
        let opts = self.owned(opts);
        let new = self.put_local(&path, t, len, &hash, &opts)?;
        self.inodes.lock().rebind_server(ino, new.ino);
        st.dirty = false;
        st.changed_ns = None;
        self.set_times(&path, st.atime_ns.take(), st.mtime_ns.take());
        Ok(())
    }

    /// `opts` without its owner unless this mount's token may name owners.
    pub(super) fn owned(&self, opts: CreateRequest) -> CreateRequest {
        if self.name_owner {
            opts
        } else {
            CreateRequest {
                uid: None,
                gid: None,
                ..opts
            }
        }
    }

    /// `PUT` of the first `len` bytes of the local file `f` (BLAKE3 `hash`) as `path`.
    pub(super) fn put_local(
        &self,
        path: &str,
        f: &File,
        len: u64,
        hash: &str,
        opts: &CreateRequest,
    ) -> Result<Stat, UploadError> {
        let body = file_stream(
            f.try_clone().map_err(|e| UploadError::io("upload", &e))?,
            len,
        );
        self.rt
            .block_on(self.client.put(path, body, Some(len), Some(hash), opts))
            .map_err(|e| UploadError::client(&e))
    }

    /// Sets times given explicitly after an upload (which set mtime to its own time). The
    /// content is on the daemon: a failure here loses only the times, and is logged.
    pub(super) fn set_times(&self, path: &str, atime_ns: Option<i64>, mtime_ns: Option<i64>) {
        if atime_ns.is_none() && mtime_ns.is_none() {
            return;
        }
        let req = SetAttrRequest {
            atime_ns,
            mtime_ns,
            ..Default::default()
        };
        if let Err(e) = self.rt.block_on(self.client.setattr(path, &req)) {
            errno("setattr", &e);
        }
    }
}

pub(super) fn now_ns() -> i64 {
    fvfs_fuse::time_ns(std::time::SystemTime::now())
}

/// BLAKE3 (hex) of the first `len` bytes of `f`.
pub(super) fn hash_file(f: &File, len: u64) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK as usize];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(CHUNK) as usize;
        f.read_exact_at(&mut buf[..n], off)?;
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(h.finalize().to_hex().to_string())
}

/// The first `len` bytes of `f` as an upload body, read in chunks as the request goes.
pub(super) fn file_stream(f: File, len: u64) -> ByteStream {
    Box::pin(futures::stream::unfold(
        (f, 0u64),
        move |(f, off)| async move {
            if off >= len {
                return None;
            }
            let n = (len - off).min(CHUNK) as usize;
            let mut buf = vec![0u8; n];
            match f.read_exact_at(&mut buf, off) {
                Ok(()) => Some((Ok(Bytes::from(buf)), (f, off + n as u64))),
                Err(e) => Some((Err(e), (f, len))),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn a_copy_streams_and_hashes_whole() {
        let f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        f.write_all_at(&data, 0).unwrap();
        let len = data.len() as u64;
        assert_eq!(
            hash_file(&f, len).unwrap(),
            blake3::hash(&data).to_hex().to_string()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let mut s = file_stream(f, len);
            let mut out = Vec::new();
            while let Some(chunk) = s.next().await {
                out.extend_from_slice(&chunk.unwrap());
            }
            out
        });
        assert_eq!(got, data);
    }
}
