//! The HSM catalog on SQLite ([`HsmStore`]): tables `hsm_dirs` and `hsm_files`
//! (schema.rs, version 5). The payload's block list is stored in the slice encoding
//! (data.rs `encode_refs`); its references are the holder rows of ("hsm", id). Requests
//! to the daemon are rows of `hsm_requests`, pending while `done` is NULL.

use super::data::{add_ref, decode_refs, encode_refs};
use super::{Engine, SqlStore};
use crate::error::{MetaError, Result};
use crate::sql::{params, Arg, OptionalExtension, Row, ToArg, Tx};
use crate::store::{hsm_holder_key, HsmDir, HsmFile, HsmRequest, HsmState, HsmStore, HSM_HOLDER};

const COLS: &str = "id, dir, path, handle, state, pinned, size, mtime, ctime, hash, blocks, \
                    resident, archived_at, last_recall";

fn from_row(r: &Row<'_>) -> Result<(HsmFile, i64, Vec<u8>, Vec<u8>)> {
    let f = HsmFile {
        id: r.get::<i64>(0)? as u64,
        dir: r.get::<i64>(1)? as u64,
        path: r.get(2)?,
        handle: r.get(3)?,
        state: HsmState::Archiving,
        pinned: r.get::<i64>(5)? != 0,
        size: r.get::<i64>(6)? as u64,
        mtime_ns: r.get(7)?,
        ctime_ns: r.get(8)?,
        hash: [0; 32],
        blocks: Vec::new(),
        resident: r.get(11)?,
        archived_at: r.get(12)?,
        last_recall: r.get(13)?,
    };
    Ok((f, r.get(4)?, r.get(9)?, r.get(10)?))
}

/// Completes a row read by `from_row` (fields whose decoding can fail as corruption).
fn finish(raw: (HsmFile, i64, Vec<u8>, Vec<u8>)) -> Result<HsmFile> {
    let (mut f, state, hash, blocks) = raw;
    f.state = HsmState::from_code(state).ok_or_else(|| {
        MetaError::Corrupt(format!(
            "hsm catalog row {} has unknown state {state}",
            f.id
        ))
    })?;
    f.hash = hash.try_into().map_err(|_| {
        MetaError::Corrupt(format!(
            "hsm catalog row {} has a hash that is not 32 bytes",
            f.id
        ))
    })?;
    f.blocks = decode_refs(&blocks)?;
    Ok(f)
}

/// Inserts row `f` under `id` (a new id with None), or replaces row `id`; returns the id.
fn write_row(tx: &dyn Tx, id: Option<u64>, f: &HsmFile) -> Result<u64> {
    const COLS: &str = "dir, path, handle, state, pinned, size, mtime, ctime, hash, blocks, \
                        resident, archived_at, last_recall";
    let blocks = encode_refs(&f.blocks);
    let values = [
        Arg::Int(f.dir as i64),
        f.path.to_arg(),
        f.handle.to_arg(),
        Arg::Int(f.state.code()),
        Arg::Int(f.pinned as i64),
        Arg::Int(f.size as i64),
        f.mtime_ns.to_arg(),
        f.ctime_ns.to_arg(),
        Arg::Blob(&f.hash[..]),
        Arg::Blob(&blocks),
        f.resident.to_arg(),
        f.archived_at.to_arg(),
        f.last_recall.to_arg(),
    ];
    match id {
        None => tx.query_row(
            &format!(
                "INSERT INTO hsm_files ({COLS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id"
            ),
            &values,
            |r| r.get::<u64>(0),
        ),
        Some(id) => {
            let mut args = values.to_vec();
            args.push(Arg::Int(id as i64));
            tx.execute(
                &format!(
                    "INSERT INTO hsm_files ({COLS}, id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
                     ON CONFLICT (id) DO UPDATE SET dir = excluded.dir, path = excluded.path, \
                     handle = excluded.handle, state = excluded.state, \
                     pinned = excluded.pinned, size = excluded.size, mtime = excluded.mtime, \
                     ctime = excluded.ctime, hash = excluded.hash, blocks = excluded.blocks, \
                     resident = excluded.resident, archived_at = excluded.archived_at, \
                     last_recall = excluded.last_recall"
                ),
                &args,
            )?;
            Ok(id)
        }
    }
}

impl<E: Engine> HsmStore for SqlStore<E> {
    fn hsm_add_dir(&self, path: &str, now: i64) -> Result<u64> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO hsm_dirs (path, added) VALUES (?1, ?2)",
                params![path, now],
            )?;
            let id: i64 = tx.query_row(
                "SELECT id FROM hsm_dirs WHERE path = ?1",
                params![path],
                |r| r.get(0),
            )?;
            Ok(id as u64)
        })
    }

    fn hsm_dirs(&self) -> Result<Vec<HsmDir>> {
        self.read(|tx| {
            let mut stmt = tx.prepare("SELECT id, path, added FROM hsm_dirs ORDER BY id")?;
            let rows = stmt.query_map(params![], |r| {
                Ok(HsmDir {
                    id: r.get::<i64>(0)? as u64,
                    path: r.get(1)?,
                    added: r.get(2)?,
                })
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn hsm_new(&self, f: &HsmFile) -> Result<u64> {
        self.write(|tx| write_row(tx, None, f))
    }

    fn hsm_put(&self, f: &HsmFile) -> Result<()> {
        self.write(|tx| {
            let exists = tx
                .query_row(
                    "SELECT 1 FROM hsm_files WHERE id = ?1",
                    params![f.id as i64],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                return Err(MetaError::NotFound);
            }
            write_row(tx, Some(f.id), f).map(|_| ())
        })
    }

    fn hsm_get(&self, id: u64) -> Result<Option<HsmFile>> {
        self.read(|tx| {
            let raw = tx
                .query_row(
                    &format!("SELECT {COLS} FROM hsm_files WHERE id = ?1"),
                    params![id as i64],
                    from_row,
                )
                .optional()?;
            raw.map(finish).transpose()
        })
    }

    fn hsm_list(&self, state: Option<HsmState>) -> Result<Vec<HsmFile>> {
        self.read(|tx| {
            let code = state.map(|s| s.code());
            let mut stmt = tx.prepare(&format!(
                "SELECT {COLS} FROM hsm_files WHERE CAST(?1 AS INTEGER) IS NULL OR state = ?1 ORDER BY id"
            ))?;
            let rows = stmt.query_map(params![code], from_row)?;
            let raw = rows.collect::<Result<Vec<_>>>()?;
            raw.into_iter().map(finish).collect()
        })
    }

    fn hsm_forget(&self, id: u64) -> Result<bool> {
        let key = hsm_holder_key(id);
        self.write(|tx| {
            let n = tx.execute("DELETE FROM hsm_files WHERE id = ?1", params![id as i64])?;
            let ids = {
                let mut stmt =
                    tx.prepare_cached("SELECT block FROM holders WHERE kind = ?1 AND key = ?2")?;
                let rows = stmt.query_map(params![HSM_HOLDER, &key[..]], |r| {
                    super::data::block_id_at(r, 0)
                })?;
                rows.collect::<Result<Vec<_>>>()?
            };
            tx.execute(
                "DELETE FROM holders WHERE kind = ?1 AND key = ?2",
                params![HSM_HOLDER, &key[..]],
            )?;
            for b in &ids {
                add_ref(tx, b, -1)?;
            }
            Ok(n > 0)
        })
    }

    fn hsm_request(&self, op: &str, path: &[u8], due: i64) -> Result<u64> {
        self.write(|tx| {
            tx.query_row(
                "INSERT INTO hsm_requests (op, path, due) VALUES (?1, ?2, ?3) RETURNING id",
                params![op, path, due],
                |r| r.get::<u64>(0),
            )
        })
    }

    fn hsm_requests_due(&self, now: i64, limit: usize) -> Result<Vec<HsmRequest>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT id, op, path, due, done, ok, message FROM hsm_requests \
                 WHERE done IS NULL AND due <= ?1 ORDER BY due, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit], request_from_row)?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn hsm_request_done(&self, id: u64, ok: bool, message: &str, now: i64) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE hsm_requests SET done = ?2, ok = ?3, message = ?4 WHERE id = ?1",
                params![id as i64, now, ok as i64, message],
            )?;
            if n == 0 {
                return Err(MetaError::NotFound);
            }
            Ok(())
        })
    }

    fn hsm_request_get(&self, id: u64) -> Result<Option<HsmRequest>> {
        self.read(|tx| {
            tx.query_row(
                "SELECT id, op, path, due, done, ok, message FROM hsm_requests WHERE id = ?1",
                params![id as i64],
                request_from_row,
            )
            .optional()
        })
    }

    fn hsm_requests_prune(&self, before: i64) -> Result<u64> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM hsm_requests WHERE done IS NOT NULL AND done < ?1",
                params![before],
            )?;
            Ok(n as u64)
        })
    }
}

fn request_from_row(r: &Row<'_>) -> Result<HsmRequest> {
    Ok(HsmRequest {
        id: r.get::<i64>(0)? as u64,
        op: r.get(1)?,
        path: r.get(2)?,
        due: r.get(3)?,
        done: r.get(4)?,
        ok: r.get::<Option<i64>>(5)?.unwrap_or(0) != 0,
        message: r.get::<Option<String>>(6)?.unwrap_or_default(),
    })
}
