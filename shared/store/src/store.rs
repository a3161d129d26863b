//! The database, its transactions and cursors.

use crate::codec::{Decode, DecodeError, Encode};
use signet_libmdbx::{
    sys::EnvironmentKind, Database, DatabaseFlags, Environment, EnvironmentFlags, Geometry, MdbxError, Mode,
    ReadError, Ro, Rw, SyncMode, TransactionKind, WriteFlags,
};
use std::borrow::Cow;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Longest key the store accepts. MDBX's own limit with 4 KiB pages is about 2 KiB, and it
/// aborts the process (it does not return an error) on a longer one, so the store refuses
/// first. Qoin's keys are at most 84 bytes.
pub const MAX_KEY_LEN: usize = 511;
/// Largest value the store accepts (MDBX's limit is just under 2 GiB).
pub const MAX_VALUE_LEN: usize = 1 << 30;

/// A table: a name, a key type and a value type.
pub trait Table: 'static {
    /// Name of the MDBX sub-database.
    const NAME: &'static str;
    /// Key type.
    type Key: Encode + Decode;
    /// Value type.
    type Value: Encode + Decode;
}

/// What a database holds: its name, version and tables. Stored in the database on creation
/// and checked on every open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// Which program's data this is (e.g. `"qoin-el"`).
    pub name: &'static str,
    /// Layout version; bump it whenever a table's encoding changes.
    pub version: u32,
    /// Every table name.
    pub tables: &'static [&'static str],
}

/// Tuning of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Upper bound of the memory map (the file grows up to this).
    pub max_size: usize,
    /// Step by which the file grows.
    pub growth_step: usize,
    /// `true` (the default): every commit is durable (fsync). `false` keeps commits atomic
    /// and the file consistent but a machine crash may lose the newest ones (MDBX
    /// SafeNoSync); a killed process loses nothing either way.
    pub durable: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_size: 1 << 40, growth_step: 1 << 26, durable: true }
    }
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// MDBX reported an error.
    #[error("MDBX: {0}")]
    Mdbx(#[from] MdbxError),
    /// A key or value is longer than the store accepts.
    #[error("table {table}: {what} of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The table.
        table: &'static str,
        /// `"key"` or `"value"`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The database folder could not be created.
    #[error("cannot create database folder {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database belongs to another program.
    #[error("database holds schema {found:?}, expected {expected:?}: wrong --datadir?")]
    SchemaName {
        /// Name stored in the database.
        found: String,
        /// Name this program uses.
        expected: &'static str,
    },
    /// The database was written by another layout version.
    #[error(
        "database schema version {found} does not match this program's version {expected}; \
         resync into a fresh data directory"
    )]
    SchemaVersion {
        /// Version stored in the database.
        found: u32,
        /// Version this program uses.
        expected: u32,
    },
    /// Metadata is missing or unreadable.
    #[error("database metadata is corrupt: {0}")]
    Corrupt(String),
    /// A table that is not in the schema was used.
    #[error("table {0} is not part of this database's schema")]
    UnknownTable(&'static str),
    /// A stored key or value did not decode.
    #[error("table {table}: {source}")]
    Decode {
        /// The table.
        table: &'static str,
        /// The cause.
        source: DecodeError,
    },
}

const META_TABLE: &str = "__meta";
const META_NAME: &[u8] = b"schema_name";
const META_VERSION: &[u8] = b"schema_version";

impl From<ReadError> for StoreError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Mdbx(e) => Self::Mdbx(e),
            // Only raw byte slices are read through MDBX; typed decoding happens here.
            ReadError::Decoding(e) => Self::Corrupt(e.to_string()),
        }
    }
}

/// An open MDBX database with a checked schema. A clone shares the environment (MDBX readers
/// in one task never block the writer in another, and see committed data only).
#[derive(Clone)]
pub struct Store {
    env: Environment,
    path: PathBuf,
    schema: Schema,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({}, {} v{})", self.path.display(), self.schema.name, self.schema.version)
    }
}

/// Read transactions open at once (MDBX's default, 126, is below the threads a JSON-RPC batch
/// may read on at once: past it a read fails with "too many readers"). A slot costs 64 bytes
/// of the lock file.
const MAX_READERS: u64 = 4_096;

impl Store {
    /// Opens (creating if needed) the database in folder `path`, creates the schema's tables
    /// and checks the stored schema name and version.
    pub fn open(path: &Path, schema: &Schema, options: StoreOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path)
            .map_err(|source| StoreError::Io { path: path.to_path_buf(), source })?;
        let to_isize = |v: usize| isize::try_from(v).unwrap_or(isize::MAX);
        let sync_mode = if options.durable { SyncMode::Durable } else { SyncMode::SafeNoSync };
        let env = Environment::builder()
            .set_max_dbs(schema.tables.len() + 1)
            .set_max_readers(MAX_READERS)
            // A writable map without readahead (reth opens its databases the same way). Written
            // through `pwrite` (MDBX's default), each 4 KiB page landed in the kernel's cached
            // copy of the file, which on current kernels holds the file in folios larger than a
            // page (those that sequential writes and readahead create), and dirtied the whole
            // folio: importing a block of 1,000 transfers wrote 278 MiB to disk for 38 MiB of
            // pages. Pages written in place through the map, with readahead off so that a page
            // is faulted in alone, dirty only themselves: 38 MiB per such block, and the import
            // 1.15x as fast (`qoin-bench import-transfers --txs-per-block 1000
            // --signatures-verified`, docs/benchmarks.md).
            .set_kind(EnvironmentKind::WriteMap)
            .set_flags(EnvironmentFlags {
                mode: Mode::ReadWrite { sync_mode },
                no_rdahead: true,
                ..Default::default()
            })
            .set_geometry(Geometry {
                size: Some(..options.max_size),
                growth_step: Some(to_isize(options.growth_step)),
                ..Default::default()
            })
            .open(path)?;
        {
            let tx = env.begin_rw_unsync()?;
            let meta = tx.create_db(Some(META_TABLE), DatabaseFlags::default())?;
            let name = tx.get::<Vec<u8>>(meta.dbi(), META_NAME)?;
            let version = tx.get::<Vec<u8>>(meta.dbi(), META_VERSION)?;
            match (name, version) {
                (None, None) => {
                    tx.put(meta, META_NAME, schema.name.as_bytes(), WriteFlags::default())?;
                    tx.put(meta, META_VERSION, schema.version.to_be_bytes(), WriteFlags::default())?;
                }
                (Some(name), Some(version)) => {
                    if name != schema.name.as_bytes() {
                        return Err(StoreError::SchemaName {
                            found: String::from_utf8_lossy(&name).into_owned(),
                            expected: schema.name,
                        });
                    }
                    let found = u32::decode(&version).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    if found != schema.version {
                        return Err(StoreError::SchemaVersion { found, expected: schema.version });
                    }
                }
                _ => return Err(StoreError::Corrupt("schema name or version missing".into())),
            }
            for t in schema.tables {
                tx.create_db(Some(t), DatabaseFlags::default())?;
            }
            tx.commit()?;
        }
        Ok(Self { env, path: path.to_path_buf(), schema: *schema })
    }

    /// The database folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema it was opened with.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Starts a read-only transaction: a consistent snapshot, unaffected by later commits.
    pub fn read(&self) -> Result<ReadTx<'_>, StoreError> {
        Ok(Tx { inner: self.env.begin_ro_unsync()?, tables: self.schema.tables, _store: PhantomData })
    }

    /// Starts the (single) write transaction. Nothing it does is visible to anyone, or
    /// survives a crash, until [`WriteTx::commit`]; dropping it aborts.
    pub fn write(&self) -> Result<WriteTx<'_>, StoreError> {
        Ok(Tx { inner: self.env.begin_rw_unsync()?, tables: self.schema.tables, _store: PhantomData })
    }
}

/// A transaction over the store; see [`ReadTx`] and [`WriteTx`]. It borrows the [`Store`]
/// so that no transaction outlives the database it reads.
pub struct Tx<'db, K: TransactionKind> {
    inner: signet_libmdbx::tx::Tx<K>,
    tables: &'static [&'static str],
    _store: PhantomData<&'db Store>,
}

/// Marker of read-only transactions.
pub type RO = Ro;
/// Marker of the write transaction.
pub type RW = Rw;
/// A read-only snapshot. It may move to another thread but not be shared by two.
pub type ReadTx<'db> = Tx<'db, RO>;
/// The write transaction. It stays on the thread that began it (MDBX's rule for writers).
pub type WriteTx<'db> = Tx<'db, RW>;

fn decode<T: Table, V: Decode>(bytes: &[u8]) -> Result<V, StoreError> {
    V::decode(bytes).map_err(|source| StoreError::Decode { table: T::NAME, source })
}

impl<K: TransactionKind> Tx<'_, K> {
    fn table<T: Table>(&self) -> Result<Database, StoreError> {
        if !self.tables.contains(&T::NAME) {
            return Err(StoreError::UnknownTable(T::NAME));
        }
        Ok(self.inner.open_db(Some(T::NAME))?)
    }

    /// The value stored under `key`.
    pub fn get<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StoreError> {
        let table = self.table::<T>()?;
        let key = checked_key::<T>(key)?;
        match self.inner.get::<Cow<'_, [u8]>>(table.dbi(), &key)? {
            Some(bytes) => Ok(Some(decode::<T, T::Value>(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Number of entries in the table.
    pub fn entries<T: Table>(&self) -> Result<usize, StoreError> {
        let table = self.table::<T>()?;
        Ok(self.inner.db_stat(&table)?.entries())
    }

    /// A cursor over the table, ordered by encoded key.
    pub fn cursor<T: Table>(&self) -> Result<Cursor<'_, K, T>, StoreError> {
        let table = self.table::<T>()?;
        Ok(Cursor { inner: self.inner.cursor(table)?, _table: PhantomData })
    }
}

impl WriteTx<'_> {
    /// Stores `value` under `key`, replacing what was there.
    pub fn put<T: Table>(&self, key: &T::Key, value: &T::Value) -> Result<(), StoreError> {
        let table = self.table::<T>()?;
        let key = checked_key::<T>(key)?;
        let value = value.encode();
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::TooLarge {
                table: T::NAME,
                what: "value",
                len: value.len(),
                limit: MAX_VALUE_LEN,
            });
        }
        self.inner.put(table, key, value, WriteFlags::default())?;
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    pub fn delete<T: Table>(&self, key: &T::Key) -> Result<bool, StoreError> {
        let table = self.table::<T>()?;
        let key = checked_key::<T>(key)?;
        Ok(self.inner.del(table, key, None)?)
    }

    /// Removes every entry of the table.
    pub fn clear<T: Table>(&self) -> Result<(), StoreError> {
        let table = self.table::<T>()?;
        self.inner.clear_db(table)?;
        Ok(())
    }

    /// Makes every change of this transaction durable and visible, atomically.
    pub fn commit(self) -> Result<(), StoreError> {
        self.inner.commit()?;
        Ok(())
    }
}

fn checked_key<T: Table>(key: &T::Key) -> Result<Cow<'_, [u8]>, StoreError> {
    let key = key.encode();
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::TooLarge { table: T::NAME, what: "key", len: key.len(), limit: MAX_KEY_LEN });
    }
    Ok(key)
}

/// A typed cursor over one table.
pub struct Cursor<'tx, K: TransactionKind, T: Table> {
    inner: signet_libmdbx::Cursor<'tx, K>,
    _table: PhantomData<T>,
}

type Entry<T> = Option<(<T as Table>::Key, <T as Table>::Value)>;
type EntryResult<T> = Result<(<T as Table>::Key, <T as Table>::Value), StoreError>;
type RawEntry<'tx> = Option<(Cow<'tx, [u8]>, Cow<'tx, [u8]>)>;

impl<'tx, K: TransactionKind, T: Table> Cursor<'tx, K, T> {
    fn typed(raw: RawEntry<'tx>) -> Result<Entry<T>, StoreError> {
        match raw {
            Some((k, v)) => Ok(Some((decode::<T, T::Key>(&k)?, decode::<T, T::Value>(&v)?))),
            None => Ok(None),
        }
    }

    /// The first entry.
    pub fn first(&mut self) -> Result<Entry<T>, StoreError> {
        Self::typed(self.inner.first()?)
    }

    /// The last entry.
    pub fn last(&mut self) -> Result<Entry<T>, StoreError> {
        Self::typed(self.inner.last()?)
    }

    /// The entry after the current one.
    #[allow(clippy::should_implement_trait)] // a cursor step, as MDBX names it
    pub fn next(&mut self) -> Result<Entry<T>, StoreError> {
        Self::typed(self.inner.next()?)
    }

    /// The entry before the current one.
    pub fn prev(&mut self) -> Result<Entry<T>, StoreError> {
        Self::typed(self.inner.prev()?)
    }

    /// The first entry whose key is ≥ `key`.
    pub fn seek(&mut self, key: &T::Key) -> Result<Entry<T>, StoreError> {
        let key = checked_key::<T>(key)?;
        Self::typed(self.inner.set_range(&key)?)
    }

    /// Every entry from `start` (or the beginning) to the end, in key order.
    pub fn walk(mut self, start: Option<&T::Key>) -> Result<Walk<'tx, K, T>, StoreError> {
        let first = match start {
            Some(k) => self.seek(k)?,
            None => self.first()?,
        };
        Ok(Walk { cursor: self, pending: first.map(Ok) })
    }
}

/// Iterator returned by [`Cursor::walk`].
pub struct Walk<'tx, K: TransactionKind, T: Table> {
    cursor: Cursor<'tx, K, T>,
    pending: Option<EntryResult<T>>,
}

impl<K: TransactionKind, T: Table> Iterator for Walk<'_, K, T> {
    type Item = EntryResult<T>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.pending.take()?;
        if item.is_ok() {
            self.pending = self.cursor.next().transpose();
        }
        Some(item)
    }
}
