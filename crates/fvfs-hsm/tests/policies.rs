//! The HSM face's policies end to end, on the fixture of `env/`: the durable request
//! queue (archive, release, recall, pin), the janitor's free-space trigger, and recall
//! storms (backup tools refused or queued, the recall rate bound). Root only (skips fail
//! under FVFS_REQUIRE_PRIVILEGED=1).

mod common;
mod env;

use env::{payload, sh, Env};
use fvfs_hsm::{BulkPolicy, HsmConfig, HsmError};
use fvfs_meta::HsmState;
use std::process::Command;
use std::time::Duration;

#[test]
fn queued_requests_archive_release_recall_and_pin() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let data = payload(2 << 20, 8);
    let p = env.file("q.bin", &data);
    let path = p.to_str().unwrap().as_bytes();
    let now = fvfs_vfs::now_ns();
    let a = env.meta.hsm_request("archive", path, now).unwrap();
    let bad = env.meta.hsm_request("explode", path, now).unwrap();
    assert_eq!(env.rt.block_on(env.hsm.serve_requests()).unwrap(), 2);
    let done = env.meta.hsm_request_get(a).unwrap().unwrap();
    assert!(
        done.ok && done.message.starts_with("archived (id "),
        "{done:?}"
    );
    let done = env.meta.hsm_request_get(bad).unwrap().unwrap();
    assert!(
        !done.ok && done.message.contains("unknown HSM operation"),
        "{done:?}"
    );
    env.flush();
    let r = env.meta.hsm_request("release", path, now).unwrap();
    env.rt.block_on(env.hsm.serve_requests()).unwrap();
    assert!(env.meta.hsm_request_get(r).unwrap().unwrap().ok);
    assert!(env.marker(&p).unwrap().released);
    // A whole recall through the listener (this process's own descriptor never writes).
    let msg = env.rt.block_on(env.hsm.execute("recall", &p)).unwrap();
    assert!(msg.ends_with(", whole)"), "{msg}");
    assert!(!env.marker(&p).unwrap().released);
    env.release(&p);
    // Pinning a stub recalls it whole; a pinned file is never released.
    env.rt.block_on(env.hsm.execute("pin", &p)).unwrap();
    assert!(!env.marker(&p).unwrap().released);
    let res = env.rt.block_on(env.hsm.release(&p));
    assert!(matches!(res, Err(HsmError::Pinned(_))), "{res:?}");
    env.rt.block_on(env.hsm.execute("unpin", &p)).unwrap();
    env.release(&p);
    assert_eq!(std::fs::read(&p).unwrap(), data);
}

#[test]
fn the_janitor_brings_usage_under_the_low_mark_oldest_first() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let day = 86_400u64;
    let now = std::time::SystemTime::now();
    let mut files = Vec::new();
    // Oldest first: file i was last touched 20 - i days ago. The oldest is a .txt, which
    // the policy's extensions leave alone.
    for i in 0..12u64 {
        let name = if i == 0 {
            "keep.txt".to_string()
        } else {
            format!("f{i:02}.bin")
        };
        let p = env.file(&name, &payload(12 << 20, 100 + i));
        let t = now - Duration::from_secs((20 - i) * day);
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
            .unwrap();
        f.sync_all().unwrap();
        files.push(p);
    }
    let young = env.file("young.bin", &payload(4 << 20, 99));
    let before = fvfs_hsm::usage_pct(&env.data).unwrap();
    assert!(before > 45.0, "{before}");
    let policy = fvfs_hsm::JanitorPolicy {
        high_pct: before - 5.0,
        low_pct: before - 25.0,
        min_atime_age: Duration::from_secs(day),
        min_mtime_age: Duration::from_secs(day),
        min_size: 1 << 20,
        extensions: vec!["bin".into()],
        bytes_per_sec: 0,
        ..fvfs_hsm::JanitorPolicy::default()
    };
    let run = env.rt.block_on(env.hsm.janitor_pass(&policy)).unwrap();
    let after = fvfs_hsm::usage_pct(&env.data).unwrap();
    assert!(after <= policy.low_pct, "{before} -> {after}: {run:?}");
    assert!(run.released >= 1, "{run:?}");
    // The janitor wrote its payloads straight to the durable tier (bit 1), not the hot
    // one (bit 0): a hot copy of what it releases would only be replicated and evicted.
    let rows = env.meta.hsm_list(Some(HsmState::Released)).unwrap();
    assert_eq!(rows.len(), run.released as usize);
    for f in &rows {
        for b in &f.blocks {
            let tiers = env.meta.get_block(&b.id).unwrap().unwrap().tiers;
            assert_eq!(tiers, 0b10, "{}", String::from_utf8_lossy(&f.path));
        }
    }
    // Exactly the oldest qualifying files went, in order; the .txt and the young file stayed.
    let released: Vec<bool> = files
        .iter()
        .map(|p| env.marker(p).is_some_and(|m| m.released))
        .collect();
    assert!(!released[0], "excluded by extension");
    let n = run.released as usize;
    assert_eq!(
        released[1..],
        [vec![true; n], vec![false; 11 - n]].concat()[..]
    );
    assert!(env.marker(&young).is_none(), "too young");
    // And they still read back.
    assert_eq!(std::fs::read(&files[1]).unwrap(), payload(12 << 20, 101));
    // Under the high mark: a pass does nothing.
    let idle = env.rt.block_on(env.hsm.janitor_pass(&policy)).unwrap();
    assert_eq!(idle.released, 0);
}

#[test]
fn backup_tools_are_refused_or_queued_and_the_recall_rate_is_bounded() {
    let cfg = HsmConfig {
        bulk_commands: vec!["cat".into()],
        bulk_policy: BulkPolicy::Refuse,
        recall_bytes_per_sec: 2 << 20,
        ..HsmConfig::default()
    };
    let Some(env) = Env::with_config(256, true, cfg) else {
        return;
    };
    let data = payload(16 << 20, 9);
    let p = env.file("storm.bin", &data);
    let id = env.stub(&p);
    // A "backup tool" is refused at open; metadata stays free.
    let out = Command::new("cat").arg(&p).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Resource temporarily unavailable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&p).unwrap().len(), data.len() as u64);
    assert_eq!(env.recalled_bytes(), 0);
    // Any other process reads it, at 2 MiB/s at most. Recalls fetch up to 8 blocks at a
    // time, each booking its bytes: everything but the last 8 blocks waits for the rate.
    let lens: Vec<u64> = env
        .meta
        .hsm_get(id)
        .unwrap()
        .unwrap()
        .blocks
        .iter()
        .map(|b| b.len as u64)
        .collect();
    let widest = lens
        .windows(8.min(lens.len()))
        .map(|w| w.iter().sum::<u64>())
        .max()
        .unwrap();
    let lower = (data.len() as u64 - widest) as f64 / (2 << 20) as f64;
    assert!(lower >= 1.0, "{lens:?}");
    let t = std::time::Instant::now();
    assert!(std::fs::read(&p).unwrap() == data);
    assert!(
        t.elapsed().as_secs_f64() >= lower * 0.95,
        "{:?} < {lower} s",
        t.elapsed()
    );

    // Queued: the tool gets the whole file before its open returns.
    let cfg = HsmConfig {
        bulk_commands: vec!["cat".into()],
        bulk_policy: BulkPolicy::Queue,
        ..HsmConfig::default()
    };
    let Some(env) = Env::with_config(256, true, cfg) else {
        return;
    };
    let p = env.file("queued.bin", &data);
    env.stub(&p);
    assert!(sh("cat", &[p.to_str().unwrap()]).stdout == data);
    assert_eq!(env.recalled_bytes(), data.len() as u64);
    assert!(!env.marker(&p).unwrap().released, "recalled whole at open");
}
