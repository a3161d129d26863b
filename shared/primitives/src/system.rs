//! The system contracts: Solidity contracts every Qoin genesis holds at fixed addresses, as
//! the precompiles are at fixed addresses (spec §17): the storage and compute markets. Their runtime
//! code is the committed artifact of the pinned compiler (`execution-client/contracts/`), so a
//! change to a contract changes every genesis hash: it is a protocol change.

use crate::genesis::GenesisAccount;
use alloy_primitives::{address, Address, Bytes};
use std::sync::OnceLock;

/// `StorageMarket.sol`: storage asks, bids, deals and proofs of continuous storage.
pub const STORAGE_MARKET: Address = address!("000000000000000000000000000000000000a000");

/// `ComputeMarket.sol`: compute asks, replicated jobs, commit-reveal results, mediation.
pub const COMPUTE_MARKET: Address = address!("000000000000000000000000000000000000a001");

/// The committed compiler output of the system contracts.
const STORAGE_MARKET_ARTIFACT: &str = include_str!("../../../execution-client/contracts/StorageMarket.json");
const COMPUTE_MARKET_ARTIFACT: &str = include_str!("../../../execution-client/contracts/ComputeMarket.json");

/// Runtime code of a committed artifact (its `deployedBytecode`). The artifact is a build
/// input, not input from anyone: a malformed one is a broken build, which this module's test
/// and every genesis test catch, so it may panic.
#[allow(clippy::expect_used)]
fn runtime_code(artifact: &str) -> Bytes {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Artifact {
        deployed_bytecode: String,
    }
    let a: Artifact = serde_json::from_str(artifact).expect("committed contract artifact is JSON");
    let hex = a.deployed_bytecode.trim_start_matches("0x");
    Bytes::from(hex::decode(hex).expect("committed contract artifact holds hex code"))
}

/// The system contracts, `(address, account)`: code, nonce 1 (as a contract that was created),
/// no balance, no storage (the contracts have no constructor state).
pub fn system_contracts() -> &'static [(Address, GenesisAccount)] {
    static CONTRACTS: OnceLock<Vec<(Address, GenesisAccount)>> = OnceLock::new();
    CONTRACTS.get_or_init(|| {
        [(STORAGE_MARKET, STORAGE_MARKET_ARTIFACT), (COMPUTE_MARKET, COMPUTE_MARKET_ARTIFACT)]
            .into_iter()
            .map(|(address, artifact)| {
                (address, GenesisAccount { nonce: 1, code: runtime_code(artifact), ..Default::default() })
            })
            .collect()
    })
}

/// Whether `a` is a system contract's address (a genesis may not allocate it).
pub fn is_system_contract(a: &Address) -> bool {
    system_contracts().iter().any(|(s, _)| s == a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_code_is_the_committed_runtime() {
        let addresses: Vec<Address> = system_contracts().iter().map(|(a, _)| *a).collect();
        assert_eq!(addresses, [STORAGE_MARKET, COMPUTE_MARKET]);
        for (addr, acct) in system_contracts() {
            // Solidity runtime code starts by pushing the free memory pointer (0x80); it fits EIP-170.
            assert!(acct.code.starts_with(&[0x60, 0x80]), "{addr}: {:?}", &acct.code[..8]);
            assert!(
                acct.code.len() > 1_000 && acct.code.len() <= 24_576,
                "{addr}: {} bytes",
                acct.code.len()
            );
            assert!(is_system_contract(addr));
        }
        assert!(!is_system_contract(&Address::ZERO));
    }
}
