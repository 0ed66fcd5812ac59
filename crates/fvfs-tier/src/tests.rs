//! Unit tests of [`Tier`] over the fs service in a temporary directory.

use super::*;

fn id(n: u8) -> BlockId {
    BlockId(*blake3::hash(&[n]).as_bytes())
}

fn fs_tier(dir: &Path) -> Tier {
    Tier::open(&TierSpec::parse(dir.to_str().expect("utf8")).expect("spec")).expect("open")
}

#[test]
fn block_key_layout() {
    let id = BlockId([0xab; 32]);
    let hex = "ab".repeat(32);
    assert_eq!(Tier::block_key(&id), format!("blocks/ab/ab/{hex}"));
}

#[tokio::test]
async fn fs_block_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("not/yet/there");
    let t = fs_tier(&root);
    assert!(root.is_dir(), "open creates the root");
    t.check().await.expect("check");

    let a = id(1);
    assert!(!t.block_exists(&a).await.expect("exists"));
    assert!(t.get_block(&a).await.expect_err("missing").is_not_found());
    t.put_block(&a, Bytes::from_static(b"hello"))
        .await
        .expect("put");
    assert!(t.block_exists(&a).await.expect("exists"));
    assert_eq!(
        t.get_block(&a).await.expect("get"),
        Bytes::from_static(b"hello")
    );
    assert!(root.join(Tier::block_key(&a)).is_file());
    // Overwrite is fine (same id = same content in practice).
    t.put_block(&a, Bytes::from_static(b"hello"))
        .await
        .expect("put again");

    t.put_block(&id(2), Bytes::from(vec![7u8; 1000]))
        .await
        .expect("put 2");
    assert_eq!(t.used_bytes().await.expect("used"), 1005);
    let listed = t.list(BLOCKS_PREFIX).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|(k, _)| k.starts_with("blocks/")));

    t.delete_block(&a).await.expect("delete");
    t.delete_block(&a).await.expect("delete missing is ok");
    assert!(!t.block_exists(&a).await.expect("exists"));
    assert_eq!(t.used_bytes().await.expect("used"), 1000);
    // No probe or temp leftovers are counted or listed.
    assert!(t.list(PROBE_PREFIX).await.expect("list probes").is_empty());
}

#[tokio::test]
async fn fs_objects_and_bad_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = fs_tier(dir.path());
    t.put_object("meta/backup-1.db", Bytes::from_static(b"x"))
        .await
        .expect("put");
    assert_eq!(
        t.list("meta/").await.expect("list"),
        vec![("meta/backup-1.db".to_string(), 1)]
    );
    assert!(t.list("nothing/").await.expect("empty").is_empty());
    assert_eq!(t.used_bytes().await.expect("used"), 0);
    for bad in ["", "dir/", "/abs", "a/../b", "a//b"] {
        assert!(matches!(
            t.put_object(bad, Bytes::new()).await,
            Err(TierError::Config(_))
        ));
        assert!(matches!(t.get_object(bad).await, Err(TierError::Config(_))));
    }
    // A directory where an object is asked for is an I/O error, not a missing object.
    assert!(matches!(
        t.get_object("meta").await,
        Err(TierError::Io { .. })
    ));
    t.delete_object("meta/backup-1.db").await.expect("delete");
    assert!(t
        .get_object("meta/backup-1.db")
        .await
        .expect_err("gone")
        .is_not_found());
}

/// A directory tier's write leaves nothing in `.tmp/`, whether it succeeds or fails
/// (here: `blocks` is a file, so no block directory can be made).
#[tokio::test]
async fn fs_writes_leave_no_temporary_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = fs_tier(dir.path());
    let tmp = dir.path().join(FS_TMP_DIR);
    let entries = || std::fs::read_dir(&tmp).expect("tmp dir").count();
    t.put_object("meta/x", Bytes::from_static(b"x"))
        .await
        .expect("put");
    assert_eq!(
        std::fs::read(dir.path().join("meta/x")).expect("read"),
        b"x"
    );
    assert_eq!(entries(), 0);
    std::fs::write(dir.path().join("blocks"), b"in the way").expect("write");
    let e = t
        .put_block(&id(3), Bytes::from_static(b"data"))
        .await
        .expect_err("no block directory");
    assert!(e.to_string().contains("blocks/"), "{e}");
    assert_eq!(entries(), 0);
}

#[tokio::test]
async fn fs_unwritable_root_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let spec = TierSpec::parse(file.join("sub").to_str().expect("utf8")).expect("spec");
    let e = Tier::open(&spec).expect_err("root below a file");
    assert!(e.is_unreachable(), "{e}");
    assert!(e.to_string().contains("a-file"), "{e}");
}

#[test]
fn s3_open_without_network() {
    let spec =
        TierSpec::parse("s3://bkt/pre?endpoint=http://127.0.0.1:1&path_style=true").expect("spec");
    let t = Tier::open(&spec).expect("open does no I/O");
    assert!(t.display().starts_with("s3://bkt/pre?"));
    let creds = S3Credentials {
        access_key_id: "AK".into(),
        secret_access_key: "SUPERSECRET".into(),
        session_token: None,
    };
    assert!(!format!("{creds:?}").contains("SUPERSECRET"));
}
