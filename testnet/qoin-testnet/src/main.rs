//! # qoin-testnet
//!
//! Will own starting, watching and tearing down Qoin networks: `dev` (one `qoin-el` and one
//! `qoin-cl` from an embedded dev genesis), `up`, `down` and `status` for many pairs,
//! genesis generation, the load generator, and Prometheus/Grafana and deployment files.
//!
//! The clients it starts do not exist yet: `dev` arrives with the engine API and the
//! consensus client. Today `dev` says so and exits.

use clap::{Parser, Subcommand};

/// Start, watch and tear down Qoin networks.
#[derive(Parser, Debug)]
#[command(name = "qoin-testnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a local single-node devnet (qoin-el + qoin-cl).
    Dev {
        /// Forget the data directory and start a new chain.
        #[arg(long)]
        fresh: bool,
    },
}

fn main() {
    match Cli::parse().command {
        Command::Dev { fresh: _ } => {
            println!(
                "qoin-testnet dev: the devnet arrives with the engine API and the consensus client.\n\
                 Available today: post-quantum keys and signatures (qoin-crypto), the block and\n\
                 transaction formats (qoin-primitives), typed MDBX storage (qoin-store) and\n\
                 keystore accounts: cargo run -p qoin-execution --bin qoin-el -- account new"
            );
        }
    }
}
