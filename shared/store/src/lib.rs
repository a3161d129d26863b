//! # qoin-store
//!
//! Owns typed storage over MDBX (through `signet-libmdbx`, whose `signet-mdbx-sys` ships
//! pre-generated bindings and builds MDBX's C with `cc` alone), used by both clients:
//!
//! - **tables as types**: a [`Table`] names its key and value types, each with a byte codec
//!   ([`Encode`] / [`Decode`]); business code never handles raw byte slices;
//! - read-only and read-write **transactions** ([`ReadTx`], [`WriteTx`]) and typed
//!   **cursors** ([`Cursor`]);
//! - a **schema check** on open: a database records its schema name and version, and opening
//!   it with another is an error, never a silent misread.
//!
//! A write transaction either commits whole or leaves nothing: MDBX's copy-on-write B-tree
//! and durable sync mode mean a process killed at any point reopens at exactly the last
//! committed transaction (tested by killing a writer with SIGKILL).
//!
//! Declaring tables:
//!
//! ```
//! use qoin_store::{table, Schema, Store};
//! table!(/// Block hashes by height.
//!        CanonicalHashes: u64 => qoin_store::B256);
//! const SCHEMA: Schema = Schema { name: "example", version: 1, tables: &["CanonicalHashes"] };
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), &SCHEMA, Default::default()).unwrap();
//! let tx = store.write().unwrap();
//! tx.put::<CanonicalHashes>(&7, &qoin_store::B256::repeat_byte(1)).unwrap();
//! tx.commit().unwrap();
//! assert!(store.read().unwrap().get::<CanonicalHashes>(&7).unwrap().is_some());
//! ```

mod codec;
mod store;

pub use alloy_primitives::{Address, B256};
pub use codec::{Decode, DecodeError, Encode, FixedWidth};
pub use signet_libmdbx::TransactionKind;
pub use store::{
    Cursor, ReadTx, Schema, Store, StoreError, StoreOptions, Table, Tx, Walk, WriteTx, MAX_KEY_LEN,
    MAX_VALUE_LEN, RO, RW,
};

/// Declares a table type: `table!(/// doc
/// Name: KeyType => ValueType);`
#[macro_export]
macro_rules! table {
    ($(#[$meta:meta])* $name:ident : $key:ty => $value:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name;
        impl $crate::Table for $name {
            const NAME: &'static str = stringify!($name);
            type Key = $key;
            type Value = $value;
        }
    };
}

#[cfg(test)]
mod tests;
