//! Parameter parsing and error shapes; the methods themselves are exercised end to end
//! through the real server by `tests/e2e/rpc.rs`.

use super::call::revert_reason;
use super::convert::{quantity_u256, quantity_u64, BlockTag};
use super::{FILTER_METHODS, METHODS};
use alloy_primitives::{B256, U256};
use serde_json::json;

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
    let mut names: Vec<&str> =
        METHODS.iter().map(|(n, _)| *n).chain(FILTER_METHODS.iter().map(|(n, _)| *n)).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), METHODS.len() + FILTER_METHODS.len());
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
