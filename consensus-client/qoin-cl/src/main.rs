//! # qoin-cl
//!
//! The consensus client's program: parses the command line and runs the node
//! (`qoin-cl-node`) until Ctrl-C or SIGTERM. Its parts live in the crates beside it:
//! `qoin-consensus` (the rules), `qoin-cl-store`, `qoin-cl-sampling` and `qoin-cl-node`.

mod cli;

use clap::Parser as _;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(e) = qoin_tracing::init("qoin-cl", &cli.log) {
        eprintln!("qoin-cl: {e}");
        std::process::exit(2);
    }
    if let Err(e) = cli::main_with(&cli) {
        tracing::error!(target: qoin_tracing::targets::NODE, "{e:#}");
        std::process::exit(1);
    }
}
