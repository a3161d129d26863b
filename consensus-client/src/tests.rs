//! Validation on mined headers, rewards, and sampling against real execution state
//! (honest and lying).

use crate::params::ChainParams;
use crate::sampling::{self, SamplingError};
use crate::validate::{validate_header, validate_payload, BlockMeta, InvalidBlock};
use alloy_primitives::{Address, B256, U256};
use proptest::prelude::*;
use qoin_crypto::{Domain, Keypair};
use qoin_engine_api::{Attributes, EngineBackend, Payload};
use qoin_primitives::{Genesis, GenesisAccount, Header, PowParams, RewardParams, TxKind, TxRequest};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const T0: u64 = 1_767_225_600;

fn genesis(alloc: &[Address]) -> Genesis {
    Genesis {
        chain_id: 9,
        timestamp: T0,
        gas_limit: 30_000_000,
        base_fee_per_gas: U256::from(7u8),
        target_block_time_ms: 1000,
        pow: PowParams { initial_equations: 8, initial_mantissa: 0, half_life_secs: 120 },
        rewards: RewardParams::default(),
        alloc: alloc
            .iter()
            .map(|a| (*a, GenesisAccount { balance: U256::from(10u64.pow(12)), ..Default::default() }))
            .collect(),
    }
}

fn params() -> ChainParams {
    ChainParams::new(&genesis(&[]), B256::repeat_byte(0x6e), B256::repeat_byte(0x5e)).unwrap()
}

/// A sealed child of `parent` by `miner` at `ts_ms`.
fn mine(parent: &BlockMeta, p: &ChainParams, miner: &Keypair, ts_ms: u64, siblings: &[B256]) -> Header {
    let mut h = Header {
        parent_hash: parent.hash,
        siblings: siblings.to_vec(),
        height: parent.height + 1,
        timestamp_ms: ts_ms,
        difficulty: p.child_difficulty(parent.height, parent.timestamp_ms).to_compact(),
        payload_hash: B256::repeat_byte(0x11),
        state_root: B256::repeat_byte(0x22),
        transactions_root: qoin_primitives::transactions_root(&[]).unwrap(),
        coinbase: miner.address(),
        miner_keys: miner.public().clone(),
        extra_nonce: 0,
        ticket: miner.sign(Domain::MiningTicket, b""),
        solution: [0; 16],
    };
    h.sign_ticket(miner).unwrap();
    qoin_kernels::seal(&mut h, &qoin_kernels::Portable, &AtomicBool::new(false)).unwrap();
    h
}

#[test]
fn a_mined_header_validates_and_each_broken_rule_is_named() {
    let p = params();
    let g = BlockMeta::genesis(&p);
    let miner = Keypair::from_seed(&[7; 32]);
    let t = p.genesis_time_ms + 1000;
    let h = mine(&g, &p, &miner, t, &[]);
    let meta = validate_header(&h, &g, &[], &p, t).unwrap();
    assert_eq!(meta.height, 1);
    assert_eq!(meta.work, U256::from(1u64 << 32) << 8);

    let mut wrong_height = h.clone();
    wrong_height.height = 2;
    assert!(matches!(validate_header(&wrong_height, &g, &[], &p, t), Err(InvalidBlock::Height { .. })));
    let mut early = h.clone();
    early.timestamp_ms = g.timestamp_ms;
    assert!(matches!(validate_header(&early, &g, &[], &p, t), Err(InvalidBlock::Time(_))));
    assert!(
        matches!(validate_header(&h, &g, &[], &p, t - 20_000), Err(InvalidBlock::Time(_))),
        "15 s in the future"
    );
    let mut easy = h.clone();
    easy.difficulty = qoin_pow::Difficulty::new(9, 0).unwrap().to_compact();
    assert!(matches!(validate_header(&easy, &g, &[], &p, t), Err(InvalidBlock::Difficulty { .. })));
    let mut stolen = h.clone();
    stolen.coinbase = Address::repeat_byte(0x66);
    assert!(validate_header(&stolen, &g, &[], &p, t).is_err(), "a changed coinbase breaks seal and ticket");
    let mut bad_solution = h.clone();
    bad_solution.solution[0] ^= 1;
    assert!(matches!(validate_header(&bad_solution, &g, &[], &p, t), Err(InvalidBlock::Pow(_))));
    let other = BlockMeta { hash: B256::repeat_byte(1), ..g };
    assert!(matches!(validate_header(&h, &other, &[], &p, t), Err(InvalidBlock::WrongParent { .. })));
}

#[test]
fn sibling_references_follow_the_generation_rule() {
    let p = params();
    let g = BlockMeta::genesis(&p);
    let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
    let t = p.genesis_time_ms;
    let parent_h = mine(&g, &p, &a, t + 1000, &[]);
    let parent = validate_header(&parent_h, &g, &[], &p, t + 1000).unwrap();
    let sib_h = mine(&g, &p, &b, t + 1100, &[]);
    let sib = validate_header(&sib_h, &g, &[], &p, t + 1100).unwrap();
    let child = mine(&parent, &p, &a, t + 2000, &[sib.hash]);
    assert!(validate_header(&child, &parent, std::slice::from_ref(&sib), &p, t + 2000).is_ok());
    // The parent itself is no sibling; neither is a block at another height.
    let selfref = mine(&parent, &p, &a, t + 2000, &[parent.hash]);
    assert!(matches!(
        validate_header(&selfref, &parent, std::slice::from_ref(&parent), &p, t + 2000),
        Err(InvalidBlock::Sibling { why: "is the parent itself", .. })
    ));
    let twice = mine(&parent, &p, &a, t + 2000, &[sib.hash, sib.hash]);
    assert!(matches!(
        validate_header(&twice, &parent, &[sib.clone(), sib], &p, t + 2000),
        Err(InvalidBlock::Sibling { why: "referenced twice", .. })
    ));
    // Rewards: the sibling's miner gets an eighth, taken from the block's reward.
    let credits = p.credits(2, a.address(), &[b.address()]);
    let r = p.rewards.block_reward(2, 1000);
    assert_eq!(credits[1].amount, r / U256::from(8u8));
    assert_eq!(credits[0].amount + credits[1].amount, r, "issuance stays on schedule");
    assert_eq!(r, U256::from(427_789u64));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_byte_sequence_panics_decoding_or_validation(bytes in proptest::collection::vec(any::<u8>(), 0..12_000)) {
        let p = params();
        let g = BlockMeta::genesis(&p);
        if let Ok(h) = Header::decode(&bytes) {
            let _ = validate_header(&h, &g, &[], &p, u64::MAX);
        }
    }

    #[test]
    fn flipped_bytes_of_a_valid_header_never_validate_as_another_block(pos in 0usize..10_000, bit in 0u8..8) {
        let p = params();
        let g = BlockMeta::genesis(&p);
        let miner = Keypair::from_seed(&[3; 32]);
        let t = p.genesis_time_ms + 1000;
        let h = mine(&g, &p, &miner, t, &[]);
        let mut bytes = h.encode().unwrap();
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        if let Ok(mutated) = Header::decode(&bytes) {
            prop_assert!(validate_header(&mutated, &g, &[], &p, t).is_err());
        }
    }
}

// ---- sampling against the real execution client's state ----

struct El {
    _dir: tempfile::TempDir,
    engine: qoin_execution::engine::EngineHandler,
    node: Arc<qoin_execution::node::Node>,
}

fn el(keys: &[Keypair]) -> El {
    use qoin_execution::{chain::Chain, node::LocalMining, node::Node};
    let dir = tempfile::tempdir().unwrap();
    let addrs: Vec<Address> = keys.iter().map(Keypair::address).collect();
    let opts = qoin_store::StoreOptions { max_size: 1 << 30, ..Default::default() };
    let chain = Chain::open(dir.path(), genesis(&addrs), opts).unwrap();
    let node = Arc::new(Node::new(chain, Vec::new(), LocalMining::Off, Address::ZERO));
    El { _dir: dir, engine: qoin_execution::engine::EngineHandler::new(node.clone()), node }
}

fn transfer(k: &Keypair, nonce: u64, to: Address, value: u64) -> qoin_primitives::SignedTx {
    TxRequest {
        chain_id: 9,
        nonce,
        max_priority_fee_per_gas: 3,
        max_fee_per_gas: 1000,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: U256::from(value),
        ..Default::default()
    }
    .sign(k)
}

/// Builds a payload of `txs` on the genesis of `e` crediting `miner`.
fn build(e: &El, txs: &[qoin_primitives::SignedTx], miner: Address) -> (Payload, B256) {
    for t in txs {
        e.node.submit(t.clone()).unwrap();
    }
    let head = e.node.chain().head().unwrap();
    let attrs = Attributes {
        timestamp_ms: (T0 + 1) * 1000,
        fee_recipient: miner,
        credits: vec![qoin_engine_api::Credit { address: miner, amount: U256::from(427_789u64) }],
        prev_randao: crate::params::prev_randao(&head.hash()),
    };
    let (_, id) = e.engine.forkchoice_updated(head.hash(), None, Some(attrs)).unwrap();
    (e.engine.get_payload(id.unwrap()).unwrap().0, head.state_root)
}

fn sample(e: &El, payload: &Payload, parent_root: B256, k: usize) -> Result<usize, SamplingError> {
    let plan = sampling::plan(payload, &sampling::fresh_seed(&payload.block_hash), k)?;
    let before = e.engine.account_proofs(parent_root, &plan.fetch).unwrap();
    let after = e.engine.account_proofs(payload.state_root, &plan.fetch).unwrap();
    sampling::check(&plan, payload, parent_root, &before, &after)
}

#[test]
fn sampling_passes_an_honest_execution_client_and_catches_one_that_lies_about_an_account() {
    let keys: Vec<Keypair> = (1..=3u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
    let miner = Address::repeat_byte(0xbe);
    let txs = vec![
        transfer(&keys[0], 0, keys[1].address(), 5_000),
        transfer(&keys[1], 0, Address::repeat_byte(0x77), 1_000),
        transfer(&keys[0], 1, Address::repeat_byte(0x78), 7),
    ];

    // Honest: the payload executes as built; every check passes and balances are recomputed.
    let honest = el(&keys);
    let (payload, parent_root) = build(&honest, &txs, miner);
    assert_eq!(honest.engine.new_payload(payload.clone()).unwrap().status, qoin_engine_api::Status::Valid);
    let recomputed = sample(&honest, &payload, parent_root, 8).unwrap();
    assert_eq!(recomputed, 5, "2 senders (one also a recipient) + 3 others (2 recipients, the miner)");

    // A lying execution client: it says VALID to a payload whose state gives one account
    // (sender 1) 1,000,000 Shor more than the transactions allow, and answers with proofs
    // from that consistent but wrong state.
    let liar = el(&keys);
    for t in &txs {
        liar.node.submit(t.clone()).unwrap();
    }
    let chain = liar.node.chain();
    let head = chain.head().unwrap();
    let env = chain.child_env(&head, T0 + 1, miner, head.hash());
    let mut credits = vec![qoin_execution::block::Credit { address: miner, amount: U256::from(427_789u64) }];
    credits
        .push(qoin_execution::block::Credit { address: keys[1].address(), amount: U256::from(1_000_000u64) });
    let pending =
        liar.node.pool().pending(&qoin_execution::node::LatestState(&chain.store().read().unwrap()), 7);
    let executed = chain.build(&env, pending, credits).unwrap();
    chain.commit_built(&executed).unwrap();
    let mut lie = payload.clone();
    lie.state_root = executed.header.state_root;
    // The CL's own checks of the payload against the header still pass: credits are the
    // rule's, transactions the same.
    assert_eq!(lie.credits, payload.credits);
    let caught = sample(&liar, &lie, parent_root, 8).unwrap_err();
    match caught {
        SamplingError::Balance { address, after, expected } => {
            assert_eq!(address, keys[1].address());
            assert_eq!(after - expected, U256::from(1_000_000u64));
        }
        other => panic!("expected a balance mismatch, got {other}"),
    }

    // A liar that edits an answer without a matching trie fails the proof check instead.
    let plan = sampling::plan(&payload, &B256::ZERO, 8).unwrap();
    let before = honest.engine.account_proofs(parent_root, &plan.fetch).unwrap();
    let mut after = honest.engine.account_proofs(payload.state_root, &plan.fetch).unwrap();
    after[0].balance += U256::from(1u8);
    assert!(matches!(
        sampling::check(&plan, &payload, parent_root, &before, &after),
        Err(SamplingError::BadProof { .. })
    ));
    after[0].balance -= U256::from(1u8);
    after[0].nonce += 1;
    assert!(sampling::check(&plan, &payload, parent_root, &before, &after).is_err());
}

#[test]
fn the_payload_must_be_the_one_the_header_commits_to() {
    let keys = [Keypair::from_seed(&[1; 32])];
    let e = el(&keys);
    let miner = Keypair::from_seed(&[5; 32]);
    let (payload, _) = build(&e, &[transfer(&keys[0], 0, Address::repeat_byte(1), 1)], miner.address());
    let genesis_el = e.node.chain().header(0).unwrap().unwrap();
    let p =
        ChainParams::new(&genesis(&[keys[0].address()]), genesis_el.hash(), genesis_el.state_root).unwrap();
    let g = BlockMeta::genesis(&p);
    let txs: Vec<Vec<u8>> = payload.transactions.iter().map(|t| t.to_vec()).collect();
    let header = Header {
        parent_hash: g.hash,
        siblings: vec![],
        height: 1,
        timestamp_ms: (T0 + 1) * 1000,
        difficulty: 0,
        payload_hash: payload.block_hash,
        state_root: payload.state_root,
        transactions_root: qoin_primitives::transactions_root(&txs).unwrap(),
        coinbase: miner.address(),
        miner_keys: miner.public().clone(),
        extra_nonce: 0,
        ticket: miner.sign(Domain::MiningTicket, b""),
        solution: [0; 16],
    };
    // The test payload used a flat credit; the rule's credit for height 1 is the same.
    validate_payload(&header, &payload, &g, &[], &p).unwrap();
    let mut more = payload.clone();
    more.credits[0].amount += U256::from(1u8);
    assert!(
        matches!(validate_payload(&header, &more, &g, &[], &p), Err(InvalidBlock::Payload(m)) if m.contains("credits"))
    );
    let mut dropped = payload;
    dropped.transactions.clear();
    assert!(validate_payload(&header, &dropped, &g, &[], &p).is_err());
}
