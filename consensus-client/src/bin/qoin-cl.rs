//! `qoin-cl`: Qoin's consensus client.

use clap::Parser as _;

fn main() {
    let cli = qoin_consensus::cli::Cli::parse();
    if let Err(e) = qoin_tracing::init("qoin-cl", &cli.log) {
        eprintln!("qoin-cl: {e}");
        std::process::exit(2);
    }
    if let Err(e) = qoin_consensus::cli::main_with(&cli) {
        tracing::error!(target: qoin_tracing::targets::NODE, "{e:#}");
        std::process::exit(1);
    }
}
