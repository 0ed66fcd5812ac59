//! Errors of the tier layer.
//!
//! Invariant: no message ever contains credentials. Locations are shown in the
//! redacted form of [`crate::TierSpec::display`] (or [`redact`] for raw user input).

use thiserror::Error;

/// Boxed error used as a `source` where the cause may come from several libraries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to a storage tier.
#[derive(Debug, Error)]
pub enum TierError {
    /// The storage location does not answer (connection refused, timeout, DNS, the
    /// local directory cannot be created or accessed).
    #[error("storage location {location} is unreachable: {source}")]
    Unreachable {
        location: String,
        #[source]
        source: BoxError,
    },
    /// The object does not exist.
    #[error("object {key} not found")]
    NotFound { key: String },
    /// The location string or the configuration is invalid.
    #[error("invalid storage configuration: {0}")]
    Config(String),
    /// The store refused our credentials or permissions.
    #[error(
        "access to storage location {location} was denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS profile): {source}"
    )]
    Denied {
        location: String,
        #[source]
        source: opendal::Error,
    },
    /// Any other error while reading or writing one object.
    #[error("storage I/O error on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: opendal::Error,
    },
}

impl TierError {
    /// Whether this error means "the tier is down" rather than "this object is bad".
    pub fn is_unreachable(&self) -> bool {
        matches!(self, TierError::Unreachable { .. })
    }
    /// Whether this error means the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, TierError::NotFound { .. })
    }
}

/// Removes any `user:password@` part from a URL-like string so it can be echoed in an
/// error message.
pub fn redact(location: &str) -> String {
    let Some(scheme_end) = location.find("://") else {
        return location.to_string();
    };
    let rest = &location[scheme_end + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => format!(
            "{}://<redacted>@{}",
            &location[..scheme_end],
            &rest[at + 1..]
        ),
        None => location.to_string(),
    }
}

/// Classifies an OpenDAL error for object `key` of the tier displayed as `location`.
pub(crate) fn classify(location: &str, key: &str, e: opendal::Error) -> TierError {
    use opendal::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => TierError::NotFound {
            key: key.to_string(),
        },
        ErrorKind::PermissionDenied => TierError::Denied {
            location: location.to_string(),
            source: e,
        },
        ErrorKind::ConfigInvalid => TierError::Config(format!("{location}: {e}")),
        ErrorKind::Unexpected if is_transport_failure(&e) => TierError::Unreachable {
            location: location.to_string(),
            source: Box::new(e),
        },
        _ => TierError::Io {
            key: key.to_string(),
            source: e,
        },
    }
}

/// Whether an `Unexpected` OpenDAL error comes from the transport (no answer at all)
/// rather than from the service.
fn is_transport_failure(e: &opendal::Error) -> bool {
    const TRANSPORT: [&str; 4] = [
        "send http request",
        "operation timeout reached",
        "io operation timeout reached",
        "read data from http response",
    ];
    TRANSPORT.contains(&e.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_userinfo() {
        assert_eq!(
            redact("s3://AKIA:secret@bucket/p?x=1"),
            "s3://<redacted>@bucket/p?x=1"
        );
        assert_eq!(redact("s3://bucket/p@x"), "s3://bucket/p@x");
        assert_eq!(redact("/plain/path"), "/plain/path");
    }

    #[test]
    fn classify_kinds() {
        let nf = opendal::Error::new(opendal::ErrorKind::NotFound, "nope");
        assert!(classify("loc", "k", nf).is_not_found());
        let tr = opendal::Error::new(opendal::ErrorKind::Unexpected, "send http request");
        let e = classify("s3://b", "k", tr);
        assert!(e.is_unreachable());
        assert!(e.to_string().contains("s3://b"));
        let other = opendal::Error::new(opendal::ErrorKind::Unexpected, "boom");
        assert!(matches!(classify("loc", "k", other), TierError::Io { .. }));
    }
}
