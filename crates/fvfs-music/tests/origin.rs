//! The origins against real servers: a directory, the testkit's S3 server, wsgidav
//! (WebDAV) and Debian's sshd (SFTP) each list and serve ranges byte-identical to the
//! files; an [`OriginSet`] fails over when the preferred origin stops mid-file, fails
//! fast when every origin is known down, and its periodic check flips an origin's
//! health both ways.
//!
//! wsgidav and sshd missing skip their tests, unless FVFS_REQUIRE_PRIVILEGED=1 (CI).

mod origin_env;

use std::time::{Duration, Instant};

use fvfs_music::origin::{HealthState, Origin, OriginError, OriginSet, OriginSpec, RETRY_BACKOFF};
use fvfs_music::source::RangeSource;
use fvfs_testkit::{S3Server, SftpServer, WebDavServer};
use fvfs_worker::Workers;
use origin_env::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_origin_lists_and_reads_exactly() {
    let dir = tempfile::tempdir().unwrap();
    fill(&dir.path().join("music"));
    let line = format!("nas={}", dir.path().join("music").display());
    let o = Origin::open(&OriginSpec::parse(&line).unwrap()).unwrap();
    check_origin(&o, (false, false)).await;

    // Opening and checking a missing root creates nothing (origins are read-only).
    let gone = dir.path().join("not-mounted");
    let o = Origin::open(&OriginSpec::parse(&format!("g={}", gone.display())).unwrap()).unwrap();
    let e = o.check().await.unwrap_err();
    assert!(e.marks_unhealthy(), "{e}");
    assert!(!gone.exists());
    assert_eq!(o.list("").await.unwrap(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_origin_lists_and_reads_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let srv = S3Server::start(dir.path(), "music").await.unwrap();
    fill(&dir.path().join("music/library"));
    let o = Origin::open(&s3_spec("s3", &srv, "library", 1)).unwrap();
    check_origin(&o, (false, true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_origin_lists_and_reads_exactly() {
    let dir = tempfile::tempdir().unwrap();
    fill(&dir.path().join("share/Music"));
    let srv = match WebDavServer::start(dir.path()) {
        Ok(s) => s,
        Err(e) => return skip("wsgidav", e),
    };
    let line = format!("dav=webdav://127.0.0.1:{}/share/Music", srv.port);
    let o = Origin::open(&OriginSpec::parse(&line).unwrap()).unwrap();
    check_origin(&o, (true, true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_origin_lists_and_reads_exactly() {
    let srv = match SftpServer::start() {
        Ok(s) => s,
        Err(e) => return skip("sshd", e),
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("srv/music");
    fill(&root);
    let o =
        Origin::open(&OriginSpec::parse(&format!("box={}", srv.location(&root))).unwrap()).unwrap();
    check_origin(&o, (false, false)).await;

    // The server going away is seen through the pooled SSH connection, and its return
    // without reopening the origin.
    srv.stop();
    let e = o.check().await.unwrap_err();
    assert!(e.marks_unhealthy(), "{e}");
    assert!(o
        .read_range(TREE[3].0, 0, 1)
        .await
        .unwrap_err()
        .is_retryable());
    srv.restart().unwrap();
    o.check().await.expect("back");
    assert_eq!(
        o.read_range(TREE[3].0, 0, 1).await.unwrap(),
        content(TREE[3].0)
    );

    // A missing root is unhealthy and stays missing: the sftp service would create
    // it, the origin never lets it.
    let gone = dir.path().join("srv/absent");
    let o =
        Origin::open(&OriginSpec::parse(&format!("g={}", srv.location(&gone))).unwrap()).unwrap();
    assert!(o.check().await.unwrap_err().marks_unhealthy());
    assert!(o
        .read_range("x.flac", 0, 1)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(!gone.exists());
}

#[test]
fn a_bad_spec_says_what_is_wrong() {
    let e = OriginSpec::parse("backup=ftp://nas/music").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid origin spec: origin \"backup\" has an unknown kind \"ftp\" (known: /path, file://, s3://, sftp://, webdav://, webdavs://)"
    );
    let a = Origin::open(&OriginSpec::parse("a=/x").unwrap()).unwrap();
    let b = Origin::open(&OriginSpec::parse("a=/y").unwrap()).unwrap();
    assert_eq!(
        OriginSet::new(vec![a, b]).unwrap_err().to_string(),
        "invalid origin spec: origin id \"a\" is used twice"
    );
    // An origin that does not answer is not a spec error: it opens.
    let spec = OriginSpec::parse("far=webdav://127.0.0.1:9/none").unwrap();
    assert!(Origin::open(&spec).is_ok());
}

/// Reads `len` bytes through `f` in 64 KiB pieces from a blocking thread, calling
/// `midway` once after the first half; returns the bytes and each piece's duration.
async fn read_in_pieces(
    f: fvfs_music::origin::FailoverFile,
    midway: impl FnOnce() + Send + 'static,
) -> (Vec<u8>, Vec<Duration>) {
    tokio::task::spawn_blocking(move || {
        let (mut out, mut took) = (Vec::new(), Vec::new());
        let mut midway = Some(midway);
        let mut off = 0;
        while off < f.len() {
            if off >= f.len() / 2 {
                if let Some(m) = midway.take() {
                    m();
                }
            }
            let t = Instant::now();
            let b = f.read_range(off, 65_536).expect("piece");
            took.push(t.elapsed());
            off += b.len() as u64;
            out.extend_from_slice(&b);
        }
        (out, took)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_mid_file_then_fast_failure_when_all_are_down() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = S3Server::start(da.path(), "music").await.unwrap();
    let b = S3Server::start(db.path(), "music").await.unwrap();
    fill(&da.path().join("music/main"));
    fill(&db.path().join("music/copy"));
    let set = OriginSet::open(&[s3_spec("b", &b, "copy", 2), s3_spec("a", &a, "main", 1)]).unwrap();
    let track = TREE[0].0;
    let cands = vec![
        ("b".to_string(), track.to_string()),
        ("a".to_string(), track.to_string()),
    ];
    let file = set.file(
        cands.clone(),
        TREE[0].1 as u64,
        tokio::runtime::Handle::current(),
    );

    // `a` (priority 1) serves until it stops halfway; `b` serves the rest.
    let rt = tokio::runtime::Handle::current();
    let a = std::sync::Arc::new(a);
    let a2 = a.clone();
    let (bytes, took) = read_in_pieces(file, move || rt.block_on(a2.stop())).await;
    assert_eq!(bytes, content(track), "byte-identical across the failover");
    let spent: Duration = RETRY_BACKOFF.iter().sum();
    let slow: Vec<_> = took.iter().filter(|d| **d >= spent).collect();
    assert_eq!(
        slow.len(),
        1,
        "one piece waits out the retries at a: {took:?}"
    );
    assert!(
        took.iter()
            .filter(|d| **d < spent)
            .all(|d| *d < Duration::from_secs(1)),
        "{took:?}"
    );
    assert_eq!(
        set.health_gauges(),
        [("b".to_string(), 1), ("a".to_string(), 0)]
    );
    let ha = set.health("a").unwrap();
    assert_eq!(ha.state, HealthState::Unhealthy);
    assert!(ha
        .last_error
        .unwrap()
        .starts_with("origin a is unavailable"));

    // `a` answers again, but until a check (or a read that reaches it) proves it, the
    // healthy `b` is preferred over it despite its priority.
    a.restart().await.unwrap();
    let got = set.read_range_any(&cands, 0, 10).await.unwrap();
    assert_eq!(got, content(track)[..10]);
    assert_eq!(
        set.health_gauges(),
        [("b".to_string(), 1), ("a".to_string(), 0)]
    );

    // Both down, both known down: one attempt each, no backoff.
    a.stop().await;
    b.stop().await;
    set.check_all().await;
    assert_eq!(
        set.health_gauges(),
        [("b".to_string(), 0), ("a".to_string(), 0)]
    );
    let t = Instant::now();
    let e = set.read_range_any(&cands, 0, 10).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let OriginError::AllFailed(errs) = &e else {
        panic!("{e}")
    };
    let ids: Vec<_> = errs
        .iter()
        .map(|e| match e {
            OriginError::Unavailable { origin, .. } => origin.as_str(),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(ids, ["a", "b"], "unhealthy ones in priority order");

    // Back up: the next check restores them and reads come from `a` again.
    a.restart().await.unwrap();
    b.restart().await.unwrap();
    assert!(set.check_all().await.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(
        set.health_gauges(),
        [("b".to_string(), 1), ("a".to_string(), 1)]
    );
    let got = set.read_range_any(&cands, 5, 20).await.unwrap();
    assert_eq!(got, content(track)[5..25]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_fails_over_at_once_and_leaves_health_alone() {
    let (dl, ds) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let srv = S3Server::start(ds.path(), "music").await.unwrap();
    fill(&ds.path().join("music/lib"));
    let local = dl.path().join("music");
    fill(&local);
    let line = format!("local={}?priority=1", url_of(&local));
    let set = OriginSet::open(&[
        OriginSpec::parse(&line).unwrap(),
        s3_spec("s3", &srv, "lib", 2),
    ])
    .unwrap();
    std::fs::remove_dir_all(&local).unwrap();
    let track = TREE[1].0;
    let t = Instant::now();
    let got = set
        .read_range_any(&[("local", track), ("s3", track)], 1000, 4096)
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(got, content(track)[1000..5096]);
    assert_eq!(
        set.health_gauges(),
        [("local".to_string(), 1), ("s3".to_string(), 1)]
    );
    // The check finds the root gone; a new tree brings it back.
    assert!(set.check("local").await.is_err());
    let h = set.health("local").unwrap();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(h.last_error.unwrap().contains("root"), "names the root");
    fill(&local);
    set.check("local").await.unwrap();
    assert_eq!(set.health("local").unwrap().state, HealthState::Healthy);

    let none: [(&str, &str); 0] = [];
    let e = set.read_range_any(&none, 0, 1).await.unwrap_err();
    assert!(matches!(e, OriginError::NoCandidate), "{e}");
    let e = set
        .read_range_any(&[("nope", track)], 0, 1)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "every origin failed: unknown origin \"nope\""
    );
}

fn url_of(p: &std::path::Path) -> String {
    format!("file://{}", p.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_flips_health_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let srv = S3Server::start(dir.path(), "music").await.unwrap();
    fill(&dir.path().join("music/lib"));
    let mut spec = s3_spec("s3", &srv, "lib", 1);
    spec.check_interval = Duration::from_millis(200);
    let set = OriginSet::open(&[spec]).unwrap();
    let workers = Workers::new();
    set.spawn_health_checks(&workers);
    let checked = |set: &OriginSet| set.health("s3").unwrap().last_check.is_some();
    assert!(eventually(Duration::from_secs(5), || checked(&set)).await);
    assert_eq!(set.health_gauges(), [("s3".to_string(), 1)]);

    srv.stop().await;
    let gauge = |set: &OriginSet| set.health_gauges()[0].1;
    assert!(eventually(Duration::from_secs(5), || gauge(&set) == 0).await);
    let h = set.health("s3").unwrap();
    assert!(h
        .last_error
        .unwrap()
        .starts_with("origin s3 is unavailable"));
    assert!(h.last_error_at.is_some());

    srv.restart().await.unwrap();
    assert!(eventually(Duration::from_secs(5), || gauge(&set) == 1).await);
    assert!(workers.shutdown(Duration::from_secs(2)).await);
    let statuses = workers.statuses();
    assert_eq!(statuses["origin-health-s3"].state, "stopped");
    assert_eq!(
        statuses["origin-health-s3"].errors, 0,
        "a failed check is health, not a worker error"
    );
}
