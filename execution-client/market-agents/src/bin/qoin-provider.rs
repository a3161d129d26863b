//! `qoin-provider`: a market provider's daemon (spec §17). `qoin-provider storage` keeps an
//! ask open on the storage market, takes the deals that fit it, stores and proves them, and
//! serves them over HTTP until stopped; its data directory lets it resume after a restart.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use qoin_market_agents::cli::{run_main, Common};
use qoin_market_agents::node::Node;
use qoin_market_agents::storage_provider::{self, StorageConfig};
use qoin_market_agents::wallet::Wallet;

#[derive(Parser, Debug)]
#[command(name = "qoin-provider", about = "A storage provider on Qoin's markets")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Offer storage: post an ask, take deals, prove them every period, serve them.
    Storage(StorageConfig),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let log = cli.common.log.clone();
    run_main("qoin-provider", &log, async move {
        let wallet = Wallet::open(&cli.common.key)?;
        let node = Node::connect(&cli.common.rpc).await?;
        match cli.command {
            Command::Storage(config) => {
                storage_provider::run(node, wallet, config).await.context("storage provider")
            }
        }
    })
    .await;
}
