//! `GET /v1/manifest/{path}` (a file as block pieces) and `GET /v1/blocks/{id}` (the
//! verified plain bytes of one block).
//!
//! Invariants: a manifest's `etag` is computed from exactly the pieces it lists; a block
//! answer is the bytes hashing to its id (the store verifies them), so it is immutable
//! and cacheable forever, but only `private`ly: it needs a token, so no shared cache may
//! keep it.

use super::extract::path_after;
use super::who::Who;
use super::{etag, resolve, AppState};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fvfs_types::api::{ErrorBody, Manifest, Piece};
use fvfs_types::BlockId;

/// The blocks a file is made of.
#[utoipa::path(get, path = "/v1/manifest/{path}", tag = "blocks",
    params(("path" = String, Path, description = "file path, percent-encoded")),
    responses((status = 200, body = Manifest), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn manifest(State(st): State<AppState>, who: Who, uri: Uri) -> ApiResult<Json<Manifest>> {
    let path = path_after(&uri, "/v1/manifest")?;
    let a = resolve(&st, who.ctx, &path).await?;
    let layout = st.vfs.manifest_as(who.ctx, &a).await?;
    let pieces = layout
        .pieces
        .iter()
        .map(|p| Piece {
            offset: p.offset,
            len: p.len,
            id: p.id.to_hex(),
            block_offset: p.block_offset,
            block_len: p.block_len,
        })
        .collect();
    Ok(Json(Manifest {
        path: path.display(),
        size: layout.size,
        etag: etag(&layout),
        pieces,
    }))
}

/// The plain bytes of one block.
#[utoipa::path(get, path = "/v1/blocks/{id}", tag = "blocks",
    params(("id" = String, Path, description = "64 hex digits: BLAKE3 of the bytes",
        pattern = "^[0-9a-fA-F]{64}$")),
    responses(
        (status = 200, description = "the bytes", body = inline(super::files::Binary), content_type = "application/octet-stream"),
        (status = 304, description = "the client has it"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn block(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let raw = uri.path().strip_prefix("/v1/blocks/").unwrap_or("");
    let id = (raw.len() == 64)
        .then(|| BlockId::from_hex(raw))
        .flatten()
        .ok_or_else(|| ApiError::invalid_argument("a block id is 64 hex digits"))?;
    let tag = format!("\"{}\"", id.to_hex());
    let mut h = HeaderMap::new();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&tag).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    let cached = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim().trim_start_matches("W/");
            t == "*" || t.eq_ignore_ascii_case(&tag)
        });
    if cached {
        // A 304 must not confirm an unknown id (the same rule as `read_block`: a row).
        if !st.vfs.block_exists(&id)? {
            return Err(ApiError::not_found(format!("no block {id}")));
        }
        return Ok((StatusCode::NOT_MODIFIED, h).into_response());
    }
    let data = st.vfs.read_block(&id).await?;
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok((StatusCode::OK, h, data).into_response())
}
