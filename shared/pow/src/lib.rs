//! # qoin-pow
//!
//! Owns Qoin's proof of work, PQC-PoW: the multivariate-quadratic (MQ) puzzle over GF(2)
//! of Ding (ACNS 2019 workshops) as ABCMint runs it, bound to the miner's post-quantum key
//! by the header's ticket. Everything here is pure and I/O-free:
//!
//! - [`Difficulty`]: the compact encoding of continuous difficulty `2^m · f`, `f ∈ [1, 2)`,
//!   its work and its hash target;
//! - [`MqSystem`]: expansion of `m` quadratic equations in `n = m + 8` variables from a
//!   32-byte seed with SHAKE256, and evaluation at a point;
//! - [`verify_seal`]: the full check of a header's solution (out-of-range bits, the
//!   equations, the target);
//! - [`next_difficulty`]: the absolutely scheduled exponential difficulty adjustment (as
//!   Bitcoin Cash's aserti3-2d) in integer arithmetic;
//! - [`check_timestamp`]: the timestamp rules.
//!
//! The fast solvers that *find* solutions live in `qoin-kernels`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod asert;
mod difficulty;
mod seal;
pub mod sim;
mod system;

pub use asert::{check_timestamp, next_difficulty, AsertAnchor, TimeError, MAX_FUTURE_DRIFT_MS};
pub use difficulty::{Difficulty, DifficultyError, M_MAX, M_MIN, N_EXTRA};
pub use seal::{pow_seed, solution_from_bytes, solution_hash, solution_to_bytes, verify_seal, PowError};
pub use system::MqSystem;

#[cfg(test)]
mod tests;
