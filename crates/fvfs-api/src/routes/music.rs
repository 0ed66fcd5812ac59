//! `GET /v1/music/search`: the music face's full-text search, answered by the
//! [`MusicSearch`] provider the daemon sets on [`crate::ApiState::music`] when it runs
//! the music mount. This crate does not depend on fvfs-music (tag reading, origin SDKs):
//! the provider speaks the wire model `fvfs_types::api::MusicHit`.
//!
//! Invariants: any valid token may search (it reads the index, not the files); no
//! provider is `404` "the music face is not running in this daemon"; a bad query or
//! limit is `400`, an index that cannot answer `503`, any other failure `500`, all
//! through [`ApiError`] (the one error table); the provider runs on the blocking pool.

use super::extract::ApiQuery;
use super::AppState;
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::Json;
use fvfs_types::api::{ErrorBody, MusicHit, MusicSearchResult};
use serde::Deserialize;

/// `limit` when none is given, and the largest accepted (as the control socket's).
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

/// Why a music search failed.
#[derive(Debug, thiserror::Error)]
pub enum MusicSearchError {
    /// The query cannot be understood (unknown field, nothing to search for): 400.
    #[error("{0}")]
    BadQuery(String),
    /// The index cannot answer now: 503.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: 500.
    #[error("{0}")]
    Failed(String),
}

impl From<MusicSearchError> for ApiError {
    fn from(e: MusicSearchError) -> ApiError {
        match e {
            MusicSearchError::BadQuery(m) => ApiError::invalid_argument(m),
            MusicSearchError::Unavailable(m) => ApiError::unavailable(m),
            MusicSearchError::Failed(m) => ApiError::internal(m),
        }
    }
}

/// The music face's search as the API needs it. Synchronous: it may block.
pub trait MusicSearch: Send + Sync + 'static {
    /// At most `limit` (1..=[`MAX_LIMIT`]) tracks matching `query`, best first.
    fn search(&self, query: &str, limit: usize) -> Result<Vec<MusicHit>, MusicSearchError>;
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The query: words that must all match (prefix or fuzzy), `field:word` to restrict
    /// one to `artist`, `album`, `albumartist`, `title`, `genre`, `year`, `format`, `path`.
    pub q: String,
    /// At most this many tracks (1–1000, default 50).
    pub limit: Option<usize>,
}

/// Searches the music index.
#[utoipa::path(get, path = "/v1/music/search", tag = "music", params(SearchQuery),
    responses((status = 200, body = MusicSearchResult), (status = 400, body = ErrorBody),
        (status = 404, description = "the music face is not running in this daemon", body = ErrorBody)))]
pub async fn search(
    State(st): State<AppState>,
    ApiQuery(SearchQuery { q, limit }): ApiQuery<SearchQuery>,
) -> ApiResult<Json<MusicSearchResult>> {
    let Some(provider) = st.music.clone() else {
        return Err(ApiError::not_found(
            "the music face is not running in this daemon",
        ));
    };
    if q.trim().is_empty() {
        return Err(ApiError::invalid_argument("q: nothing to search for"));
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::invalid_argument(format!(
                "limit {n} is not within 1..={MAX_LIMIT}"
            )))
        }
    };
    let query = q.clone();
    let hits = match tokio::task::spawn_blocking(move || provider.search(&query, limit)).await {
        Ok(r) => r?,
        Err(e) => return Err(ApiError::internal(format!("music search task failed: {e}"))),
    };
    Ok(Json(MusicSearchResult { query: q, hits }))
}
