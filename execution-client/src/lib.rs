//! # qoin-execution
//!
//! The execution client, `qoin-el`. It will own all account state in MDBX with an
//! incremental Ethereum-compatible Merkle-Patricia state root, EVM execution with revm, the
//! transaction pool, payload building, the JSON-RPC server dapp developers use, the
//! post-quantum signature precompiles and the market contracts.
//!
//! Today it owns the validator's **accounts**: [`account`] creates, lists and shows
//! keystore accounts (`qoin-el account new | list | show | import`), the keys a node uses to
//! sign transactions for `eth_sendTransaction` and mining tickets.

pub mod account;
pub mod block;
pub mod chain;
pub mod db;
pub mod execute;
pub mod state;
pub mod trie;

#[cfg(test)]
mod tests;
