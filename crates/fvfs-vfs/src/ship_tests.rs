use super::*;

fn seg(index: u32, start: u64, end: u64, stamp: &str) -> Segment {
    Segment {
        key: log_key("g", index, start, end, stamp),
        index,
        start,
        end,
        stamp: stamp.into(),
    }
}

fn gen(id: &str, base: bool) -> Generation {
    Generation {
        id: id.into(),
        stamp: id.split_once('-').expect("id").0.into(),
        base: base.then(|| (base_key(id), 1)),
        log: vec![],
    }
}

#[test]
fn keys_round_trip() {
    let k = log_key("20261201T100000Z-0badf00d", 3, 32, 4152, "20261201T100005Z");
    assert_eq!(
        k,
        "meta/gen/20261201T100000Z-0badf00d/log-00000003-000000000020-000000001038-20261201T100005Z.wal.zst"
    );
    let s = parse_segment("20261201T100000Z-0badf00d", &k).expect("parse");
    assert_eq!((s.index, s.start, s.end), (3, 32, 4152));
    assert_eq!(s.stamp, "20261201T100005Z");
    assert!(parse_segment("20261201T100000Z-0badf00d", "meta/gen/x/base.db.zst").is_none());
}

#[test]
fn restorable_prefix_stops_at_gaps_and_times() {
    let mut g = gen("20261201T100000Z-a", true);
    g.log = vec![
        seg(0, 0, 100, "20261201T100001Z"),
        seg(0, 100, 200, "20261201T100002Z"),
        seg(1, 0, 50, "20261201T100003Z"),
        seg(1, 80, 90, "20261201T100004Z"),
    ];
    let (ok, gap) = g.restorable(None);
    assert_eq!(ok.len(), 3);
    assert_eq!(gap, Some((1, 50)));
    let (ok, gap) = g.restorable(Some("20261201T100002Z"));
    assert_eq!((ok.len(), gap), (2, None));
    // A log that does not start at 0 is a gap too.
    g.log = vec![seg(0, 32, 100, "20261201T100001Z")];
    assert_eq!(g.restorable(None), (vec![], Some((0, 0))));
}

#[test]
fn pruning_keeps_what_the_retention_needs() {
    let gens = vec![
        gen("20261101T000000Z-a", true),
        gen("20261120T000000Z-b", true),
        gen("20261125T000000Z-c", true),
        gen("20261126T000000Z-d", false),
        gen("20261130T000000Z-e", true),
    ];
    // Horizon 2026-11-24: b is needed (points from the 24th to c's base are in b).
    let d: Vec<&str> = doomed(&gens, "20261130T000000Z-e", "20261124T000000Z")
        .iter()
        .map(|g| g.id.as_str())
        .collect();
    assert_eq!(d, vec!["20261101T000000Z-a"]);
    // Nothing before the horizon: keep everything.
    assert!(doomed(&gens, "20261130T000000Z-e", "20261001T000000Z").is_empty());
}

#[tokio::test]
async fn shipped_generation_restores_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("meta.db");
    let meta = fvfs_meta::open(&format!("sqlite://{}", db.display()), true).expect("open");
    let root = dir.path().join("tier");
    std::fs::create_dir_all(&root).expect("tier dir");
    let tier = Tier::open_location(&root.display().to_string()).expect("tier");
    let cfg = ShipConfig {
        max_lag: Duration::from_secs(3600),
        ..ShipConfig::default()
    };
    let shipper = MetaShipper::new(meta.clone(), tier.clone(), dir.path().join("scratch"), cfg);
    assert!(!shipper.step(false).await.expect("first step"));
    for i in 0..50u64 {
        meta.bump_counter(&format!("c{i}"), i as i64).expect("bump");
    }
    // Not ripe yet (max_lag is an hour): taken, waiting.
    assert!(shipper.step(false).await.expect("step"));
    assert!(shipper.status().pending_bytes > 0);
    assert_eq!(
        shipper.flush(Duration::from_secs(10)).await.expect("flush"),
        0
    );
    let st = shipper.status();
    assert_eq!((st.pending_bytes, st.bases), (0, 1));
    assert!(st.segments >= 1 && st.shipped_bytes > 0);

    let gens = list_generations(&tier).await.expect("list");
    assert_eq!(gens.len(), 1);
    let g = &gens[0];
    let (segs, gap) = g.restorable(None);
    assert_eq!(gap, None);
    let base = tier
        .get_object(&g.base.as_ref().expect("base").0)
        .await
        .expect("base");
    let copy = dir.path().join("copy.db");
    std::fs::write(
        &copy,
        fvfs_chunk::decompress_bytes(&base, 1 << 30).expect("zstd"),
    )
    .expect("w");
    let mut log = Vec::new();
    for s in segs {
        let z = tier.get_object(&s.key).await.expect("segment");
        log.extend(fvfs_chunk::decompress_bytes(&z, 1 << 30).expect("zstd"));
    }
    fvfs_meta::sqlite::ship::apply_log(&copy, &log).expect("apply");
    let c = fvfs_meta::open(&format!("sqlite://{}", copy.display()), false).expect("copy");
    assert_eq!(
        c.counters().expect("counters"),
        meta.counters().expect("counters")
    );
    assert_eq!(c.counters().expect("counters").len(), 50);
    // No scratch file is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("scratch"))
        .expect("scratch")
        .collect();
    assert!(left.is_empty());
}
