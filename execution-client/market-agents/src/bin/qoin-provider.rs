//! `qoin-provider`: a market provider's daemon (spec §17). `qoin-provider storage` keeps an
//! ask open on the storage market, takes the deals that fit it, stores and proves them, and
//! serves them over HTTP until stopped; `qoin-provider compute` does the same for jobs on the
//! compute market (runs them, commits and reveals their results); `qoin-provider mediator`
//! re-runs the jobs naming it when their results are contested. Each resumes from its data
//! directory after a restart.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use qoin_market_agents::cli::{run_main, Common};
use qoin_market_agents::compute_provider::{self, ComputeConfig};
use qoin_market_agents::mediator::{self, MediatorConfig};
use qoin_market_agents::node::Node;
use qoin_market_agents::storage_provider::{self, StorageConfig};
use qoin_market_agents::wallet::Wallet;

#[derive(Parser, Debug)]
#[command(name = "qoin-provider", about = "A storage or compute provider, or a mediator, on Qoin's markets")]
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
    /// Run jobs: post an ask, take jobs, run them, commit and reveal their results.
    Compute(ComputeConfig),
    /// Mediate jobs: register a fee, re-run contested jobs, post their true results.
    Mediator(MediatorConfig),
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
            Command::Compute(config) => {
                compute_provider::run(node, wallet, config).await.context("compute provider")
            }
            Command::Mediator(config) => mediator::run(node, wallet, config).await.context("mediator"),
        }
    })
    .await;
}
