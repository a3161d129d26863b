//! The compute market (`ComputeMarket.sol`): its ABI and the result commitment.

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
