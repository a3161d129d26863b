//! `qoin-testnet up | status | down | kill | restart`: a local network of many pairs.
//!
//! `up` writes one new genesis (the dev allocations, a difficulty measured on this machine for
//! the miners together), then per node `D/nodeI/` with its engine secret, validator key (a
//! light key-derivation: test keys), peer key, logs (`el.log`, `cl.log`) and data; starts every
//! `qoin-el` and `qoin-cl` detached, peered through node 0 as the bootnode; waits until every
//! node answers and has a peer; and writes `D/network.json`, which the other commands read:
//!
//! ```json
//! {"nodes":[{"name":"node0","rpc":"http://10.213.7.10:8545","ws":"ws://10.213.7.10:8545",
//!   "engine":"http://127.0.0.1:8551","p2p":"/ip4/10.213.7.10/tcp/30333/p2p/ID",
//!   "metrics":"http://10.213.7.10:5054","el_metrics":"http://10.213.7.10:9001",
//!   "mining":true,"netns":"qoin-T-n0","pids":{"el":123,"cl":124},"commands":{"el":[...],"cl":[...]}}],
//!  "links":{"mode":"netns","latency_ms":0},"partitions":"nftables","partition":null,
//!  "namespaces":{"tag":"T","subnet":7,"nodes":4}}
//! ```
//!
//! With `--storage-providers`, `--compute-providers` or `--mediators`, `up` also starts the
//! market's parties (see [`crate::parties`]), listed under `"parties"` (name, role, address,
//! rpc, url, pid, command).
//!
//! **Links.** As root with `ip` and `nft` (`--links auto`, the default, or `netns`), each node
//! runs in a network namespace of its own with one address on a private bridge (see
//! [`crate::netns`]), and `partition --groups 0,1/2,3` drops packets between the groups with
//! nftables, as a cut link would; `heal` lifts the rules, `down` removes the namespaces.
//! Otherwise (`--links loopback`, or `auto` without root) every node listens on 127.0.0.1 with
//! free ports, and partitions go through the p2p layer's own deny list (every `qoin-cl` runs
//! with `--p2p.deny-file D/nodeI/cl/deny-peers`, which it rereads within a second of a change):
//! each node closes and refuses connections with the peers of the other groups.
//! Faults: `kill NODE` sends SIGKILL to both programs of a node; `restart NODE` starts them
//! again with the same command lines.
//! Link delay (`--latency-ms L`): this kernel has no netem, so the delay is made in user space,
//! by each `qoin-cl`'s p2p layer (`--p2p.test-latency-ms L`): every message from a peer (gossip,
//! sync requests and answers, statuses) is held L ms before the node sees it, which is a one-way
//! delay of L on every link, in both directions. A gossiped block is forwarded only after its
//! checks, so each hop costs L plus one validation, as over a real link. Bandwidth and loss are
//! not modelled. `network.json` records the mode (`links`).

use crate::netns;
use crate::parties::{self, Counts, Party};
use anyhow::{bail, Context as _};
use qoin_cl_network::ports::free_loopback_port;
use qoin_crypto::keystore::{KdfParams, Keystore};
use qoin_tracing::{targets, LogArgs};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn default_datadir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".qoin")
        .join("testnet")
}

/// Options of `qoin-testnet up`.
#[derive(clap::Args, Debug)]
pub(crate) struct UpArgs {
    /// Pairs (qoin-el + qoin-cl) to start.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Data directory of the network (must not hold a running one).
    #[arg(long, default_value_os_t = default_datadir())]
    datadir: PathBuf,
    /// How many of the nodes mine (the first K; default all).
    #[arg(long)]
    miners: Option<usize>,
    /// Target block time of the new chain, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    block_time_ms: u64,
    /// One-way delay per link, in milliseconds, made by each node's p2p layer holding inbound
    /// messages (0: none).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Proof-of-work search threads per miner.
    #[arg(long, default_value_t = 1)]
    miner_threads: usize,
    /// Do not fund and unlock the ten dev accounts on every node's JSON-RPC.
    #[arg(long)]
    no_dev_accounts: bool,
    /// More accounts in the genesis: a JSON file shaped like a genesis file's `alloc`
    /// (`{"0x<address>": {"balance": "0x<shor>"}, ...}`; `nonce`, `code` and `storage` may be
    /// given too), added to the dev accounts. A load test's senders, for example.
    #[arg(long, value_name = "FILE")]
    alloc: Option<PathBuf>,
    /// How the nodes are linked: `netns` (a network namespace and an address per node on one
    /// bridge; partitions drop packets with nftables; needs root, `ip` and `nft`), `loopback`
    /// (every node on 127.0.0.1; partitions through each node's p2p deny list), or `auto`:
    /// netns where it can run, loopback otherwise (saying why).
    #[arg(long, value_enum, default_value_t = LinkMode::Auto)]
    links: LinkMode,
    /// Storage providers to start (`qoin-provider storage`), each funded and registered.
    #[arg(long, default_value_t = 0)]
    storage_providers: usize,
    /// Compute providers to start (`qoin-provider compute`), each funded and registered.
    #[arg(long, default_value_t = 0)]
    compute_providers: usize,
    /// Mediators to start (`qoin-provider mediator`), each funded and registered.
    #[arg(long, default_value_t = 0)]
    mediators: usize,
}

/// `up --links`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkMode {
    Auto,
    Netns,
    Loopback,
}

/// The data directory of an existing network.
#[derive(clap::Args, Debug)]
pub(crate) struct NetArgs {
    /// Data directory of the network.
    #[arg(long, default_value_os_t = default_datadir())]
    datadir: PathBuf,
}

/// Options of `qoin-testnet status`.
#[derive(clap::Args, Debug)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    net: NetArgs,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// A node named on the command line.
#[derive(clap::Args, Debug)]
pub(crate) struct NodeArgs {
    /// The node (`node2`, or `2`) or market party (`storage0`, `compute1`, `mediator0`).
    node: String,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pids {
    el: Option<u32>,
    cl: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Commands {
    el: Vec<String>,
    cl: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeEntry {
    name: String,
    rpc: String,
    ws: Option<String>,
    engine: String,
    p2p: String,
    metrics: String,
    el_metrics: String,
    mining: bool,
    /// The node's network namespace (`ip netns exec NAME ...`), with `--links netns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netns: Option<String>,
    pids: Pids,
    commands: Commands,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Network {
    nodes: Vec<NodeEntry>,
    /// How partitions are made.
    #[serde(default = "deny_list_mode")]
    partitions: String,
    /// The groups in force (`partition`), none when whole.
    #[serde(default)]
    partition: Option<Vec<Vec<String>>>,
    /// How links are made, and their delay.
    #[serde(default)]
    links: Links,
    /// The network namespaces, with `--links netns` (removed by `down`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespaces: Option<netns::Layout>,
    /// The market parties (`--storage-providers`, `--compute-providers`, `--mediators`).
    #[serde(default)]
    parties: Vec<Party>,
}

/// The links between nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Links {
    /// `loopback` or `netns`, with `+p2p-inbound-delay` when a delay is added.
    mode: String,
    /// One-way delay per link, in milliseconds.
    latency_ms: u64,
}

impl Links {
    fn new(namespaces: Option<&netns::Layout>, latency_ms: u64) -> Links {
        let base = if namespaces.is_some() { "netns" } else { "loopback" };
        let mode = if latency_ms == 0 { base.to_string() } else { format!("{base}+p2p-inbound-delay") };
        Links { mode, latency_ms }
    }

    fn describe(&self) -> String {
        let base = if self.mode.starts_with("netns") {
            "a network namespace per node on one bridge"
        } else {
            "loopback"
        };
        if self.latency_ms == 0 {
            format!("{base}, no added delay")
        } else {
            format!("{base}, {} ms one-way delay per link held in each node's p2p layer", self.latency_ms)
        }
    }
}

fn deny_list_mode() -> String {
    "p2p-deny-list".into()
}

/// How partitions are made, in words.
fn partition_how(namespaces: Option<&netns::Layout>) -> &'static str {
    if namespaces.is_some() {
        "nftables drop rules"
    } else {
        "p2p deny list"
    }
}

fn partition_mode(namespaces: Option<&netns::Layout>) -> String {
    if namespaces.is_some() {
        "nftables".into()
    } else {
        deny_list_mode()
    }
}

/// The namespaces `up --links` asks for: none for loopback; an error where netns was asked
/// for and cannot run.
fn namespaces(args: &UpArgs) -> anyhow::Result<Option<netns::Layout>> {
    match args.links {
        LinkMode::Loopback => Ok(None),
        LinkMode::Netns => match netns::unavailable() {
            Some(why) => bail!("--links netns cannot run here: {why}; use --links loopback"),
            None => netns::create(args.nodes).map(Some),
        },
        LinkMode::Auto => match netns::unavailable() {
            Some(why) => {
                tracing::info!(target: targets::TESTNET,
                    "links: loopback, partitions through the p2p deny list (network namespaces: {why})");
                Ok(None)
            }
            None => netns::create(args.nodes).map(Some),
        },
    }
}

fn manifest(d: &Path) -> PathBuf {
    d.join("network.json")
}

fn load(d: &Path) -> anyhow::Result<Network> {
    let path = manifest(d);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} (no network started there?)", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a network manifest", path.display()))
}

fn save(d: &Path, n: &Network) -> anyhow::Result<()> {
    let path = manifest(d);
    let tmp = d.join("network.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(n)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

pub(crate) fn alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
        && !zombie(pid)
}

/// A process that exited but was not reaped (its parent is gone or waiting) still answers
/// `kill(pid, 0)`: its state in `/proc` says so.
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(false)
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(p) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), sig);
    }
}

/// SIGTERM, then SIGKILL after 10 s.
fn stop_pid(name: &str, pid: u32) {
    if !alive(pid) {
        return;
    }
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    while alive(pid) {
        if start.elapsed() > Duration::from_secs(10) {
            tracing::warn!(target: targets::TESTNET, "{name} (pid {pid}) did not stop within 10 s: killed");
            signal(pid, nix::sys::signal::Signal::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a detached program (its own session, output to `log`); returns its pid.
fn spawn(command: &[String], log: &Path) -> anyhow::Result<u32> {
    let (program, args) = command.split_first().context("empty command")?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().with_context(|| format!("cannot start {program}"))?;
    let pid = child.id();
    // Not waited for: it outlives this program. Reaped by init when we exit.
    std::mem::forget(child);
    Ok(pid)
}

/// An HTTP client that gives up after 5 s (a node that does not answer is reported as such).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into()
}

pub(crate) fn rpc(url: &str, method: &str, params: &Value) -> anyhow::Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let v: Value = agent().post(url).send_json(&body)?.body_mut().read_json()?;
    match v.get("error") {
        Some(e) => bail!("{method}: {e}"),
        None => Ok(v["result"].clone()),
    }
}

fn quantity(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

/// One sample of a Prometheus text page.
fn metric(url: &str, name: &str) -> Option<f64> {
    let text = agent().get(format!("{url}/metrics")).call().ok()?.body_mut().read_to_string().ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn log_args(log: &LogArgs) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(f) = &log.filter {
        v.extend(["--log".to_string(), f.clone()]);
    }
    if log.format == qoin_tracing::LogFormat::Json {
        v.extend(["--log.format".to_string(), "json".to_string()]);
    }
    v
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The lock file in a network's directory (see [`lock_datadir`]).
const LOCK: &str = ".qoin-testnet.lock";

/// Locks a network's directory (creating it) for as long as the file returned is open: held by
/// `up` and `down`, so that two of them never work on one network at once. (Two `up`s into
/// one directory at once each started programs, and the one whose `network.json` was
/// overwritten left its programs running, unknown to `down`.)
fn lock_datadir(d: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    let path = d.join(LOCK);
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "another qoin-testnet is starting or stopping the network in {}; try again when it is done",
                d.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

pub(crate) fn up(args: &UpArgs, log: &LogArgs) -> anyhow::Result<()> {
    let d = &args.datadir;
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let miners = args.miners.unwrap_or(args.nodes);
    if miners > args.nodes {
        bail!("--miners {miners} is more than --nodes {}", args.nodes);
    }
    if args.latency_ms > 60_000 {
        bail!("--latency-ms {} is more than a minute", args.latency_ms);
    }
    let _lock = lock_datadir(d)?;
    if manifest(d).exists() {
        let old = load(d).ok();
        let running = old
            .as_ref()
            .is_some_and(|n| n.nodes.iter().any(|x| [x.pids.el, x.pids.cl].into_iter().flatten().any(alive)));
        if running {
            bail!(
                "a network is running in {}: `qoin-testnet down --datadir {}` first",
                d.display(),
                d.display()
            );
        }
        if let Some(l) = old.as_ref().and_then(|n| n.namespaces.as_ref()) {
            netns::destroy(l);
        }
        // Everything but the lock this `up` holds.
        for entry in std::fs::read_dir(d).with_context(|| format!("cannot clear {}", d.display()))? {
            let path = entry?.path();
            if path.file_name() == Some(std::ffi::OsStr::new(LOCK)) {
                continue;
            }
            let removed =
                if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.with_context(|| format!("cannot clear {}", path.display()))?;
        }
    }
    let (el_bin, cl_bin) = crate::dev::binaries()?;

    // One genesis: the miners together find a block every target.
    let (rate, solver) = crate::dev::measure_rate(args.miner_threads)?;
    let difficulty = crate::dev::calibrated(rate * miners.max(1) as f64, args.block_time_ms);
    let genesis = d.join("genesis.json");
    let mut extra = match &args.alloc {
        Some(path) => read_alloc(path)?,
        None => Default::default(),
    };
    let counts = Counts {
        storage: args.storage_providers,
        compute: args.compute_providers,
        mediators: args.mediators,
    };
    let provider_bin = if counts.any() { Some(crate::dev::provider_binary()?) } else { None };
    let keys = parties::keys(d, counts)?;
    extra.extend(parties::alloc(&keys));
    crate::dev::write_genesis(&genesis, args.block_time_ms, difficulty, extra)?;
    let layout = namespaces(args)?;
    let links = Links::new(layout.as_ref(), args.latency_ms);
    let partitions = partition_mode(layout.as_ref());
    let subnet =
        layout.as_ref().map(|l| format!(" (namespaces qoin-{}-* on 10.213.{}.0/24)", l.tag, l.subnet));
    tracing::info!(target: targets::TESTNET,
        "new chain: {} nodes, {miners} mining with {} thread(s) each ({solver} at {rate:.3e} candidates/s per miner); \
         initial difficulty {difficulty} for a {} ms target; links: {}{}; partitions: {}",
        args.nodes, args.miner_threads, args.block_time_ms, links.describe(), subnet.unwrap_or_default(),
        partition_how(layout.as_ref()));
    // Recorded before any program starts, so `down` removes the namespaces of a failed `up`.
    let mut net = Network {
        nodes: Vec::new(),
        partitions,
        partition: None,
        links,
        namespaces: layout.clone(),
        parties: Vec::new(),
    };
    save(d, &net)?;

    let mut nodes: Vec<NodeEntry> = Vec::with_capacity(args.nodes);

    let mut bootnode: Option<String> = None;
    let mut ports = HashSet::new();
    for i in 0..args.nodes {
        let name = format!("node{i}");
        let nd = d.join(&name);
        std::fs::create_dir_all(nd.join("cl").join("p2p"))?;
        // In a namespace of its own every node has the usual ports on its own address; on
        // loopback each gets free ones.
        let (host, http, engine, p2p, el_metrics, cl_metrics) = match &layout {
            Some(l) => (l.ip(i).to_string(), 8545, 8551, 30333, 9001, 5054),
            None => (
                "127.0.0.1".to_string(),
                free_loopback_port(&mut ports)?,
                free_loopback_port(&mut ports)?,
                free_loopback_port(&mut ports)?,
                free_loopback_port(&mut ports)?,
                free_loopback_port(&mut ports)?,
            ),
        };
        let prefix = match &layout {
            Some(l) => l.exec(i)?,
            None => Vec::new(),
        };
        let key = qoin_cl_network::key::load_or_create(&nd.join("cl").join("p2p").join("node.key"))
            .context("cannot create the node's peer key")?;
        let peer_id = key.public().to_peer_id();
        let p2p_addr = format!("/ip4/{host}/tcp/{p2p}/p2p/{peer_id}");
        let jwt = nd.join("jwt.hex");

        let mut el: Vec<String> = prefix.clone();
        el.extend([s(&el_bin), "--datadir".into(), s(&nd.join("el")), "node".into()]);
        if !args.no_dev_accounts {
            el.push("--dev".into());
        }
        if layout.is_some() {
            // Reachable from the host and the other namespaces only.
            el.extend(["--http.addr".into(), host.clone(), "--metrics.addr".into(), host.clone()]);
            if !args.no_dev_accounts {
                el.push("--allow-insecure-unlock".into());
            }
        }
        el.extend(["--genesis".into(), s(&genesis), "--mine".into(), "off".into()]);
        el.extend(["--http.port".into(), http.to_string(), "--authrpc.port".into(), engine.to_string()]);
        el.extend(["--authrpc.jwtsecret".into(), s(&jwt), "--metrics.port".into(), el_metrics.to_string()]);
        el.extend(log_args(log));

        let mut cl: Vec<String> = prefix;
        cl.extend([s(&cl_bin), "--datadir".into(), s(&nd.join("cl")), "--genesis".into()]);
        cl.extend([s(&genesis), "--execution-endpoint".into(), format!("http://127.0.0.1:{engine}")]);
        cl.extend(["--execution-jwt".into(), s(&jwt), "--metrics.port".into(), cl_metrics.to_string()]);
        cl.extend(["--p2p.addr".into(), host.clone(), "--p2p.port".into(), p2p.to_string()]);
        if layout.is_some() {
            cl.extend(["--metrics.addr".into(), host.clone()]);
        } else {
            cl.extend(["--p2p.deny-file".into(), s(&deny_file(d, &name))]);
        }
        if args.latency_ms > 0 {
            cl.extend(["--p2p.test-latency-ms".into(), args.latency_ms.to_string()]);
        }
        if let Some(b) = &bootnode {
            cl.extend(["--bootnodes".into(), b.clone()]);
        }
        let mining = i < miners;
        if mining {
            let ks = Keystore::new(nd.join("cl").join("keystore"));
            let password = nd.join("cl").join("password");
            if !password.exists() {
                std::fs::write(&password, "testnet\n")?;
                // Test keys: the light key derivation keeps `up` fast.
                ks.create(b"testnet", KdfParams::LIGHT).context("cannot create the validator key")?;
            }
            cl.extend(["--keystore".into(), s(ks.dir()), "--password-file".into(), s(&password)]);
            cl.extend(["--miner.threads".into(), args.miner_threads.to_string()]);
        }
        cl.extend(log_args(log));
        bootnode.get_or_insert_with(|| p2p_addr.clone());

        let el_pid = spawn(&el, &nd.join("el.log"))?;
        let cl_pid = spawn(&cl, &nd.join("cl.log"))?;
        tracing::info!(target: targets::TESTNET, "{name}: qoin-el pid {el_pid}, qoin-cl pid {cl_pid}, rpc http://{host}:{http}{}",
            if mining { ", mining" } else { "" });
        nodes.push(NodeEntry {
            name,
            rpc: format!("http://{host}:{http}"),
            ws: Some(format!("ws://{host}:{http}")),
            // The engine API stays on loopback: inside the node's namespace when it has one.
            engine: format!("http://127.0.0.1:{engine}"),
            p2p: p2p_addr,
            metrics: format!("http://{host}:{cl_metrics}"),
            el_metrics: format!("http://{host}:{el_metrics}"),
            mining,
            netns: layout.as_ref().map(|l| l.node(i)),
            pids: Pids { el: Some(el_pid), cl: Some(cl_pid) },
            commands: Commands { el, cl },
        });
        // Written as nodes start, so `down` can stop a half-started network.
        net.nodes = nodes.clone();
        save(d, &net)?;
    }
    wait_answering(d, &net, Duration::from_secs(120))?;
    if net.nodes.len() > 1 {
        wait_peered(d, &net, Duration::from_secs(60))?;
    }
    if let Some(bin) = provider_bin {
        let rpcs: Vec<String> = net.nodes.iter().map(|n| n.rpc.clone()).collect();
        let mut parties =
            parties::commands(d, &bin, &keys, &rpcs, &log_args(log), || Ok(free_loopback_port(&mut ports)?))?;
        for p in &mut parties {
            p.pid = Some(spawn(&p.command, &parties::log_path(d, &p.name))?);
            tracing::info!(target: targets::TESTNET, "{}: qoin-provider {} pid {}, account {:#x}, {} via {}",
                p.name, p.command.iter().find(|a| ["storage", "compute", "mediator"].contains(&a.as_str())).map_or("", |a| a.as_str()),
                p.pid.unwrap_or(0), p.address, p.url, p.rpc);
            net.parties.push(p.clone());
            save(d, &net)?;
        }
        parties::wait_registered(d, &net.parties, Duration::from_secs(120))?;
        tracing::info!(target: targets::TESTNET, "{} market parties registered", net.parties.len());
    }
    tracing::info!(target: targets::TESTNET, "{} nodes up; {} describes them", net.nodes.len(), manifest(d).display());
    println!("{}", manifest(d).display());
    Ok(())
}

/// Waits until every node's JSON-RPC and both metrics endpoints answer; an exited program
/// is an error naming its log.
fn wait_answering(d: &Path, net: &Network, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    for n in &net.nodes {
        loop {
            exited(d, n)?;
            let ok = rpc(&n.rpc, "eth_blockNumber", &json!([])).is_ok()
                && metric(&n.metrics, "qoin_cl_head_height").is_some();
            if ok {
                break;
            }
            if start.elapsed() > limit {
                bail!("{} did not answer within {limit:?}", n.name);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// The accounts of an `--alloc` file.
fn read_alloc(
    path: &Path,
) -> anyhow::Result<std::collections::BTreeMap<qoin_primitives::Address, qoin_primitives::GenesisAccount>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a genesis alloc object", path.display()))
}

/// An error naming the program of node `n` (in the network at `d`) that exited, and the last
/// line of its log.
fn exited(d: &Path, n: &NodeEntry) -> anyhow::Result<()> {
    for (what, pid, log) in [("qoin-el", n.pids.el, "el.log"), ("qoin-cl", n.pids.cl, "cl.log")] {
        if pid.is_some_and(|p| !alive(p)) {
            let path = d.join(&n.name).join(log);
            let last = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_string))
                .unwrap_or_default();
            bail!("{what} of {} exited; the end of {}: {last}", n.name, path.display());
        }
    }
    Ok(())
}

/// Waits until every node has a peer, so that what a script sends after `up` reaches a network
/// rather than islands still dialling.
fn wait_peered(d: &Path, net: &Network, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    for n in &net.nodes {
        while metric(&n.metrics, "qoin_cl_peers").unwrap_or(0.0) < 1.0 {
            exited(d, n)?;
            if start.elapsed() > limit {
                bail!("{} has no peer after {limit:?}; see its cl.log", n.name);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// What `status` reports of one node.
#[derive(Debug, Serialize)]
struct NodeStatus {
    name: String,
    running: bool,
    height: Option<u64>,
    head: Option<String>,
    peers: Option<u64>,
    syncing: Option<bool>,
    hash_rate: Option<f64>,
    pool: Option<u64>,
    mining: bool,
}

pub(crate) fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let net = load(&args.net.datadir)?;
    // Every node is read at once, each on a thread of its own, so that the heads compared are
    // taken at nearly the same moment: read one after another, a network with sub-second
    // blocks seldom looks agreed even when it is.
    let out: Vec<NodeStatus> = std::thread::scope(|scope| {
        let reads: Vec<_> = net
            .nodes
            .iter()
            .map(|n| {
                scope.spawn(move || {
                    let running = [n.pids.el, n.pids.cl].into_iter().all(|p| p.is_some_and(alive));
                    let head = rpc(&n.rpc, "eth_getBlockByNumber", &json!(["latest", false])).ok();
                    NodeStatus {
                        name: n.name.clone(),
                        running,
                        height: head.as_ref().and_then(|h| quantity(&h["number"])),
                        head: head.as_ref().and_then(|h| h["hash"].as_str().map(str::to_string)),
                        peers: metric(&n.metrics, "qoin_cl_peers").map(|v| v as u64),
                        syncing: metric(&n.metrics, "qoin_cl_syncing").map(|v| v > 0.0),
                        hash_rate: if n.mining { metric(&n.metrics, "qoin_cl_hash_rate") } else { None },
                        pool: metric(&n.el_metrics, "qoin_el_txpool_size").map(|v| v as u64),
                        mining: n.mining,
                    }
                })
            })
            .collect();
        reads.into_iter().map(|r| r.join()).collect::<Result<_, _>>()
    })
    .map_err(|_| anyhow::anyhow!("reading a node's status panicked"))?;
    let heads: std::collections::BTreeSet<&str> = out.iter().filter_map(|n| n.head.as_deref()).collect();
    let agree = heads.len() == 1 && out.iter().all(|n| n.head.is_some());
    if args.json {
        println!(
            "{}",
            json!({"nodes": out, "heads_agree": agree, "partition": net.partition, "links": net.links,
                "parties": parties_status(&net)})
        );
        return Ok(());
    }
    println!(
        "{:<8} {:<8} {:>8} {:<14} {:>6} {:>8} {:>10} {:>6}",
        "node", "state", "height", "head", "peers", "syncing", "hash/s", "pool"
    );
    let dash = || "-".to_string();
    for n in &out {
        println!(
            "{:<8} {:<8} {:>8} {:<14} {:>6} {:>8} {:>10} {:>6}",
            n.name,
            if n.running { "running" } else { "stopped" },
            n.height.map_or_else(dash, |h| h.to_string()),
            n.head.as_deref().map_or_else(dash, |h| format!("{}…", &h[..h.len().min(12)])),
            n.peers.map_or_else(dash, |p| p.to_string()),
            n.syncing.map_or_else(dash, |s| if s { "yes" } else { "no" }.to_string()),
            n.hash_rate.map_or_else(dash, |r| format!("{r:.2e}")),
            n.pool.map_or_else(dash, |p| p.to_string()),
        );
    }
    println!("heads {}", if agree { "agree" } else { "differ" });
    if !net.parties.is_empty() {
        println!("{:<12} {:<9} {:<8} {:<44} url", "party", "role", "state", "account");
        for p in parties_status(&net) {
            println!(
                "{:<12} {:<9} {:<8} {:<44} {}",
                p["name"].as_str().unwrap_or(""),
                p["role"].as_str().unwrap_or(""),
                if p["running"] == true { "running" } else { "stopped" },
                p["address"].as_str().unwrap_or(""),
                p["url"].as_str().unwrap_or(""),
            );
        }
    }
    if net.links.latency_ms > 0 {
        println!("links: {}", net.links.describe());
    }
    if let Some(groups) = &net.partition {
        let groups: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
        println!("partitioned: {}", groups.join(" / "));
    }
    Ok(())
}

/// Each market party: its name, role, account, URL and whether it runs.
fn parties_status(net: &Network) -> Vec<Value> {
    net.parties
        .iter()
        .map(|p| {
            json!({"name": p.name, "role": p.role, "address": p.address, "url": p.url, "rpc": p.rpc,
                "running": p.pid.is_some_and(alive)})
        })
        .collect()
}

pub(crate) fn down(args: &NetArgs) -> anyhow::Result<()> {
    load(&args.datadir)?; // (no network there: say so before creating a lock file)
    let _lock = lock_datadir(&args.datadir)?;
    let mut net = load(&args.datadir)?;
    for p in &mut net.parties {
        if let Some(pid) = p.pid.take() {
            stop_pid(&p.name, pid);
        }
        tracing::info!(target: targets::TESTNET, "{} stopped", p.name);
    }
    for n in &mut net.nodes {
        if let Some(pid) = n.pids.cl.take() {
            stop_pid(&format!("{} qoin-cl", n.name), pid);
        }
        if let Some(pid) = n.pids.el.take() {
            stop_pid(&format!("{} qoin-el", n.name), pid);
        }
        tracing::info!(target: targets::TESTNET, "{} stopped", n.name);
    }
    if let Some(l) = &net.namespaces {
        netns::destroy(l);
        tracing::info!(target: targets::TESTNET, "network namespaces qoin-{}-* removed", l.tag);
    }
    net.partition = None;
    save(&args.datadir, &net)
}

/// The index of the node named `node` (`node2`, or `2`).
fn find(net: &Network, node: &str) -> anyhow::Result<usize> {
    let want =
        if node.chars().all(|c| c.is_ascii_digit()) { format!("node{node}") } else { node.to_string() };
    let names: Vec<&str> = net.nodes.iter().map(|n| n.name.as_str()).collect();
    names.iter().position(|n| *n == want).with_context(|| {
        let parties: Vec<&str> = net.parties.iter().map(|p| p.name.as_str()).collect();
        format!("no node or party {node}; the network has {names:?} and {parties:?}")
    })
}

/// The index of the market party named `name`, if it is one.
fn find_party(net: &Network, name: &str) -> Option<usize> {
    net.parties.iter().position(|p| p.name == name)
}

pub(crate) fn kill(args: &NodeArgs) -> anyhow::Result<()> {
    let mut net = load(&args.net.datadir)?;
    if let Some(i) = find_party(&net, &args.node) {
        let p = &mut net.parties[i];
        if let Some(pid) = p.pid.take() {
            signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        tracing::info!(target: targets::TESTNET, "{} killed (SIGKILL)", p.name);
        return save(&args.net.datadir, &net);
    }
    let i = find(&net, &args.node)?;
    let n = &mut net.nodes[i];
    for pid in [n.pids.cl.take(), n.pids.el.take()].into_iter().flatten() {
        signal(pid, nix::sys::signal::Signal::SIGKILL);
    }
    tracing::info!(target: targets::TESTNET, "{} killed (SIGKILL)", n.name);
    save(&args.net.datadir, &net)
}

pub(crate) fn restart(args: &NodeArgs) -> anyhow::Result<()> {
    let d = args.net.datadir.clone();
    let mut net = load(&d)?;
    if let Some(i) = find_party(&net, &args.node) {
        let p = &mut net.parties[i];
        if let Some(pid) = p.pid.take() {
            stop_pid(&p.name, pid);
        }
        p.pid = Some(spawn(&p.command, &parties::log_path(&d, &p.name))?);
        tracing::info!(target: targets::TESTNET, "{} restarted", p.name);
        return save(&d, &net);
    }
    let i = find(&net, &args.node)?;
    if let Some(l) = &net.namespaces {
        if !netns::exists(l, i) {
            bail!(
                "{}'s network namespace is gone (the network was stopped with `down`): start it again with `up`",
                net.nodes[i].name
            );
        }
    }
    let n = &mut net.nodes[i];
    for (name, pid) in [("qoin-cl", n.pids.cl.take()), ("qoin-el", n.pids.el.take())] {
        if let Some(pid) = pid {
            stop_pid(&format!("{} {name}", n.name), pid);
        }
    }
    let nd = d.join(&n.name);
    n.pids.el = Some(spawn(&n.commands.el, &nd.join("el.log"))?);
    n.pids.cl = Some(spawn(&n.commands.cl, &nd.join("cl.log"))?);
    tracing::info!(target: targets::TESTNET, "{} restarted", n.name);
    let one = Network { nodes: vec![n.clone()], ..net.clone() };
    save(&d, &net)?;
    wait_answering(&d, &one, Duration::from_secs(60))
}

fn deny_file(d: &Path, node: &str) -> PathBuf {
    d.join(node).join("cl").join("deny-peers")
}

/// Options of `qoin-testnet partition`.
#[derive(clap::Args, Debug)]
pub(crate) struct PartitionArgs {
    /// Groups of nodes that keep seeing each other, `/`-separated, each a comma-separated list
    /// of node numbers or names (`0,1/2,3`); every node in exactly one group.
    #[arg(long)]
    groups: String,
    #[command(flatten)]
    net: NetArgs,
}

/// The groups of `spec` as indices into `net.nodes`; every node exactly once, at least two
/// groups.
fn parse_groups(net: &Network, spec: &str) -> anyhow::Result<Vec<Vec<usize>>> {
    let names: Vec<&str> = net.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut seen = vec![false; names.len()];
    let mut groups = Vec::new();
    for g in spec.split('/') {
        let mut group = Vec::new();
        for item in g.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let want = if item.chars().all(|c| c.is_ascii_digit()) {
                format!("node{item}")
            } else {
                item.to_string()
            };
            let i = names
                .iter()
                .position(|n| *n == want)
                .with_context(|| format!("no node {item}; the network has {names:?}"))?;
            if std::mem::replace(&mut seen[i], true) {
                bail!("{want} is named twice in --groups {spec}");
            }
            group.push(i);
        }
        if group.is_empty() {
            bail!("an empty group in --groups {spec}");
        }
        groups.push(group);
    }
    if groups.len() < 2 {
        bail!("--groups {spec} names one group: a partition needs at least two (`0,1/2,3`)");
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        bail!("{} is in no group of --groups {spec}: name every node once", names[i]);
    }
    Ok(groups)
}

/// Cuts each node off from the nodes outside its group (none for `groups` = `None`): with
/// namespaces, an nftables drop rule in each node's namespace, in force at once; on loopback,
/// each node's deny list, which its consensus client rereads within a second (a stopped one
/// when it starts).
fn apply_groups(d: &Path, net: &Network, groups: Option<&[Vec<usize>]>) -> anyhow::Result<()> {
    if let Some(l) = &net.namespaces {
        for i in 0..net.nodes.len() {
            let mine = groups.and_then(|g| g.iter().find(|g| g.contains(&i)));
            let cut: Vec<std::net::Ipv4Addr> = match (groups, mine) {
                (Some(_), Some(mine)) => {
                    (0..net.nodes.len()).filter(|j| !mine.contains(j)).map(|j| l.ip(j)).collect()
                }
                _ => Vec::new(),
            };
            netns::cut(l, i, &cut)?;
        }
        return Ok(());
    }
    if let Some(n) = net.nodes.iter().find(|n| !n.commands.cl.iter().any(|a| a == "--p2p.deny-file")) {
        bail!(
            "{} runs without --p2p.deny-file (a network started by an older qoin-testnet): start the network \
             again with `up` to partition it",
            n.name
        );
    }
    for (i, n) in net.nodes.iter().enumerate() {
        let mut text = String::from("# written by qoin-testnet partition/heal\n");
        if let Some(groups) = groups {
            let mine = groups.iter().find(|g| g.contains(&i)).map(Vec::as_slice).unwrap_or(&[]);
            for (j, other) in net.nodes.iter().enumerate() {
                if !mine.contains(&j) {
                    text.push_str(&other.p2p);
                    text.push('\n');
                }
            }
        }
        let path = deny_file(d, &n.name);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        if !n.pids.cl.is_some_and(alive) {
            tracing::info!(target: targets::TESTNET, "{}: not running; its list applies when it starts", n.name);
        }
    }
    Ok(())
}

pub(crate) fn partition(args: &PartitionArgs) -> anyhow::Result<()> {
    let d = &args.net.datadir;
    let mut net = load(d)?;
    let groups = parse_groups(&net, &args.groups)?;
    apply_groups(d, &net, Some(&groups))?;
    let named: Vec<Vec<String>> =
        groups.iter().map(|g| g.iter().map(|i| net.nodes[*i].name.clone()).collect()).collect();
    let shown: Vec<String> = named.iter().map(|g| g.join(",")).collect();
    let how = partition_how(net.namespaces.as_ref());
    tracing::info!(target: targets::TESTNET, "partitioned ({how}): {}", shown.join(" / "));
    net.partition = Some(named);
    save(d, &net)
}

pub(crate) fn heal(args: &NetArgs) -> anyhow::Result<()> {
    let d = &args.datadir;
    let mut net = load(d)?;
    apply_groups(d, &net, None)?;
    let how = if net.namespaces.is_some() { "drop rules removed" } else { "deny lists cleared" };
    tracing::info!(target: targets::TESTNET, "healed: {how}; peers reconnect within about 10 s");
    net.partition = None;
    save(d, &net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_up_or_down_at_a_time_per_network() {
        let dir = std::env::temp_dir().join(format!("qoin-testnet-lock-{}", std::process::id()));
        let held = lock_datadir(&dir).unwrap();
        let second = lock_datadir(&dir).unwrap_err().to_string();
        assert!(second.contains("another qoin-testnet"), "{second}");
        drop(held);
        assert!(lock_datadir(&dir).is_ok(), "free again once the first is done");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
