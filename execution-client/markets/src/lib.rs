//! # qoin-markets
//!
//! Owns the client side of the market contracts that every Qoin genesis holds (spec §17),
//! shared by the market programs (the client CLI and the provider daemons) and checked here
//! against the contracts running in the execution client's EVM:
//!
//! - [`coding`]: rate-1/2 Reed-Solomon coding of a file at chunk granularity (stripes of
//!   256 data and 256 recovery chunks), so losing a replica, or up to half of each stripe of
//!   a replica's chunks, loses no data;
//! - [`storage`]: the storage market's address and ABI (from the committed compiler artifact),
//!   the chunking of a coded file and its Merkle commitment (rs_merkle with keccak256, leaves
//!   and inner nodes domain-separated as the contract hashes them), the challenge of a period,
//!   and the proof the contract accepts;
//! - [`compute`]: the compute market's address and ABI and the result commitment;
//! - [`job`]: the deterministic WASM runner that produces the results providers commit (fuel
//!   metered, canonical NaNs, a virtual WASI with standard input and output only);
//! - `harness` (feature `harness`): the contracts on a real chain, for tests and benchmarks.
//!
//! The contracts themselves are Solidity in `execution-client/contracts/`, compiled with the
//! pinned solc; their runtime code enters the genesis through `qoin_primitives::system`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod coding;
pub mod compute;
pub mod job;
pub mod storage;

#[cfg(any(test, feature = "harness"))]
pub mod harness;
#[cfg(test)]
mod job_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod walks;
