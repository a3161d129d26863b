//! The MQ system: `m` quadratic equations in `n` variables over GF(2), bit-sliced.

use alloy_primitives::B256;
use sha3::digest::{ExtendableOutput, Update, XofReader};

/// Tag that starts the SHAKE256 input of the coefficient expansion.
const MQ_TAG: &[u8] = b"QOIN/MQ/v1";

/// A system of `m ≤ 64` quadratic polynomials in `n ≤ 72` variables over GF(2), stored
/// monomial-major: each monomial has one `u64` word whose bit `k` is its coefficient in
/// equation `k` (bits `≥ m` are zero).
///
/// `f_k(x) = c0 ⊕ ⨁_i lin[i]·x_i ⊕ ⨁_{i<j} quad[j(j-1)/2 + i]·x_i·x_j` for each bit `k`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqSystem {
    m: u32,
    n: u32,
    constant: u64,
    linear: Vec<u64>,
    quad: Vec<u64>,
}

/// Index of the monomial `x_i x_j` (`i < j`) in [`MqSystem::quad`].
pub(crate) const fn quad_index(i: u32, j: u32) -> usize {
    (j as usize * (j as usize - 1)) / 2 + i as usize
}

impl MqSystem {
    /// Expands the system from a seed: the bytes of `SHAKE256("QOIN/MQ/v1" ‖ seed)` are read in
    /// monomial order (the constant, then `x_0 … x_{n-1}`, then `x_i x_j` for `j = 1 … n-1`,
    /// `i = 0 … j-1`), `ceil(m/8)` bytes per monomial, little-endian, bits `≥ m` dropped.
    ///
    /// # Panics
    /// If `m > 64` or `n > 128` (callers take both from a checked [`crate::Difficulty`]).
    pub fn from_seed(seed: &B256, m: u32, n: u32) -> Self {
        assert!(m <= 64 && (2..=128).contains(&n), "system size out of range");
        let mut xof = sha3::Shake256::default();
        xof.update(MQ_TAG);
        xof.update(seed.as_slice());
        let mut reader = xof.finalize_xof();
        let width = m.div_ceil(8) as usize;
        let mask = if m == 64 { u64::MAX } else { (1u64 << m) - 1 };
        let terms = 1 + n as usize + (n as usize * (n as usize - 1)) / 2;
        let mut bytes = vec![0u8; terms * width];
        reader.read(&mut bytes);
        let mut words = bytes.chunks_exact(width).map(|c| {
            let mut w = [0u8; 8];
            w[..width].copy_from_slice(c);
            u64::from_le_bytes(w) & mask
        });
        let constant = words.next().unwrap_or(0);
        let linear: Vec<u64> = words.by_ref().take(n as usize).collect();
        let quad: Vec<u64> = words.collect();
        Self { m, n, constant, linear, quad }
    }

    /// Builds a system from explicit coefficients (tests and solvers' sub-systems).
    ///
    /// # Panics
    /// If the vector lengths do not match `n`.
    pub fn from_parts(m: u32, n: u32, constant: u64, linear: Vec<u64>, quad: Vec<u64>) -> Self {
        assert_eq!(linear.len(), n as usize);
        assert_eq!(quad.len(), (n as usize * (n as usize).saturating_sub(1)) / 2);
        Self { m, n, constant, linear, quad }
    }

    /// Number of equations.
    pub fn m(&self) -> u32 {
        self.m
    }
    /// Number of variables.
    pub fn n(&self) -> u32 {
        self.n
    }
    /// The constant terms (bit `k` = equation `k`).
    pub fn constant(&self) -> u64 {
        self.constant
    }
    /// The linear terms, one word per variable.
    pub fn linear(&self) -> &[u64] {
        &self.linear
    }
    /// The quadratic terms, one word per `x_i x_j` with `i < j` at index `j(j-1)/2 + i`.
    pub fn quad(&self) -> &[u64] {
        &self.quad
    }
    /// The quadratic coefficient word of `x_i x_j` (`i ≠ j`).
    pub fn quad_at(&self, i: u32, j: u32) -> u64 {
        let (i, j) = if i < j { (i, j) } else { (j, i) };
        self.quad[quad_index(i, j)]
    }

    /// Evaluates every equation at `x` (bit `i` = `x_i`; bits `≥ n` ignored). Bit `k` of the
    /// result is `f_k(x)`: zero means `x` solves the whole system.
    pub fn eval(&self, x: u128) -> u64 {
        let mut acc = self.constant;
        let mut bits = x & ((1u128 << self.n) - 1);
        while bits != 0 {
            let j = bits.trailing_zeros();
            bits &= bits - 1;
            // x_j is set: add its linear term and x_i x_j for every set i < j.
            acc ^= self.linear[j as usize];
            let row = quad_index(0, j.max(1));
            let mut lower = x & ((1u128 << j) - 1);
            while lower != 0 {
                let i = lower.trailing_zeros();
                lower &= lower - 1;
                acc ^= self.quad[row + i as usize];
            }
        }
        acc
    }

    /// The sub-system in the low `n_low` variables obtained by fixing every variable
    /// `≥ n_low` to its bit in `high` (bit `i` of `high` is `x_i`; its low bits are ignored).
    /// The quadratic part among low variables is unchanged; constants and linear terms absorb
    /// the fixed variables.
    pub fn fix_high(&self, n_low: u32, high: u128) -> (u64, Vec<u64>) {
        let high = high & !((1u128 << n_low) - 1) & ((1u128 << self.n) - 1);
        let constant = self.eval(high);
        let mut linear = self.linear[..n_low as usize].to_vec();
        let mut bits = high;
        while bits != 0 {
            let j = bits.trailing_zeros();
            bits &= bits - 1;
            for (i, l) in linear.iter_mut().enumerate() {
                *l ^= self.quad[quad_index(i as u32, j)];
            }
        }
        (constant, linear)
    }
}
