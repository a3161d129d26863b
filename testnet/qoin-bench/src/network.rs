//! Network benchmarks on a real `qoin-testnet` network of release binaries on this machine:
//! `block-propagation` (from a block mined to imported at every other node, 8 pairs, 50 ms
//! one-way delay per link) and `stale-rate` (8 miners at a 1 s target: the share of mined blocks
//! that end neither canonical nor referenced as a sibling by a canonical block).
//!
//! Times come from the nodes' JSON logs (one clock: every node runs on this machine): the
//! miner's `mined block` line is written just before the block is gossiped, the others'
//! `imported gossiped block` / `imported back-filled block` lines when the block is in their
//! store and execution client. Link delay is the testnet's user-space delay (each node holds
//! inbound peer messages for the delay; see `qoin-testnet up --latency-ms`).

use crate::{emit, percentile, round};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn fail(e: &dyn std::fmt::Display) -> ! {
    crate::fail("network bench", e)
}

/// Builds the release binaries when run through cargo; returns the directory holding them.
pub(crate) fn release_bins() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_else(|e| fail(&e));
    let dir = me.parent().unwrap_or_else(|| fail(&"no parent directory")).to_path_buf();
    if let Some(cargo) = std::env::var_os("CARGO") {
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-q",
                "-p",
                "qoin-testnet",
                "-p",
                "qoin-el",
                "-p",
                "qoin-cl",
                "--bins",
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .status()
            .unwrap_or_else(|e| fail(&e));
        if !status.success() {
            fail(&"building the network binaries failed");
        }
    }
    dir
}

/// A network started by `qoin-testnet up`, stopped (`down`) and removed when dropped.
struct Testnet {
    bins: PathBuf,
    dir: PathBuf,
    nodes: Vec<Value>,
    /// How the nodes are linked (`network.json`'s `links.mode`: namespaces or loopback).
    links: String,
}

impl Testnet {
    fn up(nodes: usize, miners: usize, latency_ms: u64, block_time_ms: u64) -> Testnet {
        Self::up_with(nodes, miners, latency_ms, block_time_ms, &[])
    }

    /// As [`Testnet::up`], with more options for `qoin-testnet up`.
    fn up_with(nodes: usize, miners: usize, latency_ms: u64, block_time_ms: u64, extra: &[&str]) -> Testnet {
        let bins = release_bins();
        let dir = std::env::temp_dir().join(format!("qoin-bench-net-{}", std::process::id()));
        let status = Command::new(bins.join("qoin-testnet"))
            .env_remove("CARGO")
            .args(["--log.format", "json", "up", "--datadir"])
            .arg(&dir)
            .args(["--nodes", &nodes.to_string(), "--miners", &miners.to_string()])
            .args(["--latency-ms", &latency_ms.to_string(), "--block-time-ms", &block_time_ms.to_string()])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| fail(&e));
        let mut net = Testnet { bins, dir, nodes: Vec::new(), links: String::new() };
        if !status.success() {
            fail(&"qoin-testnet up failed");
        }
        let text = std::fs::read_to_string(net.dir.join("network.json")).unwrap_or_else(|e| fail(&e));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| fail(&e));
        net.nodes = v["nodes"].as_array().cloned().unwrap_or_default();
        net.links = v["links"]["mode"].as_str().unwrap_or("unknown").to_string();
        net
    }

    fn rpc(&self, node: usize, method: &str, params: &Value) -> Option<Value> {
        let url = self.nodes.get(node)?["rpc"].as_str()?.to_string();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut answer = ureq::post(&url).header("Connection", "close").send_json(&body).ok()?;
        let v: Value = answer.body_mut().read_json().ok()?;
        Some(v["result"].clone())
    }

    fn height(&self, node: usize) -> Option<u64> {
        quantity(&self.rpc(node, "eth_blockNumber", &json!([]))?)
    }

    /// The Prometheus text page of node `i`'s consensus client (empty if it does not answer).
    fn metrics_text(&self, i: usize) -> String {
        self.metrics_of(i, "metrics")
    }

    /// Node `i`'s metrics page named `field` in network.json (`metrics`: its consensus
    /// client's, `el_metrics`: its execution client's).
    fn metrics_of(&self, i: usize, field: &str) -> String {
        let Some(url) = self.nodes.get(i).and_then(|n| n[field].as_str()) else { return String::new() };
        ureq::get(&format!("{url}/metrics"))
            .header("Connection", "close")
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    }

    /// Waits until node 0 is at `height` (or the deadline passes: then fails).
    fn wait_height(&self, height: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.height(0).unwrap_or(0) < height {
            if Instant::now() > deadline {
                fail(&format!("node0 did not reach #{height} within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The canonical block hashes (the execution client's) of node `node`, `1..=height`.
    fn canonical(&self, node: usize, height: u64) -> HashSet<String> {
        (1..=height)
            .filter_map(|h| self.rpc(node, "eth_getBlockByNumber", &json!([format!("{h:#x}"), false])))
            .filter_map(|b| b["hash"].as_str().map(str::to_lowercase))
            .collect()
    }

    /// Runs `qoin-testnet <command> [node] --datadir D`; whether it succeeded.
    fn command(&self, args: &[&str]) -> bool {
        Command::new(self.bins.join("qoin-testnet"))
            .env_remove("CARGO")
            .args(args)
            .arg("--datadir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn down(&self) {
        self.command(&["down"]);
    }

    /// The JSON log lines of node `i`'s consensus client.
    fn cl_log(&self, i: usize) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.dir.join(format!("node{i}")).join("cl.log")).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Seconds since the epoch of a log line's RFC 3339 `timestamp`.
fn at(line: &Value) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str()?).ok()?;
    Some(t.timestamp_micros() as f64 / 1e6)
}

fn field<'a>(line: &'a Value, name: &str) -> Option<&'a str> {
    line[name].as_str()
}

/// A block as its miner logged it.
struct Mined {
    at: f64,
    /// The execution client's hash of its payload (what JSON-RPC shows).
    payload: String,
    siblings: Vec<String>,
}

/// Every block mined on the network, by consensus hash.
fn mined_blocks(net: &Testnet) -> HashMap<String, Mined> {
    let mut out = HashMap::new();
    for i in 0..net.nodes.len() {
        for line in net.cl_log(i) {
            if field(&line, "message") != Some("mined block") {
                continue;
            }
            let (Some(hash), Some(payload), Some(t)) =
                (field(&line, "hash"), field(&line, "payload"), at(&line))
            else {
                continue;
            };
            let siblings = field(&line, "sibling_hashes")
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase)
                .collect();
            out.insert(hash.to_lowercase(), Mined { at: t, payload: payload.to_lowercase(), siblings });
        }
    }
    out
}

pub(crate) fn block_propagation(blocks: u64) {
    const NODES: usize = 8;
    const LATENCY_MS: u64 = 50;
    let net = Testnet::up(NODES, 1, LATENCY_MS, 1000);
    // Start counting once every node has met the network (the first blocks find some still
    // dialling).
    let first = 5;
    // Two more blocks than are counted: the last counted one has reached everyone by then.
    net.wait_height(first + blocks + 2, Duration::from_secs(60 + blocks * 10));
    net.down();
    let mined = mined_blocks(&net);
    let mut delays = Vec::new();
    let mut missing = 0usize;
    let mut imported: Vec<HashMap<String, f64>> = Vec::new();
    for i in 1..NODES {
        let mut seen = HashMap::new();
        for line in net.cl_log(i) {
            let msg = field(&line, "message");
            if msg != Some("imported gossiped block") && msg != Some("imported back-filled block") {
                continue;
            }
            if let (Some(h), Some(t)) = (field(&line, "hash"), at(&line)) {
                seen.entry(h.to_lowercase()).or_insert(t);
            }
        }
        imported.push(seen);
    }
    let mut order: Vec<(&String, &Mined)> = mined.iter().collect();
    order.sort_by(|a, b| a.1.at.total_cmp(&b.1.at));
    for (hash, m) in order.iter().skip(first as usize).take(blocks as usize) {
        for seen in &imported {
            match seen.get(*hash) {
                Some(t) => delays.push((t - m.at) * 1000.0),
                None => missing += 1,
            }
        }
    }
    if delays.is_empty() {
        fail(&"no block was seen imported");
    }
    delays.sort_by(f64::total_cmp);
    for (stat, p) in [("p50", 0.5), ("p95", 0.95), ("max", 1.0)] {
        emit(&json!({
            "bench": "block-propagation", "unit": "ms", "stat": stat,
            "value": (percentile(&delays, p) * 10.0).round() / 10.0,
            "nodes": NODES, "latency_ms": LATENCY_MS, "blocks": blocks, "samples": delays.len(), "links": net.links,
            "not_imported": missing, "goal_p95_ms": 4 * LATENCY_MS,
        }));
    }
}

pub(crate) fn stale_rate(blocks: u64) {
    const NODES: usize = 8;
    const LATENCY_MS: u64 = 50;
    let net = Testnet::up(NODES, NODES, LATENCY_MS, 1000);
    net.wait_height(blocks, Duration::from_secs(blocks * 20));
    // Let the last blocks settle, then read the canonical chain of node 0.
    std::thread::sleep(Duration::from_secs(3));
    let height = net.height(0).unwrap_or(blocks);
    let canonical = net.canonical(0, height);
    net.down();
    let mined = mined_blocks(&net);
    let included: HashSet<&String> =
        mined.values().filter(|m| canonical.contains(&m.payload)).flat_map(|m| m.siblings.iter()).collect();
    // Only blocks mined 5 s before the last canonical one are judged: the newest may yet be
    // referenced as siblings.
    let settled_before =
        mined.values().filter(|m| canonical.contains(&m.payload)).map(|m| m.at).fold(0.0, f64::max) - 5.0;
    let judged: Vec<(&String, &Mined)> = mined.iter().filter(|(_, m)| m.at <= settled_before).collect();
    let total = judged.len();
    let on_chain = judged.iter().filter(|(_, m)| canonical.contains(&m.payload)).count();
    let as_sibling =
        judged.iter().filter(|(h, m)| !canonical.contains(&m.payload) && included.contains(h)).count();
    let stale = total - on_chain - as_sibling;
    let share =
        |n: usize| if total == 0 { 0.0 } else { (n as f64 / total as f64 * 10_000.0).round() / 100.0 };
    emit(&json!({
        "bench": "stale-rate", "unit": "%", "value": share(stale), "stat": "stale (neither canonical nor a sibling)",
        "nodes": NODES, "miners": NODES, "latency_ms": LATENCY_MS, "mined": total, "canonical": on_chain, "links": net.links,
        "siblings": as_sibling, "goal": 1.0,
    }));
    emit(&json!({
        "bench": "stale-rate", "unit": "%", "value": share(total - on_chain), "stat": "lost without siblings (not canonical)",
        "nodes": NODES, "miners": NODES, "latency_ms": LATENCY_MS, "mined": total, "links": net.links,
    }));
}

/// A node killed at the start of the chain and restarted `blocks` later catches up from its
/// one peer while that peer goes on mining: blocks/s of the sync, from its `syncing` to its
/// last `synced` log line (headers, payloads, execution, sampling and fork choice per block).
/// How a restarted node caught up (from its log: the first `syncing` to the last `synced`).
struct CatchUp {
    /// Blocks the sync imported.
    blocks: u64,
    /// Seconds from the first `syncing` to the last `synced`.
    sync_s: f64,
    /// Seconds from the restart to its head reaching node 0's head at the restart.
    wall_s: f64,
    /// Node 0's head at the restart.
    target: u64,
    /// Where the processor time went meanwhile (see [`CpuUse`]).
    cpu: Value,
}

/// Restarts node 1 and waits until it has caught up with node 0's head at that moment.
fn restart_and_catch_up(net: &Testnet) -> CatchUp {
    let cpu = CpuUse::start(net);
    let restarted = Instant::now();
    let restarted_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    if !net.command(&["restart", "node1"]) {
        fail(&"qoin-testnet restart failed");
    }
    let target = net.height(0).unwrap_or(0);
    while net.height(1).unwrap_or(0) < target {
        if restarted.elapsed() > Duration::from_secs(600) {
            fail(&"the restarted node did not catch up within 600 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let wall_s = restarted.elapsed().as_secs_f64();
    // (The log goes on from before the kill.) The execution client's head reaches the target
    // as the last block executes, a little before the consensus client samples it and logs
    // `synced`: wait for that line.
    let since_restart = || -> Vec<Value> {
        net.cl_log(1).into_iter().filter(|l| at(l).is_some_and(|t| t >= restarted_at)).collect()
    };
    let mut log = since_restart();
    let waiting = Instant::now();
    while !log.iter().any(|l| field(l, "message") == Some("synced"))
        && waiting.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(100));
        log = since_restart();
    }
    let began = log.iter().find(|l| field(l, "message") == Some("syncing")).and_then(at);
    let synced: Vec<&Value> = log.iter().filter(|l| field(l, "message") == Some("synced")).collect();
    let ended = synced.last().and_then(|l| at(l));
    let blocks: u64 = synced.iter().filter_map(|l| l["blocks"].as_u64()).sum();
    let (Some(began), Some(ended)) = (began, ended) else { fail(&"no sync in the restarted node's log") };
    let cpu = cpu.finish(net);
    CatchUp { blocks, sync_s: (ended - began).max(1e-3), wall_s, target, cpu }
}

/// Processor time from a restart of node 1 to its catch-up: the machine's busy share (all
/// processes, `/proc/stat`) and the seconds each of the four programs used (`/proc/PID/stat`;
/// node 1's programs start with the restart). Tells whether a sync waits on something or on
/// the processors.
struct CpuUse {
    machine: Option<(u64, u64)>,
    node0: [Option<f64>; 2],
    started: Instant,
}

impl CpuUse {
    fn start(net: &Testnet) -> Self {
        Self { machine: machine_ticks(), node0: process_seconds(net, 0), started: Instant::now() }
    }

    fn finish(self, net: &Testnet) -> Value {
        let (busy, total) = match (self.machine, machine_ticks()) {
            (Some((b0, t0)), Some((b1, t1))) => (b1.saturating_sub(b0), t1.saturating_sub(t0)),
            _ => (0, 0),
        };
        let [el0, cl0] = process_seconds(net, 0);
        let [el1, cl1] = process_seconds(net, 1);
        let delta = |after: Option<f64>, before: Option<f64>| after.zip(before).map(|(a, b)| round(a - b));
        json!({
            "busy_share": (total > 0).then(|| (busy as f64 / total as f64 * 1000.0).round() / 1000.0),
            "window_s": round(self.started.elapsed().as_secs_f64()),
            "synced_el_s": el1.map(round), "synced_cl_s": cl1.map(round),
            "serving_el_s": delta(el0, self.node0[0]), "serving_cl_s": delta(cl0, self.node0[1]),
        })
    }
}

/// Busy and total jiffies of all processors (`/proc/stat`'s first line).
fn machine_ticks() -> Option<(u64, u64)> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine_ticks(text: &str) -> Option<(u64, u64)> {
    let fields: Vec<u64> =
        text.lines().next()?.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let total: u64 = fields.iter().take(8).sum();
    // idle and iowait
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total.saturating_sub(idle), total))
}

/// User + system seconds of node `i`'s execution and consensus clients, by the pids
/// `network.json` names now.
fn process_seconds(net: &Testnet, i: usize) -> [Option<f64>; 2] {
    let text = std::fs::read_to_string(net.dir.join("network.json")).ok();
    let v: Option<Value> = text.and_then(|t| serde_json::from_str(&t).ok());
    let pid = |which: &str| v.as_ref().and_then(|v| v["nodes"][i]["pids"][which].as_u64());
    ["el", "cl"].map(|which| pid(which).and_then(cpu_seconds))
}

fn cpu_seconds(pid: u64) -> Option<f64> {
    let ticks = parse_process_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

/// utime + stime of a `/proc/PID/stat` line, in clock ticks.
fn parse_process_ticks(stat: &str) -> Option<u64> {
    // After the command name's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub(crate) fn sync(blocks: u64) {
    // 100 ms blocks (the shortest target a genesis may have): the chain grows fast, and goes
    // on growing while the node syncs.
    let net = Testnet::up(2, 1, 0, 100);
    let start_height = net.height(1).unwrap_or(0);
    if !net.command(&["kill", "node1"]) {
        fail(&"qoin-testnet kill failed");
    }
    net.wait_height(blocks, Duration::from_secs(blocks));
    let c = restart_and_catch_up(&net);
    net.down();
    emit(&json!({
        "bench": "sync", "unit": "blocks/s", "value": (c.blocks as f64 / c.sync_s * 10.0).round() / 10.0,
        "what": "empty blocks, from one peer", "blocks": c.blocks, "sync_s": (c.sync_s * 100.0).round() / 100.0,
        "behind_at_restart": c.target.saturating_sub(start_height), "links": net.links,
        "restart_to_caught_up_s": (c.wall_s * 100.0).round() / 100.0, "cpu": c.cpu,
    }));
}

impl Testnet {
    /// Sends raw transactions to node `node` in one JSON-RPC batch; fails on any refusal.
    fn send_raw_batch(&self, node: usize, raws: &[String]) {
        let Some(url) = self.nodes.get(node).and_then(|n| n["rpc"].as_str()) else { fail(&"no such node") };
        let batch: Vec<Value> = raws
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [r]}))
            .collect();
        let answers: Vec<Value> = ureq::post(url)
            .header("Connection", "close")
            .send_json(&batch)
            .and_then(|mut a| a.body_mut().read_json())
            .unwrap_or_else(|e| fail(&format!("eth_sendRawTransaction batch: {e}")));
        if let Some(refused) = answers.iter().find(|a| a.get("error").is_some()) {
            fail(&format!("a transfer was refused: {refused}"));
        }
    }
}

/// A node catching up about `blocks` blocks of 1,000 transfers each from one peer: transfers
/// per second of the sync (its first `syncing` to its last `synced` log line), against
/// `import-transfers` measured in the same run (goal: at least 80% of it). Every transfer
/// comes from its own funded account (an `up --alloc` genesis) and is fed to the miner, 1,000
/// each time its head moves, while the other node is down.
pub(crate) fn sync_transfers(blocks: u64) {
    const PER_BLOCK: usize = 1_000;
    let total = blocks as usize * PER_BLOCK;
    let t0 = Instant::now();
    let keys = crate::exec::bench_keys(total);
    eprintln!("sync-transfers: {total} keys in {:.1} s", t0.elapsed().as_secs_f64());
    // 1 QOIN each: a transfer at up to 1,000 gwei (the base fee climbs while blocks are more
    // than half full).
    let alloc: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| (format!("{:#x}", k.address()), json!({"balance": "0xde0b6b3a7640000"})))
        .collect();
    let alloc_path = std::env::temp_dir().join(format!("qoin-bench-alloc-{}.json", std::process::id()));
    std::fs::write(&alloc_path, Value::Object(alloc).to_string()).unwrap_or_else(|e| fail(&e));
    let net = Testnet::up_with(2, 1, 0, 1000, &["--alloc", &alloc_path.display().to_string()]);
    let _ = std::fs::remove_file(&alloc_path);
    if !net.command(&["kill", "node1"]) {
        fail(&"qoin-testnet kill failed");
    }
    let chain_id = net
        .rpc(0, "eth_chainId", &json!([]))
        .and_then(|v| quantity(&v))
        .unwrap_or_else(|| fail(&"no chain id"));
    let t0 = Instant::now();
    let raws: Vec<String> = keys
        .par_iter()
        .enumerate()
        .map(|(i, k)| {
            let tx = qoin_primitives::TxRequest {
                chain_id,
                nonce: 0,
                max_priority_fee_per_gas: 1,
                max_fee_per_gas: 1_000_000_000_000,
                gas_limit: 21_000,
                to: qoin_primitives::TxKind::Call(keys[(i + 1) % keys.len()].address()),
                value: qoin_primitives::U256::from(1u8),
                ..Default::default()
            }
            .sign(k);
            format!("0x{}", hex::encode(tx.encode()))
        })
        .collect();
    eprintln!("sync-transfers: {total} transfers signed in {:.1} s", t0.elapsed().as_secs_f64());
    let first = net.height(0).unwrap_or(0);
    let (mut sent, mut last) = (0, None);
    let feeding = Instant::now();
    while sent < total {
        let h = net.height(0);
        if h.is_some() && h != last {
            last = h;
            let end = (sent + PER_BLOCK).min(total);
            for chunk in raws[sent..end].chunks(500) {
                net.send_raw_batch(0, chunk);
            }
            sent = end;
        }
        if feeding.elapsed() > Duration::from_secs(blocks * 20) {
            fail(&"the miner's head stopped moving while the transfers were fed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Until every transfer is mined.
    loop {
        let status = net.rpc(0, "txpool_status", &json!([])).unwrap_or(Value::Null);
        let count = |k: &str| quantity(&status[k]);
        if count("pending") == Some(0) && count("queued") == Some(0) {
            break;
        }
        if feeding.elapsed() > Duration::from_secs(blocks * 30) {
            fail(&"the transfers were not all mined");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let top = net.height(0).unwrap_or(0);
    let mined: u64 = (first + 1..=top)
        .filter_map(|h| net.rpc(0, "eth_getBlockTransactionCountByNumber", &json!([format!("{h:#x}")])))
        .filter_map(|v| quantity(&v))
        .sum();
    let c = restart_and_catch_up(&net);
    // Where the synced node's time went: its consensus client's engine calls, per block.
    let text = net.metrics_text(1);
    let engine_ms: serde_json::Map<String, Value> =
        ["NewPayload", "NewPayloads", "ForkchoiceUpdated", "GetAccountProofs"]
            .iter()
            .map(|m| {
                let sum = metric_value(&text, "qoin_cl_engine_call_seconds_sum", &format!("method=\"{m}\""));
                ((*m).to_string(), json!((sum * 1e3 / c.blocks.max(1) as f64 * 10.0).round() / 10.0))
            })
            .collect();
    // The same calls as the execution client timed them (without the transport).
    let el_text = net.metrics_of(1, "el_metrics");
    let el_engine_ms: serde_json::Map<String, Value> = ["NewPayload", "NewPayloads", "GetAccountProofs"]
        .iter()
        .map(|m| {
            let sum = metric_value(&el_text, "qoin_el_engine_call_seconds_sum", &format!("method=\"{m}\""));
            ((*m).to_string(), json!((sum * 1e3 / c.blocks.max(1) as f64 * 10.0).round() / 10.0))
        })
        .collect();
    let links = net.links.clone();
    drop(net); // down, and its data removed
               // The reference, in the same run: blocks of the same kind of transfers imported straight
               // into the execution client's chain (no network, no consensus client).
    let import = crate::exec::import_transfers(crate::exec::ImportShape::default());
    // Transfers over the sync's time: the blocks it imported hold them all (the empty blocks
    // before the feed, and those mined while it synced, are few).
    let tx_per_s = mined as f64 / c.sync_s;
    emit(&json!({
        "bench": "sync-transfers", "unit": "tx/s", "value": tx_per_s.round(),
        "transfers": mined, "blocks_with_transfers": top - first, "blocks_synced": c.blocks,
        "sync_s": (c.sync_s * 100.0).round() / 100.0, "restart_to_caught_up_s": (c.wall_s * 100.0).round() / 100.0,
        "import_transfers_tx_per_s": import.round(), "vs_import_transfers": (tx_per_s / import * 1000.0).round() / 1000.0,
        "goal_vs_import": 0.8, "links": links, "engine_ms_per_synced_block": engine_ms,
        "el_engine_ms_per_synced_block": el_engine_ms, "cpu": c.cpu,
    }));
}

/// A JSON-RPC quantity (`"0x1a"`).
pub(crate) fn quantity(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

/// The value of the sample `name` whose labels include `label` in a Prometheus text page.
fn metric_value(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') && rest.contains(label)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Bytes node `i`'s transports sent and received so far (rust-libp2p's counters).
fn transport_bytes(net: &Testnet, i: usize) -> f64 {
    net.metrics_text(i)
        .lines()
        .filter(|l| l.starts_with("libp2p_bandwidth_bytes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Bytes each node's transports carry per transaction: 4 pairs (one miner, 1 s blocks), `txs`
/// transfers from the ten dev accounts sent to a node that does not mine; the bytes of the
/// same nodes over as long a run of empty blocks are subtracted. What is counted: gossip of
/// the transaction (to each mesh peer, once, plus gossipsub's IHAVE/IWANT), the block that
/// carries it, and transport framing (noise, yamux).
pub(crate) fn gossip_bandwidth(txs: u64) {
    const NODES: usize = 4;
    let net = Testnet::up(NODES, 1, 0, 1000);
    net.wait_height(5, Duration::from_secs(180));
    let all = |net: &Testnet| (0..NODES).map(|i| transport_bytes(net, i)).collect::<Vec<f64>>();
    // Empty blocks first: the baseline per second.
    let idle_secs = 20.0;
    let b0 = all(&net);
    std::thread::sleep(Duration::from_secs_f64(idle_secs));
    let b1 = all(&net);
    // The transfers, to node 3.
    let accounts: Vec<String> = net
        .rpc(3, "eth_accounts", &json!([]))
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    if accounts.is_empty() {
        fail(&"no dev accounts on node3");
    }
    let started = Instant::now();
    let mut hashes = Vec::new();
    for k in 0..txs as usize {
        let from = &accounts[k % accounts.len()];
        let tx = json!([{"from": from, "to": "0x000000000000000000000000000000000000d00d", "value": "0x1"}]);
        match net.rpc(3, "eth_sendTransaction", &tx) {
            Some(Value::String(h)) => hashes.push(h),
            other => fail(&format!("eth_sendTransaction: {other:?}")),
        }
    }
    for h in &hashes {
        while net.rpc(0, "eth_getTransactionReceipt", &json!([h])).is_none_or(|r| r.is_null()) {
            if started.elapsed() > Duration::from_secs(300) {
                fail(&"the transfers were not all mined within 300 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Every node has imported the last block.
    let top = net.height(0).unwrap_or(0);
    while (1..NODES).any(|i| net.height(i).unwrap_or(0) < top) {
        if started.elapsed() > Duration::from_secs(360) {
            fail(&"the nodes did not all reach the head");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = started.elapsed().as_secs_f64();
    let b2 = all(&net);
    net.down();
    let per_tx: Vec<f64> = (0..NODES)
        .map(|i| {
            let idle_rate = (b1[i] - b0[i]) / idle_secs;
            ((b2[i] - b1[i]) - idle_rate * secs).max(0.0) / txs as f64
        })
        .collect();
    for (i, v) in per_tx.iter().enumerate() {
        emit(&json!({
            "bench": "gossip-bandwidth", "unit": "bytes/tx", "value": v.round(), "node": format!("node{i}"),
            "role": if i == 0 { "miner" } else if i == 3 { "received the transactions" } else { "follower" },
            "txs": txs, "nodes": NODES, "what": "sent + received, transports, less empty-block baseline", "links": net.links,
            "idle_bytes_per_s": ((b1[i] - b0[i]) / idle_secs).round(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_machine_ticks, parse_process_ticks};

    #[test]
    fn processor_time_is_read_from_proc_stat_lines() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  100 5 50 800 40 1 4 0 0 0\ncpu0 50 2 25 400 20 0 2 0 0 0\n";
        assert_eq!(parse_machine_ticks(stat), Some((160, 1000)));
        assert_eq!(parse_machine_ticks("cpu 1 2\n"), None);
        // A command name with spaces and parentheses; utime 1234, stime 56.
        let pid = "4242 (qoin el (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 9 0 77 0 0";
        assert_eq!(parse_process_ticks(pid), Some(1290));
        assert_eq!(parse_process_ticks("4242 (qoin-el) S 1"), None);
    }
}
