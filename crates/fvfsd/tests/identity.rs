//! Identities, squash and permission checks of the HTTP API, against the real `fvfsd
//! serve` over TCP on 127.0.0.1 (HTTP/1.1 written by hand): tokens mapped to uid:gid act
//! as those identities, as a local process would (read, write, search, sticky, chown);
//! no token makes set-id files or devices unless it is an admin token and the config
//! allows them; the daemon's own routes need an admin token; read-only tokens are refused
//! on every mutating route of the OpenAPI spec; `PUT ?parents=true` makes no directory for
//! a refused body; failed logins are counted and logged with the peer. (With the daemon's
//! mount: identity_mount.rs.)

mod common;

use common::api::{error_code, raw, ApiDaemon as Daemon};
use common::who::*;
use common::Fixture;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[test]
fn setid_files_and_devices_need_an_admin_token_and_allow_devices() {
    let Some(f) = Fixture::new() else { return };
    // A read-write token with the default identity: the root directory's owner, uid 0
    // here (the tests run as root), which is warned about.
    let (rw, err) = token(&f, "laptop", &[]);
    assert!(
        err.contains("acting as 0:0") && err.contains("warning: this token acts as uid 0"),
        "{err}"
    );
    let d = Daemon::start(&f, &[]);

    // The attack of issue 8: a setuid-root file and a character device 1:5.
    refused(
        call(
            &d,
            &rw,
            "PUT",
            "/v1/files/x?uid=0&mode=2541",
            b"#!/bin/sh\n",
        ),
        403,
        "not_permitted",
        "setuid-root PUT",
    );
    refused(
        call(&d, &rw, "PUT", "/v1/files/g?mode=1517", b"x"),
        403,
        "not_permitted",
        "setgid PUT",
    );
    let dev = json!({"kind": "char_dev", "rdev": MAKEDEV_1_5, "mode": 0o666}).to_string();
    refused(
        call(&d, &rw, "POST", "/v1/mknod/zero", dev.as_bytes()),
        403,
        "not_permitted",
        "char device",
    );
    let blk = json!({"kind": "block_dev", "rdev": 7}).to_string();
    refused(
        call(&d, &rw, "POST", "/v1/mknod/blk", blk.as_bytes()),
        403,
        "not_permitted",
        "block device",
    );
    for p in ["x", "g", "zero", "blk"] {
        assert_eq!(meta(&d, p), Err(404), "{p} must not exist");
    }
    // chmod to setuid of an existing file, through PATCH meta: refused, mode unchanged.
    let st = ok(
        call(&d, &rw, "PUT", "/v1/files/tool?mode=493", b"#!/bin/sh\n"),
        201,
        "plain PUT",
    );
    assert_eq!(st["mode"], 0o755);
    for mode in [0o4755, 0o2755] {
        let body = json!({ "mode": mode }).to_string();
        refused(
            call(&d, &rw, "PATCH", "/v1/meta/tool", body.as_bytes()),
            403,
            "not_permitted",
            "PATCH mode set-id",
        );
    }
    assert_eq!(meta(&d, "tool").unwrap()["mode"], 0o755);
    // Its identity is uid 0, which passes every permission check, yet it is no admin:
    // it names no other owner.
    let body = json!({"uid": 1000}).to_string();
    refused(
        call(&d, &rw, "PATCH", "/v1/meta/tool", body.as_bytes()),
        403,
        "not_permitted",
        "chown by a non-admin uid-0 token",
    );
    refused(
        call(&d, &rw, "PUT", "/v1/files/theirs?uid=1000&gid=1000", b"x"),
        403,
        "not_permitted",
        "PUT for another owner by a non-admin uid-0 token",
    );
    assert_eq!(meta(&d, "theirs"), Err(404));
    assert_eq!(meta(&d, "tool").unwrap()["uid"], 0);
    // Ordinary: a fifo, a socket, a setgid directory, a sticky directory.
    let fifo = json!({"kind": "fifo"}).to_string();
    ok(
        call(&d, &rw, "POST", "/v1/mknod/p", fifo.as_bytes()),
        201,
        "fifo",
    );
    let sock = json!({"kind": "socket"}).to_string();
    ok(
        call(&d, &rw, "POST", "/v1/mknod/s", sock.as_bytes()),
        201,
        "socket",
    );
    let sg = json!({"mode": 0o2775}).to_string();
    let st = ok(
        call(&d, &rw, "POST", "/v1/mkdir/sg", sg.as_bytes()),
        201,
        "setgid dir",
    );
    assert_eq!(st["mode"], 0o2775);
    // An admin token without `allow_devices` is refused the same way.
    refused(
        call(&d, &d.token, "PUT", "/v1/files/x?uid=0&mode=2541", b"x"),
        403,
        "not_permitted",
        "admin without allow_devices",
    );
    refused(
        call(&d, &d.token, "POST", "/v1/mknod/zero", dev.as_bytes()),
        403,
        "not_permitted",
        "admin device without allow_devices",
    );
    d.stop();

    // With `allow_devices = true` the admin token may; the read-write token still not.
    let cfg = config(&f, "devices.toml", "allow_devices = true\n");
    let d = Daemon::start(&f, &["--config", &cfg]);
    refused(
        call(&d, &rw, "PUT", "/v1/files/x?uid=0&mode=2541", b"x"),
        403,
        "not_permitted",
        "read-write token with allow_devices",
    );
    refused(
        call(&d, &rw, "POST", "/v1/mknod/zero", dev.as_bytes()),
        403,
        "not_permitted",
        "read-write device with allow_devices",
    );
    assert_eq!(meta(&d, "x"), Err(404));
    let st = ok(
        call(&d, &d.token, "PUT", "/v1/files/x?uid=0&mode=2541", b"x"),
        201,
        "admin setuid PUT",
    );
    assert_eq!(
        (st["mode"].as_u64(), st["uid"].as_u64()),
        (Some(0o4755), Some(0))
    );
    let st = ok(
        call(&d, &d.token, "POST", "/v1/mknod/zero", dev.as_bytes()),
        201,
        "admin device",
    );
    assert_eq!(
        (st["kind"].as_str(), st["rdev"].as_u64()),
        (Some("char_dev"), Some(MAKEDEV_1_5 as u64))
    );
    let body = json!({"mode": 0o4755}).to_string();
    let st = ok(
        call(&d, &d.token, "PATCH", "/v1/meta/tool", body.as_bytes()),
        200,
        "admin chmod 04755",
    );
    assert_eq!(st["mode"], 0o4755);
    d.stop();
}

#[test]
fn tokens_act_as_their_identity() {
    let Some(f) = Fixture::new() else { return };
    let (u1000, err) = token(&f, "u1000", &["--uid", "1000", "--gid", "1000"]);
    assert!(
        err.contains("acting as 1000:1000") && !err.contains("warning"),
        "{err}"
    );
    let (u1001, _) = token(&f, "u1001", &["--uid", "1001", "--gid", "1001"]);
    let list: Value = serde_json::from_str(&f.ok(&["token", "list", "--json"])).unwrap();
    let row = |n: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (
            row("admin")["admin"].as_bool(),
            row("admin")["uid"].as_u64()
        ),
        (Some(true), Some(0))
    );
    assert_eq!(
        (
            row("u1000")["admin"].as_bool(),
            row("u1000")["uid"].as_u64()
        ),
        (Some(false), Some(1000))
    );
    let d = Daemon::start(&f, &[]);
    let st = ok(call(&d, &u1000, "GET", "/v1/status", b""), 200, "status");
    assert_eq!(
        st["caller"],
        json!({"token": "u1000", "uid": 1000, "gid": 1000, "admin": false, "read_only": false})
    );

    // The daemon's own routes are the admin's: a user token gets 403 forbidden on each.
    for (m, p) in [
        ("GET", "/v1/devices"),
        ("GET", "/v1/admin/wal"),
        ("POST", "/v1/admin/flush"),
        ("POST", "/v1/admin/evict"),
    ] {
        refused(call(&d, &u1000, m, p, b""), 403, "forbidden", p);
        ok(call(&d, &d.token, m, p, b""), 200, p);
    }

    // A 0600 file of uid 1001: 1000 can neither read it nor take it; the admin can.
    let st = ok(
        call(
            &d,
            &d.token,
            "PUT",
            "/v1/files/secret?uid=1001&gid=1001&mode=384",
            b"s3cret",
        ),
        201,
        "admin PUT for 1001",
    );
    assert_eq!(
        (st["uid"].as_u64(), st["mode"].as_u64()),
        (Some(1001), Some(0o600))
    );
    // stat works (search on / suffices) but carries no ETag, derived from the content.
    let st = ok(call(&d, &u1000, "GET", "/v1/meta/secret", b""), 200, "stat");
    assert_eq!((st["size"].as_u64(), st["etag"].is_null()), (Some(6), true));
    assert!(meta(&d, "secret").unwrap()["etag"].is_string());
    for (m, p) in [("HEAD", "/v1/files/secret"), ("GET", "/v1/manifest/secret")] {
        let (st, b) = call(&d, &u1000, m, p, b"");
        assert_eq!(st, 403, "{m} {p}");
        if m != "HEAD" {
            assert_eq!(error_code(&b), "permission_denied", "{m} {p}");
        }
    }
    assert_eq!(
        call(&d, &u1001, "GET", "/v1/files/secret", b""),
        (200, b"s3cret".to_vec()),
        "its owner reads it"
    );
    for (body, what) in [
        (json!({"uid": 1000}), "chown"),
        (json!({"gid": 1001}), "chgrp to a group it is not"),
        (json!({"mode": 0o644}), "chmod of another's file"),
        (json!({"mtime_ns": 5}), "utimes of another's file"),
    ] {
        refused(
            call(
                &d,
                &u1000,
                "PATCH",
                "/v1/meta/secret",
                body.to_string().as_bytes(),
            ),
            403,
            "not_permitted",
            what,
        );
    }
    let m = meta(&d, "secret").unwrap();
    assert_eq!(
        (m["uid"].as_u64(), m["gid"].as_u64(), m["mode"].as_u64()),
        (Some(1001), Some(1001), Some(0o600))
    );
    assert_eq!(
        call(&d, &d.token, "GET", "/v1/files/secret", b""),
        (200, b"s3cret".to_vec())
    );
    let body = json!({"uid": 1000, "gid": 1000}).to_string();
    let st = ok(
        call(&d, &d.token, "PATCH", "/v1/meta/secret", body.as_bytes()),
        200,
        "admin chown",
    );
    assert_eq!(
        (st["uid"].as_u64(), st["gid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(
        call(&d, &u1000, "GET", "/v1/files/secret", b""),
        (200, b"s3cret".to_vec()),
        "now its own"
    );

    // The root directory (0755, root's) takes nothing from it.
    refused(
        call(&d, &u1000, "PUT", "/v1/files/mine", b"m"),
        403,
        "permission_denied",
        "PUT in /",
    );
    // In a 0777 directory what it creates is its own; it cannot name another owner.
    let w = json!({"mode": 0o777}).to_string();
    ok(
        call(&d, &d.token, "POST", "/v1/mkdir/w", w.as_bytes()),
        201,
        "w",
    );
    let st = ok(
        call(&d, &u1000, "PUT", "/v1/files/w/mine", b"m"),
        201,
        "PUT",
    );
    assert_eq!(
        (st["uid"].as_u64(), st["gid"].as_u64()),
        (Some(1000), Some(1000))
    );
    let st = ok(
        call(&d, &u1000, "POST", "/v1/mkdir/w/mydir", b""),
        201,
        "mkdir",
    );
    assert_eq!(
        (st["uid"].as_u64(), st["gid"].as_u64()),
        (Some(1000), Some(1000))
    );
    for (m, p, b) in [
        ("PUT", "/v1/files/w/other?uid=1001", Vec::new()),
        ("PUT", "/v1/files/w/other?gid=1001", Vec::new()),
        (
            "POST",
            "/v1/mkdir/w/other",
            json!({"uid": 0}).to_string().into_bytes(),
        ),
        (
            "POST",
            "/v1/symlink/w/other",
            json!({"target": "x", "gid": 0}).to_string().into_bytes(),
        ),
        (
            "POST",
            "/v1/mknod/w/other",
            json!({"kind": "fifo", "uid": 1001})
                .to_string()
                .into_bytes(),
        ),
    ] {
        refused(call(&d, &u1000, m, p, &b), 403, "not_permitted", p);
    }
    assert_eq!(meta(&d, "w/other"), Err(404));

    // A 0755 directory of another user: no creation, removal or rename in it.
    let home = json!({"mode": 0o755, "uid": 1001, "gid": 1001}).to_string();
    ok(
        call(&d, &d.token, "POST", "/v1/mkdir/home", home.as_bytes()),
        201,
        "home",
    );
    ok(
        call(&d, &u1001, "PUT", "/v1/files/home/f", b"f"),
        201,
        "owner PUT",
    );
    let denied = [
        ("PUT", "/v1/files/home/new", Vec::new()),
        ("PUT", "/v1/files/home/f", Vec::new()),
        ("PUT", "/v1/files/home/a/b?parents=true", Vec::new()),
        ("POST", "/v1/mkdir/home/d", Vec::new()),
        (
            "POST",
            "/v1/symlink/home/l",
            json!({"target": "f"}).to_string().into_bytes(),
        ),
        (
            "POST",
            "/v1/mknod/home/p",
            json!({"kind": "fifo"}).to_string().into_bytes(),
        ),
        (
            "POST",
            "/v1/link",
            json!({"from": "w/mine", "to": "home/ln"})
                .to_string()
                .into_bytes(),
        ),
        ("DELETE", "/v1/files/home/f", Vec::new()),
        (
            "POST",
            "/v1/rename",
            json!({"from": "home/f", "to": "stolen"})
                .to_string()
                .into_bytes(),
        ),
    ];
    for (m, p, b) in &denied {
        refused(call(&d, &u1000, m, p, b), 403, "permission_denied", p);
    }
    let ls = ok(call(&d, &d.token, "GET", "/v1/ls/home", b""), 200, "ls");
    assert_eq!(ls["entries"].as_array().unwrap().len(), 1, "{ls}");
    assert_eq!(meta(&d, "stolen"), Err(404));
    // Search and list permission: a 0700 directory hides its entries.
    let body = json!({"mode": 0o700}).to_string();
    ok(
        call(&d, &u1001, "PATCH", "/v1/meta/home", body.as_bytes()),
        200,
        "chmod",
    );
    refused(
        call(&d, &u1000, "GET", "/v1/meta/home/f", b""),
        403,
        "permission_denied",
        "stat through a 0700 dir",
    );
    refused(
        call(&d, &u1000, "GET", "/v1/ls/home", b""),
        403,
        "permission_denied",
        "ls of a 0700 dir",
    );
    ok(
        call(&d, &u1001, "GET", "/v1/ls/home", b""),
        200,
        "its owner lists it",
    );

    // The sticky rule: in a 01777 directory only the owner removes or replaces a name.
    let tmp = json!({"mode": 0o1777}).to_string();
    ok(
        call(&d, &d.token, "POST", "/v1/mkdir/tmp", tmp.as_bytes()),
        201,
        "tmp",
    );
    ok(
        call(&d, &u1001, "PUT", "/v1/files/tmp/theirs", b"t"),
        201,
        "theirs",
    );
    let sticky = [
        ("DELETE", "/v1/files/tmp/theirs", Vec::new()),
        ("PUT", "/v1/files/tmp/theirs", b"mine".to_vec()),
        (
            "POST",
            "/v1/rename",
            json!({"from": "tmp/theirs", "to": "tmp/moved"})
                .to_string()
                .into_bytes(),
        ),
        (
            "POST",
            "/v1/rename",
            json!({"from": "w/mine", "to": "tmp/theirs"})
                .to_string()
                .into_bytes(),
        ),
    ];
    for (m, p, b) in &sticky {
        refused(call(&d, &u1000, m, p, b), 403, "not_permitted", p);
    }
    assert_eq!(
        call(&d, &u1001, "GET", "/v1/files/tmp/theirs", b""),
        (200, b"t".to_vec())
    );
    ok(
        call(&d, &u1000, "PUT", "/v1/files/tmp/own", b"o"),
        201,
        "own in tmp",
    );
    assert_eq!(call(&d, &u1000, "DELETE", "/v1/files/tmp/own", b"").0, 204);
    assert_eq!(
        call(&d, &d.token, "DELETE", "/v1/files/tmp/theirs", b"").0,
        204
    );

    // A setgid directory passes its group on; naming that group is no other owner.
    let grp = json!({"mode": 0o2777, "gid": 50}).to_string();
    ok(
        call(&d, &d.token, "POST", "/v1/mkdir/grp", grp.as_bytes()),
        201,
        "grp",
    );
    let st = ok(
        call(&d, &u1000, "PUT", "/v1/files/grp/f?gid=50", b"g"),
        201,
        "in grp",
    );
    assert_eq!(
        (st["uid"].as_u64(), st["gid"].as_u64()),
        (Some(1000), Some(50))
    );
    d.stop();
}

#[test]
fn read_only_tokens_are_refused_on_every_mutating_route() {
    let Some(f) = Fixture::new() else { return };
    let (ro, _) = token(&f, "viewer", &["--read-only"]);
    let d = Daemon::start(&f, &[]);
    ok(
        call(&d, &d.token, "PUT", "/v1/files/keep", b"k"),
        201,
        "PUT",
    );
    let before = ok(call(&d, &d.token, "GET", "/v1/ls", b""), 200, "ls");
    let spec = ok(call(&d, &ro, "GET", "/v1/openapi.json", b""), 200, "spec");
    let mut tried = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let m = method.to_ascii_uppercase();
            match m.as_str() {
                "GET" | "HEAD" => continue,
                "PUT" | "POST" | "PATCH" | "DELETE" | "OPTIONS" | "TRACE" => {}
                "SUMMARY" | "DESCRIPTION" | "PARAMETERS" | "SERVERS" => continue,
                _ => panic!("unexpected key {method:?} under {path} in the spec"),
            }
            let p = path
                .replace("{path}", "keep")
                .replace("{id}", &"0".repeat(64));
            let body = json!({"from": "keep", "to": "moved", "kind": "fifo", "target": "keep"})
                .to_string();
            let r = call(&d, &ro, &m, &p, body.as_bytes());
            refused(r, 403, "forbidden", &format!("{m} {p}"));
            tried.push(format!("{m} {path}"));
        }
    }
    tried.sort();
    // Every mutating route of the spec was tried (the spec lists every route).
    for must in [
        "PUT /v1/files/{path}",
        "DELETE /v1/files/{path}",
        "PATCH /v1/meta/{path}",
        "POST /v1/mkdir/{path}",
        "POST /v1/symlink/{path}",
        "POST /v1/rename",
        "POST /v1/mknod/{path}",
        "POST /v1/link",
        "POST /v1/admin/evict",
        "POST /v1/admin/flush",
    ] {
        assert!(tried.iter().any(|t| t == must), "{must} not in {tried:?}");
    }
    let after = ok(call(&d, &d.token, "GET", "/v1/ls", b""), 200, "ls");
    assert_eq!(before, after, "a read-only token changed something");
    assert_eq!(
        call(&d, &ro, "GET", "/v1/files/keep", b""),
        (200, b"k".to_vec()),
        "it still reads"
    );
    d.stop();
}

#[test]
fn put_with_parents_creates_them_only_for_an_accepted_body() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &[]);
    let body = b"the content";
    let wrong = format!("x-fvfs-blake3: {}", "ab".repeat(32));
    refused(
        call_h(
            &d,
            &d.token,
            "PUT",
            "/v1/files/a/b/c/f?parents=true",
            &wrong,
            body,
        ),
        422,
        "hash_mismatch",
        "wrong hash",
    );
    assert_eq!(meta(&d, "a"), Err(404), "no parent left by a refused body");
    // A body shorter than its Content-Length (the client hangs up) changes nothing either.
    let head = format!(
        "PUT /v1/files/a/b/c/f?parents=true HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Length: 100",
        d.token
    );
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&d.addr).unwrap();
        write!(s, "{head}\r\nHost: {}\r\n\r\n", d.addr).unwrap();
        s.write_all(&body[..5]).unwrap();
    }
    // The daemon answers the cut body with 400 (counted in /metrics once answered).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, m) = call(&d, &d.token, "GET", "/metrics", b"");
        let done = String::from_utf8_lossy(&m).lines().any(|l| {
            l.starts_with("fvfs_http_requests_total{")
                && l.contains("method=\"PUT\"")
                && l.contains("status=\"400\"")
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cut upload was never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(meta(&d, "a"), Err(404));
    let leftovers =
        f.count("SELECT COUNT(*) FROM dentries WHERE CAST(name AS TEXT) LIKE '.fvfs-put.%'");
    assert_eq!(leftovers, 0, "the aborted upload's temporary file is gone");
    let right = format!("x-fvfs-blake3: {}", blake3::hash(body).to_hex());
    let st = ok(
        call_h(
            &d,
            &d.token,
            "PUT",
            "/v1/files/a/b/c/f?parents=true",
            &right,
            body,
        ),
        201,
        "accepted",
    );
    assert_eq!(st["path"], "/a/b/c/f");
    for p in ["a", "a/b", "a/b/c"] {
        let m = meta(&d, p).unwrap();
        assert_eq!(
            (m["kind"].as_str(), m["mode"].as_u64()),
            (Some("dir"), Some(0o755)),
            "{p}"
        );
    }
    assert_eq!(
        call(&d, &d.token, "GET", "/v1/files/a/b/c/f", b""),
        (200, body.to_vec())
    );
    d.stop();
}

#[test]
fn failed_logins_are_counted_and_logged_with_the_peer() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &[]);
    let bad = format!("fvfs_{}", "0".repeat(40));
    for _ in 0..3 {
        let (st, _, _) = raw(
            &d.addr,
            &format!("GET /v1/status HTTP/1.1\r\nAuthorization: Bearer {bad}"),
            b"",
        );
        assert_eq!(st, 401);
    }
    let (st, _, _) = raw(
        &d.addr,
        "GET /v1/status HTTP/1.1\r\nAuthorization: Basic eDp5",
        b"",
    );
    assert_eq!(st, 401);
    // No credential at all is refused too, but is no login attempt.
    let (st, _, _) = raw(&d.addr, "GET /v1/status HTTP/1.1", b"");
    assert_eq!(st, 401);
    let (st, b) = call(&d, &d.token, "GET", "/metrics", b"");
    assert_eq!(st, 200);
    let text = String::from_utf8_lossy(&b);
    let line = text
        .lines()
        .find(|l| l.starts_with("fvfs_api_auth_failures_total"))
        .unwrap_or_else(|| panic!("no fvfs_api_auth_failures_total in\n{text}"));
    assert_eq!(line, "fvfs_api_auth_failures_total 4");
    // One WARN line for the four (one per peer per minute), naming the peer.
    let log = std::fs::read_to_string(&d.log).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("failed login")).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("peer=127.0.0.1:"),
        "{}",
        lines[0]
    );
    d.assert_not_logged(&bad);
    d.stop();
}
