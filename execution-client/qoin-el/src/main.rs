//! # qoin-el
//!
//! The execution client's program: `qoin-el node` (the chain, the pool, JSON-RPC and the
//! engine API, with optional local block production) and `qoin-el account` (the validator's
//! keystore accounts: `new`, `import`, `list`, `show`). Its parts live in the crates beside
//! it: `qoin-trie`, `qoin-el-storage`, `qoin-evm`, `qoin-el-chain`, `qoin-txpool`,
//! `qoin-el-node`, `qoin-rpc` and `qoin-el-engine`.

mod account;
mod cli;

/// mimalloc instead of the system allocator: JSON-RPC's many short-lived allocations from
/// several threads spent ~15% of a loaded node's CPU in glibc's malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use account::PasswordSource;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use qoin_crypto::keystore::{KdfParams, Keystore};
use std::path::PathBuf;

/// Qoin execution client.
#[derive(Parser, Debug)]
#[command(name = "qoin-el", version, about)]
struct Cli {
    /// Data directory.
    #[arg(long, global = true, env = "QOIN_EL_DATADIR", default_value_os_t = default_datadir())]
    datadir: PathBuf,
    /// Keystore folder (default: <datadir>/keystore).
    #[arg(long, global = true)]
    keystore: Option<PathBuf>,
    /// Logging.
    #[command(flatten)]
    log: qoin_tracing::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Manage keystore accounts (dual Falcon-512 + ML-DSA-44 keys).
    #[command(subcommand)]
    Account(AccountCmd),
    /// Run the node: state, transaction pool and the JSON-RPC server.
    Node(Box<cli::NodeArgs>),
}

#[derive(clap::Args, Debug)]
struct PasswordArgs {
    /// Read the password from the first line of this file instead of prompting.
    #[arg(long)]
    password_file: Option<PathBuf>,
}

impl PasswordArgs {
    fn source(&self) -> PasswordSource {
        self.password_file.clone().map_or(PasswordSource::Prompt, PasswordSource::File)
    }
}

#[derive(Subcommand, Debug)]
enum AccountCmd {
    /// Create a new account with fresh random keys.
    New {
        #[command(flatten)]
        password: PasswordArgs,
        /// Cheap key derivation, for throw-away development keys only.
        #[arg(long)]
        light_kdf: bool,
    },
    /// Import an account from a file holding its 32-byte master seed (hex).
    Import {
        /// The seed file.
        seed_file: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
        /// Cheap key derivation, for throw-away development keys only.
        #[arg(long)]
        light_kdf: bool,
    },
    /// List the accounts in the keystore.
    List,
    /// Show an account; with --unlock, also check the password and print the public keys.
    Show {
        /// The account's address.
        address: alloy_primitives::Address,
        /// Decrypt the key (asks for the password) and print the public keys.
        #[arg(long)]
        unlock: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

fn default_datadir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".qoin").join("el")
}

fn kdf(light: bool) -> KdfParams {
    if light {
        KdfParams::LIGHT
    } else {
        KdfParams::STANDARD
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = qoin_tracing::init("qoin-el", &cli.log) {
        eprintln!("qoin-el: {e}");
        std::process::exit(2);
    }
    if let Err(e) = run(cli) {
        tracing::error!(target: qoin_tracing::targets::NODE, "{e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let ks = Keystore::new(cli.keystore.clone().unwrap_or_else(|| cli.datadir.join("keystore")));
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Account(AccountCmd::New { password, light_kdf }) => {
            let pw = password.source().read(true)?;
            let address = account::new_account(&ks, &pw, kdf(light_kdf))?;
            println!("New account: {address:#x}");
            println!("Keystore:    {}", ks.path_of(&address).display());
            println!("Keep the keystore file and its password: both are needed to use the account.");
        }
        Command::Account(AccountCmd::Import { seed_file, password, light_kdf }) => {
            let pw = password.source().read(true)?;
            let address = account::import_account(&ks, &seed_file, &pw, kdf(light_kdf))?;
            println!("Imported account: {address:#x}");
        }
        Command::Account(AccountCmd::List) => {
            if account::list(&ks, &mut out)? == 0 {
                eprintln!("No accounts in {}; create one with `qoin-el account new`.", ks.dir().display());
            }
        }
        Command::Node(args) => cli::run_node(&cli.datadir, &ks, &args)?,
        Command::Account(AccountCmd::Show { address, unlock, password }) => {
            let pw = if unlock { Some(password.source().read(false)?) } else { None };
            account::show(&ks, &address, pw.as_deref(), &mut out)
                .with_context(|| format!("cannot show account {address:#x}"))?;
        }
    }
    Ok(())
}
