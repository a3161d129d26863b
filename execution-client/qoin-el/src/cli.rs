//! `qoin-el node`: opening the chain, unlocking keys, local block production and the
//! JSON-RPC server, until Ctrl-C or SIGTERM.

use crate::account::PasswordSource;
use alloy_primitives::{Address, U256};
use anyhow::{bail, Context as _};
use qoin_crypto::keystore::Keystore;
use qoin_el_chain::Chain;
use qoin_el_engine::EngineHandler;
use qoin_el_node::{CallLimits, LocalMining, Node};
use qoin_engine_api::jwt::JwtSecret;
use qoin_primitives::dev::{dev_genesis, dev_keys};
use qoin_primitives::Genesis;
use qoin_store::StoreOptions;
use qoin_tracing::targets;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Options of `qoin-el node`.
#[derive(clap::Args, Debug)]
pub(crate) struct NodeArgs {
    /// Development chain: the ten deterministic dev accounts unlocked for
    /// `eth_sendTransaction`, the embedded dev genesis (unless --genesis), and a block as soon
    /// as a transaction arrives (unless --mine).
    #[arg(long)]
    pub(crate) dev: bool,
    /// Genesis file (required without --dev).
    #[arg(long)]
    pub(crate) genesis: Option<PathBuf>,
    /// JSON-RPC listen address.
    #[arg(long = "http.addr", default_value = "127.0.0.1")]
    pub(crate) http_addr: IpAddr,
    /// JSON-RPC port (0: any free port; the one chosen is logged).
    #[arg(long = "http.port", default_value_t = 8545)]
    pub(crate) http_port: u16,
    /// Local block production without a consensus client: `instant` (a block per arriving
    /// transaction), a period in milliseconds (a block every period), or `off`.
    /// Default: `instant` with --dev, `off` otherwise.
    #[arg(long)]
    pub(crate) mine: Option<String>,
    /// Keystore accounts to unlock for `eth_sendTransaction` (repeatable).
    #[arg(long)]
    pub(crate) unlock: Vec<Address>,
    /// Serve unlocked accounts (--unlock, or --dev's) on a JSON-RPC address other than
    /// loopback: anyone who reaches it can spend them. Refused without this flag (geth's name).
    #[arg(long = "allow-insecure-unlock")]
    pub(crate) allow_insecure_unlock: bool,
    /// Most gas one eth_call / eth_estimateGas may use (0: the block's gas limit only).
    #[arg(long = "rpc.gascap", default_value_t = 50_000_000)]
    pub(crate) rpc_gascap: u64,
    /// How long one eth_call, or one whole eth_estimateGas, may run (`5s`, `500ms`; 0: no limit).
    #[arg(long = "rpc.evmtimeout", default_value = "5s", value_parser = parse_timeout)]
    pub(crate) rpc_evmtimeout: Duration,
    /// eth_call, eth_estimateGas, eth_createAccessList, eth_getLogs and the other heavy methods
    /// run at once; the rest wait their turn (default: the number of CPUs, one fewer, at least
    /// one, when a consensus client drives the node, so a core stays free for its engine API).
    #[arg(long = "rpc.max-heavy-requests")]
    pub(crate) rpc_max_heavy: Option<usize>,
    /// Password file for --unlock (first line).
    #[arg(long)]
    pub(crate) password_file: Option<PathBuf>,
    /// Account credited with the priority fees of locally produced blocks.
    #[arg(long, default_value_t = Address::ZERO)]
    pub(crate) fee_recipient: Address,
    /// Engine API (gRPC) listen address, for the consensus client.
    #[arg(long = "authrpc.addr", default_value = "127.0.0.1")]
    pub(crate) authrpc_addr: IpAddr,
    /// Allow the engine API on an address other than loopback (it is JWT-authenticated, but
    /// meant for a consensus client on the same host or pod).
    #[arg(long = "authrpc.allow-remote")]
    pub(crate) authrpc_allow_remote: bool,
    /// Engine API port (0: any free port; the one chosen is logged).
    #[arg(long = "authrpc.port", default_value_t = 8551)]
    pub(crate) authrpc_port: u16,
    /// The engine API's JWT secret (32 bytes hex), shared with qoin-cl; created if absent.
    /// Default: `<datadir>/jwt.hex`.
    #[arg(long = "authrpc.jwtsecret")]
    pub(crate) jwt_secret: Option<PathBuf>,
    /// Verify every transaction signature of a payload, even when the consensus client says it
    /// verified them (`NewPayload`'s `signatures_verified`). Off by default: the JWT-holding
    /// consensus client is trusted with fork choice already, and checking twice halves the
    /// import rate of full blocks.
    #[arg(long = "engine.verify-all-signatures")]
    pub(crate) verify_all_signatures: bool,
    /// Serve Prometheus metrics on this port (`GET /metrics`); off without it.
    #[arg(long = "metrics.port")]
    pub(crate) metrics_port: Option<u16>,
    /// Metrics listen address.
    #[arg(long = "metrics.addr", default_value = "127.0.0.1")]
    pub(crate) metrics_addr: IpAddr,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 5s, 500ms, or 0 for no limit)"))
}

fn parse_mining(arg: Option<&str>, dev: bool) -> anyhow::Result<LocalMining> {
    Ok(match arg {
        None if dev => LocalMining::Instant,
        None | Some("off") => LocalMining::Off,
        Some("instant") => LocalMining::Instant,
        Some(ms) => {
            let ms: u64 = ms
                .parse()
                .with_context(|| format!("--mine {ms:?}: expected instant, off or milliseconds"))?;
            if ms == 0 {
                bail!("--mine 0: use `instant` for a block per transaction");
            }
            LocalMining::Interval(ms)
        }
    })
}

/// Refuses unlocked accounts on a JSON-RPC that others can reach, and an engine API off
/// loopback, unless the operator said so.
fn check_exposure(args: &NodeArgs, unlocked: bool) -> anyhow::Result<()> {
    if unlocked && !args.http_addr.is_loopback() && !args.allow_insecure_unlock {
        bail!(
            "accounts are unlocked (--unlock or --dev) and JSON-RPC listens on {}: anyone who reaches it can \
             spend them; listen on 127.0.0.1, or pass --allow-insecure-unlock",
            args.http_addr
        );
    }
    if !args.authrpc_addr.is_loopback() && !args.authrpc_allow_remote {
        bail!(
            "the engine API would listen on {}, not loopback; pass --authrpc.allow-remote if the consensus \
             client runs on another host",
            args.authrpc_addr
        );
    }
    Ok(())
}

/// Runs the node until interrupted.
pub(crate) fn run_node(datadir: &Path, keystore: &Keystore, args: &NodeArgs) -> anyhow::Result<()> {
    let mining = parse_mining(args.mine.as_deref(), args.dev)?;
    let (genesis, mut signers) = match (&args.genesis, args.dev) {
        (Some(path), dev) => (
            Genesis::from_file(path).with_context(|| format!("cannot load genesis {}", path.display()))?,
            if dev { dev_keys() } else { Vec::new() },
        ),
        (None, true) => {
            let keys = dev_keys();
            (dev_genesis(&keys), keys)
        }
        (None, false) => bail!("pass --genesis <file>, or --dev for a development chain"),
    };
    check_exposure(args, !signers.is_empty() || !args.unlock.is_empty())?;
    if !args.unlock.is_empty() {
        let source = args.password_file.clone().map_or(PasswordSource::Prompt, PasswordSource::File);
        let password = source.read(false)?;
        for address in &args.unlock {
            let key = keystore
                .unlock(address, password.as_bytes())
                .with_context(|| format!("cannot unlock {address:#x}"))?;
            signers.push(key);
        }
    }
    std::fs::create_dir_all(datadir).with_context(|| format!("cannot create {}", datadir.display()))?;
    let chain = Chain::open(&datadir.join("chaindata"), genesis, StoreOptions::default())
        .with_context(|| format!("cannot open the chain in {}", datadir.display()))?;
    let head = chain.head()?;
    tracing::info!(target: targets::NODE, "chain {} at block #{} {} (data in {})",
        chain.genesis().chain_id,
        head.number,
        head.hash(),
        datadir.display());
    let defaults = CallLimits::default();
    let limits = CallLimits {
        gas_cap: args.rpc_gascap,
        evm_timeout: args.rpc_evmtimeout,
        heavy_requests: args
            .rpc_max_heavy
            .unwrap_or(if mining == LocalMining::Off {
                defaults.heavy_requests.saturating_sub(1)
            } else {
                defaults.heavy_requests
            })
            .max(1),
    };
    let node = Arc::new(Node::new(chain, signers, mining, args.fee_recipient).with_call_limits(limits));
    if !node.accounts().is_empty() {
        let tx = node.chain().store().read()?;
        for (i, a) in node.accounts().iter().enumerate() {
            let balance = qoin_el_storage::reader::account(&tx, a)?.map_or(U256::ZERO, |r| r.balance);
            let balance = qoin_primitives::format_qoin(balance);
            tracing::info!(target: targets::NODE, index = i, address = %a, %balance, "unlocked for eth_sendTransaction");
        }
    }

    // JSON-RPC (its async workers and the blocking threads its methods run on) and the engine
    // API each get a runtime of their own, and, where a consensus client drives the chain, RPC
    // threads run at a lower CPU priority, so a flood of calls and log queries cannot queue
    // ahead of, or take the CPU from, its NewPayload and ForkchoiceUpdated (`qoin-bench
    // rpc-flood`). A node mining locally builds its blocks on the RPC threads themselves
    // (instant mining) or beside them: there is nothing to yield to, and its callers get the
    // CPU as anvil's do.
    let engine_driven = mining == LocalMining::Off;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("qoin-el-rpc")
        .on_thread_start(move || {
            if engine_driven {
                yield_cpu_to_consensus();
            }
        })
        .build()
        .context("cannot start the async runtime")?;
    let engine_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(8)
        .enable_all()
        .thread_name("qoin-el-engine")
        .build()
        .context("cannot start the engine API's runtime")?;
    let stop = Arc::new(AtomicBool::new(false));
    let producer = match mining {
        LocalMining::Interval(ms) => {
            let (node, stop) = (node.clone(), stop.clone());
            Some(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(ms));
                    if let Err(e) = node.produce(true) {
                        tracing::error!(target: targets::MINER, "block production failed: {e}");
                    }
                }
            }))
        }
        LocalMining::Instant | LocalMining::Off => None,
    };
    let mode = match mining {
        LocalMining::Off => "off (waiting for a consensus client)".to_string(),
        LocalMining::Instant => "instant (a block per transaction)".to_string(),
        LocalMining::Interval(ms) => format!("a block every {ms} ms"),
    };
    tracing::info!(target: targets::MINER, "local block production: {mode}");
    let jwt_path = args.jwt_secret.clone().unwrap_or_else(|| datadir.join("jwt.hex"));
    let secret = JwtSecret::load_or_create(&jwt_path)
        .with_context(|| format!("cannot load the engine API secret {}", jwt_path.display()))?;
    let registry = Arc::new(qoin_metrics::Registry::new());
    let engine = Arc::new(
        EngineHandler::new(node.clone())
            .with_metrics(&registry)
            .verify_all_signatures(args.verify_all_signatures),
    );
    runtime.block_on(async {
        let addr = SocketAddr::new(args.http_addr, args.http_port);
        let (bound, handle) = qoin_rpc::serve(node.clone(), addr)
            .await
            .with_context(|| format!("cannot listen for JSON-RPC on {addr}"))?;
        tracing::info!(target: targets::RPC, "JSON-RPC listening on http://{bound}");
        let auth_addr = SocketAddr::new(args.authrpc_addr, args.authrpc_port);
        // Served by the engine runtime's own threads.
        let engine_server = engine_runtime
            .spawn(qoin_engine_api::serve(engine, auth_addr, secret))
            .await
            .context("the engine API's runtime stopped")?
            .with_context(|| format!("cannot listen for the engine API on {auth_addr}"))?;
        tracing::info!(target: targets::ENGINE, "engine API listening on http://{} (JWT secret {})",
            engine_server.addr,
            jwt_path.display());
        if let Some(port) = args.metrics_port {
            let addr = SocketAddr::new(args.metrics_addr, port);
            let bound = qoin_metrics::serve(registry.clone(), addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?;
            tracing::info!(target: targets::METRICS, "metrics on http://{bound}/metrics");
            spawn_gauges(node.clone(), &registry);
        }
        shutdown_signal().await;
        tracing::info!(target: targets::NODE, "shutting down");
        let _ = handle.stop();
        handle.stopped().await;
        let _ = engine_runtime.spawn(engine_server.stop()).await;
        anyhow::Ok(())
    })?;
    stop.store(true, Ordering::Relaxed);
    if let Some(p) = producer {
        let _ = p.join();
    }
    tracing::info!(target: targets::NODE, "stopped");
    Ok(())
}

/// Lowers the calling thread's CPU priority (nice 10; on Linux a thread's own), for JSON-RPC
/// threads: the scheduler then runs the engine API's threads first when both want a core.
fn yield_cpu_to_consensus() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority reads no memory of ours; PRIO_PROCESS with id 0 names the calling
    // thread on Linux. Failure only leaves the priority as it was.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Refreshes the head and pool gauges once a second.
fn spawn_gauges(node: Arc<Node>, registry: &qoin_metrics::Registry) {
    let height = registry.gauge("qoin_el_head_height", "Number of the execution client's head block.");
    let pool = registry.gauge("qoin_el_txpool_size", "Transactions in the pool (pending and queued).");
    let gas = registry.gauge("qoin_el_head_gas_used", "Gas used by the head block.");
    let base_fee = registry.gauge("qoin_el_head_base_fee", "Base fee per gas of the head block, in shor.");
    tokio::spawn(async move {
        loop {
            if let Ok(h) = node.chain().head() {
                height.set(h.number as f64);
                gas.set(h.gas_used as f64);
                base_fee.set(h.base_fee_per_gas as f64);
            }
            pool.set(node.pool().len() as f64);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
