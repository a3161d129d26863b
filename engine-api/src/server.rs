//! The engine API server: a tonic service over an [`EngineBackend`] (the execution client),
//! behind JWT authentication and the protocol-version check.
//!
//! Every call must carry a valid `authorization: Bearer <JWT>`; one without is refused with
//! `UNAUTHENTICATED` before the backend sees it. Every call but `ExchangeCapabilities` must
//! carry a `qoin-engine-version` this server speaks, or is refused with `UNIMPLEMENTED` and a
//! message naming both sides' versions. The backend's methods are synchronous (database
//! work) and run on tokio's blocking pool.

use crate::jwt::JwtSecret;
use crate::proto::engine_server::{Engine, EngineServer};
use crate::proto::{self};
use crate::types::{
    parse_address, parse_b256, parse_payload_id, AccountProof, Attributes, EngineError, Payload, PayloadId,
    PayloadStatus, PooledTx, SyncProgress, TxVerdict, MAX_GET_POOLED, MAX_NEW_PAYLOADS, MAX_POOLED_HASHES,
    MAX_PROOF_ADDRESSES, MAX_SUBMIT_TRANSACTIONS, METHODS_V1, PROTOCOL_VERSIONS, VERSION_HEADER,
};
use alloy_primitives::{Address, Bytes, B256, U256};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

/// What the execution client implements to serve the engine API.
pub trait EngineBackend: Send + Sync + 'static {
    /// Software name and version, e.g. `qoin-el/0.1.0`.
    fn client_name(&self) -> String;
    /// Chain id, genesis block hash and genesis state root.
    fn chain_info(&self) -> Result<(u64, B256, B256), EngineError>;
    /// Validates and executes a payload (does not move the head). With
    /// `signatures_verified`, the consensus client says it verified every transaction's
    /// signatures and chain id: the backend may skip its own signature check.
    fn new_payload(&self, payload: Payload, signatures_verified: bool) -> Result<PayloadStatus, EngineError>;
    /// [`Self::new_payload`] for a run of payloads, oldest first: a status per payload up to
    /// and including the first that is INVALID. By default, one `new_payload` after another;
    /// a backend may import a run that extends its head at once.
    fn new_payloads(
        &self,
        payloads: Vec<Payload>,
        signatures_verified: bool,
    ) -> Result<Vec<PayloadStatus>, EngineError> {
        new_payloads_one_by_one(payloads, |p| self.new_payload(p, signatures_verified))
    }
    /// Moves the head to `head` (a payload block hash); with attributes, starts building on it.
    fn forkchoice_updated(
        &self,
        head: B256,
        finalized: Option<B256>,
        attributes: Option<Attributes>,
    ) -> Result<(PayloadStatus, Option<PayloadId>), EngineError>;
    /// The best payload for `id` and its value (priority fees) to the fee recipient.
    fn get_payload(&self, id: PayloadId) -> Result<(Payload, U256), EngineError>;
    /// Accounts with proofs against `state_root`.
    fn account_proofs(
        &self,
        state_root: B256,
        addresses: &[Address],
    ) -> Result<Vec<AccountProof>, EngineError>;
    /// A receiver of transactions as they enter the pool.
    fn subscribe_transactions(&self) -> broadcast::Receiver<PooledTx>;
    /// Offers raw transactions (from peers) to the pool: a verdict per transaction, in order.
    fn submit_transactions(&self, transactions: Vec<Bytes>) -> Result<Vec<TxVerdict>, EngineError>;
    /// The consensus client's sync progress (`None`: not syncing), for `eth_syncing`.
    fn set_sync_status(&self, progress: Option<SyncProgress>);
    /// The ids of pooled transactions, executable ones first, at most `limit`.
    fn pooled_transaction_hashes(&self, limit: usize) -> Result<Vec<B256>, EngineError>;
    /// Pooled transactions by id, in the order asked; ids not pooled are left out.
    fn pooled_transactions(&self, hashes: &[B256]) -> Result<Vec<PooledTx>, EngineError>;
}

/// `NewPayloads` as `new_payload` after `new_payload`: a status per payload, up to and
/// including the first INVALID ([`EngineBackend::new_payloads`]' default).
pub fn new_payloads_one_by_one(
    payloads: Vec<Payload>,
    mut new_payload: impl FnMut(Payload) -> Result<PayloadStatus, EngineError>,
) -> Result<Vec<PayloadStatus>, EngineError> {
    let mut statuses = Vec::with_capacity(payloads.len());
    for payload in payloads {
        let status = new_payload(payload)?;
        let invalid = status.status == crate::types::Status::Invalid;
        statuses.push(status);
        if invalid {
            break;
        }
    }
    Ok(statuses)
}

/// A request's list within its limit: `"{len} {what}, at most {max}"` otherwise.
fn at_most(what: &str, len: usize, max: usize) -> Result<(), EngineError> {
    if len > max {
        return Err(EngineError::InvalidParams(format!("{len} {what}, at most {max}")));
    }
    Ok(())
}

/// Checks a request's token and returns it unchanged (the tonic interceptor).
pub(crate) fn authenticate(secret: &JwtSecret, request: Request<()>) -> Result<Request<()>, Status> {
    let header = request.metadata().get("authorization").map(|v| v.to_str().unwrap_or("\u{0}"));
    match secret.validate_header(header) {
        Ok(()) => Ok(request),
        Err(e) => Err(EngineError::Unauthenticated(e.to_string()).to_status()),
    }
}

fn check_version<T>(request: &Request<T>) -> Result<(), Status> {
    let raw = request.metadata().get(VERSION_HEADER).and_then(|v| v.to_str().ok());
    let version: Option<u32> = raw.and_then(|v| v.trim().parse().ok());
    match version {
        Some(v) if PROTOCOL_VERSIONS.contains(&v) => Ok(()),
        _ => Err(EngineError::UnsupportedVersion(format!(
            "the caller speaks engine API version {}, this server speaks {:?}; upgrade the older program",
            raw.unwrap_or("(none)"),
            PROTOCOL_VERSIONS
        ))
        .to_status()),
    }
}

struct Service<B: EngineBackend> {
    backend: Arc<B>,
}

async fn blocking<B: EngineBackend, T: Send + 'static>(
    backend: &Arc<B>,
    f: impl FnOnce(&B) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, Status> {
    let backend = backend.clone();
    tokio::task::spawn_blocking(move || f(&backend))
        .await
        .map_err(|e| EngineError::Internal(format!("engine task failed: {e}")).to_status())?
        .map_err(|e| e.to_status())
}

type TxStream = Pin<Box<dyn Stream<Item = Result<proto::PooledTransaction, Status>> + Send>>;

#[tonic::async_trait]
impl<B: EngineBackend> Engine for Service<B> {
    async fn exchange_capabilities(
        &self,
        _request: Request<proto::Capabilities>,
    ) -> Result<Response<proto::Capabilities>, Status> {
        let (chain_id, genesis, root) = blocking(&self.backend, |b| b.chain_info()).await?;
        Ok(Response::new(proto::Capabilities {
            versions: PROTOCOL_VERSIONS.to_vec(),
            methods: METHODS_V1.iter().map(|m| m.to_string()).collect(),
            client: self.backend.client_name(),
            chain_id,
            genesis_hash: genesis.to_vec(),
            genesis_state_root: root.to_vec(),
        }))
    }

    async fn new_payload(
        &self,
        request: Request<proto::ExecutionPayload>,
    ) -> Result<Response<proto::PayloadStatus>, Status> {
        check_version(&request)?;
        let payload = Payload::from_proto(request.get_ref()).map_err(|e| e.to_status())?;
        let verified = request.get_ref().signatures_verified;
        let status = blocking(&self.backend, move |b| b.new_payload(payload, verified)).await?;
        Ok(Response::new(status.to_proto()))
    }

    async fn new_payloads(
        &self,
        request: Request<proto::NewPayloadsRequest>,
    ) -> Result<Response<proto::NewPayloadsResponse>, Status> {
        check_version(&request)?;
        let r = request.get_ref();
        at_most("payloads", r.payloads.len(), MAX_NEW_PAYLOADS).map_err(|e| e.to_status())?;
        let payloads = r
            .payloads
            .iter()
            .map(Payload::from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_status())?;
        let verified = r.signatures_verified;
        let statuses = blocking(&self.backend, move |b| b.new_payloads(payloads, verified)).await?;
        Ok(Response::new(proto::NewPayloadsResponse {
            statuses: statuses.iter().map(PayloadStatus::to_proto).collect(),
        }))
    }

    async fn forkchoice_updated(
        &self,
        request: Request<proto::ForkchoiceUpdatedRequest>,
    ) -> Result<Response<proto::ForkchoiceUpdatedResponse>, Status> {
        check_version(&request)?;
        let r = request.get_ref();
        let parse = || -> Result<_, EngineError> {
            let head = parse_b256("head_block_hash", &r.head_block_hash)?;
            let finalized = if r.finalized_block_hash.is_empty() {
                None
            } else {
                Some(parse_b256("finalized_block_hash", &r.finalized_block_hash)?)
            };
            let attributes = r.attributes.as_ref().map(Attributes::from_proto).transpose()?;
            Ok((head, finalized, attributes))
        };
        let (head, finalized, attributes) = parse().map_err(|e| e.to_status())?;
        let (status, id) =
            blocking(&self.backend, move |b| b.forkchoice_updated(head, finalized, attributes)).await?;
        Ok(Response::new(proto::ForkchoiceUpdatedResponse {
            status: Some(status.to_proto()),
            payload_id: id.map(|i| i.to_vec()).unwrap_or_default(),
        }))
    }

    async fn get_payload(
        &self,
        request: Request<proto::GetPayloadRequest>,
    ) -> Result<Response<proto::GetPayloadResponse>, Status> {
        check_version(&request)?;
        let id = parse_payload_id(&request.get_ref().payload_id).map_err(|e| e.to_status())?;
        let (payload, value) = blocking(&self.backend, move |b| b.get_payload(id)).await?;
        Ok(Response::new(proto::GetPayloadResponse {
            payload: Some(payload.to_proto()),
            block_value: value.to_be_bytes::<32>().to_vec(),
        }))
    }

    async fn get_account_proofs(
        &self,
        request: Request<proto::GetAccountProofsRequest>,
    ) -> Result<Response<proto::GetAccountProofsResponse>, Status> {
        check_version(&request)?;
        let r = request.get_ref();
        let parse = || -> Result<_, EngineError> {
            at_most("addresses", r.addresses.len(), MAX_PROOF_ADDRESSES)?;
            let root = parse_b256("state_root", &r.state_root)?;
            let addresses: Vec<Address> =
                r.addresses.iter().map(|a| parse_address("address", a)).collect::<Result<_, _>>()?;
            Ok((root, addresses))
        };
        let (root, addresses) = parse().map_err(|e| e.to_status())?;
        let accounts = blocking(&self.backend, move |b| b.account_proofs(root, &addresses)).await?;
        Ok(Response::new(proto::GetAccountProofsResponse {
            accounts: accounts.iter().map(AccountProof::to_proto).collect(),
        }))
    }

    type SubscribeTransactionsStream = TxStream;

    async fn subscribe_transactions(
        &self,
        request: Request<proto::SubscribeTransactionsRequest>,
    ) -> Result<Response<TxStream>, Status> {
        check_version(&request)?;
        let rx = self.backend.subscribe_transactions();
        // A subscriber that falls behind skips what it missed (the miner only needs to know
        // that something new arrived).
        let stream = tokio_stream::wrappers::BroadcastStream::new(rx)
            .filter_map(|item| item.ok())
            .map(|tx| Ok(proto::PooledTransaction { hash: tx.hash.to_vec(), raw: tx.raw.to_vec() }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn set_sync_status(
        &self,
        request: Request<proto::SyncStatus>,
    ) -> Result<Response<proto::SyncStatusAck>, Status> {
        check_version(&request)?;
        let r = request.get_ref();
        let progress = r
            .syncing
            .then_some(SyncProgress { starting_block: r.starting_block, highest_block: r.highest_block });
        self.backend.set_sync_status(progress);
        Ok(Response::new(proto::SyncStatusAck {}))
    }

    async fn submit_transactions(
        &self,
        request: Request<proto::SubmitTransactionsRequest>,
    ) -> Result<Response<proto::SubmitTransactionsResponse>, Status> {
        check_version(&request)?;
        let txs = request.into_inner().transactions;
        at_most("transactions", txs.len(), MAX_SUBMIT_TRANSACTIONS).map_err(|e| e.to_status())?;
        let n = txs.len();
        let txs: Vec<Bytes> = txs.into_iter().map(Bytes::from).collect();
        let verdicts = blocking(&self.backend, move |b| b.submit_transactions(txs)).await?;
        if verdicts.len() != n {
            return Err(
                EngineError::Internal(format!("{n} transactions, {} verdicts", verdicts.len())).to_status()
            );
        }
        Ok(Response::new(proto::SubmitTransactionsResponse {
            verdicts: verdicts.iter().map(TxVerdict::to_proto).collect(),
        }))
    }

    async fn pooled_transaction_hashes(
        &self,
        request: Request<proto::PooledTransactionHashesRequest>,
    ) -> Result<Response<proto::PooledTransactionHashesResponse>, Status> {
        check_version(&request)?;
        let limit = request.get_ref().limit as usize;
        if limit > MAX_POOLED_HASHES {
            return Err(
                EngineError::InvalidParams(format!("limit {limit}, at most {MAX_POOLED_HASHES}")).to_status()
            );
        }
        let hashes = blocking(&self.backend, move |b| b.pooled_transaction_hashes(limit)).await?;
        Ok(Response::new(proto::PooledTransactionHashesResponse {
            hashes: hashes.iter().take(limit).map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_pooled_transactions(
        &self,
        request: Request<proto::GetPooledTransactionsRequest>,
    ) -> Result<Response<proto::GetPooledTransactionsResponse>, Status> {
        check_version(&request)?;
        let raw = request.into_inner().hashes;
        at_most("transaction ids", raw.len(), MAX_GET_POOLED).map_err(|e| e.to_status())?;
        let hashes = raw
            .iter()
            .map(|h| parse_b256("hashes", h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_status())?;
        let txs = blocking(&self.backend, move |b| b.pooled_transactions(&hashes)).await?;
        Ok(Response::new(proto::GetPooledTransactionsResponse {
            transactions: txs
                .into_iter()
                .map(|t| proto::PooledTransaction { hash: t.hash.to_vec(), raw: t.raw.to_vec() })
                .collect(),
        }))
    }
}

/// A running engine server.
#[derive(Debug)]
pub struct ServerHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ServerHandle {
    /// Stops accepting calls and waits up to two seconds for calls in flight (open
    /// transaction streams never finish by themselves, so they are cut after that).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let abort = self.task.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.task).await.is_err() {
            abort.abort();
        }
    }
}

/// Serves the engine API for `backend` on `addr` (port 0: any free port), requiring tokens
/// signed with `secret`. Returns once listening.
pub async fn serve<B: EngineBackend>(
    backend: Arc<B>,
    addr: SocketAddr,
    secret: JwtSecret,
) -> std::io::Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    // No Nagle: a response that does not fill a segment must not wait for the peer's delayed
    // ACK (measured: +40 ms per GetPayload and GetAccountProofs without this).
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    });
    let server = EngineServer::new(Service { backend })
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let service =
        tonic::service::interceptor::InterceptedService::new(server, move |r| authenticate(&secret, r));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .initial_stream_window_size(crate::types::STREAM_WINDOW)
            .initial_connection_window_size(crate::types::CONNECTION_WINDOW)
            .max_frame_size(crate::types::MAX_FRAME)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            }),
    );
    Ok(ServerHandle { addr, shutdown: Some(tx), task })
}
