//! The genesis file: chain id, allocations, proof-of-work and reward parameters, target
//! block time. JSON, with geth-like camelCase names so operators recognise it:
//!
//! ```json
//! {
//!   "chainId": 7777,
//!   "timestamp": 1767225600,
//!   "gasLimit": 30000000,
//!   "baseFeePerGas": "0x3b9aca00",
//!   "targetBlockTimeMs": 1000,
//!   "pow": { "initialEquations": 24, "initialMantissa": 0, "halfLifeSecs": 600 },
//!   "rewards": { "totalSupply": "120000000000000000000000000", "genesisSharePercent": 10,
//!                "halvingIntervalSecs": 126230400 },
//!   "alloc": { "0x…": { "balance": "0x…", "nonce": 0, "code": "0x", "storage": {} } }
//! }
//! ```
//!
//! Amounts are in shor, the base unit (10^-18 QOIN, as wei is of ether), as hex (`"0x…"`) or
//! decimal strings.

use alloy_primitives::{Address, Bytes, B256, U256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One QOIN, the coin, in shor, its base unit: 10^18, as one ether is 10^18 wei, so that every
/// Ethereum tool and wallet shows amounts right (`parseEther("1")` is one QOIN).
pub const SHOR_PER_QOIN: u128 = 1_000_000_000_000_000_000;
/// 10^9 shor, the unit tools quote gas prices in ("gwei").
pub const GWEI: u64 = 1_000_000_000;
/// An amount in shor as QOIN for people: `10000 QOIN`, `0.000021 QOIN` (exact, trailing zeros
/// dropped).
pub fn format_qoin(shor: U256) -> String {
    let unit = U256::from(SHOR_PER_QOIN);
    let (whole, frac) = (shor / unit, shor % unit);
    if frac.is_zero() {
        return format!("{whole} QOIN");
    }
    let digits = format!("{frac:0>18}");
    format!("{whole}.{} QOIN", digits.trim_end_matches('0'))
}

/// 120,000,000 QOIN (1.2 × 10^26 shor): Qoin's whole supply.
pub const TOTAL_SUPPLY_SHOR: u128 = 120_000_000 * SHOR_PER_QOIN;
/// Four years of 365.25 days, the halving interval.
pub const FOUR_YEARS_SECS: u64 = 4 * 36_525 * 864;

/// Why a genesis file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read genesis file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The JSON is malformed or has unknown/missing fields (message has line and column).
    #[error("malformed genesis JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The values are inconsistent.
    #[error("invalid genesis: {0}")]
    Invalid(String),
}

/// Proof-of-work parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PowParams {
    /// Equations `m` of block 1's puzzle (8–64): its expected work is `2^m · f`.
    pub initial_equations: u32,
    /// Mantissa of block 1's difficulty (`f = 1 + mantissa / 2^32`); default 0.
    #[serde(default)]
    pub initial_mantissa: u32,
    /// Half-life of the exponential difficulty adjustment, in seconds.
    pub half_life_secs: u64,
}

/// Issuance parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewardParams {
    /// Total supply in shor (genesis allocation plus everything ever mined).
    pub total_supply: U256,
    /// Percentage of the supply allocated at genesis (the rest is mined).
    pub genesis_share_percent: u8,
    /// Seconds between halvings of the block reward.
    pub halving_interval_secs: u64,
}

impl Default for RewardParams {
    fn default() -> Self {
        Self {
            total_supply: U256::from(TOTAL_SUPPLY_SHOR),
            genesis_share_percent: 10,
            halving_interval_secs: FOUR_YEARS_SECS,
        }
    }
}

impl RewardParams {
    /// The most that may be allocated at genesis, in shor.
    pub fn genesis_supply(&self) -> U256 {
        self.total_supply.saturating_mul(U256::from(self.genesis_share_percent)) / U256::from(100u8)
    }

    /// Blocks between halvings at the target block time.
    pub fn blocks_per_halving(&self, target_block_time_ms: u64) -> u64 {
        (self.halving_interval_secs.saturating_mul(1000) / target_block_time_ms.max(1)).max(1)
    }

    /// The reward of the block at `height` (≥ 1): the mined supply is a geometric series
    /// `R0 · B · (1 + 1/2 + 1/4 + …) = 2 · R0 · B`, so `R0 = mined / (2B)` for `B` blocks per
    /// halving, halved (rounding down) every `B` blocks. Height 0 (genesis) earns nothing.
    pub fn block_reward(&self, height: u64, target_block_time_ms: u64) -> U256 {
        if height == 0 {
            return U256::ZERO;
        }
        let b = self.blocks_per_halving(target_block_time_ms);
        let mined = self.total_supply.saturating_sub(self.genesis_supply());
        let r0 = mined / U256::from(2 * b as u128);
        let halvings = (height - 1) / b;
        if halvings >= 256 {
            U256::ZERO
        } else {
            r0 >> (halvings as usize)
        }
    }
}

/// One pre-funded (or pre-deployed) account.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenesisAccount {
    /// Balance in shor.
    pub balance: U256,
    /// Nonce.
    #[serde(default)]
    pub nonce: u64,
    /// Contract code.
    #[serde(default, skip_serializing_if = "<[u8]>::is_empty")]
    pub code: Bytes,
    /// Contract storage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<B256, B256>,
}

/// A genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Genesis {
    /// EIP-155 chain id, in every transaction.
    pub chain_id: u64,
    /// Genesis time, Unix seconds.
    pub timestamp: u64,
    /// Block gas limit.
    pub gas_limit: u64,
    /// Base fee per gas of the first block, in shor.
    pub base_fee_per_gas: U256,
    /// Target time between blocks, in milliseconds.
    pub target_block_time_ms: u64,
    /// Proof-of-work parameters.
    pub pow: PowParams,
    /// Issuance parameters.
    #[serde(default)]
    pub rewards: RewardParams,
    /// Allocations.
    pub alloc: BTreeMap<Address, GenesisAccount>,
}

impl Genesis {
    /// Parses and validates genesis JSON.
    pub fn from_json(text: &str) -> Result<Self, GenesisError> {
        let g: Self = serde_json::from_str(text)?;
        g.validate()?;
        Ok(g)
    }

    /// Reads, parses and validates a genesis file.
    pub fn from_file(path: &Path) -> Result<Self, GenesisError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| GenesisError::Io { path: path.to_path_buf(), source })?;
        Self::from_json(&text)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| unreachable!("genesis serialises: {e}"))
    }

    /// The genesis state: the allocations and the system contracts
    /// ([`crate::system::system_contracts`]), which every Qoin genesis holds.
    pub fn state(&self) -> BTreeMap<Address, GenesisAccount> {
        let mut state = self.alloc.clone();
        for (address, account) in crate::system::system_contracts() {
            state.insert(*address, account.clone());
        }
        state
    }

    /// Total allocated, in shor.
    pub fn allocated(&self) -> U256 {
        self.alloc.values().fold(U256::ZERO, |acc, a| acc.saturating_add(a.balance))
    }

    /// Checks the values make a chain that can run.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |m: String| Err(GenesisError::Invalid(m));
        if self.chain_id == 0 {
            return bad("chainId must be non-zero".into());
        }
        if !(100..=600_000).contains(&self.target_block_time_ms) {
            return bad(format!("targetBlockTimeMs {} outside 100..=600000", self.target_block_time_ms));
        }
        if self.gas_limit < 21_000 {
            return bad(format!("gasLimit {} is below one transfer (21000)", self.gas_limit));
        }
        if !(8..=64).contains(&self.pow.initial_equations) {
            return bad(format!("pow.initialEquations {} outside 8..=64", self.pow.initial_equations));
        }
        if self.pow.half_life_secs == 0 {
            return bad("pow.halfLifeSecs must be non-zero".into());
        }
        if let Some(a) = self.alloc.keys().find(|a| crate::system::is_system_contract(a)) {
            return bad(format!("alloc holds {a}, a system contract's address (spec §17)"));
        }
        let r = &self.rewards;
        if r.genesis_share_percent > 100 {
            return bad(format!("rewards.genesisSharePercent {} exceeds 100", r.genesis_share_percent));
        }
        if r.halving_interval_secs == 0 {
            return bad("rewards.halvingIntervalSecs must be non-zero".into());
        }
        if self.allocated() > r.genesis_supply() {
            return bad(format!(
                "alloc totals {} shor, more than the genesis share {} shor",
                self.allocated(),
                r.genesis_supply()
            ));
        }
        Ok(())
    }
}
