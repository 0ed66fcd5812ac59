//! `fvfsd token create|list|revoke` and the daemon's state directory set-up at format time
//! (token file, the `admin` token, the TLS certificate).
//!
//! Invariants: a secret is shown once (on stdout, when it is created) and otherwise only
//! stored in `<state>/admin.token` (mode 0600) for the `admin` token made at set-up; the
//! token file holds hashes only. A running daemon re-reads the token file at its next
//! request, so these commands need no daemon and no restart. A token acts as one uid:gid
//! (`fvfsd token create --uid --gid`; default: the owner of the root directory, read from
//! the metadata when the token is made); the `admin` token made at set-up is an admin
//! token acting as whoever formatted (the owner of the new root directory).

use anyhow::{Context, Result};
use fvfs_api::auth::{write_private, NewToken, TokenInfo, TokenStore};
use std::io::IsTerminal;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub const TOKENS_FILE: &str = "tokens.json";
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Creates the state directory (mode 0700) if it is missing. An existing one is left as
/// it is (it may be a directory the user shares with other things, such as the one holding
/// the database), with a warning when other local users can enter it.
pub fn ensure_state_dir(state: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(state) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    dir = %state.display(),
                    mode = format!("{mode:o}"),
                    "the state directory is open to other local users; `chmod 700` it"
                );
            }
        }
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state)
            .with_context(|| format!("cannot create the state directory {}", state.display()))?,
    }
    Ok(())
}

/// The token file of a state directory (created empty if missing).
pub fn store(state: &Path) -> Result<TokenStore> {
    ensure_state_dir(state)?;
    TokenStore::open(&state.join(TOKENS_FILE)).map_err(anyhow::Error::from)
}

/// What set-up created: the admin secret and where it is kept, if a new one was made.
pub struct Setup {
    pub admin: Option<(String, PathBuf)>,
    pub fingerprint: String,
}

/// Prepares the state directory of a newly formatted filesystem: the token file, an
/// `admin` token (unless one exists) saved in `admin.token`, and the TLS certificate
/// (kept if present: clients pin it).
pub fn init_state(state: &Path) -> Result<Setup> {
    let tokens = store(state)?;
    let mut admin = None;
    if !tokens.list()?.iter().any(|t| t.name == "admin") {
        // `format` gives the root directory to whoever formats (cmd/format.rs).
        // SAFETY: geteuid/getegid cannot fail and touch no memory.
        let owner = unsafe { (libc::geteuid(), libc::getegid()) };
        let new = NewToken {
            read_only: false,
            admin: true,
            identity: Some(owner),
        };
        let (_, secret) = tokens.create("admin", new)?;
        let path = state.join(ADMIN_TOKEN_FILE);
        write_private(&path, format!("{secret}\n").as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        admin = Some((secret, path));
    }
    let fingerprint = fvfs_api::tls::ensure(state, &fvfs_api::mdns::hostname())
        .context("cannot create the TLS certificate")?;
    Ok(Setup { admin, fingerprint })
}

/// Tells the operator about a new admin token: the secret itself on a terminal, only its
/// file otherwise (stdout of a service ends up in logs).
pub fn announce(setup: &Setup) {
    if let Some((secret, path)) = &setup.admin {
        if std::io::stdout().is_terminal() {
            println!("admin token  {secret}");
            println!(
                "             (shown once; also in {}, mode 0600. Clients: fvfsc login. More: fvfsd token create NAME)",
                path.display()
            );
        } else {
            println!(
                "admin token  in {} (mode 0600); more with `fvfsd token create NAME`",
                path.display()
            );
        }
    }
}

/// Creates a token; without an identity it acts as the owner of the filesystem's root
/// directory (read from the metadata at `meta_url`).
pub fn create(state: &Path, meta_url: &str, name: &str, mut new: NewToken) -> Result<()> {
    if new.identity.is_none() {
        let owner = fvfs_engine::root_owner(meta_url)
            .context("cannot read the owner of the root directory; give --uid and --gid")?;
        new.identity = Some(owner);
    }
    let (info, secret) = store(state)?.create(name, new)?;
    println!("{secret}");
    eprintln!(
        "token {:?} (id {}{}{}) created, acting as {}; the secret above is shown once",
        info.name,
        info.id,
        if info.read_only { ", read-only" } else { "" },
        if info.admin { ", admin" } else { "" },
        identity(&info)
    );
    if info.uid == Some(0) {
        eprintln!(
            "warning: this token acts as uid 0: like local root it passes every permission              check (read, write, search, other users' sticky entries); use --uid/--gid to              give it a user's identity"
        );
    }
    Ok(())
}

/// `uid:gid`, or what an entry older than identities acts as.
fn identity(t: &TokenInfo) -> String {
    match (t.uid, t.gid) {
        (Some(u), Some(g)) => format!("{u}:{g}"),
        _ => "root-owner".to_string(),
    }
}

pub fn list(state: &Path, json: bool) -> Result<()> {
    let tokens: Vec<TokenInfo> = store(state)?.list()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tokens)?);
        return Ok(());
    }
    if tokens.is_empty() {
        println!("no tokens (create one with `fvfsd token create NAME`)");
    }
    for t in tokens {
        println!(
            "{:<8} {:<20} {:<10} {:<13} {:<5} created {}",
            t.id,
            t.name,
            if t.read_only {
                "read-only"
            } else {
                "read-write"
            },
            identity(&t),
            if t.admin { "admin" } else { "-" },
            t.created_unix
        );
    }
    Ok(())
}

pub fn revoke(state: &Path, name_or_id: &str) -> Result<()> {
    let t = store(state)?.revoke(name_or_id)?;
    if t.name == "admin" {
        let p = state.join(ADMIN_TOKEN_FILE);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    println!("revoked {} ({})", t.name, t.id);
    Ok(())
}

/// `fvfsd token …`.
#[derive(clap::Subcommand)]
pub enum TokenCmd {
    /// Create a token and print its secret (shown once). It acts as one uid:gid (default:
    /// the owner of the filesystem's root directory), as an NFS export maps a client.
    Create {
        name: String,
        /// GET and HEAD only.
        #[arg(long)]
        read_only: bool,
        /// May give files any owner (and make devices and set-id files when the config
        /// says `[daemon] allow_devices = true`).
        #[arg(long)]
        admin: bool,
        /// The user the token acts as (with --gid).
        #[arg(long, requires = "gid")]
        uid: Option<u32>,
        /// The group the token acts as (with --uid).
        #[arg(long, requires = "uid")]
        gid: Option<u32>,
    },
    /// The tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by name or id.
    Revoke { name_or_id: String },
}
