//! The file commands of `fvfsc`: ls, cat, put, rm, stat, mkdir, mv.
//!
//! Invariants: file bodies are streamed both ways, never held whole in memory; `put` of a
//! regular file sends its length and BLAKE3 (computed first, in a read pass), so a file
//! that changes while it uploads is refused by the daemon rather than stored torn; `cat`
//! to a closed pipe ends quietly with success.

use crate::format::{base_name, long_line, mode_string, parse_range};
use crate::{connect, print_json, Cli, Cmd};
use anyhow::{bail, Context};
use futures::StreamExt;
use fvfs_client::client::{window, ByteStream};
use fvfs_client::{Client, ClientError};
use fvfs_types::api::{CreateRequest, ErrorCode, Kind, RenameRequest, Stat};
use std::io::ErrorKind;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

/// Read size of uploads.
const CHUNK: usize = 256 << 10;

pub async fn run(cli: &Cli) -> anyhow::Result<()> {
    let c = connect(cli).await?;
    let json = cli.json;
    match &cli.cmd {
        Cmd::Ls { path, one } => ls(&c, path, *one, json).await,
        Cmd::Cat {
            path,
            range,
            offset,
            length,
        } => {
            let (off, len) = match range {
                Some(r) => parse_range(r).map_err(anyhow::Error::msg)?,
                None => (offset.unwrap_or(0), *length),
            };
            cat(&c, path, off, len).await.context(path.clone())
        }
        Cmd::Put {
            src,
            dest,
            parents,
            mode,
        } => {
            let st = put(&c, src, dest, *parents, *mode)
                .await
                .with_context(|| format!("put {src} {dest}"))?;
            if json {
                print_json(&st)
            } else {
                println!("{} {} bytes", st.path, st.size);
                Ok(())
            }
        }
        Cmd::Rm { path } => Ok(c.delete(path).await.context(path.clone())?),
        Cmd::Stat { path } => {
            let st = c.stat(path).await.context(path.clone())?;
            if json {
                print_json(&st)
            } else {
                print_stat(&st);
                Ok(())
            }
        }
        Cmd::Mkdir {
            path,
            parents,
            mode,
        } => {
            let req = CreateRequest {
                mode: *mode,
                parents: parents.then_some(true),
                ..Default::default()
            };
            let st = c.mkdir(path, &req).await.context(path.clone())?;
            if json {
                print_json(&st)?;
            }
            Ok(())
        }
        Cmd::Mv {
            from,
            to,
            no_clobber,
        } => {
            let st = c
                .rename(&RenameRequest {
                    from: from.clone(),
                    to: to.clone(),
                    noreplace: *no_clobber,
                })
                .await
                .with_context(|| format!("{from} → {to}"))?;
            if json {
                print_json(&st)?;
            }
            Ok(())
        }
        _ => bail!("not a file command"),
    }
}

async fn ls(c: &Client, path: &str, one: bool, json: bool) -> anyhow::Result<()> {
    let listing = match c.ls(path).await {
        Ok(l) => l,
        // Like ls(1): a file lists as itself.
        Err(ClientError::Api {
            code: ErrorCode::NotDir,
            ..
        }) => {
            let st = c.stat(path).await.context(path.to_string())?;
            if json {
                return print_json(&st);
            }
            let name = base_name(&st.path).to_string();
            println!(
                "{}",
                if one {
                    name.clone()
                } else {
                    long_line(&st, &name, 1)
                }
            );
            return Ok(());
        }
        Err(e) => return Err(anyhow::Error::new(e).context(path.to_string())),
    };
    if json {
        return print_json(&listing);
    }
    let width = listing
        .entries
        .iter()
        .map(|e| e.size.to_string().len())
        .max()
        .unwrap_or(1);
    for e in &listing.entries {
        let name = base_name(&e.path);
        if one {
            println!("{name}");
        } else {
            println!("{}", long_line(e, name, width));
        }
    }
    Ok(())
}

async fn cat(c: &Client, path: &str, offset: u64, len: Option<u64>) -> anyhow::Result<()> {
    let mut body = c.get(path, offset, len).await?;
    let mut out = tokio::io::stdout();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("reading {path}"))?;
        match out.write_all(&chunk).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("writing to stdout"),
        }
    }
    match out.flush().await {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

/// BLAKE3 (hex) and length of a file, read once.
async fn hash_file(path: std::path::PathBuf) -> anyhow::Result<(String, u64)> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<(String, u64)> {
        let f = std::fs::File::open(&path).with_context(|| format!("{}", path.display()))?;
        let mut h = blake3::Hasher::new();
        h.update_reader(std::io::BufReader::with_capacity(CHUNK, f))
            .with_context(|| format!("reading {}", path.display()))?;
        Ok((h.finalize().to_hex().to_string(), h.count()))
    })
    .await?
}

async fn put(
    c: &Client,
    src: &str,
    dest: &str,
    parents: bool,
    mode: Option<u32>,
) -> anyhow::Result<Stat> {
    let opts = CreateRequest {
        mode,
        parents: parents.then_some(true),
        ..Default::default()
    };
    if src == "-" {
        if dest.ends_with('/') {
            bail!("put from stdin needs a file name, not the directory {dest}");
        }
        let body: ByteStream = Box::pin(ReaderStream::with_capacity(tokio::io::stdin(), CHUNK));
        return Ok(c.put(dest, body, None, None, &opts).await?);
    }
    let dest = if dest.ends_with('/') {
        let name = std::path::Path::new(src)
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{src} has no file name"))?;
        format!("{dest}{name}")
    } else {
        dest.to_string()
    };
    let meta = tokio::fs::metadata(src)
        .await
        .with_context(|| src.to_string())?;
    if meta.is_dir() {
        bail!("{src} is a directory (put uploads one file)");
    }
    let file = tokio::fs::File::open(src)
        .await
        .with_context(|| src.to_string())?;
    if !meta.is_file() {
        // A pipe or device: stream it as it comes.
        let body: ByteStream = Box::pin(ReaderStream::with_capacity(file, CHUNK));
        return Ok(c.put(&dest, body, None, None, &opts).await?);
    }
    let (hash, len) = hash_file(src.into()).await?;
    // The body stops at the hashed length: a file that grew since is caught by the daemon
    // (hash mismatch) instead of sending more than Content-Length.
    let stream: ByteStream = Box::pin(ReaderStream::with_capacity(file, CHUNK));
    let body = window(stream, 0, Some(len));
    Ok(c.put(&dest, body, Some(len), Some(&hash), &opts).await?)
}

fn print_stat(st: &Stat) {
    println!("  path: {}", st.path);
    println!(
        "  kind: {:?}  size: {}  mode: {:04o} ({})",
        st.kind,
        st.size,
        st.mode,
        mode_string(st.kind, st.mode)
    );
    println!(
        "  ino: {}  links: {}  uid: {}  gid: {}",
        st.ino, st.nlink, st.uid, st.gid
    );
    println!("  modify: {} UTC", crate::format::date_ns(st.mtime_ns));
    println!("  change: {} UTC", crate::format::date_ns(st.ctime_ns));
    println!("  access: {} UTC", crate::format::date_ns(st.atime_ns));
    if st.kind == Kind::File {
        println!("  tiers: {:#b}", st.tiers);
    }
    if let Some(e) = &st.etag {
        println!("  etag: {e}");
    }
    if let Some(t) = &st.target {
        println!("  target: {t}");
    }
}
