//! # qoin-testnet
//!
//! Owns starting, watching and tearing down Qoin networks: `dev`, a local development chain of
//! one validator (`qoin-el` and `qoin-cl` as two processes, mining with the post-quantum proof
//! of work at a 1-second target, JSON-RPC on 127.0.0.1:8545 with the ten funded dev accounts
//! unlocked); `up`, `status`, `down`, `kill` and `restart` for a local network of many pairs
//! peered over the p2p network, described in `network.json` for scripts, with `kill`, `restart`,
//! `partition` and `heal` to break it, and the market's providers and mediators beside it
//! (`up --storage-providers --compute-providers --mediators`); `manifests` for the same network
//! on Kubernetes.

mod dev;
mod manifests;
mod net;
mod netns;
mod parties;

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
    /// Start a network of N pairs, each in a network namespace of its own as root, else on
    /// loopback (returns once every node answers and has a peer; writes DATADIR/network.json).
    Up(net::UpArgs),
    /// Height, head, peers, sync state, hash rate and pool size of every node; whether the heads
    /// agree.
    Status(net::StatusArgs),
    /// Stop every program of the network.
    Down(net::NetArgs),
    /// SIGKILL both programs of one node.
    Kill(net::NodeArgs),
    /// Start one node's programs again (stopping them first if they run).
    Restart(net::NodeArgs),
    /// Cut the network into groups that do not see each other (`--groups 0,1/2,3`).
    Partition(net::PartitionArgs),
    /// Join the groups of a partition again.
    Heal(net::NetArgs),
    /// Write Kubernetes manifests (StatefulSet of pairs, headless Service, genesis ConfigMap,
    /// keys, volume claims, Prometheus annotations) and a Dockerfile for a network of N pairs.
    Manifests(manifests::ManifestArgs),
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
        Cmd::Up(args) => net::up(args, &cli.log),
        Cmd::Status(args) => net::status(args),
        Cmd::Down(args) => net::down(args),
        Cmd::Kill(args) => net::kill(args),
        Cmd::Restart(args) => net::restart(args),
        Cmd::Partition(args) => net::partition(args),
        Cmd::Heal(args) => net::heal(args),
        Cmd::Manifests(args) => manifests::manifests(args),
    };
    if let Err(e) = result {
        tracing::error!(target: qoin_tracing::targets::TESTNET, "{e:#}");
        std::process::exit(1);
    }
}
