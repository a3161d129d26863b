//! `qoin-el node --dev` driven through its real JSON-RPC server over HTTP, as dapp tools
//! drive it: a solc-compiled contract deployed, called, made to revert and its logs
//! queried; raw PQ transactions; pool refusals; `eth_getProof` answers checked by
//! alloy-trie's proof verifier; a SIGKILL and restart.

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_trie::{proof::verify_proof, Nibbles};
use qoin_crypto::{Domain, Keypair};
use qoin_primitives::dev::dev_seed;
use qoin_primitives::{TxKind, TxRequest};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `qoin-el node --dev`, killed on drop.
pub(crate) struct Node {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    pub(crate) fn start(datadir: &Path) -> Self {
        Self::start_with(datadir, &[])
    }

    /// Starts `qoin-el node --dev` with extra arguments.
    pub(crate) fn start_with(datadir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_qoin-el"))
            .arg("--datadir")
            .arg(datadir)
            .args(["node", "--dev", "--http.port", "0", "--authrpc.port", "0"])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(a) = line.split("JSON-RPC listening on http://").nth(1) {
                        tx.send(a.trim().parse::<SocketAddr>().unwrap()).unwrap();
                        sent = true;
                    }
                }
            }
        });
        let addr =
            rx.recv_timeout(Duration::from_secs(60)).expect("qoin-el did not start its JSON-RPC server");
        Self { child, addr }
    }

    /// POSTs a JSON body; returns the parsed answer.
    fn post(&self, body: &Value) -> Value {
        let body = body.to_string();
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, payload) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        serde_json::from_str(payload).unwrap_or_else(|e| panic!("{e}: {payload}"))
    }

    /// Calls `method`; `Ok(result)` or `Err(error object)`.
    fn call(&self, method: &str, params: Value) -> Result<Value, Value> {
        let mut request = json!({"jsonrpc": "2.0", "id": 1, "method": method});
        request["params"] = params;
        let answer = self.post(&request);
        match answer.get("error") {
            Some(e) => Err(e.clone()),
            None => Ok(answer["result"].clone()),
        }
    }

    pub(crate) fn ok(&self, method: &str, params: Value) -> Value {
        self.call(method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn receipt(&self, hash: &Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.ok("eth_getTransactionReceipt", json!([hash]));
            if !r.is_null() {
                return r;
            }
            assert!(Instant::now() < deadline, "no receipt for {hash}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn selector(sig: &str) -> Vec<u8> {
    keccak256(sig.as_bytes())[..4].to_vec()
}

fn word(x: u64) -> [u8; 32] {
    U256::from(x).to_be_bytes::<32>()
}

fn hexs(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn quantity_u256(v: &Value) -> U256 {
    v.as_str().unwrap().parse().unwrap()
}

fn add_call(amount: u64) -> String {
    let mut c = selector("add(uint256)");
    c.extend_from_slice(&word(amount));
    hexs(&c)
}

fn verify_pq_call(precompile: Address, input: &[u8]) -> String {
    let mut c = selector("verifyPq(address,bytes)");
    c.extend_from_slice(B256::left_padding_from(precompile.as_slice()).as_slice());
    c.extend_from_slice(&word(0x40));
    c.extend_from_slice(&word(input.len() as u64));
    c.extend_from_slice(input);
    c.resize(c.len() + (32 - input.len() % 32) % 32, 0);
    hexs(&c)
}

/// Checks an `eth_getProof` answer against `state_root` with alloy-trie's verifier.
fn check_proof(proof: &Value, state_root: B256, slots: &[(B256, U256)]) -> Result<(), String> {
    let address: Address = serde_json::from_value(proof["address"].clone()).unwrap();
    let nodes: Vec<Bytes> = serde_json::from_value(proof["accountProof"].clone()).unwrap();
    let nonce = quantity(&proof["nonce"]);
    let balance: U256 = serde_json::from_value(proof["balance"].clone()).unwrap();
    let storage_hash: B256 = serde_json::from_value(proof["storageHash"].clone()).unwrap();
    let code_hash: B256 = serde_json::from_value(proof["codeHash"].clone()).unwrap();
    let empty = nonce == 0 && balance.is_zero() && code_hash == keccak256([]);
    let expected = (!empty).then(|| {
        alloy_rlp::encode(alloy_trie::TrieAccount { nonce, balance, storage_root: storage_hash, code_hash })
    });
    verify_proof(state_root, Nibbles::unpack(keccak256(address)), expected, &nodes)
        .map_err(|e| format!("account proof of {address} does not verify: {e}"))?;
    for (i, (slot, value)) in slots.iter().enumerate() {
        let sp = &proof["storageProof"][i];
        assert_eq!(serde_json::from_value::<B256>(sp["key"].clone()).unwrap(), *slot);
        assert_eq!(serde_json::from_value::<U256>(sp["value"].clone()).unwrap(), *value);
        let nodes: Vec<Bytes> = serde_json::from_value(sp["proof"].clone()).unwrap();
        let expected = (!value.is_zero()).then(|| alloy_rlp::encode(value));
        verify_proof(storage_hash, Nibbles::unpack(keccak256(slot)), expected, &nodes)
            .map_err(|e| format!("storage proof of slot {slot} does not verify: {e}"))?;
    }
    Ok(())
}

#[test]
fn solidity_contract_logs_reverts_proofs_and_restart_through_json_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let dev0 = Keypair::from_seed(&dev_seed(0)).address();

    // Identity, as tools probe it.
    assert_eq!(node.ok("eth_chainId", json!([])), json!("0x539"));
    assert_eq!(node.ok("net_version", json!([])), json!("1337"));
    let accounts: Vec<Address> = serde_json::from_value(node.ok("eth_accounts", json!([]))).unwrap();
    assert_eq!(accounts.len(), 10);
    assert_eq!(accounts[0], dev0);
    let missing = node.call("eth_mining_the_moon", json!([])).unwrap_err();
    assert_eq!(missing["code"], -32601);

    // Batches answer every request, in order, with its id.
    let batch = node.post(&json!([
        {"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "id": 8, "method": "eth_getBalance", "params": [dev0, "latest"]},
        {"jsonrpc": "2.0", "id": 9, "method": "eth_nope"},
    ]));
    assert_eq!(batch[0]["id"], 7);
    assert_eq!(batch[0]["result"], "0x0");
    // 10,000 QOIN in 18-decimal base units, as anvil's 10,000 ether: 0x21e19e0c9bab2400000.
    assert_eq!(batch[1]["result"], json!("0x21e19e0c9bab2400000"));
    assert_eq!(batch[2]["error"]["code"], -32601);

    // A plain transfer to an account without code: exactly 21,000, as geth and anvil answer.
    let transfer = json!({"from": dev0, "to": "0x000000000000000000000000000000000000dEaD", "value": "0x1"});
    assert_eq!(node.ok("eth_estimateGas", json!([transfer])), json!("0x5208"));
    // An empty account cannot pay even the intrinsic gas at the suggested price: said plainly.
    let broke = json!({"from": "0x00000000000000000000000000000000000b0b00", "to": dev0, "maxFeePerGas": "0x3b9aca00"});
    let e = node.call("eth_estimateGas", json!([broke])).unwrap_err();
    assert!(e["message"].as_str().unwrap().starts_with("insufficient funds for gas * price + value"), "{e}");

    // Deploy the solc-compiled contract with an unlocked dev key, gas estimated by the node.
    let artifact: Value = serde_json::from_str(include_str!("../contracts/Counter.json")).unwrap();
    let mut init = unhex(&artifact["bytecode"]);
    init.extend_from_slice(&word(5));
    let deploy = json!({"from": dev0, "data": hexs(&init)});
    let estimate = quantity(&node.ok("eth_estimateGas", json!([deploy])));
    assert!(estimate > 53_000 && estimate < 2_000_000, "{estimate}");
    let deploy_hash = node.ok("eth_sendTransaction", json!([deploy]));
    let receipt = node.receipt(&deploy_hash);
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    assert!(quantity(&receipt["gasUsed"]) <= estimate);
    // Tools see the fee model's type (EIP-1559); the envelope's is beside it.
    let object = node.ok("eth_getTransactionByHash", json!([deploy_hash]));
    for o in [&receipt, &object] {
        assert_eq!((&o["type"], &o["envelopeType"]), (&json!("0x2"), &json!("0x51")), "{o}");
    }
    // The exact bytes the block carries: the type-0x51 encoding, which decodes to this id.
    let raw = unhex(&node.ok("eth_getRawTransactionByHash", json!([deploy_hash])));
    assert_eq!(raw[0], 0x51);
    let decoded = qoin_primitives::SignedTx::decode(&raw).unwrap();
    assert_eq!(json!(decoded.id()), deploy_hash);
    assert_eq!(node.ok("eth_getRawTransactionByHash", json!([B256::repeat_byte(7)])), Value::Null);
    assert_eq!(
        node.ok("web3_sha3", json!(["0x68656c6c6f20776f726c64"])),
        json!("0x47173285a8d7341e5e972fc677286384f802f8ef42a5ec5f03bbfa254cb01fad")
    );
    assert_eq!(node.ok("txpool_status", json!([])), json!({"pending": "0x0", "queued": "0x0"}));
    let contract: Address = serde_json::from_value(receipt["contractAddress"].clone()).unwrap();
    assert_eq!(contract, dev0.create(0));
    let deploy_block = receipt["blockNumber"].clone();
    let code = node.ok("eth_getCode", json!([contract, "latest"]));
    assert_eq!(code, artifact["deployedBytecode"]);

    let read =
        |data: String, block: Value| node.ok("eth_call", json!([{"to": contract, "data": data}, block]));
    assert_eq!(unhex(&read(hexs(&selector("count()")), json!("latest"))), word(5));
    let owner = unhex(&read(hexs(&selector("owner()")), json!("pending")));
    assert_eq!(&owner[12..], dev0.as_slice());

    // A state-changing call: mined, logged.
    let add = node.ok("eth_sendTransaction", json!([{"from": dev0, "to": contract, "data": add_call(7)}]));
    let receipt = node.receipt(&add);
    assert_eq!(receipt["status"], "0x1");
    let topic0 = keccak256("Increased(address,uint256,uint256)");
    let log = &receipt["logs"][0];
    assert_eq!(log["address"], json!(contract));
    assert_eq!(log["topics"], json!([topic0, B256::left_padding_from(dev0.as_slice())]));
    assert_eq!(unhex(&log["data"]), [word(7), word(12)].concat());
    assert_eq!(unhex(&read(hexs(&selector("count()")), json!("latest"))), word(12));
    assert_eq!(unhex(&node.ok("eth_getStorageAt", json!([contract, "0x0", "latest"]))), word(12));
    // History: the state as of the deployment block still reads 5.
    assert_eq!(unhex(&read(hexs(&selector("count()")), deploy_block.clone())), word(5));
    assert_eq!(
        node.ok("eth_getBalance", json!([dev0, "0x0"])),
        json!(format!("{:#x}", qoin_primitives::dev::DEV_BALANCE))
    );

    // Reverts: code 3, the reason in the message, the raw bytes in data.
    let e = node.call("eth_call", json!([{"to": contract, "data": add_call(42)}, "latest"])).unwrap_err();
    assert_eq!(e["code"], 3);
    assert_eq!(e["message"], "execution reverted: no 42");
    let data = unhex(&e["data"]);
    assert_eq!(&data[..4], &[0x08, 0xc3, 0x79, 0xa0]);
    let e = node.call("eth_call", json!([{"to": contract, "data": add_call(5000)}])).unwrap_err();
    assert_eq!(e["code"], 3);
    assert_eq!(e["message"], "execution reverted");
    assert_eq!(unhex(&e["data"]), [selector("TooBig(uint256)"), word(5000).to_vec()].concat());
    let e = node
        .call("eth_estimateGas", json!([{"from": dev0, "to": contract, "data": add_call(42)}]))
        .unwrap_err();
    assert_eq!((e["code"].clone(), e["message"].clone()), (json!(3), json!("execution reverted: no 42")));
    // Sent anyway (with a gas limit): mined and failed.
    let failing = node.ok(
        "eth_sendTransaction",
        json!([{"from": dev0, "to": contract, "data": add_call(42), "gas": "0x20000"}]),
    );
    assert_eq!(node.receipt(&failing)["status"], "0x0");

    // Logs by address and topics, by block hash; a filter on another sender finds nothing.
    let logs = node.ok("eth_getLogs", json!([{"address": contract, "fromBlock": "0x0", "topics": [topic0]}]));
    assert_eq!(logs.as_array().unwrap().len(), 1);
    assert_eq!(logs[0]["transactionHash"], add);
    let by_hash = node.ok("eth_getLogs", json!([{"blockHash": receipt["blockHash"]}]));
    assert_eq!(by_hash, logs);
    let other = B256::left_padding_from(Address::repeat_byte(9).as_slice());
    let none = node.ok("eth_getLogs", json!([{"fromBlock": "earliest", "topics": [topic0, [other]]}]));
    assert_eq!(none, json!([]));

    // Transactions and blocks.
    let t = node.ok("eth_getTransactionByHash", json!([add]));
    assert_eq!((t["from"].clone(), t["to"].clone()), (json!(dev0), json!(contract)));
    assert_eq!(t["blockNumber"], receipt["blockNumber"]);
    let block = node.ok("eth_getBlockByNumber", json!([receipt["blockNumber"], true]));
    assert_eq!(block["transactions"][0]["hash"], add);
    assert_eq!(node.ok("eth_getBlockByHash", json!([block["hash"], false]))["transactions"], json!([add]));
    assert_eq!(node.ok("eth_getTransactionCount", json!([dev0, "pending"])), "0x3");
    assert_eq!(node.ok("eth_getTransactionCount", json!([dev0, "latest"])), "0x3");
    let history = node.ok("eth_feeHistory", json!(["0x4", "latest", [25, 75]]));
    assert_eq!(history["baseFeePerGas"].as_array().unwrap().len(), 5);
    assert_eq!(history["reward"].as_array().unwrap().len(), 4);

    // Raw transactions signed outside the node, and the refusals tools match on.
    let dev1 = Keypair::from_seed(&dev_seed(1));
    let raw = |key: &Keypair, nonce: u64, value: u64| {
        let tx = TxRequest {
            chain_id: 1337,
            nonce,
            max_priority_fee_per_gas: 2,
            max_fee_per_gas: 10_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(Address::repeat_byte(0x77)),
            value: U256::from(value),
            ..Default::default()
        }
        .sign(key);
        hexs(&tx.encode())
    };
    let sent = node.ok("eth_sendRawTransaction", json!([raw(&dev1, 0, 1234)]));
    assert_eq!(node.receipt(&sent)["status"], "0x1");
    assert_eq!(node.ok("eth_getBalance", json!([Address::repeat_byte(0x77)])), "0x4d2");
    let e = node.call("eth_sendRawTransaction", json!([raw(&dev1, 0, 1)])).unwrap_err();
    assert!(e["message"].as_str().unwrap().starts_with("nonce too low"), "{e}");
    let stranger = Keypair::from_seed(&[0xee; 32]);
    let e = node.call("eth_sendRawTransaction", json!([raw(&stranger, 0, 1)])).unwrap_err();
    assert!(e["message"].as_str().unwrap().starts_with("insufficient funds for gas * price + value"), "{e}");
    let legacy = "0xf86c808504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83";
    let e = node.call("eth_sendRawTransaction", json!([legacy])).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("ECDSA"), "{e}");
    let e = node.call("eth_sendTransaction", json!([{"from": stranger.address(), "to": dev0}])).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("unknown account"), "{e}");

    // The contract checks a dual signature through the precompile; a tampered one fails.
    let msg = b"pay 10 to bob";
    let mut input = dev1.public().to_bytes();
    input.extend_from_slice(&dev1.sign(Domain::Contract, msg).to_bytes());
    input.extend_from_slice(msg);
    let dual = qoin_evm::precompiles::DUAL;
    assert_eq!(unhex(&read(verify_pq_call(dual, &input), json!("latest"))), word(1));
    let last = input.len() - 1;
    input[last] ^= 1;
    assert_eq!(unhex(&read(verify_pq_call(dual, &input), json!("latest"))), word(0));

    // eth_getProof, checked by an independent verifier against the block's state root, for
    // the contract (two set slots, one empty), an externally owned account and an absent one.
    let latest = node.ok("eth_getBlockByNumber", json!(["latest", false]));
    let root: B256 = serde_json::from_value(latest["stateRoot"].clone()).unwrap();
    let p = node.ok("eth_getProof", json!([contract, ["0x0", "0x1", "0x5"], "latest"]));
    let owner_word = U256::from_be_slice(dev0.as_slice());
    let slots = [
        (B256::ZERO, U256::from(12)),
        (B256::with_last_byte(1), owner_word),
        (B256::with_last_byte(5), U256::ZERO),
    ];
    check_proof(&p, root, &slots).unwrap();
    check_proof(&node.ok("eth_getProof", json!([dev0, [], "latest"])), root, &[]).unwrap();
    let absent = node.ok("eth_getProof", json!([Address::repeat_byte(0xab), [], "latest"]));
    assert_eq!(absent["balance"], "0x0");
    check_proof(&absent, root, &[]).unwrap();
    // At the deployment block, against that block's root: the count was 5.
    let old = node.ok("eth_getBlockByNumber", json!([deploy_block, false]));
    let old_root: B256 = serde_json::from_value(old["stateRoot"].clone()).unwrap();
    let p = node.ok("eth_getProof", json!([contract, ["0x0"], deploy_block]));
    check_proof(&p, old_root, &[(B256::ZERO, U256::from(5))]).unwrap();
    // A forged proof fails the same verifier (the check can fail).
    let mut forged = node.ok("eth_getProof", json!([dev0, [], "latest"]));
    forged["balance"] = json!("0x1");
    assert!(check_proof(&forged, root, &[]).is_err(), "a proof with a changed balance verified");

    // SIGKILL and restart on the same data directory: nothing committed is lost.
    let head = node.ok("eth_blockNumber", json!([]));
    drop(node);
    let node = Node::start(dir.path());
    assert_eq!(node.ok("eth_blockNumber", json!([])), head);
    assert_eq!(unhex(&node.ok("eth_getStorageAt", json!([contract, "0x0"]))), word(12));
    assert_eq!(node.ok("eth_getTransactionCount", json!([dev0, "pending"])), "0x3");
    let again = node.ok("eth_sendTransaction", json!([{"from": dev0, "to": contract, "data": add_call(1)}]));
    assert_eq!(node.receipt(&again)["status"], "0x1");
    assert_eq!(read_on(&node, contract, "count()"), word(13));
}

/// Deploys the Counter contract (count = 5) from dev account 0: that account and the
/// contract's address.
fn deploy_counter(node: &Node) -> (Address, Value) {
    let dev0 = Keypair::from_seed(&dev_seed(0)).address();
    let artifact: Value = serde_json::from_str(include_str!("../contracts/Counter.json")).unwrap();
    let mut init = unhex(&artifact["bytecode"]);
    init.extend_from_slice(&word(5));
    let deployed =
        node.receipt(&node.ok("eth_sendTransaction", json!([{"from": dev0, "data": hexs(&init)}])));
    (dev0, deployed["contractAddress"].clone())
}

#[test]
fn filters_report_new_blocks_logs_and_pending_transactions_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (dev0, contract) = deploy_counter(&node);
    let topic0 = keccak256("Increased(address,uint256,uint256)");

    // ethers' contract.on(...) and provider.on("block") over HTTP.
    let logs = node.ok("eth_newFilter", json!([{"address": contract, "topics": [topic0]}]));
    let history = node.ok("eth_newFilter", json!([{"address": contract, "fromBlock": "0x0"}]));
    let blocks = node.ok("eth_newBlockFilter", json!([]));
    let pending = node.ok("eth_newPendingTransactionFilter", json!([]));
    assert!(logs.as_str().is_some_and(|id| id.len() == 34), "geth's 16-byte ids: {logs}");
    let changes = |id: &Value| node.ok("eth_getFilterChanges", json!([id]));
    assert_eq!(changes(&blocks), json!([]), "nothing new yet");

    let add = node.ok("eth_sendTransaction", json!([{"from": dev0, "to": contract, "data": add_call(7)}]));
    let receipt = node.receipt(&add);
    assert_eq!(changes(&blocks), json!([receipt["blockHash"]]));
    let new_logs = changes(&logs);
    assert_eq!(new_logs.as_array().unwrap().len(), 1, "{new_logs}");
    assert_eq!(new_logs[0]["transactionHash"], add);
    assert_eq!(new_logs[0]["topics"][0], json!(topic0));
    assert!(changes(&pending).as_array().unwrap().contains(&add));
    // Each change is reported once.
    for id in [&blocks, &logs, &pending] {
        assert_eq!(changes(id), json!([]), "{id}");
    }
    // eth_getFilterLogs: everything in the filter's range now, as eth_getLogs answers.
    let all = node.ok("eth_getFilterLogs", json!([history]));
    assert_eq!(all, node.ok("eth_getLogs", json!([{"address": contract, "fromBlock": "0x0"}])));
    assert_eq!(all.as_array().unwrap().len(), 1);
    let e = node.call("eth_getFilterLogs", json!([blocks])).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("not a log filter"), "{e}");

    // A reorg (evm_revert, then other blocks at the same heights): the block filter reports the
    // new branch from the common ancestor, the log filter the new branch's logs only.
    let snap = node.ok("evm_snapshot", json!([]));
    let abandoned = node.receipt(
        &node.ok("eth_sendTransaction", json!([{"from": dev0, "to": contract, "data": add_call(1)}])),
    );
    assert_eq!(changes(&blocks), json!([abandoned["blockHash"]]));
    assert_eq!(changes(&logs).as_array().unwrap().len(), 1);
    assert_eq!(node.ok("evm_revert", json!([snap])), true);
    node.ok("evm_mine", json!([]));
    let replacement = node.ok("eth_getBlockByNumber", json!(["latest", false]));
    assert_eq!(
        replacement["number"], abandoned["blockNumber"],
        "a rival block at the abandoned one's height"
    );
    assert_ne!(replacement["hash"], abandoned["blockHash"]);
    let add2 = node.ok("eth_sendTransaction", json!([{"from": dev0, "to": contract, "data": add_call(2)}]));
    let second = node.receipt(&add2);
    assert_eq!(changes(&blocks), json!([replacement["hash"], second["blockHash"]]));
    let new_logs = changes(&logs);
    assert_eq!(new_logs.as_array().unwrap().len(), 1, "{new_logs}");
    assert_eq!(new_logs[0]["transactionHash"], add2);

    // Uninstalled: gone, and said so.
    assert_eq!(node.ok("eth_uninstallFilter", json!([logs])), json!(true));
    assert_eq!(node.ok("eth_uninstallFilter", json!([logs])), json!(false));
    let e = node.call("eth_getFilterChanges", json!([logs])).unwrap_err();
    assert_eq!(e["message"], "filter not found");
    let e = node.call("eth_getFilterChanges", json!(["0xnothex"])).unwrap_err();
    assert_eq!(e["code"], -32602);

    // A cap per node: installing beyond it is refused with a reason, and nothing breaks.
    let batch: Vec<Value> = (0..1_000)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_newBlockFilter", "params": []}))
        .collect();
    let mut refused = 0;
    for _ in 0..5 {
        let answers = node.post(&json!(batch));
        refused += answers.as_array().unwrap().iter().filter(|a| a.get("error").is_some()).count();
    }
    assert_eq!(refused, 5_000 + 3 - qoin_rpc::MAX_FILTERS, "3 installed before, 4,096 at most");
    let e = node.call("eth_newBlockFilter", json!([])).unwrap_err();
    assert!(e["message"].as_str().unwrap().starts_with("too many filters"), "{e}");
    assert_eq!(changes(&blocks), json!([]), "earlier filters still answer");
}

#[test]
fn the_suggested_tip_follows_the_blocks_tips_and_each_new_head() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    assert_eq!(node.ok("eth_maxPriorityFeePerGas", json!([])), "0x1", "no transactions yet: 1 shor");
    let gwei = u128::from(qoin_primitives::GWEI);
    let key = Keypair::from_seed(&dev_seed(1));
    // Medians (the upper one of an even count): [5] → 5, [5, 9] → 9, [5, 9, 3] → 5.
    for (nonce, tip, want) in [(0u64, 5 * gwei, 5 * gwei), (1, 9 * gwei, 9 * gwei), (2, 3 * gwei, 5 * gwei)] {
        let tx = TxRequest {
            chain_id: 1337,
            nonce,
            max_priority_fee_per_gas: tip,
            max_fee_per_gas: 50 * gwei,
            gas_limit: 21_000,
            to: TxKind::Call(Address::repeat_byte(0x77)),
            value: U256::from(1u8),
            ..Default::default()
        }
        .sign(&key);
        let hash = node.ok("eth_sendRawTransaction", json!([hexs(&tx.encode())]));
        node.receipt(&hash);
        // Asked at every head: the median of the last blocks' effective tips, never a stale one.
        assert_eq!(
            quantity(&node.ok("eth_maxPriorityFeePerGas", json!([]))) as u128,
            want,
            "after tx {nonce}"
        );
    }
    let base = quantity(&node.ok("eth_getBlockByNumber", json!(["latest", false]))["baseFeePerGas"]);
    let price = quantity(&node.ok("eth_gasPrice", json!([]))) as u128;
    assert!(price > 5 * gwei && price <= u128::from(base) + 5 * gwei, "next base fee + tip: {price}");
}

fn read_on(node: &Node, contract: Address, sig: &str) -> Vec<u8> {
    unhex(&node.ok("eth_call", json!([{"to": contract, "data": hexs(&selector(sig))}, "latest"])))
}

/// 1,000 raw transactions from 20 fresh keys in flight at once on one WebSocket (each runs on
/// a thread of the node that reads the state, then waits its turn to mine): every one is accepted, none
/// refused with MDBX's "too many readers", and all are mined.
fn many_clients_at_once(node: &Node) {
    let keys: Vec<Keypair> = (0..20u8).map(|i| Keypair::from_seed(&[0x70 + i; 32])).collect();
    for k in &keys {
        node.ok("anvil_setBalance", json!([k.address(), "0xde0b6b3a7640000"]));
    }
    let raw: Vec<String> = (0..1_000u64)
        .map(|i| {
            let tx = TxRequest {
                chain_id: 1337,
                nonce: i / 20,
                max_priority_fee_per_gas: 1,
                max_fee_per_gas: 100 * u128::from(qoin_primitives::GWEI),
                gas_limit: 21_000,
                to: TxKind::Call(Address::repeat_byte(0xee)),
                value: U256::from(1),
                input: Bytes::new(),
                access_list: vec![],
            }
            .sign(&keys[(i % 20) as usize]);
            hexs(&tx.encode())
        })
        .collect();
    // All written before any answer is read: up to 1,000 in flight on one connection.
    let stream = TcpStream::connect(node.addr).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{}/", node.addr), stream).unwrap();
    for (i, r) in raw.iter().enumerate() {
        let call = json!({"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [r]});
        ws.write(tungstenite::Message::text(call.to_string())).unwrap();
    }
    ws.flush().unwrap();
    let (mut answered, mut failed) = (0, Vec::new());
    ws_read_until(&mut ws, |m| {
        answered += 1;
        if m.get("error").is_some() {
            failed.push(m.clone());
        }
        answered == raw.len()
    });
    assert!(failed.is_empty(), "{} of 1,000 refused, e.g. {}", failed.len(), failed[0]);
    assert_eq!(node.ok("eth_getBalance", json!([Address::repeat_byte(0xee), "latest"])), "0x3e8");
}

/// Impersonation as on anvil and Hardhat: `who` (a contract, funded, nonce 5), whose keys the
/// node does not hold, sends through `eth_sendTransaction` once impersonated, and not before or
/// after; its transaction names the sender and carries no signature (suite 0x00).
fn impersonation(node: &Node, who: Address) {
    let dev0: Address = serde_json::from_value(node.ok("eth_accounts", json!([]))[0].clone()).unwrap();
    assert_eq!(node.ok("anvil_impersonateAccount", json!([dev0])), Value::Null, "a held key");
    let send = json!([{"from": who, "to": dev0, "value": "0x2a"}]);
    let e = node.call("eth_sendTransaction", send.clone()).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("unknown account"), "{e}");
    let before = quantity_u256(&node.ok("eth_getBalance", json!([dev0, "latest"])));

    assert_eq!(node.ok("hardhat_impersonateAccount", json!([who])), true);
    let hash = node.ok("eth_sendTransaction", send.clone());
    let receipt = node.ok("eth_getTransactionReceipt", json!([hash]));
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    assert_eq!(serde_json::from_value::<Address>(receipt["from"].clone()).unwrap(), who);
    let t = node.ok("eth_getTransactionByHash", json!([hash]));
    assert_eq!(t["signatureSuite"], "0x0");
    assert_eq!(t["nonce"], "0x5");
    assert_eq!(quantity_u256(&node.ok("eth_getBalance", json!([dev0, "latest"]))), before + U256::from(42));
    let raw = unhex(&node.ok("eth_getRawTransactionByHash", json!([hash])));
    let decoded = qoin_primitives::SignedTx::decode(&raw).unwrap();
    assert!(decoded.is_impersonated() && decoded.sender() == who && decoded.verify_signature().is_err());

    assert_eq!(node.ok("anvil_stopImpersonatingAccount", json!([who])), Value::Null);
    let e = node.call("eth_sendTransaction", send).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("unknown account"), "{e}");
    // Its raw form is refused too once the node no longer impersonates it.
    let mut request = decoded.request().clone();
    request.nonce = 6;
    let raw = hexs(&request.impersonated(who).encode());
    let e = node.call("eth_sendRawTransaction", json!([raw])).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("carries no signature"), "{e}");
}

#[test]
fn dev_node_methods_under_anvil_and_hardhat_names_and_refused_without_local_mining() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let version = node.ok("web3_clientVersion", json!([]));
    assert!(version.as_str().unwrap().starts_with("anvil-compatible/qoin-el/v"), "{version}");
    let meta = node.ok("hardhat_metadata", json!([]));
    assert_eq!(meta["chainId"], 1337);
    assert_eq!(meta["latestBlockNumber"], 0);
    assert_eq!(meta, node.ok("anvil_metadata", json!([])));
    let info = node.ok("anvil_nodeInfo", json!([]));
    assert_eq!(info["currentBlockNumber"], 0);
    assert_eq!(info["environment"]["chainId"], 1337);
    assert_eq!(node.ok("hardhat_getAutomine", json!([])), true);

    let snap = node.ok("evm_snapshot", json!([]));
    assert_eq!(snap, "0x1");
    assert_eq!(node.ok("anvil_mine", json!(["0x3", "0xa"])), Value::Null);
    let head = node.ok("eth_getBlockByNumber", json!(["latest", false]));
    assert_eq!(quantity(&head["number"]), 3);
    let t3 = quantity(&head["timestamp"]);
    assert_eq!(quantity(&node.ok("eth_getBlockByNumber", json!(["0x2", false]))["timestamp"]), t3 - 10);
    assert_eq!(node.ok("evm_mine", json!([t3 + 500])), "0x0");
    assert_eq!(quantity(&node.ok("eth_getBlockByNumber", json!(["latest", false]))["timestamp"]), t3 + 500);
    let e = node.call("evm_mine", json!([t3])).unwrap_err();
    assert!(
        e["message"].as_str().unwrap().contains("lower than or equal to previous block's timestamp"),
        "{e}"
    );
    assert!(node.ok("evm_increaseTime", json!([3600])).as_str().unwrap().parse::<i64>().unwrap() >= 3600);

    let who = Address::repeat_byte(0xc0);
    assert_eq!(node.ok("anvil_setBalance", json!([who, "0xde0b6b3a7640000"])), Value::Null);
    assert_eq!(node.ok("eth_getBalance", json!([who, "latest"])), "0xde0b6b3a7640000");
    assert_eq!(node.ok("hardhat_setNonce", json!([who, "0x5"])), true);
    assert_eq!(node.ok("eth_getTransactionCount", json!([who, "latest"])), "0x5");
    let e = node.call("anvil_setNonce", json!([who, "0x4"])).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("must not be smaller"), "{e}");
    let e = node.call("anvil_setCode", json!([who, "0xef01"])).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("invalid code"), "{e}");
    node.ok("anvil_setCode", json!([who, "0x602a60005260206000f3"]));
    assert_eq!(node.ok("eth_getCode", json!([who, "latest"])), "0x602a60005260206000f3");
    assert_eq!(node.ok("eth_call", json!([{"to": who}, "latest"])), format!("0x{}", hex::encode(word(42))));
    let value = format!("0x{}", hex::encode(word(7)));
    node.ok("hardhat_setStorageAt", json!([who, "0x1", value]));
    assert_eq!(node.ok("eth_getStorageAt", json!([who, "0x1", "latest"])), value);
    let e = node.call("anvil_setStorageAt", json!([who, "0x1", "0x07"])).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("exactly 32 bytes"), "{e}");
    // Every edit is a block whose state root matches the state: eth_getProof checks it.
    let head = node.ok("eth_getBlockByNumber", json!(["latest", false]));
    let root: B256 = serde_json::from_value(head["stateRoot"].clone()).unwrap();
    let proof = node.ok("eth_getProof", json!([who, ["0x1"], "latest"]));
    check_proof(&proof, root, &[(B256::with_last_byte(1), U256::from(7u8))]).unwrap();
    impersonation(&node, who);
    many_clients_at_once(&node);

    assert_eq!(node.ok("evm_revert", json!([snap])), true);
    assert_eq!(node.ok("eth_blockNumber", json!([])), "0x0");
    assert_eq!(node.ok("eth_getBalance", json!([who, "latest"])), "0x0");
    assert_eq!(node.ok("eth_getCode", json!([who, "latest"])), "0x");
    assert_eq!(node.ok("evm_revert", json!([snap])), false, "used up");
    drop(node);

    // Blocks from a consensus client: every dev method is refused with -32601 and a reason.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--mine", "off"]);
    assert!(node.ok("web3_clientVersion", json!([])).as_str().unwrap().starts_with("qoin-el/v"));
    for (method, params) in [
        ("hardhat_metadata", json!([])),
        ("anvil_nodeInfo", json!([])),
        ("evm_mine", json!([])),
        ("evm_snapshot", json!([])),
        ("anvil_setBalance", json!([who, "0x1"])),
        ("evm_increaseTime", json!([1])),
    ] {
        let e = node.call(method, params).unwrap_err();
        assert_eq!(e["code"], -32601, "{method}: {e}");
        assert!(e["message"].as_str().unwrap().contains("consensus client"), "{method}: {e}");
    }
    assert_eq!(node.ok("eth_blockNumber", json!([])), "0x0");
}

#[test]
fn calls_and_estimates_stop_at_the_gas_cap_and_the_evm_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // A cap far below the block's 30M gas, and a timeout a busy loop cannot finish within.
    let node = Node::start_with(dir.path(), &["--rpc.gascap", "100000", "--rpc.evmtimeout", "20ms"]);
    let (gas_left, looping) = (Address::repeat_byte(0x9a), Address::repeat_byte(0x9b));
    // GAS PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN: answers the gas left.
    node.ok("anvil_setCode", json!([gas_left, "0x5a60005260206000f3"]));
    // JUMPDEST PUSH1 0 JUMP: loops until out of gas.
    node.ok("anvil_setCode", json!([looping, "0x5b600056"]));
    let left = quantity(&node.ok("eth_call", json!([{"to": gas_left, "gas": "0x1c9c380"}, "latest"])));
    assert!(left < 100_000 && left > 70_000, "a 30M-gas request ran with the 100,000 cap: {left} left");
    let e = node.call("eth_estimateGas", json!([{"to": looping}])).unwrap_err();
    assert_eq!(e["message"], "gas required exceeds allowance (100000)", "{e}");
    drop(node);

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--rpc.evmtimeout", "20ms"]);
    node.ok("anvil_setCode", json!([looping, "0x5b600056"]));
    node.ok("anvil_setCode", json!([gas_left, "0x5a60005260206000f3"]));
    // 30M gas of a 12-gas loop is 2.5M iterations: far beyond 20 ms.
    for method in ["eth_call", "eth_estimateGas"] {
        let started = Instant::now();
        let e = node.call(method, json!([{"to": looping}])).unwrap_err();
        assert_eq!(e["message"], "execution aborted (timeout = 20ms)", "{method}: {e}");
        assert!(started.elapsed() < Duration::from_secs(5), "{method} stopped at the timeout");
    }
    // A short call is untouched by either limit.
    assert!(quantity(&node.ok("eth_call", json!([{"to": gas_left}, "latest"]))) > 29_000_000);
    let e = Command::new(env!("CARGO_BIN_EXE_qoin-el"))
        .args(["node", "--dev", "--rpc.evmtimeout", "soon"])
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("--rpc.evmtimeout"), "{e:?}");
}

#[test]
fn create_access_list_names_what_a_call_touches_and_the_gas_it_then_uses() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (a, b) = (Address::repeat_byte(0xaa), Address::repeat_byte(0xbb));
    // B: PUSH1 5 SLOAD STOP. A: CALL(gas, B, 0, 0, 0, 0, 0) STOP.
    node.ok("anvil_setCode", json!([b, "0x60055400"]));
    let call_b = format!("0x6000600060006000600073{}5af100", hex::encode(b));
    node.ok("anvil_setCode", json!([a, call_b]));
    let from = node.ok("eth_accounts", json!([]))[0].clone();
    let answer = node.ok("eth_createAccessList", json!([{"from": from, "to": a}]));
    let slot5 = format!("0x{}", hex::encode(B256::with_last_byte(5)));
    assert_eq!(
        answer["accessList"],
        json!([{"address": b, "storageKeys": [slot5]}]),
        "B and its slot; not the sender, not the recipient A: {answer}"
    );
    assert!(answer.get("error").is_none(), "{answer}");
    let with_list = quantity(&answer["gasUsed"]);
    let without = quantity(&node.ok("eth_estimateGas", json!([{"from": from, "to": a}])));
    // The list costs 2,400 + 1,900 up front and saves the cold-access surcharges (2,500 + 2,000).
    assert!(with_list < without, "with the list {with_list}, without {without}");
    // Given the answer, the list is already complete: the same list comes back.
    let again = node.ok(
        "eth_createAccessList",
        json!([{"from": from, "to": a, "accessList": answer["accessList"]}, "latest"]),
    );
    assert_eq!(again["accessList"], answer["accessList"]);
    // A reverting call still answers, with the reason.
    node.ok("anvil_setCode", json!([b, "0x60055460006000fd"]));
    let reverted = node.ok("eth_createAccessList", json!([{"from": from, "to": b}]));
    assert_eq!(reverted["error"], "execution reverted", "{reverted}");
}

#[test]
fn txpool_content_and_inspect_show_pending_and_queued_by_sender_and_nonce() {
    let dir = tempfile::tempdir().unwrap();
    // No local blocks: what is sent stays pooled.
    let node = Node::start_with(dir.path(), &["--mine", "off"]);
    let accounts = node.ok("eth_accounts", json!([]));
    let (a, b) = (accounts[0].as_str().unwrap(), accounts[1].as_str().unwrap());
    let to = "0x000000000000000000000000000000000000dEaD";
    let mut ids = Vec::new();
    for (from, nonce) in [(a, 0u64), (a, 1), (a, 3), (b, 0)] {
        let t =
            json!({"from": from, "to": to, "value": "0x7", "nonce": format!("{nonce:#x}"), "gas": "0x5208"});
        ids.push(node.ok("eth_sendTransaction", json!([t])));
    }
    let checksum = |s: &str| s.parse::<Address>().unwrap().to_string();
    let (a, b) = (checksum(a), checksum(b));
    let content = node.ok("txpool_content", json!([]));
    assert_eq!(content["pending"][&a]["0"]["hash"], ids[0]);
    assert_eq!(content["pending"][&a]["1"]["hash"], ids[1]);
    assert_eq!(content["queued"][&a]["3"]["hash"], ids[2], "behind the gap at nonce 2");
    assert_eq!(content["pending"][&b]["0"]["hash"], ids[3]);
    assert_eq!(content["pending"][&a].as_object().unwrap().len(), 2);
    assert_eq!(content["queued"].as_object().unwrap().len(), 1);
    assert_eq!(node.ok("txpool_status", json!([])), json!({"pending": "0x3", "queued": "0x1"}));
    let from_a = node.ok("txpool_contentFrom", json!([a]));
    assert_eq!(from_a["pending"], content["pending"][&a]);
    assert_eq!(from_a["queued"], content["queued"][&a]);
    let inspect = node.ok("txpool_inspect", json!([]));
    let line = inspect["pending"][&b]["0"].as_str().unwrap();
    assert!(line.starts_with(&format!("{to}: 7 shor + 21000 gas × ")), "{line}");
    assert_eq!(inspect["queued"][&a]["3"].as_str().unwrap().split(':').next(), Some(to));
}

#[test]
fn transactions_by_block_and_index_and_no_uncles() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let from = node.ok("eth_accounts", json!([]))[0].clone();
    let hash = node.ok("eth_sendTransaction", json!([{"from": from, "to": from, "value": "0x1"}]));
    let receipt = node.receipt(&hash);
    let (block_hash, number) = (receipt["blockHash"].clone(), receipt["blockNumber"].clone());
    let by_hash = node.ok("eth_getTransactionByHash", json!([hash]));
    assert_eq!(node.ok("eth_getTransactionByBlockHashAndIndex", json!([block_hash, "0x0"])), by_hash);
    assert_eq!(node.ok("eth_getTransactionByBlockNumberAndIndex", json!([number, "0x0"])), by_hash);
    assert_eq!(node.ok("eth_getTransactionByBlockNumberAndIndex", json!(["latest", "0x0"])), by_hash);
    let raw = node.ok("eth_getRawTransactionByHash", json!([hash]));
    assert_eq!(node.ok("eth_getRawTransactionByBlockHashAndIndex", json!([block_hash, "0x0"])), raw);
    assert_eq!(node.ok("eth_getRawTransactionByBlockNumberAndIndex", json!([number, "0x0"])), raw);
    assert_eq!(node.ok("eth_getTransactionByBlockNumberAndIndex", json!([number, "0x1"])), Value::Null);
    assert_eq!(node.ok("eth_getTransactionByBlockNumberAndIndex", json!(["0x99", "0x0"])), Value::Null);
    assert!(node.call("eth_getTransactionByBlockNumberAndIndex", json!([number])).is_err(), "index required");
    assert_eq!(node.ok("eth_getUncleCountByBlockHash", json!([block_hash])), "0x0");
    assert_eq!(node.ok("eth_getUncleCountByBlockNumber", json!(["0x99"])), Value::Null);
    assert_eq!(node.ok("eth_getUncleByBlockNumberAndIndex", json!([number, "0x0"])), Value::Null);
}

#[test]
fn heavy_methods_take_turns_while_light_ones_answer() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--rpc.max-heavy-requests", "1", "--rpc.evmtimeout", "100ms"]);
    // JUMPDEST, KECCAK256 of 1 MiB, JUMP back: 30M gas of it hashes about 140 MiB, well
    // past 100 ms even with keccak in assembly (more than 300 ms before it).
    let looping = Address::repeat_byte(0x9b);
    node.ok("anvil_setCode", json!([looping, "0x5b6210000060002050600056"]));
    let started = Instant::now();
    let (first_done, second_done, light_done) = std::thread::scope(|s| {
        let heavy = || {
            s.spawn(|| {
                let e = node.call("eth_call", json!([{"to": looping}, "latest"])).unwrap_err();
                assert_eq!(e["message"], "execution aborted (timeout = 100ms)", "{e}");
                started.elapsed()
            })
        };
        let (a, b) = (heavy(), heavy());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(node.ok("eth_blockNumber", json!([])), "0x1", "a light method does not wait");
        let light = started.elapsed();
        (a.join().unwrap(), b.join().unwrap(), light)
    });
    let (first, second) = (first_done.min(second_done), first_done.max(second_done));
    assert!(first >= Duration::from_millis(100));
    assert!(
        second >= Duration::from_millis(200),
        "one turn: the second call ran after the first ({second:?})"
    );
    assert!(light_done < first, "the light call answered while the heavy ones ran");
}

#[test]
fn debug_traces_with_geths_tracers_and_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (a, b, looping) =
        (Address::repeat_byte(0xa1), Address::repeat_byte(0xb1), Address::repeat_byte(0x1f));
    // B: stores its first argument word in slot 0 and returns it.
    // PUSH1 0 CALLDATALOAD PUSH1 0 SSTORE PUSH1 0 CALLDATALOAD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
    node.ok("anvil_setCode", json!([b, "0x60003560005560003560005260206000f3"]));
    // A: forwards its calldata to B, logs B's answer under topic 1, returns it; reverts when
    // the call to B fails. CALLDATACOPY(0, 0, size) CALL(gas, B, 0, 0, size, 0, 32)
    // ISZERO PUSH1 <revert> JUMPI LOG1(0, 32, 1) RETURN(0, 32) JUMPDEST REVERT(0, 0)
    let a_code = format!(
        "0x3660006000376020600036600060007 3{}5af1156032576001602060 00a160206000f35b60006000fd",
        hex::encode(b)
    )
    .replace(' ', "");
    node.ok("anvil_setCode", json!([a, a_code]));
    // JUMPDEST PUSH1 0 JUMP: loops until out of gas.
    node.ok("anvil_setCode", json!([looping, "0x5b600056"]));
    let from = node.ok("eth_accounts", json!([]))[0].clone();
    let hash = node.ok("eth_sendTransaction", json!([{"from": from, "to": a, "input": hexs(&word(42))}]));
    let receipt = node.receipt(&hash);
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let gas_used = quantity(&receipt["gasUsed"]);

    // The struct logger (no tracer): every step, B's SSTORE at depth 2 with the slot written.
    let t = node.ok("debug_traceTransaction", json!([hash]));
    assert_eq!(t["failed"], false);
    assert_eq!(t["gas"], json!(gas_used), "the receipt's gas: {}", t["gas"]);
    assert_eq!(t["returnValue"], json!(hexs(&word(42))));
    let steps = t["structLogs"].as_array().unwrap();
    assert_eq!(
        (steps[0]["pc"].clone(), steps[0]["op"].clone(), steps[0]["depth"].clone()),
        (json!(0), json!("CALLDATASIZE"), json!(1))
    );
    let sstore = steps.iter().find(|s| s["op"] == "SSTORE").expect("an SSTORE step");
    assert_eq!(sstore["depth"], 2);
    assert_eq!(sstore["storage"][B256::ZERO.to_string()], json!(B256::from(word(42))), "{sstore}");
    assert!(steps.iter().all(|s| s.get("memory").is_none()), "memory only when asked");
    let limited = node.ok("debug_traceTransaction", json!([hash, {"limit": 3, "disableStack": true}]));
    assert_eq!(limited["structLogs"].as_array().unwrap().len(), 3);
    assert!(limited["structLogs"][0].get("stack").is_none());

    // callTracer: the nested call, its output, and A's log.
    let calls = node.ok(
        "debug_traceTransaction",
        json!([hash, {"tracer": "callTracer", "tracerConfig": {"withLog": true}}]),
    );
    assert_eq!(calls["type"], "CALL");
    assert_eq!(calls["from"], from);
    assert_eq!(calls["to"], json!(a));
    assert_eq!(quantity(&calls["gasUsed"]), gas_used);
    assert_eq!(calls["output"], json!(hexs(&word(42))));
    assert_eq!(calls["calls"][0]["to"], json!(b));
    assert_eq!(calls["calls"][0]["input"], json!(hexs(&word(42))));
    assert_eq!(calls["logs"][0]["topics"][0], json!(B256::with_last_byte(1)), "{calls}");

    // prestateTracer in diff mode: B's slot before and after.
    let diff = node.ok(
        "debug_traceTransaction",
        json!([hash, {"tracer": "prestateTracer", "tracerConfig": {"diffMode": true}}]),
    );
    let slot = B256::ZERO.to_string();
    assert_eq!(
        diff["post"][b.to_string().to_lowercase()]["storage"][&slot],
        json!(B256::from(word(42))),
        "{diff}"
    );

    // The block's trace names the transaction.
    let block =
        node.ok("debug_traceBlockByNumber", json!([receipt["blockNumber"], {"tracer": "callTracer"}]));
    assert_eq!(
        block,
        json!([{"txHash": hash, "result": node.ok("debug_traceTransaction", json!([hash, {"tracer": "callTracer"}]))}])
    );
    let by_hash = node.ok("debug_traceBlockByHash", json!([receipt["blockHash"], {"tracer": "callTracer"}]));
    assert_eq!(by_hash, block);

    // debug_traceCall on the latest state: B now holds 42; a failing inner call reverts A.
    let call = node.ok(
        "debug_traceCall",
        json!([{"from": from, "to": a, "input": hexs(&word(7))}, "latest", {"tracer": "callTracer"}]),
    );
    assert_eq!(call["output"], json!(hexs(&word(7))));
    // A revert and an out-of-gas run are traced with their errors.
    let reverting = Address::repeat_byte(0x4e);
    // MSTORE(0, 1) REVERT(0, 32)
    node.ok("anvil_setCode", json!([reverting, "0x600160005260206000fd"]));
    let reverted = node.ok("debug_traceCall", json!([{"to": reverting}, "latest", {"tracer": "callTracer"}]));
    assert_eq!(reverted["error"], "execution reverted", "{reverted}");
    assert_eq!(reverted["output"], json!(hexs(&word(1))));
    let spent = node.ok(
        "debug_traceCall",
        json!([{"to": looping, "gas": "0x186a0"}, "latest", {"tracer": "callTracer"}]),
    );
    assert_eq!(
        (spent["error"].clone(), spent["gasUsed"].clone()),
        (json!("out of gas"), json!("0x186a0")),
        "{spent}"
    );
    // Bad requests answer errors and change nothing.
    let missing = node.call("debug_traceTransaction", json!([B256::repeat_byte(9)])).unwrap_err();
    assert_eq!(missing["code"], -32000);
    assert!(missing["message"].as_str().unwrap().contains("not found"), "{missing}");
    let e = node
        .call("debug_traceTransaction", json!([hash, {"tracer": "function() { return 1 }"}]))
        .unwrap_err();
    assert!(e["message"].as_str().unwrap().starts_with("tracer not found"), "{e}");
    let e = node.call("debug_traceBlockByNumber", json!(["0x0"])).unwrap_err();
    assert_eq!(e["message"], "genesis is not traceable");
    let e = node.call("debug_traceTransaction", json!([hash, {"timeout": "soon"}])).unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
    let e = node.call("debug_traceTransaction", json!([hash, {"timeout": "2h"}])).unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
    let e = node.call("debug_traceCall", json!([{"to": a}, "latest", {"blockOverrides": {}}])).unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
    assert!(e["message"].as_str().unwrap().contains("blockOverrides"), "{e}");
    // A trace that runs past its timeout stops there; one that would keep too much is refused.
    let started = Instant::now();
    let e = node
        .call(
            "debug_traceCall",
            json!([{"to": looping}, "latest", {"tracer": "callTracer", "timeout": "50ms"}]),
        )
        .unwrap_err();
    assert_eq!(e["message"], "execution aborted (timeout = 50ms)", "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let e = node.call("debug_traceCall", json!([{"to": looping}, "latest", {"timeout": "60s"}])).unwrap_err();
    assert!(e["message"].as_str().unwrap().starts_with("trace too large"), "{e}");
    assert_eq!(node.ok("eth_getTransactionReceipt", json!([hash]))["status"], "0x1");
}

/// `fn(args)` calldata, ABI-encoded.
fn abi_call(signature: &str, args: Vec<alloy_dyn_abi::DynSolValue>) -> String {
    let mut c = selector(signature);
    c.extend_from_slice(&alloy_dyn_abi::DynSolValue::Tuple(args).abi_encode_params());
    hexs(&c)
}

#[test]
fn messages_signed_through_json_rpc_verify_in_a_contract_and_not_with_ecrecover() {
    use alloy_dyn_abi::DynSolValue::{Address as A, Bytes as Raw, String as Text};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let signer: Address = serde_json::from_value(node.ok("eth_accounts", json!([]))[0].clone()).unwrap();
    let artifact: Value = serde_json::from_str(include_str!("../contracts/SignatureCheck.json")).unwrap();
    let hash = node.ok("eth_sendTransaction", json!([{"from": signer, "data": artifact["bytecode"]}]));
    let contract: Address = serde_json::from_value(node.receipt(&hash)["contractAddress"].clone()).unwrap();
    let returns = |input: String| -> Address {
        let out = unhex(&node.ok("eth_call", json!([{"to": contract, "input": input}, "latest"])));
        Address::from_slice(&out[12..32])
    };

    // personal_sign and eth_sign: keys (2,210) ‖ dual signature (3,087) over the EIP-191 digest.
    let message = b"Sign in to Qoin Mail at 2026-11-22".to_vec();
    let personal = unhex(&node.ok("personal_sign", json!([hexs(&message), signer])));
    let eth_signed = unhex(&node.ok("eth_sign", json!([signer, hexs(&message)])));
    for signed in [&personal, &eth_signed] {
        assert_eq!(signed.len(), 5_297);
        let recover =
            abi_call("recoverPersonal(bytes,bytes)", vec![Raw(message.clone()), Raw(signed.clone())]);
        assert_eq!(returns(recover), signer, "the contract recovers the node's account");
        // Another message, a changed signature byte, or another key: nobody.
        let other =
            abi_call("recoverPersonal(bytes,bytes)", vec![Raw(b"Sign in".to_vec()), Raw(signed.clone())]);
        assert_eq!(returns(other), Address::ZERO);
        let mut bent = signed.clone();
        bent[3_000] ^= 1;
        assert_eq!(
            returns(abi_call("recoverPersonal(bytes,bytes)", vec![Raw(message.clone()), Raw(bent)])),
            Address::ZERO
        );
        // ECDSA-only code gets nothing from it.
        let ecdsa =
            abi_call("ecrecoverPersonal(bytes,bytes)", vec![Raw(message.clone()), Raw(signed.clone())]);
        assert_eq!(returns(ecdsa), Address::ZERO);
    }
    let other_key: Address = serde_json::from_value(node.ok("eth_accounts", json!([]))[1].clone()).unwrap();
    let mut swapped = unhex(&node.ok("personal_sign", json!([hexs(&message), other_key])))[..2_210].to_vec();
    swapped.extend_from_slice(&personal[2_210..]);
    assert_eq!(
        returns(abi_call("recoverPersonal(bytes,bytes)", vec![Raw(message.clone()), Raw(swapped)])),
        Address::ZERO
    );

    // eth_signTypedData_v4: the EIP-712 digest the contract computes for its Mail type.
    let chain_id = quantity(&node.ok("eth_chainId", json!([])));
    let to = Address::repeat_byte(0x7e);
    let typed = json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}
            ],
            "Mail": [{"name": "to", "type": "address"}, {"name": "contents", "type": "string"}]
        },
        "primaryType": "Mail",
        "domain": {"name": "Qoin Mail", "version": "1", "chainId": chain_id, "verifyingContract": contract},
        "message": {"to": to, "contents": "post-quantum hello"}
    });
    // As an object, and as the JSON text wallets send.
    for form in [typed.clone(), json!(typed.to_string())] {
        let signed = unhex(&node.ok("eth_signTypedData_v4", json!([signer, form])));
        let mail = |contents: &str| {
            abi_call(
                "recoverMail(address,string,bytes)",
                vec![A(to), Text(contents.into()), Raw(signed.clone())],
            )
        };
        assert_eq!(returns(mail("post-quantum hello")), signer);
        assert_eq!(returns(mail("post-quantum hell0")), Address::ZERO);
    }

    // Refusals: a key the node does not hold, another chain's domain, malformed typed data.
    let e = node.call("personal_sign", json!([hexs(&message), Address::repeat_byte(1)])).unwrap_err();
    assert_eq!((e["code"].clone(), e["message"].clone()), (json!(-32000), json!("unknown account")));
    let mut foreign = typed;
    foreign["domain"]["chainId"] = json!(1);
    let e = node.call("eth_signTypedData_v4", json!([signer, foreign])).unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
    let e =
        node.call("eth_signTypedData_v4", json!([signer, {"types": {}, "primaryType": "Mail"}])).unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
    let e = node.call("personal_sign", json!(["not hex", signer])).unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
}

/// Reads WebSocket text messages as JSON until `done` says so; panics after 60 s of silence.
fn ws_read_until(ws: &mut tungstenite::WebSocket<TcpStream>, mut done: impl FnMut(&Value) -> bool) {
    ws.get_mut().set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) if done(&serde_json::from_str(t.as_str()).unwrap()) => return,
            tungstenite::Message::Close(c) => panic!("connection closed: {c:?}"),
            _ => {}
        }
    }
}

#[test]
fn a_subscriber_that_stops_reading_is_dropped_with_a_reason_and_never_holds_up_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let stream = TcpStream::connect(node.addr).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{}/", node.addr), stream).unwrap();
    let subs = qoin_rpc::MAX_SUBSCRIPTIONS_PER_CONNECTION as usize;
    for i in 0..subs {
        let sub = json!({"jsonrpc": "2.0", "id": i, "method": "eth_subscribe", "params": ["newHeads"]});
        ws.send(tungstenite::Message::text(sub.to_string())).unwrap();
    }
    let mut ids = std::collections::HashSet::new();
    ws_read_until(&mut ws, |m| {
        if let Some(id) = m["result"].as_str() {
            ids.insert(id.to_string());
        }
        ids.len() == subs
    });
    // The subscriber reads nothing more while ~128 notifications per block pile up: the kernel's
    // buffers fill, then the connection's queue. Every mining call is still answered (a node
    // that waited for the subscriber would hang here).
    for _ in 0..40 {
        node.ok("anvil_mine", json!(["0x10"]));
    }
    assert_eq!(node.ok("eth_blockNumber", json!([])), "0x280");
    // Reading again: the subscriptions that found the queue full were ended with the reason,
    // after what was queued. Which ones did depends on timing: a task that had sent all its
    // blocks before the queue filled (or, on a loaded machine, one still behind when reading
    // drains it) sends on normally, up to the last block; every subscription ends one way or
    // the other, and at least one by the drop.
    let (mut closed, mut caught_up) = (std::collections::HashSet::new(), std::collections::HashSet::new());
    ws_read_until(&mut ws, |m| {
        let p = &m["params"];
        let id = p["subscription"].as_str().unwrap_or_default().to_string();
        if let Some(e) = p["error"].as_str() {
            assert!(e.contains("subscriber too slow"), "{m}");
            closed.insert(id);
        } else if p["result"]["number"] == "0x280" {
            caught_up.insert(id);
        }
        closed.len() + caught_up.len() == subs
    });
    assert!(!closed.is_empty(), "no subscription was dropped ({} caught up)", caught_up.len());
    assert_eq!(&closed | &caught_up, ids);
    // The connection itself still serves.
    let again = json!({"jsonrpc": "2.0", "id": "again", "method": "eth_subscribe", "params": ["newHeads"]});
    ws.send(tungstenite::Message::text(again.to_string())).unwrap();
    ws_read_until(&mut ws, |m| m["id"] == "again" && m["result"].is_string());
    node.ok("evm_mine", json!([]));
    ws_read_until(&mut ws, |m| m["params"]["result"]["number"] == "0x281");
}

#[test]
fn calls_estimates_and_traces_take_state_overrides_for_that_request_only() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (dev0, counter) = deploy_counter(&node);
    let count = json!({"to": counter, "data": hexs(&selector("count()"))});
    let word_hex = |v: u64| hexs(&word(v));

    // stateDiff patches slot 0 (`count`); state replaces the whole storage (slot 0 then reads 0).
    let diff = json!({ counter.as_str().unwrap(): {"stateDiff": {"0x0000000000000000000000000000000000000000000000000000000000000000": word_hex(99)}} });
    assert_eq!(node.ok("eth_call", json!([count, "latest", diff])), word_hex(99));
    let other = hexs(&B256::with_last_byte(7).0);
    let all = json!({ counter.as_str().unwrap(): {"state": { other: word_hex(1) }} });
    assert_eq!(node.ok("eth_call", json!([count, "latest", all])), word_hex(0));
    assert_eq!(node.ok("eth_call", json!([count, "latest"])), word_hex(5), "nothing was written");

    // Code at an empty address (returns 42), and a balance for an empty sender.
    let empty = Address::repeat_byte(0x5a);
    let code = json!({ format!("{empty:#x}"): {"code": "0x602a60005260206000f3"} });
    assert_eq!(node.ok("eth_call", json!([{"to": empty}, "latest", code])), word_hex(42));
    let poor = Address::repeat_byte(0x5b);
    let pay = json!({"from": poor, "to": dev0, "value": "0xde0b6b3a7640000", "maxFeePerGas": "0x3b9aca00"});
    let e = node.call("eth_estimateGas", json!([pay, "latest"])).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("insufficient funds"), "{e}");
    let rich = json!({ format!("{poor:#x}"): {"balance": "0x56bc75e2d63100000"} });
    assert_eq!(node.ok("eth_estimateGas", json!([pay, "latest", rich])), "0x5208");

    // debug_traceCall: the callTracer sees the overridden code's answer, the prestateTracer
    // the overridden balance.
    let traced = node.ok(
        "debug_traceCall",
        json!([{"to": empty}, "latest", {"tracer": "callTracer", "stateOverrides": code}]),
    );
    assert_eq!(traced["output"], word_hex(42), "{traced}");
    let pre = node
        .ok("debug_traceCall", json!([pay, "latest", {"tracer": "prestateTracer", "stateOverrides": rich}]));
    assert_eq!(pre[format!("{poor:#x}")]["balance"], "0x56bc75e2d63100000", "{pre}");

    // Refused: state and stateDiff together, and malformed overrides.
    let both = json!({ counter.as_str().unwrap(): {"state": {}, "stateDiff": {}} });
    let e = node.call("eth_call", json!([count, "latest", both])).unwrap_err();
    assert_eq!(e["code"], -32602);
    assert!(e["message"].as_str().unwrap().contains("has both 'state' and 'stateDiff'"), "{e}");
    let e = node.call("eth_call", json!([count, "latest", {"0x12": {}}])).unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
    // Code revm could not load (0xef01 that is not a whole EIP-7702 delegation) is a bad
    // parameter, not a crash; block overrides are refused rather than ignored.
    let bad = json!({ format!("{empty:#x}"): {"code": "0xef01"} });
    let e = node.call("eth_call", json!([{"to": empty}, "latest", bad])).unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
    let e = node.call("eth_call", json!([count, "latest", {}, {"number": "0x10"}])).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("block overrides"), "{e}");
    assert_eq!(node.ok("eth_call", json!([count, "latest", {}, null])), word_hex(5));
}
