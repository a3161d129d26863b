//! A node's JSON-RPC over WebSocket: reads, contract calls decoded with the contracts' ABI
//! (a refusal as the contract's reason), transactions signed with the program's post-quantum
//! key and followed to their receipts, logs, raw headers and new heads.

use crate::wallet::Wallet;
use alloy_primitives::{Address, Bytes, Log, LogData, B256, U256};
use alloy_sol_types::{SolCall, SolError};
use anyhow::{anyhow, bail, Context as _};
use jsonrpsee_core::client::{ClientT, Subscription, SubscriptionClientT};
use jsonrpsee_core::params::ArrayParams;
use jsonrpsee_ws_client::{WsClient, WsClientBuilder};
use qoin_markets::storage::StorageMarket;
use qoin_primitives::{TxKind, TxRequest};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::Mutex;

/// How long a transaction may take to be included before the send gives up.
pub const INCLUSION_TIMEOUT: Duration = Duration::from_secs(120);

/// A refusal or failure of a call or a transaction.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The contract refused it, with its reason (`Refused(string)`), or reverted otherwise.
    #[error("refused: {0}")]
    Refused(String),
    /// The transaction was included but reverted: the state changed between the dry run and
    /// its block (another party's transaction came first).
    #[error("transaction {0} reverted")]
    Reverted(B256),
    /// The node could not be reached, or answered something unexpected.
    #[error(transparent)]
    Node(#[from] anyhow::Error),
}

/// A transaction's receipt, as far as the programs read it.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The transaction's hash.
    pub hash: B256,
    /// Its block.
    pub block: u64,
    /// Gas it used.
    pub gas_used: u64,
    /// Its logs.
    pub logs: Vec<Log>,
}

impl Receipt {
    /// The events of type `E` that `contract` emitted.
    pub fn events<E: alloy_sol_types::SolEvent>(&self, contract: Address) -> Vec<E> {
        decode_events(&self.logs, contract)
    }
}

/// The events of type `E` from `contract` among `logs`.
pub fn decode_events<E: alloy_sol_types::SolEvent>(logs: &[Log], contract: Address) -> Vec<E> {
    logs.iter().filter(|l| l.address == contract).filter_map(|l| E::decode_log_data(&l.data).ok()).collect()
}

/// A connection to a node.
pub struct Node {
    client: WsClient,
    chain_id: u64,
    /// The next nonce of each sender, once known (sends from one program are serialised).
    nonce: Mutex<Option<(Address, u64)>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("chain_id", &self.chain_id).finish_non_exhaustive()
    }
}

fn params(values: Vec<Value>) -> anyhow::Result<ArrayParams> {
    let mut p = ArrayParams::new();
    for v in values {
        p.insert(v)?;
    }
    Ok(p)
}

fn quantity(v: &Value) -> anyhow::Result<u64> {
    let s = v.as_str().ok_or_else(|| anyhow!("expected a quantity, got {v}"))?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).with_context(|| format!("quantity {s}"))
}

#[derive(Deserialize)]
struct RpcLog {
    address: Address,
    topics: Vec<B256>,
    data: Bytes,
}

impl RpcLog {
    fn into_log(self) -> Log {
        Log { address: self.address, data: LogData::new_unchecked(self.topics, self.data) }
    }
}

/// The contract's reason from the revert data of a JSON-RPC error, if it gave one.
fn refusal(e: &jsonrpsee_core::client::Error) -> Option<String> {
    let jsonrpsee_core::client::Error::Call(obj) = e else { return None };
    let data: Bytes = obj.data().and_then(|d| serde_json::from_str(d.get()).ok())?;
    Some(
        StorageMarket::Refused::abi_decode(&data)
            .map(|r| r.why)
            .unwrap_or_else(|_| obj.message().to_string()),
    )
}

impl Node {
    /// Connects to `url` (`ws://`, or `http://`, which is taken as the WebSocket on the same
    /// host and port, as a Qoin node serves both there).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let ws = if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            url.to_string()
        };
        let client = WsClientBuilder::default()
            .max_request_size(64 << 20)
            .max_response_size(64 << 20)
            .request_timeout(Duration::from_secs(60))
            .build(&ws)
            .await
            .with_context(|| format!("connecting to the node at {ws}"))?;
        let mut node = Self { client, chain_id: 0, nonce: Mutex::new(None) };
        node.chain_id = quantity(&node.raw("eth_chainId", vec![]).await?)?;
        Ok(node)
    }

    /// The chain's id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// A raw JSON-RPC request.
    pub async fn raw(&self, method: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client.request(method, params(args)?).await.with_context(|| method.to_string())
    }

    /// The head's number.
    pub async fn block_number(&self) -> anyhow::Result<u64> {
        quantity(&self.raw("eth_blockNumber", vec![]).await?)
    }

    /// `who`'s balance at the head.
    pub async fn balance(&self, who: Address) -> anyhow::Result<U256> {
        let v = self.raw("eth_getBalance", vec![json!(who), json!("latest")]).await?;
        serde_json::from_value(v).context("eth_getBalance")
    }

    /// The RLP of block `n`'s execution header (`debug_getRawHeader`), whose keccak256 is
    /// its hash.
    pub async fn raw_header(&self, n: u64) -> anyhow::Result<Bytes> {
        let v = self.raw("debug_getRawHeader", vec![json!(format!("{n:#x}"))]).await?;
        if v.is_null() {
            bail!("the node has no block {n}");
        }
        serde_json::from_value(v).context("debug_getRawHeader")
    }

    /// Runs `call` on `to` at the head from `from`: its decoded result, or the contract's
    /// reason for refusing it.
    pub async fn call<C: SolCall>(
        &self,
        from: Address,
        to: Address,
        call: &C,
    ) -> Result<C::Return, CallError> {
        self.call_with_value(from, to, call, U256::ZERO).await
    }

    async fn call_with_value<C: SolCall>(
        &self,
        from: Address,
        to: Address,
        call: &C,
        value: U256,
    ) -> Result<C::Return, CallError> {
        let req = json!({"from": from, "to": to, "value": value, "input": Bytes::from(call.abi_encode())});
        let args = params(vec![req, json!("latest")])?;
        match self.client.request::<Bytes, _>("eth_call", args).await {
            Ok(out) => C::abi_decode_returns(&out)
                .map_err(|e| CallError::Node(anyhow!("{}: undecodable answer: {e}", C::SIGNATURE))),
            Err(e) => match refusal(&e) {
                Some(why) => Err(CallError::Refused(why)),
                None => Err(CallError::Node(anyhow!(e).context(C::SIGNATURE))),
            },
        }
    }

    /// Signs `call` to `to` with `wallet`, sends it with `value`, and waits for its receipt.
    /// Refused (the contract's reason) before anything is sent when a dry run refuses it.
    pub async fn send<C: SolCall>(
        &self,
        wallet: &Wallet,
        to: Address,
        call: &C,
        value: U256,
    ) -> Result<Receipt, CallError> {
        let from = wallet.address();
        self.call_with_value(from, to, call, value).await?;
        let input = Bytes::from(call.abi_encode());
        let estimate = json!({"from": from, "to": to, "value": value, "input": input});
        let gas = quantity(&self.raw("eth_estimateGas", vec![estimate]).await?)?;
        let gas_limit = gas + gas / 5 + 10_000;
        let head = self.raw("eth_getBlockByNumber", vec![json!("latest"), json!(false)]).await?;
        let base_fee = u128::from(quantity(&head["baseFeePerGas"])?);
        let tip = u128::from(quantity(&self.raw("eth_maxPriorityFeePerGas", vec![]).await?)?);
        let hash = {
            let mut next = self.nonce.lock().await;
            let nonce = match *next {
                Some((who, n)) if who == from => n,
                _ => quantity(
                    &self.raw("eth_getTransactionCount", vec![json!(from), json!("pending")]).await?,
                )?,
            };
            let tx = wallet.sign(TxRequest {
                chain_id: self.chain_id,
                nonce,
                max_priority_fee_per_gas: tip,
                max_fee_per_gas: base_fee * 2 + tip,
                gas_limit,
                to: TxKind::Call(to),
                value,
                input,
                ..Default::default()
            });
            let raw = Bytes::from(tx.encode());
            match self.raw("eth_sendRawTransaction", vec![json!(raw)]).await {
                Ok(_) => *next = Some((from, nonce + 1)),
                Err(e) => {
                    *next = None;
                    return Err(CallError::Node(e.context(C::SIGNATURE)));
                }
            }
            tx.id()
        };
        match self.receipt(hash).await {
            Ok(Some(receipt)) => Ok(receipt),
            Ok(None) => Err(CallError::Reverted(hash)),
            Err(e) => {
                // Not included (dropped or replaced): ask the node for the nonce next time
                // rather than building on one that may never be used.
                *self.nonce.lock().await = None;
                Err(CallError::Node(e.context(C::SIGNATURE)))
            }
        }
    }

    /// Waits for the receipt of transaction `hash`: `None` if it reverted; an error if it is
    /// not included within [`INCLUSION_TIMEOUT`].
    pub async fn receipt(&self, hash: B256) -> anyhow::Result<Option<Receipt>> {
        let deadline = tokio::time::Instant::now() + INCLUSION_TIMEOUT;
        loop {
            let r = self.raw("eth_getTransactionReceipt", vec![json!(hash)]).await?;
            if !r.is_null() {
                let logs: Vec<RpcLog> = serde_json::from_value(r["logs"].clone()).context("receipt logs")?;
                if quantity(&r["status"])? != 1 {
                    return Ok(None);
                }
                return Ok(Some(Receipt {
                    hash,
                    block: quantity(&r["blockNumber"])?,
                    gas_used: quantity(&r["gasUsed"])?,
                    logs: logs.into_iter().map(RpcLog::into_log).collect(),
                }));
            }
            if tokio::time::Instant::now() > deadline {
                bail!("transaction {hash} not included within {INCLUSION_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The logs of `contract` in blocks `from..=to`.
    pub async fn logs(&self, contract: Address, from: u64, to: u64) -> anyhow::Result<Vec<Log>> {
        let filter =
            json!({"address": contract, "fromBlock": format!("{from:#x}"), "toBlock": format!("{to:#x}")});
        let v = self.raw("eth_getLogs", vec![filter]).await?;
        let logs: Vec<RpcLog> = serde_json::from_value(v).context("eth_getLogs")?;
        Ok(logs.into_iter().map(RpcLog::into_log).collect())
    }

    /// Waits for the next head on `heads`, or a second, whichever comes first (a missed
    /// notification costs a second, no more); subscribes again if the subscription closed.
    pub async fn next_head(&self, heads: &mut Subscription<Value>) -> anyhow::Result<()> {
        match tokio::time::timeout(Duration::from_secs(1), heads.next()).await {
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(Some(Err(e))) => {
                tracing::warn!(target: qoin_tracing::targets::MARKET, "a head notification: {e}")
            }
            Ok(None) => {
                tracing::warn!(target: qoin_tracing::targets::MARKET, "the head subscription closed; subscribing again");
                *heads = self.heads().await?;
            }
        }
        Ok(())
    }

    /// The logs of `contract` in blocks `from..=to` whose first indexed topic is `topic1`.
    pub async fn logs_about(
        &self,
        contract: Address,
        topic1: B256,
        from: u64,
        to: u64,
    ) -> anyhow::Result<Vec<Log>> {
        let filter = json!({"address": contract, "topics": [null, topic1],
            "fromBlock": format!("{from:#x}"), "toBlock": format!("{to:#x}")});
        let v = self.raw("eth_getLogs", vec![filter]).await?;
        let logs: Vec<RpcLog> = serde_json::from_value(v).context("eth_getLogs")?;
        Ok(logs.into_iter().map(RpcLog::into_log).collect())
    }

    /// New heads as the node announces them (`eth_subscribe("newHeads")`): their numbers.
    pub async fn heads(&self) -> anyhow::Result<Subscription<Value>> {
        self.client
            .subscribe("eth_subscribe", params(vec![json!("newHeads")])?, "eth_unsubscribe")
            .await
            .context("eth_subscribe newHeads")
    }
}

/// Publishes `url` as the wallet's endpoint in `contract`'s directory (either market's: both
/// keep one, with the same interface), unless it is there already.
pub async fn publish_endpoint(
    node: &Node,
    wallet: &Wallet,
    contract: Address,
    url: &str,
) -> anyhow::Result<()> {
    let me = wallet.address();
    let current = node.call(me, contract, &StorageMarket::endpointCall(me)).await?;
    if current != url {
        node.send(wallet, contract, &StorageMarket::setEndpointCall { url: url.to_string() }, U256::ZERO)
            .await?;
        tracing::info!(target: qoin_tracing::targets::MARKET, %url, "endpoint published");
    }
    Ok(())
}

/// Blocks of logs read per request.
pub const LOG_RANGE: u64 = 1_000;
/// How far back a daemon's first start reads logs (orders older than this are ignored).
pub const FIRST_LOOKBACK: u64 = 1_000;

/// The next blocks whose logs a daemon that has read up to block `scanned` (0: nothing yet)
/// reads at head `head`: at most [`LOG_RANGE`] of them; `None` when it is up to date.
pub fn log_range(scanned: u64, head: u64) -> Option<(u64, u64)> {
    let scanned = if scanned == 0 { head.saturating_sub(FIRST_LOOKBACK) } else { scanned };
    (scanned < head).then(|| (scanned + 1, head.min(scanned + LOG_RANGE)))
}
