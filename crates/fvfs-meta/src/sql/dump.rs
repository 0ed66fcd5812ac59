//! [`DumpStore`] on every engine: every table but `sessions`, in name order, rows in
//! primary-key order (`crate::dump` owns the format). A load checks each table and its
//! columns against this schema and inserts in one write transaction.

use super::{params, Arg, Engine, SqlStore, Tx, ValRef, SCHEMA_VERSION};
use crate::dump::{self, DumpSink, DumpTotals, DumpValue, DumpWriter};
use crate::error::{MetaError, Result};
use crate::store::DumpStore;

/// Tables a dump leaves out: the sessions of live processes and their file locks mean
/// nothing elsewhere.
const SKIPPED: &[&str] = &["locks", "sessions"];

fn tables(engine: &dyn Engine, tx: &dyn Tx) -> Result<Vec<String>> {
    let mut names = engine.tables(tx)?;
    names.retain(|n| !SKIPPED.contains(&n.as_str()));
    names.sort();
    Ok(names)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn to_dump(v: ValRef<'_>) -> DumpValue {
    match v {
        ValRef::Null => DumpValue::Null,
        ValRef::Int(i) => DumpValue::Int(i),
        ValRef::Real(f) => DumpValue::Real(f),
        ValRef::Text(t) => DumpValue::Text(t.to_string()),
        ValRef::Blob(b) => DumpValue::Blob(b.to_vec()),
    }
}

fn from_dump(v: &DumpValue) -> Arg<'_> {
    match v {
        DumpValue::Null => Arg::Null,
        DumpValue::Int(i) => Arg::Int(*i),
        DumpValue::Real(f) => Arg::Real(*f),
        DumpValue::Text(t) => Arg::Text(t),
        DumpValue::Blob(b) => Arg::Blob(b),
    }
}

struct Loader<'t> {
    engine: &'t dyn Engine,
    tx: &'t dyn Tx,
    tables: Vec<String>,
    insert: Option<String>,
}

impl DumpSink for Loader<'_> {
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
        let (mut ours, _) = self.engine.columns(self.tx, name)?;
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
        let args: Vec<Arg<'_>> = values.iter().map(from_dump).collect();
        self.tx.exec(sql, &args)?;
        Ok(())
    }
}

impl<E: Engine> DumpStore for SqlStore<E> {
    fn dump(&self, out: &mut dyn std::io::Write) -> Result<DumpTotals> {
        let engine: &dyn Engine = &self.engine;
        self.read(|tx| {
            let mut w = DumpWriter::begin(&mut *out, SCHEMA_VERSION)?;
            for table in tables(engine, tx)? {
                let (cols, pk) = engine.columns(tx, &table)?;
                if pk.is_empty() {
                    return Err(MetaError::Corrupt(format!(
                        "table {table} has no primary key"
                    )));
                }
                let order = pk.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
                let list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
                w.table(&table, &cols)?;
                let mut values = Vec::with_capacity(cols.len());
                tx.prepare(&format!(
                    "SELECT {list} FROM {} ORDER BY {order}",
                    quote(&table)
                ))?
                .for_each(params![], |r| {
                    values.clear();
                    for i in 0..cols.len() {
                        values.push(to_dump(r.get_ref(i)?));
                    }
                    w.row(&values)
                })?;
            }
            w.finish()
        })
    }

    fn load(&self, input: &mut dyn std::io::Read) -> Result<DumpTotals> {
        let path = self.engine.location();
        let engine: &dyn Engine = &self.engine;
        self.write(|tx| {
            let used: i64 = tx.query_row(
                "SELECT (SELECT COUNT(*) FROM settings) + (SELECT COUNT(*) FROM inodes)",
                params![],
                |r| r.get(0),
            )?;
            if used > 0 {
                return Err(MetaError::AlreadyFormatted(path.clone()));
            }
            let mut sink = Loader {
                engine,
                tx,
                tables: tables(engine, tx)?,
                insert: None,
            };
            let totals = dump::read(&mut *input, &mut sink)?;
            engine.after_load(tx)?;
            Ok(totals)
        })
    }
}
