//! The seal: deriving the puzzle from a header and verifying its solution.

use crate::{Difficulty, DifficultyError, MqSystem};
use alloy_primitives::B256;
use qoin_primitives::{Header, HeaderError, SOLUTION_LEN};

/// Tag hashed in front of the seal pre-image to make the puzzle seed.
const SEED_TAG: &[u8] = b"QOIN/POW-SEED/v1";

/// Why a header's proof of work is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// The difficulty field is malformed.
    #[error(transparent)]
    Difficulty(#[from] DifficultyError),
    /// The header cannot be encoded (too many siblings).
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The solution sets bits at or above `n`.
    #[error("solution sets bits at or above n = {n}")]
    SolutionOutOfRange {
        /// Number of variables.
        n: u32,
    },
    /// The solution does not satisfy every equation.
    #[error("solution does not satisfy the MQ system ({unsatisfied} of {m} equations fail)")]
    NotASolution {
        /// Equations that evaluate to 1.
        unsatisfied: u32,
        /// Equations in the system.
        m: u32,
    },
    /// The solution solves the system but its hash misses the fractional target.
    #[error("solution hash is above the difficulty's target")]
    AboveTarget,
}

/// The puzzle seed: `keccak256("QOIN/POW-SEED/v1" ‖ seal_preimage)`, where the seal pre-image
/// is the SSZ header without its `solution` (so it covers the miner's keys, the ticket and
/// the extra nonce).
pub fn pow_seed(seal_preimage: &[u8]) -> B256 {
    let mut h = alloy_primitives::Keccak256::new();
    h.update(SEED_TAG);
    h.update(seal_preimage);
    h.finalize()
}

/// `keccak256(seed ‖ solution bytes)`, compared against the fractional target.
pub fn solution_hash(seed: &B256, solution: &[u8; SOLUTION_LEN]) -> B256 {
    let mut h = alloy_primitives::Keccak256::new();
    h.update(seed.as_slice());
    h.update(solution);
    h.finalize()
}

/// The solution field's encoding of `x`: 16 bytes, little-endian (bit `i` of byte `i / 8`…
/// i.e. `x_i` is bit `i % 8` of byte `i / 8`).
pub fn solution_to_bytes(x: u128) -> [u8; SOLUTION_LEN] {
    x.to_le_bytes()
}

/// Reads the solution field.
pub fn solution_from_bytes(b: &[u8; SOLUTION_LEN]) -> u128 {
    u128::from_le_bytes(*b)
}

/// Verifies a header's proof of work: the difficulty encoding, that the solution uses only
/// the `n` variables, that it satisfies all `m` equations of the system derived from the
/// header, and that its hash meets the fractional target. Does **not** check the ticket
/// (see [`Header::verify_ticket`]) nor that the difficulty follows the adjustment rule.
pub fn verify_seal(header: &Header) -> Result<(), PowError> {
    let d = Difficulty::from_compact(header.difficulty)?;
    let x = solution_from_bytes(&header.solution);
    if x >> d.n() != 0 {
        return Err(PowError::SolutionOutOfRange { n: d.n() });
    }
    let seed = pow_seed(&header.seal_preimage()?);
    let sys = MqSystem::from_seed(&seed, d.m(), d.n());
    let residue = sys.eval(x);
    if residue != 0 {
        return Err(PowError::NotASolution { unsatisfied: residue.count_ones(), m: d.m() });
    }
    if !d.accepts(&solution_hash(&seed, &header.solution)) {
        return Err(PowError::AboveTarget);
    }
    Ok(())
}
