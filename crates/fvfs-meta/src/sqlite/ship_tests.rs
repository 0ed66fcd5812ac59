use super::*;
use crate::prelude::*;
use crate::sql::tests::{file, sqlite_store as store};
use crate::sqlite::SqliteStore;
use fvfs_types::ROOT_INO;

/// Every row of every table, in a stable order: two databases with equal dumps hold the
/// same metadata.
fn dump(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).expect("open dump");
    let tables: Vec<String> = {
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .expect("tables");
        let rows = st.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<rusqlite::Result<_>>().expect("names")
    };
    let mut out = Vec::new();
    for t in tables {
        let mut st = conn
            .prepare(&format!("SELECT * FROM \"{t}\""))
            .expect("select");
        let n = st.column_count();
        let mut rows: Vec<String> = st
            .query_map([], |r| {
                let cols: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).map(|v| v.data_type())))
                    .zip(
                        (0..n).map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).ok())),
                    )
                    .map(|(a, b)| format!("{a}{b}"))
                    .collect();
                Ok(format!("{t}: {}", cols.join("|")))
            })
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("collect");
        rows.sort();
        out.extend(rows);
    }
    out
}

/// Copies `base` to `dest` and applies the shipped frames to it, log by log.
fn rebuild(base: &Path, dest: &Path, frames: &[LogFrames]) {
    std::fs::copy(base, dest).expect("copy base");
    let mut i = 0;
    while i < frames.len() {
        let index = frames[i].index;
        let mut log = Vec::new();
        let mut end = 0;
        while i < frames.len() && frames[i].index == index {
            assert_eq!(frames[i].start, end, "frames of log {index} are contiguous");
            log.extend_from_slice(&frames[i].bytes);
            end = frames[i].end;
            i += 1;
        }
        let applied = apply_log(dest, &log).expect("apply");
        assert_eq!(Some(applied), log_frames(&log), "every frame applied");
    }
}

#[test]
fn shipped_frames_rebuild_the_database_at_every_take() {
    let (dir, s) = store();
    s.create(ROOT_INO, b"before", &file()).expect("create");
    let base = dir.path().join("base.db");
    assert_eq!(s.begin_log_shipping(&base).expect("begin"), Some(4096));
    assert!(s.begin_log_shipping(&base).is_err(), "no overwrite");

    let mut frames = Vec::new();
    let mut cuts = Vec::new(); // (frames so far, files so far)
    let value = vec![7u8; 3000];
    for i in 0..2500u32 {
        let name = format!("f{i:05}");
        let a = s
            .create(ROOT_INO, name.as_bytes(), &file())
            .expect("create");
        // Fatter transactions: the log passes the checkpoint size several times.
        s.set_xattr(a.ino, b"user.v", &value, crate::types::XattrMode::Any, 3)
            .expect("xattr");
        if i % 300 == 299 {
            frames.extend(s.take_log().expect("take"));
            cuts.push((frames.len(), i as usize + 1));
        }
    }
    frames.extend(s.take_log().expect("take"));
    cuts.push((frames.len(), 2500));
    assert!(
        frames.iter().map(|f| f.index).max() >= Some(2),
        "the log restarted at least twice: {:?}",
        frames
            .iter()
            .map(|f| (f.index, f.start, f.end))
            .collect::<Vec<_>>()
    );
    assert!(s.take_log().expect("take").is_empty(), "nothing new");

    // The whole log on the base is the live database.
    let live = dir.path().join("live.db");
    s.snapshot(&live).expect("snapshot");
    let rebuilt = dir.path().join("rebuilt.db");
    rebuild(&base, &rebuilt, &frames);
    assert_eq!(dump(&rebuilt), dump(&live));

    // Any prefix is the database as it was at that take.
    for &(n, files) in &cuts[..3] {
        let at = dir.path().join(format!("at-{n}.db"));
        rebuild(&base, &at, &frames[..n]);
        let r = SqliteStore::open(&at, false).expect("open prefix");
        let names = r.readdir(ROOT_INO, 0, 100_000).expect("readdir");
        assert_eq!(names.len(), files + 1, "{files} files and 'before'");
        assert!(r.lookup(ROOT_INO, b"before").is_ok());
    }
}

#[test]
fn a_checkpoint_this_store_did_not_make_is_a_gap() {
    let (dir, s) = store();
    s.begin_log_shipping(&dir.path().join("base.db"))
        .expect("begin");
    s.create(ROOT_INO, b"a", &file()).expect("create");
    assert_eq!(s.take_log().expect("take").len(), 1);
    s.create(ROOT_INO, b"b", &file()).expect("create");
    // Another connection (as another process would) checkpoints and restarts the log.
    let other = Connection::open(dir.path().join("meta.db")).expect("open");
    let (busy, _, _) = checkpoint(&other, "TRUNCATE").expect("checkpoint");
    assert_eq!(busy, 0);
    s.create(ROOT_INO, b"c", &file()).expect("create");
    match s.take_log() {
        Err(MetaError::LogGap(_)) => {}
        other => panic!("expected a gap, got {other:?}"),
    }
    // A new generation ships again.
    s.begin_log_shipping(&dir.path().join("base2.db"))
        .expect("begin again");
    s.create(ROOT_INO, b"d", &file()).expect("create");
    let f = s.take_log().expect("take");
    assert_eq!((f.len(), f[0].index, f[0].start), (1, 0, 0));
}

#[test]
fn wal_checksums_follow_sqlite() {
    // A header SQLite wrote verifies; one flipped bit does not.
    let (dir, s) = store();
    s.begin_log_shipping(&dir.path().join("base.db"))
        .expect("begin");
    s.create(ROOT_INO, b"a", &file()).expect("create");
    let f = s.take_log().expect("take");
    let mut log = f[0].bytes.clone();
    assert!(parse_header(&log[..32]).is_some());
    assert_eq!(log_frames(&log), Some(((log.len() - 32) / 4120) as u64));
    log[20] ^= 1;
    assert!(parse_header(&log[..32]).is_none());
}

/// Frames merged into batches (one segment per take, across the store's log restarts,
/// in shipped logs that roll over) rebuild the same database as the raw frames, at every
/// segment boundary, and are much smaller when commits rewrite the same pages.
#[test]
fn merged_batches_rebuild_the_same_database_in_fewer_bytes() {
    use crate::sqlite::ship_batch::ShipLog;
    let (dir, s) = store();
    let base = dir.path().join("base.db");
    s.begin_log_shipping(&base).expect("begin");
    let mut log: Option<ShipLog> = None;
    let mut segments: Vec<LogFrames> = Vec::new();
    let mut raw = 0u64;
    let mut local_logs = std::collections::BTreeSet::new();
    let mut cuts = Vec::new();
    let mut ship = |log: &mut Option<ShipLog>, segments: &mut Vec<LogFrames>| {
        for f in s.take_log().expect("take") {
            raw += f.bytes.len() as u64;
            local_logs.insert(f.index);
            let l = log.get_or_insert_with(|| {
                ShipLog::new(0, ShipLog::page_size_of(&f).expect("page size"), 7)
            });
            l.absorb(&f).expect("absorb");
        }
        let l = log.as_mut().expect("a log");
        if l.is_empty() {
            return;
        }
        let sealed = l.seal();
        segments.push(LogFrames {
            index: sealed.index,
            start: sealed.start,
            end: sealed.end,
            bytes: sealed.bytes.clone(),
        });
        l.shipped(&sealed);
        // Roll over often, as a long-lived mount does at 64 MiB.
        if segments.len().is_multiple_of(3) {
            *log = Some(l.roll(11 + segments.len() as u32));
        }
    };
    for i in 0..3000u32 {
        let a = s
            .create(ROOT_INO, format!("f{i:05}").as_bytes(), &file())
            .expect("create");
        if i % 2 == 1 {
            s.unlink(ROOT_INO, format!("f{:05}", i - 1).as_bytes(), 4, false)
                .expect("unlink");
            s.purge_inode(a.ino - 1).expect("purge");
        }
        if i % 400 == 399 {
            ship(&mut log, &mut segments);
            cuts.push((segments.len(), (i as usize).div_ceil(2)));
        }
    }
    ship(&mut log, &mut segments);
    assert!(
        local_logs.len() >= 3,
        "the store's log restarted: {local_logs:?}"
    );
    assert!(
        segments.iter().map(|f| f.index).max() >= Some(2),
        "shipped logs rolled"
    );
    let merged: u64 = segments.iter().map(|f| f.bytes.len() as u64).sum();
    assert!(
        merged * 4 < raw,
        "merging should shrink a hot log: {merged} of {raw} bytes"
    );
    let live = dir.path().join("live.db");
    s.snapshot(&live).expect("snapshot");
    let rebuilt = dir.path().join("rebuilt.db");
    rebuild(&base, &rebuilt, &segments);
    assert_eq!(dump(&rebuilt), dump(&live));
    for &(n, files) in &cuts[..4] {
        let at = dir.path().join(format!("at-{n}.db"));
        rebuild(&base, &at, &segments[..n]);
        let r = SqliteStore::open(&at, false).expect("open prefix");
        let names = r.readdir(ROOT_INO, 0, 100_000).expect("readdir");
        assert_eq!(names.len(), files, "at segment {n}");
    }
}

/// A burst of commits with no take for a while: the writer stops moving frames aside
/// past `MAX_QUEUED` (the log grows on disk instead), and takes of at most `MAX_TAKE`
/// each then hand out everything, in order.
#[test]
fn a_long_burst_without_takes_stays_bounded_in_memory_and_loses_nothing() {
    let (dir, s) = store();
    let base = dir.path().join("base.db");
    s.begin_log_shipping(&base).expect("begin");
    let value = vec![9u8; 3500];
    for i in 0..6000u32 {
        let a = s
            .create(ROOT_INO, format!("b{i:05}").as_bytes(), &file())
            .expect("create");
        s.set_xattr(a.ino, b"user.v", &value, crate::types::XattrMode::Any, 3)
            .expect("xattr");
    }
    let queued: u64 = s
        .engine()
        .tap
        .state
        .lock()
        .queued
        .iter()
        .map(|f| f.bytes.len() as u64)
        .sum();
    assert!(
        queued < MAX_QUEUED + (8 << 20),
        "frames held in memory: {queued}"
    );
    let wal = std::fs::metadata(s.engine().wal_path()).expect("wal").len();
    assert!(wal > 4 << 20, "the log grew on disk instead: {wal}");
    // One bounded take, then more commits: their checkpoints must not restart the log
    // over frames not taken yet.
    let mut frames = s.take_log().expect("first take");
    for i in 0..3000u32 {
        let a = s
            .create(ROOT_INO, format!("c{i:05}").as_bytes(), &file())
            .expect("create");
        s.set_xattr(a.ino, b"user.v", &value, crate::types::XattrMode::Any, 3)
            .expect("xattr");
    }
    let mut takes = 1;
    loop {
        let got = s.take_log().expect("take");
        takes += 1;
        assert!(got
            .iter()
            .all(|f| f.bytes.len() as u64 <= MAX_TAKE + 4096 + 24));
        if got.is_empty() {
            break;
        }
        frames.extend(got);
        assert!(takes < 1000, "takes end");
    }
    assert!(takes > 2, "several bounded takes: {takes}");
    let live = dir.path().join("live.db");
    s.snapshot(&live).expect("snapshot");
    let rebuilt = dir.path().join("rebuilt.db");
    rebuild(&base, &rebuilt, &frames);
    assert_eq!(dump(&rebuilt), dump(&live));
}
