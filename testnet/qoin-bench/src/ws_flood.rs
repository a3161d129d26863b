//! `ws-flood`: 10,000 ERC-20 transfers flooded over one WebSocket connection into a release
//! `qoin-el node --dev` (its default instant mining), as a dapp backend or a bot would send
//! them: 200 keys of 50 transfers each, signed beforehand, all requests written without
//! waiting for answers (`eth_sendRawTransaction`, up to 10,000 in flight). The result is the
//! share mined within 60 s of the first send (goal: at least 95%), with the times to 95% and
//! to all, and how many the node refused.

use crate::{emit, round};
use alloy_primitives::{keccak256, Address, Bytes, TxKind, U256};
use jsonrpsee_core::client::ClientT;
use jsonrpsee_core::rpc_params;
use jsonrpsee_ws_client::WsClientBuilder;
use qoin_crypto::Keypair;
use qoin_engine_api::jwt::JwtSecret;
use qoin_primitives::{TxRequest, GWEI, SHOR_PER_QOIN};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TRANSFERS: usize = 10_000;
/// Senders, each sending `TRANSFERS / KEYS` (within the pool's 64 per sender).
const KEYS: usize = 200;
const WINDOW: Duration = Duration::from_secs(60);

fn fail(e: &dyn std::fmt::Display) -> ! {
    crate::fail("ws-flood", e)
}

/// One JSON-RPC call over HTTP (`rpc::rpc`); its result, or the benchmark fails.
fn call(agent: &ureq::Agent, url: &str, method: &str, params: &Value) -> Value {
    crate::rpc::rpc(agent, url, method, params).unwrap_or_else(|| fail(&format!("{method} failed")))
}

/// A batch of calls over HTTP; their results in order.
fn batch(agent: &ureq::Agent, url: &str, calls: &[(&str, Value)]) -> Vec<Value> {
    let body: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": i, "method": m, "params": p}))
        .collect();
    let answers: Vec<Value> = agent
        .post(url)
        .send_json(&body)
        .and_then(|mut a| a.body_mut().read_json())
        .unwrap_or_else(|e| fail(&format!("batch: {e}")));
    let mut out = vec![Value::Null; calls.len()];
    for a in answers {
        let i = a["id"].as_u64().unwrap_or(u64::MAX) as usize;
        match (out.get_mut(i), a.get("result")) {
            (Some(slot), Some(r)) => *slot = r.clone(),
            _ => fail(&format!("batch answer: {a}")),
        }
    }
    out
}

fn quantity(v: &Value) -> u64 {
    crate::network::quantity(v).unwrap_or_else(|| fail(&v))
}

/// The transfers mined so far: the senders' nonces.
fn mined(agent: &ureq::Agent, url: &str, keys: &[Keypair]) -> u64 {
    let calls: Vec<(&str, Value)> =
        keys.iter().map(|k| ("eth_getTransactionCount", json!([k.address(), "latest"]))).collect();
    batch(agent, url, &calls).iter().map(quantity).sum()
}

pub(crate) fn ws_flood() {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(60))).build().into();
    let secret_path = std::env::temp_dir().join(format!("qoin-bench-flood-{}.jwt", std::process::id()));
    JwtSecret::load_or_create(&secret_path).unwrap_or_else(|e| fail(&e));
    let el = crate::rpc::start_el(&secret_path, "instant");
    let _ = std::fs::remove_file(&secret_path);
    let url = el.rpc.clone();

    // The token, and 200 keys funded with coin and tokens (slot 0 is `balanceOf`).
    let token: Value =
        serde_json::from_str(include_str!("../../../execution-client/qoin-el/tests/contracts/Token.json"))
            .unwrap_or_else(|e| fail(&e));
    let dev0 = call(&agent, &url, "eth_accounts", &json!([]))[0].clone();
    let hash = call(&agent, &url, "eth_sendTransaction", &json!([{"from": dev0, "data": token["bytecode"]}]));
    let receipt = call(&agent, &url, "eth_getTransactionReceipt", &json!([hash]));
    let token: Address =
        serde_json::from_value(receipt["contractAddress"].clone()).unwrap_or_else(|e| fail(&e));
    let keys: Vec<Keypair> = (0..KEYS as u32)
        .into_par_iter()
        .map(|i| {
            Keypair::from_seed(&keccak256([b"qoin-bench/ws-flood/".as_slice(), &i.to_be_bytes()].concat()).0)
        })
        .collect();
    let coin = format!("{:#x}", U256::from(1_000 * SHOR_PER_QOIN));
    let tokens = format!("0x{:064x}", 1_000_000u64);
    let mut funding = Vec::new();
    for k in &keys {
        let slot = keccak256([k.address().into_word().0, [0u8; 32]].concat());
        funding.push(("anvil_setBalance", json!([k.address(), coin])));
        funding.push(("anvil_setStorageAt", json!([token, slot, tokens])));
    }
    batch(&agent, &url, &funding);

    // Every transfer signed before the clock starts: transfer(0x…beef, 1).
    let mut input = hex::decode("a9059cbb").unwrap_or_default();
    input.extend_from_slice(Address::repeat_byte(0xbe).into_word().as_slice());
    input.extend_from_slice(&U256::from(1).to_be_bytes::<32>());
    let input = Bytes::from(input);
    let per_key = (TRANSFERS / KEYS) as u64;
    let raw: Vec<Vec<String>> = keys
        .par_iter()
        .map(|k| {
            (0..per_key)
                .map(|nonce| {
                    let tx = TxRequest {
                        chain_id: 1337,
                        nonce,
                        max_priority_fee_per_gas: u128::from(GWEI),
                        max_fee_per_gas: 1_000 * u128::from(GWEI),
                        gas_limit: 100_000,
                        to: TxKind::Call(token),
                        value: U256::ZERO,
                        input: input.clone(),
                        access_list: Vec::new(),
                    };
                    format!("0x{}", hex::encode(tx.sign(k).encode()))
                })
                .collect()
        })
        .collect();
    // Interleaved by nonce (every key's nonce 0, then every key's 1, ...), as many clients would.
    let order: Vec<String> =
        (0..per_key as usize).flat_map(|n| raw.iter().map(move |r| r[n].clone())).collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&e));
    let ws_url = url.replace("http://", "ws://");
    let client = runtime
        .block_on(
            WsClientBuilder::default()
                .max_concurrent_requests(TRANSFERS)
                .request_timeout(WINDOW)
                .build(&ws_url),
        )
        .unwrap_or_else(|e| fail(&e));
    let started = Instant::now();
    let sending = runtime.spawn(async move {
        let sends = order.into_iter().map(|raw| {
            let client = &client;
            async move { client.request::<Value, _>("eth_sendRawTransaction", rpc_params![raw]).await }
        });
        let answers = futures::future::join_all(sends).await;
        let refused: Vec<String> =
            answers.iter().filter_map(|a| a.as_ref().err().map(|e| e.to_string())).collect();
        (started.elapsed(), refused)
    });

    let (mut at_95, mut at_all, mut count) = (None, None, 0);
    while started.elapsed() < WINDOW && at_all.is_none() {
        std::thread::sleep(Duration::from_millis(200));
        let now = mined(&agent, &url, &keys);
        if started.elapsed() > WINDOW {
            break; // read after the window: not counted
        }
        count = now;
        if at_95.is_none() && count * 100 >= TRANSFERS as u64 * 95 {
            at_95 = Some(started.elapsed());
        }
        if count >= TRANSFERS as u64 {
            at_all = Some(started.elapsed());
        }
    }
    let (submitted_in, refused) = runtime.block_on(sending).unwrap_or_else(|e| fail(&e));
    let blocks = quantity(&call(&agent, &url, "eth_blockNumber", &json!([])));
    // Mined is not transferred: every mined transfer must have moved its token.
    let mut balance_of = hex::decode("70a08231").unwrap_or_default();
    balance_of.extend_from_slice(Address::repeat_byte(0xbe).into_word().as_slice());
    let received =
        call(&agent, &url, "eth_call", &json!([{"to": token, "data": Bytes::from(balance_of)}, "latest"]));
    let received = U256::from_str_radix(received.as_str().unwrap_or_default().trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| fail(&e));
    let mined_now = mined(&agent, &url, &keys);
    if received != U256::from(mined_now) {
        fail(&format!("{mined_now} transfers mined but {received} tokens received: some reverted"));
    }
    let secs = |d: Option<Duration>| d.map(|d| round(d.as_secs_f64()));
    emit(&json!({
        "bench": "ws-flood", "unit": "share mined in 60 s", "goal": 0.95,
        "value": (count as f64 / TRANSFERS as f64 * 1000.0).round() / 1000.0,
        "sent": TRANSFERS, "senders": KEYS, "refused": refused.len(),
        "first_refusal": refused.first(),
        "answered_all_s": round(submitted_in.as_secs_f64()),
        "mined_95pct_s": secs(at_95), "mined_all_s": secs(at_all),
        "mined_per_s": at_all.map(|d| (TRANSFERS as f64 / d.as_secs_f64()).round()),
        "blocks": blocks,
    }));
}
