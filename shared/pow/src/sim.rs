//! A simulator of mining under the difficulty rule, for tests and `qoin-bench
//! difficulty-sim`. It uses floating point and is never part of consensus.

use crate::{next_difficulty, AsertAnchor};

/// splitmix64: a small deterministic generator, so simulations repeat exactly.
#[derive(Debug, Clone)]
pub struct SimRng(pub u64);

impl SimRng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Mines `blocks` blocks after the anchor with `hashrate(height)` candidates per millisecond;
/// each block's time is exponential with mean `2^m · f / hashrate` (at least 1 ms), and the
/// difficulty follows [`next_difficulty`]. Returns the block times in milliseconds.
pub fn simulate(anchor: &AsertAnchor, blocks: usize, seed: u64, hashrate: impl Fn(usize) -> f64) -> Vec<f64> {
    let mut rng = SimRng(seed);
    let mut t = anchor.timestamp_ms;
    let mut times = Vec::with_capacity(blocks);
    for height in 0..blocks {
        let d = next_difficulty(anchor, anchor.height + height as u64, t);
        let expected = d.log2_work().exp2() / hashrate(height);
        let dt = (-expected * (1.0 - rng.unit()).ln()).max(1.0).floor();
        t += dt as u64;
        times.push(dt);
    }
    times
}
