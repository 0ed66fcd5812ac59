//! `fvfsd dump FILE` and `fvfsd load FILE`: the metadata to and from the JSON dump
//! (fvfs-engine `dump`).

use anyhow::Result;
use std::path::Path;

pub fn dump(meta_url: &str, file: &Path) -> Result<i32> {
    let t = fvfs_engine::dump::dump(meta_url, file)?;
    // With "-" the dump is standard output: the summary goes to standard error.
    eprintln!(
        "dumped {} rows of {} tables to {}",
        t.rows,
        t.tables,
        file.display()
    );
    Ok(0)
}

pub fn load(meta_url: &str, file: &Path) -> Result<i32> {
    let t = fvfs_engine::dump::load(meta_url, file)?;
    println!(
        "loaded {} rows of {} tables from {} into {}",
        t.rows,
        t.tables,
        file.display(),
        fvfs_engine::redact(meta_url)
    );
    Ok(0)
}
