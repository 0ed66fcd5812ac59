//! `fvfsc`: the LAN client of fvfs. This build is a skeleton: it parses the command line
//! of the client (ls, cat, put, rm, stat, mkdir, mv, status, wal, mount, login) and says
//! that the HTTP API it talks to is not served yet. It links neither SQLite nor any
//! storage SDK, and must stay that way.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "fvfsc", version, about = "fvfs LAN client")]
struct Cli {
    /// Daemon URL; overrides mDNS discovery (also FVFSD_URL / VFSD_URL).
    #[arg(long, env = "FVFSD_URL")]
    url: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Ls { path: String },
    Cat { path: String },
    Put { path: String, file: Option<PathBuf> },
    Rm { path: String },
    Stat { path: String },
    Mkdir { path: String },
    Mv { from: String, to: String },
    Status,
    Wal,
    Mount { mountpoint: PathBuf },
    Login,
}

fn main() {
    let cli = Cli::parse();
    let _ = (cli.url, cli.cmd);
    eprintln!("fvfsc: the fvfsd HTTP API is not available in this version yet; use `fvfsd mount` on the storage host");
    std::process::exit(2);
}
