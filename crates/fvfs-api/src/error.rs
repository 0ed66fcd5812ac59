//! The API's error: a code of the error vocabulary (fvfs-types `ErrorCode`, whose table
//! gives the HTTP status; engine errors take theirs from `VfsError::code`) with a message,
//! and the JSON error body.
//!
//! Invariants: every error response of the API is `{"error": {"code", "message"}}` with
//! the status [`status`] gives its code; 5xx errors are logged at error level where they
//! become a response (here), 4xx at debug level only.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fvfs_types::api::{ErrorBody, ErrorCode, ErrorDetail};
use fvfs_vfs::VfsError;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The HTTP status of an error code: the error vocabulary's (fvfs-types `ErrorCode`).
pub fn status(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::NotFound, m)
    }
    pub fn invalid_path(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::InvalidPath, m)
    }
    pub fn invalid_argument(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::InvalidArgument, m)
    }
    pub fn name_too_long(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::NameTooLong, m)
    }
    pub fn is_dir(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::IsDir, m)
    }
    pub fn not_dir(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::NotDir, m)
    }
    pub fn exists(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::Exists, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::Unauthorized, m)
    }
    pub fn forbidden(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::Forbidden, m)
    }
    /// EPERM: the caller's identity or token may not do this (docs/API.md, "Identities").
    pub fn not_permitted(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::NotPermitted, m)
    }
    pub fn payload_too_large(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::PayloadTooLarge, m)
    }
    pub fn length_mismatch(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::LengthMismatch, m)
    }
    pub fn hash_mismatch(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::HashMismatch, m)
    }
    pub fn not_supported(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::NotSupported, m)
    }
    pub fn unavailable(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::Unavailable, m)
    }
    pub fn internal(m: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::Internal, m)
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        status(self.code)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
            },
        }
    }
}

impl From<VfsError> for ApiError {
    fn from(e: VfsError) -> ApiError {
        ApiError::new(e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let st = self.status();
        if st.is_server_error() {
            tracing::error!(code = self.code.as_str(), status = st.as_u16(), error = %self.message, "request failed");
        } else {
            tracing::debug!(code = self.code.as_str(), status = st.as_u16(), error = %self.message, "request refused");
        }
        let mut resp = (st, axum::Json(self.body())).into_response();
        if self.code == ErrorCode::Unauthorized {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
