//! # qoin-el-node
//!
//! Owns a running execution node: the chain, the transaction pool, the keys it holds for
//! `eth_sendTransaction`, and (without a consensus client) a local block producer.
//!
//! Local block production is the development mode of `geth --dev` and anvil: with
//! `automine` a block is built as soon as a transaction arrives; with a period, one block is
//! built every period (empty or not). A consensus client driving the node over the engine
//! API replaces both.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod dev;

pub use dev::{DevError, Edit, MAX_MINE_COUNT, MAX_SNAPSHOTS};

use alloy_primitives::{keccak256, Address, B256, U256};
use qoin_crypto::Keypair;
use qoin_el_chain::Chain;
use qoin_el_storage::block::ElHeader;
use qoin_el_storage::tables::Accounts;
use qoin_engine_api::{PooledTx, SyncProgress};
use qoin_evm::ExecError;
use qoin_primitives::{SignedTx, TxKind};
use qoin_store::{TransactionKind, Tx};
use qoin_tracing::targets;
use qoin_txpool::{AccountState, Admitted, PoolConfig, PoolError, TxPool};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Account nonces and balances of the latest state, read through one transaction (what the
/// pool checks transactions against).
pub struct LatestState<'a, 'db, K: TransactionKind>(pub &'a Tx<'db, K>);

impl<K: TransactionKind> AccountState for LatestState<'_, '_, K> {
    fn nonce_and_balance(&self, address: &Address) -> (u64, U256) {
        // A read failure leaves the account looking empty: the pool then refuses the
        // transaction ("insufficient funds") rather than admitting one it cannot check.
        match self.0.get::<Accounts>(address) {
            Ok(Some(a)) => (a.nonce, a.balance),
            _ => (0, U256::ZERO),
        }
    }
}

/// How blocks are produced when no consensus client drives the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalMining {
    /// Never: a consensus client builds blocks through the engine API.
    Off,
    /// A block as soon as transactions arrive (anvil's default).
    Instant,
    /// One block every this many milliseconds, empty or not.
    Interval(u64),
}

/// Limits on `eth_call` and `eth_estimateGas` (geth's `--rpc.gascap` and `--rpc.evmtimeout`,
/// with geth's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// The most gas one call may use (0: only the block's gas limit).
    pub gas_cap: u64,
    /// How long one call, or one whole estimate, may run (zero: no limit).
    pub evm_timeout: std::time::Duration,
    /// Calls, estimates and log queries run at once (the rest wait their turn).
    pub heavy_requests: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            gas_cap: 50_000_000,
            evm_timeout: std::time::Duration::from_secs(5),
            heavy_requests: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A block this node produced locally.
#[derive(Debug, Clone)]
pub struct Produced {
    /// Its header.
    pub header: ElHeader,
    /// Transactions included, with their gas used and success.
    pub transactions: Vec<(SignedTx, u64, bool)>,
}

/// The execution node behind the JSON-RPC server.
pub struct Node {
    chain: Chain,
    pool: Mutex<TxPool>,
    signers: Vec<Keypair>,
    producing: Mutex<()>,
    mining: LocalMining,
    beneficiary: Address,
    pool_generation: AtomicU64,
    tx_events: broadcast::Sender<PooledTx>,
    /// The consensus client's last sync report and when it came.
    sync: Mutex<Option<(SyncProgress, Instant)>>,
    /// Limits on calls and estimates.
    call_limits: CallLimits,
    /// The development controls' clock and snapshots (`dev`).
    dev: Mutex<dev::DevState>,
}

/// A sync report not renewed within this is forgotten (a consensus client that stopped
/// mid-sync must not leave `eth_syncing` true for ever).
pub const SYNC_REPORT_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({:?}, {} signers, {:?})", self.chain, self.signers.len(), self.mining)
    }
}

/// Unix time in seconds (0 if the clock is before 1970).
pub fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Why a transaction was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The pool refused it (geth's wording).
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The database failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl Node {
    /// A node over `chain` holding `signers`, producing blocks as `mining` says, paying fees
    /// to `beneficiary`.
    pub fn new(chain: Chain, signers: Vec<Keypair>, mining: LocalMining, beneficiary: Address) -> Self {
        let g = chain.genesis();
        let pool =
            TxPool::new(PoolConfig::new(g.chain_id, g.gas_limit, u128::from(qoin_el_chain::MIN_BASE_FEE)));
        Self {
            pool: Mutex::new(pool),
            signers,
            producing: Mutex::new(()),
            mining,
            beneficiary,
            chain,
            pool_generation: AtomicU64::new(0),
            tx_events: broadcast::channel(1024).0,
            sync: Mutex::new(None),
            dev: Mutex::default(),
            call_limits: CallLimits::default(),
        }
    }

    /// The node with these limits on calls and estimates.
    pub fn with_call_limits(mut self, limits: CallLimits) -> Self {
        self.call_limits = limits;
        self
    }

    /// The limits on calls and estimates.
    pub fn call_limits(&self) -> CallLimits {
        self.call_limits
    }

    /// Records the consensus client's sync progress (`None`: not syncing).
    pub fn set_sync_status(&self, progress: Option<SyncProgress>) {
        *self.sync.lock().unwrap_or_else(|e| e.into_inner()) = progress.map(|p| (p, Instant::now()));
    }

    /// The sync in progress and the head's height, if the consensus client reported one within
    /// [`SYNC_REPORT_TTL`] and the head is still below its target.
    pub fn sync_status(&self) -> Option<(SyncProgress, u64)> {
        let (p, at) = (*self.sync.lock().unwrap_or_else(|e| e.into_inner()))?;
        let head = self.chain.head().ok()?.number;
        (at.elapsed() < SYNC_REPORT_TTL && p.highest_block > head).then_some((p, head))
    }

    /// Counts transactions admitted to the pool: a payload built at an older count may be
    /// improved.
    pub fn pool_generation(&self) -> u64 {
        self.pool_generation.load(Ordering::SeqCst)
    }

    /// Transactions as they are admitted to the pool.
    pub fn subscribe_transactions(&self) -> broadcast::Receiver<PooledTx> {
        self.tx_events.subscribe()
    }

    /// Held while a block is produced or imported, so only one happens at a time.
    pub fn producing(&self) -> MutexGuard<'_, ()> {
        self.producing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a transaction from an unwound block back in the pool (quietly: one that no
    /// longer fits is dropped). Returns whether it was admitted.
    pub fn readd(&self, tx: SignedTx) -> bool {
        let Ok(read) = self.chain.store().read() else { return false };
        let admitted = self.pool().add(tx, &LatestState(&read), Instant::now()).is_ok();
        if admitted {
            self.pool_generation.fetch_add(1, Ordering::SeqCst);
        }
        admitted
    }

    /// The chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// How this node produces blocks.
    pub fn mining(&self) -> LocalMining {
        self.mining
    }

    /// The pool, locked. A panic while it was held does not lose it: the pool's invariants
    /// hold between its method calls, so the data is still consistent.
    pub fn pool(&self) -> MutexGuard<'_, TxPool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Addresses whose keys the node holds (`eth_accounts`), in the order given.
    pub fn accounts(&self) -> Vec<Address> {
        self.signers.iter().map(Keypair::address).collect()
    }

    /// The key of `address`, if the node holds it.
    pub fn signer(&self, address: &Address) -> Option<&Keypair> {
        self.signers.iter().find(|k| k.address() == *address)
    }

    /// The next nonce of `address` counting pooled transactions.
    pub fn next_nonce(&self, address: &Address) -> Result<u64, ExecError> {
        let tx = self.chain.store().read()?;
        Ok(self.pool().next_nonce(address, &LatestState(&tx)))
    }

    /// Checks a transaction (signature included) and adds it to the pool; with instant
    /// mining, also builds a block with it. Returns the transaction id.
    pub fn submit(&self, tx: SignedTx) -> Result<B256, SubmitError> {
        let id = tx.id();
        let summary = describe(&tx);
        let raw = alloy_primitives::Bytes::from(tx.encode());
        let admitted = {
            let read = self.chain.store().read().map_err(ExecError::from)?;
            self.pool().add(tx, &LatestState(&read), Instant::now())?
        };
        self.pool_generation.fetch_add(1, Ordering::SeqCst);
        // No subscriber is not an error.
        let _ = self.tx_events.send(PooledTx { hash: id, raw });
        let state = match admitted {
            Admitted::Pending => "pending",
            Admitted::Queued => "queued behind a nonce gap",
            Admitted::Replaced(_) => "pending, replacing an earlier one",
        };
        tracing::info!(target: targets::TXPOOL, "tx {id} {summary} accepted ({state})");
        // Even for one the pool queued: it read the state before a block being committed
        // beside it mined the nonce it waited for, so it may already be executable
        // (`produce` does nothing when nothing is pending).
        if self.mining == LocalMining::Instant {
            self.produce(false)?;
        }
        Ok(id)
    }

    /// Builds and commits a block on the head from the pool's pending transactions (skipping
    /// any that fail). Without `allow_empty`, does nothing when nothing is pending.
    pub fn produce(&self, allow_empty: bool) -> Result<Option<Produced>, ExecError> {
        let _one_at_a_time = self.producing();
        self.produce_locked(allow_empty, None)
    }

    /// [`Node::produce`] with the production lock held, stamped `timestamp` if given (else by
    /// the clock, which the development controls may have moved).
    fn produce_locked(
        &self,
        allow_empty: bool,
        timestamp: Option<u64>,
    ) -> Result<Option<Produced>, ExecError> {
        let head = self.chain.head()?;
        let (timestamp, requested) = match timestamp {
            Some(t) => (t, true),
            None => self.next_block_time(head.timestamp),
        };
        let randao = keccak256(head.hash());
        let env = self.chain.child_env(&head, timestamp, self.beneficiary, randao);
        let candidates = {
            let read = self.chain.store().read()?;
            self.pool().pending(&LatestState(&read), env.base_fee)
        };
        if candidates.is_empty() && !allow_empty {
            return Ok(None);
        }
        let executed = self.chain.build(&env, candidates, Vec::new())?;
        self.chain.commit_built(&executed)?;
        if requested {
            self.stamped(timestamp);
        }
        {
            let read = self.chain.store().read()?;
            self.pool().prune(&LatestState(&read), Instant::now());
        }
        let mut prev = 0;
        let transactions: Vec<(SignedTx, u64, bool)> = executed
            .transactions
            .iter()
            .zip(&executed.receipts)
            .map(|(t, r)| {
                let used = r.cumulative_gas_used - prev;
                prev = r.cumulative_gas_used;
                (t.clone(), used, r.success)
            })
            .collect();
        log_block(&executed.header, &transactions, "produced");
        Ok(Some(Produced { header: executed.header, transactions }))
    }
}

/// The log lines of a block: one for the block, one per transaction (gas used, outcome,
/// created contract). `source` says where the block came from (`"produced"` locally, or
/// `"from the consensus client"`).
pub fn log_block(h: &ElHeader, transactions: &[(SignedTx, u64, bool)], source: &str) {
    log_block_line(h, transactions.len(), source);
    for t in transactions {
        tx_line!(tracing::Level::INFO, t);
    }
}

/// A block imported for the consensus client: its line at `info`, its transactions' at
/// `debug` (a synced block may hold thousands). `transactions` reads them back only when
/// `debug` is on for the target.
pub fn log_imported_block(
    h: &ElHeader,
    count: usize,
    transactions: impl FnOnce() -> Vec<(SignedTx, u64, bool)>,
    source: &str,
) {
    log_block_line(h, count, source);
    if tracing::enabled!(target: targets::CHAIN, tracing::Level::DEBUG) {
        for t in &transactions() {
            tx_line!(tracing::Level::DEBUG, t);
        }
    }
}

fn log_block_line(h: &ElHeader, count: usize, source: &str) {
    tracing::info!(
        target: targets::CHAIN,
        number = h.number,
        hash = %h.hash(),
        txs = count,
        gas = h.gas_used,
        base_fee = h.base_fee_per_gas,
        state_root = %h.state_root,
        "block {source}"
    );
}

/// One transaction's line at `$level`: its id, gas used, outcome and created contract.
macro_rules! tx_line {
    ($level:expr, $t:expr) => {{
        let (t, used, ok): &(SignedTx, u64, bool) = $t;
        let created = match t.request().to {
            TxKind::Create => Some(t.sender().create(t.request().nonce)),
            TxKind::Call(_) => None,
        };
        tracing::event!(
            target: targets::CHAIN,
            $level,
            tx = %t.id(),
            gas_used = used,
            outcome = if *ok { "ok" } else { "REVERTED" },
            created = created.map(tracing::field::display),
            "  {}",
            describe(t)
        );
    }};
}
use tx_line;

fn describe(tx: &SignedTx) -> String {
    let r = tx.request();
    match r.to {
        TxKind::Create => format!("from {} nonce {} deploys ({} bytes)", tx.sender(), r.nonce, r.input.len()),
        TxKind::Call(to) if r.input.is_empty() => {
            format!("from {} nonce {} pays {} shor to {to}", tx.sender(), r.nonce, r.value)
        }
        TxKind::Call(to) => format!("from {} nonce {} calls {to}", tx.sender(), r.nonce),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qoin_primitives::TxRequest;
    use qoin_store::StoreOptions;

    /// A node on a fresh dev-style chain funding three keys, producing as `mining` says.
    pub(crate) fn dev_node(mining: LocalMining) -> (Node, Vec<Keypair>, tempfile::TempDir) {
        let keys: Vec<Keypair> = (1..=3u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let genesis = qoin_el_chain::test_utils::funded_genesis(&keys, 30_000_000);
        let dir = tempfile::tempdir().unwrap();
        let chain =
            Chain::open(dir.path(), genesis, StoreOptions { max_size: 1 << 30, ..Default::default() })
                .unwrap();
        (Node::new(chain, Vec::new(), mining, Address::repeat_byte(0xbe)), keys, dir)
    }

    #[test]
    fn produced_blocks_take_the_best_tips_that_fit_and_leave_the_rest_pooled() {
        let keys: Vec<Keypair> = (1..=3u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let genesis = qoin_el_chain::test_utils::funded_genesis(&keys, 50_000); // two transfers fit
        let dir = tempfile::tempdir().unwrap();
        let chain =
            Chain::open(dir.path(), genesis, StoreOptions { max_size: 1 << 30, ..Default::default() })
                .unwrap();
        let node = Node::new(chain, Vec::new(), LocalMining::Off, Address::repeat_byte(0xbe));
        assert!(node.produce(false).unwrap().is_none(), "nothing pending, no block");
        let mut ids = Vec::new();
        for (k, tip) in keys.iter().zip([1u128, 5, 3]) {
            let tx = TxRequest {
                chain_id: 9,
                max_priority_fee_per_gas: tip,
                max_fee_per_gas: 10_000_000_000,
                gas_limit: 21_000,
                to: TxKind::Call(Address::repeat_byte(0x77)),
                value: U256::from(1u8),
                ..Default::default()
            }
            .sign(k);
            ids.push(node.submit(tx).unwrap());
        }
        let first = node.produce(false).unwrap().unwrap();
        let included: Vec<B256> = first.transactions.iter().map(|(t, _, _)| t.id()).collect();
        assert_eq!(included, vec![ids[1], ids[2]], "highest effective tip first, within the gas limit");
        assert_eq!(first.header.gas_used, 42_000);
        assert_eq!(node.chain().head().unwrap(), first.header);
        assert_eq!(node.pool().len(), 1, "the one that did not fit stays pooled");
        let second = node.produce(false).unwrap().unwrap();
        assert_eq!(second.transactions[0].0.id(), ids[0]);
        assert!(node.pool().is_empty());
        assert_eq!(second.header.parent_hash, first.header.hash());
    }
}
