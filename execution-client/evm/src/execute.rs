//! Running a block's transactions in revm and turning the result into a new state root,
//! state writes and the change sets that undo them.
//!
//! Execution only reads the database: it returns an [`Executed`] block (header, receipts,
//! [`PostState`]) that `qoin-el-chain` writes in one MDBX transaction, or discards (payload
//! building, invalid blocks).

use crate::state::{StateError, StateReader};
use alloy_primitives::{keccak256, Address, Bloom, Bytes, B256, U256};
use qoin_el_storage::block::{credits_root, ordered_root, Credit, ElHeader, Receipt};
use qoin_el_storage::reader::{TrieAccount, TrieReader};
use qoin_el_storage::tables::{AccountRecord, Accounts, Storage};
use qoin_el_storage::StorageError;
use qoin_primitives::{SignedTx, TxKind};
use qoin_store::{StoreError, TransactionKind, Tx};
use qoin_trie::{Trie, TrieError, EMPTY_ROOT};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::transaction::{AccessList, AccessListItem};
use revm::database::{states::bundle_state::BundleRetention, State};
use revm::database_interface::{DatabaseCommitExt as _, WrapDatabaseRef};
use revm::primitives::hardfork::SpecId;
use revm::primitives::KECCAK_EMPTY;
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};
use std::collections::BTreeMap;

/// Why a block could not be executed or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading state during execution failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The trie is missing nodes or corrupt.
    #[error(transparent)]
    Trie(#[from] TrieError),
    /// Stored blocks or state are missing or corrupt.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A transaction in an imported block is invalid.
    #[error("transaction {index} is invalid: {reason}")]
    InvalidTransaction {
        /// Its index in the block.
        index: usize,
        /// revm's reason.
        reason: String,
    },
    /// The block's header does not match its execution, or breaks a rule.
    #[error("invalid block: {0}")]
    InvalidBlock(String),
}

/// What a payload is built from (the consensus client's payload attributes plus the parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEnvInput {
    /// Block number.
    pub number: u64,
    /// Unix time in seconds.
    pub timestamp: u64,
    /// Fee recipient.
    pub beneficiary: Address,
    /// Gas limit.
    pub gas_limit: u64,
    /// Base fee per gas.
    pub base_fee: u64,
    /// Randomness.
    pub prev_randao: B256,
    /// Chain id transactions must carry.
    pub chain_id: u64,
}

/// Import (every transaction must be valid) or build (invalid ones are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Importing a block: an invalid transaction invalidates the block. Every transaction is
    /// then included, in order, so the header's transactions root is the one of the block's
    /// encodings, which the importer computed once (`SealedBlock`) and passes here.
    Import {
        /// The ordered-trie root of the block's transaction encodings.
        transactions_root: B256,
    },
    /// Building a payload: skip transactions that are invalid or do not fit.
    Build,
}

/// Every state write a block makes, with the values it overwrites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostState {
    /// New state root.
    pub state_root: B256,
    /// Trie nodes to store.
    pub trie_nodes: Vec<(B256, Vec<u8>)>,
    /// `(address, before, after)`; `None` = no account.
    pub accounts: Vec<(Address, Option<AccountRecord>, Option<AccountRecord>)>,
    /// `(address, slot, before, after)`; zero = no slot.
    pub storage: Vec<(Address, B256, U256, U256)>,
    /// New contract code.
    pub codes: Vec<(B256, Bytes)>,
}

/// A block after execution, not yet written.
#[derive(Debug, Clone)]
pub struct Executed {
    /// The header execution produced.
    pub header: ElHeader,
    /// The transactions included (all of them on import).
    pub transactions: Vec<SignedTx>,
    /// One receipt per included transaction.
    pub receipts: Vec<Receipt>,
    /// Credits applied.
    pub credits: Vec<Credit>,
    /// State writes and their pre-images.
    pub post: PostState,
}

/// One account's changes, as execution or genesis produce them.
#[derive(Debug, Clone, Default)]
pub struct AccountDiff {
    /// Nonce, balance and code hash afterwards (`None`: the account is gone).
    pub info: Option<(u64, U256, B256)>,
    /// Slots written, with their new values.
    pub storage: BTreeMap<B256, U256>,
    /// Whether all earlier storage is removed first (destroyed and recreated).
    pub wipe: bool,
}

fn slot_value_rlp(v: U256) -> Vec<u8> {
    alloy_rlp::encode(v)
}

/// Applies `diffs` to the tries rooted in the current state read through `tx`: returns the
/// new root, the nodes to store and every write with its pre-image.
pub fn post_state<K: TransactionKind>(
    tx: &Tx<'_, K>,
    state_root: B256,
    diffs: BTreeMap<Address, AccountDiff>,
    codes: Vec<(B256, Bytes)>,
) -> Result<PostState, ExecError> {
    let nodes = TrieReader::new(tx);
    let mut account_trie = Trie::at(state_root);
    let mut out = PostState { codes, ..Default::default() };
    for (address, diff) in diffs {
        let before = tx.get::<Accounts>(&address)?;
        let mut storage_root = before.map_or(EMPTY_ROOT, |a| a.storage_root);
        if diff.wipe || diff.info.is_none() {
            // Every existing slot goes (their pre-images are kept for unwinding).
            let mut cursor = tx.cursor::<Storage>()?;
            let mut entry = cursor.seek(&(address, B256::ZERO))?;
            while let Some(((a, slot), word)) = entry {
                if a != address {
                    break;
                }
                if !diff.storage.contains_key(&slot) {
                    out.storage.push((address, slot, word.0, U256::ZERO));
                }
                entry = cursor.next()?;
            }
            storage_root = EMPTY_ROOT;
        }
        if !diff.storage.is_empty() {
            let mut st = Trie::at(storage_root);
            for (slot, value) in &diff.storage {
                let prior = tx.get::<Storage>(&(address, *slot))?.map(|w| w.0).unwrap_or_default();
                let key = keccak256(slot);
                if value.is_zero() {
                    st.remove(&nodes, &key)?;
                } else {
                    st.insert(&nodes, &key, slot_value_rlp(*value))?;
                }
                if prior != *value {
                    out.storage.push((address, *slot, prior, *value));
                }
            }
            let (root, new_nodes) = st.commit();
            storage_root = root;
            out.trie_nodes.extend(new_nodes);
        }
        let after = diff.info.map(|(nonce, balance, code_hash)| AccountRecord {
            nonce,
            balance,
            code_hash,
            storage_root,
        });
        let key = keccak256(address);
        match &after {
            Some(a) => {
                let rlp = alloy_rlp::encode(TrieAccount {
                    nonce: a.nonce,
                    balance: a.balance,
                    storage_root: a.storage_root,
                    code_hash: a.code_hash,
                });
                account_trie.insert(&nodes, &key, rlp)?;
            }
            None => account_trie.remove(&nodes, &key)?,
        }
        if before != after {
            out.accounts.push((address, before, after));
        }
    }
    let (root, new_nodes) = account_trie.commit();
    out.state_root = root;
    out.trie_nodes.extend(new_nodes);
    Ok(out)
}

/// The EVM configuration every run on chain `chain_id` uses (Prague rules): block execution,
/// payload building, calls and traces.
pub fn cfg_env(chain_id: u64) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec(SpecId::PRAGUE);
    cfg.chain_id = chain_id;
    cfg
}

/// The configuration transaction `tx` runs under: `cfg`, with EIP-3607 (senders with code are
/// refused) off for an impersonated transaction, which a development node may send from a
/// contract as anvil does. A signed transaction's sender has code only if the hash of its keys
/// hit a contract's address, so nothing else changes; and no impersonated transaction reaches
/// execution except on a development node, since every signature check refuses them
/// (`SignedTx::impersonated`).
pub fn tx_cfg(mut cfg: CfgEnv, tx: &SignedTx) -> CfgEnv {
    cfg.disable_eip3607 = tx.is_impersonated();
    cfg
}

/// The environment revm runs a signed transaction in.
pub fn tx_env(tx: &SignedTx) -> TxEnv {
    let r = tx.request();
    TxEnv {
        tx_type: 2,
        caller: tx.sender(),
        gas_limit: r.gas_limit,
        gas_price: r.max_fee_per_gas,
        kind: match r.to {
            TxKind::Create => revm::primitives::TxKind::Create,
            TxKind::Call(a) => revm::primitives::TxKind::Call(a),
        },
        value: r.value,
        data: r.input.clone(),
        nonce: r.nonce,
        chain_id: Some(r.chain_id),
        access_list: AccessList(
            r.access_list
                .iter()
                .map(|i| AccessListItem { address: i.address, storage_keys: i.storage_keys.clone() })
                .collect(),
        ),
        gas_priority_fee: Some(r.max_priority_fee_per_gas),
        ..TxEnv::default()
    }
}

/// Executes `txs` on top of the state read through `tx` (which must be at `parent`).
pub fn execute<K: TransactionKind>(
    tx: &Tx<'_, K>,
    parent: &ElHeader,
    env: &BlockEnvInput,
    txs: Vec<SignedTx>,
    credits: Vec<Credit>,
    mode: Mode,
) -> Result<Executed, ExecError> {
    let reader = StateReader::new(tx);
    let mut state = State::builder().with_database(WrapDatabaseRef(reader)).with_bundle_update().build();
    let cfg = cfg_env(env.chain_id);
    let block = BlockEnv {
        number: U256::from(env.number),
        beneficiary: env.beneficiary,
        timestamp: U256::from(env.timestamp),
        gas_limit: env.gas_limit,
        basefee: env.base_fee,
        difficulty: U256::ZERO,
        prevrandao: Some(env.prev_randao),
        ..BlockEnv::default()
    };
    let mut included = Vec::with_capacity(txs.len());
    let mut receipts = Vec::with_capacity(txs.len());
    let mut cumulative = 0u64;
    let mut bloom = Bloom::ZERO;
    {
        let mut evm = Context::mainnet()
            .with_db(&mut state)
            .with_cfg(cfg)
            .with_block(block)
            .build_mainnet()
            .with_precompiles(crate::precompiles::provider());
        for (index, t) in txs.into_iter().enumerate() {
            if t.request().gas_limit > env.gas_limit - cumulative {
                if mode == Mode::Build {
                    continue;
                }
                return Err(ExecError::InvalidBlock(format!(
                    "transaction {index} exceeds the block gas limit"
                )));
            }
            evm.ctx.cfg.disable_eip3607 = t.is_impersonated(); // as `tx_cfg`
            match evm.transact_commit(tx_env(&t)) {
                Ok(result) => {
                    cumulative += result.tx_gas_used();
                    let logs = result.logs().to_vec();
                    let mut receipt_bloom = Bloom::ZERO;
                    receipt_bloom.accrue_logs(&logs);
                    bloom.accrue_bloom(&receipt_bloom);
                    receipts.push(Receipt {
                        success: result.is_success(),
                        cumulative_gas_used: cumulative,
                        logs_bloom: receipt_bloom,
                        logs,
                    });
                    included.push(t);
                }
                Err(e) => {
                    if mode == Mode::Build {
                        continue;
                    }
                    return Err(ExecError::InvalidTransaction { index, reason: e.to_string() });
                }
            }
        }
    }
    // One entry per account: revm's `increment_balances` keeps only the last of duplicate
    // addresses, and a miner may be credited twice (its block and a sibling it mined).
    let mut credit_amounts: BTreeMap<Address, u128> = BTreeMap::new();
    for c in &credits {
        let amount = u128::try_from(c.amount).unwrap_or(u128::MAX);
        let entry = credit_amounts.entry(c.address).or_default();
        *entry = entry.saturating_add(amount);
    }
    state.increment_balances(credit_amounts).map_err(|e| StateError(e.to_string()))?;
    state.merge_transitions(BundleRetention::Reverts);
    let bundle = state.take_bundle();

    let mut diffs = BTreeMap::new();
    for (address, account) in bundle.state {
        let storage = account
            .storage
            .iter()
            .filter(|(_, s)| {
                s.previous_or_original_value != s.present_value || account.status.was_destroyed()
            })
            .map(|(slot, s)| (B256::from(slot.to_be_bytes::<32>()), s.present_value))
            .collect();
        diffs.insert(
            address,
            AccountDiff {
                info: account.info.map(|i| (i.nonce, i.balance, i.code_hash)),
                storage,
                wipe: account.status.was_destroyed(),
            },
        );
    }
    let codes = bundle
        .contracts
        .into_iter()
        .filter(|(h, _)| *h != KECCAK_EMPTY)
        .map(|(h, code)| (h, code.original_bytes()))
        .collect();
    let post = post_state(tx, parent.state_root, diffs, codes)?;

    let transactions_root = match mode {
        Mode::Import { transactions_root } => transactions_root,
        Mode::Build => ordered_root(&included.iter().map(SignedTx::encode).collect::<Vec<_>>()),
    };
    let receipt_encodings: Vec<Vec<u8>> = receipts.iter().map(Receipt::encoded).collect();
    let header = ElHeader {
        parent_hash: parent.hash(),
        number: env.number,
        timestamp: env.timestamp,
        beneficiary: env.beneficiary,
        state_root: post.state_root,
        transactions_root,
        receipts_root: ordered_root(&receipt_encodings),
        credits_root: credits_root(&credits),
        logs_bloom: bloom,
        gas_limit: env.gas_limit,
        gas_used: cumulative,
        base_fee_per_gas: env.base_fee,
        prev_randao: env.prev_randao,
    };
    Ok(Executed { header, transactions: included, receipts, credits, post })
}
