//! Path-level operations for the HTTP face: resolving a path (components) to an inode,
//! `mkdir -p`, creation with an explicit owner, the layout of a file as block pieces
//! (`manifest`), verified block reads, a streamed reader and the atomic upload.
//!
//! Invariants:
//! - An upload writes a hidden sibling named [`UPLOAD_PREFIX`]`s<session>-<unique>`, the
//!   session of the process uploading (or a hidden file
//!   in an ancestor: [`Upload::set_target_dir`]) and renames it
//!   over the target only after every byte is durable: readers see the old content or
//!   the new, never a part. A target with several hard links keeps its inode (every name
//!   must keep seeing one file): the durable content replaces its content in one
//!   metadata transaction, so there too every reader and every concurrent upload sees
//!   one writer's whole content, never a mixture. An upload that is aborted, fails or is dropped unfinished
//!   unlinks its temporary file and releases its handle (from `Drop` when needed), so
//!   nothing half-written ever becomes visible under the target name.
//! - A [`FileReader`] holds a handle for its life, so the inode (and its data) stays
//!   readable even if the path is replaced or unlinked meanwhile; the handle is released
//!   when the reader is closed or dropped.
//! - `manifest` pieces are sorted, disjoint, inside the file size, and reference committed
//!   blocks only (buffered writes of an open inode are committed first).

use crate::{AttrChange, Ctx, OpenFlags, Result, TimeSet, Vfs, VfsError};
use bytes::Bytes;
use fvfs_meta::{Attr, DirEntry, MetaError, RenameFlags, SetAttr};
use fvfs_types::{BlockId, FileKind, Ino, CHUNK_SIZE, ROOT_INO};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Names starting with this are uploads in progress (hidden by the API).
pub const UPLOAD_PREFIX: &str = ".fvfs-put.";

/// The session an upload temporary's name carries (`None`: a name of an older version,
/// which had one process per filesystem).
fn upload_session(name: &[u8]) -> Option<u64> {
    let rest = name
        .strip_prefix(UPLOAD_PREFIX.as_bytes())?
        .strip_prefix(b"s")?;
    let hex = rest.split(|&b| b == b'-').next()?;
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// Entries read from the metadata per batch when listing a directory.
const LIST_BATCH: usize = 4096;

static UPLOAD_SEQ: AtomicU64 = AtomicU64::new(0);

/// Owner and mode of a new object. `None` = the daemon's effective uid/gid (the group
/// then follows a setgid parent, as with any creation).
#[derive(Clone, Copy, Debug)]
pub struct NewOwner {
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl NewOwner {
    fn ctx(&self) -> Ctx {
        // SAFETY: geteuid/getegid cannot fail and touch no memory.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Ctx {
            uid: self.uid.unwrap_or(euid),
            gid: self.gid.unwrap_or(egid),
            pid: 0,
        }
    }
}

/// One piece of a file: `len` bytes at file `offset` are `[block_offset, +len)` of block
/// `id`, whose plain size is `block_len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutPiece {
    pub offset: u64,
    pub len: u64,
    pub id: BlockId,
    pub block_offset: u64,
    pub block_len: u64,
}

/// A file's committed content as block pieces; ranges no piece covers are zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLayout {
    pub size: u64,
    pub pieces: Vec<LayoutPiece>,
}

fn not_dir() -> VfsError {
    MetaError::NotDir.into()
}

impl Vfs {
    /// The attributes of the object `comps` names (no component is followed as a
    /// symlink: a symlink in the middle is `NotDir`). Empty = the root.
    pub fn resolve_path<S: AsRef<[u8]>>(&self, comps: &[S]) -> Result<Attr> {
        let mut cur = self.getattr(ROOT_INO)?;
        for c in comps {
            if cur.kind != FileKind::Dir {
                return Err(not_dir());
            }
            cur = self.lookup(cur.ino, c.as_ref())?;
        }
        Ok(cur)
    }

    /// Like `mkdir -p` from the root, as root: every missing directory of `comps` is
    /// created with `owner`. Returns the last directory and whether this call made it.
    pub fn mkdir_p<S: AsRef<[u8]>>(&self, comps: &[S], owner: NewOwner) -> Result<(Attr, bool)> {
        self.mkdir_p_as(Ctx::root(), self.getattr(ROOT_INO)?, comps, owner)
    }

    /// Sets the group of a new object when the caller named one (a setgid parent may
    /// have given it the parent's group).
    fn force_gid(&self, a: Attr, owner: NewOwner) -> Result<Attr> {
        match owner.gid {
            Some(g) if g != a.gid => {
                let set = SetAttr {
                    gid: Some(g),
                    ..Default::default()
                };
                Ok(self.meta.setattr(a.ino, &set, crate::now_ns())?)
            }
            _ => Ok(a),
        }
    }

    /// A new directory owned by `owner`.
    pub fn create_dir(&self, parent: Ino, name: &[u8], owner: NewOwner) -> Result<Attr> {
        let a = self.mkdir(owner.ctx(), parent, name, owner.mode & 0o7777, 0)?;
        self.force_gid(a, owner)
    }

    /// A new symlink owned by `owner` (its mode is always 0o777).
    pub fn create_symlink(
        &self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        owner: NewOwner,
    ) -> Result<Attr> {
        let a = self.symlink(owner.ctx(), parent, name, target)?;
        self.force_gid(a, owner)
    }

    /// A new fifo, socket or device node owned by `owner`; `rdev` is kept for devices
    /// only. Other kinds are `Invalid`.
    pub fn create_special(
        &self,
        parent: Ino,
        name: &[u8],
        kind: FileKind,
        rdev: u32,
        owner: NewOwner,
    ) -> Result<Attr> {
        let (fmt, rdev) = match kind {
            FileKind::Fifo => (libc::S_IFIFO, 0),
            FileKind::Socket => (libc::S_IFSOCK, 0),
            FileKind::CharDev => (libc::S_IFCHR, rdev),
            FileKind::BlockDev => (libc::S_IFBLK, rdev),
            _ => return Err(VfsError::Invalid("not a special file kind")),
        };
        let a = self.mknod(
            owner.ctx(),
            parent,
            name,
            fmt | (owner.mode & 0o7777),
            0,
            rdev,
        )?;
        self.force_gid(a, owner)
    }

    /// Removes the temporaries of uploads that a killed process left behind (entries
    /// named [`UPLOAD_PREFIX`]`…`, in any directory, whose session has no row: an
    /// upload of a live session, this process's or another host's, may still finish);
    /// returns how many.
    pub fn sweep_uploads(&self) -> Result<usize> {
        let live: std::collections::HashSet<u64> =
            self.meta.sessions()?.into_iter().map(|s| s.id).collect();
        let mut n = 0;
        // Bounded: each pass removes what it found; an entry that cannot be removed
        // (gone meanwhile) ends the sweep instead of looping.
        for _ in 0..1024 {
            let found = self
                .meta
                .entries_with_prefix(UPLOAD_PREFIX.as_bytes(), 1024)?;
            let mut removed = 0;
            for (parent, name, _) in &found {
                if upload_session(name).is_some_and(|s| live.contains(&s)) {
                    continue;
                }
                match self.unlink_for_good(*parent, name) {
                    Ok(()) => removed += 1,
                    Err(VfsError::Meta(MetaError::NotFound)) => {}
                    Err(e) => return Err(e),
                }
            }
            n += removed;
            if found.len() < 1024 || removed == 0 {
                break;
            }
        }
        Ok(n)
    }

    pub fn remove(&self, parent: Ino, name: &[u8]) -> Result<()> {
        let a = self.lookup(parent, name)?;
        if a.kind == FileKind::Dir {
            self.rmdir(parent, name)
        } else {
            self.unlink(parent, name)
        }
    }

    /// One page of a directory in name (byte) order: entries whose name is after `after`
    /// and for which `keep` holds, at most `limit`; and whether more follow. Reads only
    /// the page (and the hidden names it skips) from the metadata's name index.
    pub fn list_sorted(
        &self,
        dir: Ino,
        after: Option<&[u8]>,
        limit: usize,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<(Vec<DirEntry>, bool)> {
        let a = self.meta.getattr(dir)?;
        if a.kind != FileKind::Dir {
            return Err(not_dir());
        }
        let mut page = Vec::new();
        let mut cursor: Option<Vec<u8>> = after.map(<[u8]>::to_vec);
        // One entry more than the page tells whether more follow.
        while page.len() <= limit {
            let batch =
                self.meta
                    .readdir_by_name(dir, cursor.as_deref(), LIST_BATCH.min(limit + 1))?;
            let n = batch.len();
            if let Some(last) = batch.last() {
                cursor = Some(last.name.clone());
            }
            // The root hides the trash (trash.rs).
            page.extend(batch.into_iter().filter(|e| {
                keep(&e.name) && !(dir == ROOT_INO && e.name == fvfs_meta::sql::TRASH_NAME)
            }));
            if n < LIST_BATCH.min(limit + 1) {
                break;
            }
        }
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }

    /// The committed content of a regular file as block pieces (buffered writes of an
    /// open inode are committed first, so the layout matches what a read returns).
    pub async fn manifest(&self, ino: Ino) -> Result<FileLayout> {
        if let Some(st) = self.handles.state(ino) {
            // Only when something is buffered: a flush syncs the metadata.
            let buffered = st.file.lock().await.pending().is_some();
            if buffered {
                self.flush_inode(ino).await?;
            }
        }
        let a = self.meta.getattr(ino)?;
        match a.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(MetaError::IsDir.into()),
            _ => return Err(VfsError::Invalid("not a regular file")),
        }
        let mut pieces = Vec::new();
        let mut chunk = 0u64;
        while chunk * CHUNK_SIZE < a.size {
            let base = chunk * CHUNK_SIZE;
            let hi = (a.size - base).min(CHUNK_SIZE);
            let map = crate::read::ChunkMap::load(self.meta.as_ref(), ino, chunk)?;
            for (bref, _codec, _mask, in_block, at, n) in map.pieces(0, hi) {
                pieces.push(LayoutPiece {
                    offset: base + at,
                    len: n,
                    id: bref.id,
                    block_offset: in_block,
                    block_len: bref.len as u64,
                });
            }
            chunk += 1;
        }
        Ok(FileLayout {
            size: a.size,
            pieces,
        })
    }

    /// The plain bytes of a block, verified against its id. Served while its metadata row
    /// exists, also at refcount 0 (garbage within the GC grace period): a client that
    /// read a manifest before the file was replaced can still fetch the old content. The
    /// bytes hash to the id, so this reveals nothing the caller does not already name.
    /// A block without a row (unknown or collected) is `NotFound`.
    pub fn block_exists(&self, id: &BlockId) -> Result<bool> {
        Ok(self.meta.get_block(id)?.is_some())
    }

    /// The stored bytes of block `id`, verified (see [`Vfs::block_exists`] for which
    /// blocks may be read).
    pub async fn read_block(&self, id: &BlockId) -> Result<Bytes> {
        let row = self.meta.get_block(id)?.ok_or(MetaError::NotFound)?;
        self.tiering.state.note_access(*id, crate::now_ns());
        let data = self
            .store
            .fetch_masked(id, row.codec, row.size, row.tiers)
            .await?;
        if data.len() != row.size as usize {
            return Err(VfsError::Internal(format!(
                "block {id} has {} bytes, metadata says {}",
                data.len(),
                row.size
            )));
        }
        Ok(data)
    }

    /// Opens a regular file for streamed reading.
    pub fn open_reader(self: &Arc<Self>, ino: Ino) -> Result<FileReader> {
        let fh = self.open(ino, OpenFlags::READ)?;
        Ok(FileReader {
            vfs: self.clone(),
            fh: Some(fh),
        })
    }

    /// Starts an upload that will replace (or create) `parent/name`: creates the hidden
    /// temporary sibling with `owner` and opens it for writing.
    pub fn begin_upload(
        self: &Arc<Self>,
        parent: Ino,
        name: &[u8],
        owner: NewOwner,
    ) -> Result<Upload> {
        let mut attempts = 0;
        let (tmp, attr) = loop {
            let seq = UPLOAD_SEQ.fetch_add(1, Ordering::Relaxed);
            let tmp = format!(
                "{UPLOAD_PREFIX}s{:x}-{:x}-{:x}-{seq:x}",
                self.session(),
                std::process::id(),
                crate::now_ns()
            )
            .into_bytes();
            let mode = libc::S_IFREG | (owner.mode & 0o7777);
            match self.mknod(owner.ctx(), parent, &tmp, mode, 0, 0) {
                Ok(a) => break (tmp, a),
                Err(VfsError::Meta(MetaError::Exists)) if attempts < 8 => attempts += 1,
                Err(e) => return Err(e),
            }
        };
        let mut up = Upload {
            vfs: self.clone(),
            parent,
            dest: parent,
            tmp,
            name: name.to_vec(),
            ino: attr.ino,
            fh: None,
            written: 0,
            done: false,
        };
        // From here on `up` cleans the temporary file up if anything fails.
        let ino = attr.ino;
        self.force_gid(attr, owner)?;
        up.fh = Some(self.open(ino, OpenFlags::WRITE)?);
        Ok(up)
    }
}

/// A read handle on one inode; released on [`FileReader::close`] or drop.
pub struct FileReader {
    vfs: Arc<Vfs>,
    fh: Option<u64>,
}

impl FileReader {
    /// Up to `len` bytes at `off` (fewer at the end of the file).
    pub async fn read_at(&self, off: u64, len: u32) -> Result<Vec<u8>> {
        let fh = self.fh.ok_or(VfsError::BadHandle)?;
        self.vfs.read(fh, off, len).await
    }

    pub async fn close(mut self) {
        if let Some(fh) = self.fh.take() {
            if let Err(e) = self.vfs.release(fh).await {
                tracing::warn!(error = %e, "releasing a read handle failed");
            }
        }
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        if let Some(fh) = self.fh.take() {
            let vfs = self.vfs.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = vfs.release(fh).await {
                        tracing::warn!(error = %e, "releasing a read handle failed");
                    }
                });
            }
        }
    }
}

/// An upload in progress (see the module invariants).
pub struct Upload {
    vfs: Arc<Vfs>,
    /// The directory holding the temporary file.
    parent: Ino,
    /// The directory of the target (`parent` unless [`Upload::set_target_dir`] moved it).
    dest: Ino,
    tmp: Vec<u8>,
    name: Vec<u8>,
    ino: Ino,
    fh: Option<u64>,
    written: u64,
    done: bool,
}

impl Upload {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes `dir` the target's directory: `finish` renames the temporary file from the
    /// directory it was begun in into `dir` (an upload that creates its parents begins in
    /// their deepest existing ancestor and creates them only once the body is valid).
    pub fn set_target_dir(&mut self, dir: Ino) {
        self.dest = dir;
    }

    /// Appends `data`.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        let fh = self.fh.ok_or(VfsError::BadHandle)?;
        let mut off = 0usize;
        while off < data.len() {
            let n = self
                .vfs
                .write(fh, self.written + off as u64, &data[off..])
                .await? as usize;
            if n == 0 {
                return Err(VfsError::Internal("write accepted no bytes".into()));
            }
            off += n;
        }
        self.written += data.len() as u64;
        Ok(())
    }

    /// Makes the content durable, sets `mtime` if given, and renames the temporary file
    /// over the target (with `noreplace`, an existing target is `Exists`). Returns the
    /// new attributes and whether the target existed before.
    pub async fn finish(mut self, mtime: Option<i64>, noreplace: bool) -> Result<(Attr, bool)> {
        let r = self.finish_inner(mtime, noreplace).await;
        if r.is_ok() {
            self.done = true;
        } else {
            self.cleanup().await;
        }
        r
    }

    async fn finish_inner(&mut self, mtime: Option<i64>, noreplace: bool) -> Result<(Attr, bool)> {
        if let Some(fh) = self.fh {
            self.vfs.fsync(fh).await?;
            // Stored as blocks before it takes the name: the answer carries the block
            // layout (ETag), and a body that cannot reach a tier must leave the old
            // content (the write journal would have accepted it).
            self.vfs.store_inode(self.ino).await?;
            self.fh = None;
            self.vfs.release(fh).await?;
        }
        if let Some(t) = mtime {
            self.vfs
                .setattr(
                    Ctx::root(),
                    self.ino,
                    AttrChange {
                        mtime: TimeSet::At(t),
                        ..AttrChange::default()
                    },
                )
                .await?;
        }
        let existed = match self.vfs.lookup(self.dest, &self.name) {
            Ok(a) if a.kind == FileKind::Dir => return Err(MetaError::IsDir.into()),
            Ok(a) if a.kind == FileKind::File && a.nlink > 1 && !noreplace => {
                return self.rewrite_in_place(a.ino, mtime).await;
            }
            Ok(_) => true,
            Err(VfsError::Meta(MetaError::NotFound)) => false,
            Err(e) => return Err(e),
        };
        let flags = RenameFlags {
            noreplace,
            ..RenameFlags::default()
        };
        self.vfs
            .rename(self.parent, &self.tmp, self.dest, &self.name, flags)?;
        self.vfs.sync_metadata()?;
        Ok((self.vfs.getattr(self.ino)?, existed))
    }

    /// A target with several hard links keeps its inode, so every name still sees one
    /// file: the durable temporary content replaces the target's whole content in one
    /// metadata transaction under the target's write lock (`Vfs::replace_content`), and
    /// the emptied temporary file is removed.
    async fn rewrite_in_place(&mut self, target: Ino, mtime: Option<i64>) -> Result<(Attr, bool)> {
        let vfs = self.vfs.clone();
        vfs.replace_content(target, self.ino, mtime).await?;
        // The content moved: the temporary file goes (its handle is released).
        self.done = true;
        cleanup(&vfs, self.parent, &self.tmp, None).await;
        vfs.sync_metadata()?;
        Ok((vfs.getattr(target)?, true))
    }

    /// Discards the upload: the temporary file is unlinked, the handle released.
    pub async fn abort(mut self) {
        self.cleanup().await;
    }

    async fn cleanup(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        cleanup(&self.vfs, self.parent, &self.tmp, self.fh.take()).await;
    }
}

async fn cleanup(vfs: &Vfs, parent: Ino, tmp: &[u8], fh: Option<u64>) {
    // Unlink first: the release of the last handle then frees the orphan's data.
    match vfs.unlink_for_good(parent, tmp) {
        Ok(()) | Err(VfsError::Meta(MetaError::NotFound)) => {}
        Err(e) => tracing::error!(error = %e, "removing an aborted upload's temporary file failed"),
    }
    if let Some(fh) = fh {
        if let Err(e) = vfs.release(fh).await {
            tracing::debug!(error = %e, "releasing an aborted upload's handle failed");
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let (vfs, parent, tmp, fh) = (
            self.vfs.clone(),
            self.parent,
            std::mem::take(&mut self.tmp),
            self.fh.take(),
        );
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { cleanup(&vfs, parent, &tmp, fh).await });
            }
            Err(_) => {
                if let Err(e) = vfs.unlink_for_good(parent, &tmp) {
                    tracing::error!(error = %e, "removing an abandoned upload's temporary file failed");
                }
            }
        }
    }
}
