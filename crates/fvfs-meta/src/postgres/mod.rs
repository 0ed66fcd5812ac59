//! The shared metadata engine: PostgreSQL, for several hosts mounting one filesystem.
//!
//! Owns the connections, the transactions and what is PostgreSQL's own (`schema.rs`:
//! the DDL, versioned like SQLite's; `tx.rs`: the [`Tx`] and the dialect translation).
//!
//! Invariants:
//! - Write transactions run at SERIALIZABLE: two hosts' operations on the same rows
//!   behave as if one ran after the other, as on SQLite's single writer. A transaction
//!   that loses a conflict (SQLSTATE 40001/40P01) is rolled back and run again, up to
//!   [`MAX_ATTEMPTS`]; its closure has no effect outside the transaction.
//! - Reads run at REPEATABLE READ, READ ONLY: one consistent snapshot per operation.
//! - A transaction's BEGIN travels with its first statement (pipelined: one round trip),
//!   and a transaction that ran no statement sends nothing.
//! - Durability as on SQLite (`synchronous=NORMAL`): a committed operation survives a
//!   crash of this process at once (the server has it), and a crash of the server after
//!   the next `sync`. Write transactions commit with `synchronous_commit = off` (no WAL
//!   flush each); `sync` commits one transaction with it on, which waits for the WAL
//!   flush that covers every earlier commit.
//! - The connection string's password never reaches a log or an error; without one in
//!   the URL it comes from `PGPASSWORD` or the password file (`PGPASSFILE`, `~/.pgpass`).
//!
//! The traits are synchronous and are called from FUSE threads and from async tasks
//! alike, so the client's futures are driven by a small runtime of this module's own
//! (the connections' I/O) and awaited with a thread-parking [`block_on`], which is safe
//! on any thread, inside a Tokio runtime or not.

mod pass;
mod schema;
mod tx;

use crate::error::{DbError, MetaError, Result};
use crate::sql::{Engine, SqlStore, Tx};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_postgres::{Client, NoTls, Statement};

/// Connections per store: one per concurrent operation of this host.
const POOL: usize = 8;
/// Runs of a write transaction that keeps losing conflicts before its error is returned.
pub const MAX_ATTEMPTS: u32 = 50;
/// Prepared statements kept per connection (the operations use fewer; dumps add one per
/// table).
const STATEMENTS: usize = 512;

/// The metadata store on PostgreSQL.
pub type PgStore = SqlStore<Postgres>;

/// Runs `fut` to completion on this thread, parking between polls.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// The runtime that drives every connection's socket.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fvfs-postgres")
            .enable_all()
            .build()
            .expect("the PostgreSQL connection runtime starts")
    })
}

/// A driver error as a [`MetaError`]: its SQLSTATE and message, never the URL.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> MetaError {
    match e.as_db_error() {
        Some(db) => MetaError::Db(DbError::Postgres {
            code: db.code().code().to_string(),
            message: db.message().to_string(),
        }),
        None => {
            // The driver's own failures (a parameter that does not convert, a closed
            // socket) carry their reason in the source chain.
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            MetaError::Db(DbError::Connection(msg))
        }
    }
}

fn is_conflict(e: &MetaError) -> bool {
    matches!(e, MetaError::Db(DbError::Postgres { code, .. }) if code == "40001" || code == "40P01")
}

/// One connection and its prepared statements.
pub(crate) struct Conn {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
}

impl Conn {
    /// The prepared form of `sql` (SQLite dialect), prepared on first use.
    fn statement(&self, sql: &str) -> Result<Statement> {
        if let Some(st) = self.statements.lock().get(sql) {
            return Ok(st.clone());
        }
        let st = block_on(self.client.prepare(&tx::translate(sql))).map_err(pg_error)?;
        let mut cache = self.statements.lock();
        if cache.len() >= STATEMENTS {
            cache.clear();
        }
        cache.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    fn simple(&self, sql: &str) -> Result<()> {
        block_on(self.client.batch_execute(sql)).map_err(pg_error)
    }
}

/// The PostgreSQL engine: a pool of connections to one database.
pub struct Postgres {
    config: tokio_postgres::Config,
    /// The URL with its password masked.
    shown: String,
    pool: Vec<Mutex<Option<Conn>>>,
    next: AtomicUsize,
}

/// The connection settings of `url`: its password, when it has none, from `PGPASSWORD`
/// or the password file.
fn config(url: &str, shown: &str) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| MetaError::BadUrl {
        url: shown.to_string(),
        why: format!("{e}"),
    })?;
    if config.get_password().is_none() {
        if let Some(pw) = pass::password(&config) {
            config.password(pw);
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name("fvfs");
    Ok(config)
}

/// One connection of its own, its socket driven by the module's runtime.
fn connect(config: &tokio_postgres::Config) -> Result<Client> {
    let config = config.clone();
    let (client, connection) =
        block_on(runtime().spawn(async move { config.connect(NoTls).await }))
            .map_err(|e| MetaError::Db(DbError::Connection(e.to_string())))?
            .map_err(pg_error)?;
    runtime().spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// The right to use a filesystem whose metadata is on PostgreSQL: a session-level
/// advisory lock on a connection of its own, keyed by the filesystem's schema, held
/// shared by every mount (of any host) and exclusively by a command that must run alone.
/// The server releases it when the connection ends, so a killed process never leaves it
/// behind.
pub struct MountLease {
    _client: Client,
}

impl MountLease {
    /// Takes the lease, `shared` or exclusive; `None` when a holder of the other kind
    /// (or, exclusive, any holder) has it.
    pub fn take(url: &str, shown: &str, shared: bool) -> Result<Option<MountLease>> {
        let client = connect(&config(url, shown)?)?;
        let sql = if shared {
            "SELECT pg_try_advisory_lock_shared(hashtext(current_schema() || ':fvfs-mount'))"
        } else {
            "SELECT pg_try_advisory_lock(hashtext(current_schema() || ':fvfs-mount'))"
        };
        let row = block_on(client.query_one(sql, &[])).map_err(pg_error)?;
        let got: bool = row.try_get(0).map_err(pg_error)?;
        Ok(got.then_some(MountLease { _client: client }))
    }
}

impl Postgres {
    /// Connects to the database `url` names and brings its schema up to date; with
    /// `create`, creates the schema in an empty database.
    pub fn open(url: &str, shown: String, create: bool) -> Result<Postgres> {
        let config = config(url, &shown)?;
        let pg = Postgres {
            config,
            shown,
            pool: (0..POOL).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        };
        pg.with_conn(|c| schema::migrate(c, create, &pg.shown))?;
        Ok(pg)
    }

    fn connect(&self) -> Result<Conn> {
        Ok(Conn {
            client: connect(&self.config)?,
            statements: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `f` on a free connection (a new one if the last broke).
    fn with_conn<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut guard = None;
        for i in 0..self.pool.len() {
            if let Some(g) = self.pool[(start + i) % self.pool.len()].try_lock() {
                guard = Some(g);
                break;
            }
        }
        let mut slot = match guard {
            Some(g) => g,
            None => self.pool[start % self.pool.len()].lock(),
        };
        if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
            *slot = Some(self.connect()?);
        }
        f(slot.as_ref().expect("connected above"))
    }

    /// One transaction: `begin`, `f`, COMMIT; ROLLBACK on any error.
    fn transaction(
        &self,
        begin: &'static str,
        f: &mut dyn FnMut(&dyn Tx) -> Result<()>,
    ) -> Result<()> {
        self.with_conn(|conn| {
            let tx = tx::PgTx {
                conn,
                begin: std::cell::Cell::new(Some(begin)),
            };
            let out = f(&tx);
            if !tx.begun() {
                return out;
            }
            let out = out.and_then(|()| conn.simple("COMMIT"));
            if out.is_err() && !conn.client.is_closed() {
                let _ = conn.simple("ROLLBACK");
            }
            out
        })
    }
}

impl Engine for Postgres {
    fn write(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.transaction(
                "BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL synchronous_commit = off",
                f,
            ) {
                Err(e) if is_conflict(&e) && attempt < MAX_ATTEMPTS => {
                    // Back off a little more each time, with jitter, so that the hosts
                    // that collided do not collide again.
                    let jitter = (std::process::id() as u64 ^ (attempt as u64 * 7919)) % 500;
                    std::thread::sleep(Duration::from_micros(
                        200 * attempt.min(20) as u64 + jitter,
                    ));
                    attempt += 1;
                }
                out => return out,
            }
        }
    }

    fn read(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()> {
        self.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", f)
    }

    fn location(&self) -> String {
        self.shown.clone()
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn sync(&self) -> Result<()> {
        // A transaction that writes (it takes a transaction id) and commits with
        // synchronous_commit on waits for the server's WAL to be flushed up to its commit
        // record, and with it every earlier commit of this filesystem.
        self.with_conn(|c| {
            c.simple("BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT")
        })
    }

    fn snapshot(&self, _dest: &Path) -> Result<()> {
        Err(MetaError::Invalid(
            "metadata on PostgreSQL is backed up by the server (pg_dump, WAL archiving), not by fvfs",
        ))
    }

    fn tables(&self, tx: &dyn Tx) -> Result<Vec<String>> {
        schema::tables(tx)
    }

    fn columns(&self, tx: &dyn Tx, table: &str) -> Result<(Vec<String>, Vec<String>)> {
        schema::columns(tx, table)
    }

    fn after_load(&self, tx: &dyn Tx) -> Result<()> {
        schema::reset_sequences(tx)
    }
}

/// Creates a new, empty schema in the database `server` names and returns a URL whose
/// connections use it (`options=-csearch_path=…`): a filesystem of its own beside
/// others in one database (tests; hosting several filesystems on one server).
pub fn fresh_schema(server: &str) -> Result<String> {
    let shown = crate::MetaUrl::Postgres(server.to_string()).display();
    let client = connect(&config(server, &shown)?)?;
    let name = format!("fvfs_{}", uuid::Uuid::new_v4().simple());
    block_on(client.batch_execute(&format!("CREATE SCHEMA {name}"))).map_err(pg_error)?;
    let sep = if server.contains('?') { '&' } else { '?' };
    Ok(format!("{server}{sep}options=-csearch_path%3D{name}"))
}

impl SqlStore<Postgres> {
    /// Connects to the database `url` names (see [`Postgres::open`]).
    pub fn open(url: &str, shown: String, create: bool) -> Result<PgStore> {
        Postgres::open(url, shown, create).map(SqlStore::from_engine)
    }
}
