//! `fvfsd export --parquet DIR`: the namespace and the HSM catalog as Parquet files, for
//! analysis with any Parquet reader (DuckDB, pandas, Spark). This crate owns the two
//! files' schemas (docs/FORMAT.md, "Parquet export") and their writing; it reads through
//! the engine only: [`fvfs_vfs::Vfs::walk`] for the namespace (beside a live mount, no
//! lock taken) and [`fvfs_engine::hsm::list`] for the catalog, never the metadata's tables.
//!
//! Layout: `namespace.rs` (`namespace.parquet`: one row per name), `hsm.rs`
//! (`hsm.parquet`: one row per catalog entry), `columns.rs` (column buffers with their
//! definition and repetition levels, row groups, the temporary file renamed into place).
//!
//! Invariants:
//! - A file appears under its final name only complete: it is written to a hidden
//!   temporary name in DIR, fsynced, renamed, and DIR fsynced. A failed or interrupted
//!   export leaves the previous file (or none), never a part of one; a failed export
//!   removes its temporary file.
//! - Memory is bounded by one row group (at most [`ROW_GROUP_ROWS`] rows or about
//!   [`ROW_GROUP_BYTES`] of buffered values), never by the size of the namespace. The HSM
//!   catalog is read whole, as `fvfsd hsm ls` reads it.
//! - Each leaf column is written under the name the schema gives it, in schema order
//!   (checked while writing: a mismatch is an error, not a shifted column).
//! - An empty namespace or catalog gives a valid file with 0 rows.
//! - The namespace is not a snapshot beside a live mount (see [`fvfs_vfs::Walk`]).

mod columns;
mod hsm;
mod namespace;

use std::path::{Path, PathBuf};

pub use hsm::{write_hsm, HSM_FILE, HSM_SCHEMA};
pub use namespace::{write_namespace, NAMESPACE_FILE, NAMESPACE_SCHEMA};

/// Rows per row group at most.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Bytes of buffered values after which a row group is written early (files with very
/// many blocks).
pub const ROW_GROUP_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Engine(#[from] fvfs_engine::EngineError),
    #[error(transparent)]
    Vfs(#[from] fvfs_vfs::VfsError),
    /// The writer and the schema disagree on a column (a bug, caught before any row of
    /// the file is written under its final name).
    #[error("column `{found}` of the schema where `{expected}` was written")]
    Column { expected: String, found: String },
}

impl ExportError {
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| ExportError::Io { what, path, source }
    }
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// One file an export wrote.
#[derive(Clone, Debug)]
pub struct Written {
    pub path: PathBuf,
    pub rows: u64,
}

/// Writes `DIR/namespace.parquet` and `DIR/hsm.parquet` (DIR is created when missing)
/// for the filesystem at `meta_url`. Runs beside a live mount or daemon: it only reads.
/// Returns the files in the order written.
pub fn export(meta_url: &str, dir: &Path) -> Result<Vec<Written>> {
    let engine =
        fvfs_engine::Engine::open_unchecked(fvfs_engine::EngineOpts::direct(meta_url, false))?;
    let vfs = engine.vfs_beside_mount()?;
    std::fs::create_dir_all(dir).map_err(ExportError::io("create", dir))?;
    let names = vfs.settings().tier_names();
    let path = dir.join(NAMESPACE_FILE);
    let rows = write_namespace(vfs.walk(), &names, &path)?;
    let namespace = Written { path, rows };
    let dirs = fvfs_engine::hsm::dirs(meta_url)?;
    let catalog = fvfs_engine::hsm::list(meta_url)?;
    let path = dir.join(HSM_FILE);
    let rows = write_hsm(&catalog, &dirs, &path)?;
    Ok(vec![namespace, Written { path, rows }])
}
