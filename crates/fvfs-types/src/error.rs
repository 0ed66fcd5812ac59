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

/// A stable, machine-readable error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    InvalidPath,
    InvalidArgument,
    NameTooLong,
    TooManyLinks,
    /// ELOOP: too many symbolic links, or a symlink where none may be.
    TooManySymlinks,
    /// EACCES: the token's identity lacks a permission (read, write, search).
    PermissionDenied,
    /// EPERM: the operation needs more than the token's identity (another owner, a
    /// set-id file, a device, the sticky rule); an admin token may be allowed.
    NotPermitted,
    Unauthorized,
    Forbidden,
    PayloadTooLarge,
    /// EFBIG: the file would grow past the largest size fvfs stores.
    FileTooBig,
    /// ENODATA: no extended attribute of that name.
    NoAttribute,
    /// E2BIG: an extended attribute's value is larger than fvfs stores.
    AttributeTooBig,
    /// EBADF: a file handle that is not (or no longer) open.
    BadHandle,
    LengthMismatch,
    HashMismatch,
    RangeNotSatisfiable,
    NotSupported,
    NoSpace,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order (for tests and documentation). `Internal` stays the
    /// last variant: a test checks that this list has them all.
    pub const ALL: [ErrorCode; 26] = {
        use ErrorCode::*;
        [
            NotFound,
            Exists,
            NotDir,
            IsDir,
            NotEmpty,
            InvalidPath,
            InvalidArgument,
            NameTooLong,
            TooManyLinks,
            TooManySymlinks,
            PermissionDenied,
            NotPermitted,
            Unauthorized,
            Forbidden,
            PayloadTooLarge,
            FileTooBig,
            NoAttribute,
            AttributeTooBig,
            BadHandle,
            LengthMismatch,
            HashMismatch,
            RangeNotSatisfiable,
            NotSupported,
            NoSpace,
            Unavailable,
            Internal,
        ]
    };

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

    /// THE table: wire string, errno, HTTP status.
    fn row(self) -> (&'static str, i32, u16) {
        use ErrorCode::*;
        match self {
            NotFound => ("not_found", libc::ENOENT, 404),
            Exists => ("exists", libc::EEXIST, 409),
            NotDir => ("not_dir", libc::ENOTDIR, 409),
            IsDir => ("is_dir", libc::EISDIR, 409),
            NotEmpty => ("not_empty", libc::ENOTEMPTY, 409),
            InvalidPath => ("invalid_path", libc::EINVAL, 400),
            InvalidArgument => ("invalid_argument", libc::EINVAL, 400),
            NameTooLong => ("name_too_long", libc::ENAMETOOLONG, 400),
            TooManyLinks => ("too_many_links", libc::EMLINK, 409),
            TooManySymlinks => ("too_many_symlinks", libc::ELOOP, 400),
            PermissionDenied => ("permission_denied", libc::EACCES, 403),
            NotPermitted => ("not_permitted", libc::EPERM, 403),
            // A mount whose token is refused: the process is not permitted, as with EPERM.
            Unauthorized => ("unauthorized", libc::EPERM, 401),
            Forbidden => ("forbidden", libc::EPERM, 403),
            PayloadTooLarge => ("payload_too_large", libc::EFBIG, 413),
            FileTooBig => ("file_too_big", libc::EFBIG, 400),
            NoAttribute => ("no_attribute", libc::ENODATA, 404),
            AttributeTooBig => ("attribute_too_big", libc::E2BIG, 400),
            BadHandle => ("bad_handle", libc::EBADF, 400),
            LengthMismatch => ("length_mismatch", libc::EINVAL, 400),
            // The body was not what its sender hashed: it never reached storage.
            HashMismatch => ("hash_mismatch", libc::EIO, 422),
            RangeNotSatisfiable => ("range_not_satisfiable", libc::EINVAL, 416),
            NotSupported => ("not_supported", libc::EOPNOTSUPP, 400),
            NoSpace => ("no_space", libc::ENOSPC, 507),
            Unavailable => ("unavailable", libc::EIO, 503),
            Internal => ("internal", libc::EIO, 500),
        }
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
    fn all_lists_every_code_once() {
        for (i, c) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i, "{c}");
        }
        assert_eq!(ErrorCode::Internal as usize, ErrorCode::ALL.len() - 1);
    }

    #[test]
    fn the_wire_string_is_serdes_name() {
        for c in ErrorCode::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
        }
    }

    #[test]
    fn statuses_are_errors_and_5xx_only_for_the_daemons_faults() {
        for c in ErrorCode::ALL {
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
