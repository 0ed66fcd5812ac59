//! `GET /v1/music/search` through the real router (and the auth layer for 401): the
//! provider's hits as JSON, 400 for bad queries and limits, 404 without the music face,
//! 401 without a token, 503/500 for the provider's failures; and the music mount's
//! latency histogram on `/metrics` with its buckets.

#[allow(unused_imports)] // `common::data` is for other tests
mod common;

use axum::body::Body;
use axum::http::Request;
use common::{engine, Env};
use fvfs_api::auth::{guard, Access, NewToken, TokenStore};
use fvfs_api::{ApiState, Limits, MusicSearch, MusicSearchError};
use fvfs_types::api::MusicHit;
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// Fixed hits; a query `fail:…` fails as its word says; records what it was asked.
#[derive(Default)]
struct Fake {
    asked: Mutex<Vec<(String, usize)>>,
}

impl MusicSearch for Fake {
    fn search(&self, query: &str, limit: usize) -> Result<Vec<MusicHit>, MusicSearchError> {
        self.asked.lock().push((query.to_string(), limit));
        match query {
            "fail:bad" => return Err(MusicSearchError::BadQuery("unknown field fail".into())),
            "fail:down" => return Err(MusicSearchError::Unavailable("index locked".into())),
            "fail:bug" => return Err(MusicSearchError::Failed("index corrupt".into())),
            _ => {}
        }
        Ok(vec![MusicHit {
            track: 7,
            path: Some("/Metallica/Master of Puppets/01 Battery.flac".into()),
            origin: "local".into(),
            origin_path: "metallica/01.flac".into(),
            artist: Some("Metallica".into()),
            album: Some("Master of Puppets".into()),
            title: None,
            score: 1.5,
        }])
    }
}

fn env_music(music: Option<Arc<dyn MusicSearch>>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let vfs = engine(dir.path());
    let state = Arc::new(ApiState {
        vfs: vfs.clone(),
        workers: None,
        started: Instant::now(),
        mount: None,
        devices: Default::default(),
        limits: Limits::default(),
        allow_devices: false,
        music,
    });
    let app = fvfs_api::routes::router(state.clone());
    Env {
        dir,
        vfs,
        state,
        app,
    }
}

#[tokio::test]
async fn search_answers_the_providers_hits() {
    let fake = Arc::new(Fake::default());
    let env = env_music(Some(fake.clone()));
    let r = env.get("/v1/music/search?q=metallica%20batt&limit=5").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.json(),
        json!({
            "query": "metallica batt",
            "hits": [{
                "track": 7,
                "path": "/Metallica/Master of Puppets/01 Battery.flac",
                "origin": "local",
                "origin_path": "metallica/01.flac",
                "artist": "Metallica",
                "album": "Master of Puppets",
                "title": null,
                "score": 1.5
            }]
        })
    );
    // The default limit.
    assert_eq!(env.get("/v1/music/search?q=x").await.status, 200);
    assert_eq!(
        *fake.asked.lock(),
        [("metallica batt".to_string(), 5), ("x".to_string(), 50)]
    );
}

#[tokio::test]
async fn bad_queries_and_limits_are_400() {
    let fake = Arc::new(Fake::default());
    let env = env_music(Some(fake.clone()));
    for (uri, message) in [
        (
            "/v1/music/search",
            "bad query: Failed to deserialize query string: missing field `q`",
        ),
        ("/v1/music/search?q=%20", "q: nothing to search for"),
        (
            "/v1/music/search?q=a&limit=0",
            "limit 0 is not within 1..=1000",
        ),
        (
            "/v1/music/search?q=a&limit=1001",
            "limit 1001 is not within 1..=1000",
        ),
        (
            "/v1/music/search?q=a&limit=x",
            "bad query: Failed to deserialize query string: limit: invalid digit found in string",
        ),
        ("/v1/music/search?q=fail:bad", "unknown field fail"),
    ] {
        let r = env.get(uri).await;
        assert_eq!(r.status, 400, "{uri}");
        assert_eq!(
            r.json(),
            json!({"error": {"code": "invalid_argument", "message": message}}),
            "{uri}"
        );
    }
    // Only the last reached the provider.
    assert_eq!(*fake.asked.lock(), [("fail:bad".to_string(), 50)]);
}

#[tokio::test]
async fn provider_failures_are_503_and_500() {
    let env = env_music(Some(Arc::new(Fake::default())));
    let r = env.get("/v1/music/search?q=fail:down").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        json!({"error": {"code": "unavailable", "message": "index locked"}})
    );
    let r = env.get("/v1/music/search?q=fail:bug").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        json!({"error": {"code": "internal", "message": "index corrupt"}})
    );
}

#[tokio::test]
async fn without_the_music_face_search_is_404() {
    let env = env_music(None);
    let r = env.get("/v1/music/search?q=metallica").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": {"code": "not_found", "message": "the music face is not running in this daemon"}})
    );
}

#[tokio::test]
async fn search_needs_a_token_any_valid_one() {
    let env = env_music(Some(Arc::new(Fake::default())));
    let store = Arc::new(TokenStore::open(&env.dir.path().join("tokens.json")).unwrap());
    let read_only = NewToken {
        read_only: true,
        ..Default::default()
    };
    let (_, viewer) = store.create("viewer", read_only).unwrap();
    let app = guard(env.app.clone(), Access::Tokens(store), None);
    let send = |token: Option<String>| {
        let app = app.clone();
        async move {
            let mut req = Request::builder().uri("/v1/music/search?q=metallica");
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let resp = tower::ServiceExt::oneshot(app, req.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let (st, body) = send(None).await;
    assert_eq!(st, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(send(Some("fvfs_wrong".into())).await.0, 401);
    let (st, body) = send(Some(viewer)).await;
    assert_eq!(st, 200);
    assert_eq!(body["hits"][0]["track"], 7);
}

#[tokio::test]
async fn the_route_is_in_the_openapi_document() {
    let env = env_music(None);
    let spec = env.get("/v1/openapi.json").await.json();
    let op = &spec["paths"]["/v1/music/search"]["get"];
    assert_eq!(op["tags"], json!(["music"]));
    let names: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["q", "limit"]);
    for code in ["200", "400", "401", "404", "500", "503"] {
        assert!(op["responses"][code].is_object(), "{code} missing");
    }
    assert!(spec["components"]["schemas"]["MusicHit"].is_object());
}

#[tokio::test]
async fn fuse_latency_has_buckets_on_metrics() {
    let env = env_music(None);
    metrics::histogram!("musicfs_fuse_latency_seconds", "op" => "read").record(0.003);
    metrics::counter!("musicfs_fuse_ops_total", "op" => "read").increment(1);
    let r = env.get("/metrics").await;
    let text = String::from_utf8_lossy(&r.body);
    for line in [
        "musicfs_fuse_latency_seconds_bucket{op=\"read\",le=\"0.0025\"} 0",
        "musicfs_fuse_latency_seconds_bucket{op=\"read\",le=\"0.005\"} 1",
        "musicfs_fuse_latency_seconds_bucket{op=\"read\",le=\"10\"} 1",
        "musicfs_fuse_ops_total{op=\"read\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
}
