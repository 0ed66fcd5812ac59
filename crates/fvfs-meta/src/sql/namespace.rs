//! Namespace operations on SQLite ([`NamespaceStore`]): inodes, dentries, links,
//! rename, xattrs, orphans.
//! Each function runs inside the caller's transaction and keeps these invariants:
//! a directory's nlink is 2 + its subdirectories; a non-directory's nlink is the number
//! of entries naming it; an inode reaching nlink 0 is recorded in `orphans`.

use super::{Engine, SqlStore};
use crate::error::{bad_value, MetaError, Result};
use crate::sql::{params, OptionalExtension, Row, Tx};
use crate::store::NamespaceStore;
use crate::types::*;
use fvfs_types::{FileKind, Ino, NAME_MAX, ROOT_INO};

/// Most links a non-directory may have (as ext4).
pub const LINK_MAX: u32 = 65000;
/// Largest xattr value (as the Linux VFS limit).
pub const XATTR_SIZE_MAX: usize = 65536;

const ATTR_COLS: &str =
    "ino, kind, perm, uid, gid, size, nlink, atime, mtime, ctime, rdev, parent, alloc_bytes";

/// The kind code in column `col`; an unknown code is corruption, never a regular file.
fn kind_at(r: &Row<'_>, col: usize) -> Result<FileKind> {
    let code: i64 = r.get(col)?;
    FileKind::from_code(code).ok_or_else(|| bad_value(col, "inode kind code", code))
}

pub(crate) fn attr_from_row(r: &Row<'_>) -> Result<Attr> {
    let kind = kind_at(r, 1)?;
    let size = r.get::<i64>(5)? as u64;
    let blocks = if kind == FileKind::File {
        r.get::<i64>(12)? as u64 / 512
    } else {
        size.div_ceil(512)
    };
    Ok(Attr {
        ino: r.get::<i64>(0)? as u64,
        kind,
        perm: r.get(2)?,
        uid: r.get(3)?,
        gid: r.get(4)?,
        size,
        nlink: r.get(6)?,
        atime: r.get(7)?,
        mtime: r.get(8)?,
        ctime: r.get(9)?,
        rdev: r.get(10)?,
        parent: r.get::<i64>(11)? as u64,
        blocks,
    })
}

pub(crate) fn getattr(tx: &dyn Tx, ino: Ino) -> Result<Attr> {
    tx.prepare_cached(&format!("SELECT {ATTR_COLS} FROM inodes WHERE ino = ?1"))?
        .query_row(params![ino as i64], attr_from_row)
        .optional()?
        .ok_or(MetaError::NotFound)
}

fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(MetaError::Invalid("bad file name"));
    }
    if name.len() > NAME_MAX {
        return Err(MetaError::NameTooLong);
    }
    Ok(())
}

fn dir_attr(tx: &dyn Tx, ino: Ino) -> Result<Attr> {
    let a = getattr(tx, ino)?;
    if a.kind != FileKind::Dir {
        return Err(MetaError::NotDir);
    }
    Ok(a)
}

/// (ino, kind) named by `parent/name`.
pub(super) fn entry(tx: &dyn Tx, parent: Ino, name: &[u8]) -> Result<Option<(Ino, FileKind)>> {
    tx.prepare_cached("SELECT ino, kind FROM dentries WHERE parent = ?1 AND name = ?2")?
        .query_row(params![parent as i64, name], |r| {
            Ok((r.get::<i64>(0)? as u64, kind_at(r, 1)?))
        })
        .optional()
}

/// Updates a directory's mtime and ctime and adjusts its link count.
pub(super) fn touch_dir(tx: &dyn Tx, dir: Ino, nlink_delta: i64, now: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE inodes SET mtime = ?2, ctime = ?2, nlink = nlink + ?3 WHERE ino = ?1",
    )?
    .execute(params![dir as i64, now, nlink_delta])?;
    Ok(())
}

pub(super) fn insert_dentry(
    tx: &dyn Tx,
    parent: Ino,
    name: &[u8],
    ino: Ino,
    kind: FileKind,
) -> Result<()> {
    tx.prepare_cached("INSERT INTO dentries (parent, name, ino, kind) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![parent as i64, name, ino as i64, kind.code()])?;
    Ok(())
}

/// Drops one link of a non-directory; records an orphan of `session` at 0.
fn drop_link(tx: &dyn Tx, ino: Ino, kind: FileKind, now: i64, session: u64) -> Result<Unlinked> {
    tx.prepare_cached(
        "UPDATE inodes SET nlink = nlink - 1, ctime = ?2 WHERE ino = ?1 AND nlink > 0",
    )?
    .execute(params![ino as i64, now])?;
    let nlink: u32 = tx
        .prepare_cached("SELECT nlink FROM inodes WHERE ino = ?1")?
        .query_row(params![ino as i64], |r| r.get(0))?;
    if nlink == 0 {
        tx.prepare_cached("INSERT OR IGNORE INTO orphans (ino, session) VALUES (?1, ?2)")?
            .execute(params![ino as i64, session as i64])?;
    }
    Ok(Unlinked { ino, kind, nlink })
}

fn dir_is_empty(tx: &dyn Tx, dir: Ino) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM dentries WHERE parent = ?1 LIMIT 1")?
        .query_row(params![dir as i64], |_| Ok(()))
        .optional()?
        .is_none())
}

fn delete_dir_inode(tx: &dyn Tx, ino: Ino) -> Result<()> {
    tx.prepare_cached("DELETE FROM inodes WHERE ino = ?1")?
        .execute(params![ino as i64])?;
    tx.prepare_cached("DELETE FROM xattrs WHERE ino = ?1")?
        .execute(params![ino as i64])?;
    Ok(())
}

/// True if `dir` is `ancestor` or lies below it.
fn is_within(tx: &dyn Tx, mut dir: Ino, ancestor: Ino) -> Result<bool> {
    for _ in 0..100_000 {
        if dir == ancestor {
            return Ok(true);
        }
        if dir == ROOT_INO || dir == 0 {
            return Ok(false);
        }
        dir = getattr(tx, dir)?.parent;
    }
    Err(MetaError::Corrupt(format!(
        "directory loop above inode {dir}"
    )))
}

fn set_dentry(tx: &dyn Tx, parent: Ino, name: &[u8], ino: Ino, kind: FileKind) -> Result<()> {
    tx.prepare_cached("UPDATE dentries SET ino = ?3, kind = ?4 WHERE parent = ?1 AND name = ?2")?
        .execute(params![parent as i64, name, ino as i64, kind.code()])?;
    Ok(())
}

fn set_parent(tx: &dyn Tx, ino: Ino, parent: Ino, now: i64) -> Result<()> {
    tx.prepare_cached("UPDATE inodes SET parent = ?2, ctime = ?3 WHERE ino = ?1")?
        .execute(params![ino as i64, parent as i64, now])?;
    Ok(())
}

fn touch_ctime(tx: &dyn Tx, ino: Ino, now: i64) -> Result<()> {
    tx.prepare_cached("UPDATE inodes SET ctime = ?2 WHERE ino = ?1")?
        .execute(params![ino as i64, now])?;
    Ok(())
}

pub(crate) fn setattr(tx: &dyn Tx, ino: Ino, set: &SetAttr, now: i64) -> Result<Attr> {
    let mut a = getattr(tx, ino)?;
    if let Some(p) = set.perm {
        a.perm = p & 0o7777;
    }
    if let Some(u) = set.uid {
        a.uid = u;
    }
    if let Some(g) = set.gid {
        a.gid = g;
    }
    if let Some(t) = set.atime {
        a.atime = t;
    }
    if let Some(t) = set.mtime {
        a.mtime = t;
    }
    a.ctime = set.ctime.unwrap_or(now);
    tx.prepare_cached(
        "UPDATE inodes SET perm = ?2, uid = ?3, gid = ?4, atime = ?5, mtime = ?6, ctime = ?7 WHERE ino = ?1",
    )?
    .execute(params![ino as i64, a.perm, a.uid, a.gid, a.atime, a.mtime, a.ctime])?;
    Ok(a)
}

/// Checks the limits and writes one xattr (inserted or replaced).
fn put_xattr(tx: &dyn Tx, ino: Ino, name: &[u8], value: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(MetaError::Invalid("bad xattr name"));
    }
    if value.len() > XATTR_SIZE_MAX {
        return Err(MetaError::AttrTooBig);
    }
    tx.prepare_cached(
        "INSERT INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![ino as i64, name, value])?;
    Ok(())
}

impl<E: Engine> NamespaceStore for SqlStore<E> {
    fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.read(|tx| getattr(tx, ino))
    }

    fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr> {
        self.read(|tx| {
            if name.len() > NAME_MAX {
                return Err(MetaError::NameTooLong);
            }
            let p = dir_attr(tx, parent)?;
            if name == b"." {
                return Ok(p);
            }
            if name == b".." {
                return getattr(
                    tx,
                    if p.ino == ROOT_INO {
                        ROOT_INO
                    } else {
                        p.parent
                    },
                );
            }
            match entry(tx, parent, name)? {
                Some((ino, _)) => getattr(tx, ino),
                None => Err(MetaError::NotFound),
            }
        })
    }

    fn create(&self, parent: Ino, name: &[u8], new: &NewInode<'_>) -> Result<Attr> {
        self.write(|tx| {
    check_name(name)?;
    let p = dir_attr(tx, parent)?;
    if p.nlink == 0 {
        return Err(MetaError::NotFound);
    }
    if entry(tx, parent, name)?.is_some() {
        return Err(MetaError::Exists);
    }
    let is_dir = new.kind == FileKind::Dir;
    let size = new.target.map(|t| t.len() as i64).unwrap_or(0);
    let ino = tx.prepare_cached(
        "INSERT INTO inodes (kind, perm, uid, gid, size, nlink, atime, mtime, ctime, rdev, parent, target)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?8, ?9, ?10) RETURNING ino",
    )?
    .query_row(
        params![
        new.kind.code(),
        new.perm & 0o7777,
        new.uid,
        new.gid,
        size,
        if is_dir { 2 } else { 1 },
        new.now,
        new.rdev,
        if is_dir { parent as i64 } else { 0 },
        new.target,
        ],
        |r| r.get::<i64>(0),
    )? as u64;
    for (xname, value) in new.xattrs {
        put_xattr(tx, ino, xname, value)?;
    }
    insert_dentry(tx, parent, name, ino, new.kind)?;
    touch_dir(tx, parent, if is_dir { 1 } else { 0 }, new.now)?;
    getattr(tx, ino)
})
    }

    fn link(&self, ino: Ino, newparent: Ino, newname: &[u8], now: i64) -> Result<Attr> {
        self.write(|tx| {
            check_name(newname)?;
            let a = getattr(tx, ino)?;
            // The checks in linkat(2)'s order: the new name's directory, the new name, then the
            // source's kind and link count.
            let p = dir_attr(tx, newparent)?;
            if p.nlink == 0 {
                return Err(MetaError::NotFound);
            }
            if entry(tx, newparent, newname)?.is_some() {
                return Err(MetaError::Exists);
            }
            if a.kind == FileKind::Dir {
                return Err(MetaError::NotPermitted);
            }
            if a.nlink >= LINK_MAX {
                return Err(MetaError::TooManyLinks);
            }
            insert_dentry(tx, newparent, newname, ino, a.kind)?;
            tx.prepare_cached("UPDATE inodes SET nlink = nlink + 1, ctime = ?2 WHERE ino = ?1")?
                .execute(params![ino as i64, now])?;
            tx.prepare_cached("DELETE FROM orphans WHERE ino = ?1")?
                .execute(params![ino as i64])?;
            touch_dir(tx, newparent, 0, now)?;
            getattr(tx, ino)
        })
    }

    fn unlink(&self, parent: Ino, name: &[u8], now: i64, trash: bool) -> Result<Unlinked> {
        self.write(|tx| {
            dir_attr(tx, parent)?;
            let (ino, kind) = entry(tx, parent, name)?.ok_or(MetaError::NotFound)?;
            if kind == FileKind::Dir {
                return Err(MetaError::IsDir);
            }
            tx.prepare_cached("DELETE FROM dentries WHERE parent = ?1 AND name = ?2")?
                .execute(params![parent as i64, name])?;
            touch_dir(tx, parent, 0, now)?;
            let u = drop_link(tx, ino, kind, now, self.session())?;
            if trash {
                return super::trash::keep(tx, u, parent, name, now);
            }
            Ok(u)
        })
    }

    fn rmdir(&self, parent: Ino, name: &[u8], now: i64) -> Result<Ino> {
        self.write(|tx| {
            if name == b"." {
                return Err(MetaError::Invalid("rmdir of ."));
            }
            if name == b".." {
                return Err(MetaError::NotEmpty);
            }
            dir_attr(tx, parent)?;
            let (ino, kind) = entry(tx, parent, name)?.ok_or(MetaError::NotFound)?;
            if kind != FileKind::Dir {
                return Err(MetaError::NotDir);
            }
            if !dir_is_empty(tx, ino)? {
                return Err(MetaError::NotEmpty);
            }
            tx.prepare_cached("DELETE FROM dentries WHERE parent = ?1 AND name = ?2")?
                .execute(params![parent as i64, name])?;
            delete_dir_inode(tx, ino)?;
            touch_dir(tx, parent, -1, now)?;
            Ok(ino)
        })
    }

    fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: RenameFlags,
        now: i64,
    ) -> Result<Option<Unlinked>> {
        self.write(|tx| {
            if flags.exchange && flags.noreplace {
                return Err(MetaError::Invalid("RENAME_EXCHANGE with RENAME_NOREPLACE"));
            }
            check_name(newname)?;
            dir_attr(tx, parent)?;
            let np = dir_attr(tx, newparent)?;
            let (src, skind) = entry(tx, parent, name)?.ok_or(MetaError::NotFound)?;
            let dst = entry(tx, newparent, newname)?;
            if skind == FileKind::Dir && newparent != parent && is_within(tx, newparent, src)? {
                return Err(MetaError::Invalid("cannot move a directory into itself"));
            }
            if let Some((dino, FileKind::Dir)) = dst {
                if !flags.exchange && is_within(tx, parent, dino)? {
                    // The target is an ancestor of the source: rename(2) answers ENOTEMPTY.
                    return Err(MetaError::NotEmpty);
                }
            }
            if flags.exchange {
                let (dino, dkind) = dst.ok_or(MetaError::NotFound)?;
                if dkind == FileKind::Dir && parent != newparent && is_within(tx, parent, dino)? {
                    return Err(MetaError::Invalid("cannot move a directory into itself"));
                }
                set_dentry(tx, parent, name, dino, dkind)?;
                set_dentry(tx, newparent, newname, src, skind)?;
                if parent != newparent {
                    let delta = (skind == FileKind::Dir) as i64 - (dkind == FileKind::Dir) as i64;
                    touch_dir(tx, parent, -delta, now)?;
                    touch_dir(tx, newparent, delta, now)?;
                    if skind == FileKind::Dir {
                        set_parent(tx, src, newparent, now)?;
                    }
                    if dkind == FileKind::Dir {
                        set_parent(tx, dino, parent, now)?;
                    }
                } else {
                    touch_dir(tx, parent, 0, now)?;
                }
                touch_ctime(tx, src, now)?;
                touch_ctime(tx, dino, now)?;
                return Ok(None);
            }
            let mut replaced = None;
            if let Some((dino, dkind)) = dst {
                if flags.noreplace {
                    return Err(MetaError::Exists);
                }
                if dino == src {
                    // Two names of one inode: rename(2) does nothing.
                    return Ok(None);
                }
                match (skind == FileKind::Dir, dkind == FileKind::Dir) {
                    (true, false) => return Err(MetaError::NotDir),
                    (false, true) => return Err(MetaError::IsDir),
                    (true, true) => {
                        if !dir_is_empty(tx, dino)? {
                            return Err(MetaError::NotEmpty);
                        }
                        tx.prepare_cached("DELETE FROM dentries WHERE parent = ?1 AND name = ?2")?
                            .execute(params![newparent as i64, newname])?;
                        delete_dir_inode(tx, dino)?;
                        touch_dir(tx, newparent, -1, now)?;
                        replaced = Some(Unlinked {
                            ino: dino,
                            kind: dkind,
                            nlink: 0,
                        });
                    }
                    (false, false) => {
                        tx.prepare_cached("DELETE FROM dentries WHERE parent = ?1 AND name = ?2")?
                            .execute(params![newparent as i64, newname])?;
                        let u = drop_link(tx, dino, dkind, now, self.session())?;
                        replaced = Some(if flags.trash {
                            super::trash::keep(tx, u, newparent, newname, now)?
                        } else {
                            u
                        });
                    }
                }
            }
            if np.nlink == 0 {
                return Err(MetaError::NotFound);
            }
            tx.prepare_cached(
                "UPDATE dentries SET parent = ?3, name = ?4 WHERE parent = ?1 AND name = ?2",
            )?
            .execute(params![parent as i64, name, newparent as i64, newname])?;
            let is_dir = skind == FileKind::Dir;
            if parent != newparent {
                touch_dir(tx, parent, -(is_dir as i64), now)?;
                touch_dir(tx, newparent, is_dir as i64, now)?;
                if is_dir {
                    set_parent(tx, src, newparent, now)?;
                }
            } else {
                touch_dir(tx, parent, 0, now)?;
            }
            touch_ctime(tx, src, now)?;
            Ok(replaced)
        })
    }

    fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        self.read(|tx| {
            let (kind, target): (i64, Option<Vec<u8>>) = tx
                .prepare_cached("SELECT kind, target FROM inodes WHERE ino = ?1")?
                .query_row(params![ino as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or(MetaError::NotFound)?;
            if kind != FileKind::Symlink.code() {
                return Err(MetaError::Invalid("not a symlink"));
            }
            Ok(target.unwrap_or_default())
        })
    }

    fn readdir(&self, ino: Ino, cookie: u64, limit: usize) -> Result<Vec<DirEntry>> {
        self.read(|tx| {
    dir_attr(tx, ino)?;
    let mut stmt = tx.prepare_cached(
        "SELECT id, name, ino, kind FROM dentries WHERE parent = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![ino as i64, cookie as i64, limit], |r| {
        Ok(DirEntry {
            cookie: r.get::<i64>(0)? as u64,
            name: r.get(1)?,
            ino: r.get::<i64>(2)? as u64,
            kind: kind_at(r, 3)?,
        })
    })?;
    rows.collect::<Result<Vec<_>>>()
})
    }

    /// Uses the `(parent, name)` index: names are BLOBs, compared bytewise.
    fn readdir_by_name(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DirEntry>> {
        self.read(|tx| {
    dir_attr(tx, ino)?;
    let mut stmt = tx.prepare_cached(
        "SELECT id, name, ino, kind FROM dentries WHERE parent = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![ino as i64, after.unwrap_or(&[]), limit],
        |r| {
            Ok(DirEntry {
                cookie: r.get::<i64>(0)? as u64,
                name: r.get(1)?,
                ino: r.get::<i64>(2)? as u64,
                kind: kind_at(r, 3)?,
            })
        },
    )?;
    rows.collect::<Result<Vec<_>>>()
})
    }

    fn setattr(&self, ino: Ino, set: &SetAttr, now: i64) -> Result<Attr> {
        self.write(|tx| setattr(tx, ino, set, now))
    }

    fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.read(|tx| {
            getattr(tx, ino)?;
            tx.prepare_cached("SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2")?
                .query_row(params![ino as i64, name], |r| r.get(0))
                .optional()?
                .ok_or(MetaError::NoAttr)
        })
    }

    fn set_xattr(
        &self,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            if name.is_empty() || name.len() > 255 {
                return Err(MetaError::Invalid("bad xattr name"));
            }
            if value.len() > XATTR_SIZE_MAX {
                return Err(MetaError::AttrTooBig);
            }
            getattr(tx, ino)?;
            let exists = tx
                .prepare_cached("SELECT 1 FROM xattrs WHERE ino = ?1 AND name = ?2")?
                .query_row(params![ino as i64, name], |_| Ok(()))
                .optional()?
                .is_some();
            match (mode, exists) {
                (XattrMode::Create, true) => return Err(MetaError::Exists),
                (XattrMode::Replace, false) => return Err(MetaError::NoAttr),
                _ => {}
            }
            put_xattr(tx, ino, name, value)?;
            touch_ctime(tx, ino, now)
        })
    }

    fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.read(|tx| {
            getattr(tx, ino)?;
            let mut stmt =
                tx.prepare_cached("SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name")?;
            let rows = stmt.query_map(params![ino as i64], |r| r.get(0))?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn remove_xattr(&self, ino: Ino, name: &[u8], now: i64) -> Result<()> {
        self.write(|tx| {
            getattr(tx, ino)?;
            let n = tx
                .prepare_cached("DELETE FROM xattrs WHERE ino = ?1 AND name = ?2")?
                .execute(params![ino as i64, name])?;
            if n == 0 {
                return Err(MetaError::NoAttr);
            }
            touch_ctime(tx, ino, now)
        })
    }

    /// `setattr` and one xattr change in the caller's transaction.
    fn setattr_xattr(
        &self,
        ino: Ino,
        set: &SetAttr,
        change: XattrChange<'_>,
        now: i64,
    ) -> Result<Attr> {
        self.write(|tx| {
            let a = setattr(tx, ino, set, now)?;
            match change {
                XattrChange::Set { name, value } => put_xattr(tx, ino, name, value)?,
                XattrChange::Remove { name } => {
                    tx.prepare_cached("DELETE FROM xattrs WHERE ino = ?1 AND name = ?2")?
                        .execute(params![ino as i64, name])?;
                }
            }
            Ok(a)
        })
    }

    fn orphans(&self) -> Result<Vec<Ino>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT ino FROM orphans")?;
            let rows = stmt.query_map(params![], |r| r.get::<i64>(0))?;
            rows.map(|r| r.map(|i| i as u64))
                .collect::<Result<Vec<_>>>()
        })
    }

    fn unowned_orphans(&self) -> Result<Vec<Ino>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT ino FROM orphans o
                 WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = o.session)",
            )?;
            let rows = stmt.query_map(params![], |r| r.get::<i64>(0))?;
            rows.map(|r| r.map(|i| i as u64))
                .collect::<Result<Vec<_>>>()
        })
    }

    fn entries_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Ino, Vec<u8>, Ino)>> {
        self.read(|tx| {
            // substr() on a BLOB counts bytes: a byte-exact prefix match.
            let mut stmt = tx.prepare_cached(
                "SELECT parent, name, ino FROM dentries WHERE substr(name, 1, ?1) = ?2 LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![prefix.len() as i64, prefix, limit], |r| {
                Ok((
                    r.get::<i64>(0)? as Ino,
                    r.get::<Vec<u8>>(1)?,
                    r.get::<i64>(2)? as Ino,
                ))
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }
}
