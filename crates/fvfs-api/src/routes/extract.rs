//! Extractors whose rejections are API errors (our JSON body, our status table) instead
//! of axum's plain-text ones, and the path after a route's fixed prefix.
//!
//! Invariant: JSON bodies are read through `Bytes`, so the router's `DefaultBodyLimit`
//! (`Limits::max_json`) bounds them; a body over it is `413 payload_too_large`.

use crate::error::{ApiError, ApiResult};
use crate::path::ApiPath;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use serde::de::DeserializeOwned;

/// A JSON body (any or no content type), required.
pub struct ApiJson<T>(pub T);

/// A JSON body, or the type's default when the body is empty or `null`.
pub struct OptJson<T>(pub T);

/// Query parameters.
pub struct ApiQuery<T>(pub T);

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> ApiResult<Bytes> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large("the JSON body is too large")
        } else {
            ApiError::invalid_argument(format!("cannot read the body: {}", e.body_text()))
        }
    })
}

fn parse_json<T: DeserializeOwned>(b: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(b).map_err(|e| ApiError::invalid_argument(format!("bad JSON body: {e}")))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let b = body_bytes(req, state).await?;
        Ok(ApiJson(parse_json(&b)?))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let b = body_bytes(req, state).await?;
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptJson(T::default()));
        }
        // `null` is the empty body too.
        Ok(OptJson(parse_json::<Option<T>>(&b)?.unwrap_or_default()))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::invalid_argument(format!("bad query: {}", e.body_text())))
    }
}

/// The normalised path after `prefix` in the request's (still percent-encoded) path.
pub fn path_after(uri: &Uri, prefix: &str) -> ApiResult<ApiPath> {
    let rest = uri.path().strip_prefix(prefix).unwrap_or("");
    ApiPath::from_url(rest)
}
