//! `fvfs-bench MOUNTPOINT --native DIR [--size-mib N] [--pid PID]`: a small, bounded
//! benchmark that runs the same workload on an fvfs mount and on a native directory and
//! prints them side by side.
//!
//! Workload (every loop has a fixed count):
//! - big file: `big_mib` MiB written in 1 MiB `write`s, then `fsync` (sequential write);
//!   read back after dropping the page cache (cold read, needs root for
//!   `/proc/sys/vm/drop_caches`; otherwise `posix_fadvise(DONTNEED)` is used and the report
//!   says so); read again with the cache kept (re-read). The content is incompressible and
//!   every MiB is distinct, so neither compression nor deduplication flatters the figures,
//!   and every read is checked against what was written.
//! - small files: `small_files` × 4 KiB, four phases timed separately: create (create +
//!   write + close), stat, read (open + read + close), delete (unlink).
//! - memory: VmHWM (peak RSS) and the largest VmRSS sampled during the run, of the mount
//!   process `pid` when given. Run with `big_mib = 2048` for "peak RSS while copying 2 GiB".
//!
//! Only std, clap, anyhow and libc: this binary knows nothing about fvfs itself, so it
//! measures a mount exactly as any other program sees it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

const MIB: usize = 1 << 20;
const SMALL_SIZE: usize = 4096;
/// Sample the mount process's RSS every this many MiB of big-file I/O.
const RSS_SAMPLE_EVERY_MIB: u64 = 16;

/// Benchmark an fvfs mount against a native directory (bounded; prints a table and one
/// JSON line).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "fvfs-bench", version)]
pub struct BenchArgs {
    /// A directory on the fvfs mount (the benchmark works in a sub-directory it removes).
    pub mountpoint: PathBuf,
    /// A directory on a native filesystem to compare with.
    #[arg(long)]
    pub native: PathBuf,
    /// Size of the big file in MiB.
    #[arg(long = "size-mib", default_value_t = 512)]
    pub big_mib: u64,
    /// Number of 4 KiB small files.
    #[arg(long, default_value_t = 1000)]
    pub small_files: usize,
    /// The process serving the mount, for its RSS.
    #[arg(long)]
    pub pid: Option<u32>,
}

fn main() {
    let args = <BenchArgs as clap::Parser>::parse();
    if let Err(e) = run(&args) {
        eprintln!("fvfs-bench: {e:#}");
        std::process::exit(1);
    }
}

/// Figures of one side (fvfs or native). Rates are MiB/s or operations/s.
#[derive(Debug, Default, Clone)]
struct Side {
    write_mib_s: f64,
    cold_read_mib_s: f64,
    reread_mib_s: f64,
    create_per_s: f64,
    stat_per_s: f64,
    read_per_s: f64,
    delete_per_s: f64,
}

/// Memory figures of the mount process, in KiB.
#[derive(Debug, Default, Clone, Copy)]
struct Rss {
    hwm_before_kib: Option<u64>,
    hwm_after_kib: Option<u64>,
    sampled_max_kib: Option<u64>,
}

/// How the page cache was dropped before the cold read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheDrop {
    /// `sync; echo 3 > /proc/sys/vm/drop_caches` (whole system).
    DropCaches,
    /// `posix_fadvise(POSIX_FADV_DONTNEED)` on the file only (not root).
    Fadvise,
}

impl CacheDrop {
    fn as_str(self) -> &'static str {
        match self {
            CacheDrop::DropCaches => "drop_caches",
            CacheDrop::Fadvise => "fadvise_dontneed",
        }
    }
}

/// Run the benchmark and print the table and a one-line JSON summary on stdout.
pub fn run(args: &BenchArgs) -> Result<()> {
    run_with(args, true)
}

/// `run`, with the system-wide cache drop optional (the unit test must not drop the caches of
/// the whole machine).
fn run_with(args: &BenchArgs, system_drop: bool) -> Result<()> {
    ensure!(args.big_mib > 0, "the big file size must be at least 1 MiB");
    ensure!(
        args.small_files > 0,
        "the small-file count must be at least 1"
    );
    for dir in [&args.mountpoint, &args.native] {
        ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    }
    if let Some(pid) = args.pid {
        read_status_kib(pid, "VmRSS:").with_context(|| {
            format!("cannot read /proc/{pid}/status (is --pid the mount process?)")
        })?;
    }

    let tag = format!(".fvfs-bench-{}", std::process::id());
    let mut drops = Vec::new();
    let mut rss = Rss {
        hwm_before_kib: args.pid.and_then(|p| read_status_kib(p, "VmHWM:").ok()),
        ..Rss::default()
    };

    println!(
        "fvfs bench: big file {} MiB, {} small files of {} KiB",
        args.big_mib,
        args.small_files,
        SMALL_SIZE / 1024
    );
    println!("  fvfs:   {}", args.mountpoint.display());
    println!("  native: {}", args.native.display());

    let fvfs = bench_side(
        "fvfs",
        &args.mountpoint.join(&tag),
        args,
        args.pid,
        system_drop,
        &mut rss,
        &mut drops,
    )?;
    rss.hwm_after_kib = args.pid.and_then(|p| read_status_kib(p, "VmHWM:").ok());
    let native = bench_side(
        "native",
        &args.native.join(&tag),
        args,
        None,
        system_drop,
        &mut rss,
        &mut drops,
    )?;

    let drop_method = if drops.iter().all(|d| *d == CacheDrop::DropCaches) {
        CacheDrop::DropCaches
    } else {
        CacheDrop::Fadvise
    };
    print_table(args, &fvfs, &native, &rss, drop_method);
    println!("{}", json_summary(args, &fvfs, &native, &rss, drop_method));
    Ok(())
}

/// Run the whole workload in `dir` (created, then removed even on failure).
fn bench_side(
    name: &str,
    dir: &Path,
    args: &BenchArgs,
    pid: Option<u32>,
    system_drop: bool,
    rss: &mut Rss,
    drops: &mut Vec<CacheDrop>,
) -> Result<Side> {
    fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = bench_side_in(name, dir, args, pid, system_drop, rss, drops);
    let cleanup = fs::remove_dir_all(dir);
    let side = result?;
    cleanup.with_context(|| format!("cannot remove {}", dir.display()))?;
    Ok(side)
}

fn bench_side_in(
    name: &str,
    dir: &Path,
    args: &BenchArgs,
    pid: Option<u32>,
    system_drop: bool,
    rss: &mut Rss,
    drops: &mut Vec<CacheDrop>,
) -> Result<Side> {
    let mut side = Side::default();
    let big = dir.join("big.bin");
    let bytes = args.big_mib as f64;

    eprintln!("[{name}] sequential write of {} MiB ...", args.big_mib);
    let t = write_big(&big, args.big_mib, pid, rss)?;
    side.write_mib_s = bytes / secs(t);

    eprintln!("[{name}] cold sequential read ...");
    drops.push(drop_page_cache(&big, system_drop)?);
    let t = read_big(&big, args.big_mib, pid, rss)?;
    side.cold_read_mib_s = bytes / secs(t);

    eprintln!("[{name}] re-read (page cache kept) ...");
    let t = read_big(&big, args.big_mib, pid, rss)?;
    side.reread_mib_s = bytes / secs(t);
    fs::remove_file(&big).with_context(|| format!("cannot remove {}", big.display()))?;

    let small = dir.join("small");
    fs::create_dir(&small).with_context(|| format!("cannot create {}", small.display()))?;
    let n = args.small_files;
    let per_s = |t: Duration| n as f64 / secs(t);
    let mut content = vec![0u8; SMALL_SIZE];
    let mut rng = XorShift::new(0x5eed_f00d);

    eprintln!("[{name}] {n} small files: create ...");
    let start = Instant::now();
    for i in 0..n {
        rng.fill(&mut content);
        content[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let path = small_path(&small, i);
        let mut f = File::create(&path).with_context(|| format!("create {}", path.display()))?;
        f.write_all(&content)
            .with_context(|| format!("write {}", path.display()))?;
    }
    side.create_per_s = per_s(start.elapsed());

    eprintln!("[{name}] {n} small files: stat ...");
    let start = Instant::now();
    for i in 0..n {
        let path = small_path(&small, i);
        let md = fs::metadata(&path).with_context(|| format!("stat {}", path.display()))?;
        ensure!(
            md.len() == SMALL_SIZE as u64,
            "{} has size {}, expected {SMALL_SIZE}",
            path.display(),
            md.len()
        );
    }
    side.stat_per_s = per_s(start.elapsed());

    eprintln!("[{name}] {n} small files: read ...");
    let start = Instant::now();
    for i in 0..n {
        let path = small_path(&small, i);
        let mut f = File::open(&path).with_context(|| format!("open {}", path.display()))?;
        f.read_exact(&mut content)
            .with_context(|| format!("read {}", path.display()))?;
        ensure!(
            content[..8] == (i as u64).to_le_bytes(),
            "{} does not hold what was written",
            path.display()
        );
    }
    side.read_per_s = per_s(start.elapsed());

    eprintln!("[{name}] {n} small files: delete ...");
    let start = Instant::now();
    for i in 0..n {
        let path = small_path(&small, i);
        fs::remove_file(&path).with_context(|| format!("unlink {}", path.display()))?;
    }
    side.delete_per_s = per_s(start.elapsed());
    fs::remove_dir(&small).with_context(|| format!("rmdir {}", small.display()))?;
    Ok(side)
}

fn small_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("f{i:06}"))
}

/// Write `mib` distinct, incompressible MiB and fsync; returns the time including fsync and
/// close.
fn write_big(path: &Path, mib: u64, pid: Option<u32>, rss: &mut Rss) -> Result<Duration> {
    let mut buf = vec![0u8; MIB];
    XorShift::new(0x00f0_0f5e_ed00_1234).fill(&mut buf);
    let start = Instant::now();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    for i in 0..mib {
        stamp(&mut buf, i);
        f.write_all(&buf)
            .with_context(|| format!("write to {} at MiB {i}", path.display()))?;
        if i % RSS_SAMPLE_EVERY_MIB == 0 {
            sample_rss(pid, rss);
        }
    }
    f.sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;
    drop(f);
    let elapsed = start.elapsed();
    sample_rss(pid, rss);
    Ok(elapsed)
}

/// Read the big file back in 1 MiB reads, checking the stamps; returns the time.
fn read_big(path: &Path, mib: u64, pid: Option<u32>, rss: &mut Rss) -> Result<Duration> {
    let mut buf = vec![0u8; MIB];
    let start = Instant::now();
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    for i in 0..mib {
        f.read_exact(&mut buf)
            .with_context(|| format!("read {} at MiB {i}", path.display()))?;
        if !stamped(&buf, i) {
            bail!("{} holds wrong data in MiB {i}", path.display());
        }
        if i % RSS_SAMPLE_EVERY_MIB == 0 {
            sample_rss(pid, rss);
        }
    }
    let mut extra = [0u8; 1];
    let n = f
        .read(&mut extra)
        .with_context(|| format!("read {} at its end", path.display()))?;
    ensure!(n == 0, "{} is longer than {mib} MiB", path.display());
    drop(f);
    let elapsed = start.elapsed();
    sample_rss(pid, rss);
    Ok(elapsed)
}

/// Make MiB number `i` unique: its index in the first 8 bytes of every 4 KiB.
fn stamp(buf: &mut [u8], i: u64) {
    for page in buf.chunks_mut(4096) {
        page[..8].copy_from_slice(&i.to_le_bytes());
    }
}

fn stamped(buf: &[u8], i: u64) -> bool {
    buf.chunks(4096).all(|page| page[..8] == i.to_le_bytes())
}

/// Drop the page cache before a cold read: system-wide when we may, else for this file.
fn drop_page_cache(path: &Path, system_drop: bool) -> Result<CacheDrop> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    if system_drop {
        match fs::write("/proc/sys/vm/drop_caches", b"3\n") {
            Ok(()) => return Ok(CacheDrop::DropCaches),
            Err(e) => eprintln!(
                "note: cannot write /proc/sys/vm/drop_caches ({e}; needs root): \
                 using posix_fadvise(DONTNEED) on the file instead"
            ),
        }
    }
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        eprintln!(
            "note: posix_fadvise(DONTNEED) on {} failed: {}; the cold read may be warm",
            path.display(),
            std::io::Error::from_raw_os_error(rc)
        );
    }
    Ok(CacheDrop::Fadvise)
}

fn sample_rss(pid: Option<u32>, rss: &mut Rss) {
    if let Some(kib) = pid.and_then(|p| read_status_kib(p, "VmRSS:").ok()) {
        rss.sampled_max_kib = Some(rss.sampled_max_kib.map_or(kib, |m| m.max(kib)));
    }
}

/// A `kB` field of /proc/PID/status, e.g. `VmHWM:`.
fn read_status_kib(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_status_kib(&status, field).with_context(|| format!("no {field} line in {path}"))
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

/// A tiny deterministic generator for incompressible test data.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("{r:.4}")
    }
}

fn fmt_mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_string(),
        |k| format!("{:.1}", k as f64 / 1024.0),
    )
}

fn print_table(args: &BenchArgs, fvfs: &Side, native: &Side, rss: &Rss, drop: CacheDrop) {
    let cold = match drop {
        CacheDrop::DropCaches => "cold read, caches dropped (MiB/s)",
        CacheDrop::Fadvise => "cold read, fadvise only (MiB/s)",
    };
    let rows: [(String, f64, f64); 7] = [
        (
            format!("seq write {} MiB + fsync (MiB/s)", args.big_mib),
            fvfs.write_mib_s,
            native.write_mib_s,
        ),
        (
            cold.to_string(),
            fvfs.cold_read_mib_s,
            native.cold_read_mib_s,
        ),
        (
            "re-read, cache kept (MiB/s)".to_string(),
            fvfs.reread_mib_s,
            native.reread_mib_s,
        ),
        (
            format!("create+write+close 4 KiB x{} (/s)", args.small_files),
            fvfs.create_per_s,
            native.create_per_s,
        ),
        ("stat (/s)".to_string(), fvfs.stat_per_s, native.stat_per_s),
        (
            "open+read+close (/s)".to_string(),
            fvfs.read_per_s,
            native.read_per_s,
        ),
        (
            "unlink (/s)".to_string(),
            fvfs.delete_per_s,
            native.delete_per_s,
        ),
    ];
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(34);
    println!();
    println!(
        "{:<width$} | {:>10} | {:>10} | {:>7}",
        "metric", "fvfs", "native", "ratio"
    );
    println!("{:-<width$}-+-{:-<10}-+-{:-<10}-+-{:-<7}", "", "", "", "");
    for (name, f, n) in &rows {
        println!(
            "{:<width$} | {:>10} | {:>10} | {:>7}",
            name,
            fmt_rate(*f),
            fmt_rate(*n),
            fmt_ratio(f / n.max(1e-9))
        );
    }
    if args.pid.is_some() {
        let rss_rows = [
            ("mount VmHWM before (MiB)", rss.hwm_before_kib),
            ("mount VmHWM after fvfs run (MiB)", rss.hwm_after_kib),
            ("mount max VmRSS sampled (MiB)", rss.sampled_max_kib),
        ];
        for (name, v) in rss_rows {
            println!(
                "{:<width$} | {:>10} | {:>10} | {:>7}",
                name,
                fmt_mib(v),
                "-",
                "-"
            );
        }
    }
    println!("ratio = fvfs / native (higher is better for every rate)");
    if drop == CacheDrop::Fadvise {
        println!("note: not root, so the cold read used posix_fadvise(DONTNEED) only");
    }
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "null".to_string()
    }
}

fn json_opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".to_string(), |k| k.to_string())
}

fn json_side(s: &Side) -> String {
    format!(
        "{{\"seq_write_mib_s\":{},\"cold_read_mib_s\":{},\"reread_mib_s\":{},\
         \"create_per_s\":{},\"stat_per_s\":{},\"read_per_s\":{},\"delete_per_s\":{}}}",
        json_num(s.write_mib_s),
        json_num(s.cold_read_mib_s),
        json_num(s.reread_mib_s),
        json_num(s.create_per_s),
        json_num(s.stat_per_s),
        json_num(s.read_per_s),
        json_num(s.delete_per_s)
    )
}

fn json_summary(
    args: &BenchArgs,
    fvfs: &Side,
    native: &Side,
    rss: &Rss,
    drop: CacheDrop,
) -> String {
    format!(
        "{{\"bench\":\"fvfsd\",\"big_mib\":{},\"small_files\":{},\"small_size\":{},\
         \"cache_drop\":\"{}\",\"fvfs\":{},\"native\":{},\"mount_rss_kib\":\
         {{\"hwm_before\":{},\"hwm_after\":{},\"sampled_max\":{}}}}}",
        args.big_mib,
        args.small_files,
        SMALL_SIZE,
        drop.as_str(),
        json_side(fvfs),
        json_side(native),
        json_opt(rss.hwm_before_kib),
        json_opt(rss.hwm_after_kib),
        json_opt(rss.sampled_max_kib)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_fields() {
        let status = "Name:\tfvfsd\nVmHWM:\t  123456 kB\nVmRSS:\t   7890 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(123_456));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(7890));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn stamps_make_each_mib_distinct_and_checkable() {
        let mut buf = vec![0u8; MIB];
        XorShift::new(7).fill(&mut buf);
        stamp(&mut buf, 41);
        assert!(stamped(&buf, 41));
        assert!(!stamped(&buf, 42));
    }

    #[test]
    fn runs_on_two_plain_directories() {
        let base = std::env::temp_dir().join(format!("fvfs-bench-test-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        let args = BenchArgs {
            big_mib: 2,
            small_files: 5,
            pid: Some(std::process::id()),
            mountpoint: a.clone(),
            native: b.clone(),
        };
        let result = run_with(&args, false);
        let leftovers = fs::read_dir(&a).unwrap().count() + fs::read_dir(&b).unwrap().count();
        fs::remove_dir_all(&base).unwrap();
        result.unwrap();
        assert_eq!(leftovers, 0);
    }
}
