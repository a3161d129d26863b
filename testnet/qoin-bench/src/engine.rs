//! Engine API and devnet benchmarks: `engine-roundtrip` (NewPayload + ForkchoiceUpdated over
//! real gRPC with JWT, against a real execution chain) and `devnet-blocktime` (block times of
//! a running two-process devnet).

use crate::{emit, percentile};
use alloy_primitives::{Address, B256, U256};
use qoin_crypto::Keypair;
use qoin_el_chain::Chain;
use qoin_el_engine::EngineHandler;
use qoin_el_node::{LocalMining, Node};
use qoin_engine_api::jwt::JwtSecret;
use qoin_engine_api::{Attributes, Credit, EngineClient, Payload, Status};
use qoin_primitives::{Genesis, GenesisAccount, PowParams, RewardParams, SignedTx, TxKind, TxRequest};
use qoin_store::StoreOptions;
use rayon::prelude::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SENDERS: usize = 100;
const ROUNDS: usize = 40;

fn fail(e: &dyn std::fmt::Display) -> ! {
    crate::fail("engine bench", e)
}

fn el(dir: &std::path::Path, funded: &[Address]) -> Arc<Node> {
    let genesis = Genesis {
        chain_id: 4343,
        timestamp: 1_767_225_600,
        gas_limit: 100_000_000,
        base_fee_per_gas: U256::from(qoin_primitives::GWEI),
        target_block_time_ms: 1000,
        pow: PowParams { initial_equations: 20, initial_mantissa: 0, half_life_secs: 600 },
        rewards: RewardParams::default(),
        alloc: funded
            .iter()
            .map(|a| (*a, GenesisAccount { balance: U256::from(10u64.pow(20)), ..Default::default() }))
            .collect(),
    };
    let chain = Chain::open(dir, genesis, StoreOptions { max_size: 1 << 34, ..Default::default() })
        .unwrap_or_else(|e| fail(&e));
    Arc::new(Node::new(chain, Vec::new(), LocalMining::Off, Address::ZERO))
}

/// NewPayload + ForkchoiceUpdated of `payload` through `client`, in milliseconds; both must
/// answer VALID.
pub(crate) async fn import_timed(client: &EngineClient, payload: &Payload, round: usize) -> f64 {
    let t = Instant::now();
    let st = client.new_payload(payload, false).await.unwrap_or_else(|e| fail(&e));
    let (fc, _) =
        client.forkchoice_updated(payload.block_hash, None, None).await.unwrap_or_else(|e| fail(&e));
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if st.status != Status::Valid || fc.status != Status::Valid {
        fail(&format!("round {round}: {st:?} / {fc:?}"));
    }
    ms
}

/// NewPayload + ForkchoiceUpdated latency, empty and 1,000-transaction payloads, for the
/// builder's own payload (cached execution) and for a second execution client that
/// re-executes it (as for a block from another miner).
pub(crate) fn engine_roundtrip() {
    let keys: Vec<Keypair> = (0..SENDERS as u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            Keypair::from_seed(&seed)
        })
        .collect();
    let funded: Vec<Address> = keys.iter().map(Keypair::address).collect();
    let per_block = 1000 / SENDERS;
    eprintln!("signing {} transactions…", ROUNDS * 1000);
    let txs: Vec<Vec<SignedTx>> = (0..ROUNDS)
        .map(|r| {
            (0..1000)
                .into_par_iter()
                .map(|i| {
                    let k = &keys[i % SENDERS];
                    TxRequest {
                        chain_id: 4343,
                        nonce: (r * per_block + i / SENDERS) as u64,
                        max_priority_fee_per_gas: 1,
                        max_fee_per_gas: 10_000_000_000,
                        gas_limit: 21_000,
                        to: TxKind::Call(Address::repeat_byte(0x77)),
                        value: U256::from(1u8),
                        ..Default::default()
                    }
                    .sign(k)
                })
                .collect()
        })
        .collect();
    let root = std::env::temp_dir().join(format!("qoin-bench-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (builder, validator) = (el(&root.join("a"), &funded), el(&root.join("b"), &funded));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(&e));
    runtime.block_on(async {
        let secret = JwtSecret::random();
        let addr = "127.0.0.1:0".parse().unwrap_or_else(|e| fail(&e));
        let sa = qoin_engine_api::serve(Arc::new(EngineHandler::new(builder.clone())), addr, secret.clone())
            .await
            .unwrap_or_else(|e| fail(&e));
        let sb = qoin_engine_api::serve(Arc::new(EngineHandler::new(validator.clone())), addr, secret.clone())
            .await
            .unwrap_or_else(|e| fail(&e));
        let a = EngineClient::new(&format!("http://{}", sa.addr), secret.clone(), "bench").unwrap_or_else(|e| fail(&e));
        let b = EngineClient::new(&format!("http://{}", sb.addr), secret, "bench").unwrap_or_else(|e| fail(&e));
        a.exchange_capabilities().await.unwrap_or_else(|e| fail(&e));
        b.exchange_capabilities().await.unwrap_or_else(|e| fail(&e));
        let mut results: Vec<(&str, usize, Vec<f64>, Vec<f64>)> = Vec::new();
        for (label, n) in [("empty", 0usize), ("1000-tx", 1000)] {
            let (mut own, mut other) = (Vec::new(), Vec::new());
            for (round, batch) in txs.iter().enumerate() {
                let head = builder.chain().head().unwrap_or_else(|e| fail(&e));
                if n > 0 {
                    for t in batch {
                        builder.submit(t.clone()).unwrap_or_else(|e| fail(&e));
                    }
                }
                let attrs = Attributes {
                    timestamp_ms: (head.timestamp + 1) * 1000,
                    fee_recipient: Address::repeat_byte(0xbe),
                    credits: vec![Credit { address: Address::repeat_byte(0xbe), amount: U256::from(427_789_185_489_390_828u64) }],
                    prev_randao: B256::repeat_byte(round as u8),
                };
                let (_, id) = a.forkchoice_updated(head.hash(), None, Some(&attrs)).await.unwrap_or_else(|e| fail(&e));
                let (payload, _) = a.get_payload(id.unwrap_or_default()).await.unwrap_or_else(|e| fail(&e));
                assert_eq!(payload.transactions.len(), n, "the payload holds the pooled transactions");
                for (client, out) in [(&a, &mut own), (&b, &mut other)] {
                    out.push(import_timed(client, &payload, round).await);
                }
            }
            own.sort_by(f64::total_cmp);
            other.sort_by(f64::total_cmp);
            results.push((label, n, own, other));
        }
        for (label, n, own, other) in results {
            for (who, v) in [("builder (own payload)", own), ("validator (re-executes)", other)] {
                for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
                    emit(&json!({
                        "bench": "engine-roundtrip", "unit": "ms", "value": (percentile(&v, p) * 100.0).round() / 100.0,
                        "stat": name, "payload": label, "transactions": n, "client": who, "rounds": v.len(),
                    }));
                }
            }
        }
        sa.stop().await;
        sb.stop().await;
    });
    let _ = std::fs::remove_dir_all(&root);
}

/// Starts `qoin-testnet dev --fresh` (release build, all cores) and measures the time between
/// consecutive mined blocks (from qoin-cl's log) over 200 blocks at the 1 s target.
pub(crate) fn devnet_blocktime() {
    let dir = crate::network::release_bins();
    let data = std::env::temp_dir().join(format!("qoin-bench-devnet-{}", std::process::id()));
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
    };
    let mut child = Command::new(dir.join("qoin-testnet"))
        .env_remove("CARGO")
        .args(["dev", "--fresh", "--datadir"])
        .arg(&data)
        .args(["--http-port", &free().to_string(), "--engine-port", &free().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(&e));
    let stderr = child.stderr.take().unwrap_or_else(|| fail(&"no stderr"));
    const BLOCKS: usize = 200;
    let mut times: Vec<Instant> = Vec::new();
    let mut log = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(1200);
    while times.len() <= BLOCKS && Instant::now() < deadline {
        match log.next() {
            Some(Ok(line)) if line.contains("qoin-cl mined block #") => times.push(Instant::now()),
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    if times.len() <= BLOCKS {
        fail(&format!("only {} blocks mined", times.len()));
    }
    // The first interval includes start-up; measure from the first block on.
    let mut gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    let n = gaps.len() as f64;
    let mean = gaps.iter().sum::<f64>() / n;
    let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n).sqrt();
    gaps.sort_by(f64::total_cmp);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (stat, v) in [
        ("mean", mean),
        ("stddev", sd),
        ("p50", percentile(&gaps, 0.5)),
        ("p95", percentile(&gaps, 0.95)),
        ("max", percentile(&gaps, 1.0)),
    ] {
        emit(&json!({
            "bench": "devnet-blocktime", "unit": "s", "value": (v * 1000.0).round() / 1000.0, "stat": stat,
            "blocks": gaps.len(), "target_s": 1.0, "miner_threads": threads,
        }));
    }
}
