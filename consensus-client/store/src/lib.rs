//! # qoin-cl-store
//!
//! Owns the consensus client's chain store in MDBX: every block it accepted (header and payload),
//! blocks found invalid, the head and the chain it belongs to. On open the fork tree is
//! rebuilt from the stored headers, so a restart resumes where the last run stopped. Each
//! block is written in one transaction.
//!
//! | table | key → value |
//! |---|---|
//! | `Headers` | block hash → SSZ header |
//! | `Payloads` | block hash → protobuf execution payload |
//! | `Invalid` | block hash → why it is invalid |
//! | `Sampled` | block hash → `[]`: its state was sampled when it became canonical |
//! | `Exec` | block hash → gas limit, gas used, base fee (24 bytes): what its child's fee fields follow |
//! | `Meta` | `"head"` → hash; `"chain"` → chain id ‖ genesis hash ‖ genesis state root |

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use alloy_primitives::B256;
use qoin_consensus::forkchoice::ForkTree;
use qoin_consensus::validate::{BlockMeta, ExecFields};
use qoin_engine_api::Payload;
use qoin_primitives::Header;
use qoin_store::{table, Schema, Store, StoreError, StoreOptions};
use std::collections::HashMap;
use std::path::Path;

/// The consensus client's schema.
pub const SCHEMA: Schema = Schema {
    name: "qoin-cl",
    version: 2,
    tables: &["Headers", "Payloads", "Invalid", "Sampled", "Exec", "Meta"],
};

table!(/// Headers (SSZ) by hash.
       Headers: B256 => Vec<u8>);
table!(/// Execution payloads (protobuf) by block hash.
       Payloads: B256 => Vec<u8>);
table!(/// Blocks found invalid, with the reason.
       Invalid: B256 => String);
table!(/// Blocks whose state sampling checked.
       Sampled: B256 => Vec<u8>);
table!(/// Gas limit, gas used and base fee of each block's payload.
       Exec: B256 => Vec<u8>);
table!(/// Named values.
       Meta: String => Vec<u8>);

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainStoreError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored data does not decode (the data directory is damaged).
    #[error("corrupt chain store: {0}")]
    Corrupt(String),
    /// The data directory belongs to another chain.
    #[error("{0}")]
    OtherChain(String),
}

/// The chain store plus the in-memory fork tree and block metas built from it.
pub struct ChainStore {
    store: Store,
    tree: ForkTree,
    metas: HashMap<B256, BlockMeta>,
    sampled: std::collections::HashSet<B256>,
    /// Work of each block's chain from genesis (the block included).
    chain_work: HashMap<B256, alloy_primitives::U256>,
    head: B256,
}

impl std::fmt::Debug for ChainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainStore({:?}, {} blocks)", self.store, self.tree.len())
    }
}

fn chain_id_bytes(genesis: &BlockMeta, chain_id: u64) -> Vec<u8> {
    let mut v = chain_id.to_be_bytes().to_vec();
    v.extend_from_slice(genesis.hash.as_slice());
    v.extend_from_slice(genesis.state_root.as_slice());
    v
}

/// Records `m`'s chain work: its parent's plus its own.
fn add_chain_work(chain_work: &mut HashMap<B256, alloy_primitives::U256>, m: &BlockMeta) {
    let parent = chain_work.get(&m.parent_hash).copied().unwrap_or_default();
    chain_work.insert(m.hash, parent.saturating_add(m.work));
}

impl ChainStore {
    /// Opens (or creates) the store in `dir` for the chain whose genesis is `genesis`.
    pub fn open(
        dir: &Path,
        genesis: BlockMeta,
        chain_id: u64,
        options: StoreOptions,
    ) -> Result<Self, ChainStoreError> {
        let store = Store::open(dir, &SCHEMA, options)?;
        let want = chain_id_bytes(&genesis, chain_id);
        {
            let tx = store.write()?;
            match tx.get::<Meta>(&"chain".to_string())? {
                Some(v) if v == want => {}
                Some(_) => {
                    return Err(ChainStoreError::OtherChain(format!(
                        "{} holds another chain (chain id or genesis differ); use a fresh data directory",
                        dir.display()
                    )))
                }
                None => {
                    tx.put::<Meta>(&"chain".to_string(), &want)?;
                    tx.put::<Meta>(&"head".to_string(), &genesis.hash.to_vec())?;
                }
            }
            tx.commit()?;
        }
        let root = genesis.hash;
        let mut this = Self {
            store,
            tree: ForkTree::new(root),
            metas: HashMap::from([(root, genesis)]),
            sampled: std::collections::HashSet::from([root]),
            chain_work: HashMap::from([(root, alloy_primitives::U256::ZERO)]),
            head: root,
        };
        this.load()?;
        Ok(this)
    }

    fn load(&mut self) -> Result<(), ChainStoreError> {
        let tx = self.store.read()?;
        let mut metas = Vec::new();
        for entry in tx.cursor::<Headers>()?.walk(None)? {
            let (hash, bytes) = entry?;
            let header = Header::decode(&bytes)
                .map_err(|e| ChainStoreError::Corrupt(format!("header {hash}: {e}")))?;
            let meta = BlockMeta::of(&header, hash)
                .map_err(|e| ChainStoreError::Corrupt(format!("header {hash}: {e}")))?;
            metas.push(meta);
        }
        let invalid: Vec<B256> =
            tx.cursor::<Invalid>()?.walk(None)?.map(|e| e.map(|(h, _)| h)).collect::<Result<_, _>>()?;
        metas.sort_by_key(|m| m.height);
        for m in metas {
            // Stored blocks were checked on the way in; one whose parent is missing (cannot
            // happen with one-transaction writes) is skipped rather than trusted.
            if self.tree.insert(m.hash, m.parent_hash, m.work, &m.siblings).is_ok() {
                add_chain_work(&mut self.chain_work, &m);
                self.metas.insert(m.hash, m);
            }
        }
        for h in invalid {
            self.tree.mark_invalid(&h);
        }
        for entry in tx.cursor::<Sampled>()?.walk(None)? {
            self.sampled.insert(entry?.0);
        }
        let head = tx
            .get::<Meta>(&"head".to_string())?
            .filter(|v| v.len() == 32)
            .map(|v| B256::from_slice(&v))
            .filter(|h| self.tree.contains(h))
            .unwrap_or_else(|| self.tree.root());
        self.head = head;
        Ok(())
    }

    /// The fork tree.
    pub fn tree(&self) -> &ForkTree {
        &self.tree
    }

    /// The block the execution client was last told is the head.
    pub fn head(&self) -> B256 {
        self.head
    }

    /// The meta of a known block.
    pub fn meta(&self, hash: &B256) -> Option<&BlockMeta> {
        self.metas.get(hash)
    }

    /// The stored header and payload of `hash`.
    pub fn block(&self, hash: &B256) -> Result<Option<(Header, Payload)>, ChainStoreError> {
        let tx = self.store.read()?;
        let (Some(h), Some(p)) = (tx.get::<Headers>(hash)?, tx.get::<Payloads>(hash)?) else {
            return Ok(None);
        };
        let header =
            Header::decode(&h).map_err(|e| ChainStoreError::Corrupt(format!("header {hash}: {e}")))?;
        let payload =
            Payload::from_bytes(&p).map_err(|e| ChainStoreError::Corrupt(format!("payload {hash}: {e}")))?;
        Ok(Some((header, payload)))
    }

    /// Stores a validated block (header and payload in one transaction) and adds it to the
    /// fork tree.
    pub fn insert(
        &mut self,
        header: &Header,
        payload: &Payload,
        meta: BlockMeta,
    ) -> Result<(), ChainStoreError> {
        let bytes = header.encode().map_err(|e| ChainStoreError::Corrupt(e.to_string()))?;
        self.tree
            .insert(meta.hash, meta.parent_hash, meta.work, &meta.siblings)
            .map_err(|e| ChainStoreError::Corrupt(e.to_string()))?;
        let tx = self.store.write()?;
        tx.put::<Headers>(&meta.hash, &bytes)?;
        tx.put::<Payloads>(&meta.hash, &payload.to_bytes())?;
        tx.put::<Exec>(&meta.hash, &ExecFields::of(payload).to_bytes().to_vec())?;
        tx.commit()?;
        add_chain_work(&mut self.chain_work, &meta);
        self.metas.insert(meta.hash, meta);
        Ok(())
    }

    /// Records that `hash` is invalid (it and its descendants leave fork choice).
    pub fn mark_invalid(&mut self, hash: &B256, why: &str) -> Result<(), ChainStoreError> {
        let tx = self.store.write()?;
        tx.put::<Invalid>(hash, &why.to_string())?;
        tx.commit()?;
        self.tree.mark_invalid(hash);
        Ok(())
    }

    /// The gas limit, gas used and base fee of a stored block's payload (`None` for genesis
    /// and unknown blocks).
    pub fn exec_fields(&self, hash: &B256) -> Result<Option<ExecFields>, ChainStoreError> {
        match self.store.read()?.get::<Exec>(hash)? {
            Some(b) => ExecFields::from_bytes(&b)
                .map(Some)
                .ok_or_else(|| ChainStoreError::Corrupt(format!("exec fields of {hash}"))),
            None => Ok(None),
        }
    }

    /// The work of `hash`'s chain from genesis, the block included (zero for unknown blocks).
    pub fn chain_work(&self, hash: &B256) -> alloy_primitives::U256 {
        self.chain_work.get(hash).copied().unwrap_or_default()
    }

    /// Whether sampling checked `hash`'s state (genesis counts as checked).
    pub fn is_sampled(&self, hash: &B256) -> bool {
        self.sampled.contains(hash)
    }

    /// Records that sampling checked `hash`'s state.
    pub fn mark_sampled(&mut self, hash: &B256) -> Result<(), ChainStoreError> {
        let tx = self.store.write()?;
        tx.put::<Sampled>(hash, &Vec::new())?;
        tx.commit()?;
        self.sampled.insert(*hash);
        Ok(())
    }

    /// Records the head the execution client was told.
    pub fn set_head(&mut self, hash: B256) -> Result<(), ChainStoreError> {
        let tx = self.store.write()?;
        tx.put::<Meta>(&"head".to_string(), &hash.to_vec())?;
        tx.commit()?;
        self.head = hash;
        Ok(())
    }
}
