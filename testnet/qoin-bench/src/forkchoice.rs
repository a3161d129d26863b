//! `fork-choice`: the consensus client's fork tree and chain store at a large height.

use crate::{emit, percentile, round};
use alloy_primitives::{Address, B256, U256};
use qoin_cl_store::{ChainStore, MAX_REORG_DEPTH, PRUNE_STEP};
use qoin_consensus::forkchoice::ForkTree;
use qoin_consensus::validate::BlockMeta;
use qoin_crypto::{Domain, Keypair};
use qoin_engine_api::Payload;
use qoin_primitives::Header;
use qoin_store::StoreOptions;
use serde_json::json;
use std::time::Instant;

fn hash_of(i: u64, salt: u8) -> B256 {
    let mut b = [salt; 32];
    b[..8].copy_from_slice(&i.to_be_bytes());
    B256::from(b)
}

/// `blocks` blocks on one chain, one height in 20 with a second block (a sibling the next
/// block references, as miners do), pruned as the chain store prunes: each insert timed.
fn insertion(blocks: u64) {
    let work = U256::from(1u64 << 20);
    let mut t = ForkTree::new(hash_of(0, 0));
    let mut parent = t.root();
    let mut pending_sibling: Option<B256> = None;
    let mut times = Vec::with_capacity(blocks as usize);
    let mut prunes = Vec::new();
    for height in 1..=blocks {
        let hash = hash_of(height, 1);
        let siblings: Vec<B256> = pending_sibling.take().into_iter().collect();
        let start = Instant::now();
        t.insert(hash, parent, work, &siblings).expect("insert");
        let head = t.head();
        times.push(start.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(head);
        if height % 20 == 0 {
            let side = hash_of(height, 2);
            let start = Instant::now();
            t.insert(side, parent, work, &[]).expect("insert side");
            times.push(start.elapsed().as_secs_f64() * 1e6);
            pending_sibling = Some(side);
        }
        parent = hash;
        if height >= t.root_height() + MAX_REORG_DEPTH + PRUNE_STEP {
            let root = t.ancestor_at(&hash, height - MAX_REORG_DEPTH).expect("ancestor");
            let start = Instant::now();
            t.prune(&root);
            prunes.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    let n = times.len();
    times.sort_by(|a, b| a.total_cmp(b));
    prunes.sort_by(|a, b| a.total_cmp(b));
    for (stat, v) in
        [("p50", percentile(&times, 0.5)), ("p99", percentile(&times, 0.99)), ("max", times[n - 1])]
    {
        emit(&json!({"bench": "fork-choice", "what": "insert + head", "stat": stat, "unit": "us",
            "value": round(v), "blocks": blocks, "window": t.len()}));
    }
    if !prunes.is_empty() {
        emit(&json!({"bench": "fork-choice", "what": "prune", "stat": "p50", "unit": "us",
            "value": round(percentile(&prunes, 0.5)), "every_blocks": PRUNE_STEP}));
    }
}

/// A chain store holding `blocks` blocks (real-size headers: keys, ticket, seal), written as
/// the node writes them (insert, then set_head); then the time to open it.
fn startup(blocks: u64) {
    let dir = tempfile_dir();
    let keys = Keypair::from_seed(&[5; 32]);
    let ticket = keys.sign(Domain::MiningTicket, b"");
    let genesis = BlockMeta {
        hash: B256::repeat_byte(0x6e),
        parent_hash: B256::ZERO,
        height: 0,
        timestamp_ms: 0,
        payload_hash: B256::repeat_byte(0x6e),
        state_root: B256::ZERO,
        coinbase: Address::ZERO,
        work: U256::ZERO,
        siblings: Vec::new(),
    };
    let options = StoreOptions { durable: false, ..Default::default() };
    let mut store = ChainStore::open(&dir, genesis.clone(), 7, options).expect("open");
    let mut parent = genesis.clone();
    let start = Instant::now();
    for height in 1..=blocks {
        let header = Header {
            parent_hash: parent.hash,
            siblings: Vec::new(),
            height,
            timestamp_ms: height * 1000,
            difficulty: qoin_pow::Difficulty::MIN.to_compact(),
            payload_hash: hash_of(height, 3),
            state_root: B256::ZERO,
            transactions_root: B256::ZERO,
            coinbase: keys.address(),
            miner_keys: keys.public().clone(),
            extra_nonce: height,
            ticket: ticket.clone(),
            solution: [0; 16],
        };
        let payload = Payload {
            parent_hash: parent.payload_hash,
            number: height,
            timestamp: height,
            fee_recipient: Address::ZERO,
            state_root: B256::ZERO,
            receipts_root: B256::ZERO,
            logs_bloom: Default::default(),
            gas_limit: 30_000_000,
            gas_used: 0,
            base_fee_per_gas: 7,
            prev_randao: B256::ZERO,
            block_hash: hash_of(height, 3),
            transactions: Vec::new(),
            credits: Vec::new(),
        };
        let meta = BlockMeta::of(&header, header.hash().expect("hash")).expect("meta");
        store.insert(&header, &payload, meta.clone()).expect("insert");
        store.set_head(meta.hash).expect("set head");
        parent = meta;
    }
    let write_s = start.elapsed().as_secs_f64();
    drop(store);
    let size = dir_size(&dir);
    let start = Instant::now();
    let store = ChainStore::open(&dir, genesis, 7, options).expect("reopen");
    let open_s = start.elapsed().as_secs_f64();
    assert_eq!(store.head(), parent.hash, "the reopened store is at the head");
    emit(
        &json!({"bench": "fork-choice", "what": "start-up", "unit": "s", "value": (open_s * 1e4).round() / 1e4,
        "stored_blocks": blocks, "window": store.tree().len(), "store_mib": size >> 20}),
    );
    emit(&json!({"bench": "fork-choice", "what": "store insert + set_head", "unit": "blocks/s",
        "value": round(blocks as f64 / write_s), "stored_blocks": blocks}));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("qoin-bench-forkchoice-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Insertion latency over `blocks` blocks, then start-up from a store of `blocks` blocks.
pub(crate) fn fork_choice(blocks: u64) {
    insertion(blocks);
    startup(blocks);
}
