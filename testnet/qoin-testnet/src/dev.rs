//! `qoin-testnet dev`: one qoin-el and one qoin-cl on a fresh or continued dev chain.
//!
//! Data directory layout: `genesis.json` (written on first start: the dev allocations, the
//! start time, and an initial difficulty measured on this machine so blocks come at about the
//! target from the first one), `jwt.hex` (the engine API secret), `el/` (qoin-el), `cl/`
//! (qoin-cl, with the validator's keystore and its password file).

use anyhow::{bail, Context as _};
use qoin_crypto::keystore::{KdfParams, Keystore};
use qoin_pow::{Difficulty, MqSystem};
use qoin_primitives::dev::{dev_genesis, dev_keys};
use qoin_tracing::{targets, LogArgs, LogFormat};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `qoin-testnet dev`.
#[derive(clap::Args, Debug)]
pub(crate) struct DevArgs {
    /// Forget the data directory and start a new chain.
    #[arg(long)]
    fresh: bool,
    /// Data directory.
    #[arg(long, default_value_os_t = crate::default_datadir())]
    datadir: PathBuf,
    /// Target block time of a new chain, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    block_time_ms: u64,
    /// JSON-RPC port.
    #[arg(long, default_value_t = 8545)]
    http_port: u16,
    /// Engine API port between the two programs.
    #[arg(long, default_value_t = 8551)]
    engine_port: u16,
    /// Proof-of-work search threads (default: all cores).
    #[arg(long)]
    miner_threads: Option<usize>,
    /// qoin-cl's peer-to-peer port (TCP and QUIC, on 127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 30333)]
    p2p_port: u16,
    /// Serve Prometheus metrics: qoin-el on this port, qoin-cl on the next.
    #[arg(long)]
    metrics_port: Option<u16>,
}

/// The `qoin-el` and `qoin-cl` binaries beside this one; under `cargo run` they are built
/// first, showing cargo's own progress (a second or two when up to date), so the README's one
/// command is enough on a fresh checkout.
pub(crate) fn binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    let built = built(
        &["-p", "qoin-el", "-p", "qoin-cl"],
        "qoin-el and qoin-cl with cargo (the first build takes several minutes; its progress follows)",
        &["qoin-el", "qoin-cl"],
        "cargo build --bins",
    )?;
    Ok((built[0].clone(), built[1].clone()))
}

/// `qoin-provider` (the market parties' daemon), built beside this program as
/// [`binaries`] builds the node's programs.
pub(crate) fn provider_binary() -> anyhow::Result<PathBuf> {
    let built = built(
        &["-p", "qoin-market-agents", "--bin", "qoin-provider"],
        "qoin-provider with cargo",
        &["qoin-provider"],
        "cargo build -p qoin-market-agents",
    )?;
    Ok(built[0].clone())
}

/// The programs `names` beside this one: first built with `cargo build <packages>` (in this
/// program's profile) when run through cargo, saying `what` it builds; `hint` says how to
/// build them when they are missing.
fn built(packages: &[&str], what: &str, names: &[&str], hint: &str) -> anyhow::Result<Vec<PathBuf>> {
    let me = std::env::current_exe().context("cannot locate qoin-testnet")?;
    let dir = me.parent().context("qoin-testnet has no parent directory")?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        let release = dir.file_name().is_some_and(|n| n == "release");
        tracing::info!(target: targets::TESTNET, "building {what}");
        let mut build = Command::new(cargo);
        build.arg("build").args(packages);
        if release {
            build.arg("--release");
        }
        let status = build
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .status()
            .with_context(|| format!("cannot run cargo to build {}", names.join(" and ")))?;
        if !status.success() {
            bail!("building {} failed ({status})", names.join(" and "));
        }
    }
    names
        .iter()
        .map(|name| {
            let bin = dir.join(name);
            if !bin.exists() {
                bail!("{} not found: build it with `{hint}`", bin.display());
            }
            Ok(bin)
        })
        .collect()
}

/// Candidates per second of the fastest solver on `threads` threads. The system grows until
/// one search takes ≥ 100 ms (small systems understate a fast solver: per-system set-up
/// dominates), then searches are timed for ~300 ms.
pub(crate) fn measure_rate(threads: usize) -> anyhow::Result<(f64, &'static str)> {
    let solver = qoin_kernels::fastest();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("search threads")?;
    let stop = AtomicBool::new(false);
    let never = |_x: u128| false;
    let search = |m: u32, i: u8| {
        let sys = MqSystem::from_seed(&qoin_primitives::B256::repeat_byte(i), m, m + qoin_pow::N_EXTRA);
        let start = Instant::now();
        let report = pool
            .install(|| solver.search(&sys, &qoin_kernels::SearchControl { stop: &stop, accept: &never }));
        (report.candidates, start.elapsed())
    };
    let mut m = 16;
    while m < 30 && search(m, 0).1 < Duration::from_millis(100) {
        m += 2;
    }
    let (mut candidates, mut elapsed, mut i) = (0u128, Duration::ZERO, 1u8);
    while elapsed < Duration::from_millis(300) {
        let (c, t) = search(m, i);
        candidates += c;
        elapsed += t;
        i = i.wrapping_add(1);
    }
    Ok((candidates as f64 / elapsed.as_secs_f64(), solver.name()))
}

/// The difficulty at which `rate` candidates per second find a block every `target_ms`.
pub(crate) fn calibrated(rate: f64, target_ms: u64) -> Difficulty {
    let work = (rate * target_ms as f64 / 1000.0).max(256.0);
    let m = work.log2().floor().clamp(8.0, 64.0) as u32;
    let f = (work / 2f64.powi(m as i32)).clamp(1.0, 2.0 - 1e-9);
    let mantissa = ((f - 1.0) * 4_294_967_296.0) as u32;
    Difficulty::new(m, mantissa).unwrap_or(Difficulty::MIN)
}

/// Writes a new dev genesis starting now, with `block_time_ms` as its target and `difficulty`
/// for block 1: the dev accounts and the `extra` ones (an account in both takes `extra`'s).
pub(crate) fn write_genesis(
    path: &Path,
    block_time_ms: u64,
    difficulty: Difficulty,
    extra: std::collections::BTreeMap<qoin_primitives::Address, qoin_primitives::GenesisAccount>,
) -> anyhow::Result<()> {
    let mut g = dev_genesis(&dev_keys());
    g.alloc.extend(extra);
    g.timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    g.target_block_time_ms = block_time_ms;
    g.pow.initial_equations = difficulty.m();
    g.pow.initial_mantissa = difficulty.mantissa();
    g.validate()?;
    std::fs::write(path, g.to_json()).with_context(|| format!("cannot write {}", path.display()))
}

fn prepare(args: &DevArgs, threads: usize) -> anyhow::Result<()> {
    let d = &args.datadir;
    std::fs::create_dir_all(d.join("cl")).with_context(|| format!("cannot create {}", d.display()))?;
    let genesis_path = d.join("genesis.json");
    if !genesis_path.exists() {
        let (rate, solver) = measure_rate(threads)?;
        let difficulty = calibrated(rate, args.block_time_ms);
        write_genesis(&genesis_path, args.block_time_ms, difficulty, Default::default())?;
        tracing::info!(target: targets::TESTNET, "new chain: {solver} solver measured at {rate:.3e} candidates/s on {threads} threads; \
             initial difficulty {difficulty} for a {} ms target",
            args.block_time_ms
        );
    }
    let ks = Keystore::new(d.join("cl").join("keystore"));
    let password = d.join("cl").join("password");
    if !password.exists() {
        let mut raw = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        let pw = hex::encode(raw);
        write_private(&password, &pw)?;
        let address =
            ks.create(pw.as_bytes(), KdfParams::STANDARD).context("cannot create the validator key")?;
        tracing::info!(target: targets::TESTNET, "validator key {address:#x} in {}", ks.dir().display());
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Children get their own process group, so a Ctrl-C at the terminal reaches only this
/// program, which then stops the consensus client before the execution client.
fn own_group(cmd: &mut Command) {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
}

fn terminate(child: &Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
}

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn stop(name: &str, child: &mut Child) {
    terminate(child);
    match wait_with_deadline(child, Duration::from_secs(10)) {
        Some(status) => tracing::info!(target: targets::TESTNET, "{name} stopped ({status})"),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            tracing::warn!(target: targets::TESTNET, "{name} did not stop within 10 s and was killed");
        }
    }
}

/// Runs the devnet until Ctrl-C, or until one program dies (an error naming it).
/// The logging options given to `qoin-testnet`, passed on to both programs.
fn log_options(cmd: &mut Command, log: &LogArgs) {
    if let Some(filter) = &log.filter {
        cmd.args(["--log", filter]);
    }
    if log.format == LogFormat::Json {
        cmd.args(["--log.format", "json"]);
    }
}

pub(crate) fn run(args: &DevArgs, log: &LogArgs) -> anyhow::Result<()> {
    let d = &args.datadir;
    if args.fresh && d.exists() {
        std::fs::remove_dir_all(d).with_context(|| format!("cannot remove {}", d.display()))?;
        tracing::info!(target: targets::TESTNET, "removed {} (--fresh)", d.display());
    }
    let (el_bin, cl_bin) = binaries()?;
    let threads =
        args.miner_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    prepare(args, threads)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("cannot install Ctrl-C handler")?;
    }
    let jwt = d.join("jwt.hex");
    let genesis = d.join("genesis.json");
    let mut el_cmd = Command::new(&el_bin);
    el_cmd.arg("--datadir").arg(d.join("el")).args(["node", "--dev", "--genesis"]).arg(&genesis).args([
        "--mine",
        "off",
        "--http.port",
        &args.http_port.to_string(),
        "--authrpc.port",
        &args.engine_port.to_string(),
        "--authrpc.jwtsecret",
    ]);
    el_cmd.arg(&jwt);
    log_options(&mut el_cmd, log);
    if let Some(p) = args.metrics_port {
        el_cmd.args(["--metrics.port", &p.to_string()]);
    }
    own_group(&mut el_cmd);
    let mut el = el_cmd.spawn().with_context(|| format!("cannot start {}", el_bin.display()))?;
    tracing::info!(target: targets::TESTNET, "started qoin-el (pid {})", el.id());
    let mut cl_cmd = Command::new(&cl_bin);
    cl_cmd
        .arg("--datadir")
        .arg(d.join("cl"))
        .arg("--genesis")
        .arg(&genesis)
        .args(["--execution-endpoint", &format!("http://127.0.0.1:{}", args.engine_port), "--execution-jwt"])
        .arg(&jwt)
        .arg("--keystore")
        .arg(d.join("cl").join("keystore"))
        .arg("--password-file")
        .arg(d.join("cl").join("password"))
        .args(["--miner.threads", &threads.to_string()])
        .args(["--p2p.addr", "127.0.0.1", "--p2p.port", &args.p2p_port.to_string()]);
    if let Some(p) = args.metrics_port {
        cl_cmd.args(["--metrics.port", &(p + 1).to_string()]);
    }
    log_options(&mut cl_cmd, log);
    own_group(&mut cl_cmd);
    let mut cl = match cl_cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            stop("qoin-el", &mut el);
            return Err(e).with_context(|| format!("cannot start {}", cl_bin.display()));
        }
    };
    tracing::info!(target: targets::TESTNET, "started qoin-cl (pid {}); data in {}; Ctrl-C stops both", cl.id(), d.display());
    loop {
        if let Some(status) = el.try_wait()? {
            tracing::error!(target: targets::TESTNET, "qoin-el exited unexpectedly ({status}); stopping qoin-cl");
            stop("qoin-cl", &mut cl);
            bail!("qoin-el died ({status}); its log above says why");
        }
        if let Some(status) = cl.try_wait()? {
            tracing::error!(target: targets::TESTNET, "qoin-cl exited unexpectedly ({status}); stopping qoin-el");
            stop("qoin-el", &mut el);
            bail!("qoin-cl died ({status}); its log above says why");
        }
        if interrupted.load(Ordering::SeqCst) {
            tracing::info!(target: targets::TESTNET, "stopping");
            stop("qoin-cl", &mut cl);
            stop("qoin-el", &mut el);
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_aims_at_the_target() {
        let d = calibrated(1e9, 1000);
        let work = 2f64.powf(d.log2_work());
        assert!((work / 1e9 - 1.0).abs() < 1e-6, "{work}");
        assert_eq!(calibrated(1.0, 1000), Difficulty::new(8, 0).unwrap(), "never below the minimum");
    }
}
