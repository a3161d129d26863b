//! Polled filters (`eth_newFilter`, `eth_newBlockFilter`, `eth_newPendingTransactionFilter`,
//! `eth_getFilterChanges`, `eth_getFilterLogs`, `eth_uninstallFilter`), what ethers'
//! `contract.on(...)` and `provider.on("block")` use over HTTP.
//!
//! A filter remembers the last canonical block it reported (number and hash). A poll reports
//! what is canonical after it: block hashes, or the matching logs of those blocks. After a
//! reorg the cursor steps back to the common ancestor and the new branch is reported; the
//! logs of the abandoned blocks are not re-sent with `removed: true` (the spec says so).
//! Pending-transaction filters read the pool's announcement stream: a filter polled less often
//! than the stream's 1,024-entry buffer turns over misses the oldest hashes.
//!
//! Filters not polled for [`FILTER_TTL`] are dropped; at most [`MAX_FILTERS`] exist at once.

use crate::convert::Args;
use crate::error::{RpcError, RpcResult};
use crate::eth::{header_at, logs_in, read, LogFilter, LogRange, LOGS_TIME_CAP, MAX_LOGS, MAX_LOG_RANGE};
use crate::subscriptions::HexIds;
use alloy_primitives::B256;
use qoin_el_node::Node;
use qoin_el_storage::block::ElHeader;
use qoin_el_storage::reader::head;
use qoin_engine_api::PooledTx;
use qoin_store::{Tx, RO};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{self, error::TryRecvError};

/// A filter not polled for this long is dropped (geth's timeout).
pub const FILTER_TTL: Duration = Duration::from_secs(5 * 60);
/// The most filters that exist at once on a node.
pub const MAX_FILTERS: usize = 4_096;
/// The most block hashes one poll of a block filter returns; the rest come at the next.
const MAX_BLOCK_HASHES: u64 = 10_000;

/// The newest canonical blocks a filter has reported (number, hash), newest last.
pub(crate) struct Cursor(VecDeque<(u64, B256)>);

/// Blocks a cursor remembers: a reorg deeper than this re-reports from the oldest.
const CURSOR_DEPTH: usize = 64;

impl Cursor {
    pub(crate) fn at_head(tx: &Tx<'_, RO>) -> Result<Self, RpcError> {
        let h = head(tx)?;
        Ok(Self(VecDeque::from([(h.number, h.hash())])))
    }

    /// The newest remembered block that is still canonical (after a reorg, the common
    /// ancestor), forgetting those above it; below the oldest when none is.
    pub(crate) fn rewind(&mut self, tx: &Tx<'_, RO>) -> Result<u64, RpcError> {
        while let Some(&(n, hash)) = self.0.back() {
            if header_at(tx, n)?.is_some_and(|h| h.hash() == hash) {
                return Ok(n);
            }
            self.0.pop_back();
            if self.0.is_empty() {
                return Ok(n.saturating_sub(1));
            }
        }
        Ok(0)
    }

    /// Remembers the canonical blocks up to `to` (the last [`CURSOR_DEPTH`] of them).
    pub(crate) fn advance(&mut self, tx: &Tx<'_, RO>, from: u64, to: u64) -> Result<(), RpcError> {
        for n in from.max(to.saturating_sub(CURSOR_DEPTH as u64 - 1))..=to {
            if let Some(h) = header_at(tx, n)? {
                self.0.push_back((n, h.hash()));
            }
        }
        while self.0.len() > CURSOR_DEPTH {
            self.0.pop_front();
        }
        Ok(())
    }

    /// The canonical headers after the cursor (from the common ancestor after a reorg), at most
    /// `max`; the cursor moves past them.
    pub(crate) fn new_blocks(&mut self, tx: &Tx<'_, RO>, max: u64) -> Result<Vec<ElHeader>, RpcError> {
        let from = self.rewind(tx)? + 1;
        let to = head(tx)?.number.min(from.saturating_add(max - 1));
        let mut out = Vec::new();
        for n in from..=to {
            let Some(h) = header_at(tx, n)? else { break };
            out.push(h);
        }
        if let Some(last) = out.last() {
            self.advance(tx, from, last.number)?;
        }
        Ok(out)
    }

    /// The matching logs of the canonical blocks after the cursor that lie in `range`, at most
    /// `max` blocks of them; the cursor moves past the blocks read (a block with ≥ 10,000
    /// matching logs ends the batch there).
    pub(crate) fn new_logs(
        &mut self,
        tx: &Tx<'_, RO>,
        filter: &LogFilter,
        range: &LogRange,
        max: u64,
    ) -> Result<Vec<Value>, RpcError> {
        let next = self.rewind(tx)? + 1;
        let head = head(tx)?.number;
        if next > head {
            return Ok(Vec::new());
        }
        let start = next.max(range.from.unwrap_or(0));
        let end = range.to.unwrap_or(head).min(head).min(start.saturating_add(max - 1));
        let (logs, done) = if start > end {
            (Vec::new(), head)
        } else {
            let deadline = Instant::now() + LOGS_TIME_CAP;
            let (logs, stopped) = logs_in(tx, filter, start, end, MAX_LOGS, deadline)?;
            (logs, stopped.unwrap_or(end))
        };
        self.advance(tx, next, done)?;
        Ok(logs)
    }
}

enum Kind {
    Blocks(Cursor),
    Logs { filter: LogFilter, range: LogRange, spec: Map<String, Value>, cursor: Cursor },
    Pending(broadcast::Receiver<PooledTx>),
}

struct Entry {
    kind: Kind,
    polled: Instant,
}

/// The installed filters of a node, by id (`0x` and 32 lower-case hex digits).
#[derive(Default)]
pub struct Filters {
    entries: Mutex<HashMap<String, Entry>>,
    ids: HexIds,
}

/// The filter id a call names, in the form ids are issued in.
fn parse_id(args: &Args) -> Result<String, RpcError> {
    let text: String = args.req(0, "filter id")?;
    let digits = text.strip_prefix("0x").unwrap_or(&text);
    if hex::decode(digits).is_err() {
        return Err(RpcError::invalid_params("filter id is not hex"));
    }
    Ok(format!("0x{}", digits.to_ascii_lowercase()))
}

type Table<'a> = MutexGuard<'a, HashMap<String, Entry>>;

impl Filters {
    /// The table, without the filters that expired.
    fn table(&self) -> Result<Table<'_>, RpcError> {
        let mut entries = self.entries.lock().map_err(|_| RpcError::internal("filter table poisoned"))?;
        entries.retain(|_, e| e.polled.elapsed() < FILTER_TTL);
        Ok(entries)
    }

    /// The filter `id` names, marked as polled now.
    fn polled<'a>(entries: &'a mut Table<'_>, id: &str) -> Result<&'a mut Entry, RpcError> {
        let entry = entries.get_mut(id).ok_or_else(|| RpcError::server("filter not found"))?;
        entry.polled = Instant::now();
        Ok(entry)
    }

    fn install(&self, kind: Kind) -> RpcResult {
        let mut entries = self.table()?;
        if entries.len() >= MAX_FILTERS {
            return Err(RpcError::server(format!(
                "too many filters (at most {MAX_FILTERS}; uninstall some, or they expire after 5 minutes unpolled)"
            )));
        }
        let id = self.ids.next_hex();
        entries.insert(id.clone(), Entry { kind, polled: Instant::now() });
        Ok(json!(id))
    }

    /// `eth_newFilter`.
    pub fn new_filter(&self, node: &Node, args: &Args) -> RpcResult {
        let spec = args
            .get(0)
            .and_then(Value::as_object)
            .ok_or_else(|| RpcError::invalid_params("missing filter object"))?
            .clone();
        let filter = LogFilter::parse(&spec)?;
        let tx = read(node)?;
        let range = LogRange::parse(&tx, &spec)?;
        let cursor = Cursor::at_head(&tx)?;
        drop(tx);
        self.install(Kind::Logs { filter, range, spec, cursor })
    }

    /// `eth_newBlockFilter`.
    pub fn new_block_filter(&self, node: &Node, _: &Args) -> RpcResult {
        let cursor = Cursor::at_head(&read(node)?)?;
        self.install(Kind::Blocks(cursor))
    }

    /// `eth_newPendingTransactionFilter`.
    pub fn new_pending_filter(&self, node: &Node, _: &Args) -> RpcResult {
        self.install(Kind::Pending(node.subscribe_transactions()))
    }

    /// `eth_uninstallFilter`: whether it existed.
    pub fn uninstall(&self, _: &Node, args: &Args) -> RpcResult {
        let id = parse_id(args)?;
        Ok(json!(self.table()?.remove(&id).is_some()))
    }

    /// `eth_getFilterChanges`: what is new since the last poll.
    pub fn changes(&self, node: &Node, args: &Args) -> RpcResult {
        let id = parse_id(args)?;
        let mut entries = self.table()?;
        match &mut Self::polled(&mut entries, &id)?.kind {
            Kind::Pending(rx) => {
                let mut out = Vec::new();
                loop {
                    match rx.try_recv() {
                        Ok(t) => out.push(json!(t.hash)),
                        Err(TryRecvError::Lagged(_)) => continue,
                        Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                    }
                }
                Ok(json!(out))
            }
            Kind::Blocks(cursor) => {
                let new = cursor.new_blocks(&read(node)?, MAX_BLOCK_HASHES)?;
                Ok(json!(new.iter().map(ElHeader::hash).collect::<Vec<_>>()))
            }
            Kind::Logs { filter, range, cursor, .. } => {
                Ok(json!(cursor.new_logs(&read(node)?, filter, range, MAX_LOG_RANGE)?))
            }
        }
    }

    /// `eth_getFilterLogs`: every log the filter's range holds now, as `eth_getLogs`.
    pub fn logs(&self, node: &Node, args: &Args) -> RpcResult {
        let id = parse_id(args)?;
        let spec = {
            let mut entries = self.table()?;
            match &Self::polled(&mut entries, &id)?.kind {
                Kind::Logs { spec, .. } => spec.clone(),
                _ => return Err(RpcError::server("filter not found: not a log filter")),
            }
        };
        crate::eth::get_logs(node, &Args::new(vec![Value::Object(spec)]))
    }
}
