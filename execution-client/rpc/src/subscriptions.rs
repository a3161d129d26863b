//! WebSocket subscriptions (`eth_subscribe` / `eth_unsubscribe`, notifications named
//! `eth_subscription`), on the same port as HTTP as anvil and geth serve them: `newHeads`,
//! `logs` (with a filter), `newPendingTransactions`, `syncing`.
//!
//! Each subscription is a task that wakes when the chain's head moves (or the pool admits a
//! transaction), reads what is new since it last sent, and queues it on the connection without
//! waiting. A subscriber that does not read fills its connection's buffer; the subscription is
//! then closed with a notification that says why, and the node never waits for it. After a
//! reorg, `newHeads` and `logs` go back to the newest block they reported that is still
//! canonical and send the new branch (logs of abandoned blocks are not re-sent with
//! `removed: true`; the spec says so).

use crate::convert::Args;
use crate::error::RpcError;
use crate::eth::{block_parts, read, syncing, LogFilter, LogRange};
use crate::filters::Cursor;
use alloy_primitives::keccak256;
use jsonrpsee::core::server::{PendingSubscriptionSink, SubscriptionMessage, TrySendError};
use jsonrpsee::core::SubscriptionError;
use jsonrpsee::server::IdProvider;
use jsonrpsee::types::{ErrorObjectOwned, Params, SubscriptionId};
use jsonrpsee::RpcModule;
use qoin_el_node::Node;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// Blocks one wake-up of a `newHeads` or `logs` subscription sends at most (a subscriber that
/// reconnects after a long sync is not sent the whole chain).
const MAX_BLOCKS_PER_WAKE: u64 = 1_024;

/// Subscription and filter ids as geth writes them: `0x` and 16 bytes of hex, unguessable
/// across restarts (keccak of a start-time salt and a counter).
#[derive(Debug)]
pub(crate) struct HexIds {
    salt: [u8; 32],
    next: AtomicU64,
}

impl Default for HexIds {
    fn default() -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Self { salt: keccak256(now.as_nanos().to_be_bytes()).0, next: AtomicU64::new(0) }
    }
}

impl HexIds {
    /// A new id.
    pub(crate) fn next_hex(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let h = keccak256([&self.salt[..], &n.to_be_bytes()].concat());
        format!("0x{}", hex::encode(&h[..16]))
    }
}

impl IdProvider for HexIds {
    fn next_id(&self) -> SubscriptionId<'static> {
        SubscriptionId::Str(self.next_hex().into())
    }
}

enum Kind {
    NewHeads,
    Logs(LogFilter),
    Pending,
    Syncing,
}

fn parse(params: &Params<'_>) -> Result<Kind, RpcError> {
    let args = Args::from_params(params).map_err(|e| RpcError::invalid_params(e.message().to_string()))?;
    let name: String = args.req(0, "subscription name")?;
    match name.as_str() {
        "newHeads" => Ok(Kind::NewHeads),
        "logs" => {
            let spec = match args.get(1) {
                None => serde_json::Map::new(),
                Some(Value::Object(o)) => o.clone(),
                Some(_) => return Err(RpcError::invalid_params("the logs filter must be an object")),
            };
            if ["fromBlock", "toBlock", "blockHash"]
                .iter()
                .any(|k| spec.get(*k).is_some_and(|v| !v.is_null()))
            {
                return Err(RpcError::invalid_params("a logs subscription takes only address and topics"));
            }
            Ok(Kind::Logs(LogFilter::parse(&spec)?))
        }
        "newPendingTransactions" => Ok(Kind::Pending),
        "syncing" => Ok(Kind::Syncing),
        other => Err(RpcError::invalid_params(format!("unsupported subscription: {other}"))),
    }
}

/// Queues `value` without waiting: a full buffer (a subscriber that does not read) ends the
/// subscription with a reason.
fn send(sink: &mut jsonrpsee::SubscriptionSink, value: &Value) -> Result<bool, SubscriptionError> {
    let raw = serde_json::value::to_raw_value(value).map_err(|e| e.to_string())?;
    match sink.try_send(SubscriptionMessage::from(raw)) {
        Ok(()) => Ok(true),
        Err(TrySendError::Closed(_)) => Ok(false),
        Err(TrySendError::Full(_)) => {
            Err("subscriber too slow: its connection's buffer is full, subscription dropped".into())
        }
    }
}

/// What became canonical since `cursor`: headers (as `newHeads` objects) or matching logs.
fn new_items(node: &Node, cursor: &mut Cursor, logs: Option<&LogFilter>) -> Result<Vec<Value>, RpcError> {
    let tx = read(node)?;
    if let Some(filter) = logs {
        return cursor.new_logs(&tx, filter, &LogRange::default(), MAX_BLOCKS_PER_WAKE);
    }
    let mut heads = Vec::new();
    for h in cursor.new_blocks(&tx, MAX_BLOCKS_PER_WAKE)? {
        let (body, _, _) = block_parts(&tx, h.number)?;
        let mut v = crate::convert::block_json(&h, &body, &[], false);
        if let Some(o) = v.as_object_mut() {
            o.remove("transactions");
        }
        heads.push(v);
    }
    Ok(heads)
}

async fn run(
    params: Params<'static>,
    pending: PendingSubscriptionSink,
    node: Arc<Node>,
) -> Result<(), SubscriptionError> {
    let kind = match parse(&params) {
        Ok(k) => k,
        Err(e) => {
            pending.reject(ErrorObjectOwned::from(e)).await;
            return Ok(());
        }
    };
    // What the subscription follows is taken before its id goes out: a head that moves once the
    // subscriber has the id (and may act on it, say by mining) is always reported.
    match kind {
        Kind::Pending => {
            let mut rx = node.subscribe_transactions();
            let mut sink = pending.accept().await.map_err(|e| e.to_string())?;
            loop {
                tokio::select! {
                    _ = sink.closed() => return Ok(()),
                    got = rx.recv() => match got {
                        Ok(t) => {
                            if !send(&mut sink, &serde_json::json!(t.hash))? {
                                return Ok(());
                            }
                        }
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return Ok(()),
                    },
                }
            }
        }
        Kind::Syncing => {
            let mut heads = node.chain().watch_head();
            let mut sink = pending.accept().await.map_err(|e| e.to_string())?;
            let mut last = Value::Null;
            loop {
                let n = node.clone();
                let now = tokio::task::spawn_blocking(move || syncing(&n, &Args::default()))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.message)?;
                if now != last {
                    if !send(&mut sink, &now)? {
                        return Ok(());
                    }
                    last = now;
                }
                tokio::select! {
                    _ = sink.closed() => return Ok(()),
                    changed = heads.changed() => if changed.is_err() { return Ok(()) },
                }
            }
        }
        Kind::NewHeads | Kind::Logs(_) => {
            let filter = match kind {
                Kind::Logs(f) => Some(Arc::new(f)),
                _ => None,
            };
            let mut heads = node.chain().watch_head();
            let n = node.clone();
            let at_head = tokio::task::spawn_blocking(move || read(&n).and_then(|tx| Cursor::at_head(&tx)))
                .await
                .map_err(|e| e.to_string())?;
            let mut cursor = match at_head {
                Ok(c) => c,
                Err(e) => {
                    pending.reject(ErrorObjectOwned::from(e)).await;
                    return Ok(());
                }
            };
            let mut sink = pending.accept().await.map_err(|e| e.to_string())?;
            loop {
                tokio::select! {
                    _ = sink.closed() => return Ok(()),
                    changed = heads.changed() => if changed.is_err() { return Ok(()) },
                }
                let (n, f) = (node.clone(), filter.clone());
                let (items, back) = tokio::task::spawn_blocking(move || {
                    let items = new_items(&n, &mut cursor, f.as_deref());
                    (items, cursor)
                })
                .await
                .map_err(|e| e.to_string())?;
                cursor = back;
                for item in items.map_err(|e| e.message)? {
                    if !send(&mut sink, &item)? {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Registers `eth_subscribe` / `eth_unsubscribe` on `module`.
pub(crate) fn register(module: &mut RpcModule<Node>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    module.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        |params, pending, node, _| run(params, pending, node),
    )?;
    Ok(())
}
