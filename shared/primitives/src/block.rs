//! A consensus block: the header and the execution payload's transactions, as SSZ.
//!
//! ```text
//! Block = Container(header: Header, transactions: List[List[uint8, 131072], 65536])
//! ```
//!
//! Each transaction is its EIP-2718 encoding (see [`crate::SignedTx`]); the header's
//! `transactions_root` is the SSZ `hash_tree_root` of the `transactions` list.

use crate::header::{check_header_offsets, check_offsets, ssz_bytes, HeaderSsz};
use crate::{Header, HeaderError, MAX_TX_SIZE};
use alloy_primitives::B256;
use ssz_rs::prelude::*;

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 65_536;
/// Largest encoded block accepted before parsing (32 MiB).
pub const MAX_BLOCK_SIZE: usize = 32 * 1024 * 1024;

type TxList = List<List<u8, MAX_TX_SIZE>, MAX_BLOCK_TXS>;

#[derive(Debug, Default, Clone, PartialEq, Eq, SimpleSerialize)]
struct BlockSsz {
    header: HeaderSsz,
    transactions: TxList,
}

/// A header with its transactions (raw EIP-2718 encodings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// Encoded transactions, in execution order.
    pub transactions: Vec<Vec<u8>>,
}

fn tx_list(txs: &[Vec<u8>]) -> Result<TxList, HeaderError> {
    let mut inner = Vec::with_capacity(txs.len());
    for (i, tx) in txs.iter().enumerate() {
        let l = List::try_from(tx.clone())
            .map_err(|_| HeaderError::Ssz(format!("transaction {i} exceeds {MAX_TX_SIZE} bytes")))?;
        inner.push(l);
    }
    List::try_from(inner).map_err(|_| HeaderError::Ssz(format!("more than {MAX_BLOCK_TXS} transactions")))
}

/// SSZ `hash_tree_root` of a list of encoded transactions.
pub fn transactions_root(txs: &[Vec<u8>]) -> Result<B256, HeaderError> {
    let mut list = tx_list(txs)?;
    let root = list.hash_tree_root().map_err(|e| HeaderError::Ssz(e.to_string()))?;
    Ok(B256::from_slice(root.as_ref()))
}

/// SSZ `hash_tree_root` of one encoded transaction (a `List[uint8, 131072]`): the leaves
/// [`transactions_root_of`] combines. Independent per transaction, so a caller may compute them
/// in parallel.
pub fn transaction_root(tx: &[u8]) -> Result<B256, HeaderError> {
    let mut list = List::<u8, MAX_TX_SIZE>::try_from(tx.to_vec())
        .map_err(|_| HeaderError::Ssz(format!("a transaction exceeds {MAX_TX_SIZE} bytes")))?;
    let root = list.hash_tree_root().map_err(|e| HeaderError::Ssz(e.to_string()))?;
    Ok(B256::from_slice(root.as_ref()))
}

/// The `transactions_root` of a list whose transactions' own roots ([`transaction_root`]) are
/// `roots`, in order: equal to [`transactions_root`] of the transactions.
pub fn transactions_root_of(roots: &[B256]) -> Result<B256, HeaderError> {
    // A list of composite elements merkleizes their roots: a `Vector[uint8, 32]` is its own
    // root, so the same limit over the same chunks gives the same root.
    let mut inner = Vec::with_capacity(roots.len());
    for r in roots {
        inner.push(Vector::<u8, 32>::try_from(r.to_vec()).map_err(|e| HeaderError::Ssz(format!("{e:?}")))?);
    }
    let mut list = List::<Vector<u8, 32>, MAX_BLOCK_TXS>::try_from(inner)
        .map_err(|_| HeaderError::Ssz(format!("more than {MAX_BLOCK_TXS} transactions")))?;
    let root = list.hash_tree_root().map_err(|e| HeaderError::Ssz(e.to_string()))?;
    Ok(B256::from_slice(root.as_ref()))
}

/// Checks the offset table of the SSZ transaction list (a list of variable-size byte lists)
/// before the SSZ library reads it: it slices by these offsets and panics on bad ones. The
/// first offset is the table's length (4 bytes per transaction, at most [`MAX_BLOCK_TXS`]);
/// every offset lies in the list and none is below the previous one; no transaction is
/// longer than [`MAX_TX_SIZE`].
fn check_tx_list_offsets(bytes: &[u8]) -> Result<(), HeaderError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let read = |i: usize| -> Result<usize, HeaderError> {
        let at = i.checked_mul(4).ok_or_else(|| HeaderError::Ssz("transaction offset index".into()))?;
        let raw: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| HeaderError::Ssz(format!("transaction offset {i} out of range")))?;
        Ok(u32::from_le_bytes(raw) as usize)
    };
    let first = read(0)?;
    if first == 0 || first % 4 != 0 || first > bytes.len() {
        return Err(HeaderError::Ssz(format!("invalid first transaction offset {first}")));
    }
    let count = first / 4;
    if count > MAX_BLOCK_TXS {
        return Err(HeaderError::Ssz(format!("{count} transactions, at most {MAX_BLOCK_TXS}")));
    }
    let mut start = first;
    for i in 1..=count {
        let end = if i == count { bytes.len() } else { read(i)? };
        if end < start || end > bytes.len() {
            return Err(HeaderError::Ssz(format!("invalid offset {end} of transaction {i}")));
        }
        if end - start > MAX_TX_SIZE {
            return Err(HeaderError::Ssz(format!("transaction {} exceeds {MAX_TX_SIZE} bytes", i - 1)));
        }
        start = end;
    }
    Ok(())
}

impl Block {
    /// SSZ encoding.
    pub fn encode(&self) -> Result<Vec<u8>, HeaderError> {
        let b = BlockSsz { header: self.header.to_ssz()?, transactions: tx_list(&self.transactions)? };
        Ok(ssz_bytes(&b))
    }

    /// Decodes an SSZ block; structure only (transactions are not parsed here).
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        if bytes.len() > MAX_BLOCK_SIZE {
            return Err(HeaderError::TooLarge { got: bytes.len(), max: MAX_BLOCK_SIZE });
        }
        let offsets = check_offsets(bytes, 8, &[0, 4])?;
        let header_bytes =
            bytes.get(offsets[0]..offsets[1]).ok_or(HeaderError::Ssz("header offsets".into()))?;
        check_header_offsets(header_bytes)?;
        let tx_bytes = bytes.get(offsets[1]..).ok_or(HeaderError::Ssz("transactions offset".into()))?;
        check_tx_list_offsets(tx_bytes)?;
        let b = BlockSsz::deserialize(bytes).map_err(|e| HeaderError::Ssz(e.to_string()))?;
        let header = Header::from_ssz(&b.header)?;
        let transactions = b.transactions.iter().map(|t| t.to_vec()).collect();
        Ok(Self { header, transactions })
    }

    /// The block hash (the header's hash).
    pub fn hash(&self) -> Result<B256, HeaderError> {
        self.header.hash()
    }

    /// Checks that the transactions hash to the header's `transactions_root`.
    pub fn check_transactions_root(&self) -> Result<(), HeaderError> {
        let body = transactions_root(&self.transactions)?;
        if body == self.header.transactions_root {
            Ok(())
        } else {
            Err(HeaderError::TransactionsRoot { header: self.header.transactions_root, body })
        }
    }
}
