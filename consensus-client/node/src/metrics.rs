//! The consensus client's Prometheus metrics.

use qoin_metrics::{Counter, Gauge, Histogram, Registry};
use std::sync::Arc;

/// Handles to every metric `qoin-cl` exports.
#[derive(Debug)]
pub struct ClMetrics {
    /// The registry they belong to (served on `/metrics`).
    pub registry: Arc<Registry>,
    /// Height of the head.
    pub head_height: Gauge,
    /// Seconds between the head and its parent.
    pub block_time: Gauge,
    /// Difficulty (expected candidates) of the next block.
    pub difficulty: Gauge,
    /// Candidates per second of the last search.
    pub hash_rate: Gauge,
    /// Blocks this node mined.
    pub blocks_mined: Counter,
    /// Accounts checked by sampling.
    pub sampled_accounts: Counter,
    /// Balances recomputed by sampling.
    pub recomputed_balances: Counter,
    /// Blocks where sampling caught the execution client.
    pub sampling_failures: Counter,
    /// Payloads the execution client called invalid.
    pub invalid_payloads: Counter,
    /// Time from a trigger (new transaction or head) to the restarted search.
    pub miner_restart: Histogram,
    /// Peers of our chain (that sent a status).
    pub peers: Gauge,
    /// 1 while a sync runs.
    pub syncing: Gauge,
    /// Searches restarted on a rebuilt block that pays more.
    pub payload_rebuilds: Counter,
    /// Transactions from the execution client gossiped to peers.
    pub txs_gossiped: Counter,
    /// Gossiped transactions the execution client's pool took.
    pub txs_received: Counter,
    /// Gossiped transactions that were invalid (the sender was penalised).
    pub txs_rejected: Counter,
    /// Engine call latency by method: `NewPayload`.
    pub new_payload: Histogram,
    /// `NewPayloads` (a sync's runs of blocks) latency.
    pub new_payloads: Histogram,
    /// `ForkchoiceUpdated` latency.
    pub forkchoice: Histogram,
    /// `GetPayload` latency.
    pub get_payload: Histogram,
    /// `GetAccountProofs` latency.
    pub proofs: Histogram,
}

impl Default for ClMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ClMetrics {
    /// Registers every metric in a new registry.
    pub fn new() -> Self {
        let r = Arc::new(Registry::new());
        let engine = "qoin_cl_engine_call_seconds";
        let engine_help = "Engine API call latency seen by the consensus client.";
        Self {
            head_height: r.gauge("qoin_cl_head_height", "Height of the head block."),
            block_time: r.gauge("qoin_cl_block_time_seconds", "Time between the head and its parent."),
            difficulty: r
                .gauge("qoin_cl_difficulty", "Expected candidates per block at the next difficulty."),
            hash_rate: r.gauge("qoin_cl_hash_rate", "Candidates tested per second in the last search."),
            blocks_mined: r.counter("qoin_cl_blocks_mined_total", "Blocks mined by this node."),
            sampled_accounts: r
                .counter("qoin_cl_sampled_accounts_total", "Accounts checked by account-state sampling."),
            recomputed_balances: r
                .counter("qoin_cl_recomputed_balances_total", "Balances recomputed by sampling."),
            sampling_failures: r.counter(
                "qoin_cl_sampling_failures_total",
                "Blocks in which sampling found the execution client's state wrong.",
            ),
            invalid_payloads: r
                .counter("qoin_cl_invalid_payloads_total", "Payloads the execution client called invalid."),
            miner_restart: r.histogram(
                "qoin_cl_miner_restart_seconds",
                "Time from a new transaction or head to the miner searching on the new payload.",
                &[],
            ),
            peers: r.gauge("qoin_cl_peers", "Connected peers of this chain (that sent their status)."),
            syncing: r.gauge("qoin_cl_syncing", "1 while the node syncs from its peers, else 0."),
            payload_rebuilds: r.counter(
                "qoin_cl_miner_rebuilds_total",
                "Searches restarted because new transactions made a block that pays more.",
            ),
            txs_gossiped: r.counter(
                "qoin_cl_txs_gossiped_total",
                "Transactions from the execution client's pool gossiped to peers.",
            ),
            txs_received: r.counter(
                "qoin_cl_txs_received_total",
                "Gossiped transactions the execution client's pool admitted.",
            ),
            txs_rejected: r.counter(
                "qoin_cl_txs_rejected_total",
                "Gossiped transactions found invalid (their sender penalised).",
            ),
            new_payload: r.histogram(engine, engine_help, &[("method", "NewPayload")]),
            new_payloads: r.histogram(engine, engine_help, &[("method", "NewPayloads")]),
            forkchoice: r.histogram(engine, engine_help, &[("method", "ForkchoiceUpdated")]),
            get_payload: r.histogram(engine, engine_help, &[("method", "GetPayload")]),
            proofs: r.histogram(engine, engine_help, &[("method", "GetAccountProofs")]),
            registry: r,
        }
    }
}
