//! # qoin-primitives
//!
//! Owns the types both clients and the network agree on, and their encodings:
//!
//! - the consensus [`Header`] and [`Block`], SSZ containers (`ssz_rs`), with the block hash,
//!   the miner's ticket pre-image and the transactions root;
//! - the transaction ([`SignedTx`]): an EIP-2718 type-`0x51` transaction with EIP-1559 fee
//!   fields and the post-quantum signature envelope, RLP-encoded, with its id;
//! - the [`Genesis`] file format with allocations, proof-of-work and reward parameters, and
//!   the embedded development chain ([`dev`]);
//! - the base-fee rule ([`fee`]);
//! - the system contracts every genesis holds at fixed addresses ([`system`]: the markets);
//! - re-exports of the hash, address and integer types (`alloy-primitives`).
//!
//! Every decoder here takes untrusted bytes and returns an error, never panics; each has a
//! property test and a `cargo fuzz` target (`fuzz/`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod block;
pub mod dev;
pub mod fee;
mod genesis;
mod header;
pub mod system;
mod transaction;

pub use alloy_primitives::{self, Address, Bytes, TxKind, B256, U256};
pub use block::{
    transaction_root, transactions_root, transactions_root_of, Block, MAX_BLOCK_SIZE, MAX_BLOCK_TXS,
};
pub use genesis::{
    format_qoin, Genesis, GenesisAccount, GenesisError, PowParams, RewardParams, FOUR_YEARS_SECS, GWEI,
    SHOR_PER_QOIN, TOTAL_SUPPLY_SHOR,
};
pub use header::{Header, HeaderError, MAX_HEADER_SIZE, MAX_SIBLINGS, SOLUTION_LEN};
pub use transaction::{
    AccessListItem, SignedTx, TxError, TxRequest, IMPERSONATED_SUITE, MAX_TX_SIZE, QOIN_TX_TYPE,
};

#[cfg(test)]
mod tests;
