//! # qoin-el-chain
//!
//! Owns the execution client's chain in MDBX: writing genesis, importing blocks on the head
//! (each one MDBX write transaction: a crash leaves the last committed block, never half of
//! one), building payloads, and unwinding to an ancestor through the change sets for reorgs.
//! Execution itself is `qoin-evm`'s; the tables are `qoin-el-storage`'s.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use qoin_el_storage::block::{next_base_fee, Body, Credit, ElHeader, Receipt, SealedBlock};
use qoin_el_storage::reader::{decode_header, head, HEAD_KEY};
use qoin_el_storage::tables::{
    AccountChanges, Accounts, Bodies, Bytecodes, HeaderNumbers, Headers, Meta, PriorAccount, Receipts,
    Storage, StorageChanges, TrieNodes, TxLocation, TxLookup, Word, SCHEMA,
};
use qoin_evm::execute::{
    execute, post_state, AccountDiff, BlockEnvInput, ExecError, Executed, Mode, PostState,
};
use qoin_primitives::{Genesis, SignedTx};
use qoin_store::{Store, StoreOptions, WriteTx};
use qoin_trie::EMPTY_ROOT;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Lowest base fee a block may have, in shor per gas.
pub use qoin_primitives::fee::MIN_BASE_FEE;
const GENESIS_KEY: &str = "genesis";

/// The execution chain: state, canonical blocks and their change sets.
pub struct Chain {
    store: Store,
    genesis: Genesis,
    /// Bumped after every write that moves the head (import, a built block, an unwind), for
    /// JSON-RPC subscriptions to wake on.
    head_moves: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chain({:?}, chain id {})", self.store, self.genesis.chain_id)
    }
}

fn genesis_id(g: &Genesis) -> Vec<u8> {
    keccak256(g.to_json()).to_vec()
}

impl Chain {
    /// Opens the chain in `dir`, writing the genesis block on first use. A data directory
    /// holding another genesis is an error.
    pub fn open(dir: &Path, genesis: Genesis, options: StoreOptions) -> Result<Self, ExecError> {
        let store = Store::open(dir, &SCHEMA, options)?;
        let chain = Self { store, genesis, head_moves: tokio::sync::watch::Sender::new(0) };
        let stored = chain.store.read()?.get::<Meta>(&GENESIS_KEY.to_string())?;
        match stored {
            Some(id) if id == genesis_id(&chain.genesis) => {}
            Some(_) => {
                return Err(ExecError::InvalidBlock(format!(
                    "{} holds a chain from another genesis; use a fresh data directory",
                    dir.display()
                )))
            }
            None => chain.write_genesis()?,
        }
        Ok(chain)
    }

    /// Wakes when the head moves (a new block, a built block, an unwind); read the head then.
    pub fn watch_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head_moves.subscribe()
    }

    fn head_moved(&self) {
        self.head_moves.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The genesis this chain runs.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The underlying store (read transactions for RPC).
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn write_genesis(&self) -> Result<(), ExecError> {
        let tx = self.store.write()?;
        let mut diffs = BTreeMap::new();
        let mut codes = Vec::new();
        for (address, acct) in &self.genesis.state() {
            let code_hash =
                if acct.code.is_empty() { revm::primitives::KECCAK_EMPTY } else { keccak256(&acct.code) };
            if !acct.code.is_empty() {
                codes.push((code_hash, acct.code.clone()));
            }
            let storage = acct.storage.iter().map(|(k, v)| (*k, U256::from_be_bytes(v.0))).collect();
            diffs.insert(
                *address,
                AccountDiff { info: Some((acct.nonce, acct.balance, code_hash)), storage, wipe: false },
            );
        }
        let post = post_state(&tx, EMPTY_ROOT, diffs, codes)?;
        let empty = qoin_el_storage::block::ordered_root::<&[u8]>(&[]);
        let header = ElHeader {
            parent_hash: B256::ZERO,
            number: 0,
            timestamp: self.genesis.timestamp,
            beneficiary: Address::ZERO,
            state_root: post.state_root,
            transactions_root: empty,
            receipts_root: empty,
            credits_root: empty,
            logs_bloom: Default::default(),
            gas_limit: self.genesis.gas_limit,
            gas_used: 0,
            base_fee_per_gas: qoin_primitives::fee::genesis_base_fee(&self.genesis),
            prev_randao: B256::ZERO,
        };
        write_block(&tx, &header, &Body::default(), &[], &[], &post)?;
        tx.put::<Meta>(&GENESIS_KEY.to_string(), &genesis_id(&self.genesis))?;
        tx.commit()?;
        Ok(())
    }

    /// The canonical head.
    pub fn head(&self) -> Result<ElHeader, ExecError> {
        Ok(head(&self.store.read()?)?)
    }

    /// The canonical header at `number`.
    pub fn header(&self, number: u64) -> Result<Option<ElHeader>, ExecError> {
        Ok(self.store.read()?.get::<Headers>(&number)?.map(|rlp| decode_header(&rlp)).transpose()?)
    }

    /// Executes `candidates` on the head as a new payload, skipping those that are invalid
    /// or do not fit; nothing is written.
    pub fn build(
        &self,
        env: &BlockEnvInput,
        candidates: Vec<SignedTx>,
        credits: Vec<Credit>,
    ) -> Result<Executed, ExecError> {
        let tx = self.store.read()?;
        let parent = head(&tx)?;
        execute(&tx, &parent, env, candidates, credits, Mode::Build)
    }

    /// The environment of a child of `parent` with these attributes.
    pub fn child_env(
        &self,
        parent: &ElHeader,
        timestamp: u64,
        beneficiary: Address,
        prev_randao: B256,
    ) -> BlockEnvInput {
        child_env(self.genesis.chain_id, parent, timestamp, beneficiary, prev_randao)
    }

    /// Validates `header` + `body` against the head, executes it and writes it in one
    /// transaction. Any mismatch or invalid transaction leaves the database unchanged.
    pub fn import(&self, header: &ElHeader, body: &Body) -> Result<B256, ExecError> {
        self.import_with(header, body, &|_| false)
    }

    /// [`Chain::import`], skipping the signature check of transactions `already_verified`
    /// says were verified with this exact signature (the pool's cache,
    /// `qoin_txpool::TxPool::verified`).
    pub fn import_with(
        &self,
        header: &ElHeader,
        body: &Body,
        already_verified: &(dyn Fn(&SignedTx) -> bool + Sync),
    ) -> Result<B256, ExecError> {
        let sealed = SealedBlock::seal(header, body.clone());
        if sealed.header() != header {
            return Err(ExecError::InvalidBlock(header_mismatch(sealed.header(), header)));
        }
        self.import_sealed(&sealed, already_verified)
    }

    /// [`Chain::import_with`] for a block whose body roots were computed from its body
    /// already (the engine's payload, whose hash it checked): the transactions' bytes are not
    /// hashed again.
    pub fn import_sealed(
        &self,
        block: &SealedBlock,
        already_verified: &(dyn Fn(&SignedTx) -> bool + Sync),
    ) -> Result<B256, ExecError> {
        let tx = self.store.write()?;
        import_in(&tx, &self.genesis, block, already_verified)?;
        tx.commit()?;
        self.head_moved();
        Ok(block.header().hash())
    }

    /// Imports `blocks` (each the child of the one before, the first a child of the head) in
    /// one MDBX write transaction: a run of blocks shares the pages their writes touch, where a
    /// transaction per block writes each of them again (a sync imports runs of blocks). The
    /// blocks before the first that fails are committed; that one and those after are not.
    /// Returns how many were imported and the failure, if any.
    pub fn import_batch(
        &self,
        blocks: &[SealedBlock],
        already_verified: &(dyn Fn(&SignedTx) -> bool + Sync),
    ) -> Result<(usize, Option<ExecError>), ExecError> {
        let tx = self.store.write()?;
        let mut failed = None;
        for (i, block) in blocks.iter().enumerate() {
            if let Err(e) = import_in(&tx, &self.genesis, block, already_verified) {
                failed = Some((i, e));
                break;
            }
        }
        let Some((i, e)) = failed else {
            tx.commit()?;
            if !blocks.is_empty() {
                self.head_moved();
            }
            return Ok((blocks.len(), None));
        };
        // The failed block's writes may be half done: the transaction is dropped and the blocks
        // before it imported again in a new one (a failure is rare; MDBX's nested transactions,
        // which could undo just the failed block, do not work with a writable map).
        drop(tx);
        if i > 0 {
            let tx = self.store.write()?;
            for block in &blocks[..i] {
                import_in(&tx, &self.genesis, block, already_verified)?;
            }
            tx.commit()?;
            self.head_moved();
        }
        Ok((i, Some(e)))
    }

    /// Writes a block this node built (`build` on the current head), after checking the head
    /// has not moved.
    pub fn commit_built(&self, executed: &Executed) -> Result<B256, ExecError> {
        let tx = self.store.write()?;
        let parent = head(&tx)?;
        if executed.header.parent_hash != parent.hash() {
            return Err(ExecError::InvalidBlock("the head moved since the payload was built".into()));
        }
        let h = &executed.header;
        let body = Body {
            transactions: executed.transactions.iter().map(|t| Bytes::from(t.encode())).collect(),
            credits: executed.credits.clone(),
        };
        write_block(&tx, h, &body, &executed.transactions, &executed.receipts, &executed.post)?;
        tx.commit()?;
        self.head_moved();
        Ok(h.hash())
    }

    /// Writes a block without transactions whose only effect is `diffs` (and `codes`): how a
    /// development node applies `anvil_setBalance` and its kin, so that every block's state
    /// root still matches its state and an unwind (`evm_revert`) undoes the edit like any
    /// other block. Such a block cannot be imported by another node (its effect is not in its
    /// body); only a node producing its own blocks may write one.
    pub fn commit_state_edit(
        &self,
        env: &BlockEnvInput,
        diffs: BTreeMap<Address, AccountDiff>,
        codes: Vec<(B256, Bytes)>,
    ) -> Result<ElHeader, ExecError> {
        let tx = self.store.write()?;
        let parent = head(&tx)?;
        if env.number != parent.number + 1 || env.timestamp < parent.timestamp {
            return Err(ExecError::InvalidBlock(format!(
                "an edit block must follow the head #{} (got #{} at {})",
                parent.number, env.number, env.timestamp
            )));
        }
        // The empty block's header gives the roots, bloom and base fee; the edits give the state.
        let empty = execute(&tx, &parent, env, Vec::new(), Vec::new(), Mode::Build)?;
        if !empty.post.accounts.is_empty() || !empty.post.storage.is_empty() {
            return Err(ExecError::InvalidBlock("an empty block changed state".into()));
        }
        let post = post_state(&tx, parent.state_root, diffs, codes)?;
        let header = ElHeader { state_root: post.state_root, ..empty.header };
        write_block(&tx, &header, &Body::default(), &[], &[], &post)?;
        tx.commit()?;
        self.head_moved();
        Ok(header)
    }

    /// Unwinds the canonical chain to `number` (an ancestor of the head), restoring the state
    /// from the change sets, one write transaction in all.
    pub fn unwind_to(&self, number: u64) -> Result<(), ExecError> {
        let tx = self.store.write()?;
        let mut h = head(&tx)?.number;
        if number > h {
            return Err(ExecError::InvalidBlock(format!("cannot unwind to {number}: head is {h}")));
        }
        while h > number {
            unwind_one(&tx, h)?;
            h -= 1;
        }
        tx.put::<Meta>(&HEAD_KEY.to_string(), &number.to_be_bytes().to_vec())?;
        tx.commit()?;
        self.head_moved();
        Ok(())
    }
}

/// Validates `block` against the head in `tx`, executes it and writes it into `tx` (not
/// committed).
fn import_in(
    tx: &WriteTx<'_>,
    genesis: &Genesis,
    block: &SealedBlock,
    already_verified: &(dyn Fn(&SignedTx) -> bool + Sync),
) -> Result<(), ExecError> {
    let (header, body) = (block.header(), block.body());
    let parent = head(tx)?;

    if header.parent_hash != parent.hash() {
        return Err(ExecError::InvalidBlock(format!(
            "parent {} is not the head {} (#{})",
            header.parent_hash,
            parent.hash(),
            parent.number
        )));
    }
    // Non-decreasing seconds: the consensus header's millisecond timestamp is the strictly
    // increasing one, and several blocks may share a second at a 1 s target.
    if header.timestamp < parent.timestamp {
        return Err(ExecError::InvalidBlock("timestamp before the parent's".into()));
    }
    // Decoded on every core (each derives its sender's address and id: two keccaks); the
    // first malformed one in block order is the one reported.
    let decoded: Vec<Result<SignedTx, String>> =
        body.transactions.par_iter().map(|raw| SignedTx::decode(raw).map_err(|e| e.to_string())).collect();
    let mut txs = Vec::with_capacity(decoded.len());
    for (index, t) in decoded.into_iter().enumerate() {
        txs.push(t.map_err(|reason| ExecError::InvalidTransaction { index, reason })?);
    }
    let bad = txs.par_iter().position_first(|t| !already_verified(t) && t.verify_signature().is_err());
    if let Some(index) = bad {
        return Err(ExecError::InvalidTransaction { index, reason: "bad signature".into() });
    }
    let env = child_env(genesis.chain_id, &parent, header.timestamp, header.beneficiary, header.prev_randao);
    let mode = Mode::Import { transactions_root: header.transactions_root };
    let executed = execute(tx, &parent, &env, txs, body.credits.clone(), mode)?;
    if executed.header != *header {
        return Err(ExecError::InvalidBlock(header_mismatch(&executed.header, header)));
    }
    // The body as it came: its encodings are what the transactions root covers.
    write_block(tx, header, body, &executed.transactions, &executed.receipts, &executed.post)?;
    Ok(())
}

fn child_env(
    chain_id: u64,
    parent: &ElHeader,
    timestamp: u64,
    beneficiary: Address,
    prev_randao: B256,
) -> BlockEnvInput {
    BlockEnvInput {
        number: parent.number + 1,
        timestamp,
        beneficiary,
        gas_limit: parent.gas_limit,
        base_fee: next_base_fee(parent, MIN_BASE_FEE),
        prev_randao,
        chain_id,
    }
}

fn header_mismatch(got: &ElHeader, want: &ElHeader) -> String {
    let mut diffs = Vec::new();
    macro_rules! cmp {
        ($($f:ident),*) => {$(
            if got.$f != want.$f {
                diffs.push(format!("{} (block says {:?}, execution gives {:?})", stringify!($f), want.$f, got.$f));
            }
        )*};
    }
    cmp!(
        parent_hash,
        number,
        timestamp,
        beneficiary,
        state_root,
        transactions_root,
        receipts_root,
        credits_root,
        logs_bloom,
        gas_limit,
        gas_used,
        base_fee_per_gas,
        prev_randao
    );
    format!("header does not match execution: {}", diffs.join("; "))
}

/// Writes a block: `body` holds the transactions' encodings (those of `transactions`, the
/// same transactions decoded) and the credits.
fn write_block(
    tx: &WriteTx<'_>,
    header: &ElHeader,
    body: &Body,
    transactions: &[SignedTx],
    receipts: &[Receipt],
    post: &PostState,
) -> Result<(), ExecError> {
    let n = header.number;
    for (hash, rlp) in &post.trie_nodes {
        tx.put::<TrieNodes>(hash, rlp)?;
    }
    for (address, before, after) in &post.accounts {
        tx.put::<AccountChanges>(&(n, *address), &PriorAccount(*before))?;
        match after {
            Some(a) => tx.put::<Accounts>(address, a)?,
            None => {
                tx.delete::<Accounts>(address)?;
            }
        }
    }
    for (address, slot, before, after) in &post.storage {
        tx.put::<StorageChanges>(&(n, (*address, *slot)), &Word(*before))?;
        if after.is_zero() {
            tx.delete::<Storage>(&(*address, *slot))?;
        } else {
            tx.put::<Storage>(&(*address, *slot), &Word(*after))?;
        }
    }
    for (hash, code) in &post.codes {
        tx.put::<Bytecodes>(hash, &code.to_vec())?;
    }
    let hash = header.hash();
    tx.put::<Headers>(&n, &alloy_rlp::encode(header))?;
    tx.put::<HeaderNumbers>(&hash, &n)?;
    tx.put::<Bodies>(&n, &alloy_rlp::encode(body))?;
    tx.put::<Receipts>(&n, &alloy_rlp::encode(receipts.to_vec()))?;
    for (index, t) in transactions.iter().enumerate() {
        tx.put::<TxLookup>(&t.id(), &TxLocation { block: n, index: index as u32 })?;
    }
    tx.put::<Meta>(&HEAD_KEY.to_string(), &n.to_be_bytes().to_vec())?;
    Ok(())
}

fn unwind_one(tx: &WriteTx<'_>, n: u64) -> Result<(), ExecError> {
    let accounts: Vec<((u64, Address), PriorAccount)> = tx
        .cursor::<AccountChanges>()?
        .walk(Some(&(n, Address::ZERO)))?
        .take_while(|e| e.as_ref().map_or(true, |((b, _), _)| *b == n))
        .collect::<Result<_, _>>()?;
    for ((_, address), prior) in accounts {
        match prior.0 {
            Some(a) => tx.put::<Accounts>(&address, &a)?,
            None => {
                tx.delete::<Accounts>(&address)?;
            }
        }
        tx.delete::<AccountChanges>(&(n, address))?;
    }
    type SlotChange = ((u64, (Address, B256)), Word);
    let slots: Vec<SlotChange> = tx
        .cursor::<StorageChanges>()?
        .walk(Some(&(n, (Address::ZERO, B256::ZERO))))?
        .take_while(|e| e.as_ref().map_or(true, |((b, _), _)| *b == n))
        .collect::<Result<_, _>>()?;
    for ((_, key), prior) in slots {
        if prior.0.is_zero() {
            tx.delete::<Storage>(&key)?;
        } else {
            tx.put::<Storage>(&key, &prior)?;
        }
        tx.delete::<StorageChanges>(&(n, key))?;
    }
    if let Some(raw) = tx.get::<Bodies>(&n)? {
        let body: Body = alloy_rlp::Decodable::decode(&mut &raw[..])
            .map_err(|e| ExecError::InvalidBlock(format!("stored body {n}: {e}")))?;
        for t in &body.transactions {
            if let Ok(t) = SignedTx::decode(t) {
                tx.delete::<TxLookup>(&t.id())?;
            }
        }
    }
    if let Some(rlp) = tx.get::<Headers>(&n)? {
        tx.delete::<HeaderNumbers>(&keccak256(&rlp))?;
    }
    tx.delete::<Headers>(&n)?;
    tx.delete::<Bodies>(&n)?;
    tx.delete::<Receipts>(&n)?;
    Ok(())
}

#[cfg(test)]
mod tests;
