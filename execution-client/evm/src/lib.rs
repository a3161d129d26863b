//! # qoin-evm
//!
//! Owns running blocks in the EVM (revm) over the execution client's stored state:
//!
//! - [`state`]: the stored state as revm's database, at the head ([`state::StateReader`],
//!   from the flat tables) or at any earlier root ([`state::TrieState`], through the trie);
//! - [`execute`]: executing a block or building a payload, and the state writes, new root
//!   and receipts that result ([`execute::Executed`]), which `qoin-el-chain` commits or
//!   discards;
//! - [`precompiles`]: Falcon-512, ML-DSA-44 and dual-signature verification for contracts,
//!   priced by measured time.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod execute;
pub mod precompiles;
pub mod state;

pub use execute::{execute, BlockEnvInput, ExecError, Executed, Mode, PostState};
