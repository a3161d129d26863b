//! Parameter parsing and error shapes; the methods themselves are exercised end to end
//! through the real server by `tests/e2e/rpc.rs`.

use super::call::revert_reason;
use super::convert::{quantity_u256, quantity_u64, BlockTag};
use super::{Gate, FILTER_METHODS, MAX_HEAVY_WAITING, METHODS, RAW_METHODS};
use alloy_primitives::{B256, U256};
use serde_json::json;
use std::sync::Arc;

#[test]
fn block_tags_parse_like_geth() {
    assert_eq!(BlockTag::parse(&json!("latest")).unwrap(), BlockTag::Latest);
    assert_eq!(BlockTag::parse(&json!("safe")).unwrap(), BlockTag::Latest);
    assert_eq!(BlockTag::parse(&json!("pending")).unwrap(), BlockTag::Pending);
    assert_eq!(BlockTag::parse(&json!("earliest")).unwrap(), BlockTag::Number(0));
    assert_eq!(BlockTag::parse(&json!("0x1f")).unwrap(), BlockTag::Number(31));
    let h = B256::repeat_byte(7);
    assert_eq!(BlockTag::parse(&json!({ "blockHash": h })).unwrap(), BlockTag::Hash(h));
    assert_eq!(BlockTag::parse(&json!({ "blockNumber": "0x2" })).unwrap(), BlockTag::Number(2));
    for bad in
        [json!("newest"), json!("0x"), json!("12"), json!({}), json!(true), json!("0x11111111111111111")]
    {
        let e = BlockTag::parse(&bad).unwrap_err();
        assert_eq!(e.code, -32602, "{bad}");
    }
}

#[test]
fn quantities_are_checked() {
    assert_eq!(quantity_u64(&json!("0x0"), "x").unwrap(), 0);
    assert_eq!(quantity_u64(&json!(12), "x").unwrap(), 12);
    assert!(quantity_u64(&json!("0xzz"), "x").is_err());
    assert!(quantity_u64(&json!(-1), "x").is_err());
    assert_eq!(quantity_u256(&json!(format!("0x{}", "f".repeat(64))), "x").unwrap(), U256::MAX);
    assert!(quantity_u256(&json!(format!("0x1{}", "0".repeat(64))), "x").is_err());
}

#[test]
fn revert_reasons_decode_error_and_panic_and_ignore_garbage() {
    // Error("no 42")
    let data = hex::decode(
        "08c379a0\
         0000000000000000000000000000000000000000000000000000000000000020\
         0000000000000000000000000000000000000000000000000000000000000005\
         6e6f203432000000000000000000000000000000000000000000000000000000",
    )
    .unwrap();
    assert_eq!(revert_reason(&data).as_deref(), Some("no 42"));
    let mut panic = hex::decode("4e487b71").unwrap();
    panic.extend_from_slice(&U256::from(0x11).to_be_bytes::<32>());
    assert_eq!(revert_reason(&panic).as_deref(), Some("panic: 0x11"));
    // A custom error, a truncated Error(string), and a hostile offset decode to nothing.
    assert_eq!(revert_reason(&[0xaa, 0xbb, 0xcc, 0xdd, 1]), None);
    assert_eq!(revert_reason(&data[..40]), None);
    let mut hostile = data;
    hostile[4..36].copy_from_slice(&[0xff; 32]);
    assert_eq!(revert_reason(&hostile), None);
}

#[test]
fn method_names_are_distinct() {
    let mut names: Vec<&str> = METHODS
        .iter()
        .map(|(n, _)| *n)
        .chain(FILTER_METHODS.iter().map(|(n, _)| *n))
        .chain(RAW_METHODS.iter().map(|(n, _)| *n))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), METHODS.len() + FILTER_METHODS.len() + RAW_METHODS.len());
}

#[test]
fn a_log_scan_past_its_deadline_stops_at_a_block_boundary_and_says_where() {
    use qoin_el_node::{LocalMining, Node};
    use std::time::{Duration, Instant};
    let keys = vec![qoin_crypto::Keypair::from_seed(&[1; 32])];
    let genesis = qoin_el_chain::test_utils::funded_genesis(&keys, 30_000_000);
    let dir = tempfile::tempdir().unwrap();
    let options = qoin_store::StoreOptions { max_size: 1 << 30, ..Default::default() };
    let chain = qoin_el_chain::Chain::open(dir.path(), genesis, options).unwrap();
    let node = Node::new(chain, Vec::new(), LocalMining::Off, alloy_primitives::Address::ZERO);
    for _ in 0..5 {
        node.produce(true).unwrap();
    }
    let tx = node.chain().store().read().unwrap();
    let all = super::eth::LogFilter::parse(&serde_json::Map::new()).unwrap();
    let later = Instant::now() + Duration::from_secs(60);
    assert_eq!(super::eth::logs_in(&tx, &all, 1, 5, 10, later).unwrap(), (vec![], None), "read in full");
    let past = Instant::now() - Duration::from_millis(1);
    let (logs, stopped) = super::eth::logs_in(&tx, &all, 1, 5, 10, past).unwrap();
    assert!(logs.is_empty());
    assert_eq!(stopped, Some(1), "one block read, then the deadline; the caller goes on from 2");
}

#[test]
fn go_durations_parse_like_go() {
    use super::trace::go_duration;
    use std::time::Duration;
    assert_eq!(go_duration("5s"), Some(Duration::from_secs(5)));
    assert_eq!(go_duration("300ms"), Some(Duration::from_millis(300)));
    assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1_500)));
    assert_eq!(go_duration("2m30s"), Some(Duration::from_secs(150)));
    assert_eq!(go_duration("10us"), Some(Duration::from_micros(10)));
    assert_eq!(go_duration("0"), Some(Duration::ZERO));
    for bad in ["", "5", "s", "5 s", "forever", "-1s", "1e3s", "5x"] {
        assert_eq!(go_duration(bad), None, "{bad:?}");
    }
}

#[test]
fn a_recorded_step_costs_no_more_than_the_trace_estimate_assumes() {
    // The memory cap on struct-logger traces counts each step at STEP_BYTES plus its copies.
    let step = std::mem::size_of::<revm_inspectors::tracing::types::CallTraceStep>();
    assert!(step <= super::call::STEP_BYTES, "a step is {step} bytes");
}

/// A dev node (blocks only when the test produces them) with one funded key and a counter
/// at `counter`: each call adds one to slot 0 and returns the new value.
fn counter_node(
    dir: &std::path::Path,
    counter: alloy_primitives::Address,
) -> (qoin_el_node::Node, qoin_crypto::Keypair) {
    use qoin_el_node::{Edit, LocalMining, Node};
    let key = qoin_crypto::Keypair::from_seed(&[1; 32]);
    let genesis = qoin_el_chain::test_utils::funded_genesis(std::slice::from_ref(&key), 30_000_000);
    let options = qoin_store::StoreOptions { max_size: 1 << 30, ..Default::default() };
    let chain = qoin_el_chain::Chain::open(dir, genesis, options).unwrap();
    let node =
        Node::new(chain, Vec::new(), LocalMining::Interval(3_600_000), alloy_primitives::Address::ZERO);
    // PUSH1 0 SLOAD PUSH1 1 ADD DUP1 PUSH1 0 SSTORE PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
    let code = hex::decode("6000546001018060005560005260206000f3").unwrap();
    node.edit_account(counter, Edit::Code(code.into())).unwrap();
    (node, key)
}

fn bump(
    key: &qoin_crypto::Keypair,
    nonce: u64,
    counter: alloy_primitives::Address,
) -> qoin_primitives::SignedTx {
    qoin_primitives::TxRequest {
        chain_id: 9,
        nonce,
        max_priority_fee_per_gas: 1,
        max_fee_per_gas: 100_000_000_000,
        gas_limit: 100_000,
        to: qoin_primitives::TxKind::Call(counter),
        ..Default::default()
    }
    .sign(key)
}

fn raw(r: Result<Box<serde_json::value::RawValue>, super::RpcError>) -> serde_json::Value {
    serde_json::from_str(r.unwrap().get()).unwrap()
}

#[test]
fn traces_replay_the_transactions_before_the_traced_one_in_its_block() {
    use super::convert::Args;
    let dir = tempfile::tempdir().unwrap();
    let counter = alloy_primitives::Address::repeat_byte(0xc0);
    let (node, key) = counter_node(dir.path(), counter);
    let (first, second) = (bump(&key, 0, counter), bump(&key, 1, counter));
    node.submit(first.clone()).unwrap();
    node.submit(second.clone()).unwrap();
    let block = node.produce(false).unwrap().unwrap();
    assert_eq!(block.transactions.len(), 2, "both in one block");
    let number = json!(format!("{:#x}", block.header.number));

    // The second transaction reads 1 (left by the first, in the same block) and writes 2.
    let diff = json!({"tracer": "prestateTracer", "tracerConfig": {"diffMode": true}});
    let trace = raw(super::trace::trace_transaction(&node, &Args::new(vec![json!(second.id()), diff])));
    let slot = format!("0x{}", hex::encode(B256::ZERO));
    assert_eq!(
        trace["pre"][counter.to_string().to_lowercase()]["storage"][&slot],
        json!(format!("0x{}", hex::encode(B256::with_last_byte(1)))),
        "{trace}"
    );
    assert_eq!(
        trace["post"][counter.to_string().to_lowercase()]["storage"][&slot],
        json!(format!("0x{}", hex::encode(B256::with_last_byte(2)))),
        "{trace}"
    );

    // The block's trace: one entry per transaction, in order, each seeing the one before.
    let calls = json!({"tracer": "callTracer"});
    let traces = raw(super::trace::trace_block_by_number(&node, &Args::new(vec![number, calls])));
    let traces = traces.as_array().unwrap();
    assert_eq!(traces.len(), 2);
    for (i, (t, tx)) in traces.iter().zip([&first, &second]).enumerate() {
        assert_eq!(t["txHash"], json!(tx.id()));
        assert_eq!(
            t["result"]["output"],
            json!(format!("0x{}", hex::encode(B256::with_last_byte(i as u8 + 1)))),
            "{t}"
        );
        assert_eq!(t["result"]["to"], json!(counter));
    }
    // The struct logger's gas is the receipt's.
    let logs = raw(super::trace::trace_transaction(&node, &Args::new(vec![json!(first.id())])));
    let receipt_gas = block.transactions[0].1;
    assert_eq!(logs["gas"], json!(receipt_gas), "{}", logs["gas"]);
    assert_eq!(logs["structLogs"][0]["op"], "PUSH1");
    assert_eq!(logs["failed"], false);
}

#[test]
fn raw_headers_hash_to_their_block_hashes() {
    use super::convert::Args;
    let dir = tempfile::tempdir().unwrap();
    let counter = alloy_primitives::Address::repeat_byte(0xc0);
    let (node, key) = counter_node(dir.path(), counter);
    node.submit(bump(&key, 0, counter)).unwrap();
    let block = node.produce(false).unwrap().unwrap();
    for tag in [json!(format!("{:#x}", block.header.number)), json!("latest"), json!(block.header.hash())] {
        let raw = super::eth::raw_header(&node, &Args::new(vec![tag.clone()])).unwrap();
        let bytes: alloy_primitives::Bytes = serde_json::from_value(raw).unwrap();
        assert_eq!(alloy_primitives::keccak256(&bytes), block.header.hash(), "{tag}");
    }
    let genesis = super::eth::raw_header(&node, &Args::new(vec![json!("0x0")])).unwrap();
    assert_ne!(genesis, serde_json::Value::Null);
    let unknown = super::eth::raw_header(&node, &Args::new(vec![json!("0x99")])).unwrap();
    assert_eq!(unknown, serde_json::Value::Null);
    assert!(super::eth::raw_header(&node, &Args::new(vec![json!("junk")])).is_err());
}

#[test]
fn heavy_requests_beyond_the_waiting_room_get_32005_at_once_and_the_rest_get_their_turn() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let gate = Arc::new(Gate { turns: tokio::sync::Semaphore::new(1), waiting: Default::default() });
        let held = gate.enter().await.unwrap();
        let waiters: Vec<_> = (0..MAX_HEAVY_WAITING)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.enter().await.map(drop).is_ok() })
            })
            .collect();
        // Let every waiter reach the semaphore.
        while gate.waiting.load(std::sync::atomic::Ordering::SeqCst) < MAX_HEAVY_WAITING {
            tokio::task::yield_now().await;
        }
        let refused = gate.enter().await.unwrap_err();
        assert_eq!(refused.code(), -32005);
        assert!(refused.message().starts_with("too many requests"), "{}", refused.message());
        drop(held);
        for w in waiters {
            assert!(w.await.unwrap(), "a waiting request gets its turn");
        }
        assert!(gate.enter().await.is_ok(), "the room empties: the next is served");
    });
}
