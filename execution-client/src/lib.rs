//! # qoin-execution
//!
//! The execution client, `qoin-el`. It owns all account state and runs the EVM:
//!
//! - [`db`]: the tables in MDBX (accounts, storage, code, trie nodes, headers, bodies,
//!   receipts, transaction lookup, per-block change sets);
//! - [`trie`]: the Ethereum Merkle-Patricia state trie, updated incrementally, with EIP-1186
//!   proofs;
//! - [`execute`]: block execution in revm and the state writes and new root it produces;
//! - [`chain`]: genesis, importing blocks (one write transaction each), building payloads,
//!   unwinding for reorgs;
//! - [`txpool`]: the transaction pool (nonce queues, replacement, limits, geth's wording);
//! - [`precompiles`]: Falcon-512, ML-DSA-44 and dual-signature verification for contracts;
//! - [`node`]: a running node (chain, pool, held keys, local block production);
//! - [`rpc`]: the Ethereum JSON-RPC server dapp tools use;
//! - [`engine`]: the engine API backend the consensus client drives (payload building,
//!   import, reorgs through the change sets, account proofs, the pool's transaction stream);
//! - [`cli`]: `qoin-el node`;
//! - [`account`]: the validator's keystore accounts (`qoin-el account new | import | list |
//!   show`).
//!
//! Still to come here: the market contracts.

pub mod account;
pub mod block;
pub mod chain;
pub mod cli;
pub mod db;
pub mod engine;
pub mod execute;
pub mod node;
pub mod precompiles;
pub mod rpc;
pub mod state;
pub mod trie;
pub mod txpool;

#[cfg(test)]
mod tests;
