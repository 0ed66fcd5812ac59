//! `fvfsd migrate`: the mapping of command-line sources to destination paths, a
//! progress bar, and the summary printed after `fvfs_engine::import::import`.

use crate::cmd::status::human;
use anyhow::{bail, Context, Result};
use fvfs_engine::import::{import, ImportArgs, ImportProgress, Source};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Maps the command line to sources: `--local-src D` → `<dest>/local/<basename D>`,
/// `--nas-src D` → `<dest>/nas/<basename D>`, `--src D:/path` → `/path`.
pub fn plan(
    local: &[PathBuf],
    nas: &[PathBuf],
    explicit: &[String],
    dest: &str,
) -> Result<Vec<Source>> {
    check_dest(dest)?;
    let mut out = Vec::new();
    for (dirs, tier) in [(local, "local"), (nas, "nas")] {
        for d in dirs {
            let base = d
                .canonicalize()
                .with_context(|| format!("source {}", d.display()))?;
            let name = base
                .file_name()
                .with_context(|| format!("source {} has no name to import it under", d.display()))?
                .to_string_lossy()
                .into_owned();
            out.push(Source {
                dir: d.clone(),
                dest: format!("{}/{tier}/{name}", dest.trim_end_matches('/')),
            });
        }
    }
    for s in explicit {
        // The last ':' followed by an absolute path splits DIR from DEST.
        let split = s
            .char_indices()
            .rev()
            .find(|&(i, c)| c == ':' && s[i + 1..].starts_with('/'))
            .map(|(i, _)| i);
        let Some(i) = split else {
            bail!("--src {s:?}: expected DIR:/path/in/fvfs");
        };
        let (dir, path) = (&s[..i], &s[i + 1..]);
        if dir.is_empty() {
            bail!("--src {s:?}: the source directory is empty");
        }
        check_dest(path)?;
        out.push(Source {
            dir: PathBuf::from(dir),
            dest: path.to_string(),
        });
    }
    if out.is_empty() {
        bail!("nothing to import: give --local-src, --nas-src or --src DIR:/path");
    }
    for s in &out {
        let m = std::fs::metadata(&s.dir)
            .with_context(|| format!("cannot read source {}", s.dir.display()))?;
        if !m.is_dir() {
            bail!("source {} is not a directory", s.dir.display());
        }
    }
    Ok(out)
}

fn check_dest(dest: &str) -> Result<()> {
    if !dest.starts_with('/') {
        bail!("destination {dest:?} must be an absolute path inside the filesystem");
    }
    if Path::new(dest)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        bail!("destination {dest:?} must not contain '..'");
    }
    Ok(())
}

/// The progress bar of an import; entry errors are printed above it.
struct Bar(ProgressBar);

impl ImportProgress for Bar {
    fn add_total(&self, n: u64) {
        self.0.inc_length(n);
    }
    fn resize(&self, old: u64, new: u64) {
        let total = self.0.length().unwrap_or(0) + new;
        self.0.set_length(total.saturating_sub(old));
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn status(&self, msg: String) {
        self.0.set_message(msg);
    }
    fn entry(&self, path: &Path, what: &str, warning: bool) {
        let level = if warning { "warning" } else { "error" };
        self.0
            .suspend(|| eprintln!("fvfsd: {level}: {}: {what}", path.display()));
    }
}

/// Imports the trees; returns the exit status (1 if any entry failed).
pub fn run(args: ImportArgs) -> Result<i32> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = Arc::new(Bar(bar));
    let r = import(args, progress.clone())?;
    progress.0.finish_and_clear();
    let ratio = r
        .dedup_ratio()
        .map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}"));
    println!("files imported      {}", r.files);
    println!("files skipped       {} (already there)", r.skipped);
    println!(
        "bytes read          {} ({})",
        r.bytes_read,
        human(r.bytes_read)
    );
    println!(
        "unique bytes added  {} ({})",
        r.unique_bytes_added,
        human(r.unique_bytes_added)
    );
    println!("dedup ratio         {ratio}");
    println!(
        "symlinks            {} ({} already there)",
        r.symlinks, r.symlinks_skipped
    );
    println!("dirs                {}", r.dirs);
    println!("other kinds skipped {}", r.other);
    if r.queued > 0 {
        println!(
            "replication         {} block copies still queued (the next mount or serve makes them)",
            r.queued
        );
    }
    println!("errors              {}", r.errors);
    Ok(if r.errors > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_src_splits_at_the_last_colon_before_an_absolute_path() {
        let d = std::env::temp_dir();
        let arg = format!("{}:/imp/a:b", d.display());
        let p = plan(&[], &[], &[arg], "/").unwrap();
        assert_eq!(p[0].dir, d);
        assert_eq!(p[0].dest, "/imp/a:b");
        assert!(plan(&[], &[], &["nodest".into()], "/").is_err());
        assert!(plan(&[], &[], &[format!("{}:/x/../y", d.display())], "/").is_err());
        assert!(plan(&[], &[], &[], "/").is_err());
    }

    #[test]
    fn local_and_nas_go_under_dest_by_basename() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("photos");
        std::fs::create_dir(&a).unwrap();
        let p = plan(
            std::slice::from_ref(&a),
            std::slice::from_ref(&a),
            &[],
            "/imported/",
        )
        .unwrap();
        assert_eq!(p[0].dest, "/imported/local/photos");
        assert_eq!(p[1].dest, "/imported/nas/photos");
        let p = plan(&[a], &[], &[], "/").unwrap();
        assert_eq!(p[0].dest, "/local/photos");
    }
}
