//! The execution client's tables in MDBX and their encodings.
//!
//! | table | key → value |
//! |---|---|
//! | `Accounts` | address → nonce, balance, code hash, storage root |
//! | `Storage` | (address, slot) → value (absent = zero) |
//! | `Bytecodes` | code hash → code |
//! | `TrieNodes` | node hash → node RLP (state and storage tries, see `qoin-trie`) |
//! | `Headers` | number → header RLP (canonical chain) |
//! | `HeaderNumbers` | block hash → number |
//! | `Bodies` | number → the block's transactions and reward credits (RLP) |
//! | `Receipts` | number → the block's receipts (RLP) |
//! | `TxLookup` | transaction id → (number, index) |
//! | `AccountChanges` | (number, address) → the account before the block (for unwinding) |
//! | `StorageChanges` | (number, address, slot) → the slot before the block |
//! | `Meta` | name → value (the head) |

use alloy_primitives::{Address, B256, U256};
use qoin_store::{table, Decode, DecodeError, Encode, Schema};
use std::borrow::Cow;

/// The execution client's schema; bump `version` whenever an encoding changes.
pub const SCHEMA: Schema = Schema {
    name: "qoin-el",
    version: 1,
    tables: &[
        "Accounts",
        "Storage",
        "Bytecodes",
        "TrieNodes",
        "Headers",
        "HeaderNumbers",
        "Bodies",
        "Receipts",
        "TxLookup",
        "AccountChanges",
        "StorageChanges",
        "Meta",
    ],
};

/// An account as stored: the Ethereum account fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRecord {
    /// Nonce.
    pub nonce: u64,
    /// Balance in shor.
    pub balance: U256,
    /// keccak256 of the code (`KECCAK_EMPTY` for none).
    pub code_hash: B256,
    /// Root of the account's storage trie.
    pub storage_root: B256,
}

impl Encode for AccountRecord {
    fn encode(&self) -> Cow<'_, [u8]> {
        let mut v = Vec::with_capacity(104);
        v.extend_from_slice(&self.nonce.to_be_bytes());
        v.extend_from_slice(&self.balance.to_be_bytes::<32>());
        v.extend_from_slice(self.code_hash.as_slice());
        v.extend_from_slice(self.storage_root.as_slice());
        Cow::Owned(v)
    }
}

impl Decode for AccountRecord {
    fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != 104 {
            return Err(DecodeError::new::<Self>(format!("expected 104 bytes, got {}", b.len())));
        }
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&b[..8]);
        Ok(Self {
            nonce: u64::from_be_bytes(nonce),
            balance: U256::from_be_slice(&b[8..40]),
            code_hash: B256::from_slice(&b[40..72]),
            storage_root: B256::from_slice(&b[72..104]),
        })
    }
}

/// A storage value (big-endian 32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Word(pub U256);

impl Encode for Word {
    fn encode(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.to_be_bytes::<32>().to_vec())
    }
}

impl Decode for Word {
    fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != 32 {
            return Err(DecodeError::new::<Self>(format!("expected 32 bytes, got {}", b.len())));
        }
        Ok(Self(U256::from_be_slice(b)))
    }
}

/// An optional account pre-image: empty bytes mean "did not exist".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorAccount(pub Option<AccountRecord>);

impl Encode for PriorAccount {
    fn encode(&self) -> Cow<'_, [u8]> {
        match &self.0 {
            Some(a) => Cow::Owned(a.encode().into_owned()),
            None => Cow::Borrowed(&[]),
        }
    }
}

impl Decode for PriorAccount {
    fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.is_empty() {
            Ok(Self(None))
        } else {
            AccountRecord::decode(b).map(|a| Self(Some(a)))
        }
    }
}

/// Where a transaction is: block number and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// Block number.
    pub block: u64,
    /// Index in the block.
    pub index: u32,
}

impl Encode for TxLocation {
    fn encode(&self) -> Cow<'_, [u8]> {
        let mut v = self.block.to_be_bytes().to_vec();
        v.extend_from_slice(&self.index.to_be_bytes());
        Cow::Owned(v)
    }
}

impl Decode for TxLocation {
    fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != 12 {
            return Err(DecodeError::new::<Self>(format!("expected 12 bytes, got {}", b.len())));
        }
        Ok(Self { block: u64::decode(&b[..8])?, index: u32::decode(&b[8..])? })
    }
}

table!(/// Current accounts.
       Accounts: Address => AccountRecord);
table!(/// Current storage slots (zero slots are absent).
       Storage: (Address, B256) => Word);
table!(/// Contract code by hash.
       Bytecodes: B256 => Vec<u8>);
table!(/// Trie nodes by hash.
       TrieNodes: B256 => Vec<u8>);
table!(/// Canonical headers (RLP) by number.
       Headers: u64 => Vec<u8>);
table!(/// Block numbers by hash.
       HeaderNumbers: B256 => u64);
table!(/// Block bodies (RLP: transactions and reward credits) by number.
       Bodies: u64 => Vec<u8>);
table!(/// Receipts (RLP) by block number.
       Receipts: u64 => Vec<u8>);
table!(/// Transaction locations by id.
       TxLookup: B256 => TxLocation);
table!(/// Accounts as they were before block `n` changed them.
       AccountChanges: (u64, Address) => PriorAccount);
table!(/// Slots as they were before block `n` changed them.
       StorageChanges: (u64, (Address, B256)) => Word);
table!(/// Small named values.
       Meta: String => Vec<u8>);
