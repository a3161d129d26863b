//! `qoin-market`: the client of Qoin's markets. `storage put FILE` stores a file with
//! replicas on the storage market and prints its deal id; `storage get DEAL --out FILE`
//! retrieves it, checking every chunk; `storage status DEAL` shows the deal.

use clap::{Parser, Subcommand};
use qoin_market_agents::cli::{run_main, Common};
use qoin_market_agents::client::{self, PutTerms};
use qoin_market_agents::node::Node;
use qoin_market_agents::wallet::{KeyArgs, Wallet};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "qoin-market", about = "Store files and run jobs on Qoin's markets")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The storage market.
    #[command(subcommand)]
    Storage(Storage),
}

#[derive(Subcommand, Debug)]
enum Storage {
    /// Store FILE: erasure-code it, post a bid, wait for providers, upload; prints the deal id.
    Put {
        file: PathBuf,
        #[command(flatten)]
        terms: PutTerms,
    },
    /// Retrieve a deal's file, checking every chunk against the deal's Merkle root.
    Get {
        deal: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// A deal as the chain has it (JSON).
    Status { deal: u64 },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let log = cli.common.log.clone();
    run_main("qoin-market", &log, run(cli)).await;
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let node = Node::connect(&cli.common.rpc).await?;
    match cli.command {
        Command::Storage(Storage::Put { file, terms }) => {
            let wallet = Wallet::open(&cli.common.key)?;
            let deal = client::put(&node, &wallet, &file, &terms).await?;
            println!("{deal}");
        }
        Command::Storage(Storage::Get { deal, out }) => {
            let me = reader(&cli.common.key)?;
            let bytes = client::get(&node, me, deal, &out).await?;
            eprintln!("{bytes} bytes written to {}", out.display());
        }
        Command::Storage(Storage::Status { deal }) => {
            let me = reader(&cli.common.key)?;
            println!("{}", serde_json::to_string_pretty(&client::status(&node, me, deal).await?)?);
        }
    }
    Ok(())
}

/// Reads need no key: the account calls are made from, if one is given.
fn reader(key: &KeyArgs) -> anyhow::Result<alloy_primitives::Address> {
    Ok(match (key.from, key.dev_account) {
        (Some(a), _) => a,
        (None, Some(i)) => Wallet::dev(i)?.address(),
        (None, None) => alloy_primitives::Address::ZERO,
    })
}
