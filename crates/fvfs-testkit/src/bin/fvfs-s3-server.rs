//! `fvfs-s3-server`: serves a directory as an S3 endpoint for CI scripts.
//!
//! Usage: `fvfs-s3-server --root DIR [--bucket fvfs] [--port 0] [--access-key K --secret-key S]`.
//! Prints exactly one line `endpoint=http://127.0.0.1:PORT bucket=NAME` on stdout once
//! it accepts connections, then serves until SIGTERM or SIGINT.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use fvfs_testkit::{S3Server, DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY};

const USAGE: &str =
    "usage: fvfs-s3-server --root DIR [--bucket fvfs] [--port 0] [--access-key K --secret-key S]";

struct Args {
    root: PathBuf,
    bucket: String,
    port: u16,
    access_key: String,
    secret_key: String,
}

fn parse_args() -> Result<Args, String> {
    let mut root = None;
    let mut bucket = "fvfs".to_string();
    let mut port = 0u16;
    let mut access_key = None;
    let mut secret_key = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("missing value after {flag}"))?;
        match flag.as_str() {
            "--root" => root = Some(PathBuf::from(value)),
            "--bucket" => bucket = value,
            "--port" => {
                port = value
                    .parse()
                    .map_err(|_| format!("invalid port {value:?}"))?
            }
            "--access-key" => access_key = Some(value),
            "--secret-key" => secret_key = Some(value),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let root = root.ok_or("--root is required")?;
    let (access_key, secret_key) = match (access_key, secret_key) {
        (Some(a), Some(s)) => (a, s),
        (None, None) => (
            DEFAULT_ACCESS_KEY.to_string(),
            DEFAULT_SECRET_KEY.to_string(),
        ),
        _ => return Err("--access-key and --secret-key go together".to_string()),
    };
    Ok(Args {
        root,
        bucket,
        port,
        access_key,
        secret_key,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("fvfs-s3-server: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let srv = match S3Server::start_with(
        &args.root,
        &args.bucket,
        args.port,
        &args.access_key,
        &args.secret_key,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "fvfs-s3-server: cannot serve {} on port {}: {e}",
                args.root.display(),
                args.port
            );
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "endpoint={} bucket={}", srv.endpoint, srv.bucket)
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(out);
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fvfs-s3-server: cannot install SIGTERM handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    srv.stop().await;
    ExitCode::SUCCESS
}
