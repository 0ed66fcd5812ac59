//! File locks on every engine ([`LockStore`]): the `locks` table, one row per held range
//! of one owner. A change reads the owner's ranges that touch the new one, deletes them
//! and writes the result of the POSIX rules (split, replace, merge) in the same
//! transaction; a conflicting range of another owner refuses it first.

use super::{Engine, SqlStore};
use crate::error::Result;
use crate::sql::{params, Tx};
use crate::store::{FileLock, LockKind, LockOwner, LockStore};
use fvfs_types::Ino;

/// The columns [`row`] reads, in its order.
const COLS: &str = "session, owner, range_start, range_end, kind, pid";

/// Ranges end at most here (the kernel's OFFSET_MAX): stored as a signed integer.
const MAX: u64 = i64::MAX as u64;

fn kind_of(code: i64) -> LockKind {
    if code == 0 {
        LockKind::Read
    } else {
        LockKind::Write
    }
}

fn row(r: &crate::sql::Row<'_>) -> Result<FileLock> {
    Ok(FileLock {
        owner: LockOwner {
            session: r.get::<i64>(0)? as u64,
            owner: r.get::<i64>(1)? as u64,
        },
        start: r.get::<i64>(2)? as u64,
        end: r.get::<i64>(3)? as u64,
        kind: kind_of(r.get::<i64>(4)?),
        pid: r.get::<i64>(5)? as u32,
    })
}

fn conflict(
    tx: &dyn Tx,
    ino: Ino,
    who: LockOwner,
    start: u64,
    end: u64,
    kind: LockKind,
) -> Result<Option<FileLock>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLS} FROM locks
         WHERE ino = ?1 AND NOT (session = ?2 AND owner = ?3)
           AND range_start <= ?5 AND range_end >= ?4 AND (kind = 1 OR ?6 = 1)
         ORDER BY range_start LIMIT 1"
    ))?;
    let found = stmt.query_map(
        params![
            ino as i64,
            who.session as i64,
            who.owner as i64,
            start.min(MAX) as i64,
            end.min(MAX) as i64,
            kind.code()
        ],
        row,
    )?;
    found.into_iter().next().transpose()
}

/// `who`'s ranges on `ino` after setting `kind` (None: unlocking) on `start..=end`, given
/// the ranges that touch it (overlap or adjacent): sorted, disjoint, merged.
fn apply(
    touching: &[FileLock],
    start: u64,
    end: u64,
    kind: Option<LockKind>,
    pid: u32,
) -> Vec<(u64, u64, LockKind, u32)> {
    let mut pieces = Vec::new();
    for l in touching {
        if l.end < start || l.start > end {
            pieces.push((l.start, l.end, l.kind, l.pid));
            continue;
        }
        if l.start < start {
            pieces.push((l.start, start - 1, l.kind, l.pid));
        }
        if l.end > end {
            pieces.push((end + 1, l.end, l.kind, l.pid));
        }
    }
    if let Some(k) = kind {
        pieces.push((start, end, k, pid));
    }
    pieces.sort_by_key(|p| p.0);
    let mut out: Vec<(u64, u64, LockKind, u32)> = Vec::new();
    for p in pieces {
        match out.last_mut() {
            Some(last) if last.2 == p.2 && last.1.saturating_add(1) == p.0 => {
                last.1 = p.1;
                last.3 = p.3;
            }
            _ => out.push(p),
        }
    }
    out
}

impl<E: Engine> LockStore for SqlStore<E> {
    fn set_lock(
        &self,
        ino: Ino,
        who: LockOwner,
        pid: u32,
        start: u64,
        end: u64,
        kind: Option<LockKind>,
    ) -> Result<Option<FileLock>> {
        let (start, end) = (start.min(MAX), end.min(MAX));
        if start > end {
            return Err(crate::MetaError::Invalid(
                "lock range ends before it starts",
            ));
        }
        self.write(|tx| {
            if let Some(k) = kind {
                if let Some(c) = conflict(tx, ino, who, start, end, k)? {
                    return Ok(Some(c));
                }
            }
            let (lo, hi) = (start.saturating_sub(1), end.saturating_add(1).min(MAX));
            let touching = tx
                .prepare_cached(&format!(
                    "SELECT {COLS} FROM locks
                     WHERE ino = ?1 AND session = ?2 AND owner = ?3
                       AND range_start <= ?5 AND range_end >= ?4"
                ))?
                .query_map(
                    params![
                        ino as i64,
                        who.session as i64,
                        who.owner as i64,
                        lo as i64,
                        hi as i64
                    ],
                    row,
                )?
                .collect::<Result<Vec<_>>>()?;
            let mut del = tx.prepare_cached(
                "DELETE FROM locks WHERE ino = ?1 AND session = ?2 AND owner = ?3
                   AND range_start = ?4",
            )?;
            for l in &touching {
                del.execute(params![
                    ino as i64,
                    who.session as i64,
                    who.owner as i64,
                    l.start as i64
                ])?;
            }
            let mut ins = tx.prepare_cached(
                "INSERT INTO locks (ino, session, owner, range_start, range_end, kind, pid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (s, e, k, p) in apply(&touching, start, end, kind, pid) {
                ins.execute(params![
                    ino as i64,
                    who.session as i64,
                    who.owner as i64,
                    s as i64,
                    e as i64,
                    k.code(),
                    p as i64
                ])?;
            }
            Ok(None)
        })
    }

    fn test_lock(
        &self,
        ino: Ino,
        who: LockOwner,
        start: u64,
        end: u64,
        kind: LockKind,
    ) -> Result<Option<FileLock>> {
        self.read(|tx| conflict(tx, ino, who, start, end, kind))
    }

    fn release_locks(&self, ino: Ino, who: LockOwner) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM locks WHERE ino = ?1 AND session = ?2 AND owner = ?3")?
                .execute(params![ino as i64, who.session as i64, who.owner as i64])?;
            Ok(())
        })
    }

    fn locks(&self, ino: Ino) -> Result<Vec<FileLock>> {
        self.read(|tx| {
            tx.prepare_cached(&format!(
                "SELECT {COLS} FROM locks WHERE ino = ?1 ORDER BY session, owner, range_start"
            ))?
            .query_map(params![ino as i64], row)?
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(start: u64, end: u64, kind: LockKind) -> FileLock {
        FileLock {
            owner: LockOwner {
                session: 1,
                owner: 1,
            },
            start,
            end,
            kind,
            pid: 9,
        }
    }

    #[test]
    fn a_lock_in_the_middle_splits_and_unlocking_merges_nothing_back() {
        let old = [l(0, 99, LockKind::Read)];
        let got = apply(&old, 10, 19, Some(LockKind::Write), 9);
        assert_eq!(
            got,
            vec![
                (0, 9, LockKind::Read, 9),
                (10, 19, LockKind::Write, 9),
                (20, 99, LockKind::Read, 9)
            ]
        );
        assert_eq!(
            apply(&old, 10, 19, None, 9),
            vec![(0, 9, LockKind::Read, 9), (20, 99, LockKind::Read, 9)]
        );
    }

    #[test]
    fn adjacent_ranges_of_one_kind_merge() {
        let old = [l(0, 9, LockKind::Write), l(20, 29, LockKind::Write)];
        assert_eq!(
            apply(&old, 10, 19, Some(LockKind::Write), 9),
            vec![(0, 29, LockKind::Write, 9)]
        );
        assert_eq!(
            apply(
                &[l(0, 9, LockKind::Read)],
                10,
                MAX,
                Some(LockKind::Write),
                9
            ),
            vec![(0, 9, LockKind::Read, 9), (10, MAX, LockKind::Write, 9)]
        );
    }
}
