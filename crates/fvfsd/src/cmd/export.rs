//! `fvfsd export --parquet DIR`: the namespace and the HSM catalog as Parquet files
//! (fvfs-export; the columns are in docs/FORMAT.md). It only reads the metadata.

use anyhow::Result;
use std::path::Path;

pub fn run(meta_url: &str, dir: &Path) -> Result<i32> {
    for w in fvfs_export::export(meta_url, dir)? {
        println!("{} {} rows", w.path.display(), w.rows);
    }
    Ok(0)
}
