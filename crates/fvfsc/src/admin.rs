//! The daemon commands of `fvfsc` (status, wal, devices, flush, evict), `login` and
//! `discover`.
//!
//! Invariants: `login` stores nothing until the daemon accepted the token (`GET
//! /v1/status`). Over HTTPS the token goes only over a connection pinned to: the stored
//! pin of that `host:port` (never replaced silently: a changed certificate fails the
//! handshake, naming both fingerprints); else the `--replace-pin` fingerprint, once a
//! probe without the token saw the daemon present exactly it; else, on first use, the
//! certificate mDNS announced or the probe saw (printed). A `host:port` pinned with TLS is
//! never sent the token over plain HTTP. A token read from a terminal is not echoed and is
//! never printed.

use crate::format::{date_ns, date_secs, human_bytes};
use crate::{connect, print_json, Cli, Cmd};
use anyhow::{bail, Context};
use fvfs_client::client::{host_port, is_https, probe_fingerprint, Endpoint};
use fvfs_client::config::{self, Login, Overrides};
use fvfs_client::discover::{discover, discover_all};
use fvfs_client::Client;
use fvfs_types::api::Status;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

pub async fn run(cli: &Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match &cli.cmd {
        Cmd::Login { url, replace_pin } => login(cli, url.clone(), replace_pin.as_deref()).await,
        Cmd::Discover { all, timeout } => discover_cmd(*all, *timeout, json).await,
        Cmd::Status => {
            let s = connect(cli).await?.status().await?;
            if json {
                print_json(&s)
            } else {
                print_status(&s);
                Ok(())
            }
        }
        Cmd::Wal { limit } => {
            let w = connect(cli).await?.wal(*limit).await?;
            if json {
                return print_json(&w);
            }
            println!("pending: {}", w.pending);
            for e in &w.entries {
                let block = e.block.get(..16).unwrap_or(&e.block);
                let err = e.last_error.as_deref().unwrap_or("");
                println!(
                    "{:>8}  {block}…  → {:<10} due {}  attempts {}  {err}",
                    e.id,
                    e.tier,
                    date_ns(e.due_ns),
                    e.attempts
                );
            }
            Ok(())
        }
        Cmd::Devices => {
            let d = connect(cli).await?.devices().await?;
            if json {
                return print_json(&d);
            }
            for d in &d.devices {
                println!(
                    "{:<20} {:<22} token {:<12} seen {} UTC  {:>6} requests  {}",
                    d.name,
                    d.address,
                    d.token,
                    date_secs(d.last_seen_unix),
                    d.requests,
                    d.user_agent.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
        Cmd::Flush => {
            let r = connect(cli).await?.flush().await?;
            if json {
                return print_json(&r);
            }
            println!(
                "replicated {} copies, {} still pending",
                r.replicated, r.pending
            );
            Ok(())
        }
        Cmd::Evict { tier } => {
            let r = connect(cli).await?.evict(tier.as_deref()).await?;
            if json {
                return print_json(&r);
            }
            println!("evicted {}", human_bytes(r.evicted_bytes));
            Ok(())
        }
        _ => bail!("not a daemon command"),
    }
}

fn print_status(s: &Status) {
    let up = s.uptime_secs;
    println!(
        "fvfsd {} \"{}\" uuid {}  up {}d {}h {}m",
        s.version,
        s.name,
        s.uuid,
        up / 86_400,
        (up % 86_400) / 3600,
        (up % 3600) / 60
    );
    println!("files: {}  data: {}", s.files, human_bytes(s.bytes));
    if let Some(m) = &s.mount {
        println!("mounted at: {m}");
    }
    println!("replication queue (WAL): {} pending", s.wal_pending);
    println!("tiers:");
    for t in &s.tiers {
        let marks = match (t.high_watermark, t.low_watermark) {
            (Some(h), Some(l)) => format!("  watermarks {} / {}", human_bytes(h), human_bytes(l)),
            (Some(h), None) => format!("  high watermark {}", human_bytes(h)),
            _ => String::new(),
        };
        let health = if t.healthy { "healthy" } else { "UNHEALTHY" };
        let durable = if t.durable { "durable" } else { "cache" };
        println!(
            "  {:<10} {:>10}  {durable:<7} {health}{marks}  {}",
            t.name,
            human_bytes(t.bytes),
            t.location
        );
        if let Some(e) = &t.last_error {
            println!("             last error: {e}");
        }
    }
    if !s.workers.is_empty() {
        println!("workers:");
        for (name, state) in &s.workers {
            println!("  {name:<14} {state}");
        }
    }
}

async fn discover_cmd(all: bool, timeout: Option<f64>, json: bool) -> anyhow::Result<()> {
    let timeout = match timeout {
        Some(t) if t.is_finite() && t >= 0.0 => Duration::from_secs_f64(t),
        Some(t) => bail!("bad timeout {t}"),
        None => config::discovery_timeout(&|k| std::env::var(k).ok()),
    };
    let found = discover_all(timeout, all).await?;
    if json {
        return print_json(&found);
    }
    if found.is_empty() {
        bail!(
            "no fvfsd found on the LAN within {:.0} s",
            timeout.as_secs_f64()
        );
    }
    for d in &found {
        println!("{}  {}", d.instance, d.url);
        println!(
            "  host {}  version {}  uuid {}",
            d.host,
            d.version.as_deref().unwrap_or("?"),
            d.uuid.as_deref().unwrap_or("?")
        );
        if let Some(fp) = &d.fingerprint {
            println!("  tls certificate sha-256 {fp}");
        }
    }
    Ok(())
}

/// One line of stdin, not echoed when stdin is a terminal.
fn read_token(url: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut line = String::new();
    if tty {
        eprint!("token for {url}: ");
        let _ = std::io::stderr().flush();
        let _echo = EchoOff::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the token")?;
        eprintln!();
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the token")?;
    }
    let t = line.trim().to_string();
    if t.is_empty() {
        bail!("no token given (use --token, FVFS_TOKEN or type it on stdin)");
    }
    Ok(t)
}

/// Terminal echo off on stdin while alive (restored on drop).
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: termios is plain data; tcgetattr fills it or fails (then unused).
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return EchoOff(None);
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        t.c_lflag |= libc::ECHONL;
        // SAFETY: a termios obtained from tcgetattr with one flag changed.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) } != 0 {
            return EchoOff(None);
        }
        EchoOff(Some(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // SAFETY: restores the attributes read in `new`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

async fn login(cli: &Cli, url_arg: Option<String>, replace: Option<&str>) -> anyhow::Result<()> {
    let dir = config::config_dir()?;
    let env = |k: &str| std::env::var(k).ok();
    let stored = config::load_login(&dir)?;
    let o = Overrides {
        url: url_arg.or_else(|| cli.url.clone()),
        token: cli.token.clone(),
    };
    let (url, announced) = match config::explicit_url(&o, &env, &stored) {
        Some((u, _)) => (config::normalize_url(&u), None),
        None => match discover(config::discovery_timeout(&env)).await? {
            Some(d) => {
                eprintln!("found fvfsd at {} over mDNS", d.url);
                (d.url, d.fingerprint)
            }
            None => (config::DEFAULT_URL.to_string(), None),
        },
    };
    let hp = host_port(&url).with_context(|| format!("bad URL {url}"))?;
    let pinned = config::stored_pin(&dir, &url)?;
    // Which certificate the token may go to, decided before the token is read or sent.
    let (fingerprint, new_pin) = match (is_https(&url), replace, pinned) {
        (_, Some(fp), _) => {
            let fp = config::check_replacement(&url, fp).await?;
            (Some(fp.clone()), Some(fp))
        }
        // A downgrade (pinned, now plain HTTP) is refused here.
        (false, None, _) => (config::pin_for(&dir, &url, None).await?, None),
        (true, None, Some(pin)) => (Some(pin), None),
        (true, None, None) => {
            let fp = match announced {
                Some(fp) => fp,
                None => probe_fingerprint(&url).await?,
            };
            (Some(fp.clone()), Some(fp))
        }
    };
    let token = match o
        .token
        .clone()
        .or_else(|| env("FVFS_TOKEN"))
        .filter(|t| !t.trim().is_empty())
    {
        Some(t) => t.trim().to_string(),
        None => read_token(&url)?,
    };
    let client = Client::new(Endpoint {
        url: url.clone(),
        token: Some(token.clone()),
        fingerprint: fingerprint.clone(),
    })?;
    let status = client
        .status()
        .await
        .with_context(|| format!("logging in to {url}"))?;
    if let Some(fp) = &new_pin {
        let old = config::stored_pin(&dir, &url)?;
        if old.as_deref() != Some(fp.as_str()) {
            config::save_pin(&dir, &hp, fp)?;
            match old {
                Some(old) => eprintln!("replaced pinned certificate {old} by {fp} for {hp}"),
                None => eprintln!(
                    "pinned certificate {fp} for {hp} (compare it with the `tls` line of \
                     `fvfsd status` on the host)"
                ),
            }
        }
    }
    config::save_login(
        &dir,
        &Login {
            url: Some(url.clone()),
            token: Some(token),
        },
    )?;
    if cli.json {
        return print_json(&serde_json::json!({
            "url": url,
            "fingerprint": fingerprint,
            "config": dir.join("config.toml"),
            "status": status,
        }));
    }
    println!(
        "logged in to {url} (fvfsd {} \"{}\", uuid {}); saved in {}",
        status.version,
        status.name,
        status.uuid,
        dir.join("config.toml").display()
    );
    Ok(())
}
