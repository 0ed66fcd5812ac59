//! The metadata dump: the whole metadata as one JSON document, the same for every engine
//! (`fvfsd dump` / `fvfsd load`, docs/FORMAT.md "Metadata dump"). This module owns the
//! format; each engine maps its rows to and from [`DumpValue`]s.
//!
//! ```text
//! {"format":"fvfs-dump","version":1,"schema":10,"tables":[
//! {"table":"settings","columns":["key","value"],"rows":[
//! ["settings","{…}"]
//! ]},
//! …
//! ]}
//! ```
//!
//! Invariants: tables appear in name order and rows in primary-key order, one row per
//! line, so two dumps of equal metadata are equal byte for byte; a BLOB is
//! `{"hex":"…"}`, an INTEGER a JSON integer, a REAL a JSON number with a fraction or
//! exponent, TEXT a string, NULL null. Both directions stream: a writer holds one row, a
//! reader one row at a time (serde's seeds), so a million files never sit in memory.
//! `schema` is the engine-neutral schema version ([`crate::sqlite::schema::SCHEMA_VERSION`]):
//! a dump loads only into the same version.

use crate::error::{MetaError, Result};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::fmt;
use std::io::{Read, Write};

pub const FORMAT: &str = "fvfs-dump";
pub const VERSION: u32 = 1;

/// One column value.
#[derive(Clone, Debug, PartialEq)]
pub enum DumpValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// What a dump or a load moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpTotals {
    pub tables: u64,
    pub rows: u64,
}

fn dump_err(e: impl fmt::Display) -> MetaError {
    MetaError::Dump(e.to_string())
}

fn io_err(e: std::io::Error) -> MetaError {
    MetaError::Io {
        path: "metadata dump".into(),
        source: e,
    }
}

/// Writes a dump, table by table and row by row.
pub struct DumpWriter<'a> {
    out: &'a mut dyn Write,
    /// Rows written in the open table (None: no table open).
    in_table: Option<u64>,
    pub totals: DumpTotals,
}

impl<'a> DumpWriter<'a> {
    pub fn begin(out: &'a mut dyn Write, schema: u32) -> Result<Self> {
        write!(
            out,
            "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"schema\":{schema},\"tables\":["
        )
        .map_err(io_err)?;
        Ok(DumpWriter {
            out,
            in_table: None,
            totals: DumpTotals::default(),
        })
    }

    pub fn table(&mut self, name: &str, columns: &[String]) -> Result<()> {
        self.end_table()?;
        let sep = if self.totals.tables == 0 { "\n" } else { ",\n" };
        let name = serde_json::to_string(name).map_err(dump_err)?;
        let cols = serde_json::to_string(columns).map_err(dump_err)?;
        write!(
            self.out,
            "{sep}{{\"table\":{name},\"columns\":{cols},\"rows\":["
        )
        .map_err(io_err)?;
        self.in_table = Some(0);
        self.totals.tables += 1;
        Ok(())
    }

    pub fn row(&mut self, values: &[DumpValue]) -> Result<()> {
        let n = self
            .in_table
            .as_mut()
            .ok_or_else(|| dump_err("a row outside a table"))?;
        let mut line = String::with_capacity(64);
        line.push_str(if *n == 0 { "\n[" } else { ",\n[" });
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            encode(v, &mut line)?;
        }
        line.push(']');
        self.out.write_all(line.as_bytes()).map_err(io_err)?;
        *n += 1;
        self.totals.rows += 1;
        Ok(())
    }

    fn end_table(&mut self) -> Result<()> {
        if let Some(n) = self.in_table.take() {
            let nl = if n == 0 { "" } else { "\n" };
            write!(self.out, "{nl}]}}").map_err(io_err)?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<DumpTotals> {
        self.end_table()?;
        self.out.write_all(b"\n]}\n").map_err(io_err)?;
        self.out.flush().map_err(io_err)?;
        Ok(self.totals)
    }
}

fn encode(v: &DumpValue, s: &mut String) -> Result<()> {
    use std::fmt::Write as _;
    match v {
        DumpValue::Null => s.push_str("null"),
        DumpValue::Int(i) => {
            let _ = write!(s, "{i}");
        }
        DumpValue::Real(f) => {
            if !f.is_finite() {
                return Err(dump_err(format!("a REAL that JSON cannot hold: {f}")));
            }
            // `{:?}` keeps a fraction or exponent, so the value reads back as a REAL.
            let _ = write!(s, "{f:?}");
        }
        DumpValue::Text(t) => s.push_str(&serde_json::to_string(t).map_err(dump_err)?),
        DumpValue::Blob(b) => {
            s.push_str("{\"hex\":\"");
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            s.push_str("\"}");
        }
    }
    Ok(())
}

/// Where a reader puts what it reads: the engine's side of a load.
pub trait DumpSink {
    /// The dump's schema version; an error refuses the dump before any row.
    fn schema(&mut self, version: u32) -> Result<()>;
    /// A table starts; its rows follow.
    fn table(&mut self, name: &str, columns: &[String]) -> Result<()>;
    fn row(&mut self, values: Vec<DumpValue>) -> Result<()>;
}

/// Reads a dump from `input` into `sink`, one row at a time.
pub fn read(input: &mut dyn Read, sink: &mut dyn DumpSink) -> Result<DumpTotals> {
    let failed = RefCell::new(None);
    let totals = RefCell::new(DumpTotals::default());
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(input));
    let seed = Top {
        sink: RefCell::new(sink),
        failed: &failed,
        totals: &totals,
    };
    let r = seed.deserialize(&mut de).and_then(|()| de.end());
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    r.map_err(|e| dump_err(format!("not a readable dump: {e}")))?;
    Ok(totals.into_inner())
}

struct Top<'s, 'f> {
    sink: RefCell<&'s mut dyn DumpSink>,
    failed: &'f RefCell<Option<MetaError>>,
    totals: &'f RefCell<DumpTotals>,
}

impl Top<'_, '_> {
    /// Keeps the sink's error and gives serde one that stops the parse.
    fn fail<E: de::Error>(&self, e: MetaError) -> E {
        let msg = e.to_string();
        self.failed.borrow_mut().get_or_insert(e);
        E::custom(msg)
    }
}

impl<'de> DeserializeSeed<'de> for Top<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an fvfs metadata dump (a JSON object)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut format_ok = false;
        let mut schema_seen = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" => {
                    let f: String = map.next_value()?;
                    if f != FORMAT {
                        return Err(self.fail(dump_err(format!("format {f:?} is not {FORMAT:?}"))));
                    }
                    format_ok = true;
                }
                "version" => {
                    let v: u32 = map.next_value()?;
                    if v != VERSION {
                        return Err(self.fail(dump_err(format!(
                            "dump format version {v}; this fvfs reads version {VERSION}"
                        ))));
                    }
                }
                "schema" => {
                    let v: u32 = map.next_value()?;
                    if !format_ok {
                        return Err(self.fail(dump_err("\"schema\" before \"format\"")));
                    }
                    if let Err(e) = self.sink.borrow_mut().schema(v) {
                        return Err(self.fail(e));
                    }
                    schema_seen = true;
                }
                "tables" => {
                    if !schema_seen {
                        return Err(self.fail(dump_err("\"tables\" before \"schema\"")));
                    }
                    map.next_value_seed(Tables(&self))?;
                }
                other => {
                    return Err(self.fail(dump_err(format!("unknown key {other:?}"))));
                }
            }
        }
        if !schema_seen {
            return Err(self.fail(dump_err("no \"schema\" and no tables")));
        }
        Ok(())
    }
}

struct Tables<'a, 's, 'f>(&'a Top<'s, 'f>);

impl<'de> DeserializeSeed<'de> for Tables<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Tables<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of tables")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(Table(self.0))?.is_some() {
            self.0.totals.borrow_mut().tables += 1;
        }
        Ok(())
    }
}

struct Table<'a, 's, 'f>(&'a Top<'s, 'f>);

impl<'de> DeserializeSeed<'de> for Table<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Table<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table: {\"table\", \"columns\", \"rows\"}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let top = self.0;
        let mut name: Option<String> = None;
        let mut columns: Option<Vec<String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "table" => name = Some(map.next_value()?),
                "columns" => columns = Some(map.next_value()?),
                "rows" => {
                    let (Some(n), Some(c)) = (&name, &columns) else {
                        return Err(top.fail(dump_err("rows before the table's name and columns")));
                    };
                    if let Err(e) = top.sink.borrow_mut().table(n, c) {
                        return Err(top.fail(e));
                    }
                    map.next_value_seed(Rows {
                        top,
                        width: c.len(),
                    })?;
                }
                other => {
                    return Err(top.fail(dump_err(format!("unknown table key {other:?}"))));
                }
            }
        }
        Ok(())
    }
}

struct Rows<'a, 's, 'f> {
    top: &'a Top<'s, 'f>,
    width: usize,
}

impl<'de> DeserializeSeed<'de> for Rows<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<Vec<serde_json::Value>>()? {
            if raw.len() != self.width {
                return Err(self.top.fail(dump_err(format!(
                    "a row of {} values in a table of {} columns",
                    raw.len(),
                    self.width
                ))));
            }
            let row = raw
                .into_iter()
                .map(decode)
                .collect::<Result<Vec<_>>>()
                .and_then(|row| self.top.sink.borrow_mut().row(row));
            if let Err(e) = row {
                return Err(self.top.fail(e));
            }
            self.top.totals.borrow_mut().rows += 1;
        }
        Ok(())
    }
}

fn decode(v: serde_json::Value) -> Result<DumpValue> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => DumpValue::Null,
        Value::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => DumpValue::Int(i),
            _ => DumpValue::Real(
                n.as_f64()
                    .ok_or_else(|| dump_err(format!("a number out of range: {n}")))?,
            ),
        },
        Value::String(s) => DumpValue::Text(s),
        Value::Object(mut o) if o.len() == 1 => match o.remove("hex") {
            Some(Value::String(h)) => DumpValue::Blob(unhex(&h)?),
            _ => return Err(dump_err("an object value other than {\"hex\": …}")),
        },
        other => return Err(dump_err(format!("an unsupported value: {other}"))),
    })
}

fn unhex(h: &str) -> Result<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(dump_err(format!("not lowercase hex: {h:.40}"))),
    };
    let b = h.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(dump_err(format!("odd-length hex: {h:.40}")));
    }
    b.chunks(2)
        .map(|p| Ok((digit(p[0])? << 4) | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        schema: u32,
        tables: Vec<(String, Vec<String>, Vec<Vec<DumpValue>>)>,
    }

    impl DumpSink for Collect {
        fn schema(&mut self, v: u32) -> Result<()> {
            self.schema = v;
            Ok(())
        }
        fn table(&mut self, name: &str, columns: &[String]) -> Result<()> {
            self.tables
                .push((name.to_string(), columns.to_vec(), Vec::new()));
            Ok(())
        }
        fn row(&mut self, values: Vec<DumpValue>) -> Result<()> {
            self.tables.last_mut().expect("table").2.push(values);
            Ok(())
        }
    }

    #[test]
    fn every_value_kind_round_trips_and_the_text_is_stable() {
        let rows = vec![
            vec![
                DumpValue::Int(i64::MIN),
                DumpValue::Real(1.0),
                DumpValue::Text("é\"\n".into()),
                DumpValue::Blob(vec![0, 0xff, b'/']),
                DumpValue::Null,
            ],
            vec![
                DumpValue::Int(7),
                DumpValue::Real(-2.5e-300),
                DumpValue::Text(String::new()),
                DumpValue::Blob(vec![]),
                DumpValue::Int(0),
            ],
        ];
        let cols: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let mut out = Vec::new();
        let mut w = DumpWriter::begin(&mut out, 8).unwrap();
        w.table("empty", &cols[..1]).unwrap();
        w.table("t", &cols).unwrap();
        for r in &rows {
            w.row(r).unwrap();
        }
        assert_eq!(w.finish().unwrap(), DumpTotals { tables: 2, rows: 2 });
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "{\"format\":\"fvfs-dump\",\"version\":1,\"schema\":8,\"tables\":[\n\
             {\"table\":\"empty\",\"columns\":[\"a\"],\"rows\":[]},\n\
             {\"table\":\"t\",\"columns\":[\"a\",\"b\",\"c\",\"d\",\"e\"],\"rows\":[\n\
             [-9223372036854775808,1.0,\"é\\\"\\n\",{\"hex\":\"00ff2f\"},null],\n\
             [7,-2.5e-300,\"\",{\"hex\":\"\"},0]\n]}\n]}\n"
        );
        let mut got = Collect::default();
        let totals = read(&mut out.as_slice(), &mut got).unwrap();
        assert_eq!(totals, DumpTotals { tables: 2, rows: 2 });
        assert_eq!(got.schema, 8);
        assert_eq!(got.tables[0], ("empty".into(), vec!["a".into()], vec![]));
        assert_eq!(got.tables[1].2, rows);
    }

    #[test]
    fn a_damaged_dump_is_refused_with_what_is_wrong() {
        let cases = [
            ("{\"format\":\"x\",\"schema\":8,\"tables\":[]}", "is not \"fvfs-dump\""),
            ("{\"format\":\"fvfs-dump\",\"tables\":[]}", "\"tables\" before \"schema\""),
            (
                "{\"format\":\"fvfs-dump\",\"schema\":8,\"tables\":[{\"table\":\"t\",\"columns\":[\"a\"],\"rows\":[[1,2]]}]}",
                "a row of 2 values in a table of 1 columns",
            ),
            (
                "{\"format\":\"fvfs-dump\",\"schema\":8,\"tables\":[{\"table\":\"t\",\"columns\":[\"a\"],\"rows\":[[{\"hex\":\"0g\"}]]}]}",
                "not lowercase hex",
            ),
            ("{\"format\":\"fvfs-dump\",\"schema\":8,\"tables\":[", "not a readable dump"),
        ];
        for (text, want) in cases {
            let err = read(&mut text.as_bytes(), &mut Collect::default()).unwrap_err();
            assert!(err.to_string().contains(want), "{text}: {err}");
        }
    }
}
