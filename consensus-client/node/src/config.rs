//! What `qoin-cl` runs with.

use alloy_primitives::Address;
use qoin_crypto::Keypair;
use qoin_primitives::Genesis;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The miner's part of the configuration.
pub struct MinerConfig {
    /// Signs the tickets.
    pub keypair: Keypair,
    /// Receives rewards and fees.
    pub coinbase: Address,
    /// Search threads.
    pub threads: usize,
    /// Least time between two payload rebuilds for new transactions (`--miner.recommit`).
    pub recommit: std::time::Duration,
    /// The search threads' CPU priority (`--miner.priority`).
    pub priority: MinerPriority,
}

/// The CPU priority of the proof-of-work search threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinerPriority {
    /// Only CPU time nothing else wants (Linux `SCHED_IDLE`): block import, sync, sampling,
    /// the execution client and the rest of the machine run first, so a node mining on every
    /// core imports a rival's block as fast as an idle one. The search gets every idle cycle.
    #[default]
    Idle,
    /// Scheduled like any other thread: the search competes with the node's own work.
    Normal,
}

/// Everything `qoin-cl` runs with.
pub struct Config {
    /// Where the chain store lives.
    pub datadir: PathBuf,
    /// The chain.
    pub genesis: Genesis,
    /// The execution client's engine API URL.
    pub engine_url: String,
    /// The shared JWT secret.
    pub jwt: qoin_engine_api::jwt::JwtSecret,
    /// Mining, if enabled.
    pub miner: Option<MinerConfig>,
    /// Accounts sampled per block besides the senders.
    pub sample_k: usize,
    /// The peer-to-peer network, if enabled.
    pub p2p: Option<P2pOptions>,
}

/// The network's part of the configuration (the chain's id and genesis come from the chain).
#[derive(Debug, Clone)]
pub struct P2pOptions {
    /// Addresses to listen on (TCP and QUIC).
    pub listen: Vec<qoin_cl_network::Multiaddr>,
    /// Peers to dial first.
    pub bootnodes: Vec<qoin_cl_network::Multiaddr>,
    /// Most inbound connections.
    pub max_inbound: u32,
    /// Most outbound connections.
    pub max_outbound: u32,
    /// Peers never to connect with, one per line; reread when it changes.
    pub deny_file: Option<PathBuf>,
    /// Test networks only: a delay on every inbound peer message (see `NetworkConfig`).
    pub inbound_delay: std::time::Duration,
}
