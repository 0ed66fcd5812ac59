//! [`NamespaceStore`]: the namespace — inodes, directory entries, links, rename, xattrs —
//! and the orphans (inodes whose last name went) it leaves for the data side to purge.

use crate::error::Result;
use crate::types::*;
use fvfs_types::Ino;

pub trait NamespaceStore {
    fn getattr(&self, ino: Ino) -> Result<Attr>;
    fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr>;
    /// Creates an inode of any kind and its entry in `parent` (EEXIST if the name exists).
    fn create(&self, parent: Ino, name: &[u8], new: &NewInode<'_>) -> Result<Attr>;
    /// Adds a hard link `newparent/newname` to `ino` (not a directory).
    fn link(&self, ino: Ino, newparent: Ino, newname: &[u8], now: i64) -> Result<Attr>;
    /// Removes a non-directory entry. At nlink 0 the inode becomes an orphan, or with
    /// `trash` a file or symlink gets a name under `/.trash/<date>/` instead (nlink 1).
    fn unlink(&self, parent: Ino, name: &[u8], now: i64, trash: bool) -> Result<Unlinked>;
    /// Removes an empty directory and its inode.
    fn rmdir(&self, parent: Ino, name: &[u8], now: i64) -> Result<Ino>;
    /// rename(2) with NOREPLACE and EXCHANGE. Returns the inode that lost its last name
    /// by being replaced, if any.
    fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: RenameFlags,
        now: i64,
    ) -> Result<Option<Unlinked>>;
    fn readlink(&self, ino: Ino) -> Result<Vec<u8>>;
    /// Entries after `cookie` (0 = from the start), at most `limit`. Excludes `.`/`..`.
    fn readdir(&self, ino: Ino, cookie: u64, limit: usize) -> Result<Vec<DirEntry>>;
    /// Entries in name (byte) order whose name sorts after `after` (None = from the
    /// start), at most `limit`: one page of a listing by name without reading the rest.
    fn readdir_by_name(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DirEntry>>;
    /// Changes attributes (not the size: see `truncate`). `now` is the new ctime.
    fn setattr(&self, ino: Ino, set: &SetAttr, now: i64) -> Result<Attr>;

    fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>>;
    fn set_xattr(
        &self,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        now: i64,
    ) -> Result<()>;
    fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>>;
    fn remove_xattr(&self, ino: Ino, name: &[u8], now: i64) -> Result<()>;
    /// Atomically applies `set` (as `setattr`) and one xattr change: the mode and the
    /// POSIX ACL that must agree with it never disagree on disk. `now` is the new ctime.
    fn setattr_xattr(
        &self,
        ino: Ino,
        set: &SetAttr,
        change: XattrChange<'_>,
        now: i64,
    ) -> Result<Attr>;

    /// Inodes with no name left (nlink 0) whose data `DataStore::purge_inode` frees.
    fn orphans(&self) -> Result<Vec<Ino>>;
    /// The orphans no live session keeps: each orphan carries the session of the store
    /// handle whose unlink left it (`AdminStore::register_session`); the unlinking process
    /// may still have it open while that session has a row. The others are anyone's to
    /// purge.
    fn unowned_orphans(&self) -> Result<Vec<Ino>>;
    /// Directory entries (parent, name, ino) whose name starts with `prefix`, in any
    /// directory, at most `limit`: for the sweep of reserved names (a full scan).
    fn entries_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Ino, Vec<u8>, Ino)>>;
}
