//! The `/v1` routes, one file per family (`files.rs` content, `ns.rs` namespace,
//! `special.rs` special files and hard links, `blocks.rs` manifest and blocks, `admin.rs`
//! status and maintenance, `music.rs` the music face's search), the shared answers (`Stat`, ETag) and the router with its
//! fallbacks.
//!
//! Invariants: every answer that is not a success is an [`ApiError`] JSON body, also for
//! unknown routes (404), wrong methods (405), bad JSON or queries (400) and JSON bodies
//! over `Limits::max_json` (413); every operation runs as the caller's identity
//! ([`who::Who`]): the engine's `*_as` entry points check its permissions as the kernel
//! checks a local process, and `who.rs` applies the squash rules first.

pub mod admin;
pub mod blocks;
pub mod extract;
pub mod files;
pub mod music;
pub mod ns;
pub mod special;
pub mod who;

use crate::error::{ApiError, ApiResult};
use crate::path::ApiPath;
use crate::ApiState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use fvfs_types::api::{Kind, Stat};
use fvfs_types::FileKind;
use fvfs_vfs::{Attr, Ctx, FileLayout, NewOwner, Vfs};
use std::sync::Arc;

/// Shared state as handlers see it.
pub type AppState = Arc<ApiState>;

/// Every route of the API (without auth: `server.rs` wraps it). `/metrics` and
/// `/v1/openapi.json` included.
pub fn router(state: Arc<ApiState>) -> axum::Router {
    let prometheus = crate::metrics::install();
    let max_json = state.limits.max_json;
    let api = axum::Router::new()
        .route("/v1/files", files::routes())
        .route("/v1/files/", files::routes())
        .route("/v1/files/{*path}", files::routes())
        .route("/v1/meta", get(ns::get_meta).patch(ns::patch_meta))
        .route("/v1/meta/", get(ns::get_meta).patch(ns::patch_meta))
        .route("/v1/meta/{*path}", get(ns::get_meta).patch(ns::patch_meta))
        .route("/v1/ls", get(ns::list_root))
        .route("/v1/ls/", get(ns::list))
        .route("/v1/ls/{*path}", get(ns::list))
        .route("/v1/mkdir", post(ns::mkdir))
        .route("/v1/mkdir/", post(ns::mkdir))
        .route("/v1/mkdir/{*path}", post(ns::mkdir))
        .route("/v1/symlink/{*path}", post(ns::symlink))
        .route("/v1/rename", post(ns::rename))
        .route("/v1/mknod/{*path}", post(special::mknod))
        .route("/v1/link", post(special::link))
        .route("/v1/manifest/{*path}", get(blocks::manifest))
        .route("/v1/blocks/{id}", get(blocks::block))
        .route("/v1/status", get(admin::status))
        .route("/v1/devices", get(admin::devices))
        .route("/v1/admin/evict", post(admin::evict))
        .route("/v1/admin/flush", post(admin::flush))
        .route("/v1/admin/wal", get(admin::wal))
        .route("/v1/music/search", get(music::search))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .with_state(state.clone());
    let metrics = axum::Router::new()
        .route("/metrics", get(crate::metrics::serve))
        .with_state((state, prometheus));
    api.merge(metrics)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_json))
        .layer(axum::middleware::from_fn(crate::metrics::track))
}

/// Runs synchronous engine calls (the metadata is SQLite) on the blocking pool, so that a
/// slow metadata operation never stalls the runtime threads serving other connections.
pub(crate) async fn on_vfs<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&Vfs) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let vfs = st.vfs.clone();
    match tokio::task::spawn_blocking(move || f(&vfs)).await {
        Ok(r) => r,
        Err(e) => Err(ApiError::internal(format!("engine task failed: {e}"))),
    }
}

/// The file `path` names, reached as `ctx` (on the blocking pool).
pub(crate) async fn resolve(st: &AppState, ctx: Ctx, path: &ApiPath) -> ApiResult<Attr> {
    let p = path.clone();
    on_vfs(st, move |v| Ok(v.resolve_path_as(ctx, p.components())?)).await
}

/// [`parent_of`] on the blocking pool: the parent directory and the last name.
pub(crate) async fn parent(st: &AppState, ctx: Ctx, path: &ApiPath) -> ApiResult<(Attr, String)> {
    let p = path.clone();
    on_vfs(st, move |v| {
        let (a, name) = parent_of(v, ctx, &p)?;
        Ok((a, name.to_string()))
    })
    .await
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> axum::response::Response {
    use axum::response::IntoResponse;
    let e = ApiError::not_supported("method not allowed on this route");
    let mut r = e.into_response();
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// A new object's mode (`default_mode` unless given) and the owner a request names (the
/// caller's identity unless given: see `who.rs` for who may name another).
pub(crate) fn owner(
    mode: Option<u32>,
    default_mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> ApiResult<NewOwner> {
    let mode = mode.unwrap_or(default_mode);
    if mode > 0o7777 {
        return Err(ApiError::invalid_argument(
            "mode holds permission bits only (at most 0o7777 = 4095)",
        ));
    }
    Ok(NewOwner { mode, uid, gid })
}

/// A file's ETag (docs/API.md, "ETag"): BLAKE3 over the size and each piece's offset,
/// length, block id and offset in block (integers as 8 little-endian bytes).
pub fn etag(layout: &FileLayout) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&layout.size.to_le_bytes());
    for p in &layout.pieces {
        h.update(&p.offset.to_le_bytes());
        h.update(&p.len.to_le_bytes());
        h.update(&p.id.0);
        h.update(&p.block_offset.to_le_bytes());
    }
    format!("\"{}\"", &h.finalize().to_hex()[..32])
}

/// The `Stat` of an object at `path`, with a file's ETag (computed from its layout).
pub(crate) async fn stat_of(vfs: &Vfs, path: &ApiPath, a: &Attr) -> ApiResult<Stat> {
    stat_with(vfs, path, a, true).await
}

/// The `Stat` of an object at `path`; `with_etag` = false skips the file's layout (a
/// listing's entries carry no ETag: computing it reads every chunk map of every file).
pub(crate) async fn stat_with(
    vfs: &Vfs,
    path: &ApiPath,
    a: &Attr,
    with_etag: bool,
) -> ApiResult<Stat> {
    let mut etag_v = None;
    let mut tiers = 0;
    let mut target = None;
    let mut size = a.size;
    let mut rdev = 0;
    match a.kind {
        FileKind::File => {
            if with_etag {
                let layout = vfs.manifest(a.ino).await?;
                size = layout.size;
                etag_v = Some(etag(&layout));
            }
            if size > 0 {
                tiers = vfs.file_tiers(a.ino)?;
            }
        }
        FileKind::Symlink => {
            target = Some(String::from_utf8_lossy(&vfs.readlink(a.ino)?).into_owned());
        }
        FileKind::CharDev | FileKind::BlockDev => rdev = a.rdev,
        _ => {}
    }
    let (acl_access, acl_default) = match a.kind {
        FileKind::Symlink => (None, None),
        _ => vfs.acl_texts(a.ino)?,
    };
    Ok(Stat {
        path: path.display(),
        ino: a.ino,
        kind: Kind::from(a.kind),
        size,
        mode: a.perm & 0o7777,
        uid: a.uid,
        gid: a.gid,
        nlink: a.nlink,
        atime_ns: a.atime,
        mtime_ns: a.mtime,
        ctime_ns: a.ctime,
        tiers,
        etag: etag_v,
        target,
        rdev,
        blocks: a.blocks,
        acl_access,
        acl_default,
    })
}

/// The parent directory of `path` (which must not be the root), reached as `ctx`, and its
/// last name.
pub(crate) fn parent_of<'p>(vfs: &Vfs, ctx: Ctx, path: &'p ApiPath) -> ApiResult<(Attr, &'p str)> {
    let Some((parent, name)) = path.split_last() else {
        return Err(ApiError::invalid_path(
            "the root cannot be the target of this operation",
        ));
    };
    let p = vfs.resolve_path_as(ctx, parent)?;
    if p.kind != FileKind::Dir {
        return Err(ApiError::not_dir(format!(
            "a parent of {path} is not a directory"
        )));
    }
    Ok((p, name))
}
