//! # qoin-consensus
//!
//! Owns Qoin's consensus client, `qoin-cl`: the chain store in MDBX ([`store`]: headers,
//! payloads, the fork tree with cumulative work, the head), block validation as pure
//! functions ([`validate`]: parent, height, timestamps, difficulty from the adjustment rule,
//! sibling references, proof of work, ticket signature; then the payload against the
//! header), fork choice ([`forkchoice`]: GHOST over generations of siblings), the chain
//! parameters and rewards ([`params`]), account-state sampling of the execution client's
//! answers ([`sampling`]), the miner and the engine-API driver ([`node`]), and its metrics
//! ([`metrics`]). Networking (gossip, sync) comes with the networking work.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cli;
pub mod forkchoice;
pub mod metrics;
pub mod node;
pub mod params;
pub mod sampling;
pub mod store;
pub mod validate;

#[cfg(test)]
mod tests;
