//! Difficulty adjustment and timestamp rules.
//!
//! The rule is Bitcoin Cash's aserti3-2d moved to difficulty: every block's difficulty is
//! the anchor's, scaled by `2^((ideal - actual) / half_life)`, where `ideal` is how long the
//! chain *should* have taken from the anchor to the parent at the target block time and
//! `actual` is how long it took. Being absolutely scheduled, errors never accumulate. All
//! arithmetic is integer; `2^x` for the fractional part uses aserti3-2d's cubic.

use crate::{Difficulty, M_MAX, M_MIN};

/// Largest amount a block's timestamp may be ahead of the validating node's clock.
pub const MAX_FUTURE_DRIFT_MS: u64 = 15_000;

/// The fixed point the schedule is measured from: the genesis block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsertAnchor {
    /// Height of the anchor (0 for genesis).
    pub height: u64,
    /// The anchor's timestamp in milliseconds.
    pub timestamp_ms: u64,
    /// The difficulty of the block right after the anchor.
    pub difficulty: Difficulty,
    /// Target block time in milliseconds.
    pub target_block_time_ms: u64,
    /// Half-life of the adjustment in milliseconds.
    pub half_life_ms: u64,
}

/// The difficulty required of the child of a parent at `parent_height` with timestamp
/// `parent_timestamp_ms`.
///
/// ```text
/// exponent = ((T · (h_p − h_a) − (t_p − t_a)) · 2^16) / half_life        (floor, 16.16 fixed)
/// shifts, frac = exponent >> 16, exponent & 0xffff
/// factor = 2^16 + ((195766423245049·frac + 971821376·frac² + 5127·frac³ + 2^47) >> 48)
/// F = (2^32 + mantissa_a) · factor;  if F ≥ 2^49 { F >>= 1; shifts += 1 }
/// m = m_a + shifts,  mantissa = (F >> 16) − 2^32,  clamped to [MIN, MAX]
/// ```
pub fn next_difficulty(anchor: &AsertAnchor, parent_height: u64, parent_timestamp_ms: u64) -> Difficulty {
    let ideal =
        i128::from(anchor.target_block_time_ms) * (i128::from(parent_height) - i128::from(anchor.height));
    let actual = i128::from(parent_timestamp_ms) - i128::from(anchor.timestamp_ms);
    let half_life = i128::from(anchor.half_life_ms.max(1));
    let exponent = ((ideal - actual) * 65_536).div_euclid(half_life);
    let mut shifts = exponent >> 16;
    let frac = (exponent & 0xffff) as u128;
    let factor = 65_536
        + ((195_766_423_245_049u128 * frac
            + 971_821_376 * frac * frac
            + 5_127 * frac * frac * frac
            + (1 << 47))
            >> 48);
    let mut f = ((1u128 << 32) + u128::from(anchor.difficulty.mantissa())) * factor;
    if f >= 1u128 << 49 {
        f >>= 1;
        shifts += 1;
    }
    let m = i128::from(anchor.difficulty.m()) + shifts;
    if m < i128::from(M_MIN) {
        return Difficulty::MIN;
    }
    if m > i128::from(M_MAX) {
        return Difficulty::MAX;
    }
    let mantissa = ((f >> 16) - (1u128 << 32)) as u32;
    // In range by the checks above.
    Difficulty::new(m as u32, mantissa).unwrap_or(Difficulty::MIN)
}

/// Why a timestamp is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not after the parent's timestamp.
    #[error("timestamp {time_ms} is not after the parent's {parent_ms}")]
    NotAfterParent {
        /// The block's timestamp.
        time_ms: u64,
        /// The parent's timestamp.
        parent_ms: u64,
    },
    /// Too far ahead of the local clock.
    #[error("timestamp {time_ms} is more than {MAX_FUTURE_DRIFT_MS} ms ahead of local time {now_ms}")]
    InFuture {
        /// The block's timestamp.
        time_ms: u64,
        /// The local clock.
        now_ms: u64,
    },
}

/// A block's timestamp must be strictly after its parent's and at most
/// [`MAX_FUTURE_DRIFT_MS`] ahead of the validating node's clock.
pub fn check_timestamp(parent_ms: u64, time_ms: u64, now_ms: u64) -> Result<(), TimeError> {
    if time_ms <= parent_ms {
        return Err(TimeError::NotAfterParent { time_ms, parent_ms });
    }
    if time_ms > now_ms.saturating_add(MAX_FUTURE_DRIFT_MS) {
        return Err(TimeError::InFuture { time_ms, now_ms });
    }
    Ok(())
}
