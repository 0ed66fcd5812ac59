//! Test harness: a real engine (SQLite metadata, one directory tier) in a temporary
//! directory, and the API router over it, driven without a network.
#![allow(dead_code)]

use axum::body::{to_bytes, Body};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use fvfs_api::{ApiState, Limits};
use fvfs_vfs::Vfs;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub vfs: Arc<Vfs>,
    pub state: Arc<ApiState>,
    pub app: Router,
}

/// A formatted filesystem on a directory tier and its engine, built the one way every
/// process builds it (`fvfs_engine`).
pub fn engine(dir: &std::path::Path) -> Arc<Vfs> {
    let tier_dir = dir.join("tier");
    std::fs::create_dir_all(&tier_dir).unwrap();
    let url = format!("sqlite://{}", dir.join("meta.db").display());
    fvfs_engine::format_unchecked(&url, fvfs_engine::FormatSpec::local("test", &tier_dir)).unwrap();
    let opts = fvfs_engine::EngineOpts::direct(&url, false);
    let engine = fvfs_engine::Engine::open_unchecked(opts).unwrap();
    engine.vfs().unwrap()
}

pub fn env_with(limits: Limits) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let vfs = engine(dir.path());
    let state = Arc::new(ApiState {
        vfs: vfs.clone(),
        workers: None,
        started: Instant::now(),
        mount: None,
        devices: Default::default(),
        limits,
        allow_devices: false,
        music: None,
    });
    let app = fvfs_api::routes::router(state.clone());
    Env {
        dir,
        vfs,
        state,
        app,
    }
}

pub fn env() -> Env {
    env_with(Limits::default())
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

impl Env {
    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn call(&self, method: &str, uri: &str, body: impl Into<Body>) -> Resp {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(body.into())
            .unwrap();
        self.send(req).await
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.call("GET", uri, Body::empty()).await
    }

    pub async fn put(&self, path: &str, data: &[u8]) -> Resp {
        let req = Request::builder()
            .method("PUT")
            .uri(format!("/v1/files/{path}"))
            .header("content-length", data.len())
            .body(Body::from(data.to_vec()))
            .unwrap();
        self.send(req).await
    }

    pub async fn post_json(&self, uri: &str, v: serde_json::Value) -> Resp {
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap();
        self.send(req).await
    }
}

/// Deterministic pseudo-random bytes.
pub use fvfs_testkit::pseudo_random as data;
