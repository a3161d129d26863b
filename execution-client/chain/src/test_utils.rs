//! Chains for the tests of the crates built on this one (feature `test-utils`).

use alloy_primitives::U256;
use qoin_crypto::Keypair;
use qoin_primitives::{Genesis, GenesisAccount, PowParams, RewardParams, SHOR_PER_QOIN};

/// A chain (id 9, base fee at the floor, 1 gwei) funding `keys` with 1,000 QOIN each.
pub fn funded_genesis(keys: &[Keypair], gas_limit: u64) -> Genesis {
    Genesis {
        chain_id: 9,
        timestamp: 1_767_225_600,
        gas_limit,
        base_fee_per_gas: U256::from(qoin_primitives::GWEI),
        target_block_time_ms: 1000,
        pow: PowParams { initial_equations: 20, initial_mantissa: 0, half_life_secs: 600 },
        rewards: RewardParams::default(),
        alloc: keys
            .iter()
            .map(|k| {
                (
                    k.address(),
                    GenesisAccount { balance: U256::from(1_000 * SHOR_PER_QOIN), ..Default::default() },
                )
            })
            .collect(),
    }
}
