//! The trash as the engine runs it: with `trash_days` > 0 a file that loses its last name
//! (unlink, or replaced by a rename) is kept under `/.trash/<YYYY-MM-DD>/` by the metadata
//! store in the same transaction (fvfs-meta `sql/trash.rs`), and the [`TrashWorker`]
//! purges the date directories that expired.
//!
//! Invariants:
//! - A date directory `D` expires when every deletion it holds is at least `trash_days`
//!   days old: `D` < the UTC date of `now - trash_days`. So a deleted file is kept at least
//!   `trash_days` days and less than one day more. With `trash_days` = 0 every date
//!   directory expires (turning the trash off empties it).
//! - `/.trash` is not listed by a readdir of the root (`rm -rf /mnt/*` and `du` leave it
//!   alone) but is reached by name; the name is reserved: nothing else may be created
//!   under it in the root.
//! - Purging deletes for good (a deletion inside the trash is final) and tolerates another
//!   host purging the same directory at the same time.

use crate::worker::{Worker, WorkerState};
use crate::{now_ns, Result, Vfs, VfsError};
use futures::future::BoxFuture;
use fvfs_meta::sql::{date_of, TRASH_NAME};
use fvfs_meta::MetaError;
use fvfs_types::{FileKind, Ino, ROOT_INO};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the worker looks for expired date directories.
pub const TRASH_PURGE_EVERY: Duration = Duration::from_secs(3600);

const DAY_NS: i64 = 86_400_000_000_000;

/// Entries read per readdir page while purging.
const PAGE: usize = 512;

/// Whether `name` is a trash date directory's name, `YYYY-MM-DD`.
fn is_date(name: &[u8]) -> bool {
    name.len() == 10
        && name.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// Whether a metadata error only says another process got there first.
fn raced(e: &VfsError) -> bool {
    matches!(e, VfsError::Meta(MetaError::NotFound | MetaError::NotEmpty))
}

impl Vfs {
    /// Whether deletions go to the trash.
    pub(crate) fn trash_on(&self) -> bool {
        self.cfg.policy.trash_days > 0
    }

    /// Refuses to create `name` in `parent` when it is the trash's reserved name.
    pub(crate) fn check_not_trash(parent: Ino, name: &[u8]) -> Result<()> {
        if parent == ROOT_INO && name == TRASH_NAME {
            return Err(VfsError::NotPermitted(
                "/.trash is reserved for deleted files",
            ));
        }
        Ok(())
    }

    /// Purges the trash's date directories that expired at `now` (ns since the epoch);
    /// returns how many entries were deleted for good.
    pub async fn purge_trash(&self, now: i64) -> Result<u64> {
        let trash = match self.meta.lookup(ROOT_INO, TRASH_NAME) {
            Ok(a) if a.kind == FileKind::Dir => a.ino,
            Ok(_) => return Ok(0),
            Err(MetaError::NotFound) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let days = self.cfg.policy.trash_days as i64;
        let horizon = date_of(now - days * DAY_NS);
        let mut expired = Vec::new();
        let mut cookie = 0;
        loop {
            let page = self.meta.readdir(trash, cookie, PAGE)?;
            let Some(last) = page.last() else { break };
            cookie = last.cookie;
            expired.extend(page.into_iter().filter(|e| {
                e.kind == FileKind::Dir
                    && is_date(&e.name)
                    && (days == 0 || e.name.as_slice() < horizon.as_bytes())
            }));
        }
        let mut purged = 0;
        for day in expired {
            let n = self.remove_tree(day.ino).await?;
            purged += n;
            match self.rmdir(trash, &day.name) {
                Ok(()) => {}
                Err(e) if raced(&e) => {}
                Err(e) => return Err(e),
            }
            tracing::info!(
                day = %String::from_utf8_lossy(&day.name),
                entries = n,
                "purged an expired trash directory"
            );
        }
        Ok(purged)
    }

    /// Deletes everything under directory `dir` (not `dir` itself), for good.
    fn remove_tree(&self, dir: Ino) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let mut n = 0;
            let mut cookie = 0;
            loop {
                // Cookies are dentry ids: deleting an entry moves no other.
                let page = self.meta.readdir(dir, cookie, PAGE)?;
                let Some(last) = page.last() else {
                    return Ok(n);
                };
                cookie = last.cookie;
                for e in page {
                    let done = if e.kind == FileKind::Dir {
                        n += self.remove_tree(e.ino).await?;
                        self.rmdir(dir, &e.name)
                    } else {
                        self.unlink_for_good(dir, &e.name)
                    };
                    match done {
                        Ok(()) => n += 1,
                        Err(e) if raced(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        })
    }

    /// Unlinks `parent/name` without the trash (purges, an upload's temporaries).
    pub(crate) fn unlink_for_good(&self, parent: Ino, name: &[u8]) -> Result<()> {
        let u = self.meta.unlink(parent, name, now_ns(), false)?;
        if u.nlink == 0 {
            self.purge_if_orphan(u.ino)?;
        }
        Ok(())
    }
}

/// Purges expired trash directories at start and every [`TRASH_PURGE_EVERY`].
pub struct TrashWorker {
    vfs: Weak<Vfs>,
}

impl TrashWorker {
    pub fn new(vfs: &Arc<Vfs>) -> TrashWorker {
        TrashWorker {
            vfs: Arc::downgrade(vfs),
        }
    }
}

impl Worker for TrashWorker {
    type Error = VfsError;
    fn name(&self) -> String {
        "trash".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            let Some(vfs) = self.vfs.upgrade() else {
                return Ok(WorkerState::Done);
            };
            vfs.purge_trash(now_ns()).await?;
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(TRASH_PURGE_EVERY))
    }
}

#[cfg(test)]
mod tests {
    use super::is_date;

    #[test]
    fn date_names() {
        assert!(is_date(b"2026-12-02"));
        assert!(!is_date(b"2026-12-2"));
        assert!(!is_date(b"2026_12_02"));
        assert!(!is_date(b"notes.txt!"));
    }
}
