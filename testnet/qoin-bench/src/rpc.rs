//! JSON-RPC load benchmarks against a real `qoin-el` process: `rpc-flood` (the engine API's
//! NewPayload + ForkchoiceUpdated latency while 64 clients flood `eth_call` and `eth_getLogs`,
//! against the same latency idle).

use crate::{emit, percentile};
use alloy_primitives::{Address, B256};
use qoin_engine_api::jwt::JwtSecret;
use qoin_engine_api::{Attributes, EngineClient};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const ROUNDS: usize = 200;

fn fail(e: &dyn std::fmt::Display) -> ! {
    eprintln!("rpc bench failed: {e}");
    std::process::exit(1)
}

/// A `qoin-el node --dev --mine off` (blocks only through the engine API), killed on drop.
struct El {
    child: Child,
    rpc: String,
    engine: String,
    dir: std::path::PathBuf,
}

impl Drop for El {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_el(secret_path: &std::path::Path) -> El {
    let bins = crate::network::release_bins();
    let dir = std::env::temp_dir().join(format!("qoin-bench-rpc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(bins.join("qoin-el"))
        .arg("--datadir")
        .arg(&dir)
        .args(["node", "--dev", "--mine", "off", "--http.port", "0", "--authrpc.port", "0"])
        .arg("--authrpc.jwtsecret")
        .arg(secret_path)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(&e));
    let stderr = child.stderr.take().unwrap_or_else(|| fail(&"no stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for (kind, marker) in
                [("rpc", "JSON-RPC listening on http://"), ("engine", "engine API listening on http://")]
            {
                if let Some(rest) = line.split(marker).nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default().to_string();
                    let _ = tx.send((kind, addr));
                }
            }
        }
    });
    let (mut rpc, mut engine) = (None, None);
    while rpc.is_none() || engine.is_none() {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(("rpc", a)) => rpc = Some(format!("http://{a}")),
            Ok((_, a)) => engine = Some(format!("http://{a}")),
            Err(e) => fail(&format!("qoin-el did not start: {e}")),
        }
    }
    El { child, rpc: rpc.unwrap_or_default(), engine: engine.unwrap_or_default(), dir }
}

fn rpc(agent: &ureq::Agent, url: &str, method: &str, params: &Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut answer = agent.post(url).send_json(&body).ok()?;
    let v: Value = answer.body_mut().read_json().ok()?;
    v.get("result").cloned()
}

/// Runs the calling flood thread at nice 10: the flooding clients stand in for callers on
/// other machines, and must not take this machine's CPU from the engine client whose latency
/// is measured (the node's own JSON-RPC threads run at nice 10 too).
fn background() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority reads no memory of ours; PRIO_PROCESS with id 0 names the calling
    // thread on Linux.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// A call that burns about 1M gas: the init code of a create, counting down 40,000.
/// PUSH3 40000 JUMPDEST PUSH1 1 SWAP1 SUB DUP1 PUSH1 4 JUMPI STOP
const BUSY_CALL: &str = "0x62009c405b600190038060045700";

/// The engine round trips (NewPayload + ForkchoiceUpdated of the builder's own empty payload,
/// in ms) of `rounds` blocks built on `head`; the new head.
async fn build(client: &EngineClient, mut head: B256, time: &mut u64, rounds: usize) -> (Vec<f64>, B256) {
    let mut out = Vec::with_capacity(rounds);
    for round in 0..rounds {
        *time += 1;
        let attrs = Attributes {
            timestamp_ms: *time * 1000,
            fee_recipient: Address::repeat_byte(0xbe),
            credits: Vec::new(),
            prev_randao: B256::repeat_byte(round as u8),
        };
        let (_, id) = client.forkchoice_updated(head, None, Some(&attrs)).await.unwrap_or_else(|e| fail(&e));
        let (payload, _) = client.get_payload(id.unwrap_or_default()).await.unwrap_or_else(|e| fail(&e));
        out.push(crate::engine::import_timed(client, &payload, round).await);
        head = payload.block_hash;
    }
    (out, head)
}

/// `rpc-flood`: engine round trips idle, then while 64 clients flood `eth_call` (about 1M gas
/// each) and `eth_getLogs` (every block), on a real `qoin-el` process.
pub(crate) fn rpc_flood() {
    let secret_path = std::env::temp_dir().join(format!("qoin-bench-rpc-{}.jwt", std::process::id()));
    let secret = JwtSecret::load_or_create(&secret_path).unwrap_or_else(|e| fail(&e));
    let el = start_el(&secret_path);
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(60))).build().into();
    let latest = rpc(&agent, &el.rpc, "eth_getBlockByNumber", &json!(["latest", false]))
        .unwrap_or_else(|| fail(&"no head block"));
    let head: B256 = serde_json::from_value(latest["hash"].clone()).unwrap_or_else(|e| fail(&e));
    let mut time =
        u64::from_str_radix(latest["timestamp"].as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)
            .unwrap_or_else(|e| fail(&e));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(&e));
    let _inside = runtime.enter();
    let client = EngineClient::new(&el.engine, secret, "bench").unwrap_or_else(|e| fail(&e));
    runtime.block_on(client.exchange_capabilities()).unwrap_or_else(|e| fail(&e));
    // Warm-up, then idle.
    let (_, head) = runtime.block_on(build(&client, head, &mut time, 20));
    let (mut idle, head) = runtime.block_on(build(&client, head, &mut time, ROUNDS));

    let stop = Arc::new(AtomicBool::new(false));
    let (calls, logs, errors) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flooders: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (stop, calls, logs, errors) = (stop.clone(), calls.clone(), logs.clone(), errors.clone());
            let (url, agent) = (el.rpc.clone(), agent.clone());
            std::thread::spawn(move || {
                background();
                while !stop.load(Ordering::Relaxed) {
                    let (ok, counter) = if i % 2 == 0 {
                        (
                            rpc(
                                &agent,
                                &url,
                                "eth_call",
                                &json!([{"input": BUSY_CALL, "gas": "0x1000000"}, "latest"]),
                            ),
                            &calls,
                        )
                    } else {
                        (
                            rpc(
                                &agent,
                                &url,
                                "eth_getLogs",
                                &json!([{"fromBlock": "0x0", "toBlock": "latest"}]),
                            ),
                            &logs,
                        )
                    };
                    if ok.is_some() { counter } else { &errors }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let (c0, l0) = (calls.load(Ordering::Relaxed), logs.load(Ordering::Relaxed));
    let started = Instant::now();
    let (mut flooded, _) = runtime.block_on(build(&client, head, &mut time, ROUNDS));
    let seconds = started.elapsed().as_secs_f64();
    let (c1, l1) = (calls.load(Ordering::Relaxed), logs.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.join();
    }
    idle.sort_by(f64::total_cmp);
    flooded.sort_by(f64::total_cmp);
    for (state, v) in [("idle", &idle), ("flooded", &flooded)] {
        for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
            emit(&json!({
                "bench": "rpc-flood", "unit": "ms", "value": (percentile(v, p) * 100.0).round() / 100.0,
                "stat": name, "rpc": state, "clients": if state == "idle" { 0 } else { CLIENTS }, "rounds": v.len(),
            }));
        }
    }
    let ratio = percentile(&flooded, 0.99) / percentile(&idle, 0.99);
    emit(
        &json!({"bench": "rpc-flood", "unit": "x idle", "value": (ratio * 100.0).round() / 100.0, "stat": "p99 flooded / p99 idle"}),
    );
    emit(&json!({
        "bench": "rpc-flood", "unit": "requests/s", "stat": "served during the flood",
        "eth_call": ((c1 - c0) as f64 / seconds).round(), "eth_getLogs": ((l1 - l0) as f64 / seconds).round(),
        "value": (((c1 - c0) + (l1 - l0)) as f64 / seconds).round(), "errors": errors.load(Ordering::Relaxed),
    }));
    let _ = std::fs::remove_file(&secret_path);
}
