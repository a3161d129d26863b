//! Development-node controls, what anvil and Hardhat offer test suites: mining on demand, a
//! clock that can be moved forward, snapshots to return to, and direct state edits. Only a
//! node that produces its own blocks ([`LocalMining::Instant`] or [`LocalMining::Interval`])
//! accepts them; a node driven by a consensus client refuses every one ([`DevError::NotDev`]).
//!
//! A state edit is written as a block of its own, with no transactions, the head's timestamp
//! and the edit as its only effect (`Chain::commit_state_edit`): every block's state root
//! still matches its state, and reverting to a snapshot is an unwind like any reorg. Unlike
//! anvil and Hardhat, which edit the head's state in place, the block number therefore
//! advances by one per edit.

use crate::{LatestState, LocalMining, Node};
use alloy_primitives::{keccak256, Address, Bytes, B256, KECCAK256_EMPTY, U256};
use qoin_el_storage::block::ElHeader;
use qoin_el_storage::tables::Accounts;
use qoin_evm::execute::AccountDiff;
use qoin_evm::ExecError;
use qoin_trie::EMPTY_ROOT;
use std::collections::BTreeMap;
use std::sync::MutexGuard;
use std::time::Instant;

/// Snapshots a node keeps at most; reverting to one frees it and every later one.
pub const MAX_SNAPSHOTS: usize = 10_000;
/// Blocks one `hardhat_mine` / `anvil_mine` call may mine.
pub const MAX_MINE_COUNT: u64 = 100_000;

/// Why a development-node control was refused.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The node's blocks come from a consensus client.
    #[error(
        "development-node methods (anvil_*, hardhat_*, evm_*) are served only by a node producing its own \
         blocks (qoin-el node --dev); this node's blocks come from a consensus client"
    )]
    NotDev,
    /// The request cannot be honoured (Hardhat's wording where it has one).
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl From<qoin_store::StoreError> for DevError {
    fn from(e: qoin_store::StoreError) -> Self {
        Self::Exec(e.into())
    }
}

/// A state edit (`anvil_setBalance`, `anvil_setNonce`, `anvil_setCode`, `anvil_setStorageAt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The balance, in shor.
    Balance(U256),
    /// The nonce (never lowered).
    Nonce(u64),
    /// The code (empty: none).
    Code(Bytes),
    /// One storage slot and its new value.
    Storage(B256, U256),
}

/// The clock blocks are stamped with: the wall clock shifted by `offset` seconds, unless a
/// next timestamp was set.
#[derive(Debug, Clone, Copy, Default)]
struct Clock {
    offset: i64,
    next: Option<u64>,
}

/// Unix time in seconds, signed (the clock's offset may be negative).
fn unix_now() -> i64 {
    i64::try_from(crate::unix_secs()).unwrap_or(i64::MAX)
}

impl Clock {
    fn now(&self) -> u64 {
        u64::try_from(unix_now().saturating_add(self.offset)).unwrap_or(0)
    }

    /// The next block's timestamp after a head stamped `head_ts`, and whether it was set.
    fn next_block_time(&self, head_ts: u64) -> (u64, bool) {
        match self.next {
            Some(t) => (t, true),
            None => (self.now().max(head_ts.saturating_add(1)), false),
        }
    }

    /// A block was stamped `t` on request: the clock goes on from there.
    fn stamped(&mut self, t: u64) {
        self.offset = i64::try_from(t).unwrap_or(i64::MAX).saturating_sub(unix_now());
        self.next = None;
    }
}

#[derive(Debug, Clone)]
struct Snapshot {
    id: u64,
    number: u64,
    hash: B256,
    clock: Clock,
    taken: Instant,
}

/// The development controls' state.
#[derive(Debug)]
pub(crate) struct DevState {
    clock: Clock,
    snapshots: Vec<Snapshot>,
    next_snapshot: u64,
    instance: B256,
}

impl Default for DevState {
    fn default() -> Self {
        let seed =
            format!("{}:{:?}:{}", std::process::id(), std::time::SystemTime::now(), crate::unix_secs());
        Self { clock: Clock::default(), snapshots: Vec::new(), next_snapshot: 1, instance: keccak256(seed) }
    }
}

impl Node {
    fn dev(&self) -> MutexGuard<'_, DevState> {
        self.dev.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this node produces its own blocks (and so serves the development controls).
    pub fn is_dev(&self) -> bool {
        self.mining != LocalMining::Off
    }

    fn require_dev(&self) -> Result<(), DevError> {
        if self.is_dev() {
            Ok(())
        } else {
            Err(DevError::NotDev)
        }
    }

    /// A random id for this run of the node (Hardhat's `instanceId`: it changes on restart).
    pub fn instance_id(&self) -> B256 {
        self.dev().instance
    }

    /// The timestamp the next block gets, and whether it was set on request.
    pub(crate) fn next_block_time(&self, head_ts: u64) -> (u64, bool) {
        self.dev().clock.next_block_time(head_ts)
    }

    /// A block stamped `t` on request was written: the clock goes on from `t`.
    pub(crate) fn stamped(&self, t: u64) {
        self.dev().clock.stamped(t);
    }

    /// Mines `count` blocks from the pool (empty if nothing is pending): the first at
    /// `first_timestamp` (or the clock's next), the rest `interval` seconds apart. Returns
    /// the last block's header.
    pub fn mine_blocks(
        &self,
        count: u64,
        interval: u64,
        first_timestamp: Option<u64>,
    ) -> Result<ElHeader, DevError> {
        self.require_dev()?;
        if count == 0 || count > MAX_MINE_COUNT {
            return Err(DevError::Invalid(format!(
                "cannot mine {count} blocks: 1 to {MAX_MINE_COUNT} per call"
            )));
        }
        let _one_at_a_time = self.producing();
        let head = self.chain.head()?;
        if let Some(t) = first_timestamp {
            if t <= head.timestamp {
                return Err(DevError::Invalid(format!(
                    "Timestamp {t} is lower than or equal to previous block's timestamp {}",
                    head.timestamp
                )));
            }
        }
        let mut last = head;
        for i in 0..count {
            let at = if i == 0 {
                first_timestamp
            } else {
                Some(last.timestamp.checked_add(interval).ok_or_else(|| {
                    DevError::Invalid(format!("timestamp {} + {interval} overflows", last.timestamp))
                })?)
            };
            last = self.produce_locked(true, at)?.map(|p| p.header).ok_or_else(|| {
                DevError::Invalid("no block was produced".into()) // produce_locked(true, ..) always builds
            })?;
        }
        Ok(last)
    }

    /// Moves the clock `seconds` forward (negative: back, as Hardhat allows); returns the
    /// total shift in seconds.
    pub fn increase_time(&self, seconds: i64) -> Result<i64, DevError> {
        self.require_dev()?;
        let mut dev = self.dev();
        dev.clock.offset = dev.clock.offset.checked_add(seconds).ok_or_else(|| {
            DevError::Invalid(format!("time shift {} + {seconds} overflows", dev.clock.offset))
        })?;
        Ok(dev.clock.offset)
    }

    /// The next block's timestamp; it must be after the head's.
    pub fn set_next_timestamp(&self, timestamp: u64) -> Result<(), DevError> {
        self.require_dev()?;
        let head = self.chain.head()?;
        if timestamp <= head.timestamp {
            return Err(DevError::Invalid(format!(
                "Timestamp {timestamp} is lower than or equal to previous block's timestamp {}",
                head.timestamp
            )));
        }
        self.dev().clock.next = Some(timestamp);
        Ok(())
    }

    /// Remembers the head and the clock; returns the snapshot's id.
    pub fn snapshot(&self) -> Result<u64, DevError> {
        self.require_dev()?;
        let _one_at_a_time = self.producing();
        let head = self.chain.head()?;
        let mut dev = self.dev();
        if dev.snapshots.len() >= MAX_SNAPSHOTS {
            return Err(DevError::Invalid(format!(
                "{MAX_SNAPSHOTS} snapshots are held; revert to an earlier one to free it and those after it"
            )));
        }
        let id = dev.next_snapshot;
        dev.next_snapshot += 1;
        let clock = dev.clock;
        dev.snapshots.push(Snapshot {
            id,
            number: head.number,
            hash: head.hash(),
            clock,
            taken: Instant::now(),
        });
        Ok(id)
    }

    /// Returns the chain and the clock to snapshot `id` (unwinding every later block) and
    /// forgets it and every later snapshot. `false` if no such snapshot is held.
    pub fn revert(&self, id: u64) -> Result<bool, DevError> {
        self.require_dev()?;
        let _one_at_a_time = self.producing();
        let mut dev = self.dev();
        let Some(pos) = dev.snapshots.iter().position(|s| s.id == id) else { return Ok(false) };
        let snap = dev.snapshots[pos].clone();
        dev.snapshots.truncate(pos);
        if self.chain.header(snap.number)?.map(|h| h.hash()) != Some(snap.hash) {
            return Ok(false);
        }
        self.chain.unwind_to(snap.number)?;
        // The clock reads what it read when the snapshot was taken (Hardhat's behaviour).
        let elapsed = i64::try_from(snap.taken.elapsed().as_secs()).unwrap_or(i64::MAX);
        dev.clock = Clock { offset: snap.clock.offset.saturating_sub(elapsed), next: snap.clock.next };
        drop(dev);
        let read = self.chain.store().read()?;
        self.pool().prune(&LatestState(&read), Instant::now());
        Ok(true)
    }

    /// Applies `edit` to `address` in a block of its own (see the module's doc).
    pub fn edit_account(&self, address: Address, edit: Edit) -> Result<ElHeader, DevError> {
        self.require_dev()?;
        let _one_at_a_time = self.producing();
        let head = self.chain.head()?;
        let current = self.chain.store().read()?.get::<Accounts>(&address).map_err(ExecError::from)?;
        let (mut nonce, mut balance, mut code_hash) =
            current.map_or((0, U256::ZERO, KECCAK256_EMPTY), |a| (a.nonce, a.balance, a.code_hash));
        let mut diff = AccountDiff::default();
        let mut codes = Vec::new();
        match edit {
            Edit::Balance(b) => balance = b,
            Edit::Nonce(n) if n < nonce => {
                return Err(DevError::Invalid(format!(
                    "New nonce ({n}) must not be smaller than the existing nonce ({nonce})"
                )))
            }
            Edit::Nonce(n) => nonce = n,
            Edit::Code(code) if code.is_empty() => code_hash = KECCAK256_EMPTY,
            Edit::Code(code) => {
                // Code starting with 0xef01 is an EIP-7702 delegation and must be one exactly;
                // anything else there could never be loaded to run.
                revm::bytecode::Bytecode::new_raw_checked(code.clone())
                    .map_err(|e| DevError::Invalid(format!("invalid code: {e}")))?;
                code_hash = keccak256(&code);
                codes.push((code_hash, code));
            }
            Edit::Storage(slot, value) => {
                diff.storage.insert(slot, value);
            }
        }
        // An account left with nothing in it is removed, as EIP-161 removes empty accounts.
        let no_storage =
            current.is_none_or(|a| a.storage_root == EMPTY_ROOT) && diff.storage.values().all(U256::is_zero);
        let empty = nonce == 0 && balance.is_zero() && code_hash == KECCAK256_EMPTY && no_storage;
        diff.info = (!empty).then_some((nonce, balance, code_hash));
        let env = self.chain.child_env(&head, head.timestamp, self.beneficiary, keccak256(head.hash()));
        let header = self.chain.commit_state_edit(&env, BTreeMap::from([(address, diff)]), codes)?;
        let read = self.chain.store().read()?;
        self.pool().prune(&LatestState(&read), Instant::now());
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::dev_node;
    use qoin_primitives::{TxKind, TxRequest};

    fn balance(node: &Node, a: &Address) -> U256 {
        node.chain().store().read().unwrap().get::<Accounts>(a).unwrap().map_or(U256::ZERO, |r| r.balance)
    }

    #[test]
    fn edits_are_blocks_that_snapshots_revert() {
        let (node, keys, _dir) = dev_node(LocalMining::Instant);
        let who = Address::repeat_byte(0x42);
        let start = node.chain().head().unwrap();
        let snap = node.snapshot().unwrap();
        let h = node.edit_account(who, Edit::Balance(U256::from(7u8))).unwrap();
        assert_eq!(h.number, start.number + 1);
        assert_eq!(h.timestamp, start.timestamp, "an edit block keeps the head's time");
        assert_eq!(balance(&node, &who), U256::from(7u8));
        node.edit_account(who, Edit::Code(Bytes::from_static(&[0x60, 0x00]))).unwrap();
        node.edit_account(who, Edit::Storage(B256::with_last_byte(1), U256::from(9u8))).unwrap();
        // A transaction after the edits still executes on the edited state.
        let tx = TxRequest {
            chain_id: node.chain().genesis().chain_id,
            max_priority_fee_per_gas: 1,
            max_fee_per_gas: 10_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(Address::repeat_byte(0x77)),
            value: U256::from(1u8),
            ..Default::default()
        }
        .sign(&keys[0]);
        node.submit(tx).unwrap();
        assert_eq!(node.chain().head().unwrap().number, start.number + 4);
        assert!(node.revert(snap).unwrap());
        assert_eq!(node.chain().head().unwrap(), start, "back to the snapshot's head");
        assert_eq!(balance(&node, &who), U256::ZERO);
        assert!(node.chain().store().read().unwrap().get::<Accounts>(&who).unwrap().is_none());
        assert!(!node.revert(snap).unwrap(), "a snapshot is used once");
        node.edit_account(who, Edit::Nonce(0)).unwrap();
        node.edit_account(who, Edit::Nonce(5)).unwrap();
        assert!(
            matches!(node.edit_account(who, Edit::Nonce(4)), Err(DevError::Invalid(m)) if m.contains("must not be smaller"))
        );
    }

    #[test]
    fn the_clock_moves_as_asked() {
        let (node, _keys, _dir) = dev_node(LocalMining::Instant);
        let head = node.chain().head().unwrap();
        assert!(node.set_next_timestamp(head.timestamp).is_err(), "not after the head");
        let t = crate::unix_secs() + 1_000;
        node.set_next_timestamp(t).unwrap();
        let b = node.mine_blocks(3, 10, None).unwrap();
        assert_eq!(b.timestamp, t + 20, "first at the set time, then 10 s apart");
        let shift = node.increase_time(3_600).unwrap();
        assert!(shift >= 3_600 + 1_000 - 5, "the clock went on from the set time, then an hour");
        let c = node.mine_blocks(1, 1, None).unwrap();
        assert!(c.timestamp >= t + 3_600, "{} vs {}", c.timestamp, t + 3_600);
        let snap = node.snapshot().unwrap();
        node.increase_time(86_400).unwrap();
        let d = node.mine_blocks(1, 1, None).unwrap();
        assert!(d.timestamp >= c.timestamp + 86_400);
        assert!(node.revert(snap).unwrap());
        let e = node.mine_blocks(1, 1, None).unwrap();
        assert!(e.timestamp < c.timestamp + 86_400, "the reverted clock forgot the day");
        assert_eq!(e.number, c.number + 1);
        assert!(node.mine_blocks(1, 1, Some(e.timestamp)).is_err());
        assert!(node.mine_blocks(0, 1, None).is_err());
        assert!(node.mine_blocks(MAX_MINE_COUNT + 1, 1, None).is_err());
    }

    #[test]
    fn a_node_driven_by_a_consensus_client_refuses_them_all() {
        let (node, _keys, _dir) = dev_node(LocalMining::Off);
        let before = node.chain().head().unwrap();
        assert!(matches!(node.mine_blocks(1, 1, None), Err(DevError::NotDev)));
        assert!(matches!(node.increase_time(1), Err(DevError::NotDev)));
        assert!(matches!(node.set_next_timestamp(u64::MAX), Err(DevError::NotDev)));
        assert!(matches!(node.snapshot(), Err(DevError::NotDev)));
        assert!(matches!(node.revert(1), Err(DevError::NotDev)));
        assert!(matches!(node.edit_account(Address::ZERO, Edit::Nonce(1)), Err(DevError::NotDev)));
        assert_eq!(node.chain().head().unwrap(), before);
    }
}
