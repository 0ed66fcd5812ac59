//! The write journal on SQLite ([`JournalStore`]): the `write_journal` table, one row per
//! record, replayed in `seq` order. `journal_replace` is the part a commit runs in its own
//! transaction (data.rs); the truncate's clip is `journal_clip`.

use super::{Engine, SqlStore};
use crate::error::Result;
use crate::sql::{params, Tx};
use crate::store::JournalStore;
use crate::types::{JournalRecord, JournalReset};
use fvfs_types::Ino;

fn insert(tx: &dyn Tx, ino: Ino, records: &[(u64, &[u8])], size: u64, mtime: i64) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO write_journal (ino, off, size, mtime, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (off, data) in records {
        stmt.execute(params![ino as i64, *off as i64, size as i64, mtime, data])?;
    }
    Ok(())
}

/// Replaces `ino`'s records by `j` (inside a commit's transaction).
pub(crate) fn journal_replace(tx: &dyn Tx, ino: Ino, j: &JournalReset<'_>) -> Result<()> {
    tx.prepare_cached("DELETE FROM write_journal WHERE ino = ?1")?
        .execute(params![ino as i64])?;
    insert(tx, ino, j.records, j.size, j.mtime)
}

/// Clips `ino`'s records to a truncate to `size`: bytes at or past it go, and no record
/// raises the size past it any more.
pub(crate) fn journal_clip(tx: &dyn Tx, ino: Ino, size: u64) -> Result<()> {
    let (ino, size) = (ino as i64, size as i64);
    tx.prepare_cached("DELETE FROM write_journal WHERE ino = ?1 AND off >= ?2")?
        .execute(params![ino, size])?;
    tx.prepare_cached(
        "UPDATE write_journal SET data = substr(data, 1, CAST(?2 - off AS INTEGER))
         WHERE ino = ?1 AND off + length(data) > ?2",
    )?
    .execute(params![ino, size])?;
    tx.prepare_cached("UPDATE write_journal SET size = ?2 WHERE ino = ?1 AND size > ?2")?
        .execute(params![ino, size])?;
    Ok(())
}

impl<E: Engine> JournalStore for SqlStore<E> {
    fn journal_append(
        &self,
        ino: Ino,
        records: &[(u64, &[u8])],
        size: u64,
        mtime: i64,
    ) -> Result<()> {
        self.write(|tx| insert(tx, ino, records, size, mtime))
    }

    fn journal_inodes(&self) -> Result<Vec<Ino>> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT DISTINCT ino FROM write_journal ORDER BY ino")?;
            let rows = stmt.query_map(params![], |r| r.get::<i64>(0))?;
            rows.map(|r| r.map(|i| i as Ino))
                .collect::<Result<Vec<_>>>()
        })
    }

    fn journal_read(&self, ino: Ino) -> Result<Vec<JournalRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, off, size, mtime, data FROM write_journal WHERE ino = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![ino as i64], |r| {
                Ok(JournalRecord {
                    seq: r.get::<i64>(0)? as u64,
                    off: r.get::<i64>(1)? as u64,
                    size: r.get::<i64>(2)? as u64,
                    mtime: r.get(3)?,
                    data: r.get(4)?,
                })
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn journal_clear(&self, ino: Ino) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM write_journal WHERE ino = ?1")?
                .execute(params![ino as i64])?;
            Ok(())
        })
    }

    fn journal_totals(&self) -> Result<(u64, u64)> {
        self.read(|tx| {
            let (n, b): (i64, i64) = tx.query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM write_journal",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((n as u64, b as u64))
        })
    }
}

#[cfg(test)]
mod tests {

    use crate::types::{Commit, JournalReset};
    use fvfs_types::ROOT_INO;

    #[test]
    fn a_commit_replaces_and_a_truncate_clips_the_journal() {
        let (_dir, s) = crate::sql::tests::store();
        let ino = s
            .create(ROOT_INO, b"f", &crate::sql::tests::file())
            .unwrap()
            .ino;
        s.commit(
            ino,
            &Commit {
                min_size: 15,
                ..Default::default()
            },
        )
        .unwrap();
        s.journal_append(ino, &[(0, b"hello"), (10, b"world")], 15, 7)
            .unwrap();
        s.journal_append(ino, &[(3, b"LO")], 15, 8).unwrap();
        assert_eq!(s.journal_inodes().unwrap(), vec![ino]);
        let r = s.journal_read(ino).unwrap();
        assert_eq!(
            r.iter()
                .map(|r| (r.off, r.data.as_slice(), r.size, r.mtime))
                .collect::<Vec<_>>(),
            vec![
                (0, &b"hello"[..], 15, 7),
                (10, &b"world"[..], 15, 7),
                (3, &b"LO"[..], 15, 8)
            ]
        );
        assert!(r[0].seq < r[1].seq && r[1].seq < r[2].seq);
        assert_eq!(s.journal_totals().unwrap(), (3, 12));
        s.truncate(ino, 12, 9).unwrap();
        let r = s.journal_read(ino).unwrap();
        assert_eq!(
            r.iter()
                .map(|r| (r.off, r.data.as_slice(), r.size))
                .collect::<Vec<_>>(),
            vec![
                (0, &b"hello"[..], 12),
                (10, &b"wo"[..], 12),
                (3, &b"LO"[..], 12)
            ]
        );
        s.truncate(ino, 10, 9).unwrap();
        assert_eq!(s.journal_read(ino).unwrap().len(), 2);
        let c = Commit {
            min_size: 10,
            journal: Some(JournalReset {
                records: &[(4, b"x")],
                size: 10,
                mtime: 11,
            }),
            ..Default::default()
        };
        s.commit(ino, &c).unwrap();
        let r = s.journal_read(ino).unwrap();
        assert_eq!(
            r.iter()
                .map(|r| (r.off, r.data.as_slice(), r.size, r.mtime))
                .collect::<Vec<_>>(),
            vec![(4, &b"x"[..], 10, 11)]
        );
        s.commit(
            ino,
            &Commit {
                journal: Some(JournalReset::default()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.journal_inodes().unwrap().is_empty());
        s.journal_append(ino, &[(0, b"a")], 1, 1).unwrap();
        s.journal_clear(ino).unwrap();
        assert_eq!(s.journal_totals().unwrap(), (0, 0));
    }
}
