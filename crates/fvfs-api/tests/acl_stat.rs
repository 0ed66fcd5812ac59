//! The API's `Stat` carries st_blocks and the POSIX ACLs (text form), and files the API
//! creates inherit a directory's default ACL as local creations do.

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use common::{data, env};
use fvfs_vfs::acl::{Acl, Entry, Tag, ACL_ACCESS, ACL_DEFAULT};
use fvfs_vfs::{Ctx, XattrMode};

fn acl(entries: &[(Tag, u32)]) -> Acl {
    Acl::from_entries(
        entries
            .iter()
            .map(|&(tag, perm)| Entry { tag, perm })
            .collect(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_shows_blocks_and_acls_and_puts_inherit() {
    let e = env();
    // 10000 bytes of data: three 4 KiB units, 24 blocks of 512 bytes.
    let r = e
        .call("PUT", "/v1/files/f?mode=416", Body::from(data(10_000, 1)))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let st = r.json();
    assert_eq!(st["blocks"], 24);
    assert_eq!(st["acl_access"], serde_json::Value::Null);
    assert_eq!(st["acl_default"], serde_json::Value::Null);

    // An access ACL set on the file (as setfacl does through the mount).
    let ino = st["ino"].as_u64().unwrap();
    let named = acl(&[
        (Tag::UserObj, 6),
        (Tag::User(1000), 5),
        (Tag::GroupObj, 4),
        (Tag::Mask, 5),
        (Tag::Other, 4),
    ]);
    e.vfs
        .set_xattr(
            Ctx::root(),
            ino,
            ACL_ACCESS,
            &named.to_xattr(),
            XattrMode::Any,
        )
        .unwrap();
    let st = e.get("/v1/meta/f").await.json();
    assert_eq!(
        st["acl_access"],
        "user::rw-,user:1000:r-x,group::r--,mask::r-x,other::r--"
    );
    assert_eq!(st["mode"], 0o654, "the group bits are the mask");
    assert_eq!(st["blocks"], 24);

    // A directory with a default ACL; a file PUT into it inherits it.
    let r = e.call("POST", "/v1/mkdir/shared", Body::empty()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let dir = r.json()["ino"].as_u64().unwrap();
    let def = acl(&[
        (Tag::UserObj, 7),
        (Tag::User(1000), 7),
        (Tag::GroupObj, 5),
        (Tag::Mask, 7),
        (Tag::Other, 0),
    ]);
    e.vfs
        .set_xattr(
            Ctx::root(),
            dir,
            ACL_DEFAULT,
            &def.to_xattr(),
            XattrMode::Any,
        )
        .unwrap();
    let st = e.get("/v1/meta/shared").await.json();
    assert_eq!(
        st["acl_default"],
        "user::rwx,user:1000:rwx,group::r-x,mask::rwx,other::---"
    );
    let r = e
        .call("PUT", "/v1/files/shared/new?mode=420", Body::from("x"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let st = r.json();
    assert_eq!(st["mode"], 0o640);
    assert_eq!(
        st["acl_access"],
        "user::rw-,user:1000:rwx,group::r-x,mask::r--,other::---"
    );
    assert_eq!(st["acl_default"], serde_json::Value::Null);
    assert_eq!(st["blocks"], 8);
    // Listings carry them too.
    let ls = e.get("/v1/ls/shared").await.json();
    assert_eq!(
        ls["entries"][0]["acl_access"],
        "user::rw-,user:1000:rwx,group::r-x,mask::r--,other::---"
    );
}
