//! # qoin-testnet
//!
//! Owns starting, watching and tearing down Qoin networks. Today: `dev`, a local development
//! chain of one validator: `qoin-el` and `qoin-cl` as two processes, mining with the
//! post-quantum proof of work at a 1-second target, JSON-RPC on 127.0.0.1:8545 with the ten
//! funded dev accounts unlocked. `up`, `down` and `status` for many pairs follow with
//! networking.

mod dev;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Start, watch and tear down Qoin networks.
#[derive(Parser, Debug)]
#[command(name = "qoin-testnet", version, about)]
struct Cli {
    /// Logging (also passed on to the programs it starts).
    #[command(flatten)]
    log: qoin_tracing::LogArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start a local mining devnet (qoin-el + qoin-cl; JSON-RPC on 127.0.0.1:8545); Ctrl-C
    /// stops both, and running it again continues the chain.
    Dev(dev::DevArgs),
}

fn default_datadir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".qoin")
        .join("devnet")
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = qoin_tracing::init("qoin-testnet", &cli.log) {
        eprintln!("qoin-testnet: {e}");
        std::process::exit(2);
    }
    let result = match &cli.command {
        Cmd::Dev(args) => dev::run(args, &cli.log),
    };
    if let Err(e) = result {
        tracing::error!(target: qoin_tracing::targets::TESTNET, "{e:#}");
        std::process::exit(1);
    }
}
