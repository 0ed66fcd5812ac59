//! The consistency checks and repairs behind `fvfsd fsck` on SQLite ([`CheckStore`]).
//!
//! A block's refcount is checked against its slice references plus its `holders` rows;
//! the repairs fix counts and links and drop what points at nothing.

use super::data::{block_from_row, decode_refs, BLOCK_COLS};
use super::{Engine, SqlStore};
use crate::error::Result;
use crate::sql::{params, OptionalExtension, Tx};
use crate::store::CheckStore;
use crate::types::*;
use fvfs_types::{BlockId, FileKind, Ino};
use std::collections::HashMap;

/// Calls `f(ino, slice id, refs)` for every slice.
fn for_each_slice(tx: &dyn Tx, mut f: impl FnMut(Ino, u64, Vec<BlockRef>)) -> Result<()> {
    tx.prepare("SELECT ino, id, blocks FROM slices")?
        .for_each(params![], |r| {
            let blob: Vec<u8> = r.get(2)?;
            f(
                r.get::<i64>(0)? as u64,
                r.get::<i64>(1)? as u64,
                decode_refs(&blob)?,
            );
            Ok(())
        })
}

impl<E: Engine> CheckStore for SqlStore<E> {
    fn blocks_page(&self, after: Option<BlockId>, limit: usize) -> Result<Vec<BlockRow>> {
        self.read(|tx| {
            let after = after.map(|a| a.0.to_vec()).unwrap_or_default();
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {BLOCK_COLS} FROM blocks WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![after, limit], block_from_row)?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn refcount_mismatches(&self) -> Result<Vec<(BlockId, u64, u64)>> {
        self.read(|tx| {
            let mut counted: HashMap<BlockId, u64> = HashMap::new();
            for_each_slice(tx, |_, _, refs| {
                for r in refs {
                    *counted.entry(r.id).or_default() += 1;
                }
            })?;
            // Each holder row is one reference too.
            let mut holds = tx.prepare("SELECT block, COUNT(*) FROM holders GROUP BY block")?;
            let rows = holds.query_map(params![], |r| {
                Ok((super::data::block_id_at(r, 0)?, r.get::<i64>(1)? as u64))
            })?;
            for row in rows {
                let (id, n) = row?;
                *counted.entry(id).or_default() += n;
            }
            let mut out = Vec::new();
            let mut stmt = tx.prepare(&format!("SELECT {BLOCK_COLS} FROM blocks"))?;
            let rows = stmt.query_map(params![], block_from_row)?;
            for row in rows {
                let b = row?;
                let c = counted.get(&b.id).copied().unwrap_or(0);
                if c != b.refcount {
                    out.push((b.id, b.refcount, c));
                }
            }
            Ok(out)
        })
    }

    fn dangling_block_refs(&self) -> Result<Vec<(Ino, u64, BlockId)>> {
        self.read(|tx| {
            let mut refs = Vec::new();
            for_each_slice(tx, |ino, sid, blocks| {
                for b in blocks {
                    refs.push((ino, sid, b.id));
                }
            })?;
            let mut stmt = tx.prepare_cached("SELECT 1 FROM blocks WHERE id = ?1")?;
            let mut out = Vec::new();
            for (ino, sid, id) in refs {
                if stmt
                    .query_row(params![&id.0[..]], |_| Ok(()))
                    .optional()?
                    .is_none()
                {
                    out.push((ino, sid, id));
                }
            }
            Ok(out)
        })
    }

    fn nlink_mismatches(&self) -> Result<Vec<(Ino, u32, u32)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT i.ino, i.nlink, i.kind,
           (SELECT COUNT(*) FROM dentries d WHERE d.ino = i.ino),
           (SELECT COUNT(*) FROM dentries d WHERE d.parent = i.ino AND d.kind = 2)
         FROM inodes i",
            )?;
            let rows = stmt.query_map(params![], |r| {
                Ok((
                    r.get::<i64>(0)? as u64,
                    r.get::<u32>(1)?,
                    r.get::<i64>(2)?,
                    r.get::<u32>(3)?,
                    r.get::<u32>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (ino, nlink, kind, names, subdirs) = row?;
                let expected = if kind == FileKind::Dir.code() {
                    2 + subdirs
                } else {
                    names
                };
                if nlink != expected {
                    out.push((ino, nlink, expected));
                }
            }
            Ok(out)
        })
    }

    fn dangling_dentries(&self) -> Result<Vec<(Ino, Vec<u8>, Ino)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT d.parent, d.name, d.ino FROM dentries d LEFT JOIN inodes i ON i.ino = d.ino
         WHERE i.ino IS NULL",
            )?;
            let rows = stmt.query_map(params![], |r| {
                Ok((r.get::<i64>(0)? as u64, r.get(1)?, r.get::<i64>(2)? as u64))
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn set_refcount(&self, id: &BlockId, refcount: u64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE blocks SET refcount = ?2 WHERE id = ?1",
                params![&id.0[..], refcount as i64],
            )?;
            Ok(())
        })
    }

    fn set_nlink(&self, ino: Ino, nlink: u32) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE inodes SET nlink = ?2 WHERE ino = ?1",
                params![ino as i64, nlink],
            )?;
            if nlink == 0 {
                tx.execute(
                    "INSERT OR IGNORE INTO orphans (ino) VALUES (?1)",
                    params![ino as i64],
                )?;
            }
            Ok(())
        })
    }

    fn remove_dentry(&self, parent: Ino, name: &[u8]) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM dentries WHERE parent = ?1 AND name = ?2",
                params![parent as i64, name],
            )?;
            Ok(())
        })
    }

    fn drop_slices_referencing(&self, id: &BlockId) -> Result<u64> {
        self.write(|tx| {
            let mut victims = Vec::new();
            for_each_slice(tx, |ino, sid, refs| {
                if refs.iter().any(|r| r.id == *id) {
                    victims.push((ino, sid, refs));
                }
            })?;
            for (_, sid, refs) in &victims {
                for r in refs {
                    tx.execute(
                        "UPDATE blocks SET refcount = MAX(refcount - 1, 0) WHERE id = ?1",
                        params![&r.id.0[..]],
                    )?;
                }
                tx.execute("DELETE FROM slices WHERE id = ?1", params![*sid as i64])?;
            }
            let mut inos: Vec<Ino> = victims.iter().map(|v| v.0).collect();
            inos.sort_unstable();
            inos.dedup();
            for ino in inos {
                super::alloc::refresh_inode(tx, ino)?;
            }
            Ok(victims.len() as u64)
        })
    }

    fn inodes_referencing(&self, id: &BlockId, limit: usize) -> Result<Vec<Ino>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for_each_slice(tx, |ino, _, refs| {
                if out.len() < limit && !out.contains(&ino) && refs.iter().any(|r| r.id == *id) {
                    out.push(ino);
                }
            })?;
            Ok(out)
        })
    }
    fn inodes_referencing_any(
        &self,
        ids: &std::collections::HashSet<BlockId>,
    ) -> Result<Vec<(Ino, usize)>> {
        self.read(|tx| {
            let mut by: std::collections::BTreeMap<Ino, usize> = Default::default();
            for_each_slice(tx, |ino, _, refs| {
                let n = refs.iter().filter(|r| ids.contains(&r.id)).count();
                if n > 0 {
                    *by.entry(ino).or_default() += n;
                }
            })?;
            Ok(by.into_iter().collect())
        })
    }
    fn path_of(&self, ino: Ino) -> Result<Option<Vec<u8>>> {
        self.read(|tx| {
            let mut st = tx.prepare_cached(
                "SELECT parent, name FROM dentries WHERE ino = ?1 ORDER BY id LIMIT 1",
            )?;
            let mut comps: Vec<Vec<u8>> = Vec::new();
            let mut cur = ino;
            while cur != fvfs_types::ROOT_INO {
                if comps.len() > 4096 {
                    return Ok(None);
                }
                let row: Option<(i64, Vec<u8>)> = st
                    .query_row(params![cur as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((parent, name)) = row else {
                    return Ok(None);
                };
                comps.push(name);
                cur = parent as Ino;
            }
            let mut out = Vec::new();
            for c in comps.iter().rev() {
                out.push(b'/');
                out.extend_from_slice(c);
            }
            if out.is_empty() {
                out.push(b'/');
            }
            Ok(Some(out))
        })
    }
}
