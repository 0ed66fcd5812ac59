//! The one interface the engine-neutral operations (`sql/*.rs`) use to talk to a
//! database: a [`Tx`] is one open transaction, on SQLite or PostgreSQL.
//!
//! The operations write SQL once, in the dialect both engines accept (`?N` parameters,
//! `INSERT … ON CONFLICT`, `RETURNING`); each engine translates what it must (PostgreSQL:
//! `$N`, `GREATEST`) and caches its prepared statements by the SQL text. Values cross the
//! boundary as [`Arg`] (parameters, borrowed) and [`ValRef`] (columns): integers are i64
//! on both engines, names and ids are bytes, and a column that does not convert to the
//! type asked for is [`MetaError::Corrupt`], never a default.
//!
//! [`Stmt`] mirrors the small part of rusqlite's statement API the operations use
//! (`execute`, `query_row`, `query_map`, `exists`), so an operation reads the same on
//! both engines.

use crate::error::{DbError, MetaError, Result};

/// The engine behind a transaction, for the rare statement that differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A parameter value, borrowed from the caller for the length of one statement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A column value, borrowed from the row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValRef<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// An owned column value (PostgreSQL rows are decoded into these).
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Val {
    pub fn as_ref(&self) -> ValRef<'_> {
        match self {
            Val::Null => ValRef::Null,
            Val::Int(i) => ValRef::Int(*i),
            Val::Real(f) => ValRef::Real(*f),
            Val::Text(t) => ValRef::Text(t),
            Val::Blob(b) => ValRef::Blob(b),
        }
    }
}

/// One open transaction. Object-safe: operations take `&dyn Tx`.
pub trait Tx {
    /// Runs one statement; returns the rows it changed.
    fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<usize>;
    /// Runs one query and hands each row to `each` until it returns `false`.
    fn query(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        each: &mut dyn FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()>;
    /// As [`Tx::query`], for a scan of a whole table: the engine holds a bounded batch of
    /// rows at a time, whatever the table's size. `each` must not use the transaction.
    fn scan(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        each: &mut dyn FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()> {
        self.query(sql, args, each)
    }
    /// Runs several statements without parameters (schema changes).
    fn execute_batch(&self, sql: &str) -> Result<()>;
    fn dialect(&self) -> Dialect;
}

/// The source of a [`Row`]'s values: an engine's own row type.
pub trait RowSource {
    fn value(&self, idx: usize) -> Result<ValRef<'_>>;
    fn columns(&self) -> usize;
}

impl RowSource for Vec<Val> {
    fn value(&self, idx: usize) -> Result<ValRef<'_>> {
        self.get(idx)
            .map(Val::as_ref)
            .ok_or_else(|| MetaError::Corrupt(format!("no column {idx} in the row")))
    }
    fn columns(&self) -> usize {
        self.len()
    }
}

/// One row of a query result.
pub struct Row<'a> {
    src: &'a dyn RowSource,
}

impl<'a> Row<'a> {
    pub fn new(src: &'a dyn RowSource) -> Row<'a> {
        Row { src }
    }

    /// Column `idx` as `T`; a value that does not convert is [`MetaError::Corrupt`].
    pub fn get<T: FromVal>(&self, idx: usize) -> Result<T> {
        let v = self.src.value(idx)?;
        T::from_val(v).map_err(|why| MetaError::Corrupt(format!("column {idx}: {why}")))
    }

    pub fn get_ref(&self, idx: usize) -> Result<ValRef<'_>> {
        self.src.value(idx)
    }

    pub fn columns(&self) -> usize {
        self.src.columns()
    }
}

/// A Rust value read from a column.
pub trait FromVal: Sized {
    fn from_val(v: ValRef<'_>) -> std::result::Result<Self, String>;
}

fn int_of(v: ValRef<'_>) -> std::result::Result<i64, String> {
    match v {
        ValRef::Int(i) => Ok(i),
        other => Err(format!("expected an integer, found {other:?}")),
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl FromVal for $t {
            fn from_val(v: ValRef<'_>) -> std::result::Result<Self, String> {
                let i = int_of(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
from_int!(i64, i32, u32, u16, u8, usize);

/// u64 values are stored as the i64 of the same bits (as SQLite stores them), so the
/// conversion is a reinterpretation, not a range check.
impl FromVal for u64 {
    fn from_val(v: ValRef<'_>) -> std::result::Result<Self, String> {
        Ok(int_of(v)? as u64)
    }
}

impl FromVal for bool {
    fn from_val(v: ValRef<'_>) -> std::result::Result<Self, String> {
        Ok(int_of(v)? != 0)
    }
}

impl FromVal for f64 {
    fn from_val(v: ValRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValRef::Real(f) => Ok(f),
            ValRef::Int(i) => Ok(i as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}

impl FromVal for String {
    fn from_val(v: ValRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValRef::Text(t) => Ok(t.to_string()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl FromVal for Vec<u8> {
    fn from_val(v: ValRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValRef::Blob(b) => Ok(b.to_vec()),
            ValRef::Text(t) => Ok(t.as_bytes().to_vec()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: ValRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValRef::Null => Ok(None),
            v => T::from_val(v).map(Some),
        }
    }
}

/// A Rust value passed as a parameter.
pub trait ToArg {
    fn to_arg(&self) -> Arg<'_>;
}

macro_rules! to_int {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn to_arg(&self) -> Arg<'_> {
                Arg::Int(*self as i64)
            }
        }
    )*};
}
to_int!(i64, i32, u32, u16, u8, u64);

/// A count (a LIMIT, a length) saturates: `usize::MAX` means "no limit", which SQLite
/// reads from any negative LIMIT but PostgreSQL refuses.
impl ToArg for usize {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToArg for bool {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Int(*self as i64)
    }
}
impl ToArg for f64 {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Real(*self)
    }
}
impl ToArg for str {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}
impl ToArg for String {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}
impl ToArg for [u8] {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Blob(self)
    }
}
impl ToArg for Vec<u8> {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Blob(self)
    }
}
impl<const N: usize> ToArg for [u8; N] {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Blob(self)
    }
}
impl<T: ToArg> ToArg for Option<T> {
    fn to_arg(&self) -> Arg<'_> {
        match self {
            Some(v) => v.to_arg(),
            None => Arg::Null,
        }
    }
}
impl<T: ToArg + ?Sized> ToArg for &T {
    fn to_arg(&self) -> Arg<'_> {
        (**self).to_arg()
    }
}
impl ToArg for Arg<'_> {
    fn to_arg(&self) -> Arg<'_> {
        *self
    }
}

/// Parameters for one statement: `params![a, b]` borrows each value.
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[$crate::sql::Arg<'_>]
    };
    ($($x:expr),+ $(,)?) => {
        &[$($crate::sql::ToArg::to_arg(&$x)),+] as &[$crate::sql::Arg<'_>]
    };
}

/// A statement to run on a transaction, named by its SQL (the engine caches the prepared
/// form).
pub struct Stmt<'t> {
    tx: &'t dyn Tx,
    sql: String,
}

impl Stmt<'_> {
    pub fn execute(&mut self, args: &[Arg<'_>]) -> Result<usize> {
        self.tx.exec(&self.sql, args)
    }

    /// The first row through `f`; no row is an error (see [`OptionalExtension`]).
    pub fn query_row<T>(
        &mut self,
        args: &[Arg<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut f = Some(f);
        let mut out = None;
        self.tx.query(&self.sql, args, &mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(false)
        })?;
        out.ok_or(MetaError::Db(DbError::NoRow))
    }

    /// Every row through `f`, collected (results are small or bounded by a LIMIT).
    pub fn query_map<T>(
        &mut self,
        args: &[Arg<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut out = Vec::new();
        self.tx.query(&self.sql, args, &mut |r| {
            out.push(Ok(f(r)?));
            Ok(true)
        })?;
        Ok(out.into_iter())
    }

    /// Every row through `f`, without collecting them (a scan: see [`Tx::scan`]).
    pub fn for_each(
        &mut self,
        args: &[Arg<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        self.tx.scan(&self.sql, args, &mut |r| {
            f(r)?;
            Ok(true)
        })
    }

    /// Whether the query returns a row.
    pub fn exists(&mut self, args: &[Arg<'_>]) -> Result<bool> {
        let mut found = false;
        self.tx.query(&self.sql, args, &mut |_| {
            found = true;
            Ok(false)
        })?;
        Ok(found)
    }
}

impl<'t> dyn Tx + 't {
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(Stmt {
            tx: self,
            sql: sql.to_string(),
        })
    }

    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        self.prepare_cached(sql)
    }

    pub fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<usize> {
        self.exec(sql, args)
    }

    pub fn query_row<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(args, f)
    }
}

/// `query_row(..).optional()`: no row is `None`, other errors stay errors.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(MetaError::Db(DbError::NoRow)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_exact() {
        assert_eq!(u32::from_val(ValRef::Int(7)), Ok(7));
        assert!(u32::from_val(ValRef::Int(-1)).is_err());
        assert!(u8::from_val(ValRef::Int(256)).is_err());
        assert_eq!(u64::from_val(ValRef::Int(-1)), Ok(u64::MAX));
        assert!(i64::from_val(ValRef::Text("1")).is_err());
        assert_eq!(Option::<i64>::from_val(ValRef::Null), Ok(None));
        assert!(i64::from_val(ValRef::Null).is_err());
        assert_eq!(u64::MAX.to_arg(), Arg::Int(-1));
        assert_eq!(usize::MAX.to_arg(), Arg::Int(i64::MAX));
        assert_eq!(None::<i64>.to_arg(), Arg::Null);
        assert_eq!(b"ab"[..].to_arg(), Arg::Blob(b"ab"));
    }
}
