//! What both programs take and do at start: the node, the key, the logs; sizes with units.

use crate::wallet::KeyArgs;
use qoin_tracing::LogArgs;
use std::future::Future;

/// The options every market program takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// The node's JSON-RPC (http:// or ws://; the WebSocket on the same port is used).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// The key.
    #[command(flatten)]
    pub key: KeyArgs,
    /// The logs.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Sets up `program`'s logs, runs `body`, and exits with status 1 and the error if it fails
/// (2 if the logs cannot be set up).
pub async fn run_main(program: &'static str, log: &LogArgs, body: impl Future<Output = anyhow::Result<()>>) {
    if let Err(e) = qoin_tracing::init(program, log) {
        eprintln!("{program}: {e}");
        std::process::exit(2);
    }
    if let Err(e) = body.await {
        eprintln!("{program}: {e:#}");
        std::process::exit(1);
    }
}

/// A size in bytes, with an optional KiB/MiB/GiB/TiB (or KB/MB/GB/TB) suffix.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: expected a number of bytes, e.g. 10GiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => return Err(format!("{s:?}: unknown unit {other:?} (KiB, MiB, GiB, TiB, KB, MB, GB, TB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_with_units_and_refuse_nonsense() {
        assert_eq!(super::parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(super::parse_size("1000"), Ok(1000));
        assert_eq!(super::parse_size("2 MB"), Ok(2_000_000));
        assert!(super::parse_size("ten").is_err());
        assert!(super::parse_size("1XB").is_err());
        assert!(super::parse_size("99999999999TiB").is_err());
    }
}
