//! JSON-RPC load benchmarks against a real `qoin-el` process: `rpc-flood` (the engine API's
//! NewPayload + ForkchoiceUpdated latency while 64 clients flood `eth_call` and `eth_getLogs`,
//! against the same latency idle) and `rpc-throughput` (`eth_call`/s and
//! `eth_sendTransaction`-to-receipt/s on `qoin-el --dev`, beside anvil in the same run, the
//! `eth_call` phases alternating between the two).

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
    crate::fail("rpc bench", e)
}

/// A `qoin-el node --dev` (`--mine off`: blocks only through the engine API), killed on drop.
pub(crate) struct El {
    child: Child,
    pub(crate) rpc: String,
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

pub(crate) fn start_el(secret_path: &std::path::Path, mine: &str) -> El {
    let bins = crate::network::release_bins();
    let dir = std::env::temp_dir().join(format!("qoin-bench-rpc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(bins.join("qoin-el"))
        .arg("--datadir")
        .arg(&dir)
        .args(["node", "--dev", "--mine", mine, "--http.port", "0", "--authrpc.port", "0"])
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

pub(crate) fn rpc(agent: &ureq::Agent, url: &str, method: &str, params: &Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut answer = agent.post(url).send_json(&body).ok()?;
    let v: Value = answer.body_mut().read_json().ok()?;
    v.get("result").cloned()
}

/// Runs the calling flood thread under `SCHED_IDLE` (nice 19 where that is refused): the
/// flooding clients stand in for callers on other machines, which take none of this machine's
/// CPU; at nice 10 the 64 of them together still took a large share of the two cores from the
/// node being measured (its engine API at nice 0, its JSON-RPC threads at nice 10). The node's
/// own threads are not changed: the load they serve is the same.
fn background() {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_setscheduler reads the parameter struct we pass and nothing else; pid 0
    // names the calling thread on Linux. setpriority reads no memory of ours.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
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
    let el = start_el(&secret_path, "off");
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

/// Seconds each `rpc-throughput` phase runs, per node.
const THROUGHPUT_SECONDS: u64 = 10;
/// Senders (and callers) at once: the dev accounts 0-9 of both nodes.
const SENDERS: usize = 10;

/// anvil from npm (`@foundry-rs/anvil-linux-amd64`, installed by `npm ci` in the dapp-tools
/// folder), or `QOIN_ANVIL`.
fn anvil_path() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("QOIN_ANVIL") {
        return p.into();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join(
        "execution-client/qoin-el/tests/dapp-tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
    );
    if !p.exists() {
        fail(&format!(
            "anvil not found at {} (run `npm ci` in execution-client/qoin-el/tests/dapp-tools, or set QOIN_ANVIL)",
            p.display()
        ));
    }
    p
}

/// anvil on a free loopback port (automine: a block per transaction, as `qoin-el --dev`).
struct Anvil {
    child: Child,
    rpc: String,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_anvil(agent: &ureq::Agent) -> Anvil {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| fail(&e))
        .port();
    let child = Command::new(anvil_path())
        .args(["--port", &port.to_string(), "--host", "127.0.0.1", "--silent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(&e));
    let anvil = Anvil { child, rpc: format!("http://127.0.0.1:{port}") };
    let until = Instant::now() + Duration::from_secs(30);
    while rpc(agent, &anvil.rpc, "eth_chainId", &json!([])).is_none() {
        if Instant::now() > until {
            fail(&"anvil did not answer within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anvil
}

/// The receipt of `hash`, polled every millisecond.
fn receipt(agent: &ureq::Agent, url: &str, hash: &Value) -> Value {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = rpc(agent, url, "eth_getTransactionReceipt", &json!([hash])).filter(|r| !r.is_null())
        {
            return r;
        }
        if Instant::now() > until {
            fail(&format!("no receipt for {hash} from {url}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `work(sender index, from)` on `SENDERS` threads for `THROUGHPUT_SECONDS`; answers the
/// successes per second and the failures.
fn for_a_while(accounts: &[Value], work: impl Fn(&Value) -> bool + Sync) -> (f64, u64) {
    let stop = AtomicBool::new(false);
    let (done, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|s| {
        for from in accounts.iter().take(SENDERS) {
            let (stop, done, failed, work) = (&stop, &done, &failed, &work);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if work(from) { done } else { failed }.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs(THROUGHPUT_SECONDS));
        stop.store(true, Ordering::Relaxed);
    });
    (done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(), failed.load(Ordering::Relaxed))
}

/// A node under test: its URL, unlocked accounts and the Counter contract deployed on it.
struct Target {
    url: String,
    accounts: Vec<Value>,
    counter: Value,
}

/// Deploys the Counter contract (constructor argument 5) on the node at `url`.
fn deploy(agent: &ureq::Agent, url: &str) -> Target {
    let counter: Value =
        serde_json::from_str(include_str!("../../../execution-client/qoin-el/tests/contracts/Counter.json"))
            .unwrap_or_else(|e| fail(&e));
    let accounts = rpc(agent, url, "eth_accounts", &json!([])).unwrap_or_else(|| fail(&"no eth_accounts"));
    let accounts = accounts.as_array().cloned().unwrap_or_default();
    if accounts.len() < SENDERS {
        fail(&format!("{url} unlocks {} accounts, {SENDERS} needed", accounts.len()));
    }
    let code = format!("{}{:064x}", counter["bytecode"].as_str().unwrap_or_default(), 5);
    let hash = rpc(
        agent,
        url,
        "eth_sendTransaction",
        &json!([{"from": accounts[0], "data": code, "gas": "0x200000"}]),
    )
    .unwrap_or_else(|| fail(&"deploy refused"));
    let counter = receipt(agent, url, &hash)["contractAddress"].clone();
    Target { url: url.to_string(), accounts, counter }
}

/// `eth_call`/s of `count()` for `THROUGHPUT_SECONDS`, and the failures.
fn calls(agent: &ureq::Agent, t: &Target) -> (f64, u64) {
    let count_call = json!([{"to": t.counter, "data": "0x06661abd"}, "latest"]);
    for_a_while(&t.accounts, |_| rpc(agent, &t.url, "eth_call", &count_call).is_some())
}

/// `add(1)` (selector 0x1003e2d2) sent and its receipt awaited, per second, and the failures.
fn sends(agent: &ureq::Agent, t: &Target) -> (f64, u64) {
    let add = format!("0x1003e2d2{:064x}", 1);
    for_a_while(&t.accounts, |from| {
        let sent = rpc(
            agent,
            &t.url,
            "eth_sendTransaction",
            &json!([{"from": from, "to": t.counter, "data": add, "gas": "0x20000"}]),
        );
        sent.is_some_and(|h| receipt(agent, &t.url, &h)["status"] == json!("0x1"))
    })
}

/// Rounds of the `eth_call` phase per node, alternating between the nodes so that a change in
/// the machine's load over the run weighs on both; each node's median round is compared.
const CALL_ROUNDS: usize = 3;

/// `rpc-throughput`: `eth_call`/s (`count()`) and `eth_sendTransaction`-to-receipt/s
/// (`add(1)`, each of 10 senders waiting for its receipt before the next) on the same
/// Counter contract, `qoin-el --dev` and anvil both running, measured in turn in the same run.
pub(crate) fn rpc_throughput() {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(60))).build().into();
    let secret_path = std::env::temp_dir().join(format!("qoin-bench-tput-{}.jwt", std::process::id()));
    JwtSecret::load_or_create(&secret_path).unwrap_or_else(|e| fail(&e));
    let el = start_el(&secret_path, "instant");
    let _ = std::fs::remove_file(&secret_path);
    let anvil = start_anvil(&agent);
    let nodes = [("qoin-el --dev", deploy(&agent, &el.rpc)), ("anvil", deploy(&agent, &anvil.rpc))];
    let mut rounds: [Vec<(f64, u64)>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..CALL_ROUNDS {
        for (i, (_, t)) in nodes.iter().enumerate() {
            rounds[i].push(calls(&agent, t));
        }
    }
    let mut results = Vec::new();
    for (i, (node, t)) in nodes.iter().enumerate() {
        let mut r = rounds[i].clone();
        r.sort_by(|a, b| a.0.total_cmp(&b.0));
        let calls = r[r.len() / 2].0;
        let call_errors: u64 = r.iter().map(|x| x.1).sum();
        let all: Vec<f64> = rounds[i].iter().map(|x| x.0.round()).collect();
        emit(&json!({"bench": "rpc-throughput", "node": node, "method": "eth_call", "unit": "calls/s",
            "value": calls.round(), "rounds": all, "stat": "median round", "errors": call_errors, "errors_in": "all rounds",
            "clients": SENDERS, "seconds": THROUGHPUT_SECONDS}));
        let (mined, send_errors) = sends(&agent, t);
        emit(
            &json!({"bench": "rpc-throughput", "node": node, "method": "eth_sendTransaction to receipt", "unit": "mined/s",
            "value": mined.round(), "errors": send_errors, "senders": SENDERS, "seconds": THROUGHPUT_SECONDS}),
        );
        results.push((calls, mined));
    }
    let (qoin, anvil) = (results[0], results[1]);
    emit(&json!({"bench": "rpc-throughput", "stat": "qoin / anvil", "unit": "x anvil", "goal": 1.0,
        "eth_call": ((qoin.0 / anvil.0) * 100.0).round() / 100.0, "value": ((qoin.1 / anvil.1) * 100.0).round() / 100.0,
        "what": "value: mined/s ratio; eth_call: median-round calls/s ratio"}));
}
