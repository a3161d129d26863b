//! The markets end to end with real processes on one devnet: a dev node mining every 250 ms,
//! three storage providers, three compute providers and a mediator (`qoin-provider`), and
//! two clients (`qoin-market`), the storage and compute halves running at once.
//!
//! Storage: three storage providers. A 10 MiB file is stored with 2 replicas and read back
//! byte for byte; one provider is killed and restarted at once (it resumes from its data
//! directory and keeps proving); the other is killed for good: its proofs are missed, its
//! replica fails, the third provider takes the slot, repairs it from the surviving replica and
//! proves it, and the file is still read back byte for byte.
//!
//! Compute: three compute providers (one of them lying) and a mediator. A job run by two
//! honest replicas agrees and both are paid; a job run by an honest replica and the liar
//! goes to the mediator, the liar is slashed, and the client gets the right output.
//!
//! Then every party's balance is reconciled to the shor against the contracts' rules, and
//! each market's balance against what it owes.

use alloy_primitives::{Address, Bytes, Log, B256, U256};
use alloy_sol_types::SolCall;
use qoin_market_agents::node::{decode_events, Node};
use qoin_markets::storage::StorageMarket as M;
use qoin_primitives::system::{COMPUTE_MARKET, STORAGE_MARKET};
use serde_json::{json, Value};
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
        tail_of(&self.log)
    }
}

/// The last lines of a log file.
fn tail_of(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
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
    start_daemon(
        dir,
        rpc,
        account,
        &["storage", "--capacity", "64MiB", "--price", "1", "--collateral-per-byte", "3"],
    )
}

/// `qoin-provider` as dev account `account`, running `role` (its subcommand and options),
/// with a data directory and an HTTP port of its own.
fn start_daemon(dir: &Path, rpc: &str, account: u32, role: &[&str]) -> Provider {
    let port = free_port();
    let mut args: Vec<String> =
        ["--rpc", rpc, "--dev-account", &account.to_string()].iter().map(|s| s.to_string()).collect();
    args.extend(role.iter().map(|s| s.to_string()));
    args.extend([
        "--datadir".to_string(),
        dir.join(format!("{}{account}", role[0])).to_str().unwrap().to_string(),
        "--http".to_string(),
        format!("127.0.0.1:{port}"),
    ]);
    let proc = spawn(&bin("qoin-provider"), &args, dir.join(format!("{}{account}.log", role[0])));
    Provider { proc, account, args }
}

fn market(rpc: &str, args: &[&str]) -> (bool, String, String) {
    market_as(rpc, 0, args)
}

/// `qoin-market` as dev account `account`.
fn market_as(rpc: &str, account: u32, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("qoin-market"))
        .args(["--rpc", rpc, "--dev-account", &account.to_string()])
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
    dev(i).to_string().to_lowercase()
}

fn dev(i: u32) -> Address {
    qoin_market_agents::wallet::Wallet::dev(i).unwrap().address()
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

/// What the storage half leaves for the books: the deal, its coded size, and its providers
/// (still running).
struct StorageRun {
    deal: u64,
    size: u128,
    _providers: Vec<Provider>,
}

/// The storage half: three storage providers (dev accounts 1-3) and a client (dev account 0).
fn store_and_repair(dir: &Path, rpc: &str, node: &Proc) -> StorageRun {
    let rpc = rpc.to_string();
    let mut providers: Vec<Provider> = (1..=3).map(|i| start_provider(dir, &rpc, i)).collect();

    // 10 MiB of pseudo-random bytes.
    let file = dir.join("file.bin");
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
    let logs: Vec<&Proc> = std::iter::once(node).chain(providers.iter().map(|p| &p.proc)).collect();
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
    let back = dir.join("back.bin");
    let (ok, _, err) = market(&rpc, &["storage", "get", &deal.to_string(), "--out", back.to_str().unwrap()]);
    assert!(ok, "get: {err}");
    assert!(std::fs::read(&back).unwrap() == data, "the file read back differs");

    // Slot 0's provider is killed and restarted at once: it resumes and keeps proving.
    let proven_before = s["slots"][0]["proven"].as_u64().unwrap();
    providers[first].proc.kill();
    let restarted = spawn(&bin("qoin-provider"), &providers[first].args, dir.join("restarted.log"));
    providers[first].proc = restarted;

    // Slot 1's provider is killed for good: three missed periods fail its replica, the spare
    // provider takes the slot and repairs it from slot 0's replica, and proves it.
    providers[second].proc.kill();
    let spare_address = dev_address(providers[spare].account);
    let logs: Vec<&Proc> = std::iter::once(node).chain(providers.iter().map(|p| &p.proc)).collect();
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

    let size = u128::from(s["bytes"].as_u64().unwrap());
    StorageRun { deal, size, _providers: providers }
}

/// A job: reads its input (up to 32 KiB) and writes it reversed.
const REVERSE: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start") (local $n i32) (local $got i32) (local $i i32)
    (block $done (loop $more
      (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $n)))
      (i32.store (i32.const 4) (i32.sub (i32.const 32768) (local.get $n)))
      (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $got (i32.load (i32.const 8)))
      (br_if $done (i32.eqz (local.get $got)))
      (local.set $n (i32.add (local.get $n) (local.get $got)))
      (br $more)))
    (block $end (loop $rev
      (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store8 (i32.add (i32.const 65536) (local.get $i))
        (i32.load8_u (i32.add (i32.const 1024)
          (i32.sub (i32.sub (local.get $n) (i32.const 1)) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rev)))
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Waits until `path`'s text contains `what`; panics with its tail after `secs`.
fn wait_log(proc: &Proc, what: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !std::fs::read_to_string(&proc.log).unwrap_or_default().contains(what) {
        assert!(
            Instant::now() < deadline,
            "{what:?} not in {} within {secs} s:\n{}",
            proc.log.display(),
            proc.tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn quantity(v: &Value) -> u128 {
    u128::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// A node for the test's own reads, on a runtime of its own.
struct Reader {
    rt: tokio::runtime::Runtime,
    node: Node,
}

impl Reader {
    fn new(rpc: &str) -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let node = rt.block_on(Node::connect(rpc)).unwrap();
        Reader { rt, node }
    }

    fn raw(&self, method: &str, params: Vec<Value>) -> Value {
        self.rt.block_on(self.node.raw(method, params)).unwrap()
    }

    fn head(&self) -> u64 {
        self.rt.block_on(self.node.block_number()).unwrap()
    }

    fn balance_at(&self, who: Address, n: u64) -> u128 {
        quantity(&self.raw("eth_getBalance", vec![json!(who), json!(format!("{n:#x}"))]))
    }

    /// `call` on `to` as of block `n`.
    fn call_at<C: SolCall>(&self, to: Address, call: &C, n: u64) -> C::Return {
        let input = Bytes::from(call.abi_encode());
        let out: Bytes = serde_json::from_value(
            self.raw("eth_call", vec![json!({"to": to, "input": input}), json!(format!("{n:#x}"))]),
        )
        .unwrap();
        C::abi_decode_returns(&out).unwrap()
    }

    fn logs(&self, contract: Address, from: u64, to: u64) -> Vec<Log> {
        self.rt.block_on(self.node.logs(contract, from, to)).unwrap()
    }
}

/// What the parties spent and were paid between two blocks.
struct Books {
    /// Fees each party paid.
    fees: Vec<u128>,
    /// Value each party sent.
    sent: Vec<u128>,
    /// The logs of each party's transactions.
    logs: Vec<Vec<Log>>,
    /// What the markets paid each party: what it gained, plus what it spent.
    paid: Vec<i128>,
}

impl Books {
    /// The books of `parties` over blocks `from + 1..=to`, from every transaction in them.
    fn read(r: &Reader, parties: &[Address], from: u64, to: u64) -> Books {
        let n = parties.len();
        let mut books = Books { fees: vec![0; n], sent: vec![0; n], logs: vec![vec![]; n], paid: vec![] };
        for b in from + 1..=to {
            let block = r.raw("eth_getBlockByNumber", vec![json!(format!("{b:#x}")), json!(true)]);
            for tx in block["transactions"].as_array().unwrap() {
                let sender: Address = tx["from"].as_str().unwrap().parse().unwrap();
                let Some(i) = parties.iter().position(|p| *p == sender) else { continue };
                let receipt = r.raw("eth_getTransactionReceipt", vec![tx["hash"].clone()]);
                books.fees[i] += quantity(&receipt["gasUsed"]) * quantity(&receipt["effectiveGasPrice"]);
                books.sent[i] += quantity(&tx["value"]);
                let hash: B256 = serde_json::from_value(tx["hash"].clone()).unwrap();
                if let Some(receipt) = r.rt.block_on(r.node.receipt(hash)).unwrap() {
                    books.logs[i].extend(receipt.logs);
                }
            }
        }
        books.paid = (0..n)
            .map(|i| {
                let gained = r.balance_at(parties[i], to) as i128 - r.balance_at(parties[i], from) as i128;
                gained + books.fees[i] as i128 + books.sent[i] as i128
            })
            .collect();
        books
    }
}

/// A compute provider's collateral per job, and the mediator's fee.
const COLLATERAL: u128 = 1_000_000;
const FEE: u128 = 1_000;
/// The compute client's dev account (the storage client is account 0; one account each,
/// since the two halves run at once).
const COMPUTE_CLIENT: u32 = 8;

/// What the compute half leaves for the books: the fuel of the job, and its daemons.
struct ComputeRun {
    fuel: u128,
    _daemons: Vec<Provider>,
}

/// The compute half: honest providers 4 and 5 (prices 1 and 2), provider 6 that lies and
/// takes only small jobs, mediator 7, and a client (dev account 8).
fn run_jobs(dir: &Path, rpc: &str, node_proc: &Proc) -> ComputeRun {
    let rpc = rpc.to_string();
    let provider = |account: u32, price: &str, max_fuel: &str, extra: &[&str]| {
        let mut role = vec![
            "compute",
            "--price",
            price,
            "--max-fuel",
            max_fuel,
            "--collateral-per-job",
            "1000000",
            "--jobs",
            "2",
        ];
        role.extend_from_slice(extra);
        start_daemon(dir, &rpc, account, &role)
    };
    let mut honest = provider(4, "1", "10000000", &[]);
    let dear = provider(5, "2", "10000000", &[]);
    let liar = provider(6, "1", "1500000", &["--fault", "wrong-output"]);
    let mediator = start_daemon(dir, &rpc, 7, &["mediator", "--fee", &FEE.to_string()]);
    for p in [&honest, &dear, &liar] {
        wait_log(&p.proc, "ask posted", 60);
    }
    wait_log(&mediator.proc, "endpoint published", 60);
    let restarted_log = dir.join("compute4-restarted.log");
    let logs: Vec<PathBuf> = [node_proc, &honest.proc, &dear.proc, &liar.proc, &mediator.proc]
        .iter()
        .map(|p| p.log.clone())
        .chain([restarted_log.clone()])
        .collect();
    let tails =
        || logs.iter().map(|l| format!("--- {}\n{}", l.display(), tail_of(l))).collect::<Vec<_>>().join("\n");

    let wasm = dir.join("reverse.wasm");
    let module = wat::parse_str(REVERSE).unwrap();
    std::fs::write(&wasm, &module).unwrap();
    let input: Vec<u8> = (0..3_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let input_file = dir.join("input.bin");
    std::fs::write(&input_file, &input).unwrap();
    let reversed: Vec<u8> = input.iter().rev().copied().collect();
    let run = qoin_markets::job::Runner::new().run(
        &module,
        &input,
        &qoin_markets::job::Limits::job(1_000_000, 16 << 20),
    );
    assert_eq!(run.stdout, reversed, "the job reverses its input: {}", run.detail);
    let fuel = u128::from(run.fuel);

    let submit = |fuel_limit: &str, max_price: &str| {
        let (ok, out, err) = market_as(
            &rpc,
            COMPUTE_CLIENT,
            &[
                "compute",
                "submit",
                wasm.to_str().unwrap(),
                "--input",
                input_file.to_str().unwrap(),
                "--replicas",
                "2",
                "--fuel",
                fuel_limit,
                "--max-price",
                max_price,
                "--phase",
                "12",
            ],
        );
        assert!(ok, "submit: {err}\n{}", tails());
        out.trim().parse::<u64>().unwrap()
    };
    let result = |job: u64| {
        let out = dir.join(format!("out{job}.bin"));
        let (ok, _, err) = market_as(
            &rpc,
            COMPUTE_CLIENT,
            &["compute", "result", &job.to_string(), "--out", out.to_str().unwrap()],
        );
        assert!(ok, "result of job {job}: {err}\n{}", tails());
        (std::fs::read(out).unwrap(), err)
    };

    // Too much fuel for the liar: the two honest providers run it, agree, and are paid. One
    // of them is SIGKILLed once it has run the job and restarted: it resumes from its data
    // directory (commits or reveals what it saved) and is paid all the same.
    let agreed = submit("2000000", "2");
    wait_log(&honest.proc, &format!("ran job={agreed}"), 30);
    honest.proc.kill();
    honest.proc = spawn(&bin("qoin-provider"), &honest.args, restarted_log);
    let (out, said) = result(agreed);
    assert_eq!(out, reversed, "job {agreed}'s output");
    assert!(said.contains("replicas agreed"), "{said}");

    // At most price 1: the honest provider and the liar. They disagree, the mediator re-runs
    // the job, the liar loses its collateral, and the client gets the honest output.
    let mediated = submit("1000000", "1");
    let (out, said) = result(mediated);
    assert_eq!(out, reversed, "job {mediated}'s output");
    assert!(said.contains("mediated"), "{said}");

    ComputeRun { fuel, _daemons: vec![honest, dear, liar, mediator] }
}

#[test]
fn a_devnet_stores_a_file_runs_jobs_and_every_balance_reconciles() {
    let dir = tempfile::tempdir().unwrap();
    let (node, addr) = start_node(dir.path());
    let rpc = format!("http://{addr}");
    let r = Reader::new(&rpc);
    let start = r.head();
    // One devnet, both markets at once: 3 storage providers, 3 compute providers (one lying)
    // and a mediator, a storage client and a compute client.
    let (storage, compute) = std::thread::scope(|scope| {
        let storage = scope.spawn(|| store_and_repair(dir.path(), &rpc, &node));
        let compute = scope.spawn(|| run_jobs(dir.path(), &rpc, &node));
        (storage.join(), compute.join())
    });
    let storage = storage.unwrap_or_else(|e| std::panic::resume_unwind(e));
    let compute = compute.unwrap_or_else(|e| std::panic::resume_unwind(e));

    // Every balance to the shor: what the markets paid each party is what it gained plus what
    // it spent on fees and sent as value (read from the chain's own blocks), and that is what
    // the contracts' rules say it is owed.
    let end = r.head();
    let parties: Vec<Address> = (0..=COMPUTE_CLIENT).map(dev).collect();
    let books = Books::read(&r, &parties, start, end);
    let (deal, size) = (storage.deal, storage.size);

    // Storage. The providers (1-3) were paid for each period they proved (the Proven events
    // of their own transactions); the client (0) got back what its maximum price held above
    // the providers' prices when the deal started, each missed period's price, and the whole
    // collateral of the replica that failed (its penalties and the rest). The market holds
    // exactly the asks' free collateral, the deal's escrow and its slots' collateral.
    let (replicas, periods, max_price, price, collateral_per_byte) = (2u128, 14u128, 2u128, 1u128, 3u128);
    let events = r.logs(STORAGE_MARKET, start + 1, end);
    let missed = decode_events::<M::Missed>(&events, STORAGE_MARKET);
    let failed =
        decode_events::<M::SlotReopened>(&events, STORAGE_MARKET).iter().filter(|e| e.failed).count();
    assert_eq!(failed, 1, "one replica failed");
    assert!(missed.iter().all(|m| m.slot == U256::from(1)), "only the dead replica missed: {missed:?}");
    let client = replicas * size * (max_price - price) * periods
        + missed.len() as u128 * size * price
        + size * collateral_per_byte;
    assert_eq!(
        books.paid[0],
        client as i128,
        "the storage client's payouts ({} missed periods)",
        missed.len()
    );
    for i in 1..=3 {
        let proofs = decode_events::<M::Proven>(&books.logs[i], STORAGE_MARKET);
        assert!(proofs.iter().all(|p| p.paid == U256::from(size * price)), "each proof pays its period");
        assert_eq!(books.paid[i], (proofs.len() as u128 * size * price) as i128, "provider {i}'s payouts");
        assert!(!proofs.is_empty(), "provider {i} proved");
    }
    let asks = r.call_at(STORAGE_MARKET, &M::askCountCall {}, end).to::<u64>();
    let free: u128 = (1..=asks)
        .map(|a| r.call_at(STORAGE_MARKET, &M::asksCall(U256::from(a)), end).collateral.to::<u128>())
        .sum();
    let id = U256::from(deal);
    let escrow = r.call_at(STORAGE_MARKET, &M::bidsCall(id), end).escrow.to::<u128>();
    let locked: u128 = (0..2u64)
        .map(|i| {
            r.call_at(STORAGE_MARKET, &M::slotsCall { _0: id, _1: U256::from(i) }, end)
                .collateral
                .to::<u128>()
        })
        .sum();
    let owed: u128 =
        parties.iter().map(|p| r.call_at(STORAGE_MARKET, &M::owedCall(*p), end).to::<u128>()).sum();
    let storage_held = r.balance_at(STORAGE_MARKET, end);
    assert_eq!(storage_held, free + escrow + locked + owed, "the storage market holds what it owes");

    // Compute. The client (8): both escrows back but for the work (3 × fuel for the first
    // job at prices 1 and 2, fuel for the second at price 1), and half the liar's collateral;
    // the honest provider (4) fuel for each job, the dearer one (5) 2 × fuel for the first,
    // the liar (6) nothing, the mediator (7) the other half. The market holds the asks'
    // collateral that is left: 2 jobs' worth each, less the liar's lost one.
    let fuel = compute.fuel;
    let escrows = 2 * 2_000_000 * 2 + 2 * 1_000_000;
    let expected: [i128; 5] = [
        (fuel * 2) as i128,
        (fuel * 2) as i128,
        0,
        (COLLATERAL / 2) as i128,
        (escrows - 3 * fuel - fuel + (COLLATERAL - COLLATERAL / 2)) as i128,
    ];
    assert_eq!(books.paid[4..], expected, "compute payouts (honest, dear, liar, mediator, client)");
    assert_eq!(r.balance_at(COMPUTE_MARKET, end), 3 * 2 * COLLATERAL - COLLATERAL);

    // Nothing created or lost across both markets.
    let sent: u128 = books.sent.iter().sum();
    let paid: i128 = books.paid.iter().sum();
    let gained = (storage_held + r.balance_at(COMPUTE_MARKET, end)) as i128
        - (r.balance_at(STORAGE_MARKET, start) + r.balance_at(COMPUTE_MARKET, start)) as i128;
    assert_eq!(sent as i128 - paid, gained, "sent {sent}, paid {paid}, the markets gained {gained}");
}
