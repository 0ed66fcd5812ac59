//! The trash: a file that loses its last name by `unlink` or by being replaced in a
//! `rename`, when the caller asks for it, gets a name under `/.trash/<YYYY-MM-DD>/`
//! (UTC date of the deletion) in the same transaction instead of becoming an orphan, so
//! nothing is lost between the two and `mv` brings it back.
//!
//! Invariants: `/.trash` and its date directories are owned by root with mode 0700 (the
//! names of deleted files are private); an entry is named `<parent>-<ino>-<name>`,
//! unique because the inode number is, cut to NAME_MAX; a deletion inside the trash is
//! final (the trash of the trash is nothing). Regular files and symlinks go to the trash;
//! directories are removed only when empty and have nothing to keep; special files
//! (devices, FIFOs, sockets) hold no data.

use super::namespace::{entry, insert_dentry, touch_dir};
use super::{params, Tx};
use crate::error::Result;
use crate::types::Unlinked;
use fvfs_types::{FileKind, Ino, NAME_MAX, ROOT_INO};

/// The name of the trash directory under the root.
pub const TRASH_NAME: &[u8] = b".trash";

/// The UTC date `YYYY-MM-DD` of `ns` nanoseconds since the epoch.
pub fn date_of(ns: i64) -> String {
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = ns.div_euclid(86_400_000_000_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}")
}

/// The directory `name` under `parent`, made (root, 0700) if missing.
fn dir(tx: &dyn Tx, parent: Ino, name: &[u8], now: i64) -> Result<Ino> {
    if let Some((ino, FileKind::Dir)) = entry(tx, parent, name)? {
        return Ok(ino);
    }
    if entry(tx, parent, name)?.is_some() {
        // A non-directory took the name: the trash cannot be made here.
        return Err(crate::MetaError::Exists);
    }
    let ino: i64 = tx.query_row(
        "INSERT INTO inodes (kind, perm, uid, gid, size, nlink, atime, mtime, ctime, rdev, parent)
         VALUES (?1, 448, 0, 0, 0, 2, ?2, ?2, ?2, 0, ?3) RETURNING ino",
        params![FileKind::Dir.code(), now, parent as i64],
        |r| r.get(0),
    )?;
    insert_dentry(tx, parent, name, ino as Ino, FileKind::Dir)?;
    touch_dir(tx, parent, 1, now)?;
    Ok(ino as Ino)
}

/// Whether `dir` is the trash or one of its date directories.
fn in_trash(tx: &dyn Tx, dir: Ino) -> Result<bool> {
    let Some((trash, _)) = entry(tx, ROOT_INO, TRASH_NAME)? else {
        return Ok(false);
    };
    if dir == trash {
        return Ok(true);
    }
    let parent: Option<i64> = tx
        .query_row(
            "SELECT parent FROM inodes WHERE ino = ?1",
            params![dir as i64],
            |r| r.get(0),
        )
        .ok();
    Ok(parent == Some(trash as i64))
}

/// Gives `u` (just unlinked from `parent/name`, now at nlink 0) a name in the trash
/// when it is a file or symlink and `parent` is not in the trash; else returns it as it
/// is (an orphan).
pub(crate) fn keep(
    tx: &dyn Tx,
    u: Unlinked,
    parent: Ino,
    name: &[u8],
    now: i64,
) -> Result<Unlinked> {
    if u.nlink != 0
        || !matches!(u.kind, FileKind::File | FileKind::Symlink)
        || in_trash(tx, parent)?
    {
        return Ok(u);
    }
    let trash = dir(tx, ROOT_INO, TRASH_NAME, now)?;
    let day = dir(tx, trash, date_of(now).as_bytes(), now)?;
    let mut kept = format!("{parent}-{}-", u.ino).into_bytes();
    let room = NAME_MAX.saturating_sub(kept.len());
    kept.extend_from_slice(&name[..name.len().min(room)]);
    insert_dentry(tx, day, &kept, u.ino, u.kind)?;
    touch_dir(tx, day, 0, now)?;
    tx.execute(
        "UPDATE inodes SET nlink = 1, ctime = ?2 WHERE ino = ?1",
        params![u.ino as i64, now],
    )?;
    tx.execute("DELETE FROM orphans WHERE ino = ?1", params![u.ino as i64])?;
    Ok(Unlinked { nlink: 1, ..u })
}

#[cfg(test)]
mod tests {
    use super::date_of;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(-1), "1969-12-31");
        // 2026-12-02T11:00:00Z
        assert_eq!(date_of(1_796_209_200 * 1_000_000_000), "2026-12-02");
        // 2024-02-29T23:59:59Z, a leap day
        assert_eq!(date_of(1_709_251_199 * 1_000_000_000), "2024-02-29");
        assert_eq!(date_of(1_709_251_200 * 1_000_000_000), "2024-03-01");
    }
}
