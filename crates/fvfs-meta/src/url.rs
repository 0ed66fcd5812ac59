//! Metadata URLs: `sqlite:///abs/path/meta.db` (also `sqlite://rel.db` for tests), and
//! `postgres://user@host[:port]/db` (libpq's URL form; the password, when the URL has one,
//! is masked in every message).

use crate::error::{MetaError, Result};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl MetaUrl {
    pub fn parse(url: &str) -> Result<MetaUrl> {
        let bad = |why: &str| MetaError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        if let Some(rest) = url.strip_prefix("sqlite://") {
            if rest.is_empty() {
                return Err(bad(
                    "missing database path, e.g. sqlite:///var/lib/fvfs/meta.db",
                ));
            }
            if rest.contains('?') {
                return Err(bad("sqlite URLs take no query options"));
            }
            return Ok(MetaUrl::Sqlite(PathBuf::from(rest)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(MetaUrl::Postgres(url.to_string()));
        }
        if url.starts_with('/') {
            return Err(bad("write a path as sqlite:///abs/path/meta.db"));
        }
        Err(bad("expected sqlite:///path/meta.db or postgres://…"))
    }

    /// A form safe to print: passwords in a PostgreSQL URL are masked.
    pub fn display(&self) -> String {
        match self {
            MetaUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            MetaUrl::Postgres(u) => match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s && u[s + 3..at].contains(':') => {
                    let creds = &u[s + 3..at];
                    let user = creds.split(':').next().unwrap_or("");
                    format!("{}://{}:***@{}", &u[..s], user, &u[at + 1..])
                }
                _ => u.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses() {
        assert_eq!(
            MetaUrl::parse("sqlite:///a/b.db").unwrap(),
            MetaUrl::Sqlite("/a/b.db".into())
        );
        assert!(MetaUrl::parse("/a/b.db").is_err());
        assert!(MetaUrl::parse("mysql://x").is_err());
        let p = MetaUrl::parse("postgres://u:secret@h/db").unwrap();
        assert_eq!(p.display(), "postgres://u:***@h/db");
        let p = MetaUrl::parse("postgres://u@h:5433/db").unwrap();
        assert_eq!(p.display(), "postgres://u@h:5433/db");
    }
}
