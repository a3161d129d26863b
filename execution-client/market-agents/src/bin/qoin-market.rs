//! `qoin-market`: the client of Qoin's markets. `storage put FILE` stores a file with
//! replicas on the storage market and prints its deal id; `storage get DEAL --out FILE`
//! retrieves it, checking every chunk; `storage status DEAL` shows the deal. `compute submit
//! JOB.wasm --input FILE` runs a job on the compute market and prints its id; `compute result
//! JOB --out FILE` waits for its end and writes its checked output; `compute dispute JOB`
//! contests agreeing results; `compute status JOB` shows the job.

use clap::{Parser, Subcommand};
use qoin_market_agents::cli::{run_main, Common};
use qoin_market_agents::client::{self, PutTerms};
use qoin_market_agents::compute_client::{self, SubmitTerms};
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
    /// The compute market.
    #[command(subcommand)]
    Compute(Compute),
}

#[derive(Subcommand, Debug)]
enum Compute {
    /// Run MODULE (a WASI preview-1 program) on --input with replicas; prints the job id.
    Submit {
        module: PathBuf,
        #[command(flatten)]
        terms: SubmitTerms,
    },
    /// Wait for a job's end and write its output (checked against the chain) to --out.
    Result {
        job: u64,
        #[arg(long)]
        out: PathBuf,
        /// Fail at once if the job is not over, instead of waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// Contest a job's agreeing results (the mediator's fee is the deposit).
    Dispute { job: u64 },
    /// A job as the chain has it (JSON).
    Status { job: u64 },
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
        Command::Compute(Compute::Submit { module, terms }) => {
            let wallet = Wallet::open(&cli.common.key)?;
            let job = compute_client::submit(&node, &wallet, &module, &terms).await?;
            println!("{job}");
        }
        Command::Compute(Compute::Result { job, out, no_wait }) => {
            let me = reader(&cli.common.key)?;
            let ended = compute_client::result(&node, me, job, &out, !no_wait).await?;
            eprintln!(
                "job {job}: {} ({}); {} bytes written to {}; {} shor refunded",
                ended.result.status,
                if ended.agreed { "replicas agreed" } else { "mediated" },
                ended.result.stdout.len(),
                out.display(),
                ended.refunded
            );
            if ended.result.status != qoin_markets::job::Status::Exited(0) {
                anyhow::bail!("job {job} did not succeed: it {}", ended.result.status);
            }
        }
        Command::Compute(Compute::Dispute { job }) => {
            let wallet = Wallet::open(&cli.common.key)?;
            compute_client::dispute(&node, &wallet, job).await?;
        }
        Command::Compute(Compute::Status { job }) => {
            let me = reader(&cli.common.key)?;
            println!("{}", serde_json::to_string_pretty(&compute_client::status(&node, me, job).await?)?);
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
