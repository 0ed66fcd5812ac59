//! Test data: incompressible bytes that the same seed always gives again (xorshift), so a
//! test can write a payload, drop it, and compare with it later.

/// `len` pseudo-random bytes; distinct seeds give distinct streams.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
