//! Human output of `fvfsc`: `ls -l` lines, sizes, dates, and the parsing of the small
//! numeric arguments (modes, sizes, ranges). Pure functions, no I/O.
//!
//! Invariants: dates are printed in UTC (`YYYY-MM-DD HH:MM`), so output does not depend
//! on the machine's zone; parsing never panics on user input.

use fvfs_types::api::{Kind, Stat};

/// `drwxr-xr-x` from a kind and permission bits (setuid/setgid/sticky shown like `ls`).
pub fn mode_string(kind: Kind, mode: u32) -> String {
    let t = match kind {
        Kind::File => '-',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::Fifo => 'p',
        Kind::Socket => 's',
        Kind::CharDev => 'c',
        Kind::BlockDev => 'b',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    let special = |x: u32, sp: u32, on_x: char, off_x: char| match (mode & x != 0, mode & sp != 0) {
        (true, true) => on_x,
        (false, true) => off_x,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(0o100, 0o4000, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(0o010, 0o2000, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(0o001, 0o1000, 't', 'T'));
    s
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD HH:MM` (UTC) of a time in nanoseconds since the epoch.
pub fn date_ns(ns: i64) -> String {
    date_secs(ns.div_euclid(1_000_000_000))
}

/// `YYYY-MM-DD HH:MM` (UTC) of a time in seconds since the epoch.
pub fn date_secs(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        s / 3600,
        (s % 3600) / 60
    )
}

/// `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// The last segment of a path (`/` for the root).
pub fn base_name(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("/")
}

/// One `ls -l` line; `width` is the width of the size column.
pub fn long_line(st: &Stat, name: &str, width: usize) -> String {
    let mut line = format!(
        "{} {:>3} {:>5} {:>5} {:>width$} {} {}",
        mode_string(st.kind, st.mode),
        st.nlink,
        st.uid,
        st.gid,
        st.size,
        date_ns(st.mtime_ns),
        name
    );
    if let Some(t) = &st.target {
        line.push_str(" -> ");
        line.push_str(t);
    }
    line
}

/// A mode in octal: `644`, `0644`, `0o644`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let t = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "bad mode {s:?}: expected octal permission bits like 644"
        )),
    }
}

/// A size in bytes with an optional binary suffix: `1048576`, `512K`, `10G`, `1TiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?}: expected a number of bytes, e.g. 10G"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("bad size {s:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("bad size {s:?}: too large"))
}

/// `A-B` (bytes A to B inclusive, like HTTP) or `A-` (from A to the end) → (offset, len).
pub fn parse_range(s: &str) -> Result<(u64, Option<u64>), String> {
    let bad = || format!("bad range {s:?}: expected A-B (inclusive) or A-");
    let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    if b.trim().is_empty() {
        return Ok((a, None));
    }
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok((a, Some(b - a + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_string(Kind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(Kind::File, 0o4644), "-rwSr--r--");
        assert_eq!(mode_string(Kind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(parse_mode("0o644"), Ok(0o644));
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert!(parse_mode("9").is_err());
        assert!(parse_mode("77777").is_err());
    }

    #[test]
    fn dates_and_sizes() {
        assert_eq!(date_secs(0), "1970-01-01 00:00");
        assert_eq!(date_secs(951_782_400), "2000-02-29 00:00");
        assert_eq!(date_ns(1_700_000_000_000_000_000), "2023-11-14 22:13");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0-99"), Ok((0, Some(100))));
        assert_eq!(parse_range("5-"), Ok((5, None)));
        assert!(parse_range("9-5").is_err());
        assert!(parse_range("x").is_err());
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("/"), "/");
    }
}
