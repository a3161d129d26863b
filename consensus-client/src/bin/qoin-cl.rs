//! `qoin-cl`: Qoin's consensus client.

use clap::Parser as _;

fn main() {
    if let Err(e) = qoin_consensus::cli::main_with(&qoin_consensus::cli::Cli::parse()) {
        qoin_consensus::node::log(&format!("error: {e:#}"));
        std::process::exit(1);
    }
}
