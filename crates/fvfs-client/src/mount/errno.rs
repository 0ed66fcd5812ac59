//! Client errors as errnos for the FUSE mount: an API error is its code's errno (the error
//! vocabulary's table, fvfs-types `ErrorCode::errno`), a daemon out of reach is EIO.
//! Errors are logged here, where the mount handles them: expected ones (a missing name, an
//! existing name…) at debug level, the rest (daemon unreachable, server faults) as errors.

use crate::client::ClientError;
use fvfs_fuse::Errno;
use fvfs_types::api::ErrorCode;

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
            | TooManySymlinks
            | FileTooBig
            | NoAttribute
            | AttributeTooBig
            | NoSpace
    )
}

/// The errno for `e`, not logged (for callers that log it themselves).
pub fn errno_of(e: &ClientError) -> Errno {
    match e {
        ClientError::Api { code, .. } => Errno::from_i32(code.errno()),
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
    fn an_unreachable_daemon_is_eio() {
        let e = ClientError::Connect {
            url: "http://127.0.0.1:1".into(),
            msg: "refused".into(),
        };
        assert_eq!(errno("test", &e), Errno::from_i32(libc::EIO));
    }
}
