//! `qoin-el` and `qoin-cl` as real processes, as an operator runs them: blocks mined with
//! the post-quantum proof of work and executed by the execution client; the execution client
//! killed with SIGKILL and restarted while the consensus client keeps running; a consensus
//! client holding the wrong JWT secret refused; a second pair that only follows imports every
//! block the first one mines, over gossip, back-filling what it missed from the sender, and a
//! transaction sent to the follower's JSON-RPC is gossiped to the miner and mined; a block
//! touching more than the engine's 1,024 addresses per proof call is sampled in several calls
//! and the chain moves on; a node started after 300 blocks syncs them from its peer; a hostile
//! peer speaking the protocol and sending invalid blocks is banned while mining goes on.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn el_binary() -> PathBuf {
    let cl = PathBuf::from(env!("CARGO_BIN_EXE_qoin-cl"));
    let el = cl.with_file_name("qoin-el");
    assert!(
        el.exists(),
        "{} missing: run `cargo build --bins` (cargo test --workspace builds it)",
        el.display()
    );
    el
}

/// A free port on loopback, never the same one twice in this process (see
/// `qoin_cl_network::ports`: from below the kernel's ephemeral range).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Option<std::collections::HashSet<u16>>> = std::sync::Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    qoin_cl_network::ports::free_loopback_port(given.get_or_insert_with(Default::default)).unwrap()
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rpc(addr: SocketAddr, method: &str, params: Value) -> Result<Value, String> {
    let mut request = json!({"jsonrpc": "2.0", "id": 1, "method": method});
    request["params"] = params;
    let body = request.to_string();
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (_, payload) = raw.split_once("\r\n\r\n").ok_or("no body")?;
    let v: Value = serde_json::from_str(payload).map_err(|e| format!("{e}: {payload}"))?;
    match v.get("error") {
        Some(e) => Err(e.to_string()),
        None => Ok(v["result"].clone()),
    }
}

fn block_number(addr: SocketAddr) -> Option<u64> {
    rpc(addr, "eth_blockNumber", json!([]))
        .ok()
        .and_then(|v| u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok())
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A dev genesis starting now, with an easy first difficulty (2^16) so the first blocks come
/// fast on any machine.
fn write_genesis(dir: &Path, edit: impl FnOnce(&mut qoin_primitives::Genesis)) -> PathBuf {
    let mut g = qoin_primitives::dev::dev_genesis(&qoin_primitives::dev::dev_keys());
    g.timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    g.pow.initial_equations = 16;
    edit(&mut g);
    let path = dir.join("genesis.json");
    std::fs::write(&path, g.to_json()).unwrap();
    path
}

struct Pair {
    dir: PathBuf,
    genesis: PathBuf,
    http: u16,
    engine: u16,
}

impl Pair {
    fn new(dir: &Path) -> Self {
        Self::with_genesis(dir, |_| {})
    }

    fn with_genesis(dir: &Path, edit: impl FnOnce(&mut qoin_primitives::Genesis)) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        Self {
            dir: dir.to_path_buf(),
            genesis: write_genesis(dir, edit),
            http: free_port(),
            engine: free_port(),
        }
    }

    /// Another pair of the same chain.
    fn beside(&self, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        Self { dir: dir.to_path_buf(), genesis: self.genesis.clone(), http: free_port(), engine: free_port() }
    }

    fn http(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http))
    }

    fn start_el(&self) -> Proc {
        let child = Command::new(el_binary())
            .arg("--datadir")
            .arg(self.dir.join("el"))
            .args(["node", "--dev", "--mine", "off", "--genesis"])
            .arg(&self.genesis)
            .args(["--http.port", &self.http.to_string(), "--authrpc.port", &self.engine.to_string()])
            .arg("--authrpc.jwtsecret")
            .arg(self.dir.join("jwt.hex"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut p = Proc(child);
        wait_for("qoin-el's JSON-RPC", 60, || {
            if let Some(status) = p.0.try_wait().unwrap() {
                panic!("qoin-el exited ({status}); its log is above");
            }
            block_number(self.http())
        });
        p
    }

    fn cl_command(&self, jwt: &Path) -> Command {
        let ks = qoin_crypto::keystore::Keystore::new(self.dir.join("keystore"));
        if ks.list().map(|l| l.is_empty()).unwrap_or(true) {
            ks.create(b"pw", qoin_crypto::keystore::KdfParams::LIGHT).unwrap();
            std::fs::write(self.dir.join("password"), "pw\n").unwrap();
        }
        let mut c = Command::new(env!("CARGO_BIN_EXE_qoin-cl"));
        c.arg("--datadir")
            .arg(self.dir.join("cl"))
            .arg("--genesis")
            .arg(&self.genesis)
            .args(["--execution-endpoint", &format!("http://127.0.0.1:{}", self.engine)])
            .arg("--execution-jwt")
            .arg(jwt)
            .arg("--keystore")
            .arg(self.dir.join("keystore"))
            .arg("--password-file")
            .arg(self.dir.join("password"))
            .args(["--miner.threads", "1", "--p2p.addr", "127.0.0.1"]);
        c
    }
}

#[test]
fn the_consensus_client_recovers_when_the_execution_client_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pair = Pair::new(dir.path());
    let el = pair.start_el();
    let metrics = free_port();
    let _cl = Proc(
        pair.cl_command(&dir.path().join("jwt.hex"))
            .arg("--no-p2p")
            .args(["--metrics.port", &metrics.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = pair.http();
    wait_for("three mined blocks", 120, || block_number(addr).filter(|n| *n >= 3));

    // A PQ-signed transfer from a node-held dev key is mined with a receipt.
    let to = "0x000000000000000000000000000000000000beef";
    let from = format!("{:#x}", qoin_primitives::dev::dev_keys()[1].address());
    let hash = rpc(addr, "eth_sendTransaction", json!([{"from": from, "to": to, "value": "0x2a"}])).unwrap();
    let receipt = wait_for("the transfer's receipt", 60, || {
        rpc(addr, "eth_getTransactionReceipt", json!([hash])).ok().filter(|r| !r.is_null())
    });
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(rpc(addr, "eth_getBalance", json!([to, "latest"])).unwrap(), "0x2a");

    // Sampling ran on every block and found nothing wrong; the metrics say so.
    let text = http_get(metrics, "/metrics");
    assert!(metric(&text, "qoin_cl_sampled_accounts_total") >= 1.0, "{text}");
    assert_eq!(metric(&text, "qoin_cl_sampling_failures_total"), 0.0);
    assert!(metric(&text, "qoin_cl_head_height") >= 3.0);

    // SIGKILL the execution client; remember every committed block.
    let before = block_number(addr).unwrap();
    let hashes: Vec<Value> = (0..=before)
        .map(|n| {
            rpc(addr, "eth_getBlockByNumber", json!([format!("{n:#x}"), false])).unwrap()["hash"].clone()
        })
        .collect();
    drop(el);
    std::thread::sleep(Duration::from_millis(1500));
    let _el = pair.start_el();
    let after = wait_for("mining to resume", 120, || block_number(addr).filter(|n| *n >= before + 2));
    assert!(after >= before + 2);
    for (n, h) in hashes.iter().enumerate() {
        let now =
            rpc(addr, "eth_getBlockByNumber", json!([format!("{n:#x}"), false])).unwrap()["hash"].clone();
        assert_eq!(&now, h, "block {n} survived the kill");
    }
    let receipt = rpc(addr, "eth_getTransactionReceipt", json!([hash])).unwrap();
    assert_eq!(receipt["status"], "0x1", "the mined transfer is still there");
}

#[test]
fn a_consensus_client_with_the_wrong_jwt_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pair = Pair::new(dir.path());
    let _el = pair.start_el();
    let wrong = dir.path().join("other-jwt.hex");
    std::fs::write(&wrong, "11".repeat(32)).unwrap();
    let out = pair
        .cl_command(&wrong)
        .arg("--no-p2p")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "qoin-cl must stop: {log}");
    assert!(log.contains("refused our JWT"), "{log}");
    assert!(log.contains("signature"), "the reason is given: {log}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(block_number(pair.http()), Some(0), "nothing was built or imported");
}

fn block_hash(addr: SocketAddr, n: u64) -> Value {
    rpc(addr, "eth_getBlockByNumber", json!([format!("{n:#x}"), false])).unwrap()["hash"].clone()
}

#[test]
fn a_following_pair_imports_the_miners_blocks_over_gossip() {
    let dir = tempfile::tempdir().unwrap();
    let miner = Pair::new(&dir.path().join("miner"));
    let follower = miner.beside(&dir.path().join("follower"));
    let (_el_m, _el_f) = (miner.start_el(), follower.start_el());
    let miner_cl = |extra: &[&str]| {
        Proc(
            miner
                .cl_command(&dir.path().join("miner/jwt.hex"))
                .args(extra)
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    // The miner first mines a few blocks alone, then stops.
    let alone = miner_cl(&["--no-p2p"]);
    let before = wait_for("the miner's first blocks", 120, || block_number(miner.http()).filter(|n| *n >= 3));
    drop(alone);
    let before = block_number(miner.http()).unwrap().max(before);
    // A transfer sent to the follower before its consensus client runs (so before it has any
    // peer) is gossiped to nobody; it waits in the follower's pool.
    let to = "0x000000000000000000000000000000000000cafe";
    let early_from = format!("{:#x}", qoin_primitives::dev::dev_keys()[3].address());
    let early =
        rpc(follower.http(), "eth_sendTransaction", json!([{"from": early_from, "to": to, "value": "0x9"}]))
            .unwrap();
    // The follower (not mining) listens; the miner comes back and dials it. The follower
    // learns of the heavier chain (from the miner's status, or from a gossiped block whose
    // parent it lacks), fetches the missing blocks from it, then keeps up with gossip.
    let follower_p2p = free_port();
    let _cl_f = Proc(
        follower
            .cl_command(&dir.path().join("follower/jwt.hex"))
            .args(["--no-mine", "--p2p.port", &follower_p2p.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let _cl_m = miner_cl(&["--p2p.port", "0", "--bootnodes", &format!("/ip4/127.0.0.1/tcp/{follower_p2p}")]);
    let height = wait_for("the follower to catch up and follow", 120, || {
        block_number(follower.http()).filter(|n| *n >= before + 3)
    });
    // The same blocks, not a chain of its own (it does not mine).
    for n in 1..=height {
        assert_eq!(block_hash(follower.http(), n), block_hash(miner.http(), n), "block {n}");
    }

    // When they met, the miner took the early transfer from the follower's pool and mined it.
    let receipt = wait_for("the early transfer's receipt on the follower", 60, || {
        rpc(follower.http(), "eth_getTransactionReceipt", json!([early])).ok().filter(|r| !r.is_null())
    });
    assert_eq!(receipt["status"], "0x1");
    let on_miner = rpc(miner.http(), "eth_getTransactionReceipt", json!([early])).unwrap();
    assert_eq!(on_miner["blockHash"], receipt["blockHash"], "mined by the miner");

    // A transaction sent to the follower (which does not mine) reaches the miner's pool over
    // gossip, is mined there, and the block comes back to the follower.
    let from = format!("{:#x}", qoin_primitives::dev::dev_keys()[2].address());
    let hash = rpc(follower.http(), "eth_sendTransaction", json!([{"from": from, "to": to, "value": "0x7"}]))
        .unwrap();
    let receipt = wait_for("the relayed transfer's receipt on the follower", 60, || {
        rpc(follower.http(), "eth_getTransactionReceipt", json!([hash])).ok().filter(|r| !r.is_null())
    });
    assert_eq!(receipt["status"], "0x1");
    let on_miner = rpc(miner.http(), "eth_getTransactionReceipt", json!([hash])).unwrap();
    assert_eq!(on_miner["blockHash"], receipt["blockHash"], "mined by the miner, in the same block");
}

#[test]
fn a_block_touching_more_than_1024_addresses_is_sampled_and_the_chain_moves_on() {
    use qoin_primitives::{GenesisAccount, TxKind, TxRequest};
    let keys: Vec<qoin_crypto::Keypair> = (0..600u32)
        .map(|i| {
            let mut seed = [0x5a; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            qoin_crypto::Keypair::from_seed(&seed)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let pair = Pair::with_genesis(dir.path(), |g| {
        // Blocks of about a second on one search thread (0.6 s on AVX-512), so that
        // transactions arrive while a search runs.
        g.pow.initial_equations = 35;
        for k in &keys {
            g.alloc.insert(
                k.address(),
                GenesisAccount { balance: alloy_primitives::U256::from(10u64.pow(18)), ..Default::default() },
            );
        }
    });
    let _el = pair.start_el();
    // 600 senders, each paying a distinct new account: with the fee recipient, 1,201 touched
    // accounts, all in the pool before the miner builds its first block.
    let transfer = |i: usize, nonce: u64| {
        let tx = TxRequest {
            chain_id: qoin_primitives::dev::DEV_CHAIN_ID,
            nonce,
            max_priority_fee_per_gas: 1,
            max_fee_per_gas: 10_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(alloy_primitives::Address::left_padding_from(
                &(0x10_0000 + i as u32).to_be_bytes(),
            )),
            value: alloy_primitives::U256::from(1u8),
            ..Default::default()
        }
        .sign(&keys[i]);
        let raw = format!("0x{}", alloy_primitives::hex::encode(tx.encode()));
        rpc(pair.http(), "eth_sendRawTransaction", json!([raw])).unwrap()
    };
    for i in 0..keys.len() {
        transfer(i, 0);
    }
    let metrics = free_port();
    let _cl = Proc(
        pair.cl_command(&dir.path().join("jwt.hex"))
            .arg("--no-p2p")
            .args(["--metrics.port", &metrics.to_string(), "--miner.recommit", "300"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the block after the big one", 180, || block_number(pair.http()).filter(|n| *n >= 2));
    let big = rpc(pair.http(), "eth_getBlockByNumber", json!(["0x1", false])).unwrap();
    assert_eq!(big["transactions"].as_array().unwrap().len(), 600, "one block holds all 600 transfers");
    let text = http_get(metrics, "/metrics");
    assert!(metric(&text, "qoin_cl_sampled_accounts_total") >= 600.0, "every sender sampled: {text}");
    assert_eq!(metric(&text, "qoin_cl_sampling_failures_total"), 0.0);

    // A trickle of transactions (one per 50 ms for 2 s) rebuilds the block being mined at
    // most once per --miner.recommit (300 ms) per search, not once per transaction, and all
    // of them are mined.
    let rebuilds = metric(&text, "qoin_cl_miner_rebuilds_total");
    let first_block = block_number(pair.http()).unwrap();
    let started = Instant::now();
    let hashes: Vec<Value> = (0..40)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(50));
            transfer(i, 1)
        })
        .collect();
    let window = started.elapsed();
    let blocks_during = block_number(pair.http()).unwrap() - first_block;
    for h in &hashes {
        wait_for("the trickled transfers' receipts", 60, || {
            rpc(pair.http(), "eth_getTransactionReceipt", json!([h])).ok().filter(|r| !r.is_null())
        });
    }
    // A search rebuilds no sooner than 300 ms after it started, and a new block starts a
    // new search: one rebuild per 300 ms, plus one per block mined, at most.
    let text = http_get(metrics, "/metrics");
    let rebuilt = metric(&text, "qoin_cl_miner_rebuilds_total") - rebuilds;
    eprintln!("{rebuilt} rebuilds, {blocks_during} blocks mined while 40 transactions arrived in {window:?}");
    assert!(
        rebuilt <= (window.as_secs_f64() / 0.3).ceil() + blocks_during as f64 + 1.0,
        "{rebuilt} rebuilds, {blocks_during} blocks mined while 40 transactions arrived in {window:?}"
    );
}

#[test]
fn a_node_started_after_300_blocks_syncs_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let miner = Pair::new(&dir.path().join("miner"));
    let fresh = miner.beside(&dir.path().join("fresh"));
    let (_el_m, _el_f) = (miner.start_el(), fresh.start_el());
    let miner_p2p = free_port();
    let _cl_m = Proc(
        miner
            .cl_command(&dir.path().join("miner/jwt.hex"))
            .args(["--p2p.port", &miner_p2p.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // More blocks than gossip back-fill fetches (16): only a sync brings a new node there.
    let target = wait_for("300 blocks", 180, || block_number(miner.http()).filter(|n| *n >= 300));
    // A third peer (a bare libp2p node of the chain, as another client would be), which the
    // fresh node dials at start beside the miner, asks it for headers while it syncs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let genesis: alloy_primitives::B256 = serde_json::from_value(block_hash(miner.http(), 0)).unwrap();
    let chain_id = qoin_primitives::Genesis::from_file(&miner.genesis).unwrap().chain_id;
    let ours = qoin_cl_network::Status {
        chain_id,
        genesis_hash: genesis,
        head_hash: genesis,
        head_height: 0,
        cumulative_work: 0,
    };
    let (_status_tx, status_rx) = tokio::sync::watch::channel(ours);
    let third_p2p = free_port();
    let (peer, mut events) = rt.block_on(async {
        qoin_cl_network::start(
            &qoin_cl_network::NetworkConfig {
                key_path: dir.path().join("third.key"),
                listen: vec![format!("/ip4/127.0.0.1/tcp/{third_p2p}").parse().unwrap()],
                bootnodes: vec![],
                max_inbound: 4,
                max_outbound: 4,
                chain_id,
                genesis_hash: genesis,
                deny_file: None,
                inbound_delay: Duration::ZERO,
            },
            status_rx,
            None,
        )
        .unwrap()
    });
    let bootnodes =
        format!("/ip4/127.0.0.1/tcp/{miner_p2p},/ip4/127.0.0.1/tcp/{third_p2p}/p2p/{}", peer.peer_id());
    let fresh_metrics = free_port();
    let _cl_f = Proc(
        fresh
            .cl_command(&dir.path().join("fresh/jwt.hex"))
            .args(["--no-mine", "--p2p.port", "0", "--bootnodes", &bootnodes])
            .args(["--metrics.port", &fresh_metrics.to_string()])
            // Every message from its peers held 1 s (the testnet's link delay): the sync lasts
            // long enough to be watched.
            .args(["--p2p.test-latency-ms", "1000"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let fresh_id = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let Some(qoin_cl_network::NetworkEvent::PeerStatus { peer, .. }) = events.recv().await {
                    return peer;
                }
            }
        })
        .await
        .expect("the fresh node took the third peer as a peer of its chain")
    });
    // Its own events are not needed past this point (the network answers statuses itself).
    drop(events);
    // While it syncs, its execution client's eth_syncing says so (as geth's does), and it
    // answers its peers: the answers show a head still behind the chain it syncs.
    let mut seen: Option<Value> = None;
    let mut answered_while_behind: Option<(u64, u64, Vec<qoin_primitives::Header>)> = None;
    let height = wait_for("the fresh node to sync", 300, || {
        if let Ok(s) = rpc(fresh.http(), "eth_syncing", json!([])) {
            if s.is_object() {
                seen.get_or_insert(s);
                if answered_while_behind.is_none() {
                    answered_while_behind = rt.block_on(async {
                        // Each costs a little over the 1 s the node holds the request.
                        let ask = |r| tokio::time::timeout(Duration::from_secs(5), peer.request(fresh_id, r));
                        let (status, headers) = tokio::join!(
                            ask(qoin_cl_network::Request::Status(ours)),
                            ask(qoin_cl_network::Request::HeadersByRange { start: 1, count: 4 })
                        );
                        match (status, headers) {
                            (
                                Ok(Ok(qoin_cl_network::Response::Status(s))),
                                Ok(Ok(qoin_cl_network::Response::Headers(h))),
                            ) => Some((s.head_height, block_number(miner.http()).unwrap_or(0), h)),
                            other => panic!("the syncing node did not answer within 5 s: {other:?}"),
                        }
                    });
                }
            }
        }
        block_number(fresh.http()).filter(|n| *n >= target)
    });
    let (head_then, miner_then, headers) = answered_while_behind.expect("asked while the node synced");
    // Behind the chain it syncs when it answered. Not necessarily below `target`: the miner
    // keeps mining (faster than a block a second at this easy difficulty), so the sync goes
    // on in rounds, and under load the first answer may come in a later round.
    assert!(head_then < miner_then, "answered during the sync: head {head_then}, the miner's {miner_then}");
    // What it had imported so far, from the miner's chain.
    assert!(headers.len() <= 4);
    for h in &headers {
        assert_eq!(json!(h.payload_hash), block_hash(miner.http(), h.height), "header {}", h.height);
    }
    let seen = seen.expect("eth_syncing showed the sync in progress");
    let quantity = |v: &Value| u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert!(quantity(&seen["highestBlock"]) >= target, "{seen}");
    assert!(quantity(&seen["currentBlock"]) < quantity(&seen["highestBlock"]), "{seen}");
    assert!(quantity(&seen["startingBlock"]) <= quantity(&seen["currentBlock"]), "{seen}");
    wait_for("eth_syncing to be false once synced", 30, || {
        (rpc(fresh.http(), "eth_syncing", json!([])).ok()? == json!(false)).then_some(())
    });
    for n in [1, target / 2, target, height] {
        assert_eq!(block_hash(fresh.http(), n), block_hash(miner.http(), n), "block {n}");
    }
    // Every synced block was sampled (sync samples a block while the next one executes): each
    // block names a fee recipient that is not a sender, so each samples at least one account,
    // and sampling found nothing wrong. The consensus client's own head (a sampled block) came
    // up to the synced height, not one block behind it.
    let text = wait_for("the consensus client's head at the synced height", 30, || {
        let text = http_get(fresh_metrics, "/metrics");
        (metric(&text, "qoin_cl_head_height") >= height as f64).then_some(text)
    });
    assert!(metric(&text, "qoin_cl_sampled_accounts_total") >= height as f64, "{text}");
    assert_eq!(metric(&text, "qoin_cl_sampling_failures_total"), 0.0);
    // The blocks came in runs, each imported by one NewPayloads call (most of them: a run
    // holds the blocks whose checks are in when it starts).
    let runs = metric(&text, "qoin_cl_engine_call_seconds_count{method=\"NewPayloads\"}");
    let singles = metric(&text, "qoin_cl_engine_call_seconds_count{method=\"NewPayload\"}");
    assert!(runs >= 1.0 && runs + singles < height as f64 / 2.0, "{runs} runs, {singles} single imports");
}

#[test]
fn hostile_peers_sending_invalid_blocks_oversized_or_garbage_messages_are_banned_and_mining_goes_on() {
    use qoin_cl_network::{GossipBlock, NetworkConfig, NetworkEvent, Request, Response, Status};
    let dir = tempfile::tempdir().unwrap();
    let pair = Pair::new(dir.path());
    let _el = pair.start_el();
    let p2p = free_port();
    let metrics = free_port();
    let _cl = Proc(
        pair.cl_command(&dir.path().join("jwt.hex"))
            .args(["--p2p.port", &p2p.to_string(), "--metrics.port", &metrics.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the first blocks", 120, || block_number(pair.http()).filter(|n| *n >= 3));
    let genesis: alloy_primitives::B256 = serde_json::from_value(block_hash(pair.http(), 0)).unwrap();
    let g = qoin_primitives::Genesis::from_file(&pair.genesis).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    // Three hostile peers in turn, each a fresh identity: invalid blocks, oversized
    // transactions, undecodable transactions. Each costs its sender its connection.
    for (k, misbehaviour) in
        ["invalid blocks", "oversized transactions", "garbage transactions"].iter().enumerate()
    {
        rt.block_on(async {
            // The hostile peer: a real libp2p node of the same chain, so it gets past the
            // status exchange, then misbehaves.
            let status = Status {
                chain_id: g.chain_id,
                genesis_hash: genesis,
                head_hash: genesis,
                head_height: 0,
                cumulative_work: 0,
            };
            let (_status_tx, status_rx) = tokio::sync::watch::channel(status);
            let (handle, mut events) = qoin_cl_network::start(
                &NetworkConfig {
                    key_path: dir.path().join(format!("hostile-{k}.key")),
                    listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
                    bootnodes: vec![format!("/ip4/127.0.0.1/tcp/{p2p}").parse().unwrap()],
                    max_inbound: 4,
                    max_outbound: 4,
                    chain_id: g.chain_id,
                    genesis_hash: genesis,
                    deny_file: None,
                    inbound_delay: std::time::Duration::ZERO,
                },
                status_rx,
                None,
            )
            .unwrap();
            let node = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    if let Some(NetworkEvent::PeerStatus { peer, .. }) = events.recv().await {
                        return peer;
                    }
                }
            })
            .await
            .expect("the node took the hostile peer as a peer of its chain");
            // Let gossipsub exchange subscriptions.
            tokio::time::sleep(Duration::from_secs(2)).await;
            match k {
                0 => {
                    // A real block, fetched from the node, to tamper with: two blocks whose proof
                    // of work no longer holds (-50 each: -100 bans).
                    let Response::Headers(headers) =
                        handle.request(node, Request::HeadersByRange { start: 1, count: 1 }).await.unwrap()
                    else {
                        panic!("no header")
                    };
                    let Response::Payloads(payloads) = handle
                        .request(node, Request::PayloadsByHash(vec![headers[0].hash().unwrap()]))
                        .await
                        .unwrap()
                    else {
                        panic!("no payload")
                    };
                    for i in 1..=2u64 {
                        let mut header = headers[0].clone();
                        header.extra_nonce = header.extra_nonce.wrapping_add(i);
                        let bad = GossipBlock { header, payload: payloads[0].clone() };
                        let _ = handle.publish_block(&bad).await;
                    }
                }
                1 => {
                    // Over the transaction size limit (-25 each, refused before decoding).
                    for i in 0..4u8 {
                        let _ = handle.publish_transaction(vec![i; qoin_primitives::MAX_TX_SIZE + 1]).await;
                    }
                }
                _ => {
                    // Bytes that are no transaction (-25 each).
                    for i in 0..4u8 {
                        let _ = handle.publish_transaction(vec![0x51, i, 0xde, 0xad, 0xbe, 0xef]).await;
                    }
                }
            }
            tokio::time::timeout(Duration::from_secs(30), async {
                while handle.peers().await.unwrap().contains(&node) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("the node did not disconnect the peer sending {misbehaviour}"));
            let again = handle.request(node, Request::Status(status)).await;
            assert!(again.is_err(), "the node refuses the peer banned for {misbehaviour}: {again:?}");
        });
    }
    // And the node goes on mining.
    let now = block_number(pair.http()).unwrap();
    wait_for("mining to go on", 120, || block_number(pair.http()).filter(|n| *n >= now + 3));
    let text = http_get(metrics, "/metrics");
    assert_eq!(metric(&text, "qoin_cl_peers"), 0.0, "{text}");
    // rust-libp2p's counters are in the same registry: what the hostile peers sent was counted.
    let inbound: f64 = text
        .lines()
        .filter(|l| l.starts_with("libp2p_bandwidth_bytes_total{") && l.contains("Inbound"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(inbound > 10_000.0, "inbound bytes {inbound}: {text}");
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}
