//! The one table from client errors to errnos for the FUSE mount. Errors are logged here,
//! where the mount handles them: expected ones (a missing name, an existing name…) at
//! debug level, the rest (daemon unreachable, server faults) as errors.

use crate::client::ClientError;
use fuser::Errno;
use fvfs_types::api::ErrorCode;

/// The errno a failed API call becomes.
pub fn code_errno(code: ErrorCode) -> i32 {
    use ErrorCode::*;
    match code {
        NotFound => libc::ENOENT,
        Exists => libc::EEXIST,
        NotDir => libc::ENOTDIR,
        IsDir => libc::EISDIR,
        NotEmpty => libc::ENOTEMPTY,
        NameTooLong => libc::ENAMETOOLONG,
        InvalidPath | InvalidArgument | LengthMismatch | RangeNotSatisfiable => libc::EINVAL,
        TooManyLinks => libc::EMLINK,
        PermissionDenied => libc::EACCES,
        NotPermitted | Unauthorized | Forbidden => libc::EPERM,
        PayloadTooLarge => libc::EFBIG,
        HashMismatch => libc::EIO,
        NotSupported => libc::EOPNOTSUPP,
        NoSpace => libc::ENOSPC,
        Unavailable | Internal => libc::EIO,
    }
}

/// Whether an error is an ordinary answer to a filesystem call (not worth an error log).
fn expected(code: ErrorCode) -> bool {
    use ErrorCode::*;
    matches!(
        code,
        NotFound
            | Exists
            | NotDir
            | IsDir
            | NotEmpty
            | NameTooLong
            | InvalidPath
            | InvalidArgument
            | TooManyLinks
            | PermissionDenied
            | NotPermitted
            | NoSpace
    )
}

/// The errno for `e`, not logged (for callers that log it themselves).
pub fn errno_of(e: &ClientError) -> Errno {
    match e {
        ClientError::Api { code, .. } => Errno::from_i32(code_errno(*code)),
        ClientError::Connect { .. } | ClientError::Other(_) => Errno::from_i32(libc::EIO),
    }
}

/// The errno for `e`, logged here where the mount handles it.
pub fn errno(op: &str, e: &ClientError) -> Errno {
    match e {
        ClientError::Api { code, .. } if expected(*code) => tracing::debug!(op, error = %e),
        _ => tracing::error!(op, error = %e, "request to fvfsd failed"),
    }
    errno_of(e)
}

/// The errno for a failed block download: a block the daemon no longer has belongs to
/// content replaced or deleted since the handle's open, which it cannot serve any more
/// (ESTALE, as NFS says of a file gone under an open handle).
pub fn block_errno(e: &ClientError) -> Errno {
    match e {
        ClientError::Api {
            code: ErrorCode::NotFound,
            ..
        } => {
            tracing::debug!(error = %e, "block gone: the file changed since it was opened");
            Errno::from_i32(libc::ESTALE)
        }
        e => errno("block", e),
    }
}

/// The errno for a local I/O error (temporary files, the block cache).
pub fn io_errno(op: &str, e: &std::io::Error) -> Errno {
    tracing::error!(op, error = %e, "local I/O failed");
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_posix_errnos() {
        assert_eq!(code_errno(ErrorCode::NotFound), libc::ENOENT);
        assert_eq!(code_errno(ErrorCode::Exists), libc::EEXIST);
        assert_eq!(code_errno(ErrorCode::NotEmpty), libc::ENOTEMPTY);
        assert_eq!(code_errno(ErrorCode::NoSpace), libc::ENOSPC);
        assert_eq!(code_errno(ErrorCode::PermissionDenied), libc::EACCES);
        assert_eq!(code_errno(ErrorCode::NotPermitted), libc::EPERM);
        let e = ClientError::Connect {
            url: "http://127.0.0.1:1".into(),
            msg: "refused".into(),
        };
        assert_eq!(errno("test", &e), Errno::from_i32(libc::EIO));
    }
}
