//! Unit tests of the adapter's conversions and reply flags.
use super::*;

#[test]
fn times_round_trip_around_the_epoch() {
    for ns in [0i64, 1, -1, 1_700_000_000_123_456_789, -86_400_000_000_001] {
        assert_eq!(time_ns(system_time(ns)), ns);
    }
}

#[test]
fn open_reply_flags() {
    let o = Opened {
        fh: 3,
        keep_cache: true,
        direct_io: false,
        cache_dir: false,
        stale: false,
    };
    assert_eq!(fopen(&o), FopenFlags::FOPEN_KEEP_CACHE);
    let d = Opened {
        cache_dir: true,
        ..o
    };
    assert_eq!(
        fopen(&d),
        FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR
    );
    assert_eq!(fopen(&Opened::default()), FopenFlags::empty());
}
