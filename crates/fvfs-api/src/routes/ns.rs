//! Namespace routes: `meta` (lstat, setattr), `ls` (name-ordered pages), `mkdir`,
//! `symlink` and `rename`.
//!
//! Invariant: listings never show upload temporaries (`path::is_hidden`), and every
//! path, including `rename`'s JSON ones, goes through `path.rs` normalisation. Every
//! route acts as the caller ([`Who`]): the engine checks its permissions, `who.rs` the
//! owners and modes it names.

use super::extract::{path_after, ApiJson, ApiQuery, OptJson};
use super::who::Who;
use super::{on_vfs, owner, parent, resolve, stat_of, stat_with, AppState};
use crate::error::{ApiError, ApiResult};
use crate::path::{is_hidden, ApiPath};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use fvfs_types::api::{CreateRequest, ErrorBody, Listing, RenameRequest, SetAttrRequest, Stat};
use fvfs_types::error::ErrorCode;
use fvfs_types::FileKind;
use fvfs_vfs::{AttrChange, RenameFlags, TimeSet};
use serde::Deserialize;

/// Most entries per `ls` page (also the default).
pub const MAX_PAGE: usize = 1000;

/// The `Stat` of a path (lstat: symlinks are not followed).
#[utoipa::path(get, path = "/v1/meta/{path}", tag = "namespace",
    params(("path" = String, Path, description = "path, percent-encoded")),
    responses((status = 200, body = Stat), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn get_meta(State(st): State<AppState>, who: Who, uri: Uri) -> ApiResult<Json<Stat>> {
    let path = path_after(&uri, "/v1/meta")?;
    let a = resolve(&st, who.ctx, &path).await?;
    // The ETag is derived from the content: only for a caller who may read it (stat(2)
    // needs no read permission, and tells nothing of the content).
    let readable = st.vfs.permits_as(who.ctx, &a, fvfs_vfs::access::MAY_READ)?;
    Ok(Json(stat_with(&st.vfs, &path, &a, readable).await?))
}

/// Changes attributes: only the fields given.
#[utoipa::path(patch, path = "/v1/meta/{path}", tag = "namespace",
    params(("path" = String, Path, description = "path, percent-encoded")),
    request_body = SetAttrRequest,
    responses((status = 200, body = Stat), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn patch_meta(
    State(st): State<AppState>,
    who: Who,
    uri: Uri,
    ApiJson(req): ApiJson<SetAttrRequest>,
) -> ApiResult<Json<Stat>> {
    let path = path_after(&uri, "/v1/meta")?;
    let a = resolve(&st, who.ctx, &path).await?;
    if req.mode.is_some_and(|m| m > 0o7777) {
        return Err(ApiError::invalid_argument(
            "mode holds permission bits only (at most 0o7777 = 4095)",
        ));
    }
    who.check_chown(&a, req.uid, req.gid)?;
    if let Some(m) = req.mode {
        who.check_mode(a.kind, m, st.allow_devices)?;
    }
    if req.size.is_some() && a.kind != FileKind::File {
        return Err(match a.kind {
            FileKind::Dir => ApiError::is_dir(format!("{path} is a directory")),
            _ => ApiError::invalid_argument(format!("{path} is not a regular file")),
        });
    }
    let time = |t: Option<i64>| t.map_or(TimeSet::Omit, TimeSet::At);
    let a = st
        .vfs
        .setattr_as(
            who.ctx,
            who.admin,
            &a,
            AttrChange {
                perm: req.mode,
                uid: req.uid,
                gid: req.gid,
                size: req.size,
                atime: time(req.atime_ns),
                mtime: time(req.mtime_ns),
            },
        )
        .await?;
    Ok(Json(stat_of(&st.vfs, &path, &a).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LsQuery {
    /// Entries per page, 1..=1000 (default 1000; larger values are capped).
    #[param(minimum = 1)]
    pub limit: Option<usize>,
    /// Start after this name (the previous page's `next`).
    pub after: Option<String>,
}

/// One page of a directory, in name order. Entries carry no `etag` (`GET /v1/meta` does).
#[utoipa::path(get, path = "/v1/ls/{path}", tag = "namespace",
    params(("path" = String, Path, description = "directory, percent-encoded"), LsQuery),
    responses((status = 200, body = Listing), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    who: Who,
    uri: Uri,
    ApiQuery(q): ApiQuery<LsQuery>,
) -> ApiResult<Json<Listing>> {
    let path = path_after(&uri, "/v1/ls")?;
    let limit = match q.limit {
        Some(0) => return Err(ApiError::invalid_argument("limit must be at least 1")),
        Some(n) => n.min(MAX_PAGE),
        None => MAX_PAGE,
    };
    let (ctx, p) = (who.ctx, path.clone());
    let (entries, more) = on_vfs(&st, move |v| {
        let dir = v.resolve_path_as(ctx, p.components())?;
        if dir.kind != FileKind::Dir {
            return Err(ApiError::not_dir(format!("{p} is not a directory")));
        }
        let after = q.after.as_deref().map(str::as_bytes);
        let (entries, more) = v.list_sorted_as(ctx, &dir, after, limit, |n| {
            !std::str::from_utf8(n).is_ok_and(is_hidden)
        })?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            match v.getattr(e.ino) {
                Ok(a) => out.push((e, a)),
                // Removed since the directory was read.
                Err(err) if err.code() == ErrorCode::NotFound => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Ok((out, more))
    })
    .await?;
    let mut out = Vec::with_capacity(entries.len());
    for (e, a) in &entries {
        let child = path.join(&String::from_utf8_lossy(&e.name));
        out.push(stat_with(&st.vfs, &child, a, false).await?);
    }
    let next = if more {
        entries
            .last()
            .map(|(e, _)| String::from_utf8_lossy(&e.name).into_owned())
    } else {
        None
    };
    Ok(Json(Listing {
        path: path.display(),
        entries: out,
        next,
    }))
}

/// The root directory's page (as `GET /v1/ls/{path}` with an empty path).
#[utoipa::path(get, path = "/v1/ls", tag = "namespace", params(LsQuery),
    responses((status = 200, body = Listing), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_root(
    st: State<AppState>,
    who: Who,
    uri: Uri,
    q: ApiQuery<LsQuery>,
) -> ApiResult<Json<Listing>> {
    list(st, who, uri, q).await
}

/// Creates a directory.
#[utoipa::path(post, path = "/v1/mkdir/{path}", tag = "namespace",
    params(("path" = String, Path, description = "directory, percent-encoded")),
    request_body(content = Option<CreateRequest>, description = "owner, mode, parents; may be empty"),
    responses((status = 200, description = "exists (with parents)", body = Stat),
        (status = 201, description = "created", body = Stat),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn mkdir(
    State(st): State<AppState>,
    who: Who,
    uri: Uri,
    OptJson(req): OptJson<CreateRequest>,
) -> ApiResult<(StatusCode, Json<Stat>)> {
    let path = path_after(&uri, "/v1/mkdir")?;
    if req.target.is_some() {
        return Err(ApiError::invalid_argument(
            "`target` is for POST /v1/symlink",
        ));
    }
    let o = owner(req.mode, 0o755, req.uid, req.gid)?;
    let parents = req.parents.unwrap_or(false);
    let ctx = who.ctx;
    let Some((comps, name)) = path.split_last() else {
        return if parents {
            let root = resolve(&st, ctx, &path).await?;
            Ok((StatusCode::OK, Json(stat_of(&st.vfs, &path, &root).await?)))
        } else {
            Err(ApiError::exists("the root exists"))
        };
    };
    // As `mkdir -p -m`: missing parents get the default mode, the last one `mode`.
    let parent = if parents {
        let (d, n) = st.vfs.deepest_dir_as(ctx, comps)?;
        who.check_new_owner(req.uid, req.gid, &d)?;
        st.vfs
            .mkdir_p_as(ctx, d, &comps[n..], owner(None, 0o755, req.uid, req.gid)?)?
            .0
    } else {
        parent(&st, ctx, &path).await?.0
    };
    who.check_new_owner(req.uid, req.gid, &parent)?;
    let (a, created) = match st.vfs.create_dir_as(ctx, &parent, name.as_bytes(), o) {
        Ok(a) => (a, true),
        Err(e) if parents && e.code() == ErrorCode::Exists => {
            let a = st.vfs.lookup(parent.ino, name.as_bytes())?;
            if a.kind != FileKind::Dir {
                return Err(ApiError::exists(format!(
                    "{path} exists and is not a directory"
                )));
            }
            (a, false)
        }
        Err(e) => return Err(e.into()),
    };
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(stat_of(&st.vfs, &path, &a).await?)))
}

/// Creates a symlink to `target`.
#[utoipa::path(post, path = "/v1/symlink/{path}", tag = "namespace",
    params(("path" = String, Path, description = "new link, percent-encoded")),
    request_body = CreateRequest,
    responses((status = 201, description = "created", body = Stat),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn symlink(
    State(st): State<AppState>,
    who: Who,
    uri: Uri,
    ApiJson(req): ApiJson<CreateRequest>,
) -> ApiResult<(StatusCode, Json<Stat>)> {
    let path = path_after(&uri, "/v1/symlink")?;
    let target = match req.target.as_deref() {
        Some(t) if !t.is_empty() && !t.contains('\0') => t,
        _ => {
            return Err(ApiError::invalid_argument(
                "`target` must be a non-empty string without NUL",
            ))
        }
    };
    let o = owner(None, 0o777, req.uid, req.gid)?;
    let ctx = who.ctx;
    let (parent, name) = if req.parents.unwrap_or(false) {
        let Some((comps, name)) = path.split_last() else {
            return Err(ApiError::invalid_path("the root cannot be a symlink"));
        };
        let (d, n) = st.vfs.deepest_dir_as(ctx, comps)?;
        who.check_new_owner(req.uid, req.gid, &d)?;
        let dir_owner = owner(None, 0o755, req.uid, req.gid)?;
        (
            st.vfs.mkdir_p_as(ctx, d, &comps[n..], dir_owner)?.0,
            name.to_string(),
        )
    } else {
        parent(&st, ctx, &path).await?
    };
    who.check_new_owner(req.uid, req.gid, &parent)?;
    let a = st
        .vfs
        .create_symlink_as(ctx, &parent, name.as_bytes(), target.as_bytes(), o)?;
    Ok((
        StatusCode::CREATED,
        Json(stat_of(&st.vfs, &path, &a).await?),
    ))
}

/// Renames `from` to `to` (POSIX rules). Paths are plain (not percent-encoded).
#[utoipa::path(post, path = "/v1/rename", tag = "namespace",
    request_body = RenameRequest,
    responses((status = 200, description = "the renamed object", body = Stat),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn rename(
    State(st): State<AppState>,
    who: Who,
    ApiJson(req): ApiJson<RenameRequest>,
) -> ApiResult<Json<Stat>> {
    let from = ApiPath::parse(&req.from)?;
    let to = ApiPath::parse(&req.to)?;
    let (fp, fname) = parent(&st, who.ctx, &from).await?;
    let (tp, tname) = parent(&st, who.ctx, &to).await?;
    let flags = RenameFlags {
        noreplace: req.noreplace,
        ..RenameFlags::default()
    };
    st.vfs
        .rename_as(who.ctx, &fp, fname.as_bytes(), &tp, tname.as_bytes(), flags)?;
    let a = st.vfs.lookup(tp.ino, tname.as_bytes())?;
    Ok(Json(stat_of(&st.vfs, &to, &a).await?))
}
