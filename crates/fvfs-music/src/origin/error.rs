//! [`OriginError`], the one error type of the origin layer, and the mapping of OpenDAL
//! errors onto it.
//!
//! Invariants:
//! - no message ever contains a secret (S3 keys, WebDAV passwords): origins are named
//!   by their id, locations by [`super::OriginSpec::display`];
//! - each variant says what a caller should do with it: [`OriginError::is_retryable`]
//!   (the origin may answer if asked again) and [`OriginError::marks_unhealthy`] (the
//!   failure is the origin's, not the file's) drive retries and failover in
//!   [`super::OriginSet`].

use thiserror::Error;

/// Boxed cause, where it may come from several libraries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong with an origin.
#[derive(Debug, Error)]
pub enum OriginError {
    /// The origin's description is invalid (unknown kind, bad id, missing field...).
    /// Never caused by an origin that does not answer: that is [`OriginError::Unavailable`].
    #[error("invalid origin spec: {0}")]
    Spec(String),
    /// An origin id that no [`super::OriginSet`] member has.
    #[error("unknown origin {0:?}")]
    UnknownOrigin(String),
    /// The origin does not answer, answers with a server error or too late.
    #[error("origin {origin} is unavailable: {source}")]
    Unavailable {
        origin: String,
        #[source]
        source: BoxError,
    },
    /// The origin refused our credentials or permissions.
    #[error("origin {origin} denied access: {source}")]
    Denied {
        origin: String,
        #[source]
        source: BoxError,
    },
    /// The file is not on this origin.
    #[error("{path} not found on origin {origin}")]
    NotFound { origin: String, path: String },
    /// A range that is not wholly in the file: it is shorter than the caller knows it
    /// (it changed on the origin since it was scanned).
    #[error("{path} on origin {origin} ends before {offset}+{len}")]
    Short {
        origin: String,
        path: String,
        offset: u64,
        len: u64,
    },
    /// Any other failure on one file (a directory where a file was expected...).
    #[error("I/O error on {path} of origin {origin}: {source}")]
    Io {
        origin: String,
        path: String,
        #[source]
        source: BoxError,
    },
    /// [`super::OriginSet::read_range_any`] was given no candidate.
    #[error("a read named no origin to read from")]
    NoCandidate,
    /// Every candidate of a read failed; the last error of each, in the order tried.
    #[error("every origin failed: {}", list(.0))]
    AllFailed(Vec<OriginError>),
}

fn list(errors: &[OriginError]) -> String {
    let parts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    parts.join("; ")
}

impl OriginError {
    /// Whether asking the same origin again may succeed (it did not answer, or answered
    /// with a server error). Not-found, denied and short files are not retried.
    pub fn is_retryable(&self) -> bool {
        matches!(self, OriginError::Unavailable { .. })
    }

    /// Whether the failure is the origin's (down, unreachable, refusing us) rather than
    /// one file's; such a failure makes the origin unhealthy.
    pub fn marks_unhealthy(&self) -> bool {
        matches!(
            self,
            OriginError::Unavailable { .. } | OriginError::Denied { .. }
        )
    }

    /// Whether the file does not exist (on one origin, or on every candidate).
    pub fn is_not_found(&self) -> bool {
        match self {
            OriginError::NotFound { .. } => true,
            OriginError::AllFailed(all) => all.iter().all(|e| e.is_not_found()),
            _ => false,
        }
    }

    /// The `std::io` form, for [`crate::source::RangeSource`] callers.
    pub fn into_io(self) -> std::io::Error {
        use std::io::ErrorKind as K;
        let kind = match &self {
            e if e.is_not_found() => K::NotFound,
            OriginError::Denied { .. } => K::PermissionDenied,
            OriginError::Short { .. } => K::InvalidData,
            OriginError::Unavailable { .. } => K::TimedOut,
            _ => K::Other,
        };
        std::io::Error::new(kind, self)
    }
}

/// Maps an OpenDAL error on `path` of origin `origin`.
///
/// Everything that is neither about the file (not found, a directory, a bad range)
/// nor a refusal is taken as the origin being unavailable: OpenDAL reports transport
/// failures, timeouts and server errors as `Unexpected` (often marked temporary),
/// and SSH failures of the sftp service likewise.
pub(crate) fn classify(origin: &str, path: &str, e: opendal::Error) -> OriginError {
    use opendal::ErrorKind as K;
    let origin = origin.to_string();
    match e.kind() {
        K::NotFound => OriginError::NotFound {
            origin,
            path: path.to_string(),
        },
        K::PermissionDenied => OriginError::Denied {
            origin,
            source: Box::new(e),
        },
        K::IsADirectory | K::NotADirectory | K::RangeNotSatisfied | K::Unsupported => {
            OriginError::Io {
                origin,
                path: path.to_string(),
                source: Box::new(e),
            }
        }
        _ => OriginError::Unavailable {
            origin,
            source: Box::new(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let nf = classify(
            "a",
            "x.flac",
            opendal::Error::new(opendal::ErrorKind::NotFound, "nope"),
        );
        assert!(nf.is_not_found() && !nf.is_retryable() && !nf.marks_unhealthy());
        assert_eq!(nf.to_string(), "x.flac not found on origin a");
        let down = classify(
            "b",
            "x.flac",
            opendal::Error::new(opendal::ErrorKind::Unexpected, "send http request"),
        );
        assert!(down.is_retryable() && down.marks_unhealthy());
        let denied = classify(
            "c",
            "x",
            opendal::Error::new(opendal::ErrorKind::PermissionDenied, "403"),
        );
        assert!(!denied.is_retryable() && denied.marks_unhealthy());
        let all = OriginError::AllFailed(vec![nf, down]);
        assert!(!all.is_not_found());
        assert!(all.to_string().starts_with(
            "every origin failed: x.flac not found on origin a; origin b is unavailable: "
        ));
        assert_eq!(all.into_io().kind(), std::io::ErrorKind::Other);
    }
}
