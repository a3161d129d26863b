//! # qoin-cl-sampling
//!
//! Owns account-state sampling: checking the execution client's answers without re-executing.
//!
//! After the execution client said `VALID` to a payload, the consensus client draws a seed
//! the execution client could not predict when it answered (fresh randomness mixed with the
//! block hash), picks every sender of the block plus `k` other touched accounts (recipients,
//! created contracts, the fee recipient, credited accounts), asks for their Merkle-Patricia
//! proofs against the parent's and the new state root, and checks that:
//!
//! 1. every proof verifies against its root (so the answers are what the roots commit to);
//! 2. every sender's nonce rose by exactly its number of transactions, from the first one's;
//! 3. when every transaction of the block is a *plain transfer* (a call with no data and no
//!    access list to an account without code that is not a precompile, which costs exactly
//!    21,000 gas), every sampled account's new balance is the old one minus what it sent and
//!    paid (`value + 21,000 × effective gas price`) plus what it received, its credits and,
//!    for the fee recipient, the tips. (A contract call could move value anywhere, so blocks
//!    with one get the proof and nonce checks only.)
//!
//! A mismatch means the execution client is faulty: the block is marked invalid. If a faulty
//! client corrupts a fraction `f` of a block's touched accounts, `k` samples miss all of them
//! with probability `(1 − f)^k` (spec §15.6).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use alloy_primitives::{keccak256, Address, B256, U256};
use qoin_engine_api::{AccountProof, Payload};
use qoin_primitives::{SignedTx, TxKind};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Gas of a plain transfer.
const TRANSFER_GAS: u64 = 21_000;
/// `keccak256("")`: the code hash of an account without code.
const EMPTY_CODE: B256 =
    alloy_primitives::b256!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
/// `keccak256(rlp(""))`: the root of an empty storage trie.
const EMPTY_ROOT: B256 =
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// What the sampling found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamplingError {
    /// A transaction in a payload the execution client called valid does not decode.
    #[error("transaction {0} does not decode")]
    Undecodable(usize),
    /// The answer lacks an account or has it out of order.
    #[error("proof answer does not match the request ({0})")]
    Shape(String),
    /// A proof does not verify against the state root.
    #[error("proof of {address} against {root} does not verify: {why}")]
    BadProof {
        /// The account.
        address: Address,
        /// The root.
        root: B256,
        /// The verifier's message.
        why: String,
    },
    /// A sender's nonce is wrong.
    #[error("nonce of {address}: {before} → {after}, expected {before} → {expected} ({sent} transactions from {first})")]
    Nonce {
        /// The account.
        address: Address,
        /// Before.
        before: u64,
        /// After.
        after: u64,
        /// Expected after.
        expected: u64,
        /// Transactions sent.
        sent: u64,
        /// The first one's nonce.
        first: u64,
    },
    /// A recomputed balance differs.
    #[error("balance of {address}: {after} after the block, recomputed {expected}")]
    Balance {
        /// The account.
        address: Address,
        /// The execution client's.
        after: U256,
        /// Recomputed.
        expected: U256,
    },
}

/// The accounts to sample in one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Decoded transactions.
    txs: Vec<SignedTx>,
    /// Every sender, then the `k` others drawn from the touched accounts.
    pub sampled: Vec<Address>,
    /// What to fetch: the sampled accounts plus the recipients of their transactions (whose
    /// code decides whether a transfer is plain).
    pub fetch: Vec<Address>,
    /// How many of `sampled` are senders.
    pub senders: usize,
}

fn is_precompile(a: &Address) -> bool {
    // Ethereum's precompiles sit at 0x01–0x11 and Qoin's at 0x0f01–0x0f03: everything below
    // 0x10000 is treated as possibly special.
    a.0[..18].iter().all(|b| *b == 0)
}

/// Chooses the accounts to sample from `payload` with `seed`: all senders, and `k` of the
/// other touched accounts (by the order of `keccak256(seed ‖ address)`).
pub fn plan(payload: &Payload, seed: &B256, k: usize) -> Result<Plan, SamplingError> {
    let txs: Vec<SignedTx> = payload
        .transactions
        .iter()
        .enumerate()
        .map(|(i, raw)| SignedTx::decode(raw).map_err(|_| SamplingError::Undecodable(i)))
        .collect::<Result<_, _>>()?;
    Ok(plan_decoded(payload, txs, seed, k))
}

/// [`plan`] for a payload whose transactions were decoded already (`txs`, in order: the
/// caller's block checks decoded them).
pub fn plan_decoded(payload: &Payload, txs: Vec<SignedTx>, seed: &B256, k: usize) -> Plan {
    let senders: BTreeSet<Address> = txs.iter().map(SignedTx::sender).collect();
    let mut touched: BTreeSet<Address> = BTreeSet::new();
    touched.insert(payload.fee_recipient);
    touched.extend(payload.credits.iter().map(|c| c.address));
    for t in &txs {
        match t.request().to {
            TxKind::Call(to) => touched.insert(to),
            TxKind::Create => touched.insert(t.sender().create(t.request().nonce)),
        };
    }
    let mut others: Vec<(B256, Address)> = touched
        .into_iter()
        .filter(|a| !senders.contains(a))
        .map(|a| {
            let mut buf = seed.to_vec();
            buf.extend_from_slice(a.as_slice());
            (keccak256(buf), a)
        })
        .collect();
    others.sort();
    let mut sampled: Vec<Address> = senders.iter().copied().collect();
    let n_senders = sampled.len();
    sampled.extend(others.into_iter().take(k).map(|(_, a)| a));
    // Sets beside the lists: a block of thousands of transfers would make `contains` on the
    // lists quadratic.
    let sampled_set: HashSet<Address> = sampled.iter().copied().collect();
    let mut fetch = sampled.clone();
    let mut fetching = sampled_set.clone();
    for t in &txs {
        if let TxKind::Call(to) = t.request().to {
            if sampled_set.contains(&t.sender()) && fetching.insert(to) {
                fetch.push(to);
            }
        }
    }
    Plan { txs, sampled, fetch, senders: n_senders }
}

fn verify_proofs(root: B256, want: &[Address], got: &[AccountProof]) -> Result<(), SamplingError> {
    if want.len() != got.len() {
        return Err(SamplingError::Shape(format!("asked for {} accounts, got {}", want.len(), got.len())));
    }
    for (a, p) in want.iter().zip(got) {
        if p.address != *a {
            return Err(SamplingError::Shape(format!("asked for {a}, got {}", p.address)));
        }
        let expected = p.exists.then(|| {
            alloy_rlp::encode(alloy_trie::TrieAccount {
                nonce: p.nonce,
                balance: p.balance,
                storage_root: p.storage_root,
                code_hash: p.code_hash,
            })
        });
        if !p.exists && (p.nonce != 0 || !p.balance.is_zero()) {
            return Err(SamplingError::Shape(format!("{a} marked absent with a nonce or balance")));
        }
        alloy_trie::proof::verify_proof(
            root,
            alloy_trie::Nibbles::unpack(keccak256(a)),
            expected,
            p.proof.iter(),
        )
        .map_err(|e| SamplingError::BadProof { address: *a, root, why: e.to_string() })?;
    }
    Ok(())
}

/// Checks the proofs fetched for `plan.fetch` against the parent's and the new state root,
/// then the nonces and the recomputable balances. Returns how many balances were recomputed.
pub fn check(
    plan: &Plan,
    payload: &Payload,
    parent_root: B256,
    before: &[AccountProof],
    after: &[AccountProof],
) -> Result<usize, SamplingError> {
    verify_proofs(parent_root, &plan.fetch, before)?;
    verify_proofs(payload.state_root, &plan.fetch, after)?;
    let pre: BTreeMap<Address, &AccountProof> = before.iter().map(|p| (p.address, p)).collect();
    let post: BTreeMap<Address, &AccountProof> = after.iter().map(|p| (p.address, p)).collect();
    let base = u128::from(payload.base_fee_per_gas);
    let price = |t: &SignedTx| {
        let r = t.request();
        r.max_fee_per_gas.min(base.saturating_add(r.max_priority_fee_per_gas))
    };
    let plain = |t: &SignedTx| {
        let r = t.request();
        match r.to {
            TxKind::Call(to) => {
                r.input.is_empty()
                    && r.access_list.is_empty()
                    && !is_precompile(&to)
                    && pre.get(&to).is_some_and(|p| p.code_hash == EMPTY_CODE || !p.exists)
            }
            TxKind::Create => false,
        }
    };
    let all_plain = plan.txs.iter().all(plain);
    // Each account's transactions (sent or received) in block order, looked up per sampled
    // account: scanning the block for each would be quadratic.
    let mut involving: HashMap<Address, Vec<&SignedTx>> = HashMap::new();
    for t in &plan.txs {
        involving.entry(t.sender()).or_default().push(t);
        if let TxKind::Call(to) = t.request().to {
            if to != t.sender() {
                involving.entry(to).or_default().push(t);
            }
        }
    }

    // Nonces of every sender.
    let involving_of = |a: &Address| -> &[&SignedTx] { involving.get(a).map_or(&[], Vec::as_slice) };
    for a in &plan.sampled[..plan.senders] {
        let sent: Vec<&SignedTx> = involving_of(a).iter().copied().filter(|t| t.sender() == *a).collect();
        let (b, p) = (pre[a], post[a]);
        let first = sent.first().map_or(0, |t| t.request().nonce);
        let expected = b.nonce + sent.len() as u64;
        if first != b.nonce || p.nonce != expected {
            return Err(SamplingError::Nonce {
                address: *a,
                before: b.nonce,
                after: p.nonce,
                expected,
                sent: sent.len() as u64,
                first,
            });
        }
    }

    // Balances, when every transaction of the block is a plain transfer (a contract call could
    // move value to any account, so one in the block makes balances unpredictable here).
    let mut recomputed = 0;
    if !all_plain {
        return Ok(0);
    }
    for a in &plan.sampled {
        let involved = involving_of(a);
        let fee_recipient = *a == payload.fee_recipient;
        let (b, p) = (pre[a], post[a]);
        if b.exists && (b.code_hash != EMPTY_CODE || b.storage_root != EMPTY_ROOT) {
            continue;
        }
        let mut balance = b.balance;
        for t in involved {
            let r = t.request();
            if t.sender() == *a {
                let cost = r.value + U256::from(price(t)) * U256::from(TRANSFER_GAS);
                balance = balance.saturating_sub(cost);
            }
            if matches!(r.to, TxKind::Call(to) if to == *a) {
                balance += r.value;
            }
        }
        if fee_recipient {
            for t in &plan.txs {
                balance += U256::from(price(t) - base.min(price(t))) * U256::from(TRANSFER_GAS);
            }
        }
        for c in payload.credits.iter().filter(|c| c.address == *a) {
            balance += c.amount;
        }
        if balance != p.balance {
            return Err(SamplingError::Balance { address: *a, after: p.balance, expected: balance });
        }
        recomputed += 1;
    }
    Ok(recomputed)
}

/// A seed the execution client cannot predict: 32 bytes from the operating system mixed
/// with the block hash.
pub fn fresh_seed(block: &B256) -> B256 {
    let mut r = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut r);
    let mut buf = r.to_vec();
    buf.extend_from_slice(block.as_slice());
    keccak256(buf)
}
