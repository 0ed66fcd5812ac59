//! The metadata operations, written once over SQL for every engine: [`SqlStore`]
//! implements each sub-trait of [`crate::MetaStore`] in the file of its concern
//! (`namespace.rs`, `data.rs`, `tiers.rs`, `admin.rs`, `check.rs`, `holders.rs`, `hsm.rs`,
//! `journal.rs`, `music.rs`, `music_cache.rs`, `dump.rs`; `alloc.rs` the `st_blocks`
//! accounting shared by the data operations, `trash.rs` where deleted files are kept),
//! against a [`Tx`] (`tx.rs`).
//!
//! An [`Engine`] (`crate::sqlite`, `crate::postgres`) owns the connections and what is
//! its own: the schema's DDL, durability, snapshots and log shipping, the catalog a dump
//! walks. Both engines hold the same logical schema, [`SCHEMA_VERSION`], so a dump of
//! one loads into the other.
//!
//! Every trait method is one transaction. A write transaction may run its closure more
//! than once (PostgreSQL retries one that conflicted with another host's): closures have
//! no effect outside the transaction.

mod admin;
mod alloc;
mod check;
mod data;
mod dump;
mod holders;
mod hsm;
mod journal;
mod locks;
mod music;
mod music_cache;
mod namespace;
mod tiers;
mod trash;
mod tx;

pub use crate::params;
pub(crate) use alloc::refresh_all;
pub use trash::{date_of, TRASH_NAME};
pub use tx::{
    Arg, Dialect, FromVal, OptionalExtension, Row, RowSource, Stmt, ToArg, Tx, Val, ValRef,
};

use crate::error::Result;
use crate::types::LogFrames;
use std::path::Path;

/// The logical schema version both engines write (tables and columns: docs/FORMAT.md).
pub const SCHEMA_VERSION: u32 = 10;

/// One metadata database engine.
pub trait Engine: Send + Sync + 'static {
    /// Runs `f` in one write transaction and commits. On a conflict with a concurrent
    /// writer the engine may roll back and run `f` again.
    fn write(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()>;
    /// Runs `f` in one read-only transaction (one consistent snapshot).
    fn read(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()>;
    /// Where the database is, for messages (no secrets).
    fn location(&self) -> String;
    /// The store as a URL for messages (no secrets).
    fn describe(&self) -> String;
    /// Makes every commit durable against power loss.
    fn sync(&self) -> Result<()>;
    fn release_memory(&self) {}
    /// A consistent, standalone copy of the database in the new local file `dest`.
    fn snapshot(&self, dest: &Path) -> Result<()>;
    fn begin_log_shipping(&self, _dest: &Path) -> Result<Option<u32>> {
        Ok(None)
    }
    fn take_log(&self) -> Result<Vec<LogFrames>> {
        Ok(Vec::new())
    }
    fn leave_checkpoints(&self) -> Result<()> {
        Ok(())
    }
    /// The tables of the schema, by name.
    fn tables(&self, tx: &dyn Tx) -> Result<Vec<String>>;
    /// A table's columns in declaration order and its primary key columns in key order.
    fn columns(&self, tx: &dyn Tx, table: &str) -> Result<(Vec<String>, Vec<String>)>;
    /// After a load wrote explicit ids: moves the id generators past them.
    fn after_load(&self, _tx: &dyn Tx) -> Result<()> {
        Ok(())
    }
}

/// The metadata store over an engine.
pub struct SqlStore<E> {
    engine: E,
    /// The session this handle registered (0: none): orphans its unlinks leave are
    /// stamped with it, so no other process purges them while it lives.
    session: std::sync::atomic::AtomicU64,
}

impl<E: Engine> SqlStore<E> {
    pub fn from_engine(engine: E) -> SqlStore<E> {
        SqlStore {
            engine,
            session: Default::default(),
        }
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The session this handle registered, 0 if none.
    fn session(&self) -> u64 {
        self.session.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` in one write transaction (perhaps more than once, see [`Engine::write`]).
    fn write<T>(&self, mut f: impl FnMut(&dyn Tx) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.engine.write(&mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        Ok(out.expect("a committed write transaction ran its closure"))
    }

    /// Runs `f` in one read transaction.
    fn read<T>(&self, mut f: impl FnMut(&dyn Tx) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.engine.read(&mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        Ok(out.expect("a read transaction ran its closure"))
    }
}

/// A store under test, with raw transactions for the tests that plant corruption.
#[cfg(test)]
pub(crate) trait TestStore: crate::MetaStore {
    fn raw(&self, write: bool, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()>;
}

#[cfg(test)]
impl<E: Engine> TestStore for SqlStore<E> {
    fn raw(&self, write: bool, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()> {
        if write {
            self.engine.write(f)
        } else {
            self.engine.read(f)
        }
    }
}

#[cfg(test)]
impl dyn TestStore {
    pub(crate) fn write<T>(&self, mut f: impl FnMut(&dyn Tx) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.raw(true, &mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        Ok(out.expect("ran"))
    }

    pub(crate) fn read<T>(&self, mut f: impl FnMut(&dyn Tx) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.raw(false, &mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        Ok(out.expect("ran"))
    }
}

#[cfg(test)]
mod alloc_tests;
#[cfg(test)]
mod holder_tests;
#[cfg(test)]
mod lock_tests;
#[cfg(test)]
mod music_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod trash_tests;
