//! Every PUT is atomic per file, whatever the link count (issue 8, item 2): concurrent
//! PUTs to a path that has a second hard link leave exactly one writer's body under both
//! names, on one inode. Real `fvfsd serve` over TCP, real S3 server.

mod common;

use common::api::ApiDaemon;
use common::{data, http, Fixture};

const WRITERS: u64 = 8;
const ROUNDS: u64 = 3;

fn stat(d: &ApiDaemon, path: &str) -> serde_json::Value {
    let (code, _, body) = http(
        "GET",
        &format!("{}/v1/meta/{path}", d.url),
        Some(&d.token),
        b"",
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn concurrent_puts_to_a_hard_linked_file_leave_one_whole_body() {
    let Some(f) = Fixture::new() else { return };
    let d = ApiDaemon::start(&f, &[]);
    let a_url = format!("{}/v1/files/a", d.url);
    let (code, _, body) = http("PUT", &a_url, Some(&d.token), b"first");
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let link = br#"{"from":"a","to":"b"}"#;
    let (code, _, body) = http("POST", &format!("{}/v1/link", d.url), Some(&d.token), link);
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let ino = stat(&d, "a")["ino"].as_u64().unwrap();

    for round in 0..ROUNDS {
        // Distinct bodies of 2-4 MiB (several blocks each), all sent at once.
        let bodies: Vec<Vec<u8>> = (0..WRITERS)
            .map(|i| data((2 << 20) + (i as usize) * 300_000, round * WRITERS + i + 1))
            .collect();
        let barrier = std::sync::Barrier::new(WRITERS as usize);
        std::thread::scope(|s| {
            let handles: Vec<_> = bodies
                .iter()
                .map(|b| {
                    let (url, token, barrier) = (&a_url, &d.token, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        http("PUT", url, Some(token), b)
                    })
                })
                .collect();
            for h in handles {
                let (code, _, body) = h.join().unwrap();
                assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
            }
        });
        let (code, _, got_a) = http("GET", &a_url, Some(&d.token), b"");
        assert_eq!(code, 200);
        let (code, _, got_b) = http("GET", &format!("{}/v1/files/b", d.url), Some(&d.token), b"");
        assert_eq!(code, 200);
        let winner = bodies.iter().position(|b| *b == got_a);
        assert!(
            winner.is_some(),
            "round {round}: a ({} bytes) is none of the bodies: a mixture",
            got_a.len()
        );
        assert!(got_a == got_b, "round {round}: a and b differ");
        for name in ["a", "b"] {
            let st = stat(&d, name);
            assert_eq!(st["ino"].as_u64(), Some(ino), "{name}: {st}");
            assert_eq!(st["nlink"].as_u64(), Some(2), "{name}: {st}");
            assert_eq!(
                st["size"].as_u64(),
                Some(got_a.len() as u64),
                "{name}: {st}"
            );
        }
    }
    d.stop();
    // Nothing of the uploads is left behind (one regular file, no temporary), and fsck
    // finds every reference count right.
    assert_eq!(f.count("SELECT COUNT(*) FROM inodes WHERE kind = 1"), 1);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM dentries WHERE CAST(name AS TEXT) LIKE '.fvfs-put.%'"),
        0
    );
    let out = f.run(&["fsck", "--meta", &f.meta_url]);
    assert!(
        out.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
