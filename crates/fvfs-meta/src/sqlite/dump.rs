//! [`DumpStore`] for SQLite: every table but `sessions`, in name order, rows in
//! primary-key order (`crate::dump` owns the format). A load checks each table and its
//! columns against this schema and inserts in one write transaction.

use super::schema::SCHEMA_VERSION;
use super::SqliteStore;
use crate::dump::{self, DumpSink, DumpTotals, DumpValue, DumpWriter};
use crate::error::{MetaError, Result};
use crate::store::DumpStore;
use rusqlite::types::{Value, ValueRef};
use rusqlite::Transaction;

/// Tables a dump leaves out: the sessions of live processes mean nothing elsewhere.
const SKIPPED: &[&str] = &["sessions"];

fn tables(tx: &Transaction<'_>) -> Result<Vec<String>> {
    let mut st = tx.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name",
    )?;
    let names = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names
        .into_iter()
        .filter(|n| !SKIPPED.contains(&n.as_str()))
        .collect())
}

/// A table's columns in declaration order, and its primary key columns in key order.
fn columns(tx: &Transaction<'_>, table: &str) -> Result<(Vec<String>, Vec<String>)> {
    let mut st = tx.prepare("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")?;
    let rows = st
        .query_map([table], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut pk: Vec<_> = rows.iter().filter(|(_, k)| *k > 0).collect();
    pk.sort_by_key(|(_, k)| *k);
    let pk = pk.into_iter().map(|(n, _)| n.clone()).collect();
    Ok((rows.into_iter().map(|(n, _)| n).collect(), pk))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn to_dump(v: ValueRef<'_>) -> Result<DumpValue> {
    Ok(match v {
        ValueRef::Null => DumpValue::Null,
        ValueRef::Integer(i) => DumpValue::Int(i),
        ValueRef::Real(f) => DumpValue::Real(f),
        ValueRef::Text(t) => DumpValue::Text(
            String::from_utf8(t.to_vec())
                .map_err(|_| MetaError::Corrupt("a TEXT value that is not UTF-8".into()))?,
        ),
        ValueRef::Blob(b) => DumpValue::Blob(b.to_vec()),
    })
}

fn from_dump(v: DumpValue) -> Value {
    match v {
        DumpValue::Null => Value::Null,
        DumpValue::Int(i) => Value::Integer(i),
        DumpValue::Real(f) => Value::Real(f),
        DumpValue::Text(t) => Value::Text(t),
        DumpValue::Blob(b) => Value::Blob(b),
    }
}

struct Loader<'t, 'c> {
    tx: &'t Transaction<'c>,
    tables: Vec<String>,
    insert: Option<String>,
}

impl DumpSink for Loader<'_, '_> {
    fn schema(&mut self, version: u32) -> Result<()> {
        if version != SCHEMA_VERSION {
            return Err(MetaError::Dump(format!(
                "the dump is of metadata schema {version}, this fvfs writes schema \
                 {SCHEMA_VERSION}: load it with the fvfs version that wrote it, mount once \
                 (which migrates), and dump again"
            )));
        }
        Ok(())
    }

    fn table(&mut self, name: &str, cols: &[String]) -> Result<()> {
        if !self.tables.iter().any(|t| t == name) {
            return Err(MetaError::Dump(format!("unknown table {name:?}")));
        }
        let (mut ours, _) = columns(self.tx, name)?;
        let mut theirs = cols.to_vec();
        ours.sort();
        theirs.sort();
        if ours != theirs {
            return Err(MetaError::Dump(format!(
                "table {name}: the dump has columns {cols:?}, this schema {ours:?}"
            )));
        }
        let list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
        let marks = vec!["?"; cols.len()].join(",");
        self.insert = Some(format!(
            "INSERT INTO {} ({list}) VALUES ({marks})",
            quote(name)
        ));
        Ok(())
    }

    fn row(&mut self, values: Vec<DumpValue>) -> Result<()> {
        let sql = self
            .insert
            .as_deref()
            .ok_or_else(|| MetaError::Dump("a row outside a table".into()))?;
        let mut st = self.tx.prepare_cached(sql)?;
        st.execute(rusqlite::params_from_iter(
            values.into_iter().map(from_dump),
        ))?;
        Ok(())
    }
}

impl DumpStore for SqliteStore {
    fn dump(&self, out: &mut dyn std::io::Write) -> Result<DumpTotals> {
        self.read(|tx| {
            let mut w = DumpWriter::begin(out, SCHEMA_VERSION)?;
            for table in tables(tx)? {
                let (cols, pk) = columns(tx, &table)?;
                let order = if pk.is_empty() {
                    "rowid".to_string()
                } else {
                    pk.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",")
                };
                let list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
                w.table(&table, &cols)?;
                let mut st = tx.prepare(&format!(
                    "SELECT {list} FROM {} ORDER BY {order}",
                    quote(&table)
                ))?;
                let mut rows = st.query([])?;
                let mut values = Vec::with_capacity(cols.len());
                while let Some(r) = rows.next()? {
                    values.clear();
                    for i in 0..cols.len() {
                        values.push(to_dump(r.get_ref(i)?)?);
                    }
                    w.row(&values)?;
                }
            }
            w.finish()
        })
    }

    fn load(&self, input: &mut dyn std::io::Read) -> Result<DumpTotals> {
        let path = self.path.display().to_string();
        self.write(|tx| {
            let used: i64 = tx.query_row(
                "SELECT (SELECT COUNT(*) FROM settings) + (SELECT COUNT(*) FROM inodes)",
                [],
                |r| r.get(0),
            )?;
            if used > 0 {
                return Err(MetaError::AlreadyFormatted(path));
            }
            let mut sink = Loader {
                tx,
                tables: tables(tx)?,
                insert: None,
            };
            dump::read(input, &mut sink)
        })
    }
}
