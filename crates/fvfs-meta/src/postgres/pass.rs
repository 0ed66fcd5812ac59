//! The password of a PostgreSQL URL without one: `PGPASSWORD`, else the password file
//! (`PGPASSFILE`, default `~/.pgpass`; libpq's format `host:port:db:user:password`, `*`
//! matches anything, `\:` and `\\` escape). As libpq, a password file that others can
//! read is ignored, with a warning.

use tokio_postgres::config::Host;

pub(super) fn password(config: &tokio_postgres::Config) -> Option<Vec<u8>> {
    if let Ok(pw) = std::env::var("PGPASSWORD") {
        return Some(pw.into_bytes());
    }
    let path = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(&path).ok()?;
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the password file is readable by others: ignored (chmod 0600 it)");
            return None;
        }
    }
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or("").to_string();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    lookup(&text, [&host, &port, &db, &user])
}

/// The password of the first line whose four fields match `want`.
fn lookup(text: &str, want: [&str; 4]) -> Option<Vec<u8>> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split(line);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w || (f == "localhost" && w.starts_with('/')))
        {
            return Some(fields[4].clone().into_bytes());
        }
    }
    None
}

fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("one field").push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_match_as_libpq_does() {
        let text = "# comment\nother:5432:*:u:nope\n127.0.0.1:5433:fs:u:s\\:ecret\n*:*:*:*:any\n";
        assert_eq!(
            lookup(text, ["127.0.0.1", "5433", "fs", "u"]),
            Some(b"s:ecret".to_vec())
        );
        assert_eq!(lookup(text, ["h", "1", "d", "x"]), Some(b"any".to_vec()));
        assert_eq!(lookup("h:1:d:u:pw", ["h", "2", "d", "u"]), None);
    }
}
