//! The control socket end to end: a real Unix socket in a temp dir served by
//! `control::serve` over a test `MusicControl` with fixed answers (and a few faults), and
//! clients speaking raw lines or `control::call`. Covers every method, batches,
//! notifications, each standard error, the line bound, concurrent clients, the client
//! cap, the socket file's life (mode 0600, stale replaced, live refused, removed at
//! stop) and `call` against no daemon.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use fvfs_music::control::{
    self, CacheCleared, CacheStats, ControlError, MusicControl, OriginRescan, OriginStatus,
    RescanResult, SearchResult, Status, MAX_CLIENTS, MAX_LINE,
};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

/// Fixed answers. Faults: `search` "boom" panics, "bad:…" is a bad query; `cache_clear`
/// of "nas" is an unknown origin; `rescan` of "busy" is busy, of "gate" waits for
/// `gate`. Every call is recorded.
#[derive(Default)]
struct Fixed {
    calls: Mutex<Vec<String>>,
    gate: Notify,
}

fn origin(id: &str, health: u8) -> OriginStatus {
    OriginStatus {
        id: id.into(),
        kind: "fs".into(),
        location: format!("/srv/{id}"),
        priority: 10,
        health,
        tracks: 2,
        last_error: (health == 0).then(|| "no answer".into()),
        last_error_at: (health == 0).then_some(1_700_000_000),
        last_check: Some(1_700_000_100),
    }
}

fn stats() -> CacheStats {
    CacheStats {
        hits: 3,
        misses: 1,
        hit_rate: CacheStats::rate(3, 1),
        chunks_stored: 8,
        chunks_unique: 6,
        dedup_ratio: CacheStats::dedup(8, 6),
        size_bytes: 4096,
        limit_bytes: 1 << 30,
        origin_bytes: 512,
        refetched: 0,
    }
}

impl MusicControl for Fixed {
    fn status(&self) -> Result<Status, ControlError> {
        self.calls.lock().push("status".into());
        Ok(Status {
            version: "0.1.0".into(),
            mountpoint: Some("/mnt/music".into()),
            uptime_secs: 12,
            tracks: 4,
            views: vec!["default".into()],
            origins: vec![origin("local", 1)],
            cache: stats(),
        })
    }
    fn cache_stats(&self) -> Result<CacheStats, ControlError> {
        self.calls.lock().push("cache.stats".into());
        Ok(stats())
    }
    fn cache_clear(&self, origin: Option<&str>) -> Result<CacheCleared, ControlError> {
        self.calls.lock().push(format!("cache.clear {origin:?}"));
        if origin == Some("nas") {
            return Err(ControlError::UnknownOrigin("nas".into()));
        }
        Ok(CacheCleared {
            origin: origin.map(str::to_string),
            tracks: if origin.is_some() { 2 } else { 4 },
            bytes: 4096,
        })
    }
    fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchResult>, ControlError> {
        self.calls.lock().push(format!("search {query} {limit}"));
        if query == "boom" {
            panic!("search exploded");
        }
        if let Some(rest) = query.strip_prefix("bad:") {
            return Err(ControlError::BadQuery {
                query: query.into(),
                reason: format!("unknown field {rest:?}"),
            });
        }
        Ok(vec![SearchResult {
            track: 7,
            path: Some("/Metallica/Battery.flac".into()),
            origin: "local".into(),
            origin_path: "m/01.flac".into(),
            artist: Some("Metallica".into()),
            album: None,
            title: Some("Battery".into()),
            score: 0.5,
        }])
    }
    fn origins(&self) -> Result<Vec<OriginStatus>, ControlError> {
        self.calls.lock().push("origin.list".into());
        Ok(vec![origin("local", 1), origin("s3", 0)])
    }
    fn rescan(&self, id: Option<String>) -> BoxFuture<'_, Result<RescanResult, ControlError>> {
        Box::pin(async move {
            self.calls.lock().push(format!("origin.rescan {id:?}"));
            match id.as_deref() {
                Some("busy") => return Err(ControlError::Busy("a rescan is running".into())),
                Some("gate") => self.gate.notified().await,
                _ => {}
            }
            Ok(RescanResult {
                origins: vec![OriginRescan {
                    id: id.unwrap_or_else(|| "local".into()),
                    seen: 5,
                    added: 1,
                    ..Default::default()
                }],
                views: 1,
                elapsed_ms: 3,
            })
        })
    }
}

struct Server {
    _dir: tempfile::TempDir,
    path: PathBuf,
    svc: Arc<Fixed>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ControlError>>,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/music.sock");
        Server::start_at(dir, path).await
    }

    async fn start_at(dir: tempfile::TempDir, path: PathBuf) -> Server {
        let svc = Arc::new(Fixed::default());
        let cancel = CancellationToken::new();
        let l = control::bind(&path).unwrap();
        let (p, s, c) = (path.clone(), svc.clone(), cancel.clone());
        let task = tokio::spawn(async move { control::serve_listener(l, &p, s, c).await });
        Server {
            _dir: dir,
            path,
            svc,
            cancel,
            task,
        }
    }

    async fn conn(&self) -> Conn {
        Conn::open(&self.path).await
    }

    /// Stops the server; the temp dir stays while the returned value lives.
    async fn stop(self) -> tempfile::TempDir {
        self.cancel.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
        assert!(!self.path.exists(), "the socket file is removed at stop");
        self._dir
    }
}

struct Conn {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Conn {
    async fn open(path: &Path) -> Conn {
        let (r, w) = UnixStream::connect(path).await.unwrap().into_split();
        Conn {
            r: BufReader::new(r),
            w,
        }
    }
    async fn send(&mut self, line: &str) {
        self.w
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }
    /// The next answer line, or None at end of stream.
    async fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.r.read_line(&mut line))
            .await
            .expect("an answer in time")
            .unwrap();
        (n > 0).then(|| serde_json::from_str(&line).unwrap())
    }
    async fn ask(&mut self, line: &str) -> Value {
        self.send(line).await;
        self.recv().await.expect("an answer")
    }
}

fn ok(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn err(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn origin_json(id: &str, up: bool) -> Value {
    json!({
        "id": id, "kind": "fs", "location": format!("/srv/{id}"), "priority": 10,
        "health": u8::from(up), "tracks": 2,
        "last_error": if up { Value::Null } else { json!("no answer") },
        "last_error_at": if up { Value::Null } else { json!(1_700_000_000) },
        "last_check": 1_700_000_100
    })
}

fn stats_json() -> Value {
    json!({"hits": 3, "misses": 1, "hit_rate": 0.75, "chunks_stored": 8, "chunks_unique": 6,
           "dedup_ratio": 0.25, "size_bytes": 4096, "limit_bytes": 1073741824,
           "origin_bytes": 512, "refetched": 0})
}

fn hit_json() -> Value {
    json!([{"track": 7, "path": "/Metallica/Battery.flac", "origin": "local",
            "origin_path": "m/01.flac", "artist": "Metallica", "album": null,
            "title": "Battery", "score": 0.5}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_answers_its_result() {
    let srv = Server::start().await;
    let mut c = srv.conn().await;
    let cases = [
        (
            r#"{"jsonrpc":"2.0","method":"status","id":1}"#,
            ok(json!(1), status_json()),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"cache.stats","id":"s"}"#,
            ok(json!("s"), stats_json()),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"cache.clear","params":{"origin":"local"},"id":3}"#,
            ok(
                json!(3),
                json!({"origin": "local", "tracks": 2, "bytes": 4096}),
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"cache.clear","id":4}"#,
            ok(
                json!(4),
                json!({"origin": null, "tracks": 4, "bytes": 4096}),
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"search","params":{"query":"metallica"},"id":5}"#,
            ok(json!(5), hit_json()),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"search","params":{"query":"x","limit":3},"id":6}"#,
            ok(json!(6), hit_json()),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"origin.list","id":7}"#,
            ok(
                json!(7),
                json!([origin_json("local", true), origin_json("s3", false)]),
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"origin.rescan","params":{"id":"local"},"id":8}"#,
            ok(
                json!(8),
                json!({"origins": [{"id": "local", "error": null, "seen": 5, "added": 1,
                "updated": 0, "unchanged": 0, "removed": 0, "unreadable": 0, "failed": 0,
                "fetched_bytes": 0}],
                "views": 1, "elapsed_ms": 3}),
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"status","id":null}"#,
            ok(Value::Null, status_json()),
        ),
    ];
    for (req, want) in cases {
        assert_eq!(c.ask(req).await, want, "{req}");
    }
    assert_eq!(
        *srv.svc.calls.lock(),
        [
            "status",
            "cache.stats",
            "cache.clear Some(\"local\")",
            "cache.clear None",
            "search metallica 50",
            "search x 3",
            "origin.list",
            "origin.rescan Some(\"local\")",
            "status"
        ]
    );
    srv.stop().await;
}

fn status_json() -> Value {
    json!({"version": "0.1.0", "mountpoint": "/mnt/music", "uptime_secs": 12, "tracks": 4,
           "views": ["default"], "origins": [origin_json("local", true)], "cache": stats_json()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_notifications() {
    let srv = Server::start().await;
    let mut c = srv.conn().await;
    // A mixed batch: answers in order, none for the notification.
    let batch = r#"[{"jsonrpc":"2.0","method":"cache.stats","id":1},
        {"jsonrpc":"2.0","method":"cache.clear","params":{"origin":"local"}},
        {"jsonrpc":"2.0","method":"nope","id":2},
        1,
        {"jsonrpc":"2.0","method":"search","params":{"query":"x"},"id":3}]"#
        .replace('\n', " ");
    assert_eq!(
        c.ask(&batch).await,
        json!([
            ok(json!(1), stats_json()),
            err(json!(2), -32601, "method not found: nope"),
            err(
                Value::Null,
                -32600,
                "invalid request: a request is a JSON object"
            ),
            ok(json!(3), hit_json()),
        ])
    );
    // A lone notification and a batch of notifications: they run, nothing is answered
    // (the next line read answers the request after them).
    c.send(r#"{"jsonrpc":"2.0","method":"cache.clear"}"#).await;
    c.send(r#"[{"jsonrpc":"2.0","method":"origin.list"},{"jsonrpc":"2.0","method":"nope"}]"#)
        .await;
    c.send("").await;
    assert_eq!(
        c.ask(r#"{"jsonrpc":"2.0","method":"cache.stats","id":9}"#)
            .await,
        ok(json!(9), stats_json())
    );
    let calls = srv.svc.calls.lock().clone();
    assert_eq!(
        calls,
        [
            "cache.stats",
            "cache.clear Some(\"local\")",
            "search x 50",
            "cache.clear None",
            "origin.list",
            "cache.stats"
        ]
    );
    // An empty batch is one error, not an empty array.
    assert_eq!(
        c.ask("[]").await,
        err(Value::Null, -32600, "invalid request: an empty batch")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_standard_and_application_error() {
    let srv = Server::start().await;
    let mut c = srv.conn().await;
    let cases = [
        (
            r#"{"jsonrpc":"2.0","method":"status","id":1"#,
            err(
                Value::Null,
                -32700,
                "parse error: EOF while parsing an object at line 1 column 41",
            ),
        ),
        (
            r#"{"method":"status","id":1}"#,
            err(
                json!(1),
                -32600,
                "invalid request: \"jsonrpc\" must be \"2.0\"",
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":7,"id":2}"#,
            err(
                json!(2),
                -32600,
                "invalid request: \"method\" must be a string",
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"status","id":{"a":1}}"#,
            err(
                Value::Null,
                -32600,
                "invalid request: id must be a string, a number or null",
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"status","params":"x","id":3}"#,
            err(
                json!(3),
                -32600,
                "invalid request: \"params\" must be an object or an array",
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"cache.purge","id":4}"#,
            err(json!(4), -32601, "method not found: cache.purge"),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"search","params":["x"],"id":5}"#,
            err(
                json!(5),
                -32602,
                "invalid params: params are by name (an object), not positional",
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"search","params":{"q":"x"},"id":6}"#,
            err(
                json!(6),
                -32602,
                "invalid params: unknown field `q`, expected `query` or `limit`",
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"search","params":{"query":1},"id":7}"#,
            err(
                json!(7),
                -32602,
                "invalid params: invalid type: integer `1`, expected a string",
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"search","params":{"query":"x","limit":0},"id":8}"#,
            err(
                json!(8),
                -32602,
                "invalid params: limit 0 is not within 1..=1000",
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"status","params":{"verbose":true},"id":9}"#,
            err(
                json!(9),
                -32602,
                "invalid params: unknown field `verbose`, there are no fields",
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"search","params":{"query":"bad:mood"},"id":10}"#,
            err(
                json!(10),
                -32001,
                "bad search query \"bad:mood\": unknown field \"mood\"",
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"cache.clear","params":{"origin":"nas"},"id":11}"#,
            err(json!(11), -32002, "unknown origin \"nas\""),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"origin.rescan","params":{"id":"busy"},"id":12}"#,
            err(json!(12), -32004, "busy: a rescan is running"),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"search","params":{"query":"boom"},"id":13}"#,
            err(
                json!(13),
                -32603,
                "internal error: the handler panicked: search exploded",
            ),
        ),
    ];
    for (req, want) in cases {
        assert_eq!(c.ask(req).await, want, "{req}");
    }
    // The connection survived them all.
    assert_eq!(
        c.ask(r#"{"jsonrpc":"2.0","method":"cache.stats","id":14}"#)
            .await,
        ok(json!(14), stats_json())
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_over_the_bound_is_refused_and_the_connection_closed() {
    let srv = Server::start().await;
    // Exactly MAX_LINE bytes: served.
    let req = r#"{"jsonrpc":"2.0","method":"cache.stats","id":1}"#;
    let mut c = srv.conn().await;
    let padded = format!("{req}{}", " ".repeat(MAX_LINE - req.len()));
    assert_eq!(c.ask(&padded).await, ok(json!(1), stats_json()));
    // One byte more: an error, then end of stream, while the client is still writing.
    let Conn { mut r, mut w } = srv.conn().await;
    let writer = tokio::spawn(async move {
        let big = vec![b' '; 4 * MAX_LINE];
        let _ = w.write_all(&big).await;
        w
    });
    let mut line = String::new();
    tokio::time::timeout(WAIT, r.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&line).unwrap(),
        err(
            Value::Null,
            -32600,
            "invalid request: a line over 1048576 bytes"
        )
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, r.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the connection is closed after the error");
    let _ = tokio::time::timeout(WAIT, writer).await.unwrap();
    // Others are still served.
    assert_eq!(c.ask(req).await, ok(json!(1), stats_json()));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_served_at_once_up_to_the_cap() {
    let srv = Server::start().await;
    // A waits inside a rescan; B is answered meanwhile; then A.
    let mut a = srv.conn().await;
    let mut b = srv.conn().await;
    a.send(r#"{"jsonrpc":"2.0","method":"origin.rescan","params":{"id":"gate"},"id":1}"#)
        .await;
    assert_eq!(
        b.ask(r#"{"jsonrpc":"2.0","method":"cache.stats","id":2}"#)
            .await,
        ok(json!(2), stats_json())
    );
    srv.svc.gate.notify_one();
    assert_eq!(
        a.recv().await.unwrap()["result"]["origins"][0]["id"],
        "gate"
    );

    // The cap: MAX_CLIENTS connections served (a and b among them), one more refused.
    let mut held = vec![a, b];
    while held.len() < MAX_CLIENTS {
        let mut c = srv.conn().await;
        let n = held.len();
        let got = c
            .ask(&format!(
                r#"{{"jsonrpc":"2.0","method":"cache.stats","id":{n}}}"#
            ))
            .await;
        assert_eq!(got["id"], n);
        held.push(c);
    }
    let mut extra = srv.conn().await;
    assert_eq!(
        extra.recv().await,
        Some(err(
            Value::Null,
            -32000,
            "too many clients (at most 128); retry later"
        ))
    );
    assert_eq!(extra.recv().await, None);
    // A slot freed is a client served again (once its task has ended: a try before that
    // is refused and closed, so errors on the way are retried).
    drop(held.pop());
    let mut served = false;
    for _ in 0..100 {
        let mut c = srv.conn().await;
        let req = "{\"jsonrpc\":\"2.0\",\"method\":\"cache.stats\",\"id\":1}\n";
        let mut line = String::new();
        if c.w.write_all(req.as_bytes()).await.is_ok()
            && c.r.read_line(&mut line).await.is_ok()
            && line.contains("\"result\"")
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_file_is_0600_a_stale_one_replaced_a_live_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("music.sock");
    // A killed mount's socket: the file stays, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let srv = Server::start_at(dir, path.clone()).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut c = srv.conn().await;
    assert_eq!(
        c.ask(r#"{"jsonrpc":"2.0","method":"cache.stats","id":1}"#)
            .await,
        ok(json!(1), stats_json())
    );
    // A live one: refused, and left alone.
    let e = control::bind(&path).unwrap_err();
    assert!(matches!(e, ControlError::SocketInUse { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("another mount serves this socket: {}", path.display())
    );
    assert_eq!(
        c.ask(r#"{"jsonrpc":"2.0","method":"cache.stats","id":2}"#)
            .await,
        ok(json!(2), stats_json())
    );
    // No bind directory left beside it.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["music.sock"]);
    srv.stop().await;

    // A file that is not a socket is never replaced.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("music.sock");
    std::fs::write(&file, b"data").unwrap();
    let e = control::bind(&file).unwrap_err();
    assert!(e.to_string().contains("exists and is not a socket"), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_gives_results_errors_and_says_when_no_daemon_listens() {
    let srv = Server::start().await;
    let path = srv.path.clone();
    let p = path.clone();
    let (found, unknown, slow) = tokio::task::spawn_blocking(move || {
        let t = Duration::from_secs(5);
        (
            control::call(&p, "search", json!({"query": "metallica"}), t),
            control::call(&p, "cache.clear", json!({"origin": "nas"}), t),
            control::call(
                &p,
                "origin.rescan",
                json!({"id": "gate"}),
                Duration::from_millis(300),
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(found.unwrap(), hit_json());
    let e = unknown.unwrap_err();
    assert_eq!(e.rpc_code(), -32002);
    assert_eq!(e.to_string(), "unknown origin \"nas\" (code -32002)");
    assert!(matches!(slow, Err(ControlError::Timeout(_))), "{slow:?}");
    srv.svc.gate.notify_one();
    let _dir = srv.stop().await;

    // Stopped: the file is gone. A stale file nobody answers on says the same.
    let t = Duration::from_secs(1);
    let e = control::call(&path, "status", Value::Null, t).unwrap_err();
    assert!(matches!(e, ControlError::NoDaemon { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("no music mount answers on {}: ", path.display())),
        "{e}"
    );
    assert!(e.to_string().ends_with("(is it mounted?)"), "{e}");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let e = control::call(&path, "status", Value::Null, t).unwrap_err();
    assert!(matches!(e, ControlError::NoDaemon { .. }), "{e:?}");
}
