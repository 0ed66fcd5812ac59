//! [`JournalStore`]: the write journal, bytes that an fsync or a close acknowledged before
//! they were cut into blocks. Records of one file replay in `seq` order over its committed
//! content; a commit that stores buffered bytes replaces the file's records in the same
//! transaction (`Commit::journal`), a truncate clips them, a purge deletes them, so a
//! replay never brings back bytes older than what is committed.

use crate::error::Result;
use crate::types::JournalRecord;
use fvfs_types::Ino;

pub trait JournalStore {
    /// Appends records (file offset, bytes) to `ino`'s journal, each saying the size is at
    /// least `size` and the mtime `mtime`, in one transaction. Not synced: the caller
    /// syncs (`AdminStore::sync`) when the records must survive a power loss.
    fn journal_append(
        &self,
        ino: Ino,
        records: &[(u64, &[u8])],
        size: u64,
        mtime: i64,
    ) -> Result<()>;
    /// Inodes that have journal records.
    fn journal_inodes(&self) -> Result<Vec<Ino>>;
    /// `ino`'s journal records, oldest first.
    fn journal_read(&self, ino: Ino) -> Result<Vec<JournalRecord>>;
    /// Deletes `ino`'s journal records.
    fn journal_clear(&self, ino: Ino) -> Result<()>;
    /// Journal records and bytes in all (for status).
    fn journal_totals(&self) -> Result<(u64, u64)>;
}
