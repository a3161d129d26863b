//! The storage market end to end with real processes: a dev node mining every 250 ms, three
//! `qoin-provider storage` daemons and the `qoin-market` client. A 10 MiB file is stored
//! with 2 replicas and read back byte for byte; one provider is killed and restarted at once
//! (it resumes from its data directory and keeps proving); the other is killed for good: its
//! proofs are missed, its replica fails, the third provider takes the slot, repairs it from
//! the surviving replica and proves it, and the file is still read back byte for byte.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process, killed on drop, its standard error kept in a file.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }
}

fn bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_qoin-market")).with_file_name(name)
}

/// `qoin-el`, built beside this crate's binaries if it is not there yet.
fn qoin_el() -> PathBuf {
    let path = bin("qoin-el");
    if !path.exists() {
        let release = path.parent().and_then(Path::file_name).is_some_and(|d| d == "release");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", "qoin-el"]);
        if release {
            build.arg("--release");
        }
        assert!(build.status().unwrap().success(), "building qoin-el");
    }
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(program: &Path, args: &[String], log: PathBuf) -> Proc {
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(program).args(args).stdout(Stdio::null()).stderr(file).spawn().unwrap();
    Proc { child, log }
}

/// A dev node mining a block every 250 ms; its JSON-RPC address.
fn start_node(dir: &Path) -> (Proc, SocketAddr) {
    let log = dir.join("qoin-el.log");
    let mut child = Command::new(qoin_el())
        .arg("--datadir")
        .arg(dir.join("el"))
        .args(["node", "--dev", "--mine", "250", "--http.port", "0", "--authrpc.port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let copy = log.clone();
    std::thread::spawn(move || {
        let mut out = std::fs::File::create(copy).unwrap();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            use std::io::Write as _;
            let _ = writeln!(out, "{line}");
            if !sent {
                if let Some(a) = line.split("JSON-RPC listening on http://").nth(1) {
                    let _ = tx.send(a.trim().parse::<SocketAddr>().unwrap());
                    sent = true;
                }
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("qoin-el did not start its JSON-RPC server");
    (Proc { child, log }, addr)
}

struct Provider {
    proc: Proc,
    account: u32,
    args: Vec<String>,
}

fn start_provider(dir: &Path, rpc: &str, account: u32) -> Provider {
    let port = free_port();
    let args: Vec<String> = [
        "--rpc",
        rpc,
        "--dev-account",
        &account.to_string(),
        "storage",
        "--datadir",
        dir.join(format!("provider{account}")).to_str().unwrap(),
        "--capacity",
        "64MiB",
        "--price",
        "1",
        "--collateral-per-byte",
        "3",
        "--http",
        &format!("127.0.0.1:{port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proc = spawn(&bin("qoin-provider"), &args, dir.join(format!("provider{account}.log")));
    Provider { proc, account, args }
}

fn market(rpc: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("qoin-market"))
        .args(["--rpc", rpc, "--dev-account", "0"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status(rpc: &str, deal: u64) -> Value {
    let (ok, out, err) = market(rpc, &["storage", "status", &deal.to_string()]);
    assert!(ok, "status: {err}");
    serde_json::from_str(&out).unwrap()
}

fn dev_address(i: u32) -> String {
    qoin_market_agents::wallet::Wallet::dev(i).unwrap().address().to_string().to_lowercase()
}

/// Waits until `cond` holds of the deal's status; panics with the logs after `secs`.
fn wait_for(
    rpc: &str,
    deal: u64,
    secs: u64,
    what: &str,
    logs: &[&Proc],
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status(rpc, deal);
        if cond(&s) {
            return s;
        }
        if Instant::now() > deadline {
            let tails: Vec<String> =
                logs.iter().map(|p| format!("--- {}\n{}", p.log.display(), p.tail())).collect();
            panic!("{what}: not within {secs} s; status {s:#}\n{}", tails.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_file_is_stored_read_back_and_repaired_after_a_provider_dies() {
    let dir = tempfile::tempdir().unwrap();
    let (node, addr) = start_node(dir.path());
    let rpc = format!("http://{addr}");
    let mut providers: Vec<Provider> = (1..=3).map(|i| start_provider(dir.path(), &rpc, i)).collect();

    // 10 MiB of pseudo-random bytes.
    let file = dir.path().join("file.bin");
    let data: Vec<u8> = (0..10u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let (ok, out, err) = market(
        &rpc,
        &[
            "storage",
            "put",
            file.to_str().unwrap(),
            "--replicas",
            "2",
            "--period",
            "24",
            "--duration",
            "14",
            "--max-price",
            "2",
            "--expiry",
            "200",
        ],
    );
    let logs: Vec<&Proc> = std::iter::once(&node).chain(providers.iter().map(|p| &p.proc)).collect();
    assert!(ok, "put: {err}\n{}", logs.iter().map(|p| p.tail()).collect::<Vec<_>>().join("\n"));
    let deal: u64 = out.trim().parse().unwrap();

    // Both replicas prove.
    let s = wait_for(&rpc, deal, 60, "both replicas proving", &logs, |s| {
        s["slots"].as_array().unwrap().iter().all(|slot| slot["proven"].as_u64().unwrap_or(0) >= 1)
    });
    let holders: Vec<String> = s["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["provider"].as_str().unwrap().to_lowercase())
        .collect();
    let index_of = |addr: &str| providers.iter().position(|p| dev_address(p.account) == addr).unwrap();
    let (first, second) = (index_of(&holders[0]), index_of(&holders[1]));
    let spare = (0..3).find(|i| *i != first && *i != second).unwrap();

    // Read back byte for byte.
    let back = dir.path().join("back.bin");
    let (ok, _, err) = market(&rpc, &["storage", "get", &deal.to_string(), "--out", back.to_str().unwrap()]);
    assert!(ok, "get: {err}");
    assert!(std::fs::read(&back).unwrap() == data, "the file read back differs");

    // Slot 0's provider is killed and restarted at once: it resumes and keeps proving.
    let proven_before = s["slots"][0]["proven"].as_u64().unwrap();
    providers[first].proc.kill();
    let restarted = spawn(&bin("qoin-provider"), &providers[first].args, dir.path().join("restarted.log"));
    providers[first].proc = restarted;

    // Slot 1's provider is killed for good: three missed periods fail its replica, the spare
    // provider takes the slot and repairs it from slot 0's replica, and proves it.
    providers[second].proc.kill();
    let spare_address = dev_address(providers[spare].account);
    let logs: Vec<&Proc> = std::iter::once(&node).chain(providers.iter().map(|p| &p.proc)).collect();
    let s = wait_for(&rpc, deal, 150, "the spare provider proving the failed slot", &logs, |s| {
        s["slots"][1]["provider"].as_str().map(str::to_lowercase) == Some(spare_address.clone())
            && s["slots"][1]["proven"].as_u64().unwrap_or(0) >= 1
    });
    assert!(
        s["slots"][0]["proven"].as_u64().unwrap() > proven_before,
        "the restarted provider kept proving: {s:#}"
    );
    assert_eq!(s["slots"][0]["misses"].as_u64(), Some(0), "and missed nothing: {s:#}");

    // Still retrievable, from the replicas that hold it now.
    std::fs::remove_file(&back).unwrap();
    let (ok, _, err) = market(&rpc, &["storage", "get", &deal.to_string(), "--out", back.to_str().unwrap()]);
    assert!(ok, "get after the repair: {err}");
    assert!(std::fs::read(&back).unwrap() == data, "the file read back after the repair differs");
    eprintln!("the spare provider:\n{}", providers[spare].proc.tail());
    eprintln!("the restarted provider:\n{}", providers[first].proc.tail());
}
