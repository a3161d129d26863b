//! The engine backend over a real chain: building, importing, statuses, reorgs, proofs.

use super::*;
use qoin_crypto::Keypair;
use qoin_engine_api::Status;
use qoin_primitives::{TxKind, TxRequest};
use qoin_store::StoreOptions;

const T0: u64 = 1_767_225_600;

fn node(keys: &[Keypair]) -> (tempfile::TempDir, EngineHandler) {
    let genesis = qoin_el_chain::test_utils::funded_genesis(keys, 30_000_000);
    let dir = tempfile::tempdir().unwrap();
    let chain =
        Chain::open(dir.path(), genesis, StoreOptions { max_size: 1 << 30, ..Default::default() }).unwrap();
    let node = Arc::new(Node::new(chain, Vec::new(), LocalMining::Off, Address::ZERO));
    (dir, EngineHandler::new(node))
}

fn transfer(k: &Keypair, nonce: u64, value: u64) -> SignedTx {
    TxRequest {
        chain_id: 9,
        nonce,
        max_priority_fee_per_gas: 2,
        max_fee_per_gas: 10_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(Address::repeat_byte(0x77)),
        value: U256::from(value),
        ..Default::default()
    }
    .sign(k)
}

fn attrs(ts_ms: u64, miner: Address, reward: u64) -> Attributes {
    Attributes {
        timestamp_ms: ts_ms,
        fee_recipient: miner,
        credits: vec![qoin_engine_api::Credit { address: miner, amount: U256::from(reward) }],
        prev_randao: B256::repeat_byte(0x42),
    }
}

fn head(e: &EngineHandler) -> ElHeader {
    e.chain().head().unwrap()
}

fn balance(e: &EngineHandler, a: &Address) -> U256 {
    let tx = e.chain().store().read().unwrap();
    qoin_el_storage::reader::account(&tx, a).unwrap().map_or(U256::ZERO, |r| r.balance)
}

/// Builds a payload on the head with `attrs` and returns it (without importing it).
fn build(e: &EngineHandler, a: &Attributes) -> Payload {
    let h = head(e).hash();
    let (st, id) = e.forkchoice_updated(h, None, Some(a.clone())).unwrap();
    assert_eq!(st.status, Status::Valid);
    e.get_payload(id.unwrap()).unwrap().0
}

#[test]
fn build_import_and_credit_exactly_what_the_attributes_say() {
    let k = Keypair::from_seed(&[1; 32]);
    let (_d, e) = node(std::slice::from_ref(&k));
    let miner = Address::repeat_byte(0xbe);
    e.node.submit(transfer(&k, 0, 1000)).unwrap();
    let a = attrs((T0 + 1) * 1000 + 250, miner, 427_789_185_489_390_828);
    let genesis = head(&e).hash();
    let (_, id1) = e.forkchoice_updated(genesis, None, Some(a.clone())).unwrap();
    let (_, id2) = e.forkchoice_updated(genesis, None, Some(a)).unwrap();
    assert_eq!(id1, id2, "same attributes, same payload id");
    let (payload, value) = e.get_payload(id1.unwrap()).unwrap();
    assert_eq!(payload.transactions.len(), 1);
    assert_eq!(payload.timestamp, T0 + 1, "seconds of the millisecond timestamp");
    assert_eq!(value, U256::from(2 * 21_000u64), "tip × gas");
    assert_eq!(head(&e).hash(), genesis, "building writes nothing");

    assert_eq!(e.new_payload(payload.clone(), false).unwrap(), PayloadStatus::valid());
    assert_eq!(head(&e).hash(), payload.block_hash);
    assert_eq!(
        balance(&e, &miner),
        U256::from(427_789_185_489_390_828u64 + 42_000),
        "credit plus priority fees"
    );
    assert_eq!(
        e.new_payload(payload.clone(), false).unwrap(),
        PayloadStatus::valid(),
        "known block: VALID again"
    );
    assert!(e.node.pool().is_empty(), "the included transaction left the pool");
    let (st, none) = e.forkchoice_updated(payload.block_hash, Some(genesis), None).unwrap();
    assert_eq!((st.status, none), (Status::Valid, None));
}

#[test]
fn a_second_get_payload_returns_a_better_payload() {
    let k = Keypair::from_seed(&[1; 32]);
    let (_d, e) = node(std::slice::from_ref(&k));
    let a = attrs((T0 + 1) * 1000, Address::repeat_byte(1), 5);
    let (_, id) = e.forkchoice_updated(head(&e).hash(), None, Some(a)).unwrap();
    let (empty, v0) = e.get_payload(id.unwrap()).unwrap();
    assert!(empty.transactions.is_empty());
    e.node.submit(transfer(&k, 0, 1)).unwrap();
    let (better, v1) = e.get_payload(id.unwrap()).unwrap();
    assert_eq!(better.transactions.len(), 1);
    assert!(v1 > v0);
    assert_eq!(e.get_payload([9; 8]).unwrap_err(), EngineError::UnknownPayload);
}

#[test]
fn wrong_payloads_are_invalid_and_change_nothing() {
    let k = Keypair::from_seed(&[1; 32]);
    let (_d, e) = node(std::slice::from_ref(&k));
    e.node.submit(transfer(&k, 0, 1000)).unwrap();
    let good = build(&e, &attrs((T0 + 1) * 1000, Address::repeat_byte(1), 100));
    let genesis = head(&e);

    let mut bad_hash = good.clone();
    bad_hash.gas_used += 1;
    let st = e.new_payload(bad_hash, false).unwrap();
    assert_eq!(st.status, Status::Invalid);
    assert!(st.validation_error.unwrap().contains("block hash mismatch"));

    // A self-consistent payload whose credit is larger than execution... the EL re-executes
    // and finds the state root wrong.
    let mut lying = good.clone();
    lying.credits[0].amount += U256::from(1u8);
    let (h, b) = payload_to_block(&lying).into_parts();
    lying = block_to_payload(&h, &b);
    let st = e.new_payload(lying.clone(), false).unwrap();
    assert_eq!(st.status, Status::Invalid);
    assert_eq!(st.latest_valid_hash, Some(genesis.hash()));
    assert!(st.validation_error.unwrap().contains("state_root"));
    assert_eq!(head(&e), genesis, "nothing written");
    let (st, _) = e.forkchoice_updated(lying.block_hash, None, None).unwrap();
    assert_eq!(st.status, Status::Invalid, "remembered as invalid");

    let mut orphan = good.clone();
    orphan.parent_hash = B256::repeat_byte(0xdd);
    let (h, b) = payload_to_block(&orphan).into_parts();
    assert_eq!(e.new_payload(block_to_payload(&h, &b), false).unwrap().status, Status::Syncing);
    let (st, _) = e.forkchoice_updated(B256::repeat_byte(0xee), None, None).unwrap();
    assert_eq!(st.status, Status::Syncing, "unknown head");

    assert_eq!(e.new_payload(good, false).unwrap().status, Status::Valid);
    let stale = attrs(T0 * 1000 - 1000, Address::ZERO, 0);
    assert!(matches!(
        e.forkchoice_updated(head(&e).hash(), None, Some(stale)).unwrap_err(),
        EngineError::InvalidAttributes(_)
    ));
    assert!(matches!(
        e.forkchoice_updated(genesis.hash(), Some(head(&e).hash()), None).unwrap_err(),
        EngineError::InvalidForkchoiceState(_)
    ));
}

#[test]
fn side_blocks_are_accepted_and_a_forkchoice_switches_branches() {
    let k = Keypair::from_seed(&[1; 32]);
    let (_d, e) = node(std::slice::from_ref(&k));
    let genesis = head(&e).hash();
    e.node.submit(transfer(&k, 0, 1000)).unwrap();
    // Branch A: one block with the transfer. Branch B: two empty blocks by another miner.
    let a1 = build(&e, &attrs((T0 + 1) * 1000, Address::repeat_byte(0xa), 10));
    assert_eq!(e.new_payload(a1.clone(), false).unwrap().status, Status::Valid);
    let (_, _) = e.forkchoice_updated(genesis, None, None).unwrap();
    assert_eq!(head(&e).hash(), genesis, "forkchoice to an ancestor unwinds");
    assert_eq!(e.node.pool().len(), 1, "the unwound transaction is back in the pool");
    e.node.pool().prune(&LatestState(&e.chain().store().read().unwrap()), Instant::now());
    // Build B1 without the transfer: take it out of consideration by building, then
    // dropping its transactions (a miner may build an empty block).
    let mut b1 = build(&e, &attrs((T0 + 2) * 1000, Address::repeat_byte(0xb), 10));
    if !b1.transactions.is_empty() {
        let env = e.chain().child_env(&head(&e), T0 + 2, Address::repeat_byte(0xb), B256::repeat_byte(0x42));
        let credits = vec![Credit { address: Address::repeat_byte(0xb), amount: U256::from(10u8) }];
        let ex = e.chain().build(&env, Vec::new(), credits).unwrap();
        b1 = block_to_payload(&ex.header, &Body { transactions: Vec::new(), credits: ex.credits.clone() });
    }
    // Make A canonical again, then offer B1 (a side block now) and its child.
    let (st, _) = e.forkchoice_updated(a1.block_hash, None, None).unwrap();
    assert_eq!(st.status, Status::Valid);
    assert_eq!(head(&e).hash(), a1.block_hash);
    assert_eq!(e.new_payload(b1.clone(), false).unwrap().status, Status::Accepted);
    assert_eq!(head(&e).hash(), a1.block_hash, "an accepted side block does not move the head");
    let (st, _) = e.forkchoice_updated(b1.block_hash, None, None).unwrap();
    assert_eq!(st.status, Status::Valid);
    assert_eq!(head(&e).hash(), b1.block_hash);
    assert_eq!(balance(&e, &Address::repeat_byte(0x77)), U256::ZERO, "branch A's transfer is undone");
    assert_eq!(balance(&e, &Address::repeat_byte(0xb)), U256::from(10u8));
    let (st, _) = e.forkchoice_updated(a1.block_hash, None, None).unwrap();
    assert_eq!(st.status, Status::Valid, "and back");
    assert_eq!(balance(&e, &Address::repeat_byte(0x77)), U256::from(1000u64));
}

#[test]
fn account_proofs_verify_against_the_state_root() {
    let k = Keypair::from_seed(&[1; 32]);
    let (_d, e) = node(std::slice::from_ref(&k));
    let before = head(&e).state_root;
    e.node.submit(transfer(&k, 0, 1000)).unwrap();
    let p = build(&e, &attrs((T0 + 1) * 1000, Address::repeat_byte(1), 10));
    e.new_payload(p.clone(), false).unwrap();
    let who = [k.address(), Address::repeat_byte(0x77), Address::repeat_byte(0x55)];
    for (root, nonce) in [(before, 0), (p.state_root, 1)] {
        let proofs = e.account_proofs(root, &who).unwrap();
        assert_eq!(proofs[0].nonce, nonce);
        assert!(!proofs[2].exists);
        for pr in &proofs {
            let expected = pr.exists.then(|| {
                alloy_rlp::encode(alloy_trie::TrieAccount {
                    nonce: pr.nonce,
                    balance: pr.balance,
                    storage_root: pr.storage_root,
                    code_hash: pr.code_hash,
                })
            });
            alloy_trie::proof::verify_proof(
                root,
                alloy_trie::Nibbles::unpack(keccak256(pr.address)),
                expected,
                pr.proof.iter(),
            )
            .unwrap();
        }
    }
    assert!(matches!(
        e.account_proofs(B256::repeat_byte(3), &who).unwrap_err(),
        EngineError::InvalidParams(_)
    ));
}

#[test]
fn credits_to_the_same_account_add_up() {
    let (_d, e) = node(&[]);
    let miner = Address::repeat_byte(0xbe);
    let mut a = attrs((T0 + 1) * 1000, miner, 700);
    a.credits.push(qoin_engine_api::Credit { address: miner, amount: U256::from(100u8) });
    let p = build(&e, &a);
    assert_eq!(e.new_payload(p, false).unwrap().status, Status::Valid);
    assert_eq!(balance(&e, &miner), U256::from(800u64), "a block reward and a sibling reward to one miner");
}

#[test]
fn submitted_transactions_get_the_pools_verdict_and_are_announced() {
    let k = Keypair::from_seed(&[3; 32]);
    let poor = Keypair::from_seed(&[4; 32]);
    let (_d, e) = node(std::slice::from_ref(&k));
    let mut announced = e.subscribe_transactions();
    let good = transfer(&k, 0, 5);
    let other_chain = TxRequest { chain_id: 10, ..transfer(&k, 1, 5).request().clone() }.sign(&k);
    let mut tampered = transfer(&k, 1, 5).encode();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let raws: Vec<Bytes> = vec![
        good.encode().into(),
        good.encode().into(),
        Bytes::from_static(b"\x51garbage"),
        other_chain.encode().into(),
        transfer(&poor, 0, 5).encode().into(),
        tampered.into(),
    ];
    let v: Vec<Verdict> = e.submit_transactions(raws).unwrap().iter().map(|v| v.verdict).collect();
    assert_eq!(
        v,
        [
            Verdict::Added,
            Verdict::Known,
            Verdict::Invalid,
            Verdict::Invalid,
            Verdict::Refused,
            Verdict::Invalid
        ]
    );
    assert_eq!(e.node.pool().len(), 1, "only the good one is pooled");
    assert_eq!(announced.try_recv().unwrap().hash, good.id(), "announced like a local submission");
    assert!(announced.try_recv().is_err());
}

/// What a peer that just connected is offered: the pool's ids, executable ones first, and the
/// transactions by id (unknown ids left out).
#[test]
fn the_pool_is_listed_by_id_and_served_by_id() {
    let k = Keypair::from_seed(&[3; 32]);
    let (_d, e) = node(std::slice::from_ref(&k));
    // Nonces 0 and 1 are executable; 3 waits behind the gap at 2.
    let txs = [transfer(&k, 3, 5), transfer(&k, 0, 5), transfer(&k, 1, 5)];
    let raws: Vec<Bytes> = txs.iter().map(|t| t.encode().into()).collect();
    assert!(e.submit_transactions(raws).unwrap().iter().all(|v| v.verdict == Verdict::Added));
    let ids = e.pooled_transaction_hashes(10).unwrap();
    assert_eq!(ids, [txs[1].id(), txs[2].id(), txs[0].id()]);
    assert_eq!(e.pooled_transaction_hashes(2).unwrap(), [txs[1].id(), txs[2].id()]);
    let got = e.pooled_transactions(&[txs[0].id(), B256::repeat_byte(9), txs[1].id()]).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].hash, got[1].hash), (txs[0].id(), txs[1].id()));
    assert_eq!(got[0].raw.as_ref(), txs[0].encode().as_slice());
}

#[test]
fn side_blocks_are_capped_in_bytes_as_well_as_in_number() {
    let mut state = State::default();
    let header = |n: u64| ElHeader {
        parent_hash: B256::repeat_byte(1),
        number: n,
        timestamp: 0,
        beneficiary: Address::ZERO,
        state_root: B256::ZERO,
        transactions_root: B256::ZERO,
        receipts_root: B256::ZERO,
        credits_root: B256::ZERO,
        logs_bloom: Default::default(),
        gas_limit: 0,
        gas_used: 0,
        base_fee_per_gas: 0,
        prev_randao: B256::ZERO,
    };
    // 64 side blocks of 8 MiB each: 512 MiB offered, at most MAX_SIDE_BYTES kept.
    let big = Body { transactions: vec![Bytes::from(vec![0u8; 8 << 20])], credits: vec![] };
    for n in 0..64 {
        EngineHandler::remember_side(&mut state, header(n), big.clone(), false);
        assert!(state.side_bytes <= MAX_SIDE_BYTES, "{} bytes held", state.side_bytes);
    }
    assert_eq!(state.side_bytes, state.side.values().map(|(_, b, _)| side_size(b)).sum::<usize>());
    assert!(state.side.len() < 64 && !state.side.is_empty());
    assert!(state.side.contains_key(&header(63).hash()), "the newest is kept, the oldest dropped");
    assert!(!state.side.contains_key(&header(0).hash()));
    // Small blocks are still kept by the thousand.
    let small = Body { transactions: vec![Bytes::from(vec![0u8; 100])], credits: vec![] };
    for n in 100..100 + MAX_SIDE as u64 {
        EngineHandler::remember_side(&mut state, header(n), small.clone(), false);
    }
    assert_eq!(state.side.len(), MAX_SIDE);
    // One made canonical is forgotten, and its bytes with it.
    let before = state.side_bytes;
    EngineHandler::forget_side(&mut state, &header(100 + MAX_SIDE as u64 - 1).hash());
    assert_eq!(state.side_bytes, before - side_size(&small));
    // A head more than MAX_REORG_DEPTH above a side block prunes it: no reorg can reach it.
    let top = 100 + MAX_SIDE as u64 - 2;
    EngineHandler::prune_side(&mut state, 100 + 1000 + MAX_REORG_DEPTH as u64);
    assert!(state.side.values().all(|(h, _, _)| h.number >= 1100), "pruned below the reorg bound");
    assert_eq!(state.side.len(), (top - 1100 + 1) as usize);
    assert_eq!(state.side_order.len(), state.side.len(), "the order forgets them too");
    assert_eq!(state.side_bytes, state.side.values().map(|(_, b, _)| side_size(b)).sum::<usize>());
    EngineHandler::prune_side(&mut state, 5);
    assert_eq!(state.side.len(), (top - 1100 + 1) as usize, "a low head prunes nothing");

    // A block kept, made canonical (forgotten), then unwound and kept again, is the newest
    // in the order: MAX_SIDE - 1 blocks after it do not push it out.
    let mut state = State::default();
    let again = header(1);
    EngineHandler::remember_side(&mut state, again.clone(), small.clone(), false);
    EngineHandler::forget_side(&mut state, &again.hash());
    EngineHandler::remember_side(&mut state, again.clone(), small.clone(), false);
    for n in 2..1 + MAX_SIDE as u64 {
        EngineHandler::remember_side(&mut state, header(n), small.clone(), false);
    }
    assert_eq!(state.side.len(), MAX_SIDE);
    assert!(state.side.contains_key(&again.hash()), "kept by its newer place in the order");
}

#[test]
fn a_forged_signature_is_invalid_unless_the_consensus_client_vouches_for_it() {
    let k = Keypair::from_seed(&[1; 32]);
    let (_d, builder) = node(std::slice::from_ref(&k));
    builder.node.submit(transfer(&k, 0, 1000)).unwrap();
    let good = build(&builder, &attrs((T0 + 1) * 1000, Address::repeat_byte(1), 100));
    // The last byte of the encoding is the signature's: the id, the execution and the state
    // root stay the same; only the transactions root (and so the block hash) changes.
    let mut raw = good.transactions[0].to_vec();
    *raw.last_mut().unwrap() ^= 1;
    let mut forged = good.clone();
    forged.transactions[0] = raw.into();
    let (h, b) = payload_to_block(&forged).into_parts();
    let forged = block_to_payload(&h, &b);
    assert_ne!(forged.block_hash, good.block_hash);

    // Checked here: refused, nothing written.
    let (_d2, checker) = node(std::slice::from_ref(&k));
    let genesis = head(&checker);
    let st = checker.new_payload(forged.clone(), false).unwrap();
    assert_eq!(st.status, Status::Invalid);
    assert!(st.validation_error.unwrap().contains("bad signature"));
    assert_eq!(head(&checker), genesis);

    // `--engine.verify-all-signatures` checks even what the consensus client vouched for.
    let (_d3, strict) = node(std::slice::from_ref(&k));
    let strict = strict.verify_all_signatures(true);
    assert_eq!(strict.new_payload(forged.clone(), true).unwrap().status, Status::Invalid);

    // By default the consensus client's word is taken: the block executes (its signatures are
    // the consensus client's to check, spec §15.3), and the honest one still does.
    let (_d4, trusting) = node(std::slice::from_ref(&k));
    assert_eq!(trusting.new_payload(forged.clone(), true).unwrap().status, Status::Valid);
    assert_eq!(head(&trusting).hash(), forged.block_hash);
    let (_d5, honest) = node(std::slice::from_ref(&k));
    assert_eq!(honest.new_payload(good, true).unwrap().status, Status::Valid);
}

/// Three payloads built one on another by a node of its own (the chain of `node(keys)`), a
/// transfer from `k` in each.
fn three_payloads(keys: &[Keypair], k: &Keypair) -> Vec<Payload> {
    let (_d, producer) = node(keys);
    (0..3u64)
        .map(|i| {
            producer.node.submit(transfer(k, i, 10 + i)).unwrap();
            let p = build(&producer, &attrs((T0 + 1 + i) * 1000, Address::repeat_byte(0xbe), 100));
            assert_eq!(p.transactions.len(), 1);
            assert_eq!(producer.new_payload(p.clone(), false).unwrap().status, Status::Valid);
            p
        })
        .collect()
}

#[test]
fn a_run_of_payloads_is_imported_at_once_and_stops_at_its_first_invalid_payload() {
    let k = Keypair::from_seed(&[1; 32]);
    let keys = std::slice::from_ref(&k);
    let payloads = three_payloads(keys, &k);

    // A run on the head: every payload VALID, the head at the last, the pool pruned.
    let (_d, e) = node(keys);
    e.node.submit(transfer(&k, 0, 10)).unwrap();
    let statuses = e.new_payloads(payloads.clone(), false).unwrap();
    assert_eq!(statuses, vec![PayloadStatus::valid(); 3]);
    assert_eq!(head(&e).hash(), payloads[2].block_hash);
    assert!(e.node.pool().is_empty(), "the mined transaction left the pool");
    assert_eq!(balance(&e, &Address::repeat_byte(0x77)), U256::from(10 + 11 + 12u64));
    // Sent again: known blocks, VALID one by one.
    assert_eq!(e.new_payloads(payloads.clone(), false).unwrap(), vec![PayloadStatus::valid(); 3]);

    // A run whose second payload lies about its state: the first is imported, the second is
    // INVALID (its parent the latest valid) and remembered, the third is not looked at.
    let (_d2, e2) = node(keys);
    let mut lying = payloads[1].clone();
    lying.credits[0].amount += U256::from(1u8);
    let (h, b) = payload_to_block(&lying).into_parts();
    let lying = block_to_payload(&h, &b);
    let statuses =
        e2.new_payloads(vec![payloads[0].clone(), lying.clone(), payloads[2].clone()], false).unwrap();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0], PayloadStatus::valid());
    assert_eq!(
        (statuses[1].status, statuses[1].latest_valid_hash),
        (Status::Invalid, Some(payloads[0].block_hash))
    );
    assert!(statuses[1].validation_error.as_deref().unwrap_or_default().contains("state_root"));
    assert_eq!(head(&e2).hash(), payloads[0].block_hash, "nothing of the invalid payload is written");
    let (st, _) = e2.forkchoice_updated(lying.block_hash, None, None).unwrap();
    assert_eq!(st.status, Status::Invalid, "remembered as invalid");
    // The genuine rest follows.
    assert_eq!(e2.new_payloads(payloads[1..].to_vec(), false).unwrap(), vec![PayloadStatus::valid(); 2]);

    // A run that does not start on the head: each payload is kept as NewPayload keeps it (the
    // first's parent unknown, the second's a kept block), and the branch is there for a
    // forkchoice once the missing block comes.
    let (_d3, e3) = node(keys);
    let statuses = e3.new_payloads(payloads[1..].to_vec(), false).unwrap();
    assert_eq!(
        statuses.iter().map(|s| s.status).collect::<Vec<_>>(),
        vec![Status::Syncing, Status::Accepted]
    );
    assert_eq!(head(&e3).number, 0);
    assert_eq!(e3.new_payload(payloads[0].clone(), false).unwrap().status, Status::Valid);
    let (st, _) = e3.forkchoice_updated(payloads[2].block_hash, None, None).unwrap();
    assert_eq!(st.status, Status::Valid);
    assert_eq!(head(&e3).hash(), payloads[2].block_hash);
}
