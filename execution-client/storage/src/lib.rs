//! # qoin-el-storage
//!
//! Owns what the execution client keeps in MDBX and how it is read back:
//!
//! - [`tables`]: the typed tables (accounts, storage, code, trie nodes, headers, bodies,
//!   receipts, transaction lookup, per-block change sets) and their encodings;
//! - [`block`]: the execution layer's header, body, receipt and reward credit, with the
//!   roots over them;
//! - [`reader`]: typed reads of stored state (the head, an account, a block's transactions,
//!   trie nodes for `qoin-trie`), with a [`reader::StorageError`] that names what is
//!   missing or corrupt.
//!
//! Writing blocks (one MDBX write transaction each) is `qoin-el-chain`'s job; executing them
//! is `qoin-evm`'s.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod block;
pub mod reader;
pub mod tables;

pub use reader::StorageError;
