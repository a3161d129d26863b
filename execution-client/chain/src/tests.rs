//! Block execution and the chain in MDBX: transfers, a contract, invalid blocks, reorgs.

use crate::Chain;
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_rlp::RlpEncodable;
use qoin_crypto::Keypair;
use qoin_el_storage::block::{Body, Credit, ElHeader};
use qoin_el_storage::tables::{Accounts, Storage};
use qoin_evm::Executed;
use qoin_primitives::{Genesis, GenesisAccount, PowParams, RewardParams, SignedTx, TxKind, TxRequest};
use qoin_store::StoreOptions;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const CHAIN_ID: u64 = 7777;
const FUNDS: u64 = 1_000_000_000_000_000_000; // 1 QOIN

fn keys() -> &'static [Keypair] {
    static K: OnceLock<Vec<Keypair>> = OnceLock::new();
    K.get_or_init(|| (1..=4u8).map(|i| Keypair::from_seed(&[i; 32])).collect())
}

fn genesis() -> Genesis {
    let mut alloc = BTreeMap::new();
    for k in keys() {
        alloc.insert(k.address(), GenesisAccount { balance: U256::from(FUNDS), ..Default::default() });
    }
    // A pre-deployed contract with storage, to exercise storage tries at genesis.
    alloc.insert(
        Address::repeat_byte(0xcc),
        GenesisAccount {
            balance: U256::from(5u8),
            nonce: 1,
            code: Bytes::from_static(&[0x60, 0x00, 0x54, 0x00]),
            storage: [(B256::with_last_byte(1), B256::with_last_byte(9))].into_iter().collect(),
        },
    );
    Genesis {
        chain_id: CHAIN_ID,
        timestamp: 1_767_225_600,
        gas_limit: 30_000_000,
        base_fee_per_gas: U256::from(qoin_primitives::GWEI),
        target_block_time_ms: 1000,
        pow: PowParams { initial_equations: 20, initial_mantissa: 0, half_life_secs: 600 },
        rewards: RewardParams::default(),
        alloc,
    }
}

fn open(dir: &std::path::Path) -> Chain {
    Chain::open(dir, genesis(), StoreOptions { max_size: 1 << 32, ..Default::default() }).unwrap()
}

fn transfer(from: usize, nonce: u64, to: Address, value: u64) -> SignedTx {
    TxRequest {
        chain_id: CHAIN_ID,
        nonce,
        max_priority_fee_per_gas: 100,
        max_fee_per_gas: 10_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: U256::from(value),
        ..Default::default()
    }
    .sign(&keys()[from])
}

fn build(chain: &Chain, txs: Vec<SignedTx>, credits: Vec<Credit>) -> Executed {
    let head = chain.head().unwrap();
    let env = chain.child_env(&head, head.timestamp + 1, Address::repeat_byte(0xbe), B256::repeat_byte(7));
    chain.build(&env, txs, credits).unwrap()
}

fn body_of(e: &Executed) -> Body {
    Body {
        transactions: e.transactions.iter().map(|t| Bytes::from(t.encode())).collect(),
        credits: e.credits.clone(),
    }
}

type Dump = (Vec<(Address, qoin_el_storage::tables::AccountRecord)>, Vec<((Address, B256), U256)>);

fn dump(chain: &Chain) -> Dump {
    let r = chain.store().read().unwrap();
    let a = r.cursor::<Accounts>().unwrap().walk(None).unwrap().map(|e| e.unwrap()).collect();
    let s = r
        .cursor::<Storage>()
        .unwrap()
        .walk(None)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|(k, w)| (k, w.0))
        .collect();
    (a, s)
}

/// Genesis balances and nonces, for the pool.
struct GenesisState;

impl qoin_txpool::AccountState for GenesisState {
    fn nonce_and_balance(&self, a: &Address) -> (u64, U256) {
        genesis().alloc.get(a).map_or((0, U256::ZERO), |g| (g.nonce, g.balance))
    }
}

/// The trie root alloy-trie computes from scratch over `(hashed key, value)` leaves.
fn root_of(mut leaves: Vec<(B256, Vec<u8>)>) -> B256 {
    leaves.sort();
    let mut hb = alloy_trie::HashBuilder::default();
    for (k, v) in &leaves {
        hb.add_leaf(alloy_trie::Nibbles::unpack(k), v);
    }
    hb.root()
}

#[derive(RlpEncodable)]
struct RefAccount {
    nonce: u64,
    balance: U256,
    storage_root: B256,
    code_hash: B256,
}

#[test]
fn genesis_state_root_matches_reference_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let head = chain.head().unwrap();
    assert_eq!(head.number, 0);
    // The same root computed independently with alloy-trie.
    let leaves: Vec<(B256, Vec<u8>)> = genesis()
        .state()
        .iter()
        .map(|(addr, a)| {
            let storage = a.storage.iter().map(|(k, v)| (*k, U256::from_be_bytes(v.0)));
            let code_hash =
                if a.code.is_empty() { revm::primitives::KECCAK_EMPTY } else { keccak256(&a.code) };
            let acc = RefAccount {
                nonce: a.nonce,
                balance: a.balance,
                storage_root: alloy_trie::root::storage_root_unhashed(storage),
                code_hash,
            };
            (keccak256(addr), alloy_rlp::encode(acc))
        })
        .collect();
    assert_eq!(head.state_root, root_of(leaves));
    drop(chain);
    assert_eq!(open(dir.path()).head().unwrap(), head);
    // Another genesis in the same directory is refused.
    let mut other = genesis();
    other.chain_id = 1;
    assert!(Chain::open(dir.path(), other, StoreOptions::default()).is_err());
}

#[test]
fn transfers_pay_value_gas_and_tips_and_replay_identically() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let to = Address::repeat_byte(0x77);
    let txs = vec![
        transfer(0, 0, to, 1_000),
        transfer(0, 1, to, 2_000),
        transfer(0, 3, to, 5), // nonce gap: skipped when building
        transfer(1, 0, to, 3_000),
    ];
    let built = build(
        &chain,
        txs,
        vec![Credit { address: Address::repeat_byte(0xaa), amount: U256::from(427_789_185_489_390_828u64) }],
    );
    assert_eq!(built.transactions.len(), 3, "the nonce-gap transaction is skipped");
    assert!(built.receipts.iter().all(|r| r.success));
    assert_eq!(built.header.gas_used, 3 * 21_000);
    let hash = chain.commit_built(&built).unwrap();
    assert_eq!(chain.head().unwrap().hash(), hash);

    let r = chain.store().read().unwrap();
    let bal = |a: &Address| r.get::<Accounts>(a).unwrap().map(|a| a.balance).unwrap_or_default();
    let base_fee = built.header.base_fee_per_gas;
    let price = u64::from(base_fee as u32) + 100; // base fee + tip, below the 10 gwei cap
    assert_eq!(bal(&to), U256::from(6_000u64));
    assert_eq!(bal(&keys()[0].address()), U256::from(FUNDS - 3_000 - 2 * 21_000 * price));
    assert_eq!(bal(&keys()[1].address()), U256::from(FUNDS - 3_000 - 21_000 * price));
    assert_eq!(bal(&Address::repeat_byte(0xbe)), U256::from(3 * 21_000 * 100u64), "tips to the beneficiary");
    assert_eq!(bal(&Address::repeat_byte(0xaa)), U256::from(427_789_185_489_390_828u64), "credits applied");
    assert_eq!(r.get::<Accounts>(&keys()[0].address()).unwrap().unwrap().nonce, 2);
    drop(r);

    // Another node importing the block gets exactly the same state; its pool had verified
    // the transactions already, so import does not verify them again.
    let dir2 = tempfile::tempdir().unwrap();
    let other = open(dir2.path());
    let mut pool = qoin_txpool::TxPool::new(qoin_txpool::PoolConfig::new(CHAIN_ID, 30_000_000, 7));
    let st = GenesisState;
    for t in &built.transactions {
        pool.add(t.clone(), &st, std::time::Instant::now()).unwrap();
    }
    assert!(built.transactions.iter().all(|t| pool.verified(t)));
    assert_eq!(other.import_with(&built.header, &body_of(&built), &|t| pool.verified(t)).unwrap(), hash);
    assert_eq!(dump(&other), dump(&chain));
}

/// Init code storing 42 in slot 0 and deploying a runtime that stores its first calldata
/// word in slot 1 and logs it.
fn contract_init() -> Bytes {
    let runtime = hex::decode("60003560015560003560005260206000a000").unwrap();
    let mut init = hex::decode("602a600055").unwrap();
    init.extend(
        hex::decode(format!("60{:02x}60{:02x}60003960{:02x}6000f3", runtime.len(), 17, runtime.len()))
            .unwrap(),
    );
    init.extend(runtime);
    init.into()
}

#[test]
fn contracts_deploy_store_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let deployer = keys()[2].address();
    let create = TxRequest {
        chain_id: CHAIN_ID,
        nonce: 0,
        max_priority_fee_per_gas: 1,
        max_fee_per_gas: 10_000_000_000,
        gas_limit: 200_000,
        to: TxKind::Create,
        input: contract_init(),
        ..Default::default()
    }
    .sign(&keys()[2]);
    let built = build(&chain, vec![create], vec![]);
    assert!(built.receipts[0].success);
    chain.commit_built(&built).unwrap();
    let contract = deployer.create(0);

    let word = B256::with_last_byte(0x99);
    let call = TxRequest {
        chain_id: CHAIN_ID,
        nonce: 1,
        max_priority_fee_per_gas: 1,
        max_fee_per_gas: 10_000_000_000,
        gas_limit: 100_000,
        to: TxKind::Call(contract),
        input: Bytes::from(word.to_vec()),
        ..Default::default()
    }
    .sign(&keys()[2]);
    let built = build(&chain, vec![call], vec![]);
    let receipt = &built.receipts[0];
    assert!(receipt.success);
    assert_eq!(receipt.logs.len(), 1);
    assert_eq!(receipt.logs[0].address, contract);
    assert_eq!(receipt.logs[0].data.data.as_ref(), word.as_slice());
    assert!(built.header.logs_bloom.contains_input(alloy_primitives::BloomInput::Raw(contract.as_slice())));
    chain.commit_built(&built).unwrap();

    let r = chain.store().read().unwrap();
    assert_eq!(r.get::<Storage>(&(contract, B256::ZERO)).unwrap().unwrap().0, U256::from(42u8));
    assert_eq!(
        r.get::<Storage>(&(contract, B256::with_last_byte(1))).unwrap().unwrap().0,
        U256::from(0x99u8)
    );
    assert_ne!(r.get::<Accounts>(&contract).unwrap().unwrap().storage_root, qoin_trie::EMPTY_ROOT);
}

#[test]
fn invalid_blocks_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let before = dump(&chain);
    let head = chain.head().unwrap();
    let built = {
        let dir2 = tempfile::tempdir().unwrap();
        build(&open(dir2.path()), vec![transfer(0, 0, Address::repeat_byte(1), 10)], vec![])
    };
    let body = body_of(&built);

    let mut wrong_root = built.header.clone();
    wrong_root.state_root = B256::repeat_byte(1);
    let e = chain.import(&wrong_root, &body).unwrap_err().to_string();
    assert!(e.contains("state_root"), "{e}");

    let mut forged = body.clone();
    let mut raw = forged.transactions[0].to_vec();
    let n = raw.len();
    raw[n - 10] ^= 1; // inside the ML-DSA signature
    forged.transactions[0] = raw.into();
    // The header's transactions root commits to the signatures: it no longer matches the body.
    let e = chain.import(&built.header, &forged).unwrap_err().to_string();
    assert!(e.contains("transactions_root"), "{e}");
    // With a root made over the forged bytes, the signature check refuses it.
    let sealed = qoin_el_storage::block::SealedBlock::seal(&built.header, forged.clone());
    let e = chain.import(sealed.header(), &forged).unwrap_err().to_string();
    assert!(e.contains("signature"), "{e}");
    let e = chain.import_sealed(&sealed, &|_| false).unwrap_err().to_string();
    assert!(e.contains("signature"), "{e}");

    let mut orphan = built.header.clone();
    orphan.parent_hash = B256::repeat_byte(2);
    assert!(chain.import(&orphan, &body).is_err());

    assert_eq!(chain.head().unwrap(), head);
    assert_eq!(dump(&chain), before);
    // The genuine block still imports afterwards.
    chain.import(&built.header, &body).unwrap();
}

#[test]
fn reorg_unwinds_and_reapplies_to_the_same_state_as_a_fresh_import() {
    let a_dir = tempfile::tempdir().unwrap();
    let node = open(a_dir.path());
    // Branch A: two blocks.
    let a1 = build(&node, vec![transfer(0, 0, Address::repeat_byte(0x11), 500)], vec![]);
    node.commit_built(&a1).unwrap();
    let a2 = build(
        &node,
        vec![transfer(0, 1, Address::repeat_byte(0x12), 700), transfer(3, 0, keys()[0].address(), 9)],
        vec![],
    );
    node.commit_built(&a2).unwrap();

    // Branch B, built by another node from genesis: different transactions, a contract.
    let b_dir = tempfile::tempdir().unwrap();
    let other = open(b_dir.path());
    let create = TxRequest {
        chain_id: CHAIN_ID,
        max_fee_per_gas: 10_000_000_000,
        gas_limit: 200_000,
        to: TxKind::Create,
        input: contract_init(),
        ..Default::default()
    }
    .sign(&keys()[1]);
    let b1 = build(&other, vec![create, transfer(0, 0, Address::repeat_byte(0x21), 1)], vec![]);
    other.commit_built(&b1).unwrap();
    let b2 = build(&other, vec![transfer(1, 1, Address::repeat_byte(0x22), 2)], vec![]);
    other.commit_built(&b2).unwrap();

    let genesis_state = {
        let g = tempfile::tempdir().unwrap();
        dump(&open(g.path()))
    };
    node.unwind_to(0).unwrap();
    assert_eq!(dump(&node), genesis_state, "unwinding restores genesis exactly");
    node.import(&b1.header, &body_of(&b1)).unwrap();
    node.import(&b2.header, &body_of(&b2)).unwrap();
    assert_eq!(node.head().unwrap(), other.head().unwrap());
    assert_eq!(dump(&node), dump(&other));
    let head: ElHeader = node.head().unwrap();
    assert_eq!(head.state_root, b2.header.state_root);
}

/// The state root recomputed from scratch (alloy-trie) from the plain state tables.
fn reference_state_root(chain: &Chain) -> B256 {
    let (accounts, storage) = dump(chain);
    let leaves: Vec<(B256, Vec<u8>)> = accounts
        .iter()
        .map(|(addr, a)| {
            let slots = storage.iter().filter(|((sa, _), _)| sa == addr).map(|((_, slot), v)| (*slot, *v));
            let storage_root = alloy_trie::root::storage_root_unhashed(slots);
            assert_eq!(storage_root, a.storage_root, "stored storage root of {addr}");
            let acc = RefAccount { nonce: a.nonce, balance: a.balance, storage_root, code_hash: a.code_hash };
            (keccak256(addr), alloy_rlp::encode(acc))
        })
        .collect();
    root_of(leaves)
}

const CRASH_ENV: &str = "QOIN_EL_CRASH_CHILD_DIR";

/// Child process of `sigkill_during_import_keeps_the_last_committed_block`: imports blocks
/// (each with a contract write and transfers) until killed, printing each committed number.
#[test]
#[ignore = "child process of sigkill_during_import_keeps_the_last_committed_block"]
fn crash_importer_child() {
    let Ok(dir) = std::env::var(CRASH_ENV) else { return };
    let chain = open(std::path::Path::new(&dir));
    loop {
        let head = chain.head().unwrap();
        let r = chain.store().read().unwrap();
        let nonce = |i: usize| r.get::<Accounts>(&keys()[i].address()).unwrap().map_or(0, |a| a.nonce);
        let (n0, n1) = (nonce(0), nonce(1));
        drop(r);
        let txs = (0..20)
            .map(|i| transfer(0, n0 + i, Address::with_last_byte(i as u8 + 1), head.number + 1))
            .collect();
        let built =
            build(&chain, txs, vec![Credit { address: keys()[1].address(), amount: U256::from(n1 + 1) }]);
        chain.commit_built(&built).unwrap();
        println!("committed {}", built.header.number);
    }
}

#[test]
fn sigkill_during_import_keeps_the_last_committed_block() {
    use std::io::{BufRead as _, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "tests::crash_importer_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CRASH_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = 0u64;
    while acked < 8 {
        if let Some(n) = lines.next().expect("child exited early").unwrap().strip_prefix("committed ") {
            acked = n.parse().unwrap();
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(7));
    child.kill().unwrap();
    child.wait().unwrap();
    for line in lines {
        if let Some(n) = line.unwrap().strip_prefix("committed ") {
            acked = n.parse().unwrap();
        }
    }
    let chain = open(dir.path());
    let head = chain.head().unwrap();
    assert!(
        head.number == acked || head.number == acked + 1,
        "head {} after acknowledging {acked}",
        head.number
    );
    // The state on disk is exactly the head's: its root recomputed from scratch matches.
    assert_eq!(reference_state_root(&chain), head.state_root);
    // And the chain carries on.
    let next = build(&chain, vec![], vec![]);
    chain.commit_built(&next).unwrap();
}

/// Three blocks built one after another on a chain of their own.
fn three_blocks() -> Vec<qoin_el_storage::block::SealedBlock> {
    let dir = tempfile::tempdir().unwrap();
    let builder = open(dir.path());
    (0..3u64)
        .map(|i| {
            let built =
                build(&builder, vec![transfer(i as usize, 0, Address::repeat_byte(0x42), 7 + i)], vec![]);
            builder.commit_built(&built).unwrap();
            qoin_el_storage::block::SealedBlock::seal(&built.header, body_of(&built))
        })
        .collect()
}

#[test]
fn a_run_of_blocks_imported_in_one_transaction_gives_the_state_of_one_by_one_imports() {
    let blocks = three_blocks();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (batched, single) = (open(d1.path()), open(d2.path()));
    let moves = batched.watch_head();
    assert_eq!(batched.import_batch(&blocks, &|_| false).unwrap().0, 3);
    assert!(moves.has_changed().unwrap(), "subscribers are woken");
    for b in &blocks {
        single.import_sealed(b, &|_| false).unwrap();
    }
    assert_eq!(batched.head().unwrap(), *blocks[2].header());
    assert_eq!(dump(&batched), dump(&single));
    // Every block of the run is there, with its transactions findable.
    for b in &blocks {
        assert_eq!(batched.header(b.header().number).unwrap().as_ref(), Some(b.header()));
    }
    let r = batched.store().read().unwrap();
    let id = SignedTx::decode(&blocks[1].body().transactions[0]).unwrap().id();
    assert_eq!(r.get::<qoin_el_storage::tables::TxLookup>(&id).unwrap().map(|l| l.block), Some(2));
}

#[test]
fn a_run_stops_at_its_first_invalid_block_and_keeps_the_blocks_before_it() {
    let blocks = three_blocks();
    let mut wrong = blocks[1].header().clone();
    wrong.state_root = B256::repeat_byte(1);
    let bad = qoin_el_storage::block::SealedBlock::seal(&wrong, blocks[1].body().clone());
    let run = vec![blocks[0].clone(), bad, blocks[2].clone()];
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (batched, single) = (open(d1.path()), open(d2.path()));
    let (imported, failure) = batched.import_batch(&run, &|_| false).unwrap();
    assert_eq!(imported, 1);
    let e = failure.expect("the second block fails").to_string();
    assert!(e.contains("state_root"), "{e}");
    single.import_sealed(&blocks[0], &|_| false).unwrap();
    assert_eq!(batched.head().unwrap(), *blocks[0].header());
    assert_eq!(dump(&batched), dump(&single), "nothing of the failed block or those after it");
    assert_eq!(batched.header(2).unwrap(), None);
    // A failure at the first block leaves the chain as it was.
    let (imported, failure) = batched.import_batch(&blocks[2..], &|_| false).unwrap();
    assert_eq!((imported, failure.is_some()), (0, true));
    assert_eq!(batched.head().unwrap(), *blocks[0].header());
    // The genuine rest imports afterwards.
    assert_eq!(batched.import_batch(&blocks[1..], &|_| false).unwrap().0, 2);
    assert_eq!(batched.head().unwrap(), *blocks[2].header());
}
