//! The fixture of the origin tests: a small music tree written to a directory, the
//! exact checks every origin kind must pass on it, the specs of the test servers, and
//! the skip rule for servers this machine lacks.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use fvfs_music::origin::{Origin, OriginError, OriginSpec};
use fvfs_music::source::RangeSource;
use fvfs_testkit::{pseudo_random, S3Server};

/// The tree: path, length, seed. Spaces, accents and a 1-byte file on purpose.
pub const TREE: [(&str, usize, u64); 4] = [
    ("Björk/Début/01 Human Behaviour.flac", 300_001, 1),
    ("Björk/Début/02 Crying.mp3", 70_000, 2),
    ("Sigur Rós/( )/untitled #1.ogg", 131_072, 3),
    ("z.txt", 1, 4),
];

pub fn content(path: &str) -> Vec<u8> {
    let (_, len, seed) = TREE.iter().find(|(p, _, _)| *p == path).expect("in TREE");
    pseudo_random(*len, *seed)
}

/// Writes the tree under `dir`.
pub fn fill(dir: &Path) {
    for (p, _, _) in TREE {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, content(p)).unwrap();
    }
}

/// A test server could not start: a missing server skips the test on a developer's
/// machine (prints SKIP and returns); anything else, or any failure in CI
/// (FVFS_REQUIRE_PRIVILEGED=1), fails it.
pub fn skip(what: &str, e: std::io::Error) {
    if e.kind() == std::io::ErrorKind::NotFound
        && std::env::var("FVFS_REQUIRE_PRIVILEGED").as_deref() != Ok("1")
    {
        eprintln!("SKIP: {what}: {e}");
        return;
    }
    panic!("{what}: {e}");
}

/// An S3 origin on the testkit server, files under `prefix`, explicit keys.
pub fn s3_spec(id: &str, srv: &S3Server, prefix: &str, priority: u32) -> OriginSpec {
    let p = priority.to_string();
    OriginSpec::from_fields([
        ("id", id),
        ("kind", "s3"),
        ("bucket", srv.bucket.as_str()),
        ("prefix", prefix),
        ("endpoint", srv.endpoint.as_str()),
        ("access_key_id", srv.access_key.as_str()),
        ("secret_access_key", srv.secret_key.as_str()),
        ("priority", p.as_str()),
    ])
    .expect("s3 spec")
}

/// The exact checks of one origin holding [`TREE`]: listing, stat, ranged reads at
/// the edges, the blocking `RangeSource`, missing files. `etags`: whether the
/// service gives entity tags in listings and in stats (fs and sftp never; the
/// testkit's S3 server on stat only, for files it did not store itself).
pub async fn check_origin(o: &Origin, etags: (bool, bool)) {
    let listed = o.list("").await.expect("list");
    let got: Vec<(&str, u64)> = listed.iter().map(|e| (e.path.as_str(), e.size)).collect();
    let want: Vec<(&str, u64)> = TREE.iter().map(|(p, l, _)| (*p, *l as u64)).collect();
    assert_eq!(got, want, "{}", o.display());
    assert!(listed.iter().all(|e| e.mtime.is_some()), "{listed:?}");
    assert!(
        listed.iter().all(|e| e.etag.is_some() == etags.0),
        "{listed:?}"
    );

    let sub = o.list("Björk/").await.expect("list prefix");
    let sub: Vec<&str> = sub.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(sub, [TREE[0].0, TREE[1].0]);
    assert_eq!(o.list("Nobody").await.expect("missing prefix"), []);

    for (path, len, _) in TREE {
        let data = content(path);
        let st = o.stat(path).await.expect("stat");
        assert_eq!((st.path.as_str(), st.size), (path, len as u64));
        assert_eq!(st.etag.is_some(), etags.1, "{st:?}");
        let len = len as u64;
        let cases = [(0, 1), (0, len), (len / 2, len / 3), (len - 1, 1)];
        for (off, n) in cases {
            let b = o.read_range(path, off, n).await.expect("read_range");
            let want = &data[off as usize..(off + n) as usize];
            assert_eq!(b, Bytes::copy_from_slice(want), "{path} {off}+{n}");
        }
        // A range not wholly in the file is a file-level error, whatever the service
        // does past the end.
        for (off, n) in [(len - 1, 2), (len, 1), (len + 5, 10)] {
            let e = o.read_range(path, off, n).await.unwrap_err();
            assert!(
                matches!(e, OriginError::Short { .. }),
                "{path} {off}+{n}: {e}"
            );
            assert!(!e.is_retryable() && !e.marks_unhealthy());
        }
    }

    // The blocking RangeSource, from a blocking thread as documented.
    let f = o
        .open_file(TREE[0].0, tokio::runtime::Handle::current())
        .await
        .expect("open_file");
    let whole = tokio::task::spawn_blocking(move || {
        assert_eq!(f.len(), TREE[0].1 as u64);
        let tail = f.read_range(f.len() - 3, 100).expect("tail");
        let past = f.read_range(f.len(), 1).expect("past the end");
        assert!(past.is_empty());
        (f.read_range(0, f.len()).expect("whole"), tail)
    })
    .await
    .unwrap();
    assert_eq!(whole.0, content(TREE[0].0));
    assert_eq!(whole.1, content(TREE[0].0)[TREE[0].1 - 3..]);

    let missing = o.read_range("no/such.flac", 0, 10).await.unwrap_err();
    assert!(matches!(missing, OriginError::NotFound { .. }), "{missing}");
    assert!(o.stat("no/such.flac").await.unwrap_err().is_not_found());
    assert!(o.read_range("../etc/passwd", 0, 10).await.is_err());
    o.check().await.expect("check");
}

/// Polls `f` every 50 ms until it is true or `within` passes; returns whether it held.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < until {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}
