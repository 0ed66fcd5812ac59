//! `POST /v1/mknod`, `POST /v1/link`, blocks of replaced content (refcount 0, still in the
//! GC grace period) and ETag-free listings, on a real engine without a network.

mod common;

use axum::http::StatusCode;
use common::{data, env};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mknod_fifo_socket_and_devices() {
    let e = env();
    let r = e
        .post_json(
            "/v1/mknod/p",
            json!({"kind": "fifo", "mode": 0o640, "uid": 65534, "gid": 65534}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let st = r.json();
    assert_eq!(st["kind"], "fifo");
    assert_eq!(st["mode"], 0o640);
    assert_eq!(
        (st["uid"].as_u64(), st["gid"].as_u64()),
        (Some(65534), Some(65534))
    );
    assert_eq!(st["rdev"], 0);
    assert_eq!(e.get("/v1/meta/p").await.json()["kind"], "fifo");

    let rdev = (8u32 << 8) | 1;
    let r = e
        .post_json(
            "/v1/mknod/c",
            json!({"kind": "char_dev", "mode": 0o600, "rdev": rdev}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["kind"], "char_dev");
    let st = e.get("/v1/meta/c").await.json();
    assert_eq!(
        (st["kind"].as_str(), st["rdev"].as_u64()),
        (Some("char_dev"), Some(rdev as u64))
    );
    let r = e
        .post_json("/v1/mknod/b", json!({"kind": "block_dev", "rdev": 7}))
        .await;
    assert_eq!(
        (r.status, r.json()["rdev"].as_u64()),
        (StatusCode::CREATED, Some(7))
    );
    assert_eq!(r.json()["mode"], 0o644, "default mode");
    let r = e.post_json("/v1/mknod/s", json!({"kind": "socket"})).await;
    assert_eq!(r.json()["kind"], "socket");

    for kind in ["file", "dir", "symlink"] {
        let r = e.post_json("/v1/mknod/x", json!({"kind": kind})).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_argument")
        );
    }
    let r = e.post_json("/v1/mknod/x", json!({"kind": "pipe"})).await;
    assert_eq!(r.code(), "invalid_argument");
    let r = e
        .post_json("/v1/mknod/x", json!({"kind": "fifo", "mode": 0o10000}))
        .await;
    assert_eq!(r.code(), "invalid_argument");
    let r = e.post_json("/v1/mknod/p", json!({"kind": "fifo"})).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "exists")
    );
    let r = e.post_json("/v1/mknod/no/p", json!({"kind": "fifo"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = e.post_json("/v1/mknod/", json!({"kind": "fifo"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no route for the root");
    // Special files are neither downloadable nor listed with an etag.
    let ls = e.get("/v1/ls").await.json();
    assert_eq!(ls["entries"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_links_share_the_inode() {
    let e = env();
    let body = data(100_000, 5);
    let a = e.put("a", &body).await.json();
    e.post_json("/v1/mkdir/d", json!({})).await;
    let r = e
        .post_json("/v1/link", json!({"from": "/a", "to": "/d/b"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let b = r.json();
    assert_eq!(b["path"], "/d/b");
    assert_eq!(b["ino"], a["ino"]);
    assert_eq!(b["nlink"], 2);
    assert_eq!(b["etag"], a["etag"]);
    assert_eq!(e.get("/v1/meta/a").await.json()["nlink"], 2);

    let r = e
        .call("DELETE", "/v1/files/a", axum::body::Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let st = e.get("/v1/meta/d/b").await.json();
    assert_eq!(st["nlink"], 1);
    let r = e.get("/v1/files/d/b").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body[..] == body[..], "the other name keeps the content");

    let r = e
        .post_json("/v1/link", json!({"from": "/d", "to": "/d2"}))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "is_dir")
    );
    let r = e
        .post_json("/v1/link", json!({"from": "/d/b", "to": "/d/b"}))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "exists")
    );
    let r = e
        .post_json("/v1/link", json!({"from": "/nope", "to": "/x"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = e
        .post_json("/v1/link", json!({"from": "/d/b", "to": "/nodir/x"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = e
        .post_json("/v1/link", json!({"from": "/d/b", "to": "/../x"}))
        .await;
    assert_eq!(r.code(), "invalid_path");
    let r = e.post_json("/v1/link", json!({"from": "/d/b"})).await;
    assert_eq!(r.code(), "invalid_argument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_blocks_stay_readable_and_ls_has_no_etag() {
    let e = env();
    let old = data(300_000, 1);
    e.put("f", &old).await;
    let m = e.get("/v1/manifest/f").await.json();
    let ls = e.get("/v1/ls").await.json();
    assert!(
        ls["entries"][0]["etag"].is_null(),
        "ls entries carry no etag"
    );
    assert_eq!(ls["entries"][0]["size"], old.len() as u64);
    assert!(e.get("/v1/meta/f").await.json()["etag"].is_string());

    // Replaced: the old blocks' refcount drops to 0, but within the grace period a client
    // holding the old manifest still reads them.
    e.put("f", &data(300_000, 2)).await;
    // A second connection to the metadata, as fsck would read it.
    let url = format!("sqlite://{}", e.dir.path().join("meta.db").display());
    let meta = fvfs_meta::open(&url, false).unwrap();
    for p in m["pieces"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        let row = meta
            .get_block(&fvfs_types::BlockId::from_hex(id).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(row.refcount, 0, "the old block is garbage now");
        let r = e.get(&format!("/v1/blocks/{id}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(blake3::hash(&r.body).to_hex().as_str(), id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_over_a_hard_link_keeps_the_inode() {
    let e = env();
    let a = e.put("a", &data(3 << 20, 1)).await.json();
    e.post_json("/v1/link", json!({"from": "/a", "to": "/b"}))
        .await;
    // Shorter new content: the old tail must go.
    let new = data(1 << 20, 2);
    let r = e.put("b", &new).await;
    assert_eq!(r.status, StatusCode::OK);
    let st = r.json();
    assert_eq!(
        (st["ino"].as_u64(), st["nlink"].as_u64()),
        (a["ino"].as_u64(), Some(2))
    );
    assert_eq!(st["size"], new.len() as u64);
    for p in ["a", "b"] {
        let r = e.get(&format!("/v1/files/{p}")).await;
        assert!(r.body[..] == new[..], "{p} sees the new content");
    }
    let raw = e
        .vfs
        .list_sorted(fvfs_vfs::ROOT_INO, None, 100, |_| true)
        .unwrap()
        .0;
    assert_eq!(raw.len(), 2, "the temporary upload file was removed");
}
