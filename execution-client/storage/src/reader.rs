//! Typed reads of what the execution client stored: the head, accounts, canonical block
//! numbers, the transactions of a block, and trie nodes for the trie.

use crate::block::{Body, ElHeader, Receipt};
use crate::tables::{AccountRecord, Accounts, Bodies, HeaderNumbers, Headers, Meta, Receipts, TrieNodes};
use alloy_primitives::{Address, B256, U256};
use alloy_rlp::{RlpDecodable, RlpEncodable};
use qoin_primitives::SignedTx;
use qoin_store::{StoreError, TransactionKind, Tx};
use qoin_trie::{NodeReader, TrieError};

/// Key in [`Meta`] of the head block's number.
pub const HEAD_KEY: &str = "head";

/// Why stored data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that must be stored is missing or does not decode.
    #[error("stored data is missing or corrupt: {0}")]
    Corrupt(String),
}

/// Decodes a stored header.
pub fn decode_header(rlp: &[u8]) -> Result<ElHeader, StorageError> {
    alloy_rlp::Decodable::decode(&mut &rlp[..])
        .map_err(|e| StorageError::Corrupt(format!("stored header: {e}")))
}

/// The head header read through `tx`.
pub fn head<K: TransactionKind>(tx: &Tx<'_, K>) -> Result<ElHeader, StorageError> {
    let n = tx
        .get::<Meta>(&HEAD_KEY.to_string())?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StorageError::Corrupt("no head: database not initialised".into()))?;
    let rlp =
        tx.get::<Headers>(&n)?.ok_or_else(|| StorageError::Corrupt(format!("head header {n} missing")))?;
    decode_header(&rlp)
}

/// The account at `address` in the current state.
pub fn account<K: TransactionKind>(
    tx: &Tx<'_, K>,
    address: &Address,
) -> Result<Option<AccountRecord>, StorageError> {
    Ok(tx.get::<Accounts>(address)?)
}

/// The number of the block with this hash, if canonical.
pub fn block_number<K: TransactionKind>(tx: &Tx<'_, K>, hash: &B256) -> Result<Option<u64>, StoreError> {
    tx.get::<HeaderNumbers>(hash)
}

/// The transactions of canonical block `number` with their gas used and success.
pub fn block_transactions<K: TransactionKind>(
    tx: &Tx<'_, K>,
    number: u64,
) -> Result<Vec<(SignedTx, u64, bool)>, StorageError> {
    let (Some(body), Some(receipts)) = (tx.get::<Bodies>(&number)?, tx.get::<Receipts>(&number)?) else {
        return Ok(Vec::new());
    };
    let body: Body = alloy_rlp::Decodable::decode(&mut &body[..])
        .map_err(|e| StorageError::Corrupt(format!("stored body {number}: {e}")))?;
    let receipts: Vec<Receipt> = alloy_rlp::Decodable::decode(&mut &receipts[..])
        .map_err(|e| StorageError::Corrupt(format!("stored receipts {number}: {e}")))?;
    let mut prev = 0u64;
    let mut out = Vec::with_capacity(body.transactions.len());
    for (raw, r) in body.transactions.iter().zip(&receipts) {
        let t = SignedTx::decode(raw).map_err(|e| StorageError::Corrupt(format!("stored tx: {e}")))?;
        out.push((t, r.cumulative_gas_used.saturating_sub(prev), r.success));
        prev = r.cumulative_gas_used;
    }
    Ok(out)
}

/// Trie nodes read through a transaction on [`TrieNodes`].
pub struct TrieReader<'a, 'db, K: TransactionKind> {
    tx: &'a Tx<'db, K>,
}

impl<'a, 'db, K: TransactionKind> TrieReader<'a, 'db, K> {
    /// Reads nodes through `tx`.
    pub fn new(tx: &'a Tx<'db, K>) -> Self {
        Self { tx }
    }
}

impl<K: TransactionKind> NodeReader for TrieReader<'_, '_, K> {
    fn node(&self, hash: &B256) -> Result<Option<Vec<u8>>, TrieError> {
        self.tx.get::<TrieNodes>(hash).map_err(|e| TrieError::Store(e.to_string()))
    }
}

/// An account leaf of the state trie: `rlp([nonce, balance, storage_root, code_hash])`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct TrieAccount {
    /// Nonce.
    pub nonce: u64,
    /// Balance.
    pub balance: U256,
    /// Root of the account's storage trie.
    pub storage_root: B256,
    /// keccak256 of the account's code.
    pub code_hash: B256,
}

/// Decodes an account leaf of the state trie into (nonce, balance, storage root, code hash).
pub fn decode_trie_account(rlp: &[u8]) -> Result<(u64, U256, B256, B256), alloy_rlp::Error> {
    let a: TrieAccount = alloy_rlp::Decodable::decode(&mut &rlp[..])?;
    Ok((a.nonce, a.balance, a.storage_root, a.code_hash))
}
