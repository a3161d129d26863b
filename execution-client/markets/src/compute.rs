//! The compute market (`ComputeMarket.sol`): its ABI, the result commitment, and a job's
//! result as it moves between providers and clients.

use crate::job::{Outcome, Status};
use alloy_primitives::{keccak256, Address, B256};
use alloy_sol_types::SolValue;

pub use qoin_primitives::system::COMPUTE_MARKET;

// The contract's ABI from its committed artifact: a call struct per function, an event struct
// per event, `Refused(string)` for its errors.
alloy_sol_types::sol!(
    #[allow(missing_docs, clippy::too_many_arguments)]
    #[sol(all_derives)]
    ComputeMarket,
    "../contracts/ComputeMarket.json"
);

/// What a provider commits to before revealing its result, as the contract's `commitment`:
/// `keccak256(abi.encode(output, fuel, salt, provider))`, with `output` the keccak256 of the
/// job's standard output.
pub fn commitment(output: B256, fuel: u64, salt: B256, provider: Address) -> B256 {
    keccak256((output, fuel, salt, provider).abi_encode())
}

/// Why bytes are not a job result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    /// Fewer than the 5 bytes of the header.
    #[error("a result is at least 5 bytes; got {0}")]
    Short(usize),
    /// A tag and code that stand for no ending.
    #[error("unknown ending: tag {0}, code {1}")]
    UnknownEnding(u8, i32),
    /// More output than a job may write.
    #[error("{0} bytes of output, above the {max} a job may write", max = crate::job::MAX_OUTPUT_BYTES)]
    TooLong(usize),
}

/// A job's result as providers and mediators serve it to clients (spec §17.5): how the run
/// ended and what it wrote to standard output, which hash to the `output` on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// How the run ended.
    pub status: Status,
    /// Its standard output.
    pub stdout: Vec<u8>,
}

impl JobResult {
    /// The result of a run.
    pub fn of(outcome: &Outcome) -> Self {
        Self { status: outcome.status.clone(), stdout: outcome.stdout.clone() }
    }

    /// The `output` it commits to.
    pub fn output_hash(&self) -> B256 {
        crate::job::output_hash(&self.status, &self.stdout)
    }

    /// Its bytes: the ending's tag (one byte) and code (4 bytes, big-endian) as
    /// [`Status::tag`] gives them, then standard output.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, code) = self.status.tag();
        let mut out = Vec::with_capacity(5 + self.stdout.len());
        out.push(tag);
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(&self.stdout);
        out
    }

    /// Reads what [`JobResult::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, ResultError> {
        let (Some(&tag), Some(code)) = (bytes.first(), bytes.get(1..5)) else {
            return Err(ResultError::Short(bytes.len()));
        };
        let code = i32::from_be_bytes([code[0], code[1], code[2], code[3]]);
        let stdout = &bytes[5..];
        if stdout.len() > crate::job::MAX_OUTPUT_BYTES {
            return Err(ResultError::TooLong(stdout.len()));
        }
        let status = Status::from_tag(tag, code).ok_or(ResultError::UnknownEnding(tag, code))?;
        Ok(Self { status, stdout: stdout.to_vec() })
    }
}

#[cfg(test)]
mod result_tests {
    use super::*;

    #[test]
    fn results_round_trip_and_hash_as_the_run() {
        for status in [
            Status::Exited(0),
            Status::Exited(-7),
            Status::Trapped(5),
            Status::OutOfFuel,
            Status::OutputLimit,
            Status::Invalid,
        ] {
            let r = JobResult { status: status.clone(), stdout: b"out".to_vec() };
            let back = JobResult::decode(&r.encode()).unwrap();
            assert_eq!(back, r);
            let outcome =
                Outcome { status, stdout: b"out".to_vec(), stderr: vec![], fuel: 9, detail: String::new() };
            assert_eq!(back.output_hash(), outcome.output_hash());
        }
    }

    #[test]
    fn bytes_that_are_no_result_are_refused() {
        assert_eq!(JobResult::decode(&[1, 0, 0]), Err(ResultError::Short(3)));
        assert_eq!(JobResult::decode(&[9, 0, 0, 0, 0]), Err(ResultError::UnknownEnding(9, 0)));
        assert_eq!(JobResult::decode(&[3, 0, 0, 0, 1]), Err(ResultError::UnknownEnding(3, 1)));
        assert_eq!(JobResult::decode(&[2, 0, 0, 1, 0]), Err(ResultError::UnknownEnding(2, 256)));
    }
}
