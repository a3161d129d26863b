//! # qoin-cl-store
//!
//! Owns the consensus client's chain store in MDBX: every block it accepted (header and payload),
//! blocks found invalid, the head, the canonical chain by height, and the fork tree's root.
//! Fork choice works on a window: the blocks above a root kept [`MAX_REORG_DEPTH`] below the
//! head (moved up in steps of [`PRUNE_STEP`] blocks). When the root moves, the canonical blocks
//! it passes stay stored (peers sync from them) and every block of an abandoned branch is
//! deleted. On open only the window is read back, so a restart costs the same after a
//! million blocks as after a thousand. Each change is one transaction.
//!
//! | table | key → value |
//! |---|---|
//! | `Headers` | block hash → SSZ header |
//! | `Payloads` | block hash → protobuf execution payload |
//! | `Invalid` | block hash → why it is invalid |
//! | `Sampled` | block hash → `[]`: its state was sampled when it became canonical (the root and below count as sampled) |
//! | `Exec` | block hash → gas limit, gas used, base fee (24 bytes): what its child's fee fields follow |
//! | `Heights` | height → the hashes of the stored blocks at that height above the root (32 bytes each) |
//! | `Canonical` | height → hash of the head's chain |
//! | `Meta` | `"head"` → hash; `"chain"` → chain id ‖ genesis hash ‖ genesis state root; `"root"` → hash ‖ height ‖ chain work |

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use alloy_primitives::{B256, U256};
use qoin_consensus::forkchoice::ForkTree;
pub use qoin_consensus::forkchoice::MAX_REORG_DEPTH;
use qoin_consensus::validate::{BlockMeta, ExecFields};
use qoin_engine_api::Payload;
use qoin_primitives::Header;
use qoin_store::{table, Schema, Store, StoreError, StoreOptions};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The consensus client's schema.
pub const SCHEMA: Schema = Schema {
    name: "qoin-cl",
    version: 3,
    tables: &["Headers", "Payloads", "Invalid", "Sampled", "Exec", "Heights", "Canonical", "Meta"],
};

/// The root moves up once the head is this many blocks beyond [`MAX_REORG_DEPTH`] above it.
pub const PRUNE_STEP: u64 = 256;

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
table!(/// Hashes of the stored blocks at each height above the root.
       Heights: u64 => Vec<u8>);
table!(/// The head's chain by height.
       Canonical: u64 => B256);
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

/// Blocks checked against the fork window, to be written in one transaction
/// ([`ChainStore::begin_run`]).
pub struct StoreRun {
    store: Store,
    /// The store's fork tree with the run's blocks added.
    tree: ForkTree,
    blocks: Vec<(Vec<u8>, Payload, BlockMeta)>,
}

impl std::fmt::Debug for StoreRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreRun({} blocks)", self.blocks.len())
    }
}

impl StoreRun {
    /// Adds a validated block whose parent and siblings are in the window or earlier in the
    /// run; a block that is not is refused and the run stays as it was.
    pub fn push(
        &mut self,
        header: &Header,
        payload: Payload,
        meta: BlockMeta,
    ) -> Result<(), ChainStoreError> {
        let bytes = header.encode().map_err(|e| ChainStoreError::Corrupt(e.to_string()))?;
        self.tree
            .insert(meta.hash, meta.parent_hash, meta.work, &meta.siblings)
            .map_err(|e| ChainStoreError::Corrupt(format!("not in the fork window: {e}")))?;
        self.blocks.push((bytes, payload, meta));
        Ok(())
    }

    /// A block of the run, by hash.
    pub fn meta(&self, hash: &B256) -> Option<&BlockMeta> {
        self.blocks.iter().map(|(_, _, m)| m).find(|m| m.hash == *hash)
    }

    /// The fee fields of a block of the run, by hash.
    pub fn exec_fields(&self, hash: &B256) -> Option<ExecFields> {
        self.blocks.iter().find(|(_, _, m)| m.hash == *hash).map(|(_, p, _)| ExecFields::of(p))
    }

    /// How many blocks the run holds.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the run holds no block.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Writes the run's blocks (headers, payloads, fee fields, heights) in one transaction.
    /// Blocking: a run of full blocks is tens of megabytes.
    pub fn write(&self) -> Result<(), ChainStoreError> {
        let tx = self.store.write()?;
        for (header, payload, meta) in &self.blocks {
            put_block(&tx, header, payload, meta)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// A block's rows: its header, payload and fee fields, and its hash listed at its height.
fn put_block(
    tx: &qoin_store::WriteTx<'_>,
    header: &[u8],
    payload: &Payload,
    meta: &BlockMeta,
) -> Result<(), ChainStoreError> {
    tx.put::<Headers>(&meta.hash, &header.to_vec())?;
    tx.put::<Payloads>(&meta.hash, &payload.to_bytes())?;
    tx.put::<Exec>(&meta.hash, &ExecFields::of(payload).to_bytes().to_vec())?;
    let mut at = tx.get::<Heights>(&meta.height)?.unwrap_or_default();
    at.extend_from_slice(meta.hash.as_slice());
    tx.put::<Heights>(&meta.height, &at)?;
    Ok(())
}

/// Read-only access to the stored blocks, usable from another task than the [`ChainStore`]'s
/// (each read is one MDBX read transaction: it sees committed blocks only).
#[derive(Debug, Clone)]
pub struct ChainReader {
    store: Store,
}

impl ChainReader {
    /// As [`ChainStore::canonical_range`].
    pub fn canonical_range(&self, start: u64, count: u64) -> Result<Vec<B256>, ChainStoreError> {
        canonical_range(&self.store, start, count)
    }

    /// A stored block's header (`None` for unknown blocks and genesis, which has none).
    pub fn header(&self, hash: &B256) -> Result<Option<Header>, ChainStoreError> {
        self.store.read()?.get::<Headers>(hash)?.map(|h| decode_header(hash, &h)).transpose()
    }

    /// A stored block's payload as stored: its encoding ([`Payload::to_bytes`]), not decoded.
    pub fn payload_bytes(&self, hash: &B256) -> Result<Option<Vec<u8>>, ChainStoreError> {
        Ok(self.store.read()?.get::<Payloads>(hash)?)
    }
}

fn canonical_range(store: &Store, start: u64, count: u64) -> Result<Vec<B256>, ChainStoreError> {
    let tx = store.read()?;
    let mut out = Vec::new();
    for entry in tx.cursor::<Canonical>()?.walk(Some(&start))? {
        let (height, hash) = entry?;
        if height >= start.saturating_add(count) || height != start.saturating_add(out.len() as u64) {
            break;
        }
        out.push(hash);
    }
    Ok(out)
}

fn decode_header(hash: &B256, bytes: &[u8]) -> Result<Header, ChainStoreError> {
    Header::decode(bytes).map_err(|e| ChainStoreError::Corrupt(format!("header {hash}: {e}")))
}

fn block(store: &Store, hash: &B256) -> Result<Option<(Header, Payload)>, ChainStoreError> {
    let tx = store.read()?;
    let (Some(h), Some(p)) = (tx.get::<Headers>(hash)?, tx.get::<Payloads>(hash)?) else {
        return Ok(None);
    };
    let header = decode_header(hash, &h)?;
    let payload =
        Payload::from_bytes(&p).map_err(|e| ChainStoreError::Corrupt(format!("payload {hash}: {e}")))?;
    Ok(Some((header, payload)))
}

/// The chain store plus the in-memory fork tree and block metas of the window above the root.
pub struct ChainStore {
    store: Store,
    tree: ForkTree,
    metas: HashMap<B256, BlockMeta>,
    sampled: HashSet<B256>,
    /// Work of each block's chain from genesis (the block included).
    chain_work: HashMap<B256, U256>,
    head: B256,
}

impl std::fmt::Debug for ChainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainStore({:?}, {} blocks in the window)", self.store, self.tree.len())
    }
}

fn chain_id_bytes(genesis: &BlockMeta, chain_id: u64) -> Vec<u8> {
    let mut v = chain_id.to_be_bytes().to_vec();
    v.extend_from_slice(genesis.hash.as_slice());
    v.extend_from_slice(genesis.state_root.as_slice());
    v
}

/// Records `m`'s chain work: its parent's plus its own.
fn add_chain_work(chain_work: &mut HashMap<B256, U256>, m: &BlockMeta) {
    let parent = chain_work.get(&m.parent_hash).copied().unwrap_or_default();
    chain_work.insert(m.hash, parent.saturating_add(m.work));
}

/// The `"root"` record: hash ‖ height ‖ chain work.
fn root_bytes(hash: &B256, height: u64, work: U256) -> Vec<u8> {
    let mut v = hash.to_vec();
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&work.to_be_bytes::<32>());
    v
}

fn parse_root(v: &[u8]) -> Option<(B256, u64, U256)> {
    (v.len() == 72).then_some(())?;
    let height = u64::from_be_bytes(v[32..40].try_into().ok()?);
    Some((B256::from_slice(&v[..32]), height, U256::from_be_slice(&v[40..])))
}

fn hashes_of(v: &[u8]) -> impl Iterator<Item = B256> + '_ {
    v.chunks_exact(32).map(B256::from_slice)
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
                    tx.put::<Meta>(&"root".to_string(), &root_bytes(&genesis.hash, 0, U256::ZERO))?;
                    tx.put::<Canonical>(&0, &genesis.hash)?;
                }
            }
            tx.commit()?;
        }
        let root = genesis.hash;
        let mut this = Self {
            store,
            tree: ForkTree::new(root),
            metas: HashMap::from([(root, genesis)]),
            sampled: HashSet::from([root]),
            chain_work: HashMap::from([(root, U256::ZERO)]),
            head: root,
        };
        this.load()?;
        Ok(this)
    }

    fn decode_meta(hash: &B256, bytes: &[u8]) -> Result<BlockMeta, ChainStoreError> {
        let header = decode_header(hash, bytes)?;
        BlockMeta::of(&header, *hash).map_err(|e| ChainStoreError::Corrupt(format!("header {hash}: {e}")))
    }

    /// Reads the window back: the root, then the blocks above it by height.
    fn load(&mut self) -> Result<(), ChainStoreError> {
        let tx = self.store.read()?;
        let (root, root_height, root_work) = tx
            .get::<Meta>(&"root".to_string())?
            .and_then(|v| parse_root(&v))
            .ok_or_else(|| ChainStoreError::Corrupt("the fork tree's root record".into()))?;
        if root_height > 0 {
            let bytes = tx
                .get::<Headers>(&root)?
                .ok_or_else(|| ChainStoreError::Corrupt(format!("the root {root} has no header")))?;
            let meta = Self::decode_meta(&root, &bytes)?;
            self.tree = ForkTree::with_root(root, root_height);
            self.metas = HashMap::from([(root, meta)]);
            self.sampled = HashSet::from([root]);
            self.chain_work = HashMap::from([(root, root_work)]);
        }
        let start = root_height.saturating_add(1);
        for entry in tx.cursor::<Heights>()?.walk(Some(&start))? {
            let (_, hashes) = entry?;
            for hash in hashes_of(&hashes) {
                let Some(bytes) = tx.get::<Headers>(&hash)? else { continue };
                let m = Self::decode_meta(&hash, &bytes)?;
                // Stored blocks were checked on the way in; one whose parent is missing (a
                // branch the root left behind) is skipped rather than trusted.
                if self.tree.insert(m.hash, m.parent_hash, m.work, &m.siblings).is_ok() {
                    add_chain_work(&mut self.chain_work, &m);
                    if tx.get::<Sampled>(&m.hash)?.is_some() {
                        self.sampled.insert(m.hash);
                    }
                    self.metas.insert(m.hash, m);
                }
            }
        }
        let mut invalid = Vec::new();
        for entry in tx.cursor::<Invalid>()?.walk(None)? {
            let (h, _) = entry?;
            if self.tree.contains(&h) {
                invalid.push(h);
            }
        }
        self.tree.mark_invalid_many(&invalid);
        let head = tx
            .get::<Meta>(&"head".to_string())?
            .filter(|v| v.len() == 32)
            .map(|v| B256::from_slice(&v))
            .filter(|h| self.tree.contains(h))
            .unwrap_or_else(|| self.tree.root());
        self.head = head;
        Ok(())
    }

    /// The fork tree (the window above the root).
    pub fn tree(&self) -> &ForkTree {
        &self.tree
    }

    /// The block the execution client was last told is the head.
    pub fn head(&self) -> B256 {
        self.head
    }

    /// The meta of a block in the window (the root included).
    pub fn meta(&self, hash: &B256) -> Option<&BlockMeta> {
        self.metas.get(hash)
    }

    /// Whether the block is stored: in the window, or a canonical block below the root.
    pub fn knows(&self, hash: &B256) -> Result<bool, ChainStoreError> {
        Ok(self.metas.contains_key(hash) || self.store.read()?.get::<Headers>(hash)?.is_some())
    }

    /// The hash of the head's chain at `height`, if the chain reaches it.
    pub fn canonical_hash(&self, height: u64) -> Result<Option<B256>, ChainStoreError> {
        Ok(self.store.read()?.get::<Canonical>(&height)?)
    }

    /// The hashes of the head's chain at heights `start..start + count` (stops at the head).
    pub fn canonical_range(&self, start: u64, count: u64) -> Result<Vec<B256>, ChainStoreError> {
        canonical_range(&self.store, start, count)
    }

    /// The stored header and payload of `hash`.
    pub fn block(&self, hash: &B256) -> Result<Option<(Header, Payload)>, ChainStoreError> {
        block(&self.store, hash)
    }

    /// Read access to the stored blocks for another task (peers' requests answered while this
    /// store is busy importing).
    pub fn reader(&self) -> ChainReader {
        ChainReader { store: self.store.clone() }
    }

    /// Stores a validated block (header and payload in one transaction) and adds it to the
    /// fork tree. Its parent must be in the window.
    pub fn insert(
        &mut self,
        header: &Header,
        payload: &Payload,
        meta: BlockMeta,
    ) -> Result<(), ChainStoreError> {
        let bytes = header.encode().map_err(|e| ChainStoreError::Corrupt(e.to_string()))?;
        // Checked before anything is written; the tree is changed only after the commit.
        self.tree
            .check_insert(&meta.hash, &meta.parent_hash, &meta.siblings)
            .map_err(|e| ChainStoreError::Corrupt(format!("not in the fork window: {e}")))?;
        let tx = self.store.write()?;
        put_block(&tx, &bytes, payload, &meta)?;
        tx.commit()?;
        self.tree
            .insert(meta.hash, meta.parent_hash, meta.work, &meta.siblings)
            .map_err(|e| ChainStoreError::Corrupt(e.to_string()))?;
        add_chain_work(&mut self.chain_work, &meta);
        self.metas.insert(meta.hash, meta);
        Ok(())
    }
    /// Starts a run of blocks to store in one transaction: [`StoreRun::push`] checks each
    /// against the fork window (its parent and siblings there or earlier in the run),
    /// [`StoreRun::write`] writes them (on any thread, while the store is used for reads), and
    /// [`Self::add_run`] adds them to the fork tree.
    pub fn begin_run(&self) -> StoreRun {
        StoreRun { store: self.store.clone(), tree: self.tree.clone(), blocks: Vec::new() }
    }

    /// Adds a run that [`StoreRun::write`] wrote to the fork tree (`&mut self` was held since
    /// [`Self::begin_run`], so the tree it was checked against is still this store's).
    pub fn add_run(&mut self, run: StoreRun) {
        self.tree = run.tree;
        for (_, _, meta) in run.blocks {
            add_chain_work(&mut self.chain_work, &meta);
            self.metas.insert(meta.hash, meta);
        }
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
    pub fn chain_work(&self, hash: &B256) -> U256 {
        self.chain_work.get(hash).copied().unwrap_or_default()
    }

    /// Whether sampling checked `hash`'s state (the root, and so genesis, counts as checked).
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

    /// Records the head the execution client was told, rewrites the canonical index where
    /// the head's chain differs from the last one, and moves the root up when the head has
    /// gone [`PRUNE_STEP`] blocks past [`MAX_REORG_DEPTH`] above it.
    pub fn set_head(&mut self, hash: B256) -> Result<(), ChainStoreError> {
        let height = self
            .tree
            .height(&hash)
            .ok_or_else(|| ChainStoreError::Corrupt(format!("head {hash} is not in the fork window")))?;
        let tx = self.store.write()?;
        tx.put::<Meta>(&"head".to_string(), &hash.to_vec())?;
        // Above the new head: a shorter chain won; forget the old one's heights.
        let mut above = Vec::new();
        for entry in tx.cursor::<Canonical>()?.walk(Some(&height.saturating_add(1)))? {
            above.push(entry?.0);
        }
        for h in above {
            tx.delete::<Canonical>(&h)?;
        }
        // Down from the head until the index already agrees (at the latest, the root).
        let mut cursor = hash;
        while let Some(m) = self.metas.get(&cursor) {
            if tx.get::<Canonical>(&m.height)? == Some(cursor) {
                break;
            }
            tx.put::<Canonical>(&m.height, &cursor)?;
            if cursor == self.tree.root() {
                break;
            }
            cursor = m.parent_hash;
        }
        tx.commit()?;
        self.head = hash;
        if height >= self.tree.root_height().saturating_add(MAX_REORG_DEPTH + PRUNE_STEP) {
            if let Some(new_root) = self.tree.ancestor_at(&hash, height - MAX_REORG_DEPTH) {
                self.prune(new_root)?;
            }
        }
        Ok(())
    }

    /// Makes `new_root` (a canonical block) the root: the canonical blocks below it stay
    /// stored, every other block that does not descend from it is deleted.
    fn prune(&mut self, new_root: B256) -> Result<(), ChainStoreError> {
        let old_root_height = self.tree.root_height();
        let new_height = self.tree.height(&new_root).unwrap_or(old_root_height);
        let canonical: HashSet<B256> = self.tree.path_to(&new_root).into_iter().collect();
        let mut tree = self.tree.clone();
        let dropped = tree.prune(&new_root);
        let tx = self.store.write()?;
        let mut abandoned = 0usize;
        for (h, _) in &dropped {
            if canonical.contains(h) {
                tx.delete::<Sampled>(h)?;
                continue;
            }
            abandoned += 1;
            for d in [
                tx.delete::<Headers>(h),
                tx.delete::<Payloads>(h),
                tx.delete::<Exec>(h),
                tx.delete::<Sampled>(h),
                tx.delete::<Invalid>(h),
            ] {
                d?;
            }
        }
        // Heights at and below the new root: the canonical index covers them. Above it, only
        // the blocks still in the window stay listed.
        let mut rewrite = Vec::new();
        for entry in tx.cursor::<Heights>()?.walk(Some(&old_root_height))? {
            let (height, hashes) = entry?;
            if height <= new_height {
                rewrite.push((height, None));
                continue;
            }
            let kept: Vec<u8> = hashes_of(&hashes).filter(|h| tree.contains(h)).flat_map(|h| h.0).collect();
            if kept.len() != hashes.len() {
                rewrite.push((height, Some(kept)));
            }
        }
        for (height, kept) in rewrite {
            match kept {
                Some(k) if !k.is_empty() => tx.put::<Heights>(&height, &k)?,
                _ => {
                    tx.delete::<Heights>(&height)?;
                }
            }
        }
        let work = self.chain_work(&new_root);
        tx.put::<Meta>(&"root".to_string(), &root_bytes(&new_root, new_height, work))?;
        tx.commit()?;
        for (h, _) in &dropped {
            self.metas.remove(h);
            self.chain_work.remove(h);
            self.sampled.remove(h);
        }
        self.sampled.insert(new_root);
        self.tree = tree;
        tracing::debug!(root = %new_root, height = new_height, abandoned, "fork window moved up");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
