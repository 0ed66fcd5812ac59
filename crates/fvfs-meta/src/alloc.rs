//! How much of a file is stored data, for `st_blocks`: holes (never-written ranges,
//! truncate-extended ranges, punched or truncated-away ranges) are excluded.
//!
//! A chunk's allocated size is the number of bytes of the [`ALLOC_UNIT`] grid (4 KiB, as
//! ext4's blocks) that the chunk's *visible data* touches: the newest-wins overlay of its
//! slices, where a zero slice hides what lies below it. Chunks are multiples of the grid,
//! so a file's allocation is the sum over its chunks.

/// The grid on which allocation is counted (ext4's block size).
pub const ALLOC_UNIT: u64 = 4096;

/// Allocated bytes of one chunk from its slices `(pos, len, zero)`, oldest first.
pub fn chunk_alloc(slices: &[(u64, u64, bool)]) -> u64 {
    // Walk newest to oldest; `covered` holds what newer slices already decided (sorted,
    // disjoint), `data` the visible parts of data slices.
    let mut covered: Vec<(u64, u64)> = Vec::new();
    let mut data: Vec<(u64, u64)> = Vec::new();
    for &(pos, len, zero) in slices.iter().rev() {
        let (lo, hi) = (pos, pos + len);
        if lo >= hi {
            continue;
        }
        let mut cur = lo;
        for &(s, e) in &covered {
            if e <= cur {
                continue;
            }
            if s >= hi {
                break;
            }
            if s > cur && !zero {
                data.push((cur, s));
            }
            cur = cur.max(e);
            if cur >= hi {
                break;
            }
        }
        if cur < hi && !zero {
            data.push((cur, hi));
        }
        covered.push((lo, hi));
        covered.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(covered.len());
        for (s, e) in covered {
            match merged.last_mut() {
                Some(m) if s <= m.1 => m.1 = m.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        covered = merged;
    }
    // Round each data run out to the grid, merge, and measure.
    let mut units: Vec<(u64, u64)> = data
        .into_iter()
        .map(|(s, e)| {
            (
                s / ALLOC_UNIT * ALLOC_UNIT,
                e.div_ceil(ALLOC_UNIT) * ALLOC_UNIT,
            )
        })
        .collect();
    units.sort_unstable();
    let mut total = 0;
    let mut run: Option<(u64, u64)> = None;
    for (s, e) in units {
        run = match run {
            Some((rs, re)) if s <= re => Some((rs, re.max(e))),
            Some((rs, re)) => {
                total += re - rs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((rs, re)) = run {
        total += re - rs;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;

    #[test]
    fn overlay_and_grid() {
        assert_eq!(chunk_alloc(&[]), 0);
        // One aligned MiB of data.
        assert_eq!(chunk_alloc(&[(0, 1 << 20, false)]), 1 << 20);
        // One byte takes a unit; a run across a unit boundary takes both.
        assert_eq!(chunk_alloc(&[(5, 1, false)]), 4 * K);
        assert_eq!(chunk_alloc(&[(4 * K - 1, 2, false)]), 8 * K);
        // Two runs in one unit count it once.
        assert_eq!(chunk_alloc(&[(0, 10, false), (100, 10, false)]), 4 * K);
        // A zero slice (punch, truncate) hides the data under it...
        assert_eq!(
            chunk_alloc(&[(0, 64 * K, false), (8 * K, 16 * K, true)]),
            48 * K
        );
        // ...but not data written after it.
        assert_eq!(
            chunk_alloc(&[
                (0, 64 * K, false),
                (8 * K, 16 * K, true),
                (8 * K, 4 * K, false)
            ]),
            52 * K
        );
        // A zero slice over nothing, or alone, allocates nothing.
        assert_eq!(chunk_alloc(&[(0, 1 << 20, true)]), 0);
        // An unaligned hole inside data keeps the partial units at its edges.
        assert_eq!(
            chunk_alloc(&[(0, 64 * K, false), (K, 10 * K, true)]),
            64 * K - 4 * K
        );
        // Overwrites of the same range count once.
        assert_eq!(
            chunk_alloc(&[(0, 8 * K, false), (0, 8 * K, false), (4 * K, 8 * K, false)]),
            12 * K
        );
    }
}
