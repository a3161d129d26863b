//! # qoin-tracing
//!
//! Owns how Qoin's programs (`qoin-el`, `qoin-cl`, `qoin-testnet`) write their logs, on top of
//! `tracing` and `tracing-subscriber`:
//!
//! - **targets**: every event names its component as its target ([`targets`]), so
//!   `--log miner=debug,engine=warn` (or `RUST_LOG`, in the same `EnvFilter` syntax) picks
//!   what to see;
//! - **text** (the default): one readable line per event on standard error,
//!   `HH:MM:SS.mmm program LEVEL target: message fields`, UTC;
//! - **JSON** (`--log.format json`): one JSON object per line for log shippers, with an
//!   RFC 3339 timestamp, level, target, message and fields.
//!
//! The filter is `--log` if given, else `RUST_LOG`, else `info`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::io::IsTerminal as _;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

/// The components events are filed under: the `target:` of every event Qoin writes.
pub mod targets {
    /// The engine API: calls, payloads, forkchoice, invalid blocks.
    pub const ENGINE: &str = "engine";
    /// Block production: the proof-of-work miner, or the execution client's local producer.
    pub const MINER: &str = "miner";
    /// Blocks added to the chain, reorgs.
    pub const CHAIN: &str = "chain";
    /// Account-state sampling of the execution client.
    pub const SAMPLING: &str = "sampling";
    /// The transaction pool.
    pub const TXPOOL: &str = "txpool";
    /// Peers, gossip and the sync protocol.
    pub const NETWORK: &str = "network";
    /// Catching up with the network.
    pub const SYNC: &str = "sync";
    /// The JSON-RPC server.
    pub const RPC: &str = "rpc";
    /// The databases.
    pub const STORE: &str = "store";
    /// Prometheus metrics.
    pub const METRICS: &str = "metrics";
    /// Start, stop and configuration of a program.
    pub const NODE: &str = "node";
    /// `qoin-testnet`'s orchestration of other programs.
    pub const TESTNET: &str = "testnet";
    /// The market programs: orders, deals, proofs, transfers.
    pub const MARKET: &str = "market";
}

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The logging options every Qoin program takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// What to log, in `RUST_LOG` syntax: `info`, `miner=debug,engine=warn`, … (default:
    /// `RUST_LOG`, else `info`).
    #[arg(long = "log", global = true, value_name = "FILTER")]
    pub filter: Option<String>,
    /// Log line format.
    #[arg(long = "log.format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
}

/// Why logging could not be set up.
#[derive(Debug)]
pub struct LogSetupError(String);

impl std::fmt::Display for LogSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LogSetupError {}

/// The time of day (UTC, milliseconds) and the program's name, in front of each text line:
/// two programs writing to one terminal (as `qoin-testnet dev` runs them) stay apart.
struct Clock {
    program: &'static str,
}

impl FormatTime for Clock {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let s = now.as_secs() % 86_400;
        write!(
            w,
            "{:02}:{:02}:{:02}.{:03} {}",
            s / 3600,
            (s / 60) % 60,
            s % 60,
            now.subsec_millis(),
            self.program
        )
    }
}

/// The filter `args` asks for (see the crate documentation for the order of precedence).
pub fn filter(args: &LogArgs) -> Result<EnvFilter, LogSetupError> {
    let directives = match &args.filter {
        Some(f) => f.clone(),
        None => std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| "info".to_owned()),
    };
    EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| LogSetupError(format!("bad log filter {directives:?}: {e}")))
}

/// Installs the global subscriber for `program`. Call once, first thing in `main`.
pub fn init(program: &'static str, args: &LogArgs) -> Result<(), LogSetupError> {
    let filter = filter(args)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match args.format {
        LogFormat::Text => builder.with_timer(Clock { program }).with_target(true).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    installed.map_err(|e| LogSetupError(format!("cannot install the logger: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_and_bad_filters_are_errors() {
        let args = LogArgs { filter: Some("miner=debug,engine=warn".into()), format: LogFormat::Text };
        let f = filter(&args).unwrap().to_string();
        assert!(f.contains("miner=debug") && f.contains("engine=warn"), "{f}");
        let bad = LogArgs { filter: Some("miner=loud".into()), format: LogFormat::Text };
        assert!(filter(&bad).unwrap_err().to_string().contains("bad log filter"));
    }
}
