//! The window: pruning, the canonical index, reopening.

use super::*;
use alloy_primitives::Address;
use qoin_crypto::{Domain, Keypair};

struct Chain {
    keys: Keypair,
    genesis: BlockMeta,
}

impl Chain {
    fn new() -> Self {
        let genesis = BlockMeta {
            hash: B256::repeat_byte(0x6e),
            parent_hash: B256::ZERO,
            height: 0,
            timestamp_ms: 0,
            payload_hash: B256::repeat_byte(0x6e),
            state_root: B256::repeat_byte(0x5e),
            coinbase: Address::ZERO,
            work: U256::ZERO,
            siblings: Vec::new(),
        };
        Self { keys: Keypair::from_seed(&[3; 32]), genesis }
    }

    /// A child of `parent`; `salt` tells apart siblings.
    fn child(&self, parent: &BlockMeta, salt: u8, siblings: &[B256]) -> (Header, Payload, BlockMeta) {
        let header = Header {
            parent_hash: parent.hash,
            siblings: siblings.to_vec(),
            height: parent.height + 1,
            timestamp_ms: parent.timestamp_ms + 1000,
            difficulty: qoin_pow::Difficulty::MIN.to_compact(),
            payload_hash: B256::repeat_byte(salt),
            state_root: B256::repeat_byte(0x22),
            transactions_root: B256::ZERO,
            coinbase: self.keys.address(),
            miner_keys: self.keys.public().clone(),
            extra_nonce: u64::from(salt),
            ticket: self.keys.sign(Domain::MiningTicket, b""),
            solution: [salt; 16],
        };
        let payload = Payload {
            parent_hash: parent.payload_hash,
            number: parent.height + 1,
            timestamp: 0,
            fee_recipient: Address::ZERO,
            state_root: B256::ZERO,
            receipts_root: B256::ZERO,
            logs_bloom: Default::default(),
            gas_limit: 30_000_000,
            gas_used: 0,
            base_fee_per_gas: 7,
            prev_randao: B256::ZERO,
            block_hash: B256::repeat_byte(salt),
            transactions: Vec::new(),
            credits: Vec::new(),
        };
        let meta = BlockMeta::of(&header, header.hash().unwrap()).unwrap();
        (header, payload, meta)
    }
}

fn open(dir: &Path, c: &Chain) -> ChainStore {
    ChainStore::open(dir, c.genesis.clone(), 7, StoreOptions { durable: false, ..Default::default() })
        .unwrap()
}

#[test]
fn the_window_moves_up_keeping_the_canonical_chain_and_deleting_abandoned_branches() {
    let dir = tempfile::tempdir().unwrap();
    let c = Chain::new();
    let mut s = open(dir.path(), &c);
    let mut parent = c.genesis.clone();
    let mut canonical = vec![parent.hash];
    let mut side_low = None;
    let total = MAX_REORG_DEPTH + PRUNE_STEP + 40;
    for height in 1..=total {
        let (h, p, m) = c.child(&parent, 1, &[]);
        s.insert(&h, &p, m.clone()).unwrap();
        if height == 5 || height == total - 3 {
            // A sibling that loses: a branch of one block.
            let (sh, sp, sm) = c.child(&parent, 2, &[]);
            s.insert(&sh, &sp, sm.clone()).unwrap();
            if height == 5 {
                side_low = Some(sm.hash);
            }
        }
        s.set_head(m.hash).unwrap();
        canonical.push(m.hash);
        parent = m;
    }
    let head = parent.hash;
    assert_eq!(s.head(), head);
    assert_eq!(s.tree().head(), head);
    // The root moved once, to MAX_REORG_DEPTH below the head when it passed the step.
    let root_height = MAX_REORG_DEPTH + PRUNE_STEP - MAX_REORG_DEPTH;
    assert_eq!(s.tree().root_height(), root_height);
    assert_eq!(s.tree().root(), canonical[root_height as usize]);
    assert!(s.is_sampled(&s.tree().root()), "the root counts as sampled");
    // Below the root: the canonical chain is stored and indexed, the abandoned block is gone.
    let low = side_low.unwrap();
    assert!(s.block(&low).unwrap().is_none(), "abandoned branch deleted");
    assert!(!s.knows(&low).unwrap());
    assert!(s.knows(&canonical[5]).unwrap() && s.meta(&canonical[5]).is_none());
    assert!(s.block(&canonical[5]).unwrap().is_some());
    assert_eq!(s.canonical_hash(5).unwrap(), Some(canonical[5]));
    assert_eq!(s.canonical_range(3, 4).unwrap(), canonical[3..7].to_vec());
    assert_eq!(s.canonical_range(total - 1, 10).unwrap(), canonical[total as usize - 1..].to_vec());
    // A block on a parent below the root is refused, and nothing is written.
    let (h, p, m) = c.child(&c.child(&c.genesis, 1, &[]).2, 9, &[]);
    assert!(s.insert(&h, &p, m.clone()).is_err());
    assert!(!s.knows(&m.hash).unwrap());
    // The near side block is still in the window.
    assert_eq!(s.tree().len() as u64, total - root_height + 1 + 1);
    let (work, len, root) = (s.chain_work(&head), s.tree().len(), s.tree().root());
    assert_eq!(work, qoin_pow::Difficulty::MIN.work() * U256::from(total));
    drop(s);

    // Reopened: the same window, head and work, from the window's blocks only.
    let s = open(dir.path(), &c);
    assert_eq!((s.head(), s.tree().head(), s.tree().root(), s.tree().len()), (head, head, root, len));
    assert_eq!(s.chain_work(&head), work);
    assert!(s.is_sampled(&root));
}

#[test]
fn a_lighter_longer_chain_losing_to_a_shorter_heavier_one_rewrites_the_canonical_index() {
    let dir = tempfile::tempdir().unwrap();
    let c = Chain::new();
    let mut s = open(dir.path(), &c);
    let (h1, p1, a1) = c.child(&c.genesis, 1, &[]);
    s.insert(&h1, &p1, a1.clone()).unwrap();
    let (h2, p2, a2) = c.child(&a1, 1, &[]);
    s.insert(&h2, &p2, a2.clone()).unwrap();
    s.set_head(a2.hash).unwrap();
    assert_eq!(s.canonical_range(0, 10).unwrap(), vec![c.genesis.hash, a1.hash, a2.hash]);
    // Another branch of one block from genesis becomes the head (as a heavier block would).
    let (hb, pb, b1) = c.child(&c.genesis, 2, &[]);
    s.insert(&hb, &pb, b1.clone()).unwrap();
    s.set_head(b1.hash).unwrap();
    assert_eq!(s.canonical_range(0, 10).unwrap(), vec![c.genesis.hash, b1.hash]);
    assert_eq!(s.canonical_hash(2).unwrap(), None);
}

#[test]
fn a_run_is_checked_block_by_block_and_written_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let c = Chain::new();
    let mut s = open(dir.path(), &c);
    // a1 ← a2 (naming its parent's sibling b1) ← a3, with b1 between a1 and a2.
    let (h1, p1, a1) = c.child(&c.genesis, 1, &[]);
    let (hb, pb, b1) = c.child(&c.genesis, 2, &[]);
    let (h2, p2, a2) = c.child(&a1, 3, &[b1.hash]);
    let (h3, p3, a3) = c.child(&a2, 4, &[]);
    let mut run = s.begin_run();
    run.push(&h1, p1.clone(), a1.clone()).unwrap();
    run.push(&hb, pb, b1.clone()).unwrap();
    // A block whose parent is neither in the window nor earlier in the run is refused, and
    // the run stays as it was.
    let (hx, px, x) = c.child(&a3, 5, &[]);
    assert!(run.push(&hx, px, x.clone()).is_err());
    run.push(&h2, p2.clone(), a2.clone()).unwrap();
    run.push(&h3, p3.clone(), a3.clone()).unwrap();
    assert_eq!(run.len(), 4);
    assert_eq!(run.meta(&a2.hash), Some(&a2));
    assert_eq!(run.exec_fields(&a1.hash), Some(ExecFields::of(&p1)));
    // Until written and added, the store has none of them.
    assert!(!s.knows(&a1.hash).unwrap() && s.meta(&a1.hash).is_none());
    run.write().unwrap();
    s.add_run(run);
    assert_eq!(s.tree().head(), a3.hash);
    assert_eq!(s.chain_work(&a3.hash), s.chain_work(&a2.hash) + a3.work);
    assert!(!s.knows(&x.hash).unwrap());
    for m in [&a1, &b1, &a2, &a3] {
        assert_eq!(s.meta(&m.hash), Some(m));
    }
    // Peers are answered from the stored encodings: the header alone, the payload as stored.
    {
        let reader = s.reader();
        assert_eq!(reader.header(&a2.hash).unwrap(), Some(h2.clone()));
        assert_eq!(reader.payload_bytes(&a2.hash).unwrap(), Some(p2.to_bytes()));
        assert_eq!(reader.header(&c.genesis.hash).unwrap(), None);
        assert_eq!(reader.payload_bytes(&x.hash).unwrap(), None);
    }
    assert_eq!(s.block(&a2.hash).unwrap(), Some((h2, p2)));
    assert_eq!(s.exec_fields(&a3.hash).unwrap(), Some(ExecFields::of(&p3)));
    s.set_head(a3.hash).unwrap();
    let work = s.chain_work(&a3.hash);
    drop(s);
    // Reopened: the run's blocks are read back from the heights index.
    let s = open(dir.path(), &c);
    assert_eq!((s.head(), s.tree().head(), s.chain_work(&a3.hash)), (a3.hash, a3.hash, work));
    assert_eq!(s.tree().len(), 5);
}
