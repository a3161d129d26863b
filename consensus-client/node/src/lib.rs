//! # qoin-cl-node
//!
//! Owns the consensus client at work: [`node::Node`] connects to the execution client over
//! the engine API, brings it to the stored head (replaying what it lost), validates blocks
//! with `qoin-consensus`, has them executed, checks the answers with account-state sampling
//! (`qoin-cl-sampling`), stores them (`qoin-cl-store`) and keeps the execution client's head
//! on the fork-choice head; [`miner`] builds and seals blocks and runs the main loop;
//! [`metrics`] are its Prometheus metrics; [`p2p`] puts it on the network (`qoin-cl-network`):
//! answering peers, judging and importing gossiped blocks, gossiping the blocks it mines; `relay` carries transactions between the
//! execution client's pool and the network.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod config;
pub mod metrics;
pub mod miner;
pub mod node;
pub mod p2p;
mod relay;
pub mod sync;

pub use config::{Config, MinerConfig, MinerPriority, P2pOptions};
pub use metrics::ClMetrics;
pub use miner::run;
pub use node::Node;
