//! [`Tx`] over a rusqlite transaction. Statements are prepared once per connection
//! (rusqlite's statement cache, keyed by the SQL text); the SQL the operations write is
//! SQLite's own dialect, so nothing is translated. The catalog a dump walks
//! (`sqlite_master`, `pragma_table_info`) is here too.

use crate::error::{MetaError, Result};
use crate::sql::{Arg, Dialect, Row, RowSource, Tx, ValRef};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Transaction;

/// One open SQLite transaction.
pub(crate) struct SqliteTx<'a, 'c>(pub &'a Transaction<'c>);

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Null => ValueRef::Null,
            Arg::Int(i) => ValueRef::Integer(i),
            Arg::Real(f) => ValueRef::Real(f),
            Arg::Text(t) => ValueRef::Text(t.as_bytes()),
            Arg::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl RowSource for rusqlite::Row<'_> {
    fn value(&self, idx: usize) -> Result<ValRef<'_>> {
        Ok(match self.get_ref(idx)? {
            ValueRef::Null => ValRef::Null,
            ValueRef::Integer(i) => ValRef::Int(i),
            ValueRef::Real(f) => ValRef::Real(f),
            ValueRef::Text(t) => ValRef::Text(std::str::from_utf8(t).map_err(|_| {
                MetaError::Corrupt(format!("column {idx}: a TEXT value that is not UTF-8"))
            })?),
            ValueRef::Blob(b) => ValRef::Blob(b),
        })
    }

    fn columns(&self) -> usize {
        self.as_ref().column_count()
    }
}

impl Tx for SqliteTx<'_, '_> {
    fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<usize> {
        Ok(self
            .0
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(args.iter()))?)
    }

    fn query(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        each: &mut dyn FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()> {
        let mut st = self.0.prepare_cached(sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            if !each(&Row::new(r))? {
                break;
            }
        }
        Ok(())
    }

    fn execute_batch(&self, sql: &str) -> Result<()> {
        Ok(self.0.execute_batch(sql)?)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}

/// The schema's tables (SQLite's own excluded), by name.
pub(crate) fn tables(tx: &dyn Tx) -> Result<Vec<String>> {
    tx.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name",
    )?
    .query_map(&[], |r| r.get::<String>(0))?
    .collect()
}

/// A table's columns in declaration order, and its primary key columns in key order.
pub(crate) fn columns(tx: &dyn Tx, table: &str) -> Result<(Vec<String>, Vec<String>)> {
    let rows = tx
        .prepare("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")?
        .query_map(&[Arg::Text(table)], |r| {
            Ok((r.get::<String>(0)?, r.get::<i64>(1)?))
        })?
        .collect::<Result<Vec<_>>>()?;
    let mut pk: Vec<_> = rows.iter().filter(|(_, k)| *k > 0).collect();
    pk.sort_by_key(|(_, k)| *k);
    let pk = pk.into_iter().map(|(n, _)| n.clone()).collect();
    Ok((rows.into_iter().map(|(n, _)| n).collect(), pk))
}
