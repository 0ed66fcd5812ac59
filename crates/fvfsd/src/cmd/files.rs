//! `fvfsd stat|pin|unpin|warmup PATH`: per-file tier state, run against the metadata
//! (beside a live mount or without one). PATH is a path inside the filesystem
//! ("/photos/a.jpg") or an absolute path under a live mount of it.

use super::status::human;
use crate::engine::{open_meta, Engine};
use anyhow::{bail, Context, Result};
use fvfs_meta::MetaStore;
use fvfs_types::{FileKind, Ino, ROOT_INO};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Component, Path};

/// The inode a path names.
pub fn resolve(meta: &dyn MetaStore, path: &Path) -> Result<Ino> {
    let mut rel = path.to_path_buf();
    for s in meta.sessions()? {
        if let Ok(r) = path.strip_prefix(&s.mountpoint) {
            rel = Path::new("/").join(r);
            break;
        }
    }
    let mut ino = ROOT_INO;
    for c in rel.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => {
                use std::os::unix::ffi::OsStrExt;
                ino = meta
                    .lookup(ino, name.as_bytes())
                    .with_context(|| format!("{}: no such file in the filesystem", path.display()))?
                    .ino;
            }
            Component::ParentDir => bail!("{}: `..` is not allowed here", path.display()),
            Component::Prefix(_) => bail!("{}: not a filesystem path", path.display()),
        }
    }
    Ok(ino)
}

/// Regular files at or below `ino` (depth-first).
fn files_under(meta: &dyn MetaStore, ino: Ino) -> Result<Vec<Ino>> {
    let mut out = Vec::new();
    let mut stack = vec![ino];
    while let Some(i) = stack.pop() {
        let a = meta.getattr(i)?;
        match a.kind {
            FileKind::File => out.push(i),
            FileKind::Dir => {
                let mut cookie = 0;
                loop {
                    let page = meta.readdir(i, cookie, 1024)?;
                    let Some(last) = page.last() else { break };
                    cookie = last.cookie;
                    stack.extend(page.iter().map(|e| e.ino));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn mask_names(mask: u32, names: &[String]) -> String {
    let v: Vec<&str> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| n.as_str())
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join("+")
    }
}

pub fn stat(meta_url: &str, path: &Path) -> Result<()> {
    let meta = open_meta(meta_url)?;
    let names = meta.settings()?.tier_names();
    let ino = resolve(meta.as_ref(), path)?;
    let a = meta.getattr(ino)?;
    println!("path     {}", path.display());
    println!(
        "inode    {ino} ({:?}, mode {:o}, uid {}, gid {})",
        a.kind, a.perm, a.uid, a.gid
    );
    println!("size     {} ({} bytes)", human(a.size), a.size);
    if a.kind == FileKind::File {
        let blocks = meta.file_blocks(ino)?;
        let mask = if blocks.is_empty() {
            0
        } else {
            blocks.iter().fold(u32::MAX, |m, b| m & b.tiers)
        };
        let any = blocks.iter().fold(0, |m, b| m | b.tiers);
        let stored: u64 = blocks.iter().map(|b| b.stored_size as u64).sum();
        println!("blocks   {} ({} stored)", blocks.len(), human(stored));
        println!(
            "tiers    0x{mask:x} ({}: every block), some blocks also on {}",
            mask_names(mask, &names),
            mask_names(any, &names)
        );
        for (i, n) in names.iter().enumerate() {
            let on = blocks.iter().filter(|b| b.tiers & (1 << i) != 0).count();
            println!("  {n:<8} {on}/{} blocks", blocks.len());
        }
        println!(
            "pinned   {}",
            if meta.is_pinned(ino)? { "yes" } else { "no" }
        );
    }
    Ok(())
}

async fn engine(meta_url: &str) -> Result<Engine> {
    Engine::open_direct(meta_url, false).await
}

pub async fn pin(meta_url: &str, path: &Path, pin: bool) -> Result<()> {
    let e = engine(meta_url).await?;
    let vfs = e.vfs_beside_mount()?;
    let root = resolve(e.meta.as_ref(), path)?;
    let files = files_under(e.meta.as_ref(), root)?;
    let mut blocks = 0;
    for ino in &files {
        blocks += vfs.pin(*ino, pin).await?;
    }
    println!(
        "{} {} file(s) ({blocks} blocks){}",
        if pin { "pinned" } else { "unpinned" },
        files.len(),
        if pin { " on the hot tier" } else { "" }
    );
    Ok(())
}

pub async fn warmup(meta_url: &str, path: &Path) -> Result<()> {
    let e = engine(meta_url).await?;
    let vfs = e.vfs_beside_mount()?;
    let root = resolve(e.meta.as_ref(), path)?;
    let files = files_under(e.meta.as_ref(), root)?;
    let mut total = 0;
    for ino in &files {
        total += e.meta.getattr(*ino)?.size;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "warming {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |n: u64| bar.inc(n);
    let mut done = 0;
    for ino in &files {
        done += vfs.warmup(*ino, &progress).await?;
    }
    bar.finish_and_clear();
    println!(
        "{} file(s), {} now on the hot tier",
        files.len(),
        human(done)
    );
    Ok(())
}
