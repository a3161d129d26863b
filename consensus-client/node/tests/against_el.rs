//! The consensus client's checks against the real execution client's state: account-state
//! sampling passes an honest execution client and catches one that lies about an account,
//! and a payload is valid only as the header commits to it, with the fee fields its parent's
//! imply and transactions signed for the chain; a sync's pipelined run whose sample fails.
//! Also: when a peer's status starts a sync.

use alloy_primitives::{Address, B256, U256};
use qoin_cl_sampling::{self as sampling, SamplingError};
use qoin_consensus::params::ChainParams;
use qoin_consensus::validate::{
    validate_body, validate_payload, validate_transactions, BlockMeta, InvalidBlock,
};
use qoin_crypto::{Domain, Keypair};
use qoin_el_chain::test_utils::funded_genesis;
use qoin_engine_api::{Attributes, EngineBackend, Payload};
use qoin_primitives::{Header, TxKind, TxRequest};
use std::sync::Arc;

/// The test chain's genesis time.
const T0: u64 = 1_767_225_600;

struct El {
    _dir: tempfile::TempDir,
    engine: qoin_el_engine::EngineHandler,
    node: Arc<qoin_el_node::Node>,
}

fn el(keys: &[Keypair]) -> El {
    use qoin_el_chain::Chain;
    use qoin_el_node::{LocalMining, Node};
    let dir = tempfile::tempdir().unwrap();
    let opts = qoin_store::StoreOptions { max_size: 1 << 30, ..Default::default() };
    let chain = Chain::open(dir.path(), funded_genesis(keys, 30_000_000), opts).unwrap();
    let node = Arc::new(Node::new(chain, Vec::new(), LocalMining::Off, Address::ZERO));
    El { _dir: dir, engine: qoin_el_engine::EngineHandler::new(node.clone()), node }
}

fn transfer(k: &Keypair, nonce: u64, to: Address, value: u64) -> qoin_primitives::SignedTx {
    TxRequest {
        chain_id: 9,
        nonce,
        max_priority_fee_per_gas: 3,
        max_fee_per_gas: 10_000_000_000,
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
        credits: vec![qoin_engine_api::Credit {
            address: miner,
            amount: U256::from(427_789_185_489_390_828u64),
        }],
        prev_randao: qoin_consensus::params::prev_randao(&head.hash()),
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
    assert_eq!(
        honest.engine.new_payload(payload.clone(), false).unwrap().status,
        qoin_engine_api::Status::Valid
    );
    let recomputed = sample(&honest, &payload, parent_root, 8).unwrap();
    assert_eq!(recomputed, 5, "2 senders (one also a recipient) + 3 others (2 recipients, the miner)");

    // A lying execution client: it says VALID to a payload whose state gives one account
    // (sender 1) 1,000,000 shor more than the transactions allow, and answers with proofs
    // from that consistent but wrong state.
    let liar = el(&keys);
    for t in &txs {
        liar.node.submit(t.clone()).unwrap();
    }
    let chain = liar.node.chain();
    let head = chain.head().unwrap();
    let env = chain.child_env(&head, T0 + 1, miner, head.hash());
    let mut credits = vec![qoin_el_storage::block::Credit {
        address: miner,
        amount: U256::from(427_789_185_489_390_828u64),
    }];
    credits.push(qoin_el_storage::block::Credit {
        address: keys[1].address(),
        amount: U256::from(1_000_000u64),
    });
    let pending = liar.node.pool().pending(&qoin_el_node::LatestState(&chain.store().read().unwrap()), 7);
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
    let p = ChainParams::new(&funded_genesis(&keys, 30_000_000), genesis_el.hash(), genesis_el.state_root)
        .unwrap();
    let g = BlockMeta::genesis(&p);
    let header = header_for(&payload, g.hash, (T0 + 1) * 1000, &miner);
    // The test payload used a flat credit; the rule's credit for height 1 is the same.
    let ge = p.genesis_exec;
    validate_payload(&header, &payload, &g, &ge, &[], &p).unwrap();
    let refused = |pl: &Payload, what: &str| {
        let r = validate_payload(&header, pl, &g, &ge, &[], &p);
        assert!(matches!(&r, Err(InvalidBlock::Payload(m)) if m.contains(what)), "{what}: {r:?}");
    };
    let mut more = payload.clone();
    more.credits[0].amount += U256::from(1u8);
    refused(&more, "credits");
    // The transactions must be those the header's root commits to.
    assert_eq!(validate_body(&header, &payload, p.chain_id).unwrap().len(), payload.transactions.len());
    let mut dropped = payload.clone();
    dropped.transactions.clear();
    let r = validate_body(&header, &dropped, p.chain_id);
    assert!(matches!(&r, Err(InvalidBlock::Payload(m)) if m.contains("transactions root")), "{r:?}");
    // Fee fields that follow from the parent's, checked without state.
    let mut fee = payload.clone();
    fee.base_fee_per_gas += 1;
    refused(&fee, "base fee");
    let mut limit = payload.clone();
    limit.gas_limit += 1;
    refused(&limit, "gas limit");
    let mut used = payload.clone();
    used.gas_used = 20_999;
    refused(&used, "21,000");
    let mut over = payload.clone();
    over.gas_used = over.gas_limit + 1;
    refused(&over, "exceeds");

    // Transactions: signatures and chain ids, without state.
    validate_transactions(&payload, p.chain_id).unwrap();
    let mut other_chain = payload.clone();
    let tx =
        TxRequest { chain_id: 10, ..transfer(&keys[0], 0, Address::repeat_byte(1), 1).request().clone() }
            .sign(&keys[0]);
    other_chain.transactions[0] = tx.encode().into();
    let r = validate_transactions(&other_chain, p.chain_id);
    assert!(matches!(&r, Err(InvalidBlock::Payload(m)) if m.contains("chain 10")), "{r:?}");
    let mut forged = payload;
    let mut raw = forged.transactions[0].to_vec();
    let at = raw.len() - 40;
    raw[at] ^= 1;
    forged.transactions[0] = raw.into();
    assert!(validate_transactions(&forged, p.chain_id).is_err(), "a flipped signature byte is refused");
}

/// When a peer's status starts a sync: heavier than our chain with a head we lack, and not
/// just racing the gossip of the block one above our head.
#[test]
fn a_peer_status_starts_a_sync_only_for_a_heavier_head_gossip_did_not_bring() {
    use qoin_cl_network::Status;
    use qoin_cl_node::p2p::status_starts_sync;
    let ours = Status {
        chain_id: 9,
        genesis_hash: B256::repeat_byte(1),
        head_hash: B256::repeat_byte(2),
        head_height: 100,
        cumulative_work: 1_000,
    };
    let theirs = |byte: u8, height: u64, work: u128| Status {
        head_hash: B256::repeat_byte(byte),
        head_height: height,
        cumulative_work: work,
        ..ours
    };
    let held = |h: &B256| *h == B256::repeat_byte(7);
    let one_up = theirs(3, 101, 1_010);
    // One block up from a peer we already know: most likely that block's gossip is on its way.
    assert!(!status_starts_sync(&ours, &one_up, None, false, held));
    // The same from a peer new to us, or further ahead: sync.
    assert!(status_starts_sync(&ours, &one_up, None, true, held));
    assert!(status_starts_sync(&ours, &theirs(3, 102, 1_020), None, false, held));
    // Its previous status was heavier with a head we still lack: gossip missed us. A heavier
    // fork need not be taller (here lower than our head).
    let lower = theirs(4, 99, 1_050);
    assert!(status_starts_sync(&ours, &lower, Some(&theirs(5, 98, 1_040)), false, held));
    // ... but not when that previous head was one we hold, or was not heavier.
    assert!(!status_starts_sync(&ours, &lower, Some(&theirs(7, 98, 1_040)), false, held));
    assert!(!status_starts_sync(&ours, &lower, Some(&theirs(5, 98, 900)), false, held));
    // Never for a chain no heavier than ours, or a head we hold.
    assert!(!status_starts_sync(&ours, &theirs(3, 150, 1_000), None, true, held));
    assert!(!status_starts_sync(&ours, &theirs(7, 150, 5_000), None, true, held));
}

/// A real execution client with faults: proofs asked against `lie_at` are answered with
/// those of `lie_with` (the sample of the block with that root fails, as it would for an
/// execution client whose state is not the block's), and the first `NewPayload` of
/// `lose_once` is answered SYNCING without the block being kept (as a block the execution
/// client dropped, or never got).
struct FaultyEl {
    inner: qoin_el_engine::EngineHandler,
    lie_at: B256,
    lie_with: B256,
    lose_once: std::sync::Mutex<Option<B256>>,
}

impl EngineBackend for FaultyEl {
    fn client_name(&self) -> String {
        self.inner.client_name()
    }
    fn chain_info(&self) -> Result<(u64, B256, B256), qoin_engine_api::EngineError> {
        self.inner.chain_info()
    }
    fn new_payload(
        &self,
        payload: Payload,
        verified: bool,
    ) -> Result<qoin_engine_api::PayloadStatus, qoin_engine_api::EngineError> {
        if self.lose_once.lock().unwrap().take_if(|h| *h == payload.block_hash).is_some() {
            return Ok(qoin_engine_api::PayloadStatus::syncing());
        }
        self.inner.new_payload(payload, verified)
    }
    fn new_payloads(
        &self,
        payloads: Vec<Payload>,
        verified: bool,
    ) -> Result<Vec<qoin_engine_api::PayloadStatus>, qoin_engine_api::EngineError> {
        if self.lose_once.lock().unwrap().is_none() {
            return self.inner.new_payloads(payloads, verified);
        }
        // One by one, so that the lost block is lost.
        qoin_engine_api::server::new_payloads_one_by_one(payloads, |p| self.new_payload(p, verified))
    }
    fn forkchoice_updated(
        &self,
        head: B256,
        finalized: Option<B256>,
        attributes: Option<Attributes>,
    ) -> Result<
        (qoin_engine_api::PayloadStatus, Option<qoin_engine_api::PayloadId>),
        qoin_engine_api::EngineError,
    > {
        self.inner.forkchoice_updated(head, finalized, attributes)
    }
    fn get_payload(
        &self,
        id: qoin_engine_api::PayloadId,
    ) -> Result<(Payload, U256), qoin_engine_api::EngineError> {
        self.inner.get_payload(id)
    }
    fn account_proofs(
        &self,
        root: B256,
        addresses: &[Address],
    ) -> Result<Vec<qoin_engine_api::AccountProof>, qoin_engine_api::EngineError> {
        self.inner.account_proofs(if root == self.lie_at { self.lie_with } else { root }, addresses)
    }
    fn subscribe_transactions(&self) -> tokio::sync::broadcast::Receiver<qoin_engine_api::PooledTx> {
        self.inner.subscribe_transactions()
    }
    fn submit_transactions(
        &self,
        txs: Vec<alloy_primitives::Bytes>,
    ) -> Result<Vec<qoin_engine_api::TxVerdict>, qoin_engine_api::EngineError> {
        self.inner.submit_transactions(txs)
    }
    fn set_sync_status(&self, progress: Option<qoin_engine_api::SyncProgress>) {
        self.inner.set_sync_status(progress);
    }
    fn pooled_transaction_hashes(&self, limit: usize) -> Result<Vec<B256>, qoin_engine_api::EngineError> {
        self.inner.pooled_transaction_hashes(limit)
    }
    fn pooled_transactions(
        &self,
        hashes: &[B256],
    ) -> Result<Vec<qoin_engine_api::PooledTx>, qoin_engine_api::EngineError> {
        self.inner.pooled_transactions(hashes)
    }
}

/// The header of `payload` (child of `parent`) by `miner`, without a proof of work.
fn header_for(payload: &Payload, parent: B256, timestamp_ms: u64, miner: &Keypair) -> Header {
    let txs: Vec<Vec<u8>> = payload.transactions.iter().map(|t| t.to_vec()).collect();
    Header {
        parent_hash: parent,
        siblings: vec![],
        height: payload.number,
        timestamp_ms,
        difficulty: 0,
        payload_hash: payload.block_hash,
        state_root: payload.state_root,
        transactions_root: qoin_primitives::transactions_root(&txs).unwrap(),
        coinbase: miner.address(),
        miner_keys: miner.public().clone(),
        extra_nonce: 0,
        ticket: miner.sign(Domain::MiningTicket, b""),
        solution: [0; 16],
    }
}

/// A block as a sync holds it once its body is checked: header, payload, meta, transactions.
type Checked = (Header, Payload, BlockMeta, Vec<qoin_primitives::SignedTx>);

/// `n` blocks on the genesis of `keys`' chain, a transfer from `keys[0]` in each, built by an
/// execution client of their own (headers carry no proof of work: a run's import takes the
/// meta its headers' checks gave).
fn chain_of(keys: &[Keypair], n: u64) -> (ChainParams, Vec<Checked>) {
    let producer = el(keys);
    let genesis_el = producer.node.chain().header(0).unwrap().unwrap();
    let params =
        ChainParams::new(&funded_genesis(keys, 30_000_000), genesis_el.hash(), genesis_el.state_root)
            .unwrap();
    let miner = Keypair::from_seed(&[5; 32]);
    let mut parent = BlockMeta::genesis(&params);
    let mut blocks = Vec::new();
    for height in 1..=n {
        producer.node.submit(transfer(&keys[0], height - 1, Address::repeat_byte(0x77), height)).unwrap();
        let timestamp_ms = (T0 + height) * 1000;
        let attrs = Attributes {
            timestamp_ms,
            fee_recipient: miner.address(),
            credits: params.credits(height, miner.address(), &[]),
            prev_randao: qoin_consensus::params::prev_randao(&parent.hash),
        };
        let (_, id) = producer.engine.forkchoice_updated(parent.payload_hash, None, Some(attrs)).unwrap();
        let payload = producer.engine.get_payload(id.unwrap()).unwrap().0;
        assert_eq!(payload.transactions.len(), 1);
        assert_eq!(
            producer.engine.new_payload(payload.clone(), false).unwrap().status,
            qoin_engine_api::Status::Valid
        );
        let header = header_for(&payload, parent.hash, timestamp_ms, &miner);
        let meta = BlockMeta {
            hash: header.hash().unwrap(),
            parent_hash: parent.hash,
            height,
            timestamp_ms,
            payload_hash: payload.block_hash,
            state_root: payload.state_root,
            coinbase: miner.address(),
            work: U256::from(1_000u64),
            siblings: vec![],
        };
        let decoded = validate_body(&header, &payload, params.chain_id).unwrap();
        parent = meta.clone();
        blocks.push((header, payload, meta, decoded));
    }
    (params, blocks)
}

/// A sync's pipelined run: three blocks executed by one NewPayloads, their samples left under
/// way; the second block's sample fails, so the head settles on the first, the second and the
/// third leave fork choice, and the execution client is moved back to the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_that_fails_in_a_pipelined_run_leaves_the_head_on_the_block_before_it() {
    let keys = [Keypair::from_seed(&[1; 32])];
    let (_, blocks) = chain_of(&keys, 3);
    let (chain, mut node, metrics, _dirs) =
        node_against(&keys, blocks[1].1.state_root, blocks[0].1.state_root, None).await;

    let run = blocks.iter().map(|(h, p, m, txs)| (h, p, m.clone(), txs.clone())).collect();
    let (imported, settled) = node.import_pipelined_run(run).await;
    assert_eq!(imported, 3);
    settled.unwrap();
    assert_eq!(
        chain.chain().head().unwrap().hash(),
        blocks[2].1.block_hash,
        "the run is the execution client's head"
    );
    assert_eq!(node.store().head(), blocks[0].2.parent_hash, "the stored head waits for the samples");

    // Settling the samples: the first passes, the second is caught.
    let caught = node.update_head(false).await.unwrap_err();
    assert!(matches!(caught, qoin_cl_node::node::ImportError::ExecutionFaulty(_)), "{caught}");
    assert_eq!(node.store().head(), blocks[0].2.hash);
    assert!(node.store().is_sampled(&blocks[0].2.hash));
    assert!(node.store().tree().is_invalid(&blocks[1].2.hash));
    assert_eq!(
        node.store().tree().head(),
        blocks[0].2.hash,
        "the third block left fork choice with the second"
    );
    assert_eq!(
        chain.chain().head().unwrap().hash(),
        blocks[0].1.block_hash,
        "the execution client was moved back"
    );
    assert_eq!(metrics.sampling_failures.get(), 1);
}

/// A consensus client (`Node`) against a real execution client behind a real engine server,
/// with the faults of [`FaultyEl`]. Returns the execution client's node, the consensus
/// client, its metrics and what must live as long as they do.
async fn node_against(
    keys: &[Keypair],
    lie_at: B256,
    lie_with: B256,
    lose_once: Option<B256>,
) -> (Arc<qoin_el_node::Node>, qoin_cl_node::Node, Arc<qoin_cl_node::ClMetrics>, impl Sized) {
    let ours = el(keys);
    let chain = ours.node.clone();
    let backend =
        FaultyEl { inner: ours.engine, lie_at, lie_with, lose_once: std::sync::Mutex::new(lose_once) };
    let secret = qoin_engine_api::jwt::JwtSecret::random();
    let server = qoin_engine_api::serve(Arc::new(backend), "127.0.0.1:0".parse().unwrap(), secret.clone())
        .await
        .unwrap();
    let datadir = tempfile::tempdir().unwrap();
    let config = qoin_cl_node::Config {
        datadir: datadir.path().to_path_buf(),
        genesis: funded_genesis(keys, 30_000_000),
        engine_url: format!("http://{}", server.addr),
        jwt: secret,
        miner: None,
        sample_k: 8,
        p2p: None,
    };
    let metrics = Arc::new(qoin_cl_node::ClMetrics::default());
    let node = qoin_cl_node::Node::start(&config, metrics.clone()).await.unwrap();
    (chain, node, metrics, (server, datadir, ours._dir))
}

/// A run whose first block the execution client lost (it answered SYNCING and kept nothing)
/// while it kept the blocks after it as side blocks: the head update sends the path again
/// down to a block on the execution client's chain, not only down to the first block it
/// kept, and the whole run becomes the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_first_block_the_execution_client_lost_is_replayed_whole() {
    let keys = [Keypair::from_seed(&[1; 32])];
    let (_, blocks) = chain_of(&keys, 3);
    let (chain, mut node, metrics, _dirs) =
        node_against(&keys, B256::ZERO, B256::ZERO, Some(blocks[0].1.block_hash)).await;
    let run = blocks.iter().map(|(h, p, m, txs)| (h, p, m.clone(), txs.clone())).collect();
    let (taken, settled) = node.import_pipelined_run(run).await;
    assert_eq!(taken, 3, "SYNCING and ACCEPTED answers are no refusal");
    settled.unwrap();
    node.update_head(false).await.unwrap();
    assert_eq!(chain.chain().head().unwrap().hash(), blocks[2].1.block_hash);
    assert_eq!(node.store().head(), blocks[2].2.hash);
    assert!(blocks.iter().all(|b| node.store().is_sampled(&b.2.hash)));
    assert_eq!(metrics.sampling_failures.get(), 0);
}
