//! Special files and hard links: `POST /v1/mknod/{path}` (fifo, socket, character or
//! block device) and `POST /v1/link` (a new name for a non-directory).
//!
//! Invariants: `mknod` creates only the four special kinds (files go through `PUT`,
//! directories `mkdir`, symlinks `symlink`); a device node is metadata only (the daemon
//! never opens it). `link` never links a directory, and answers the `Stat` of the new
//! name, whose `ino` is the source's and whose `nlink` counts the new name. Both act as
//! the caller ([`Who`]); a device node needs the privilege `who.rs` describes.

use super::extract::{path_after, ApiJson};
use super::who::Who;
use super::{on_vfs, owner, parent, parent_of, resolve, stat_of, AppState};
use crate::error::{ApiError, ApiResult};
use crate::path::ApiPath;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use fvfs_types::api::{ErrorBody, Kind, LinkRequest, MknodRequest, Stat};
use fvfs_types::FileKind;

/// Creates a fifo, socket or device node.
#[utoipa::path(post, path = "/v1/mknod/{path}", tag = "namespace",
    params(("path" = String, Path, description = "new node, percent-encoded")),
    request_body = MknodRequest,
    responses((status = 201, description = "created", body = Stat),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn mknod(
    State(st): State<AppState>,
    who: Who,
    uri: Uri,
    ApiJson(req): ApiJson<MknodRequest>,
) -> ApiResult<(StatusCode, Json<Stat>)> {
    let path = path_after(&uri, "/v1/mknod")?;
    let kind = match req.kind {
        Kind::Fifo => FileKind::Fifo,
        Kind::Socket => FileKind::Socket,
        Kind::CharDev => FileKind::CharDev,
        Kind::BlockDev => FileKind::BlockDev,
        Kind::File | Kind::Dir | Kind::Symlink => {
            return Err(ApiError::invalid_argument(
                "`kind` must be fifo, socket, char_dev or block_dev \
                 (files: PUT /v1/files, directories: /v1/mkdir, symlinks: /v1/symlink)",
            ))
        }
    };
    let o = owner(req.mode, 0o644, req.uid, req.gid)?;
    let (parent, name) = parent(&st, who.ctx, &path).await?;
    who.check_new_owner(req.uid, req.gid, &parent)?;
    who.check_mode(kind, o.mode, st.allow_devices)?;
    let a = st
        .vfs
        .create_special_as(who.ctx, &parent, name.as_bytes(), kind, req.rdev, o)?;
    Ok((
        StatusCode::CREATED,
        Json(stat_of(&st.vfs, &path, &a).await?),
    ))
}

/// Makes `to` a new name of the non-directory `from`. Paths are plain (not
/// percent-encoded).
#[utoipa::path(post, path = "/v1/link", tag = "namespace",
    request_body = LinkRequest,
    responses((status = 201, description = "the new name", body = Stat),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn link(
    State(st): State<AppState>,
    who: Who,
    ApiJson(req): ApiJson<LinkRequest>,
) -> ApiResult<(StatusCode, Json<Stat>)> {
    let from = ApiPath::parse(&req.from)?;
    let to = ApiPath::parse(&req.to)?;
    let src = resolve(&st, who.ctx, &from).await?;
    if src.kind == FileKind::Dir {
        return Err(ApiError::is_dir(format!(
            "{from} is a directory: directories cannot be hard-linked"
        )));
    }
    let (ctx, target) = (who.ctx, to.clone());
    let a = on_vfs(&st, move |v| {
        let (tp, tname) = parent_of(v, ctx, &target)?;
        Ok(v.link_as(ctx, &src, &tp, tname.as_bytes())?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(stat_of(&st.vfs, &to, &a).await?)))
}
