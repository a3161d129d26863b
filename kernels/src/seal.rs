//! Mining one header: derive the puzzle, search, check the target, move to a fresh system
//! through `extra_nonce` when one is exhausted.

use crate::{SearchControl, Solver};
use qoin_pow::{pow_seed, solution_hash, solution_to_bytes, Difficulty, DifficultyError, MqSystem};
use qoin_primitives::{Header, HeaderError};
use std::sync::atomic::AtomicBool;

/// Why sealing stopped without a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The header's difficulty field is invalid.
    #[error(transparent)]
    Difficulty(#[from] DifficultyError),
    /// The header cannot be encoded.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The stop flag was set (e.g. a new head arrived).
    #[error("sealing cancelled")]
    Cancelled,
}

/// A successful seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The extra nonce the solution was found under.
    pub extra_nonce: u64,
    /// The solution.
    pub solution: u128,
    /// Candidates tested across all systems tried.
    pub candidates: u128,
    /// Systems tried (1 + extra-nonce increments).
    pub systems: u64,
}

/// Mines `header` (whose ticket must already be signed): searches the system of the current
/// `extra_nonce`, and of the next ones if a system has no solution meeting the target, until
/// a solution is found or `stop` is set. On success the header's `extra_nonce` and `solution`
/// are filled in, and `qoin_pow::verify_seal` accepts it.
pub fn seal(header: &mut Header, solver: &dyn Solver, stop: &AtomicBool) -> Result<Sealed, SealError> {
    let d = Difficulty::from_compact(header.difficulty)?;
    let mut candidates = 0u128;
    let mut systems = 0u64;
    loop {
        let seed = pow_seed(&header.seal_preimage()?);
        let sys = MqSystem::from_seed(&seed, d.m(), d.n());
        let accept = |x: u128| d.accepts(&solution_hash(&seed, &solution_to_bytes(x)));
        let report = solver.search(&sys, &SearchControl { stop, accept: &accept });
        candidates += report.candidates;
        systems += 1;
        if let Some(x) = report.accepted {
            header.solution = solution_to_bytes(x);
            return Ok(Sealed { extra_nonce: header.extra_nonce, solution: x, candidates, systems });
        }
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SealError::Cancelled);
        }
        header.extra_nonce = header.extra_nonce.wrapping_add(1);
    }
}
