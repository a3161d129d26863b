//! The development chain: ten accounts with deterministic post-quantum keys, funded in an
//! embedded genesis, as `geth --dev` and anvil provide. The keys are public knowledge: never
//! send real value to them.

use crate::genesis::{Genesis, GenesisAccount, PowParams, RewardParams, GWEI, SHOR_PER_QOIN};
use alloy_primitives::{keccak256, U256};
use qoin_crypto::Keypair;
use std::collections::BTreeMap;

/// Chain id of the development chain.
pub const DEV_CHAIN_ID: u64 = 1337;
/// Number of funded development accounts.
pub const DEV_ACCOUNTS: u32 = 10;
/// Balance of each development account: 10,000 QOIN (as anvil's 10,000 ether), in shor.
pub const DEV_BALANCE: u128 = 10_000 * SHOR_PER_QOIN;
/// Genesis time of the development chain (2026-01-01T00:00:00Z).
pub const DEV_GENESIS_TIME: u64 = 1_767_225_600;

/// The 32-byte seed of development account `index`:
/// `keccak256("QOIN/DEV-ACCOUNT/v1" ‖ index as u32 big-endian)`.
pub fn dev_seed(index: u32) -> [u8; 32] {
    let mut pre = b"QOIN/DEV-ACCOUNT/v1".to_vec();
    pre.extend_from_slice(&index.to_be_bytes());
    keccak256(pre).0
}

/// The keys of the development accounts, in order (key generation takes a few milliseconds
/// each).
pub fn dev_keys() -> Vec<Keypair> {
    (0..DEV_ACCOUNTS).map(|i| Keypair::from_seed(&dev_seed(i))).collect()
}

/// The development genesis for `keys` (normally [`dev_keys`]): each funded with
/// [`DEV_BALANCE`], 30,000,000 gas per block, a base fee of 1 gwei, a 1-second target block
/// time.
pub fn dev_genesis(keys: &[Keypair]) -> Genesis {
    let alloc: BTreeMap<_, _> = keys
        .iter()
        .map(|k| (k.address(), GenesisAccount { balance: U256::from(DEV_BALANCE), ..Default::default() }))
        .collect();
    Genesis {
        chain_id: DEV_CHAIN_ID,
        timestamp: DEV_GENESIS_TIME,
        gas_limit: 30_000_000,
        base_fee_per_gas: U256::from(GWEI),
        target_block_time_ms: 1000,
        pow: PowParams { initial_equations: 32, initial_mantissa: 0, half_life_secs: 120 },
        rewards: RewardParams::default(),
        alloc,
    }
}
