//! [`Tx`] over one PostgreSQL connection inside an open transaction.
//!
//! The operations' SQL is SQLite's dialect restricted to what PostgreSQL also accepts;
//! [`translate`] rewrites the rest once per statement (`?N` → `$N`, `INSERT OR IGNORE` →
//! `ON CONFLICT DO NOTHING`, the two-argument `MAX(a, b)` → `GREATEST`), and the
//! connection caches the prepared statement by the original text. Parameters bind to
//! whatever type the server inferred for them ([`Arg`]'s `ToSql` converts, range-checked);
//! columns decode from any of the types the schema uses into [`Val`] (a `SUM` comes back
//! as NUMERIC and decodes to an integer when it is one).

use super::{block_on, pg_error, Conn};
use crate::error::{MetaError, Result};
use crate::sql::{Arg, Dialect, Row, Tx, Val};
use bytes::BytesMut;
use std::error::Error as StdError;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// One PostgreSQL transaction on a locked connection. Its BEGIN is sent with its first
/// statement, pipelined (one round trip for both); a transaction that runs no statement
/// never begins.
pub(crate) struct PgTx<'a> {
    pub conn: &'a Conn,
    /// The BEGIN not sent yet.
    pub begin: std::cell::Cell<Option<&'a str>>,
}

impl PgTx<'_> {
    /// Whether the transaction began (a statement ran), so it must end.
    pub fn begun(&self) -> bool {
        self.begin.get().is_none()
    }

    /// Awaits `fut`, with the pending BEGIN sent ahead of it on the same connection.
    fn run<T>(
        &self,
        fut: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        match self.begin.take() {
            None => block_on(fut).map_err(pg_error),
            Some(begin) => {
                // `join` polls the BEGIN first, so the server receives it first.
                let (began, out) = block_on(futures::future::join(
                    self.conn.client.batch_execute(begin),
                    fut,
                ));
                began.map_err(pg_error)?;
                out.map_err(pg_error)
            }
        }
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Arg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match *self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => i.to_string().to_sql(ty, out),
                _ => Err(format!("an integer for a {ty} parameter").into()),
            },
            Arg::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (f as f32).to_sql(ty, out),
                _ => Err(format!("a real for a {ty} parameter").into()),
            },
            Arg::Text(t) => match *ty {
                Type::BYTEA => t.as_bytes().to_sql(ty, out),
                _ => t.to_sql(&Type::TEXT, out),
            },
            Arg::Blob(b) => match *ty {
                Type::BYTEA => b.to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    std::str::from_utf8(b)?.to_sql(ty, out)
                }
                _ => Err(format!("bytes for a {ty} parameter").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column's raw bytes, decoded by [`decode`] according to its type.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> std::result::Result<Raw<'a>, BoxError> {
        Ok(Raw(raw))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn be<const N: usize>(raw: &[u8]) -> Result<[u8; N]> {
    raw.try_into().map_err(|_| {
        MetaError::Corrupt(format!(
            "a {}-byte value where {N} were expected",
            raw.len()
        ))
    })
}

/// A NUMERIC in PostgreSQL's binary form: an integer when it has no fraction, else a real.
fn numeric(raw: &[u8]) -> Result<Val> {
    let bad = || MetaError::Corrupt("a malformed NUMERIC value".into());
    if raw.len() < 8 {
        return Err(bad());
    }
    let word = |i: usize| i16::from_be_bytes([raw[i], raw[i + 1]]);
    let (ndigits, weight, sign, dscale) = (word(0), word(2), word(4) as u16, word(6));
    if raw.len() != 8 + 2 * ndigits.max(0) as usize || sign == 0xC000 {
        return Err(bad());
    }
    let digits: Vec<i16> = (0..ndigits as usize).map(|i| word(8 + 2 * i)).collect();
    if dscale == 0 {
        let mut v: i128 = 0;
        for (i, d) in digits.iter().enumerate() {
            let exp = weight as i32 - i as i32;
            if exp < 0 {
                break;
            }
            v = v
                .checked_add(*d as i128 * 10_000i128.checked_pow(exp as u32).ok_or_else(bad)?)
                .ok_or_else(bad)?;
        }
        if sign == 0x4000 {
            v = -v;
        }
        return i64::try_from(v).map(Val::Int).map_err(|_| bad());
    }
    let mut v = 0f64;
    for (i, d) in digits.iter().enumerate() {
        v += *d as f64 * 10_000f64.powi(weight as i32 - i as i32);
    }
    Ok(Val::Real(if sign == 0x4000 { -v } else { v }))
}

/// Column `idx` of `row` as a [`Val`].
fn decode(row: &tokio_postgres::Row, idx: usize) -> Result<Val> {
    let raw: Option<Raw<'_>> = row.try_get(idx).map_err(pg_error)?;
    let Some(Raw(raw)) = raw else {
        return Ok(Val::Null);
    };
    let ty = row.columns()[idx].type_();
    Ok(match *ty {
        Type::INT8 => Val::Int(i64::from_be_bytes(be(raw)?)),
        Type::INT4 => Val::Int(i32::from_be_bytes(be(raw)?) as i64),
        Type::INT2 => Val::Int(i16::from_be_bytes(be(raw)?) as i64),
        Type::OID => Val::Int(u32::from_be_bytes(be(raw)?) as i64),
        Type::BOOL => Val::Int((raw.first() == Some(&1)) as i64),
        Type::FLOAT8 => Val::Real(f64::from_be_bytes(be(raw)?)),
        Type::FLOAT4 => Val::Real(f32::from_be_bytes(be(raw)?) as f64),
        Type::NUMERIC => numeric(raw)?,
        Type::VOID => Val::Null,
        Type::BYTEA => Val::Blob(raw.to_vec()),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => Val::Text(
            String::from_utf8(raw.to_vec())
                .map_err(|_| MetaError::Corrupt("a TEXT value that is not UTF-8".into()))?,
        ),
        _ => {
            return Err(MetaError::Corrupt(format!(
                "column {idx} has type {ty}, which fvfs does not read"
            )))
        }
    })
}

/// Decodes `row` and hands it to `each`; false: stop.
fn hand(row: &tokio_postgres::Row, each: &mut dyn FnMut(&Row<'_>) -> Result<bool>) -> Result<bool> {
    let vals = (0..row.len())
        .map(|i| decode(row, i))
        .collect::<Result<Vec<_>>>()?;
    each(&Row::new(&vals))
}

fn refs<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl Tx for PgTx<'_> {
    fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<usize> {
        let st = self.conn.statement(sql)?;
        let n = self.run(self.conn.client.execute(&st, &refs(args)))?;
        Ok(n as usize)
    }

    fn query(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        each: &mut dyn FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()> {
        let st = self.conn.statement(sql)?;
        let rows = self.run(self.conn.client.query(&st, &refs(args)))?;
        for row in &rows {
            if !hand(row, each)? {
                break;
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        each: &mut dyn FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()> {
        use futures::StreamExt;
        let st = self.conn.statement(sql)?;
        let stream = self.run(self.conn.client.query_raw(&st, refs(args)))?;
        let mut stream = std::pin::pin!(stream);
        while let Some(row) = block_on(stream.next()) {
            if !hand(&row.map_err(pg_error)?, each)? {
                break;
            }
        }
        Ok(())
    }

    fn execute_batch(&self, sql: &str) -> Result<()> {
        self.run(self.conn.client.batch_execute(sql))
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

/// SQLite-dialect SQL as PostgreSQL takes it. Text in quotes is left alone.
pub(crate) fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut chars = sql.chars().peekable();
    let mut next_bare = 1;
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => {
                let mut n = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                if n.is_empty() {
                    n = next_bare.to_string();
                    next_bare += 1;
                }
                out.push('$');
                out.push_str(&n);
            }
            _ => out.push(c),
        }
    }
    let mut out = greatest(&without_index_hints(&out));
    let upper = out.trim_start().to_ascii_uppercase();
    if upper.starts_with("INSERT OR IGNORE") {
        let at = out
            .to_ascii_uppercase()
            .find("INSERT OR IGNORE")
            .expect("found above");
        out.replace_range(at..at + "INSERT OR IGNORE".len(), "INSERT");
        match out.to_ascii_uppercase().rfind(" RETURNING ") {
            Some(r) => out.insert_str(r, " ON CONFLICT DO NOTHING"),
            None => out.push_str(" ON CONFLICT DO NOTHING"),
        }
    }
    out
}

/// SQLite's planner hint `INDEXED BY name` has no PostgreSQL form: the planner there
/// has statistics and needs none.
fn without_index_hints(sql: &str) -> String {
    let mut out = sql.to_string();
    while let Some(at) = out.find("INDEXED BY ") {
        let name_end = out[at + 11..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(out.len(), |e| at + 11 + e);
        out.replace_range(at..name_end, "");
    }
    out
}

/// `MAX(a, b)` (SQLite's scalar max, two arguments without parentheses) → `GREATEST(a, b)`.
fn greatest(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.to_ascii_uppercase().find("MAX(") {
        let word_start = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
        let args_end = rest[at + 4..].find(')').map(|e| at + 4 + e);
        match args_end {
            Some(end)
                if word_start
                    && rest[at + 4..end].contains(',')
                    && !rest[at + 4..end].contains('(') =>
            {
                out.push_str(&rest[..at]);
                out.push_str("GREATEST(");
                out.push_str(&rest[at + 4..=end]);
                rest = &rest[end + 1..];
            }
            _ => {
                out.push_str(&rest[..at + 4]);
                rest = &rest[at + 4..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_the_sqlite_dialect() {
        assert_eq!(
            translate("SELECT a FROM t WHERE x = ?1 AND y = ?2 AND z = '?'"),
            "SELECT a FROM t WHERE x = $1 AND y = $2 AND z = '?'"
        );
        assert_eq!(translate("VALUES (?, ?)"), "VALUES ($1, $2)");
        assert_eq!(
            translate("INSERT OR IGNORE INTO orphans (ino) VALUES (?1)"),
            "INSERT INTO orphans (ino) VALUES ($1) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            translate("UPDATE blocks SET refcount = MAX(refcount + ?2, 0) WHERE id = ?1"),
            "UPDATE blocks SET refcount = GREATEST(refcount + $2, 0) WHERE id = $1"
        );
        assert_eq!(
            translate("SELECT a FROM t INDEXED BY t_a WHERE a = ?1"),
            "SELECT a FROM t  WHERE a = $1"
        );
        assert_eq!(
            translate("SELECT COALESCE(MAX(id), 0), max(a, ?1) FROM s"),
            "SELECT COALESCE(MAX(id), 0), GREATEST(a, $1) FROM s"
        );
    }

    #[test]
    fn numerics_decode_exactly() {
        // 12345678 = 1234·10000 + 5678: ndigits 2, weight 1, positive, scale 0.
        let raw = [0, 2, 0, 1, 0, 0, 0, 0, 0x04, 0xD2, 0x16, 0x2E];
        assert_eq!(numeric(&raw).unwrap(), Val::Int(12_345_678));
        // 0: no digits.
        assert_eq!(numeric(&[0, 0, 0, 0, 0, 0, 0, 0]).unwrap(), Val::Int(0));
        // -20000: one digit 2 at weight 1, negative.
        assert_eq!(
            numeric(&[0, 1, 0, 1, 0x40, 0, 0, 0, 0, 2]).unwrap(),
            Val::Int(-20_000)
        );
        assert!(numeric(&[0, 1, 0, 0]).is_err());
    }
}
