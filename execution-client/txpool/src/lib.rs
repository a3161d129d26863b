//! # qoin-txpool
//!
//! Owns the transaction pool: per-sender nonce order with a pending part (executable now) and a
//! queued part (waiting for a nonce gap to fill), fee-bump replacement, per-sender and total
//! limits with lowest-fee eviction, expiry, and the checks dapp tools expect, rejected with
//! geth's wording because ethers, viem and Foundry match on it.
//!
//! Signatures are verified once, on admission; block import skips verifying a transaction
//! the pool already verified with the same signature (see [`TxPool::verified`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use alloy_primitives::{keccak256, Address, B256, U256};
use qoin_primitives::{SignedTx, TxError, TxKind};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Why a transaction was refused. Messages follow geth's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The same transaction is already in the pool.
    #[error("already known")]
    AlreadyKnown,
    /// Its nonce was already used.
    #[error("nonce too low: next nonce {next}, tx nonce {got}")]
    NonceTooLow {
        /// The sender's next nonce.
        next: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The sender cannot pay for it and its pending predecessors.
    #[error(
        "insufficient funds for gas * price + value: balance {balance}, tx cost {cost}, overshot {overshot}"
    )]
    InsufficientFunds {
        /// Balance.
        balance: U256,
        /// What this transaction and the sender's earlier pooled ones may spend.
        cost: U256,
        /// Shortfall.
        overshot: U256,
    },
    /// A replacement must raise both fee cap and tip by the bump.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// Signed for another chain.
    #[error("invalid chain id: have {got}, want {want}")]
    WrongChainId {
        /// The transaction's chain id.
        got: u64,
        /// This chain's.
        want: u64,
    },
    /// Tip above fee cap.
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    /// Fee cap below the minimum base fee: could never be mined.
    #[error("transaction underpriced: max fee per gas {got} below the minimum {min}")]
    Underpriced {
        /// Fee cap.
        got: u128,
        /// Minimum.
        min: u128,
    },
    /// Gas limit below the intrinsic cost.
    #[error("intrinsic gas too low: have {have}, want {want}")]
    IntrinsicGasTooLow {
        /// Gas limit.
        have: u64,
        /// Intrinsic gas.
        want: u64,
    },
    /// Gas limit above the block gas limit.
    #[error("exceeds block gas limit")]
    GasLimitExceeded,
    /// The sender has too many transactions pooled.
    #[error("account limit exceeded: {0} transactions pooled for this sender")]
    SenderLimit(usize),
    /// The pool is full of transactions paying at least as much.
    #[error("txpool is full")]
    PoolFull,
    /// The signature does not verify.
    #[error("invalid transaction signature: {0}")]
    BadSignature(String),
}

/// Pool limits and rules.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Chain id transactions must carry.
    pub chain_id: u64,
    /// Block gas limit.
    pub block_gas_limit: u64,
    /// Lowest acceptable fee cap (the chain's minimum base fee).
    pub min_fee_cap: u128,
    /// Percent by which a replacement must raise fee cap and tip.
    pub price_bump_percent: u128,
    /// Most transactions per sender.
    pub max_per_sender: usize,
    /// Most transactions in all.
    pub max_total: usize,
    /// Transactions older than this are dropped.
    pub lifetime: Duration,
}

impl PoolConfig {
    /// Defaults: 10% bump, 64 per sender, 10,000 in all, 3 hours (as geth).
    pub fn new(chain_id: u64, block_gas_limit: u64, min_fee_cap: u128) -> Self {
        Self {
            chain_id,
            block_gas_limit,
            min_fee_cap,
            price_bump_percent: 10,
            max_per_sender: 64,
            max_total: 10_000,
            lifetime: Duration::from_secs(3 * 3600),
        }
    }
}

/// What the pool needs to know of the current state.
pub trait AccountState {
    /// The account's next nonce and balance.
    fn nonce_and_balance(&self, address: &Address) -> (u64, U256);
}

/// Where an admitted transaction went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Executable now (no nonce gap before it).
    Pending,
    /// Waiting for earlier nonces.
    Queued,
    /// Replaced an earlier transaction with the same nonce.
    Replaced(B256),
}

#[derive(Debug, Clone)]
struct Entry {
    tx: SignedTx,
    cost: U256,
    added: Instant,
    sig_hash: B256,
}

/// The transaction pool.
#[derive(Debug)]
pub struct TxPool {
    config: PoolConfig,
    by_id: HashMap<B256, (Address, u64)>,
    senders: HashMap<Address, BTreeMap<u64, Entry>>,
    /// Senders whose unsigned (impersonated) transactions are admitted: set only by a
    /// development node (`anvil_impersonateAccount`), empty on any other.
    impersonating: HashSet<Address>,
}

/// Gas every transaction pays before execution: 21,000, plus 32,000 for a creation, plus
/// calldata (4 per zero byte, 16 per other byte), plus the access list (2,400 per address,
/// 1,900 per slot), plus EIP-3860's 2 per 32-byte word of init code.
pub fn intrinsic_gas(tx: &SignedTx) -> u64 {
    let r = tx.request();
    let data: u64 = r.input.iter().map(|&b| if b == 0 { 4 } else { 16 }).sum();
    let mut gas = 21_000 + data;
    if r.to == TxKind::Create {
        gas += 32_000 + 2 * (r.input.len() as u64).div_ceil(32);
    }
    for item in &r.access_list {
        gas += 2_400 + 1_900 * item.storage_keys.len() as u64;
    }
    gas
}

/// What a transaction may spend at most: `gas_limit * max_fee_per_gas + value`, saturating at
/// 2^256 - 1 (which no balance covers): a sum that wrapped would let a transaction of an empty
/// account cost nothing.
fn cost(tx: &SignedTx) -> U256 {
    let r = tx.request();
    U256::from(r.gas_limit).saturating_mul(U256::from(r.max_fee_per_gas)).saturating_add(r.value)
}

fn signature_hash(tx: &SignedTx) -> B256 {
    keccak256(tx.signature_bytes())
}

/// The pool's transactions by sender and nonce (see [`TxPool::content`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolContent {
    /// Executable in nonce order.
    pub pending: BTreeMap<Address, BTreeMap<u64, SignedTx>>,
    /// Waiting behind a nonce gap.
    pub queued: BTreeMap<Address, BTreeMap<u64, SignedTx>>,
}

impl TxPool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Self {
        Self { config, by_id: HashMap::new(), senders: HashMap::new(), impersonating: HashSet::new() }
    }

    /// Number of transactions pooled.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The pooled transaction with this id.
    pub fn get(&self, id: &B256) -> Option<&SignedTx> {
        let (sender, nonce) = self.by_id.get(id)?;
        self.senders.get(sender)?.get(nonce).map(|e| &e.tx)
    }

    /// Admits unsigned transactions from `sender` from now on (a development node's
    /// `anvil_impersonateAccount`; see `qoin_primitives::SignedTx::impersonated`).
    pub fn impersonate(&mut self, sender: Address) {
        self.impersonating.insert(sender);
    }

    /// Stops admitting unsigned transactions from `sender` (those pooled stay).
    pub fn stop_impersonating(&mut self, sender: &Address) {
        self.impersonating.remove(sender);
    }

    /// Whether unsigned transactions from `sender` are admitted.
    pub fn is_impersonating(&self, sender: &Address) -> bool {
        self.impersonating.contains(sender)
    }

    /// Whether `tx` (same id and same signature) was verified on admission, so block import
    /// need not verify it again.
    pub fn verified(&self, tx: &SignedTx) -> bool {
        // An impersonated transaction was never verified: nothing may skip its check.
        !tx.is_impersonated()
            && self
                .by_id
                .get(&tx.id())
                .and_then(|(s, n)| self.senders.get(s)?.get(n))
                .is_some_and(|e| e.sig_hash == signature_hash(tx))
    }

    /// Checks and admits a transaction at time `now`.
    pub fn add(
        &mut self,
        tx: SignedTx,
        state: &impl AccountState,
        now: Instant,
    ) -> Result<Admitted, PoolError> {
        let c = &self.config;
        let r = tx.request();
        if tx.is_impersonated() && !self.impersonating.contains(&tx.sender()) {
            return Err(PoolError::BadSignature(TxError::Impersonated(tx.sender()).to_string()));
        }
        if self.by_id.contains_key(&tx.id()) {
            return Err(PoolError::AlreadyKnown);
        }
        if r.chain_id != c.chain_id {
            return Err(PoolError::WrongChainId { got: r.chain_id, want: c.chain_id });
        }
        if r.max_priority_fee_per_gas > r.max_fee_per_gas {
            return Err(PoolError::TipAboveFeeCap);
        }
        if r.max_fee_per_gas < c.min_fee_cap {
            return Err(PoolError::Underpriced { got: r.max_fee_per_gas, min: c.min_fee_cap });
        }
        if r.gas_limit > c.block_gas_limit {
            return Err(PoolError::GasLimitExceeded);
        }
        let want = intrinsic_gas(&tx);
        if r.gas_limit < want {
            return Err(PoolError::IntrinsicGasTooLow { have: r.gas_limit, want });
        }
        let sender = tx.sender();
        let (next, balance) = state.nonce_and_balance(&sender);
        if r.nonce < next {
            return Err(PoolError::NonceTooLow { next, got: r.nonce });
        }
        let queue = self.senders.get(&sender);
        let replaced = queue.and_then(|q| q.get(&r.nonce));
        if let Some(old) = replaced {
            let o = old.tx.request();
            let bump = |v: u128| v.saturating_mul(100 + c.price_bump_percent) / 100;
            if r.max_fee_per_gas < bump(o.max_fee_per_gas)
                || r.max_priority_fee_per_gas < bump(o.max_priority_fee_per_gas)
            {
                return Err(PoolError::ReplacementUnderpriced);
            }
        } else if queue.map_or(0, BTreeMap::len) >= c.max_per_sender {
            return Err(PoolError::SenderLimit(c.max_per_sender));
        }
        // Balance: this transaction plus every other pooled one of the sender's.
        let others: U256 = queue.map_or(U256::ZERO, |q| {
            q.iter()
                .filter(|(n, _)| **n != r.nonce)
                .fold(U256::ZERO, |sum, (_, e)| sum.saturating_add(e.cost))
        });
        let total = others.saturating_add(cost(&tx));
        if total > balance {
            return Err(PoolError::InsufficientFunds { balance, cost: total, overshot: total - balance });
        }
        // An impersonated one was let through above only while its sender is impersonated.
        if !tx.is_impersonated() {
            tx.verify_signature().map_err(|e| PoolError::BadSignature(e.to_string()))?;
        }
        if replaced.is_none() && self.by_id.len() >= c.max_total {
            self.evict_for(&tx)?;
        }

        let entry = Entry { cost: cost(&tx), added: now, sig_hash: signature_hash(&tx), tx };
        let id = entry.tx.id();
        let nonce = entry.tx.request().nonce;
        let queue = self.senders.entry(sender).or_default();
        let outcome = match queue.insert(nonce, entry) {
            Some(old) => {
                self.by_id.remove(&old.tx.id());
                Admitted::Replaced(old.tx.id())
            }
            None => {
                // Pending when every nonce from the state's next up to this one is pooled.
                let contiguous = (next..nonce).all(|n| queue.contains_key(&n));
                if contiguous {
                    Admitted::Pending
                } else {
                    Admitted::Queued
                }
            }
        };
        self.by_id.insert(id, (sender, nonce));
        Ok(outcome)
    }

    /// Makes room for `incoming`: drops the cheapest sender-tail transaction if it pays less.
    fn evict_for(&mut self, incoming: &SignedTx) -> Result<(), PoolError> {
        let victim = self
            .senders
            .iter()
            .filter_map(|(s, q)| q.iter().next_back().map(|(n, e)| (e.tx.request().max_fee_per_gas, *s, *n)))
            .min();
        match victim {
            Some((fee, sender, nonce)) if fee < incoming.request().max_fee_per_gas => {
                self.remove(&sender, nonce);
                Ok(())
            }
            _ => Err(PoolError::PoolFull),
        }
    }

    fn remove(&mut self, sender: &Address, nonce: u64) {
        if let Some(q) = self.senders.get_mut(sender) {
            if let Some(e) = q.remove(&nonce) {
                self.by_id.remove(&e.tx.id());
            }
            if q.is_empty() {
                self.senders.remove(sender);
            }
        }
    }

    /// Transactions executable now, best first: each sender's contiguous run from its next
    /// nonce, interleaved by effective tip at `base_fee` (nonce order kept within a sender).
    pub fn pending(&self, state: &impl AccountState, base_fee: u64) -> Vec<SignedTx> {
        let tip = |t: &SignedTx| {
            let r = t.request();
            r.max_priority_fee_per_gas.min(r.max_fee_per_gas.saturating_sub(u128::from(base_fee)))
        };
        let mut runs: Vec<Vec<&SignedTx>> = Vec::new();
        for (sender, q) in &self.senders {
            let mut n = state.nonce_and_balance(sender).0;
            let mut run = Vec::new();
            while let Some(e) = q.get(&n) {
                if e.tx.request().max_fee_per_gas < u128::from(base_fee) {
                    break;
                }
                run.push(&e.tx);
                n += 1;
            }
            if !run.is_empty() {
                run.reverse();
                runs.push(run);
            }
        }
        let mut heap: BinaryHeap<(u128, std::cmp::Reverse<B256>, usize)> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, run)| run.last().map(|t| (tip(t), std::cmp::Reverse(t.id()), i)))
            .collect();
        let mut out = Vec::new();
        while let Some((_, _, i)) = heap.pop() {
            if let Some(t) = runs[i].pop() {
                out.push(t.clone());
            }
            if let Some(next) = runs[i].last() {
                heap.push((tip(next), std::cmp::Reverse(next.id()), i));
            }
        }
        out
    }

    /// Every pooled transaction by sender and nonce, split as geth's `txpool_content` splits
    /// them: `pending` holds each sender's contiguous run from its next nonce, `queued` the
    /// rest (behind a nonce gap). `only` limits it to one sender.
    pub fn content(&self, state: &impl AccountState, only: Option<&Address>) -> PoolContent {
        let mut out = PoolContent::default();
        for (sender, q) in &self.senders {
            if only.is_some_and(|o| o != sender) {
                continue;
            }
            let mut n = state.nonce_and_balance(sender).0;
            while q.contains_key(&n) {
                n += 1;
            }
            for (nonce, e) in q {
                let side = if *nonce < n { &mut out.pending } else { &mut out.queued };
                side.entry(*sender).or_default().insert(*nonce, e.tx.clone());
            }
        }
        out
    }

    /// Transactions waiting behind a nonce gap.
    pub fn queued(&self, state: &impl AccountState) -> Vec<SignedTx> {
        let mut out = Vec::new();
        for (sender, q) in &self.senders {
            let mut n = state.nonce_and_balance(sender).0;
            while q.contains_key(&n) {
                n += 1;
            }
            out.extend(q.range(n..).map(|(_, e)| e.tx.clone()));
        }
        out
    }

    /// After a block: drops transactions whose nonces are used and those that expired.
    pub fn prune(&mut self, state: &impl AccountState, now: Instant) {
        let lifetime = self.config.lifetime;
        let mut drop = Vec::new();
        for (sender, q) in &self.senders {
            let next = state.nonce_and_balance(sender).0;
            for (n, e) in q {
                if *n < next || now.saturating_duration_since(e.added) > lifetime {
                    drop.push((*sender, *n));
                }
            }
        }
        for (s, n) in drop {
            self.remove(&s, n);
        }
    }

    /// The next nonce of `sender` counting pooled transactions (`eth_getTransactionCount`
    /// with `pending`).
    pub fn next_nonce(&self, sender: &Address, state: &impl AccountState) -> u64 {
        let mut n = state.nonce_and_balance(sender).0;
        if let Some(q) = self.senders.get(sender) {
            while q.contains_key(&n) {
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests;
