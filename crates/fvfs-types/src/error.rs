//! fvfs's one error vocabulary: [`ErrorCode`], the stable code of every error a face
//! reports. THE table of this crate derives both the errno a POSIX face returns
//! ([`ErrorCode::errno`]) and the HTTP status of the API ([`ErrorCode::http_status`]);
//! the engine maps its errors to codes (`VfsError::code`) and nothing maps errnos or
//! statuses back to codes.
//!
//! Invariants:
//! - Every code string is part of the API's wire format (`/v1`): codes are added, never
//!   renamed or repurposed.
//! - An errno the engine returns has a code of its own whose `errno()` is that errno, so
//!   a client mount reports what the engine mount would (EPERM stays EPERM, ELOOP stays
//!   ELOOP). Several codes may share an errno (`invalid_path` and `invalid_argument` are
//!   both EINVAL), never the other way round.

use serde::{Deserialize, Serialize};

/// Declares [`ErrorCode`] from THE table: one row per code with its documentation, wire
/// string, errno and HTTP status, so that the enum, [`ErrorCode::ALL`] and the mappings
/// cannot disagree.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $code:ident => $wire:literal, $errno:ident, $status:literal;)*) => {
        /// A stable, machine-readable error code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $code,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code,)*];

            /// The table's row of this code: wire string, errno, HTTP status.
            fn row(self) -> (&'static str, i32, u16) {
                match self {
                    $(ErrorCode::$code => ($wire, libc::$errno, $status),)*
                }
            }
        }
    };
}

error_codes! {
    NotFound => "not_found", ENOENT, 404;
    Exists => "exists", EEXIST, 409;
    NotDir => "not_dir", ENOTDIR, 409;
    IsDir => "is_dir", EISDIR, 409;
    NotEmpty => "not_empty", ENOTEMPTY, 409;
    InvalidArgument => "invalid_argument", EINVAL, 400;
    InvalidPath => "invalid_path", EINVAL, 400;
    NameTooLong => "name_too_long", ENAMETOOLONG, 400;
    TooManyLinks => "too_many_links", EMLINK, 409;
    /// ELOOP: too many symbolic links, or a symlink where none may be.
    TooManySymlinks => "too_many_symlinks", ELOOP, 400;
    /// EACCES: the token's identity lacks a permission (read, write, search).
    PermissionDenied => "permission_denied", EACCES, 403;
    /// EPERM: the operation needs more than the token's identity (another owner, a
    /// set-id file, a device, the sticky rule); an admin token may be allowed.
    NotPermitted => "not_permitted", EPERM, 403;
    /// No valid token. A mount whose token is refused is not permitted: EPERM.
    Unauthorized => "unauthorized", EPERM, 401;
    Forbidden => "forbidden", EPERM, 403;
    PayloadTooLarge => "payload_too_large", EFBIG, 413;
    /// EFBIG: the file would grow past the largest size fvfs stores.
    FileTooBig => "file_too_big", EFBIG, 400;
    /// ENODATA: no extended attribute of that name.
    NoAttribute => "no_attribute", ENODATA, 404;
    /// E2BIG: an extended attribute's value is larger than fvfs stores.
    AttributeTooBig => "attribute_too_big", E2BIG, 400;
    /// EBADF: a file handle that is not (or no longer) open.
    BadHandle => "bad_handle", EBADF, 400;
    LengthMismatch => "length_mismatch", EINVAL, 400;
    /// The body was not what its sender hashed: it never reached storage (EIO).
    HashMismatch => "hash_mismatch", EIO, 422;
    RangeNotSatisfiable => "range_not_satisfiable", EINVAL, 416;
    NotSupported => "not_supported", EOPNOTSUPP, 400;
    NoSpace => "no_space", ENOSPC, 507;
    /// EAGAIN: a file lock is held by another owner (and the caller would not wait).
    Locked => "locked", EAGAIN, 423;
    /// EINTR: a wait for a file lock ended because its file was closed.
    Interrupted => "interrupted", EINTR, 409;
    Unavailable => "unavailable", EIO, 503;
    Internal => "internal", EIO, 500;
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        self.row().0
    }

    /// The errno a POSIX face (the engine mount, the client mount) returns for this code.
    pub fn errno(self) -> i32 {
        self.row().1
    }

    /// The HTTP status the API answers with this code (docs/API.md, "Errors").
    pub fn http_status(self) -> u16 {
        self.row().2
    }

    /// The code of a response whose body is not fvfs's JSON (a proxy's or a load
    /// balancer's page): the first code of the table with that status (so the table's
    /// order puts the general code of a status first), a gateway error as `unavailable`,
    /// anything else as `internal`.
    pub fn for_status(status: u16) -> ErrorCode {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.http_status() == status)
            .unwrap_or(match status {
                502 | 504 => ErrorCode::Unavailable,
                _ => ErrorCode::Internal,
            })
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_without_a_body_maps_to_the_general_code() {
        assert_eq!(ErrorCode::for_status(400), ErrorCode::InvalidArgument);
        assert_eq!(ErrorCode::for_status(403), ErrorCode::PermissionDenied);
        assert_eq!(ErrorCode::for_status(404), ErrorCode::NotFound);
        assert_eq!(ErrorCode::for_status(409), ErrorCode::Exists);
        assert_eq!(ErrorCode::for_status(413), ErrorCode::PayloadTooLarge);
        assert_eq!(ErrorCode::for_status(502), ErrorCode::Unavailable);
        assert_eq!(ErrorCode::for_status(503), ErrorCode::Unavailable);
        assert_eq!(ErrorCode::for_status(418), ErrorCode::Internal);
        for c in ErrorCode::ALL {
            assert_eq!(
                ErrorCode::for_status(c.http_status()).http_status(),
                c.http_status()
            );
        }
    }

    #[test]
    fn the_wire_string_is_serdes_name() {
        for &c in ErrorCode::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
        }
    }

    #[test]
    fn statuses_are_errors_and_5xx_only_for_the_daemons_faults() {
        for &c in ErrorCode::ALL {
            let s = c.http_status();
            assert!((400..600).contains(&s), "{c}: {s}");
            let server = matches!(
                c,
                ErrorCode::NoSpace | ErrorCode::Unavailable | ErrorCode::Internal
            );
            assert_eq!(s >= 500, server, "{c}: {s}");
        }
    }
}

/// An error and its causes on one line, `outer: cause: root`, each text once: a layer
/// whose message already includes its source's message (thiserror's `{source}`) does
/// not have that source repeated. The binaries print their final error with it.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut next = Some(e);
    while let Some(cur) = next {
        let text = cur.to_string().replace('\n', " ");
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        next = cur.source();
    }
    line
}

#[cfg(test)]
mod line_tests {
    use super::error_line;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the metadata at X: {source}")]
    struct Outer {
        source: Inner,
    }
    #[derive(Debug, thiserror::Error)]
    #[error("not formatted")]
    struct Inner;
    #[derive(Debug, thiserror::Error)]
    #[error("restore failed")]
    struct Terse {
        #[source]
        source: Outer,
    }

    #[test]
    fn each_cause_once() {
        let e = Terse {
            source: Outer { source: Inner },
        };
        assert_eq!(
            error_line(&e),
            "restore failed: cannot open the metadata at X: not formatted"
        );
        assert_eq!(error_line(&Inner), "not formatted");
    }
}
