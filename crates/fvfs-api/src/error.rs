//! THE table from errors to HTTP status. OWNER: helper H1.

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: fvfs_types::api::ErrorCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;
