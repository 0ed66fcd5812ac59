//! Content-defined cutting of a byte stream into blocks (FastCDC v2020).
//!
//! Invariants:
//! - cutting is a pure function of the bytes: cutting a stream piece by piece with
//!   [`cut`] (`eof = false`, keeping the uncut tail, then `eof = true` at the end)
//!   yields exactly the cut points of cutting the whole stream at once;
//! - with `eof = true` the lengths cover every byte; every block except the last is
//!   at least `min` bytes and every block is at most `max` bytes;
//! - parameters outside FastCDC's limits are clamped, never a panic.
//!
//! Determinism rests on one rule: while more data may follow, a block is only cut
//! when at least `max` bytes are available from its start. FastCDC never looks
//! beyond `max` bytes, so the decision cannot change when more data arrives.

use fastcdc::v2020::{
    FastCDC, AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
};
use fvfs_types::CdcParams;

/// FastCDC sizes actually used for `p`: clamped to FastCDC's limits, even (FastCDC
/// scans in byte pairs), and ordered `min <= avg <= max`.
pub fn effective_params(p: &CdcParams) -> (usize, usize, usize) {
    let even = |v: usize| v & !1;
    let max = even((p.max as usize).clamp(MAXIMUM_MIN, MAXIMUM_MAX));
    let avg = even((p.avg as usize).clamp(AVERAGE_MIN, AVERAGE_MAX.min(max)));
    let min = even((p.min as usize).clamp(MINIMUM_MIN, MINIMUM_MAX.min(avg)));
    (min, avg, max)
}

/// Lengths of consecutive blocks starting at `data[0]`.
///
/// When `eof` is false the trailing bytes that might still belong to a longer block
/// are not returned: the caller keeps `data[sum(lengths)..]`, appends new data and
/// cuts again. When `eof` is true every byte is covered (data shorter than `min`
/// makes one block). Empty data gives no block.
pub fn cut(data: &[u8], p: &CdcParams, eof: bool) -> Vec<usize> {
    let (min, avg, max) = effective_params(p);
    let mut out = Vec::with_capacity(data.len() / avg + 1);
    if data.is_empty() {
        return out;
    }
    let chunker = FastCDC::new(data, min, avg, max);
    let mut start = 0usize;
    while start < data.len() {
        let rest = data.len() - start;
        if !eof && rest < max {
            break;
        }
        let (_, end) = chunker.cut(start, rest);
        // FastCDC always advances; guard anyway so a bug cannot loop forever.
        let end = if end <= start { data.len() } else { end };
        out.push(end - start);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};
    use std::collections::HashSet;

    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; n];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    fn small() -> CdcParams {
        CdcParams {
            min: 2 << 10,
            avg: 8 << 10,
            max: 32 << 10,
        }
    }

    /// Feeds `data` in pieces of random sizes, as a writer would.
    fn cut_streaming(
        data: &[u8],
        p: &CdcParams,
        rng: &mut impl Rng,
        max_piece: usize,
    ) -> Vec<usize> {
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let n = rng.random_range(1..=max_piece).min(data.len() - pos);
            buf.extend_from_slice(&data[pos..pos + n]);
            pos += n;
            let lens = cut(&buf, p, false);
            let used: usize = lens.iter().sum();
            out.extend(lens);
            buf.drain(..used);
        }
        out.extend(cut(&buf, p, true));
        out
    }

    #[test]
    fn edge_cases() {
        let p = CdcParams::default();
        assert!(cut(&[], &p, true).is_empty());
        assert!(cut(&[], &p, false).is_empty());
        assert_eq!(cut(&[1, 2, 3], &p, true), vec![3]);
        assert!(cut(&[1, 2, 3], &p, false).is_empty());
        let zeros = vec![0u8; (9 << 20) + 5];
        let lens = cut(&zeros, &p, true);
        assert_eq!(lens.iter().sum::<usize>(), zeros.len());
        assert!(lens.iter().all(|&l| l <= 4 << 20));
        // Absurd parameters are clamped, not a panic.
        let weird = CdcParams {
            min: 1,
            avg: 3,
            max: 7,
        };
        assert_eq!(
            cut(&random(10_000, 1), &weird, true).iter().sum::<usize>(),
            10_000
        );
        assert_eq!(effective_params(&weird), (64, 256, 1024));
    }

    #[test]
    fn covers_and_respects_bounds() {
        let p = small();
        let data = random(1 << 20, 2);
        let lens = cut(&data, &p, true);
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        let (min, _, max) = effective_params(&p);
        for (i, &l) in lens.iter().enumerate() {
            assert!(l <= max);
            assert!(l >= min || i == lens.len() - 1);
        }
        assert!(lens.len() > 60 && lens.len() < 250, "{}", lens.len());
    }

    #[test]
    fn streaming_equals_whole() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for round in 0..40u64 {
            let p = small();
            let len = rng.random_range(0..400_000);
            // Mix random and repetitive regions (repetition triggers max-size cuts).
            let mut data = random(len, round);
            if len > 100_000 {
                data[20_000..90_000].fill(7);
            }
            let whole = cut(&data, &p, true);
            let max_piece = [1usize, 100, 5_000, 70_000, 500_000][round as usize % 5];
            let max_piece = if max_piece == 1 && len > 50_000 {
                333
            } else {
                max_piece
            };
            let streamed = cut_streaming(&data, &p, &mut rng, max_piece);
            assert_eq!(whole, streamed, "round {round} len {len}");
        }
    }

    #[test]
    fn streaming_equals_whole_default_params() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let data = random(20 << 20, 5);
        let p = CdcParams::default();
        let whole = cut(&data, &p, true);
        assert_eq!(cut_streaming(&data, &p, &mut rng, 3 << 20), whole);
        assert_eq!(cut_streaming(&data, &p, &mut rng, 128 << 10), whole);
    }

    #[test]
    fn insert_at_front_is_stable() {
        let p = CdcParams::default();
        let data = random(16 << 20, 6);
        let mut shifted = vec![0x5a];
        shifted.extend_from_slice(&data);
        let blocks = |d: &[u8]| -> Vec<blake3::Hash> {
            let mut off = 0;
            cut(d, &p, true)
                .into_iter()
                .map(|l| {
                    let h = blake3::hash(&d[off..off + l]);
                    off += l;
                    h
                })
                .collect()
        };
        let a = blocks(&data);
        let b = blocks(&shifted);
        let before: HashSet<_> = a.iter().collect();
        let changed = b.iter().filter(|h| !before.contains(h)).count();
        assert!(a.len() >= 8, "{} blocks", a.len());
        assert!(
            changed * 10 < b.len(),
            "{changed} of {} blocks changed",
            b.len()
        );
    }
}
