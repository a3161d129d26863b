//! # qoin-testnet
//!
//! Owns starting, watching and tearing down Qoin networks. Today: `dev`, a local development
//! chain — `qoin-el node --dev` as a child process with the embedded dev genesis, its ten
//! funded accounts unlocked, JSON-RPC on 127.0.0.1:8545 and local block production. When the
//! consensus client lands, `dev` starts it beside the execution client and blocks are mined;
//! `up`, `down` and `status` for many pairs follow with networking.

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Start, watch and tear down Qoin networks.
#[derive(Parser, Debug)]
#[command(name = "qoin-testnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start a local development chain (JSON-RPC on 127.0.0.1:8545); Ctrl-C stops it, and
    /// running it again continues the chain.
    Dev {
        /// Forget the data directory and start a new chain.
        #[arg(long)]
        fresh: bool,
        /// Data directory.
        #[arg(long, default_value_os_t = default_datadir())]
        datadir: PathBuf,
        /// Milliseconds between blocks; without it, a block as soon as a transaction arrives.
        #[arg(long)]
        block_time_ms: Option<u64>,
        /// JSON-RPC port.
        #[arg(long, default_value_t = 8545)]
        http_port: u16,
    },
}

fn default_datadir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".qoin")
        .join("devnet")
}

/// The `qoin-el` binary beside this one; under `cargo run` it is built first (a no-op when
/// up to date), so the one command in the README is enough on a fresh checkout.
fn el_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot locate qoin-testnet")?;
    let dir = me.parent().context("qoin-testnet has no parent directory")?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "qoin-execution", "--bin", "qoin-el"]);
        if release {
            build.arg("--release");
        }
        let status = build
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .status()
            .context("cannot run cargo to build qoin-el")?;
        if !status.success() {
            bail!("building qoin-el failed ({status})");
        }
    }
    let el = dir.join("qoin-el");
    if !el.exists() {
        bail!("{} not found: build it with `cargo build -p qoin-execution --bin qoin-el`", el.display());
    }
    Ok(el)
}

fn terminate(child: &Child) {
    // SIGTERM lets the node stop its server and close the database; a child still running
    // after 10 s is killed (its last committed block is safe either way).
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
}

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn dev(fresh: bool, datadir: &Path, block_time_ms: Option<u64>, http_port: u16) -> anyhow::Result<()> {
    if fresh && datadir.exists() {
        std::fs::remove_dir_all(datadir).with_context(|| format!("cannot remove {}", datadir.display()))?;
        println!("qoin-testnet: removed {} (--fresh)", datadir.display());
    }
    let el = el_binary()?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot install Ctrl-C handler")?;
    }
    let mine = block_time_ms.map_or_else(|| "instant".to_string(), |ms| ms.to_string());
    let mut child = Command::new(&el)
        .arg("--datadir")
        .arg(datadir.join("el"))
        .args(["node", "--dev", "--mine", &mine, "--http.port", &http_port.to_string()])
        .spawn()
        .with_context(|| format!("cannot start {}", el.display()))?;
    println!("qoin-testnet: started qoin-el (pid {}), data in {}", child.id(), datadir.display());
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("qoin-el exited unexpectedly ({status}); its log above says why");
        }
        if stop.load(Ordering::SeqCst) {
            println!("qoin-testnet: stopping qoin-el");
            terminate(&child);
            match wait_with_deadline(&mut child, Duration::from_secs(10)) {
                Some(status) => println!("qoin-testnet: qoin-el stopped ({status})"),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    println!("qoin-testnet: qoin-el did not stop within 10 s and was killed");
                }
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Dev { fresh, datadir, block_time_ms, http_port } => {
            dev(fresh, &datadir, block_time_ms, http_port)
        }
    }
}
