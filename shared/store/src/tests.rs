//! Tests of the typed store against a real MDBX database, including a process killed with
//! SIGKILL in the middle of writing.
#![allow(unreachable_pub)]

use crate::*;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

table!(/// Heights to hashes.
       Hashes: u64 => B256);
table!(/// Raw blobs by (height, hash).
       Blobs: (u64, B256) => Vec<u8>);
table!(/// Counters by name.
       Counters: String => u64);
/// The on-disk table `Blobs`, read with the wrong value type.
struct BlobsAsU64;
impl Table for BlobsAsU64 {
    const NAME: &'static str = "Blobs";
    type Key = (u64, B256);
    type Value = u64;
}

const SCHEMA: Schema =
    Schema { name: "qoin-store-test", version: 3, tables: &["Hashes", "Blobs", "Counters"] };

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, &SCHEMA, StoreOptions { max_size: 1 << 32, ..Default::default() }).unwrap()
}

#[test]
fn put_get_delete_and_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tx = store.write().unwrap();
    tx.put::<Hashes>(&1, &B256::repeat_byte(1)).unwrap();
    tx.put::<Hashes>(&1, &B256::repeat_byte(9)).unwrap();
    tx.put::<Counters>(&"blocks".to_string(), &7).unwrap();
    tx.put::<Blobs>(&(5, B256::repeat_byte(5)), &vec![1, 2, 3]).unwrap();
    // Uncommitted writes are visible inside the transaction.
    assert_eq!(tx.get::<Hashes>(&1).unwrap(), Some(B256::repeat_byte(9)));
    tx.commit().unwrap();

    let r = store.read().unwrap();
    assert_eq!(r.get::<Hashes>(&1).unwrap(), Some(B256::repeat_byte(9)));
    assert_eq!(r.get::<Hashes>(&2).unwrap(), None);
    assert_eq!(r.get::<Counters>(&"blocks".into()).unwrap(), Some(7));
    assert_eq!(r.get::<Blobs>(&(5, B256::repeat_byte(5))).unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(r.entries::<Hashes>().unwrap(), 1);
    drop(r);

    let tx = store.write().unwrap();
    assert!(tx.delete::<Hashes>(&1).unwrap());
    assert!(!tx.delete::<Hashes>(&1).unwrap());
    tx.commit().unwrap();
    assert_eq!(store.read().unwrap().get::<Hashes>(&1).unwrap(), None);
}

#[test]
fn dropped_write_transaction_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    {
        let tx = store.write().unwrap();
        tx.put::<Hashes>(&1, &B256::repeat_byte(1)).unwrap();
    }
    assert_eq!(store.read().unwrap().get::<Hashes>(&1).unwrap(), None);
}

#[test]
fn readers_see_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tx = store.write().unwrap();
    tx.put::<Hashes>(&1, &B256::repeat_byte(1)).unwrap();
    tx.commit().unwrap();

    let before = store.read().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let tx = store.write().unwrap();
            tx.put::<Hashes>(&1, &B256::repeat_byte(2)).unwrap();
            tx.commit().unwrap();
        });
    });
    assert_eq!(before.get::<Hashes>(&1).unwrap(), Some(B256::repeat_byte(1)));
    assert_eq!(store.read().unwrap().get::<Hashes>(&1).unwrap(), Some(B256::repeat_byte(2)));
}

#[test]
fn cursors_walk_in_numeric_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tx = store.write().unwrap();
    // Inserted out of order, and 256 > 255 > 1 only sorts right with big-endian keys.
    for h in [256u64, 1, 255, 70_000, 2] {
        tx.put::<Hashes>(&h, &B256::with_last_byte(h as u8)).unwrap();
    }
    tx.commit().unwrap();

    let r = store.read().unwrap();
    let keys: Vec<u64> = r.cursor::<Hashes>().unwrap().walk(None).unwrap().map(|e| e.unwrap().0).collect();
    assert_eq!(keys, vec![1, 2, 255, 256, 70_000]);
    let from: Vec<u64> =
        r.cursor::<Hashes>().unwrap().walk(Some(&200)).unwrap().map(|e| e.unwrap().0).collect();
    assert_eq!(from, vec![255, 256, 70_000]);

    let mut c = r.cursor::<Hashes>().unwrap();
    assert_eq!(c.last().unwrap().unwrap().0, 70_000);
    assert_eq!(c.prev().unwrap().unwrap().0, 256);
    assert_eq!(c.seek(&3).unwrap().unwrap().0, 255);
    assert_eq!(c.next().unwrap().unwrap().0, 256);
    assert!(c.seek(&70_001).unwrap().is_none());
}

#[test]
fn schema_is_checked_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let newer = Schema { version: 4, ..SCHEMA };
    match Store::open(dir.path(), &newer, StoreOptions::default()) {
        Err(StoreError::SchemaVersion { found: 3, expected: 4 }) => {}
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    let other = Schema { name: "qoin-cl", ..SCHEMA };
    assert!(matches!(
        Store::open(dir.path(), &other, StoreOptions::default()),
        Err(StoreError::SchemaName { .. })
    ));
    // The original schema still opens, data intact.
    drop(open(dir.path()));
}

#[test]
fn unknown_tables_and_bad_values_are_errors() {
    table!(/// Not in the schema.
           Stray: u64 => u64);
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r = store.read().unwrap().get::<Stray>(&1);
    assert!(matches!(r, Err(StoreError::UnknownTable("Stray"))), "{r:?}");

    let tx = store.write().unwrap();
    tx.put::<Blobs>(&(1, B256::ZERO), &vec![1, 2, 3]).unwrap();
    tx.commit().unwrap();
    let err = store.read().unwrap().get::<BlobsAsU64>(&(1, B256::ZERO)).unwrap_err();
    assert!(err.to_string().contains("expected 8 bytes, got 3"), "{err}");
}

#[test]
fn oversized_keys_are_refused_before_mdbx_sees_them() {
    // MDBX aborts the process on a key beyond its limit; the store answers with an error.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let long = "k".repeat(MAX_KEY_LEN + 1);
    let tx = store.write().unwrap();
    let err = tx.put::<Counters>(&long, &1).unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { what: "key", .. }), "{err}");
    assert!(matches!(tx.get::<Counters>(&long), Err(StoreError::TooLarge { .. })));
    assert!(matches!(tx.delete::<Counters>(&long), Err(StoreError::TooLarge { .. })));
    // A key at the limit is fine.
    tx.put::<Counters>(&"k".repeat(MAX_KEY_LEN), &2).unwrap();
    tx.commit().unwrap();
    assert_eq!(store.read().unwrap().get::<Counters>(&"k".repeat(MAX_KEY_LEN)).unwrap(), Some(2));
}

// ---- crash safety ----

const CHILD_ENV: &str = "QOIN_STORE_CRASH_CHILD_DIR";
const KEYS_PER_TX: u64 = 48;
const BLOB: usize = 64 * 1024;

fn blob(generation: u64, key: u64) -> Vec<u8> {
    let mut v = vec![(generation as u8) ^ (key as u8); BLOB];
    v[..8].copy_from_slice(&generation.to_be_bytes());
    v
}

/// Child process: writes generation after generation, each a ~3 MiB transaction that
/// rewrites every key, and prints each generation after its commit returns. Runs until
/// killed. Started by `sigkill_mid_write_reopens_at_last_commit`.
#[test]
#[ignore = "child process of sigkill_mid_write_reopens_at_last_commit"]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let store = open(std::path::Path::new(&dir));
    let mut generation = store.read().unwrap().get::<Counters>(&"generation".into()).unwrap().unwrap_or(0);
    loop {
        generation += 1;
        let tx = store.write().unwrap();
        for k in 0..KEYS_PER_TX {
            tx.put::<Blobs>(&(k, B256::ZERO), &blob(generation, k)).unwrap();
            tx.put::<Hashes>(&k, &B256::from(alloy_primitives::U256::from(generation))).unwrap();
        }
        tx.put::<Counters>(&"generation".into(), &generation).unwrap();
        tx.commit().unwrap();
        println!("committed {generation}");
    }
}

fn check_consistent(dir: &std::path::Path) -> u64 {
    let store = open(dir);
    let r = store.read().unwrap();
    let generation = r.get::<Counters>(&"generation".into()).unwrap().unwrap();
    for k in 0..KEYS_PER_TX {
        assert_eq!(r.get::<Blobs>(&(k, B256::ZERO)).unwrap(), Some(blob(generation, k)), "key {k}");
        assert_eq!(r.get::<Hashes>(&k).unwrap(), Some(B256::from(alloy_primitives::U256::from(generation))));
    }
    generation
}

#[test]
fn sigkill_mid_write_reopens_at_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut last_seen = 0;
    for round in 0..3u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "tests::crash_writer_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it commit a few generations, then kill it at a point that varies by round.
        let mut acked = 0;
        while acked < last_seen + 5 {
            let line = lines.next().expect("child exited early").unwrap();
            if let Some(g) = line.strip_prefix("committed ") {
                acked = g.parse().unwrap();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(3 + 7 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in lines {
            if let Some(g) = line.unwrap().strip_prefix("committed ") {
                acked = g.parse().unwrap();
            }
        }
        let generation = check_consistent(dir.path());
        // Everything acknowledged survived; at most the one commit in flight when the
        // signal landed may also have completed (its acknowledgement was not printed).
        assert!(generation == acked || generation == acked + 1, "reopened at {generation}, acked {acked}");
        last_seen = generation;
    }
}
