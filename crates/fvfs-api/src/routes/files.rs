//! `GET`/`HEAD`/`PUT`/`DELETE /v1/files/{path}`: file content.
//!
//! Invariants: a GET streams through one read handle in [`READ_STEP`] steps (never the
//! whole file in memory) and its ETag describes the inode the handle holds; a PUT goes
//! through `Vfs::begin_upload_as` and becomes visible only complete, length- and
//! hash-checked (anything else aborts the upload, which leaves the old content); with
//! `parents=true` its temporary file waits in the deepest existing ancestor and the
//! missing directories are made only after the checks, so a refused body creates nothing.
//! Every route acts as the caller ([`Who`]).

use super::extract::{path_after, ApiQuery};
use super::who::Who;
use super::{etag, on_vfs, owner, parent, parent_of, resolve, stat_of, AppState};
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Json;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use fvfs_types::api::{ErrorBody, Stat, HEADER_BLAKE3};
use fvfs_types::error::ErrorCode;
use fvfs_types::FileKind;
use fvfs_vfs::FileReader;
use serde::Deserialize;
use std::time::{Duration, UNIX_EPOCH};

/// Bytes read per step of a streamed GET.
pub const READ_STEP: u32 = 1 << 20;
/// Bytes gathered from the request body before each write of a PUT.
const WRITE_STEP: usize = 1 << 20;

const PREFIX: &str = "/v1/files";

pub fn routes() -> MethodRouter<AppState> {
    axum::routing::get(get_file)
        .head(head_file)
        .put(put_file)
        .delete(delete_file)
}

/// Binary content (for the OpenAPI spec).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

/// What a `Range` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeReq {
    Full,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parses `Range` against `size` (RFC 9110: a malformed header or several ranges are
/// ignored, so the whole file is sent).
pub fn parse_range(h: Option<&HeaderValue>, size: u64) -> RangeReq {
    let Some(spec) = h
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().strip_prefix("bytes="))
    else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangeReq::Full;
        };
        if n == 0 || size == 0 {
            return RangeReq::Unsatisfiable;
        }
        return RangeReq::Part(size - n.min(size), size - 1);
    }
    let Ok(first) = a.parse::<u64>() else {
        return RangeReq::Full;
    };
    let last = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(l) if l >= first => l,
            _ => return RangeReq::Full,
        }
    };
    if first >= size {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::Part(first, last.min(size - 1))
}

/// True if `If-None-Match` matches `etag` (weak comparison, `*` matches any).
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PutQuery {
    /// Permission bits of a new file (default 0o644 = 420).
    #[param(maximum = 4095)]
    pub mode: Option<u32>,
    /// Owner (default: the token's identity; another one needs an admin token).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Create missing parent directories.
    pub parents: Option<bool>,
    /// Modification time to set, ns since the epoch.
    pub mtime_ns: Option<i64>,
}

/// The content of a file.
#[utoipa::path(get, path = "/v1/files/{path}", tag = "files",
    params(("path" = String, Path, description = "file path, percent-encoded"),
           ("Range" = Option<String>, Header, description = "bytes=a-b, a- or -n"),
           ("If-None-Match" = Option<String>, Header, description = "ETag(s) the client has")),
    responses(
        (status = 200, description = "the file", body = inline(Binary), content_type = "application/octet-stream"),
        (status = 206, description = "the range asked", body = inline(Binary), content_type = "application/octet-stream"),
        (status = 304, description = "the client's copy is current"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "a directory", body = ErrorBody),
        (status = 416, body = ErrorBody)))]
pub async fn get_file(
    State(st): State<AppState>,
    who: Who,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(st, who, Method::GET, uri, headers).await
}

/// The headers of `GET` without the body.
#[utoipa::path(head, path = "/v1/files/{path}", tag = "files",
    params(("path" = String, Path, description = "file path, percent-encoded")),
    responses((status = 200, description = "the file's headers"), (status = 304),
        (status = 400), (status = 403), (status = 404), (status = 409), (status = 416)))]
pub async fn head_file(
    State(st): State<AppState>,
    who: Who,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(st, who, Method::HEAD, uri, headers).await
}

async fn serve(
    st: AppState,
    who: Who,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let path = path_after(&uri, PREFIX)?;
    let a = resolve(&st, who.ctx, &path).await?;
    match a.kind {
        FileKind::File => {}
        FileKind::Dir => return Err(ApiError::is_dir(format!("{path} is a directory"))),
        _ => {
            return Err(ApiError::invalid_argument(format!(
                "{path} is not a regular file"
            )))
        }
    }
    // The handle keeps this inode readable; the ETag and the bytes are of the same inode.
    let reader = st.vfs.open_reader_as(who.ctx, &a)?;
    let layout = st.vfs.manifest(a.ino).await?;
    let tag = etag(&layout);
    let size = layout.size;
    let mtime = st.vfs.getattr(a.ino)?.mtime;
    let mut common = HeaderMap::new();
    common.insert(header::ETAG, hv(&tag));
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let when = UNIX_EPOCH + Duration::from_nanos(mtime.max(0) as u64);
    common.insert(header::LAST_MODIFIED, hv(&httpdate::fmt_http_date(when)));
    if none_match(&headers, &tag) {
        reader.close().await;
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let (status, first, len) = match parse_range(headers.get(header::RANGE), size) {
        RangeReq::Full => (StatusCode::OK, 0, size),
        RangeReq::Part(a, b) => {
            common.insert(header::CONTENT_RANGE, hv(&format!("bytes {a}-{b}/{size}")));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        RangeReq::Unsatisfiable => {
            reader.close().await;
            let e = ApiError::new(
                fvfs_types::api::ErrorCode::RangeNotSatisfiable,
                format!("the file has {size} bytes"),
            );
            let mut r = e.into_response();
            r.headers_mut()
                .insert(header::CONTENT_RANGE, hv(&format!("bytes */{size}")));
            return Ok(r);
        }
    };
    common.insert(header::CONTENT_LENGTH, hv(&len.to_string()));
    common.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if method == Method::HEAD {
        reader.close().await;
        return Ok((status, common).into_response());
    }
    let body = Body::from_stream(stream_range(reader, first, first + len, path.display()));
    Ok((status, common, body).into_response())
}

/// The bytes `[from, to)` read through `reader` in steps; the reader is closed at the end
/// (or released on drop if the client goes away). A file that shrank meanwhile ends the
/// stream with an error, so the client sees a short body, never wrong bytes.
fn stream_range(
    reader: FileReader,
    from: u64,
    to: u64,
    path: String,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(Some((reader, from)), move |s| {
        let path = path.clone();
        async move {
            let (reader, pos) = s?;
            if pos >= to {
                reader.close().await;
                return None;
            }
            let n = (to - pos).min(READ_STEP as u64) as u32;
            match reader.read_at(pos, n).await {
                Ok(v) if !v.is_empty() => {
                    let next = pos + v.len() as u64;
                    Some((Ok(Bytes::from(v)), Some((reader, next))))
                }
                Ok(_) => {
                    tracing::warn!(path, pos, "file shrank while it was being sent");
                    reader.close().await;
                    Some((Err(std::io::Error::other("file shrank")), None))
                }
                Err(e) => {
                    tracing::error!(path, pos, error = %e, "reading a file for GET failed");
                    reader.close().await;
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    })
}

/// Parses `x-fvfs-blake3`.
fn expected_hash(headers: &HeaderMap) -> ApiResult<Option<[u8; 32]>> {
    let Some(v) = headers.get(HEADER_BLAKE3) else {
        return Ok(None);
    };
    let bad = || ApiError::invalid_argument(format!("{HEADER_BLAKE3} must be 64 hex digits"));
    let s = v.to_str().map_err(|_| bad())?.trim();
    let b = hex::decode(s).map_err(|_| bad())?;
    Ok(Some(b.try_into().map_err(|_| bad())?))
}

/// Replaces (or creates) a file with the request body.
#[utoipa::path(put, path = "/v1/files/{path}", tag = "files",
    params(("path" = String, Path, description = "file path, percent-encoded"), PutQuery,
           ("x-fvfs-blake3" = Option<String>, Header, description = "BLAKE3 of the body, 64 hex digits",
            pattern = "^[0-9a-fA-F]{64}$")),
    request_body(content = inline(Binary), content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "replaced", body = Stat),
        (status = 201, description = "created", body = Stat),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_file(
    State(st): State<AppState>,
    who: Who,
    uri: Uri,
    ApiQuery(q): ApiQuery<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let path = path_after(&uri, PREFIX)?;
    let max = st.limits.max_upload;
    let declared = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid_argument("bad Content-Length"))?,
        ),
        None => None,
    };
    if declared.is_some_and(|n| n > max) {
        return Err(ApiError::payload_too_large(format!(
            "uploads are limited to {max} bytes"
        )));
    }
    let want = expected_hash(&headers)?;
    let file_owner = owner(q.mode, 0o644, q.uid, q.gid)?;
    let dir_owner = owner(None, 0o755, q.uid, q.gid)?;
    let ctx = who.ctx;
    let Some((comps, name)) = path.split_last() else {
        return Err(ApiError::is_dir("the root is a directory"));
    };
    // `dir`: the target's directory, or with `parents` its deepest existing ancestor,
    // which holds the temporary file until the body is accepted; `missing` are the
    // directories to make then.
    let (dir, missing) = if q.parents.unwrap_or(false) {
        let (d, n) = st.vfs.deepest_dir_as(ctx, comps)?;
        (d, &comps[n..])
    } else {
        (parent(&st, ctx, &path).await?.0, &comps[comps.len()..])
    };
    who.check_new_owner(q.uid, q.gid, &dir)?;
    who.check_mode(FileKind::File, file_owner.mode, st.allow_devices)?;
    if missing.is_empty() {
        match st.vfs.lookup_as(ctx, &dir, name.as_bytes()) {
            Ok(a) if a.kind == FileKind::Dir => {
                return Err(ApiError::is_dir(format!("{path} is a directory")))
            }
            Ok(_) => {}
            Err(e) if e.code() == ErrorCode::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut up = st
        .vfs
        .begin_upload_as(ctx, &dir, name.as_bytes(), file_owner)?;
    // Hashing costs a pass over every byte: only when the client gave a hash to check.
    let mut hasher = want.map(|_| blake3::Hasher::new());
    let mut buf = BytesMut::with_capacity(WRITE_STEP);
    let mut total = 0u64;
    let mut data = body.into_data_stream();
    while let Some(frame) = data.next().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                up.abort().await;
                return Err(ApiError::length_mismatch(format!(
                    "the body ended early ({e}); nothing changed"
                )));
            }
        };
        total += frame.len() as u64;
        if total > max {
            up.abort().await;
            return Err(ApiError::payload_too_large(format!(
                "uploads are limited to {max} bytes"
            )));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&frame);
        }
        buf.extend_from_slice(&frame);
        if buf.len() >= WRITE_STEP {
            if let Err(e) = up.write(&buf).await {
                up.abort().await;
                return Err(e.into());
            }
            buf.clear();
        }
    }
    if !buf.is_empty() {
        if let Err(e) = up.write(&buf).await {
            up.abort().await;
            return Err(e.into());
        }
    }
    if let Some(n) = declared.filter(|&n| n != total) {
        up.abort().await;
        return Err(ApiError::length_mismatch(format!(
            "Content-Length is {n} but the body had {total} bytes; nothing changed"
        )));
    }
    if let (Some(want), Some(h)) = (want, hasher) {
        let got = h.finalize();
        if got.as_bytes() != &want {
            up.abort().await;
            return Err(ApiError::hash_mismatch(format!(
                "the body's BLAKE3 is {}; nothing changed",
                got.to_hex()
            )));
        }
    }
    // Accepted: now the missing parents, and the target checked as rename(2) checks it.
    let target_dir = if missing.is_empty() {
        Ok(dir)
    } else {
        st.vfs
            .mkdir_p_as(ctx, dir, missing, dir_owner)
            .map(|(d, _)| d)
    };
    let placed = target_dir.and_then(|d| {
        st.vfs.check_replace_as(ctx, &d, name.as_bytes())?;
        Ok(d)
    });
    match placed {
        Ok(d) => up.set_target_dir(d.ino),
        Err(e) => {
            up.abort().await;
            return Err(e.into());
        }
    }
    let (a, existed) = up.finish(q.mtime_ns, false).await?;
    let stat = stat_of(&st.vfs, &path, &a).await?;
    let code = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((code, Json(stat)).into_response())
}

/// Removes a file, symlink or empty directory.
#[utoipa::path(delete, path = "/v1/files/{path}", tag = "files",
    params(("path" = String, Path, description = "path, percent-encoded")),
    responses((status = 204, description = "removed"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete_file(State(st): State<AppState>, who: Who, uri: Uri) -> ApiResult<StatusCode> {
    let path = path_after(&uri, PREFIX)?;
    let ctx = who.ctx;
    on_vfs(&st, move |v| {
        let (parent, name) = parent_of(v, ctx, &path)?;
        Ok(v.remove_as(ctx, &parent, name.as_bytes())?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str, size: u64) -> RangeReq {
        parse_range(Some(&HeaderValue::from_str(s).unwrap()), size)
    }

    #[test]
    fn ranges() {
        assert_eq!(r("bytes=0-9", 100), RangeReq::Part(0, 9));
        assert_eq!(r("bytes=90-", 100), RangeReq::Part(90, 99));
        assert_eq!(r("bytes=90-200", 100), RangeReq::Part(90, 99));
        assert_eq!(r("bytes=-10", 100), RangeReq::Part(90, 99));
        assert_eq!(r("bytes=-1000", 100), RangeReq::Part(0, 99));
        assert_eq!(r("bytes=100-", 100), RangeReq::Unsatisfiable);
        assert_eq!(r("bytes=-0", 100), RangeReq::Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), RangeReq::Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6", 100), RangeReq::Full);
        assert_eq!(r("bytes=5-1", 100), RangeReq::Full);
        assert_eq!(r("items=0-1", 100), RangeReq::Full);
        assert_eq!(r("bytes=x-1", 100), RangeReq::Full);
        assert_eq!(parse_range(None, 100), RangeReq::Full);
    }
}
