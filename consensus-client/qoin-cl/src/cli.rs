//! `qoin-cl`'s command line.

use alloy_primitives::Address;
use anyhow::{bail, Context as _};
use qoin_cl_node::{run, ClMetrics, Config, MinerConfig, MinerPriority, P2pOptions};
use qoin_crypto::keystore::Keystore;
use qoin_engine_api::jwt::JwtSecret;
use qoin_primitives::Genesis;
use qoin_tracing::targets;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// Qoin's consensus client: validates and mines blocks, drives qoin-el over the engine API.
#[derive(clap::Parser, Debug)]
#[command(name = "qoin-cl", version, about)]
pub(crate) struct Cli {
    /// Data directory (chain store in `<datadir>/chaindata`).
    #[arg(long, default_value_os_t = default_datadir())]
    pub(crate) datadir: PathBuf,
    /// Genesis file (the same one qoin-el runs).
    #[arg(long)]
    pub(crate) genesis: PathBuf,
    /// The execution client's engine API.
    #[arg(long, default_value = "http://127.0.0.1:8551")]
    pub(crate) execution_endpoint: String,
    /// The engine API's JWT secret file (32 bytes hex), shared with qoin-el.
    #[arg(long)]
    pub(crate) execution_jwt: PathBuf,
    /// Keystore directory holding the validator's key.
    #[arg(long)]
    pub(crate) keystore: Option<PathBuf>,
    /// The validator's address in the keystore (needed when it holds several keys).
    #[arg(long)]
    pub(crate) miner: Option<Address>,
    /// File whose first line is the keystore password (otherwise prompted).
    #[arg(long)]
    pub(crate) password_file: Option<PathBuf>,
    /// Account receiving block rewards and fees (default: the validator's address).
    #[arg(long)]
    pub(crate) coinbase: Option<Address>,
    /// Proof-of-work search threads (default: all cores).
    #[arg(long = "miner.threads")]
    pub(crate) threads: Option<usize>,
    /// Least milliseconds between two rebuilds of the block being mined for new transactions
    /// (the search restarts only when the rebuilt block pays more in fees).
    #[arg(long = "miner.recommit", default_value_t = 500)]
    pub(crate) recommit_ms: u64,
    /// CPU priority of the search threads: `idle` runs them only on cores nothing else wants
    /// (Linux `SCHED_IDLE`; block import, sync and the execution client go first), `normal`
    /// schedules them like any other thread.
    #[arg(long = "miner.priority", value_enum, default_value = "idle")]
    pub(crate) priority: Priority,
    /// Follow the chain without mining even with a key.
    #[arg(long)]
    pub(crate) no_mine: bool,
    /// Accounts sampled per block besides every sender.
    #[arg(long, default_value_t = 8)]
    pub(crate) sample_accounts: usize,
    /// Serve Prometheus metrics on this port (`GET /metrics`).
    #[arg(long = "metrics.port")]
    pub(crate) metrics_port: Option<u16>,
    /// Metrics listen address.
    #[arg(long = "metrics.addr", default_value = "127.0.0.1")]
    pub(crate) metrics_addr: IpAddr,
    /// Peer-to-peer port, TCP and UDP (QUIC); 0 picks free ports.
    #[arg(long = "p2p.port", default_value_t = 30333)]
    pub(crate) p2p_port: u16,
    /// Peer-to-peer listen address.
    #[arg(long = "p2p.addr", default_value = "0.0.0.0")]
    pub(crate) p2p_addr: IpAddr,
    /// Peers to dial first, comma-separated multiaddrs ending in `/p2p/<peer id>`.
    #[arg(long, value_delimiter = ',')]
    pub(crate) bootnodes: Vec<qoin_cl_node::p2p::Multiaddr>,
    /// Most inbound peer connections.
    #[arg(long = "p2p.max-inbound", default_value_t = 32)]
    pub(crate) max_inbound: u32,
    /// Most outbound peer connections.
    #[arg(long = "p2p.max-outbound", default_value_t = 16)]
    pub(crate) max_outbound: u32,
    /// Peers never to connect with: a file of peer ids (or multiaddrs ending in
    /// `/p2p/<peer id>`), one per line, `#` comments; reread when it changes (checked every
    /// second; a bad file changes nothing). `qoin-testnet partition` and `heal` write it.
    #[arg(long = "p2p.deny-file")]
    pub(crate) deny_file: Option<PathBuf>,
    /// Test networks only: hold every message from a peer this many milliseconds before
    /// handling it, a one-way delay on every link (`qoin-testnet up --latency-ms` sets it).
    #[arg(long = "p2p.test-latency-ms", default_value_t = 0)]
    pub(crate) test_latency_ms: u64,
    /// Run without the peer-to-peer network (a lone validator).
    #[arg(long = "no-p2p")]
    pub(crate) no_p2p: bool,
    /// Logging.
    #[command(flatten)]
    pub(crate) log: qoin_tracing::LogArgs,
}

fn p2p_options(cli: &Cli) -> Option<P2pOptions> {
    if cli.no_p2p {
        return None;
    }
    let ip = match cli.p2p_addr {
        IpAddr::V4(a) => format!("/ip4/{a}"),
        IpAddr::V6(a) => format!("/ip6/{a}"),
    };
    let listen = [format!("{ip}/tcp/{}", cli.p2p_port), format!("{ip}/udp/{}/quic-v1", cli.p2p_port)]
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    Some(P2pOptions {
        listen,
        bootnodes: cli.bootnodes.clone(),
        max_inbound: cli.max_inbound,
        max_outbound: cli.max_outbound,
        deny_file: cli.deny_file.clone(),
        inbound_delay: std::time::Duration::from_millis(cli.test_latency_ms),
    })
}

fn default_datadir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".qoin").join("cl")
}

fn read_password(file: Option<&PathBuf>) -> anyhow::Result<String> {
    match file {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            Ok(text.lines().next().unwrap_or("").to_string())
        }
        None => rpassword::prompt_password("keystore password: ").context("cannot read the password"),
    }
}

fn miner_config(cli: &Cli) -> anyhow::Result<Option<MinerConfig>> {
    let Some(dir) = &cli.keystore else {
        if cli.miner.is_some() {
            bail!("--miner needs --keystore <dir>");
        }
        return Ok(None);
    };
    if cli.no_mine {
        return Ok(None);
    }
    let ks = Keystore::new(dir);
    let address = match cli.miner {
        Some(a) => a,
        None => {
            let keys = ks.list().with_context(|| format!("cannot list keystore {}", dir.display()))?;
            match keys.as_slice() {
                [(_, Ok(one))] => one.address,
                [(path, Err(e))] => bail!("cannot read {}: {e}", path.display()),
                [] => bail!("keystore {} holds no key", dir.display()),
                _ => bail!("keystore {} holds {} keys: pick one with --miner", dir.display(), keys.len()),
            }
        }
    };
    let password = read_password(cli.password_file.as_ref())?;
    let keypair =
        ks.unlock(&address, password.as_bytes()).with_context(|| format!("cannot unlock {address:#x}"))?;
    let threads = cli.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Ok(Some(MinerConfig {
        keypair,
        coinbase: cli.coinbase.unwrap_or(address),
        threads,
        recommit: std::time::Duration::from_millis(cli.recommit_ms),
        priority: match cli.priority {
            Priority::Idle => MinerPriority::Idle,
            Priority::Normal => MinerPriority::Normal,
        },
    }))
}

/// Runs `qoin-cl` until Ctrl-C or SIGTERM.
pub(crate) fn main_with(cli: &Cli) -> anyhow::Result<()> {
    let genesis = Genesis::from_file(&cli.genesis)
        .with_context(|| format!("cannot load genesis {}", cli.genesis.display()))?;
    let jwt = JwtSecret::load_or_create(&cli.execution_jwt)
        .with_context(|| format!("cannot load the JWT secret {}", cli.execution_jwt.display()))?;
    let miner = miner_config(cli)?;
    let config = Config {
        datadir: cli.datadir.clone(),
        genesis,
        engine_url: cli.execution_endpoint.clone(),
        jwt,
        miner,
        sample_k: cli.sample_accounts,
        p2p: p2p_options(cli),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("qoin-cl")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let metrics = Arc::new(ClMetrics::new());
        if let Some(port) = cli.metrics_port {
            let addr = SocketAddr::new(cli.metrics_addr, port);
            let bound = qoin_metrics::serve(metrics.registry.clone(), addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?;
            tracing::info!(target: targets::METRICS, "metrics on http://{bound}/metrics");
        }
        run(config, metrics, shutdown_signal()).await
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!(target: targets::NODE, "shutting down");
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!(target: targets::NODE, "shutting down");
}

/// `--miner.priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Priority {
    /// Only cores nothing else wants.
    Idle,
    /// Like any other thread.
    Normal,
}
