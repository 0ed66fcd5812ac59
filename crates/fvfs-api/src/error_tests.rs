//! The engine's errors through the API: every error the engine can return becomes a response
//! whose status and JSON code give back the errno the engine mount would return (the
//! client's side of the trip, JSON code → errno, is tested in fvfs-client's mount).

use super::*;
use axum::body::to_bytes;
use fvfs_chunk::ChunkError;
use fvfs_meta::MetaError;
use fvfs_tier::TierError;
use std::sync::Arc;

/// One error of each kind the engine returns. `kind` below matches on every variant with
/// no wildcard: a new variant does not compile until it is listed here.
fn every_engine_error() -> Vec<VfsError> {
    let io = || std::io::Error::from_raw_os_error(libc::EIO);
    let full = || std::io::Error::from_raw_os_error(libc::ENOSPC);
    let meta = vec![
        MetaError::NotFound,
        MetaError::Exists,
        MetaError::NotDir,
        MetaError::IsDir,
        MetaError::NotEmpty,
        MetaError::Invalid("bad"),
        MetaError::NameTooLong,
        MetaError::TooManyLinks,
        MetaError::NoAttr,
        MetaError::AttrTooBig,
        MetaError::NotPermitted,
        MetaError::MissingBlock(fvfs_types::BlockId::from_slice(&[7; 32]).unwrap()),
        MetaError::NotFormatted("m".into()),
        MetaError::AlreadyFormatted("m".into()),
        MetaError::TooNew {
            found: 9,
            supported: 3,
        },
        MetaError::BadUrl {
            url: "x".into(),
            why: "y".into(),
        },
        MetaError::Corrupt("c".into()),
        MetaError::LogGap("g".into()),
        MetaError::SessionGone(7),
        MetaError::Dump("d".into()),
        MetaError::Db(fvfs_meta::DbError::NoRow),
        MetaError::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        )),
        MetaError::Db(fvfs_meta::DbError::Postgres {
            code: "53100".into(),
            message: "could not extend file".into(),
        }),
        MetaError::Db(fvfs_meta::DbError::Connection("refused".into())),
        MetaError::Io {
            path: "p".into(),
            source: io(),
        },
        MetaError::Io {
            path: "p".into(),
            source: full(),
        },
    ];
    let tier = vec![
        TierError::Unreachable {
            location: "s3://b".into(),
            source: "connection refused".into(),
        },
        TierError::NotFound { key: "k".into() },
        TierError::Config("c".into()),
    ];
    let chunk = vec![
        ChunkError::Corrupt {
            id: fvfs_types::BlockId::from_slice(&[7; 32]).unwrap(),
        },
        ChunkError::TooLarge { size: 2, max: 1 },
        ChunkError::Io {
            context: "cache".into(),
            source: Arc::new(io()),
        },
        ChunkError::Io {
            context: "cache".into(),
            source: Arc::new(full()),
        },
        ChunkError::Task("t".into()),
    ];
    let mut all: Vec<VfsError> = meta.into_iter().map(VfsError::Meta).collect();
    all.extend(tier.into_iter().map(|t| VfsError::Chunk(t.into())));
    all.extend(chunk.into_iter().map(VfsError::Chunk));
    all.extend([
        VfsError::BadHandle,
        VfsError::NotSupported,
        VfsError::Invalid("bad"),
        VfsError::TooBig,
        VfsError::NameTooLong,
        VfsError::Internal("i".into()),
        VfsError::PermissionDenied("p"),
        VfsError::NotPermitted("p"),
        VfsError::Locked,
        VfsError::Interrupted,
        VfsError::Backlog(1),
    ]);
    for e in &all {
        kind(e);
    }
    all
}

/// Lists every variant (no wildcard), so that `every_engine_error` stays complete.
fn kind(e: &VfsError) -> &'static str {
    match e {
        VfsError::Meta(m) => match m {
            MetaError::NotFound
            | MetaError::Exists
            | MetaError::NotDir
            | MetaError::IsDir
            | MetaError::NotEmpty
            | MetaError::Invalid(_)
            | MetaError::NameTooLong
            | MetaError::TooManyLinks
            | MetaError::NoAttr
            | MetaError::AttrTooBig
            | MetaError::NotPermitted
            | MetaError::MissingBlock(_)
            | MetaError::NotFormatted(_)
            | MetaError::AlreadyFormatted(_)
            | MetaError::TooNew { .. }
            | MetaError::BadUrl { .. }
            | MetaError::Corrupt(_)
            | MetaError::LogGap(_)
            | MetaError::SessionGone(_)
            | MetaError::Dump(_)
            | MetaError::Db(_)
            | MetaError::Io { .. } => "meta",
        },
        VfsError::Chunk(c) => match c {
            ChunkError::Corrupt { .. }
            | ChunkError::TooLarge { .. }
            | ChunkError::Tier(_)
            | ChunkError::Io { .. }
            | ChunkError::Task(_) => "chunk",
        },
        VfsError::BadHandle
        | VfsError::NotSupported
        | VfsError::Invalid(_)
        | VfsError::TooBig
        | VfsError::NameTooLong
        | VfsError::Internal(_)
        | VfsError::PermissionDenied(_)
        | VfsError::NotPermitted(_)
        | VfsError::Locked
        | VfsError::Interrupted
        | VfsError::Backlog(_) => "vfs",
    }
}

#[tokio::test]
async fn every_engine_errno_survives_the_trip_through_the_api() {
    let mut errnos = std::collections::BTreeSet::new();
    for e in every_engine_error() {
        let (errno, what) = (e.errno(), e.to_string());
        errnos.insert(errno);
        let resp = ApiError::from(e).into_response();
        let status = resp.status().as_u16();
        let body = to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        let code = body.error.code;
        assert_eq!(code.errno(), errno, "{what}: {code} on the wire");
        assert_eq!(status, code.http_status(), "{what}");
        assert_eq!(body.error.message, what);
    }
    // What the engine mount returns, each of which a client mount now returns too.
    let expected = [
        libc::ENOENT,
        libc::EEXIST,
        libc::ENOTDIR,
        libc::EISDIR,
        libc::ENOTEMPTY,
        libc::EINVAL,
        libc::ENAMETOOLONG,
        libc::EMLINK,
        libc::ENODATA,
        libc::E2BIG,
        libc::EPERM,
        libc::EACCES,
        libc::EIO,
        libc::ENOSPC,
        libc::EBADF,
        libc::EOPNOTSUPP,
        libc::EFBIG,
        libc::EAGAIN,
        libc::EINTR,
    ];
    assert_eq!(errnos, expected.into_iter().collect());
}

#[test]
fn statuses_of_the_codes_the_routes_name() {
    assert_eq!(status(ErrorCode::NotFound), 404);
    assert_eq!(status(ErrorCode::NotEmpty), 409);
    assert_eq!(status(ErrorCode::LengthMismatch), 400);
    assert_eq!(status(ErrorCode::HashMismatch), 422);
    assert_eq!(status(ErrorCode::NoSpace), 507);
    assert_eq!(status(ErrorCode::RangeNotSatisfiable), 416);
    assert_eq!(status(ErrorCode::PermissionDenied), 403);
    assert_eq!(status(ErrorCode::NotPermitted), 403);
    assert_eq!(status(ErrorCode::Unauthorized), 401);
    assert_eq!(status(ErrorCode::Unavailable), 503);
}
