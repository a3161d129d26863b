//! # qoin-el-engine
//!
//! Owns the engine API backend of `qoin-el` (spec §15): what the consensus client calls.
//!
//! The execution client keeps one canonical chain in MDBX. A payload whose parent is the
//! head is executed and written at once (it becomes the tentative head; a
//! `ForkchoiceUpdated` to another block unwinds it). A payload whose parent is known but not
//! the head is stored in memory, not executed: `ACCEPTED`. `ForkchoiceUpdated` to such a
//! block unwinds the canonical chain to the fork point through the change sets and executes
//! the side branch; a block that fails is remembered as invalid and the answer is `INVALID`
//! with the latest valid hash. Blocks unwound by a reorg are kept as side blocks (so the
//! chain can switch back) and their transactions return to the pool. Side blocks are capped
//! in number and bytes, and pruned once the head is more than 1,024 blocks above them.
//!
//! It also lists and serves the pool by transaction id, for the pool exchange between peers.
//!
//! Payloads are built on `ForkchoiceUpdated` with attributes, keyed by the attributes' id,
//! and rebuilt on `GetPayload` when the pool has changed since (a better payload).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use qoin_el_chain::Chain;
use qoin_el_node::SubmitError;
use qoin_el_node::{LatestState, LocalMining, Node};
use qoin_el_storage::block::{Body, Credit, ElHeader, SealedBlock};
use qoin_el_storage::reader::TrieReader;
use qoin_el_storage::tables::{Bodies, HeaderNumbers, Headers};
use qoin_engine_api::{
    AccountProof, Attributes, EngineBackend, EngineError, Payload, PayloadId, PayloadStatus, PooledTx,
    SyncProgress, TxVerdict, Verdict,
};
use qoin_evm::{BlockEnvInput, ExecError, Executed};
use qoin_metrics::Histogram;
use qoin_primitives::SignedTx;
use qoin_tracing::targets;
use qoin_txpool::PoolError;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Payload ids kept for `GetPayload` (oldest dropped first).
const MAX_BUILDING: usize = 64;
/// Side blocks kept in memory (the oldest dropped first).
const MAX_SIDE: usize = 4096;
/// Bytes of side blocks kept in memory (see [`side_size`]; the oldest dropped first): side
/// branches that peers send cheaply cannot hold more memory than this (eight blocks of the
/// largest size).
const MAX_SIDE_BYTES: usize = 256 << 20;
/// Deepest reorg followed.
const MAX_REORG_DEPTH: usize = 1024;

struct Building {
    head: B256,
    env: BlockEnvInput,
    credits: Vec<Credit>,
    executed: Executed,
    pool_generation: u64,
}

#[derive(Default)]
struct State {
    building: HashMap<PayloadId, Building>,
    order: VecDeque<PayloadId>,
    /// Known blocks not on the canonical chain, by hash.
    /// Side blocks, each with whether its signatures are known good (executed before, or
    /// verified by the consensus client).
    side: HashMap<B256, (ElHeader, Body, bool)>,
    side_order: VecDeque<B256>,
    /// The sizes of the blocks in `side`, summed.
    side_bytes: usize,
    /// Blocks found invalid: hash → (latest valid ancestor, reason).
    invalid: HashMap<B256, (Option<B256>, String)>,
}

/// What a side block costs in memory, roughly: its transactions' bytes, its credits and the
/// header.
fn side_size(body: &Body) -> usize {
    body.transactions.iter().map(|t| t.len()).sum::<usize>() + body.credits.len() * 52 + 512
}

/// The engine API backend over a [`Node`].
pub struct EngineHandler {
    node: Arc<Node>,
    state: Mutex<State>,
    latency: Option<Latency>,
    /// Check signatures the consensus client says it verified (`--engine.verify-all-signatures`).
    verify_all_signatures: bool,
}

struct Latency {
    new_payload: Histogram,
    new_payloads: Histogram,
    forkchoice: Histogram,
    get_payload: Histogram,
    proofs: Histogram,
    invalid: qoin_metrics::Counter,
}

fn timed<T>(h: Option<&Histogram>, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    if let Some(h) = h {
        qoin_metrics::observe(h, start.elapsed());
    }
    out
}

impl std::fmt::Debug for EngineHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EngineHandler({:?})", self.node)
    }
}

/// The execution header and body a payload describes (roots computed from its lists).
pub fn payload_to_block(p: &Payload) -> SealedBlock {
    let credits: Vec<Credit> =
        p.credits.iter().map(|c| Credit { address: c.address, amount: c.amount }).collect();
    let header = ElHeader {
        parent_hash: p.parent_hash,
        number: p.number,
        timestamp: p.timestamp,
        beneficiary: p.fee_recipient,
        state_root: p.state_root,
        // Both computed from the body by `seal`.
        transactions_root: B256::ZERO,
        receipts_root: p.receipts_root,
        credits_root: B256::ZERO,
        logs_bloom: p.logs_bloom,
        gas_limit: p.gas_limit,
        gas_used: p.gas_used,
        base_fee_per_gas: p.base_fee_per_gas,
        prev_randao: p.prev_randao,
    };
    SealedBlock::seal(&header, Body { transactions: p.transactions.clone(), credits })
}

/// The payload of a header and body.
pub fn block_to_payload(h: &ElHeader, body: &Body) -> Payload {
    Payload {
        parent_hash: h.parent_hash,
        number: h.number,
        timestamp: h.timestamp,
        fee_recipient: h.beneficiary,
        state_root: h.state_root,
        receipts_root: h.receipts_root,
        logs_bloom: h.logs_bloom,
        gas_limit: h.gas_limit,
        gas_used: h.gas_used,
        base_fee_per_gas: h.base_fee_per_gas,
        prev_randao: h.prev_randao,
        block_hash: h.hash(),
        transactions: body.transactions.clone(),
        credits: body
            .credits
            .iter()
            .map(|c| qoin_engine_api::Credit { address: c.address, amount: c.amount })
            .collect(),
    }
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

/// Whether an execution error means the block is wrong (rather than the database failing).
fn is_invalid(e: &ExecError) -> bool {
    matches!(e, ExecError::InvalidBlock(_) | ExecError::InvalidTransaction { .. })
}

/// Priority fees the fee recipient earns from a built payload.
fn block_value(executed: &Executed) -> U256 {
    let base = u128::from(executed.header.base_fee_per_gas);
    let mut prev = 0;
    let mut value = U256::ZERO;
    for (t, r) in executed.transactions.iter().zip(&executed.receipts) {
        let used = r.cumulative_gas_used - prev;
        prev = r.cumulative_gas_used;
        let req = t.request();
        let tip = req.max_priority_fee_per_gas.min(req.max_fee_per_gas.saturating_sub(base));
        value += U256::from(tip) * U256::from(used);
    }
    value
}

impl EngineHandler {
    /// A backend for `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node, state: Mutex::new(State::default()), latency: None, verify_all_signatures: false }
    }

    /// With `true`, every transaction signature of a payload is verified here, even when the
    /// consensus client says it verified them.
    pub fn verify_all_signatures(mut self, on: bool) -> Self {
        self.verify_all_signatures = on;
        self
    }

    /// Records the time of each engine call (`qoin_el_engine_call_seconds{method}`) and
    /// invalid payloads in `registry`.
    pub fn with_metrics(mut self, registry: &qoin_metrics::Registry) -> Self {
        let name = "qoin_el_engine_call_seconds";
        let help = "Time the execution client spends answering engine API calls.";
        self.latency = Some(Latency {
            new_payload: registry.histogram(name, help, &[("method", "NewPayload")]),
            new_payloads: registry.histogram(name, help, &[("method", "NewPayloads")]),
            forkchoice: registry.histogram(name, help, &[("method", "ForkchoiceUpdated")]),
            get_payload: registry.histogram(name, help, &[("method", "GetPayload")]),
            proofs: registry.histogram(name, help, &[("method", "GetAccountProofs")]),
            invalid: registry.counter("qoin_el_invalid_payloads_total", "Payloads found invalid."),
        });
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn chain(&self) -> &Chain {
        self.node.chain()
    }

    fn canonical_number(&self, hash: &B256) -> Result<Option<u64>, EngineError> {
        let tx = self.chain().store().read().map_err(internal)?;
        tx.get::<HeaderNumbers>(hash).map_err(internal)
    }

    fn canonical_block(&self, number: u64) -> Result<Option<(ElHeader, Body)>, EngineError> {
        let tx = self.chain().store().read().map_err(internal)?;
        let Some(h) = tx.get::<Headers>(&number).map_err(internal)? else { return Ok(None) };
        let Some(b) = tx.get::<Bodies>(&number).map_err(internal)? else { return Ok(None) };
        let header: ElHeader = alloy_rlp::Decodable::decode(&mut &h[..]).map_err(internal)?;
        let body: Body = alloy_rlp::Decodable::decode(&mut &b[..]).map_err(internal)?;
        Ok(Some((header, body)))
    }

    fn remember_side(state: &mut State, header: ElHeader, body: Body, signatures_verified: bool) {
        let hash = header.hash();
        let size = side_size(&body);
        if state.side.insert(hash, (header, body, signatures_verified)).is_none() {
            state.side_bytes = state.side_bytes.saturating_add(size);
            // A block kept before, made canonical, and unwound again may have a stale place
            // in the order; left there, reaching it would drop this newer copy early.
            state.side_order.retain(|h| *h != hash);
            state.side_order.push_back(hash);
            while state.side_order.len() > MAX_SIDE || state.side_bytes > MAX_SIDE_BYTES {
                let Some(old) = state.side_order.pop_front() else { break };
                Self::forget_side(state, &old);
            }
        }
    }

    /// Drops the side blocks that can never become canonical again: those more than
    /// [`MAX_REORG_DEPTH`] below the head, whose branch forks further back than any reorg the
    /// consensus client follows (spec §16.8) or this client executes.
    fn prune_side(state: &mut State, head_number: u64) {
        let Some(floor) = head_number.checked_sub(MAX_REORG_DEPTH as u64) else { return };
        let old: Vec<B256> =
            state.side.iter().filter(|(_, (h, _, _))| h.number < floor).map(|(k, _)| *k).collect();
        if old.is_empty() {
            return;
        }
        for hash in &old {
            Self::forget_side(state, hash);
        }
        let State { side, side_order, .. } = state;
        side_order.retain(|h| side.contains_key(h));
    }

    fn forget_side(state: &mut State, hash: &B256) {
        if let Some((_, body, _)) = state.side.remove(hash) {
            state.side_bytes = state.side_bytes.saturating_sub(side_size(&body));
        }
    }

    fn refuse_if_mining_locally(&self) -> Result<(), EngineError> {
        match self.node.mining() {
            LocalMining::Off => Ok(()),
            m => Err(EngineError::Internal(format!(
                "qoin-el is producing blocks itself ({m:?}); start it with --mine off to be driven by a consensus client"
            ))),
        }
    }

    /// Executes `header`/`body` on the head and writes it (or commits a payload this node
    /// built with the same hash). Prunes the pool after.
    /// Executes a block on the head (or commits the one built for it). Signatures are checked
    /// unless `signatures_verified` or the pool already verified that transaction.
    fn execute_on_head(
        &self,
        state: &mut State,
        block: &SealedBlock,
        signatures_verified: bool,
    ) -> Result<(), ExecError> {
        let hash = block.header().hash();
        let built = state.building.values().find(|b| b.executed.header.hash() == hash);
        match built {
            Some(b) => {
                self.chain().commit_built(&b.executed)?;
            }
            None => {
                let pool = self.node.pool();
                let verified = |t: &SignedTx| signatures_verified || pool.verified(t);
                self.chain().import_sealed(block, &verified)?;
            }
        }
        let read = self.chain().store().read()?;
        self.node.pool().prune(&LatestState(&read), Instant::now());
        Ok(())
    }

    /// Unwinds the canonical chain to `number`, keeping the unwound blocks as side blocks and
    /// returning their transactions to the pool.
    fn unwind(&self, state: &mut State, number: u64) -> Result<(), EngineError> {
        let head = self.chain().head().map_err(internal)?;
        let mut unwound = Vec::new();
        for n in (number + 1..=head.number).rev() {
            if let Some((h, b)) = self.canonical_block(n)? {
                unwound.push((h, b));
            }
        }
        self.chain().unwind_to(number).map_err(internal)?;
        let mut returned = 0;
        for (h, b) in unwound.into_iter().rev() {
            for raw in &b.transactions {
                if let Ok(t) = SignedTx::decode(raw) {
                    returned += usize::from(self.node.readd(t));
                }
            }
            // Executed once: their signatures were good.
            Self::remember_side(state, h, b, true);
        }
        tracing::info!(target: targets::CHAIN, "reorg: unwound to block #{number}, {returned} transactions back in the pool");
        Ok(())
    }

    /// Makes `head` (a side block) canonical: unwinds to the fork point and executes the
    /// branch. Returns the status.
    fn reorg_to(&self, state: &mut State, head: B256) -> Result<PayloadStatus, EngineError> {
        let mut branch = Vec::new();
        let mut cursor = head;
        let fork_number = loop {
            if let Some(n) = self.canonical_number(&cursor)? {
                break n;
            }
            let Some((h, b, verified)) = state.side.get(&cursor).cloned() else {
                return Ok(PayloadStatus::syncing());
            };
            if let Some((lvh, why)) = state.invalid.get(&cursor).cloned() {
                return Ok(PayloadStatus::invalid(lvh, why));
            }
            cursor = h.parent_hash;
            branch.push((h, b, verified));
            if branch.len() > MAX_REORG_DEPTH {
                return Err(EngineError::Internal(format!("reorg deeper than {MAX_REORG_DEPTH} blocks")));
            }
        };
        self.unwind(state, fork_number)?;
        let mut latest_valid = cursor;
        for (h, b, verified) in branch.into_iter().rev() {
            let hash = h.hash();
            // Kept from a payload (`payload_to_block`): sealing it again gives the same header.
            let block = SealedBlock::seal(&h, b);
            let executed = if *block.header() == h {
                self.execute_on_head(state, &block, verified)
            } else {
                Err(ExecError::InvalidBlock("body roots do not match the header".into()))
            };
            match executed {
                Ok(()) => {
                    Self::forget_side(state, &hash);
                    latest_valid = hash;
                }
                Err(e) if is_invalid(&e) => {
                    let why = e.to_string();
                    tracing::warn!(target: targets::ENGINE, "block #{} {hash} is invalid: {why}", h.number);
                    state.invalid.insert(hash, (Some(latest_valid), why.clone()));
                    return Ok(PayloadStatus::invalid(Some(latest_valid), why));
                }
                Err(e) => return Err(internal(e)),
            }
        }
        Ok(PayloadStatus::valid())
    }

    fn build(&self, head: &ElHeader, attrs: &Attributes) -> Result<Building, EngineError> {
        let timestamp = attrs.timestamp_ms / 1000;
        if timestamp < head.timestamp {
            return Err(EngineError::InvalidAttributes(format!(
                "timestamp {} ms is before the head's {} s",
                attrs.timestamp_ms, head.timestamp
            )));
        }
        let env = self.chain().child_env(head, timestamp, attrs.fee_recipient, attrs.prev_randao);
        let credits: Vec<Credit> =
            attrs.credits.iter().map(|c| Credit { address: c.address, amount: c.amount }).collect();
        self.build_with(head.hash(), env, credits)
    }

    fn build_with(
        &self,
        head: B256,
        env: BlockEnvInput,
        credits: Vec<Credit>,
    ) -> Result<Building, EngineError> {
        let pool_generation = self.node.pool_generation();
        let candidates = {
            let read = self.chain().store().read().map_err(internal)?;
            self.node.pool().pending(&LatestState(&read), env.base_fee)
        };
        let executed = self.chain().build(&env, candidates, credits.clone()).map_err(internal)?;
        Ok(Building { head, env, credits, executed, pool_generation })
    }
}

impl EngineBackend for EngineHandler {
    fn client_name(&self) -> String {
        format!("qoin-el/{}", env!("CARGO_PKG_VERSION"))
    }

    fn chain_info(&self) -> Result<(u64, B256, B256), EngineError> {
        let genesis =
            self.chain().header(0).map_err(internal)?.ok_or_else(|| internal("no genesis block"))?;
        Ok((self.chain().genesis().chain_id, genesis.hash(), genesis.state_root))
    }

    fn new_payload(&self, payload: Payload, signatures_verified: bool) -> Result<PayloadStatus, EngineError> {
        let l = self.latency.as_ref();
        let trusted = signatures_verified && !self.verify_all_signatures;
        let status = timed(l.map(|l| &l.new_payload), || self.new_payload_inner(&payload, trusted))?;
        if let (Some(l), qoin_engine_api::Status::Invalid) = (l, status.status) {
            l.invalid.inc();
        }
        Ok(status)
    }

    fn new_payloads(
        &self,
        payloads: Vec<Payload>,
        signatures_verified: bool,
    ) -> Result<Vec<PayloadStatus>, EngineError> {
        let l = self.latency.as_ref();
        let trusted = signatures_verified && !self.verify_all_signatures;
        let statuses = timed(l.map(|l| &l.new_payloads), || self.new_payloads_inner(&payloads, trusted))?;
        if let (Some(l), Some(qoin_engine_api::Status::Invalid)) = (l, statuses.last().map(|s| s.status)) {
            l.invalid.inc();
        }
        Ok(statuses)
    }

    fn forkchoice_updated(
        &self,
        head: B256,
        finalized: Option<B256>,
        attributes: Option<Attributes>,
    ) -> Result<(PayloadStatus, Option<PayloadId>), EngineError> {
        let l = self.latency.as_ref().map(|l| &l.forkchoice);
        timed(l, || self.forkchoice_inner(head, finalized, attributes))
    }

    fn get_payload(&self, id: PayloadId) -> Result<(Payload, U256), EngineError> {
        timed(self.latency.as_ref().map(|l| &l.get_payload), || self.get_payload_inner(id))
    }

    fn account_proofs(
        &self,
        state_root: B256,
        addresses: &[Address],
    ) -> Result<Vec<AccountProof>, EngineError> {
        timed(self.latency.as_ref().map(|l| &l.proofs), || self.account_proofs_inner(state_root, addresses))
    }

    fn subscribe_transactions(&self) -> tokio::sync::broadcast::Receiver<PooledTx> {
        if self.refuse_if_mining_locally().is_err() {
            // A node producing its own blocks (a development node, whose pool may hold
            // unsigned impersonated transactions) announces nothing to a consensus client:
            // the stream ends at once (its sender is dropped here).
            return tokio::sync::broadcast::channel(1).1;
        }
        self.node.subscribe_transactions()
    }

    fn submit_transactions(&self, transactions: Vec<Bytes>) -> Result<Vec<TxVerdict>, EngineError> {
        Ok(transactions.iter().map(|raw| self.submit_one(raw)).collect())
    }

    fn set_sync_status(&self, progress: Option<SyncProgress>) {
        self.node.set_sync_status(progress);
    }

    fn pooled_transaction_hashes(&self, limit: usize) -> Result<Vec<B256>, EngineError> {
        self.refuse_if_mining_locally()?;
        let read = self.chain().store().read().map_err(|e| EngineError::Internal(e.to_string()))?;
        let content = self.node.pool().content(&LatestState(&read), None);
        // Executable ones first (each sender's in nonce order), then those behind a gap.
        Ok([content.pending, content.queued]
            .iter()
            .flat_map(|side| side.values().flat_map(|by_nonce| by_nonce.values()))
            .map(SignedTx::id)
            .take(limit)
            .collect())
    }

    fn pooled_transactions(&self, hashes: &[B256]) -> Result<Vec<PooledTx>, EngineError> {
        self.refuse_if_mining_locally()?;
        let pool = self.node.pool();
        Ok(hashes
            .iter()
            .filter_map(|h| pool.get(h))
            .map(|t| PooledTx { hash: t.id(), raw: Bytes::from(t.encode()) })
            .collect())
    }
}

/// Whose fault a refusal is: one that no state could make valid means the relaying peer did
/// not check it; one that depends on state, price or limits is nobody's.
fn verdict_of(e: &PoolError) -> Verdict {
    match e {
        PoolError::AlreadyKnown | PoolError::NonceTooLow { .. } => Verdict::Known,
        PoolError::WrongChainId { .. }
        | PoolError::TipAboveFeeCap
        | PoolError::IntrinsicGasTooLow { .. }
        | PoolError::GasLimitExceeded
        | PoolError::BadSignature(_) => Verdict::Invalid,
        PoolError::InsufficientFunds { .. }
        | PoolError::ReplacementUnderpriced
        | PoolError::Underpriced { .. }
        | PoolError::SenderLimit(_)
        | PoolError::PoolFull => Verdict::Refused,
    }
}

impl EngineHandler {
    /// One transaction from a peer into the pool.
    fn submit_one(&self, raw: &Bytes) -> TxVerdict {
        let tx = match SignedTx::decode(raw) {
            Ok(t) => t,
            Err(e) => {
                return TxVerdict {
                    hash: None,
                    verdict: Verdict::Invalid,
                    error: format!("does not decode: {e}"),
                }
            }
        };
        let hash = Some(tx.id());
        match self.node.submit(tx) {
            Ok(_) => TxVerdict { hash, verdict: Verdict::Added, error: String::new() },
            Err(SubmitError::Pool(e)) => TxVerdict { hash, verdict: verdict_of(&e), error: e.to_string() },
            // A local fault: not the transaction's.
            Err(e) => TxVerdict { hash, verdict: Verdict::Refused, error: e.to_string() },
        }
    }
}

impl EngineHandler {
    /// `signatures_verified`: the consensus client verified every signature, and this handler
    /// takes its word.
    /// Logs a block imported from the consensus client (its transactions read back, when the
    /// log wants them).
    fn log_imported(&self, block: &SealedBlock) {
        let header = block.header();
        let read_back = || {
            let read = self.chain().store().read().ok()?;
            qoin_el_storage::reader::block_transactions(&read, header.number).ok()
        };
        qoin_el_node::log_imported_block(
            header,
            block.body().transactions.len(),
            || read_back().unwrap_or_default(),
            "from the consensus client",
        );
    }

    /// `NewPayloads`: the longest run at the front of `payloads` that extends the head (each
    /// the child of the one before, none known, built here or known invalid; sealed once) is
    /// imported in one database transaction ([`Chain::import_batch`]); any other payload goes through
    /// [`Self::new_payload_inner`] alone (a side block is kept, as `NewPayload` keeps it, so
    /// that a later forkchoice finds the whole branch). Stops after the first INVALID.
    fn new_payloads_inner(
        &self,
        payloads: &[Payload],
        trusted: bool,
    ) -> Result<Vec<PayloadStatus>, EngineError> {
        self.refuse_if_mining_locally()?;
        let mut statuses = Vec::with_capacity(payloads.len());
        let mut rest = payloads;
        while !rest.is_empty() {
            let mut state = self.state();
            let run = self.head_run(&state, rest)?;
            if run.is_empty() {
                drop(state);
                let status = self.new_payload_inner(&rest[0], trusted)?;
                let invalid = status.status == qoin_engine_api::Status::Invalid;
                statuses.push(status);
                if invalid {
                    break;
                }
                rest = &rest[1..];
                continue;
            }
            let _producing = self.node.producing();
            let pool = self.node.pool();
            let verified = |t: &SignedTx| trusted || pool.verified(t);
            let (imported, failure) = self.chain().import_batch(&run, &verified).map_err(internal)?;
            drop(pool);
            for block in &run[..imported] {
                self.log_imported(block);
                statuses.push(PayloadStatus::valid());
            }
            if imported > 0 {
                let read = self.chain().store().read().map_err(internal)?;
                self.node.pool().prune(&LatestState(&read), Instant::now());
            }
            if let Some(e) = failure {
                let Some(block) = run.get(imported) else {
                    return Err(EngineError::Internal(format!("a run of {} failed past its end", run.len())));
                };
                if !is_invalid(&e) {
                    return Err(internal(e));
                }
                let (hash, why) = (block.header().hash(), e.to_string());
                let lvh = block.header().parent_hash;
                tracing::warn!(target: targets::ENGINE, "payload #{} {hash} is invalid: {why}", block.header().number);
                state.invalid.insert(hash, (Some(lvh), why.clone()));
                statuses.push(PayloadStatus::invalid(Some(lvh), why));
                break;
            }
            rest = &rest[run.len()..];
        }
        Ok(statuses)
    }

    /// The payloads at the front of `payloads` that can be imported together on the head:
    /// the first is the head's child, each next one the child of the one before, and none is
    /// canonical already, built here, known invalid or of a wrong block hash (each of those
    /// goes alone through [`Self::new_payload_inner`], which answers it).
    fn head_run(&self, state: &State, payloads: &[Payload]) -> Result<Vec<SealedBlock>, EngineError> {
        let mut parent = self.chain().head().map_err(internal)?.hash();
        let mut run = Vec::new();
        for payload in payloads {
            if payload.parent_hash != parent
                || state.invalid.contains_key(&payload.block_hash)
                || state.building.values().any(|b| b.executed.header.hash() == payload.block_hash)
            {
                break;
            }
            let block = payload_to_block(payload);
            let hash = block.header().hash();
            if hash != payload.block_hash {
                break;
            }
            run.push(block);
            parent = hash;
        }
        Ok(run)
    }

    fn new_payload_inner(
        &self,
        payload: &Payload,
        signatures_verified: bool,
    ) -> Result<PayloadStatus, EngineError> {
        self.refuse_if_mining_locally()?;
        let block = payload_to_block(payload);
        let header = block.header();
        let hash = header.hash();
        let mut state = self.state();
        let parent_known = self.canonical_number(&payload.parent_hash)?.is_some()
            || state.side.contains_key(&payload.parent_hash);
        if hash != payload.block_hash {
            let lvh = parent_known.then_some(payload.parent_hash);
            return Ok(PayloadStatus::invalid(
                lvh,
                format!(
                    "block hash mismatch: payload says {}, its fields hash to {hash}",
                    payload.block_hash
                ),
            ));
        }
        if self.canonical_number(&hash)?.is_some() {
            return Ok(PayloadStatus::valid());
        }
        if let Some((lvh, why)) = state.invalid.get(&hash).or_else(|| state.invalid.get(&payload.parent_hash))
        {
            return Ok(PayloadStatus::invalid(*lvh, why.clone()));
        }
        let head = self.chain().head().map_err(internal)?;
        if payload.parent_hash == head.hash() {
            let _producing = self.node.producing();
            return match self.execute_on_head(&mut state, &block, signatures_verified) {
                Ok(()) => {
                    self.log_imported(&block);
                    Ok(PayloadStatus::valid())
                }
                Err(e) if is_invalid(&e) => {
                    let why = e.to_string();
                    tracing::warn!(target: targets::ENGINE, "payload #{} {hash} is invalid: {why}", header.number);
                    state.invalid.insert(hash, (Some(head.hash()), why.clone()));
                    Ok(PayloadStatus::invalid(Some(head.hash()), why))
                }
                Err(e) => Err(internal(e)),
            };
        }
        let (header, body) = block.into_parts();
        Self::remember_side(&mut state, header, body, signatures_verified);
        Ok(if parent_known { PayloadStatus::accepted() } else { PayloadStatus::syncing() })
    }

    fn forkchoice_inner(
        &self,
        head: B256,
        finalized: Option<B256>,
        attributes: Option<Attributes>,
    ) -> Result<(PayloadStatus, Option<PayloadId>), EngineError> {
        self.refuse_if_mining_locally()?;
        let mut state = self.state();
        if let Some((lvh, why)) = state.invalid.get(&head) {
            return Ok((PayloadStatus::invalid(*lvh, why.clone()), None));
        }
        let current = self.chain().head().map_err(internal)?;
        if head != current.hash() {
            let _producing = self.node.producing();
            let status = match self.canonical_number(&head)? {
                Some(n) => {
                    self.unwind(&mut state, n)?;
                    PayloadStatus::valid()
                }
                None => self.reorg_to(&mut state, head)?,
            };
            if status.status != qoin_engine_api::Status::Valid {
                return Ok((status, None));
            }
        }
        let head_header = self.chain().head().map_err(internal)?;
        if head != current.hash() {
            Self::prune_side(&mut state, head_header.number);
        }
        if let Some(f) = finalized {
            match self.canonical_number(&f)? {
                Some(n) if n <= head_header.number => {}
                _ => {
                    return Err(EngineError::InvalidForkchoiceState(format!(
                        "finalized block {f} is not an ancestor of head {head}"
                    )))
                }
            }
        }
        let Some(attrs) = attributes else { return Ok((PayloadStatus::valid(), None)) };
        let id = attrs.payload_id(&head);
        if let std::collections::hash_map::Entry::Vacant(slot) = state.building.entry(id) {
            slot.insert(self.build(&head_header, &attrs)?);
            state.order.push_back(id);
            while state.order.len() > MAX_BUILDING {
                if let Some(old) = state.order.pop_front() {
                    state.building.remove(&old);
                }
            }
        }
        Ok((PayloadStatus::valid(), Some(id)))
    }

    fn get_payload_inner(&self, id: PayloadId) -> Result<(Payload, U256), EngineError> {
        let mut state = self.state();
        let Some(b) = state.building.get(&id) else { return Err(EngineError::UnknownPayload) };
        let head = self.chain().head().map_err(internal)?.hash();
        // A better payload: the pool changed since this one was built, on the same head.
        if b.head == head && b.pool_generation != self.node.pool_generation() {
            let rebuilt = self.build_with(b.head, b.env.clone(), b.credits.clone())?;
            state.building.insert(id, rebuilt);
        }
        let b = state.building.get(&id).ok_or(EngineError::UnknownPayload)?;
        let e = &b.executed;
        let body = Body {
            transactions: e.transactions.iter().map(|t| Bytes::from(t.encode())).collect(),
            credits: e.credits.clone(),
        };
        Ok((block_to_payload(&e.header, &body), block_value(e)))
    }

    fn account_proofs_inner(
        &self,
        state_root: B256,
        addresses: &[Address],
    ) -> Result<Vec<AccountProof>, EngineError> {
        let tx = self.chain().store().read().map_err(internal)?;
        let nodes = TrieReader::new(&tx);
        let keys: Vec<B256> = addresses.iter().map(keccak256).collect();
        // Together: the nodes near the root, on every address's path, are read once.
        let proofs = qoin_trie::proofs(&nodes, state_root, &keys)
            .map_err(|e| EngineError::InvalidParams(format!("state root {state_root}: {e}")))?;
        let mut out = Vec::with_capacity(addresses.len());
        for (address, (proof, value)) in addresses.iter().zip(proofs) {
            let account = match value {
                Some(rlp) => Some(qoin_el_storage::reader::decode_trie_account(&rlp).map_err(internal)?),
                None => None,
            };
            let (nonce, balance, storage_root, code_hash) =
                account.unwrap_or((0, U256::ZERO, qoin_trie::EMPTY_ROOT, revm::primitives::KECCAK_EMPTY));
            out.push(AccountProof {
                address: *address,
                exists: account.is_some(),
                nonce,
                balance,
                storage_root,
                code_hash,
                proof: proof.into_iter().map(Bytes::from).collect(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
