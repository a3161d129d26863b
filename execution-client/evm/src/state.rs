//! Reading state from MDBX: the revm database, account and storage reads, trie node reads.

use alloy_primitives::{Address, B256, U256};
use qoin_el_storage::reader::{TrieAccount, TrieReader};
use qoin_el_storage::tables::{Accounts, Bytecodes, Headers, Storage};
use qoin_store::{StoreError, TransactionKind, Tx};
use revm::bytecode::Bytecode;
use revm::database_interface::{DBErrorMarker, DatabaseRef};
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;

/// A storage failure seen while executing or reading state.
#[derive(Debug, thiserror::Error)]
#[error("state read failed: {0}")]
pub struct StateError(pub String);

impl DBErrorMarker for StateError {}

impl From<StoreError> for StateError {
    fn from(e: StoreError) -> Self {
        Self(e.to_string())
    }
}

fn info(nonce: u64, balance: U256, code_hash: B256) -> AccountInfo {
    AccountInfo { balance, nonce, code_hash, code: None, account_id: None }
}

/// State as of the latest committed block, read through one MDBX transaction.
pub struct StateReader<'a, 'db, K: TransactionKind> {
    tx: &'a Tx<'db, K>,
}

impl<'a, 'db, K: TransactionKind> StateReader<'a, 'db, K> {
    /// Reads through `tx`.
    pub fn new(tx: &'a Tx<'db, K>) -> Self {
        Self { tx }
    }
}

impl<K: TransactionKind> DatabaseRef for StateReader<'_, '_, K> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        Ok(self.tx.get::<Accounts>(&address)?.map(|a| info(a.nonce, a.balance, a.code_hash)))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        let code = self
            .tx
            .get::<Bytecodes>(&code_hash)?
            .ok_or_else(|| StateError(format!("code {code_hash} missing from Bytecodes")))?;
        Bytecode::new_raw_checked(code.into()).map_err(|e| StateError(format!("code {code_hash}: {e}")))
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        let slot = B256::from(index.to_be_bytes::<32>());
        Ok(self.tx.get::<Storage>(&(address, slot))?.map(|w| w.0).unwrap_or_default())
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        // BLOCKHASH: the canonical header's hash, zero if unknown.
        Ok(match self.tx.get::<Headers>(&number)? {
            Some(rlp) => alloy_primitives::keccak256(rlp),
            None => B256::ZERO,
        })
    }
}

/// State as of any block whose state root is known, read through the trie (the trie keeps
/// every version of its nodes, so old roots stay readable). Slower than [`StateReader`];
/// used for RPC reads at blocks before the head.
pub struct TrieState<'a, 'db, K: TransactionKind> {
    tx: &'a Tx<'db, K>,
    root: B256,
}

impl<'a, 'db, K: TransactionKind> TrieState<'a, 'db, K> {
    /// Reads the state with root `root` through `tx`.
    pub fn new(tx: &'a Tx<'db, K>, root: B256) -> Self {
        Self { tx, root }
    }

    fn account(&self, address: Address) -> Result<Option<TrieAccount>, StateError> {
        let nodes = TrieReader::new(self.tx);
        let key = alloy_primitives::keccak256(address);
        let Some(rlp) = qoin_trie::get(&nodes, self.root, &key).map_err(|e| StateError(e.to_string()))?
        else {
            return Ok(None);
        };
        alloy_rlp::Decodable::decode(&mut &rlp[..])
            .map(Some)
            .map_err(|e| StateError(format!("account {address} in the trie: {e}")))
    }
}

impl<K: TransactionKind> DatabaseRef for TrieState<'_, '_, K> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        Ok(self.account(address)?.map(|a| info(a.nonce, a.balance, a.code_hash)))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        StateReader::new(self.tx).code_by_hash_ref(code_hash)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        let Some(account) = self.account(address)? else {
            return Ok(U256::ZERO);
        };
        let nodes = TrieReader::new(self.tx);
        let key = alloy_primitives::keccak256(B256::from(index.to_be_bytes::<32>()));
        match qoin_trie::get(&nodes, account.storage_root, &key).map_err(|e| StateError(e.to_string()))? {
            None => Ok(U256::ZERO),
            Some(rlp) => alloy_rlp::Decodable::decode(&mut &rlp[..])
                .map_err(|e| StateError(format!("slot of {address} in the trie: {e}"))),
        }
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        StateReader::new(self.tx).block_hash_ref(number)
    }
}
