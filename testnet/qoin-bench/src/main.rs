//! # qoin-bench
//!
//! Owns Qoin's benchmarks. `cargo run --release -p qoin-bench -- <name>` runs one and prints
//! one JSON object per result line, e.g.
//! `{"bench":"sig-verify","unit":"verifications/s","value":23456.7,"threads":2}`.
//! `qoin-bench list` names them all. Results are recorded in `docs/benchmarks.md`.

mod engine;
mod exec;
mod forkchoice;
mod market_transfer;
mod markets;
mod network;
mod pow;
mod rpc;
mod sig;
mod ws_flood;

use clap::Parser;
use qoin_crypto::{verify, verify_batch, Domain, DualSignature, Keypair, VerifyItem};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BENCHES: &[(&str, &str)] = &[
    ("sig-sign", "dual Falcon-512 + ML-DSA-44 signatures per second, one thread and all cores"),
    ("sig-verify", "dual signature verifications per second, one thread and all cores"),
    (
        "sig-libs",
        "Falcon-512 and ML-DSA-44 verifications per second through each Rust implementation, one thread",
    ),
    ("keccak", "keccak256 of 32-byte inputs (hashes/s) and of 1 MiB buffers (MB/s), one thread"),
    ("mq-search", "MQ exhaustive-search candidates per second, per backend, one core and all cores"),
    ("mq-cancel", "time from setting the stop flag to the search returning, per backend"),
    ("mq-verify", "full seal verifications per second on one core; ticket verification separately"),
    ("difficulty-sim", "mean and spread of simulated block times at the target, constant hash rate"),
    ("precompiles", "time per call of the Falcon, ML-DSA and dual signature precompiles, and their gas"),
    ("import-transfers", "blocks of PQ-signed transfers imported end to end (signatures, EVM, root, commit)"),
    ("import-erc20", "blocks of PQ-signed ERC-20 transfer calls imported end to end"),
    ("state-root", "state root after touching 10,000 of 1,000,000 accounts; resident memory"),
    (
        "engine-roundtrip",
        "NewPayload + ForkchoiceUpdated over gRPC+JWT, empty and 1,000-tx payloads (p50, p99)",
    ),
    (
        "fork-choice",
        "fork tree insert + head latency (p50, p99) over 1,000,000 blocks; start-up from a store of as many",
    ),
    (
        "block-propagation",
        "8 pairs, 50 ms one-way link delay: from a block mined to imported at each other node (p50, p95)",
    ),
    (
        "stale-rate",
        "8 miners, 1 s target, 50 ms link delay: share of mined blocks neither canonical nor a sibling",
    ),
    ("sync", "a node 10,000 empty blocks behind catching up from its peer (blocks/s)"),
    ("sync-transfers", "a node catching up 100 blocks of 1,000 transfers (tx/s), against import-transfers in the same run"),
    (
        "gossip-bandwidth",
        "4 pairs: bytes sent and received per transaction per node (transports, empty blocks subtracted)",
    ),
    (
        "rpc-flood",
        "engine NewPayload + ForkchoiceUpdated (p50, p99) idle and while 64 clients flood eth_call and eth_getLogs",
    ),
    (
        "rpc-throughput",
        "eth_call/s and eth_sendTransaction-to-receipt/s from 10 senders on qoin-el --dev, beside anvil (npm) in the same run",
    ),
    (
        "ws-flood",
        "10,000 PQ-signed ERC-20 transfers flooded over one WebSocket into qoin-el --dev: share mined within 60 s",
    ),
    (
        "wasm-job",
        "compute-market jobs: time of the fuel-metered WASM run against the same module unmetered, and fuel/s",
    ),
    (
        "market-gas",
        "gas of each storage- and compute-market operation; storage proofs per block at the dev gas limit",
    ),
    (
        "market-transfer",
        "storage-market upload and retrieval MB/s over loopback (root checks, Merkle paths, decoding), against plain HTTP in the same run",
    ),
    (
        "devnet-blocktime",
        "mean and spread of block times of a running devnet over 200 blocks at the 1 s target",
    ),
];

/// Qoin benchmarks; prints JSON lines.
#[derive(Parser, Debug)]
#[command(name = "qoin-bench", about)]
struct Cli {
    /// Benchmark to run, or `list`, or `all`.
    name: String,
    /// Seconds to measure each result for.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Blocks for `fork-choice` (default 1,000,000), `block-propagation` (100), `stale-rate`
    /// (500), `sync` (10,000) and `sync-transfers` (100); transactions for `gossip-bandwidth`
    /// (300).
    #[arg(long)]
    blocks: Option<u64>,
    /// Transactions per block for `import-transfers` and `import-erc20` (default 5,000; the
    /// 100,000 senders fill 100,000 / N blocks).
    #[arg(long)]
    txs_per_block: Option<usize>,
    /// `import-transfers` and `import-erc20` import as the execution client does blocks whose
    /// consensus client verified the signatures (as in a sync): no signature checks.
    #[arg(long)]
    signatures_verified: bool,
    /// `import-transfers` and `import-erc20` import runs of N blocks in one database
    /// transaction, as the execution client imports a sync's `NewPayloads` (default 1).
    #[arg(long, default_value_t = 1)]
    blocks_per_commit: usize,
}

pub(crate) fn emit(v: &Value) {
    println!("{v}");
}

/// Runs `step` (which does `per_call` operations) until `secs` have passed; returns ops/s.
pub(crate) fn rate(secs: f64, per_call: u64, mut step: impl FnMut()) -> f64 {
    step(); // warm up
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        step();
        ops += per_call;
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

fn keys(n: u8) -> Vec<Keypair> {
    (0..n).map(|i| Keypair::from_seed(&[i; 32])).collect()
}

fn sig_sign(secs: f64) {
    let ks = keys(4);
    let msg = [7u8; 32];
    let single = rate(secs, 1, || {
        std::hint::black_box(ks[0].sign(Domain::Transaction, &msg));
    });
    let threads = rayon::current_num_threads();
    let batch = 64 * threads as u64;
    let all = rate(secs, batch, || {
        (0..batch).into_par_iter().for_each(|i| {
            std::hint::black_box(ks[i as usize % ks.len()].sign(Domain::Transaction, &msg));
        });
    });
    for (value, threads) in [(single, 1), (all, threads)] {
        emit(
            &json!({"bench": "sig-sign", "unit": "signatures/s", "value": round(value), "threads": threads}),
        );
    }
}

fn sig_verify(secs: f64) {
    let ks = keys(8);
    let msgs: Vec<[u8; 32]> = (0..512u32).map(|i| alloy_primitives::keccak256(i.to_be_bytes()).0).collect();
    let sigs: Vec<DualSignature> =
        msgs.par_iter().enumerate().map(|(i, m)| ks[i % ks.len()].sign(Domain::Transaction, m)).collect();
    let items: Vec<VerifyItem<'_>> = msgs
        .iter()
        .zip(&sigs)
        .enumerate()
        .map(|(i, (msg, sig))| VerifyItem {
            keys: ks[i % ks.len()].public(),
            domain: Domain::Transaction,
            msg,
            sig,
        })
        .collect();
    let mut i = 0;
    let single = rate(secs, 1, || {
        let it = &items[i % items.len()];
        i += 1;
        assert!(verify(it.keys, it.domain, it.msg, it.sig).is_ok());
    });
    let all = rate(secs, items.len() as u64, || {
        assert!(verify_batch(&items).iter().all(Result::is_ok));
    });
    for (value, threads) in [(single, 1), (all, rayon::current_num_threads())] {
        emit(
            &json!({"bench": "sig-verify", "unit": "verifications/s", "value": round(value), "threads": threads}),
        );
    }
}

fn keccak(secs: f64) {
    let mut x = [0u8; 32];
    let small = rate(secs, 1, || {
        x = alloy_primitives::keccak256(x).0;
    });
    emit(
        &json!({"bench": "keccak", "unit": "hashes/s", "value": round(small), "threads": 1, "input_bytes": 32}),
    );
    let big = vec![0x5au8; 1 << 20];
    let mb = rate(secs, 1, || {
        std::hint::black_box(alloy_primitives::keccak256(&big));
    });
    emit(
        &json!({"bench": "keccak", "unit": "MB/s", "value": round(mb * 1.048_576), "threads": 1, "input_bytes": 1 << 20}),
    );
}

/// The value at quantile `p` (0..=1) of `sorted` (ascending, not empty).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Ends the running benchmark with `e`: says why, then unwinds, so that the nodes and programs
/// it started are stopped by their `Drop` (an exit here would leave them running); `main`
/// then exits 1.
pub(crate) fn fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("{what} failed: {e}");
    std::panic::resume_unwind(Box::new(()))
}

/// Runs benchmark `name`; exits 1 once it has failed (see [`fail`]) and unwound.
fn run_or_exit(run: &dyn Fn(&str), name: &str) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(name))).is_err() {
        std::process::exit(1);
    }
}

fn main() {
    let cli = Cli::parse();
    let shape = exec::ImportShape {
        txs_per_block: cli.txs_per_block.unwrap_or(exec::PER_BLOCK),
        signatures_verified: cli.signatures_verified,
        blocks_per_commit: cli.blocks_per_commit,
    };
    let run = |name: &str| match name {
        "sig-sign" => sig_sign(cli.seconds),
        "sig-verify" => sig_verify(cli.seconds),
        "sig-libs" => sig::sig_libs(cli.seconds),
        "keccak" => keccak(cli.seconds),
        "mq-search" => pow::mq_search(cli.seconds),
        "mq-cancel" => pow::mq_cancel(),
        "mq-verify" => pow::mq_verify(cli.seconds),
        "difficulty-sim" => pow::difficulty_sim(),
        "precompiles" => exec::precompile_costs(cli.seconds),
        "import-transfers" => {
            exec::import_transfers(shape);
        }
        "import-erc20" => exec::import_erc20(shape),
        "state-root" => exec::state_root(),
        "engine-roundtrip" => engine::engine_roundtrip(),
        "devnet-blocktime" => engine::devnet_blocktime(),
        "rpc-flood" => rpc::rpc_flood(),
        "rpc-throughput" => rpc::rpc_throughput(),
        "ws-flood" => ws_flood::ws_flood(),
        "fork-choice" => forkchoice::fork_choice(cli.blocks.unwrap_or(1_000_000)),
        "block-propagation" => network::block_propagation(cli.blocks.unwrap_or(100)),
        "stale-rate" => network::stale_rate(cli.blocks.unwrap_or(500)),
        "sync" => network::sync(cli.blocks.unwrap_or(10_000)),
        "sync-transfers" => network::sync_transfers(cli.blocks.unwrap_or(100)),
        "gossip-bandwidth" => network::gossip_bandwidth(cli.blocks.unwrap_or(300)),
        "wasm-job" => markets::wasm_job(),
        "market-gas" => markets::market_gas(),
        "market-transfer" => market_transfer::market_transfer(cli.seconds),
        _ => unreachable!("names come from BENCHES"),
    };
    match cli.name.as_str() {
        "list" => {
            for (name, what) in BENCHES {
                println!("{name:12} {what}");
            }
        }
        "all" => BENCHES.iter().for_each(|(name, _)| run_or_exit(&run, name)),
        name if BENCHES.iter().any(|(n, _)| *n == name) => run_or_exit(&run, name),
        other => {
            eprintln!("unknown benchmark {other:?}; `qoin-bench list` names them");
            std::process::exit(2);
        }
    }
}
