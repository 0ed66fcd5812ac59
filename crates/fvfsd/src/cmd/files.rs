//! `fvfsd stat|pin|unpin|warmup|compact PATH`: per-file tier state and layout, run beside a live mount or
//! without one. PATH is a path inside the filesystem ("/photos/a.jpg") or an absolute
//! path under a live mount of it (`fvfs_engine::files::resolve`).

use super::status::human;
use super::tiers::beside_mount;
use anyhow::Result;
use fvfs_engine::files::{files_under, resolve};
use fvfs_types::FileKind;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;

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

pub async fn stat(meta_url: &str, path: &Path) -> Result<()> {
    let (_engine, vfs) = beside_mount(meta_url).await?;
    let names = vfs.settings().tier_names();
    let a = resolve(&vfs, path)?;
    println!("path     {}", path.display());
    println!(
        "inode    {} ({:?}, mode {:o}, uid {}, gid {})",
        a.ino, a.kind, a.perm, a.uid, a.gid
    );
    println!("size     {} ({} bytes)", human(a.size), a.size);
    if a.kind == FileKind::File {
        let f = vfs.file_blocks(a.ino)?;
        let n = f.blocks.len();
        let mask = f.on_every_block();
        println!("blocks   {n} ({} stored)", human(f.stored_bytes()));
        println!(
            "tiers    0x{mask:x} ({}: every block), some blocks also on {}",
            mask_names(mask, &names),
            mask_names(f.on_some_block(), &names)
        );
        for (i, name) in names.iter().enumerate() {
            let on = f.blocks.iter().filter(|b| b.tiers & (1 << i) != 0).count();
            println!("  {name:<8} {on}/{n} blocks");
        }
        println!("pinned   {}", if f.pinned { "yes" } else { "no" });
    }
    Ok(())
}

pub async fn pin(meta_url: &str, path: &Path, pin: bool) -> Result<()> {
    let (_engine, vfs) = beside_mount(meta_url).await?;
    let files = files_under(&vfs, resolve(&vfs, path)?.ino)?;
    let mut blocks = 0;
    for a in &files {
        blocks += vfs.pin(a.ino, pin).await?;
    }
    println!(
        "{} {} file(s) ({blocks} blocks){}",
        if pin { "pinned" } else { "unpinned" },
        files.len(),
        if pin { " on the hot tier" } else { "" }
    );
    Ok(())
}

pub async fn compact(meta_url: &str, path: &Path) -> Result<()> {
    let (_engine, vfs) = beside_mount(meta_url).await?;
    let files = files_under(&vfs, resolve(&vfs, path)?.ino)?;
    let (mut before, mut after) = (0, 0);
    for a in &files {
        let (b, n) = vfs.compact_file(a.ino).await?;
        before += b;
        after += n;
    }
    println!(
        "compacted {} file(s): {before} slices -> {after}",
        files.len()
    );
    Ok(())
}

pub async fn warmup(meta_url: &str, path: &Path) -> Result<()> {
    let (_engine, vfs) = beside_mount(meta_url).await?;
    let files = files_under(&vfs, resolve(&vfs, path)?.ino)?;
    let total = files.iter().map(|a| a.size).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "warming {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |n: u64| bar.inc(n);
    let mut done = 0;
    for a in &files {
        done += vfs.warmup(a.ino, &progress).await?;
    }
    bar.finish_and_clear();
    println!(
        "{} file(s), {} now on the hot tier",
        files.len(),
        human(done)
    );
    Ok(())
}
