//! Continuous difficulty: `m` equations (work `2^m`) times a fraction `f ∈ [1, 2)` enforced by
//! a hash target on the solution.

use alloy_primitives::{B256, U256};

/// Fewest equations a puzzle may have.
pub const M_MIN: u32 = 8;
/// Most equations a puzzle may have (equation words fit 64 bits).
pub const M_MAX: u32 = 64;
/// Variables beyond the equation count: `n = m + 8`, so a random system has about 256
/// solutions and is almost never unsolvable (probability about `e^-256`).
pub const N_EXTRA: u32 = 8;

/// Why a compact difficulty is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DifficultyError {
    /// Bits set outside the `m` and mantissa fields.
    #[error("difficulty {0:#018x} has bits set outside its m and mantissa fields")]
    Reserved(u64),
    /// `m` outside `[M_MIN, M_MAX]`.
    #[error("difficulty has m = {0} equations, outside {M_MIN}..={M_MAX}")]
    EquationsOutOfRange(u32),
}

/// A difficulty `D = 2^m · f` with `f = 1 + mantissa / 2^32`.
///
/// Compact form (the header's `difficulty` field, a `u64`): bits 32–39 hold `m`, bits 0–31
/// the mantissa, bits 40–63 are zero. A solution must satisfy all `m` equations **and** have
/// a hash `h` with `top64(h) · (2^32 + mantissa) < 2^96`, which happens with probability
/// `1/f`; the expected number of candidates a miner tests is therefore `2^m · f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Difficulty {
    m: u32,
    mantissa: u32,
}

impl Difficulty {
    /// Builds a difficulty, checking the range of `m`.
    pub fn new(m: u32, mantissa: u32) -> Result<Self, DifficultyError> {
        if !(M_MIN..=M_MAX).contains(&m) {
            return Err(DifficultyError::EquationsOutOfRange(m));
        }
        Ok(Self { m, mantissa })
    }

    /// The smallest difficulty.
    pub const MIN: Self = Self { m: M_MIN, mantissa: 0 };
    /// The largest difficulty.
    pub const MAX: Self = Self { m: M_MAX, mantissa: u32::MAX };

    /// Decodes the header's compact form.
    pub fn from_compact(c: u64) -> Result<Self, DifficultyError> {
        if c >> 40 != 0 {
            return Err(DifficultyError::Reserved(c));
        }
        Self::new(((c >> 32) & 0xff) as u32, c as u32)
    }

    /// The compact form.
    pub fn to_compact(self) -> u64 {
        (u64::from(self.m) << 32) | u64::from(self.mantissa)
    }

    /// Number of equations `m`.
    pub fn m(self) -> u32 {
        self.m
    }

    /// Number of variables `n = m + 8`.
    pub fn n(self) -> u32 {
        self.m + N_EXTRA
    }

    /// The mantissa (`f = 1 + mantissa / 2^32`).
    pub fn mantissa(self) -> u32 {
        self.mantissa
    }

    /// Expected candidates per solution found, in units of `2^-32` candidates:
    /// `(2^32 + mantissa) · 2^m`. Fork choice sums these exactly.
    pub fn work(self) -> U256 {
        U256::from((1u64 << 32) + u64::from(self.mantissa)) << (self.m as usize)
    }

    /// `log2(2^m · f)`, for display and simulation only (never in consensus).
    pub fn log2_work(self) -> f64 {
        f64::from(self.m) + (1.0 + f64::from(self.mantissa) / 4_294_967_296.0).log2()
    }

    /// Whether a solution's hash meets the fractional target: `top64(h) · (2^32 + mantissa)
    /// < 2^96`, where `top64` reads the first 8 bytes big-endian.
    pub fn accepts(self, solution_hash: &B256) -> bool {
        let mut top = [0u8; 8];
        top.copy_from_slice(&solution_hash[..8]);
        let t = u128::from(u64::from_be_bytes(top));
        t * ((1u128 << 32) + u128::from(self.mantissa)) < (1u128 << 96)
    }
}

impl std::fmt::Display for Difficulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "2^{:.3} (m={}, mantissa={:#010x})", self.log2_work(), self.m, self.mantissa)
    }
}
