//! The chain parameters the consensus rules read, from the genesis file and the execution
//! genesis block.

use alloy_primitives::{Address, B256, U256};
use qoin_engine_api::Credit;
use qoin_pow::{AsertAnchor, Difficulty, DifficultyError};
use qoin_primitives::{Genesis, RewardParams};

/// Share of the block reward each referenced sibling's miner receives: `reward / 8`, taken
/// out of the including block's reward so issuance stays on schedule.
pub const SIBLING_SHARE_DIVISOR: u64 = 8;

/// Consensus parameters of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The execution genesis block hash: the parent of block 1 and the root of the fork tree.
    pub genesis_hash: B256,
    /// The genesis state root.
    pub genesis_state_root: B256,
    /// Genesis time in milliseconds.
    pub genesis_time_ms: u64,
    /// The difficulty schedule's anchor.
    pub anchor: AsertAnchor,
    /// Target block time.
    pub target_block_time_ms: u64,
    /// Issuance.
    pub rewards: RewardParams,
    /// The genesis block's gas limit, gas used and base fee (block 1's fee fields follow).
    pub genesis_exec: crate::validate::ExecFields,
}

impl ChainParams {
    /// Parameters of `genesis`, whose execution genesis block has `genesis_hash` and
    /// `genesis_state_root`.
    pub fn new(
        genesis: &Genesis,
        genesis_hash: B256,
        genesis_state_root: B256,
    ) -> Result<Self, DifficultyError> {
        let difficulty = Difficulty::new(genesis.pow.initial_equations, genesis.pow.initial_mantissa)?;
        let genesis_time_ms = genesis.timestamp.saturating_mul(1000);
        Ok(Self {
            chain_id: genesis.chain_id,
            genesis_hash,
            genesis_state_root,
            genesis_exec: crate::validate::ExecFields {
                gas_limit: genesis.gas_limit,
                gas_used: 0,
                base_fee: qoin_primitives::fee::genesis_base_fee(genesis),
            },
            genesis_time_ms,
            anchor: AsertAnchor {
                height: 0,
                timestamp_ms: genesis_time_ms,
                difficulty,
                target_block_time_ms: genesis.target_block_time_ms,
                half_life_ms: genesis.pow.half_life_secs.saturating_mul(1000),
            },
            target_block_time_ms: genesis.target_block_time_ms,
            rewards: genesis.rewards.clone(),
        })
    }

    /// The difficulty a child of a parent at `height` with `timestamp_ms` must carry.
    pub fn child_difficulty(&self, parent_height: u64, parent_timestamp_ms: u64) -> Difficulty {
        qoin_pow::next_difficulty(&self.anchor, parent_height, parent_timestamp_ms)
    }

    /// The credits of block `height` mined to `coinbase` referencing siblings mined to
    /// `sibling_coinbases`: each sibling miner gets `reward / 8`, the block's miner the rest.
    /// (Priority fees reach the coinbase as the payload's fee recipient.)
    pub fn credits(&self, height: u64, coinbase: Address, sibling_coinbases: &[Address]) -> Vec<Credit> {
        let reward = self.rewards.block_reward(height, self.target_block_time_ms);
        let share = reward / U256::from(SIBLING_SHARE_DIVISOR);
        let shares = share * U256::from(sibling_coinbases.len());
        let mut out = vec![Credit { address: coinbase, amount: reward.saturating_sub(shares) }];
        out.extend(sibling_coinbases.iter().map(|a| Credit { address: *a, amount: share }));
        out
    }
}

/// The EVM's `PREVRANDAO` of a block: its consensus parent's hash (known before mining, fixed
/// by the chain, not grindable by the execution client).
pub fn prev_randao(parent_hash: &B256) -> B256 {
    *parent_hash
}
