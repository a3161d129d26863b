//! The trie against alloy-trie's reference root computation and proof verifier.

use super::*;
use alloy_primitives::{keccak256, Bytes, B256};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

#[derive(Default)]
struct MemStore(HashMap<B256, Vec<u8>>);

impl NodeReader for MemStore {
    fn node(&self, hash: &B256) -> Result<Option<Vec<u8>>, TrieError> {
        Ok(self.0.get(hash).cloned())
    }
}

/// The root alloy-trie computes from scratch for the same key/value map.
fn reference_root(map: &BTreeMap<B256, Vec<u8>>) -> B256 {
    let mut hb = alloy_trie::HashBuilder::default();
    for (k, v) in map {
        hb.add_leaf(alloy_trie::Nibbles::unpack(k), v);
    }
    hb.root()
}

fn value(seed: u64, len: usize) -> Vec<u8> {
    // Values of different sizes, so some nodes are inlined (< 32 bytes) and some hashed.
    let mut v = keccak256(seed.to_be_bytes()).to_vec();
    v.resize(len.max(1), 0x42);
    v
}

#[test]
fn empty_trie_has_the_empty_root() {
    let mut t = Trie::at(EMPTY_ROOT);
    assert_eq!(t.commit().0, EMPTY_ROOT);
    assert_eq!(reference_root(&BTreeMap::new()), EMPTY_ROOT);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Several blocks of inserts, overwrites and deletes, each committed to a store: the root
    /// always equals a from-scratch computation, and proofs verify.
    #[test]
    fn incremental_roots_match_reference(
        blocks in proptest::collection::vec(
            proptest::collection::vec((0u64..400, any::<bool>(), 1usize..80), 1..60), 1..6),
        // Small key spaces make shared prefixes (extensions, deep branches) common.
        shared_prefix in any::<bool>(),
    ) {
        let key = |k: u64| {
            let mut h = keccak256(k.to_be_bytes());
            if shared_prefix {
                h.0[..29].fill(0xab);
            }
            h
        };
        let mut store = MemStore::default();
        let mut model = BTreeMap::new();
        let mut root = EMPTY_ROOT;
        for ops in blocks {
            let mut t = Trie::at(root);
            for (k, delete, len) in ops {
                if delete {
                    t.remove(&store, &key(k)).unwrap();
                    model.remove(&key(k));
                } else {
                    t.insert(&store, &key(k), value(k * 7 + len as u64, len)).unwrap();
                    model.insert(key(k), value(k * 7 + len as u64, len));
                }
            }
            let (new_root, nodes) = t.commit();
            store.0.extend(nodes);
            prop_assert_eq!(new_root, reference_root(&model));
            root = new_root;
        }
        // Proofs asked together are the proofs asked one by one.
        let keys: Vec<B256> = (0..400u64).map(key).collect();
        let together = proofs(&store, root, &keys).unwrap();
        for (k, p) in keys.iter().zip(&together) {
            prop_assert_eq!(p, &proof(&store, root, k).unwrap());
        }
        for k in 0..400u64 {
            let (nodes, v) = proof(&store, root, &key(k)).unwrap();
            let want = model.get(&key(k)).cloned();
            prop_assert_eq!(&v, &want);
            prop_assert_eq!(get(&store, root, &key(k)).unwrap(), want);
            let nodes: Vec<Bytes> = nodes.into_iter().map(Bytes::from).collect();
            let res = alloy_trie::proof::verify_proof(root, alloy_trie::Nibbles::unpack(key(k)), v, nodes.iter());
            prop_assert!(res.is_ok(), "proof of key {} failed: {:?}", k, res);
        }
    }

    #[test]
    fn node_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Node::decode(&bytes);
    }
}

#[test]
fn proofs_asked_together_read_each_node_once() {
    let mut store = MemStore::default();
    let mut t = Trie::at(EMPTY_ROOT);
    let keys: Vec<B256> = (0..300u64).map(|k| keccak256(k.to_be_bytes())).collect();
    for (k, key) in keys.iter().enumerate() {
        t.insert(&store, key, value(k as u64, 40)).unwrap();
    }
    let (root, nodes) = t.commit();
    store.0.extend(nodes);
    let reads = std::cell::Cell::new(0usize);
    let counting = |h: &B256| {
        reads.set(reads.get() + 1);
        store.node(h)
    };
    let one_by_one: usize = keys.iter().map(|k| proof(&store, root, k).unwrap().0.len()).sum();
    let together = proofs(&counting, root, &keys).unwrap();
    assert_eq!(together.iter().map(|p| p.0.len()).sum::<usize>(), one_by_one);
    // Every stored node on the paths once: the root once, not 300 times.
    let distinct: std::collections::HashSet<&Vec<u8>> = together.iter().flat_map(|p| &p.0).collect();
    assert_eq!(reads.get(), distinct.len());
    assert!(reads.get() < one_by_one / 2, "{} reads for {one_by_one} proof nodes", reads.get());
}

#[test]
fn old_roots_stay_readable_and_missing_nodes_are_errors() {
    let mut store = MemStore::default();
    let mut t = Trie::at(EMPTY_ROOT);
    for k in 0..50u64 {
        t.insert(&store, &keccak256(k.to_be_bytes()), value(k, 40)).unwrap();
    }
    let (r1, nodes) = t.commit();
    store.0.extend(nodes);
    let mut t = Trie::at(r1);
    t.remove(&store, &keccak256(7u64.to_be_bytes())).unwrap();
    t.insert(&store, &keccak256(1000u64.to_be_bytes()), value(1, 40)).unwrap();
    let (r2, nodes) = t.commit();
    store.0.extend(nodes);
    assert_ne!(r1, r2);
    // The earlier root still answers as before the change.
    assert!(get(&store, r1, &keccak256(7u64.to_be_bytes())).unwrap().is_some());
    assert!(get(&store, r2, &keccak256(7u64.to_be_bytes())).unwrap().is_none());
    // A root whose nodes are not stored is an error, not an empty answer.
    let bogus = B256::repeat_byte(9);
    assert_eq!(get(&store, bogus, &B256::ZERO), Err(TrieError::MissingNode(bogus)));
}
