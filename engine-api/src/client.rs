//! The engine API client the consensus client uses: every call carries a fresh JWT and the
//! protocol version; errors come back as [`EngineError`].

use crate::jwt::JwtSecret;
use crate::proto::{self, engine_client};
use crate::types::{
    parse_u256, AccountProof, Attributes, EngineError, Payload, PayloadId, PayloadStatus, PooledTx,
    SyncProgress, TxVerdict, MAX_GET_POOLED, MAX_POOLED_HASHES, MAX_PROOF_ADDRESSES, MAX_SUBMIT_TRANSACTIONS,
    METHODS_V1, PROTOCOL_VERSIONS, VERSION_HEADER,
};
use alloy_primitives::{Address, Bytes, B256, U256};
use tokio_stream::{Stream, StreamExt as _};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Adds `authorization` and `qoin-engine-version` to every call.
#[derive(Clone)]
pub struct Auth {
    secret: JwtSecret,
    version: u32,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let token = self
            .secret
            .token_now()
            .map_err(|e| tonic::Status::internal(format!("cannot make a JWT: {e}")))?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| tonic::Status::internal("JWT is not a valid header value"))?;
        request.metadata_mut().insert("authorization", value);
        request.metadata_mut().insert(VERSION_HEADER, self.version.into());
        Ok(request)
    }
}

/// What the server said about itself in `ExchangeCapabilities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Its software name and version.
    pub client: String,
    /// Protocol versions it speaks.
    pub versions: Vec<u32>,
    /// Its methods.
    pub methods: Vec<String>,
    /// Its chain id.
    pub chain_id: u64,
    /// Its genesis block hash.
    pub genesis_hash: B256,
    /// Its genesis state root.
    pub genesis_state_root: B256,
}

/// An engine API client over one (lazily connected, automatically reconnecting) channel.
#[derive(Clone)]
pub struct EngineClient {
    inner: engine_client::EngineClient<InterceptedService<Channel, Auth>>,
    version: u32,
    name: String,
}

impl std::fmt::Debug for EngineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EngineClient(v{}, {})", self.version, self.name)
    }
}

fn status_err(s: &tonic::Status) -> EngineError {
    EngineError::from_status(s)
}

impl EngineClient {
    /// A client of the server at `url` (e.g. `http://127.0.0.1:8551`) signing tokens with
    /// `secret`, speaking the newest protocol version this build knows. Connects on first use.
    pub fn new(url: &str, secret: JwtSecret, name: &str) -> Result<Self, EngineError> {
        let newest = PROTOCOL_VERSIONS.iter().copied().max().unwrap_or(1);
        Self::with_version(url, secret, name, newest)
    }

    /// A client that speaks protocol `version` (tests of version negotiation use this).
    pub fn with_version(url: &str, secret: JwtSecret, name: &str, version: u32) -> Result<Self, EngineError> {
        let channel = Channel::from_shared(url.to_string())
            .map_err(|e| EngineError::InvalidParams(format!("engine URL {url:?}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(2))
            .tcp_nodelay(true)
            .initial_stream_window_size(crate::types::STREAM_WINDOW)
            .initial_connection_window_size(crate::types::CONNECTION_WINDOW)
            .max_frame_size(crate::types::MAX_FRAME)
            .connect_lazy();
        let inner = engine_client::EngineClient::with_interceptor(channel, Auth { secret, version })
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        Ok(Self { inner, version, name: name.to_string() })
    }

    /// Exchanges capabilities and checks the server speaks this client's version and has every
    /// method it needs; otherwise a clear [`EngineError::UnsupportedVersion`].
    pub async fn exchange_capabilities(&self) -> Result<ServerInfo, EngineError> {
        let ours = proto::Capabilities {
            versions: vec![self.version],
            methods: METHODS_V1.iter().map(|m| m.to_string()).collect(),
            client: self.name.clone(),
            ..Default::default()
        };
        let r =
            self.inner.clone().exchange_capabilities(ours).await.map_err(|s| status_err(&s))?.into_inner();
        let info = ServerInfo {
            client: r.client,
            versions: r.versions,
            methods: r.methods,
            chain_id: r.chain_id,
            genesis_hash: crate::types::parse_b256("genesis_hash", &r.genesis_hash).unwrap_or_default(),
            genesis_state_root: crate::types::parse_b256("genesis_state_root", &r.genesis_state_root)
                .unwrap_or_default(),
        };
        if !info.versions.contains(&self.version) {
            return Err(EngineError::UnsupportedVersion(format!(
                "{} speaks engine API version(s) {:?}, {} needs version {}; upgrade the older program",
                info.client, info.versions, self.name, self.version
            )));
        }
        let missing: Vec<&str> =
            METHODS_V1.iter().copied().filter(|m| !info.methods.iter().any(|x| x == m)).collect();
        if !missing.is_empty() {
            return Err(EngineError::UnsupportedVersion(format!(
                "{} lacks methods {missing:?}",
                info.client
            )));
        }
        Ok(info)
    }

    /// `NewPayload`. `signatures_verified`: this consensus client verified every transaction's
    /// signatures and chain id, and the execution client may skip its own check (§15.3).
    pub async fn new_payload(
        &self,
        payload: &Payload,
        signatures_verified: bool,
    ) -> Result<PayloadStatus, EngineError> {
        let message = proto::ExecutionPayload { signatures_verified, ..payload.to_proto() };
        let r = self.inner.clone().new_payload(message).await.map_err(|s| status_err(&s))?;
        PayloadStatus::from_proto(r.get_ref())
    }

    /// `NewPayloads`: a status per payload of the run (oldest first), up to and including the
    /// first that is INVALID. More than [`crate::types::MAX_NEW_PAYLOADS`] payloads are
    /// refused by the server.
    pub async fn new_payloads(
        &self,
        payloads: &[&Payload],
        signatures_verified: bool,
    ) -> Result<Vec<PayloadStatus>, EngineError> {
        let message = proto::NewPayloadsRequest {
            payloads: payloads.iter().map(|p| p.to_proto()).collect(),
            signatures_verified,
        };
        let r = self.inner.clone().new_payloads(message).await.map_err(|s| status_err(&s))?;
        let statuses =
            r.get_ref().statuses.iter().map(PayloadStatus::from_proto).collect::<Result<Vec<_>, _>>()?;
        // One status per payload at most, and only the last may be INVALID.
        let first_invalid = statuses.iter().position(|s| s.status == crate::types::Status::Invalid);
        if statuses.len() > payloads.len() || first_invalid.is_some_and(|i| i + 1 < statuses.len()) {
            return Err(EngineError::Internal(format!(
                "NewPayloads answered {} statuses for {} payloads, the first INVALID at {first_invalid:?}",
                statuses.len(),
                payloads.len()
            )));
        }
        Ok(statuses)
    }

    /// `ForkchoiceUpdated`: the head's status and, with attributes and a valid head, the id
    /// of the payload being built.
    pub async fn forkchoice_updated(
        &self,
        head: B256,
        finalized: Option<B256>,
        attributes: Option<&Attributes>,
    ) -> Result<(PayloadStatus, Option<PayloadId>), EngineError> {
        let req = proto::ForkchoiceUpdatedRequest {
            head_block_hash: head.to_vec(),
            finalized_block_hash: finalized.map(|h| h.to_vec()).unwrap_or_default(),
            attributes: attributes.map(Attributes::to_proto),
        };
        let r = self.inner.clone().forkchoice_updated(req).await.map_err(|s| status_err(&s))?.into_inner();
        let status = r
            .status
            .as_ref()
            .ok_or_else(|| EngineError::InvalidParams("forkchoice response without a status".into()))
            .and_then(PayloadStatus::from_proto)?;
        let id =
            if r.payload_id.is_empty() { None } else { Some(crate::types::parse_payload_id(&r.payload_id)?) };
        Ok((status, id))
    }

    /// `GetPayload`: the payload and its value to the fee recipient.
    pub async fn get_payload(&self, id: PayloadId) -> Result<(Payload, U256), EngineError> {
        let r = self
            .inner
            .clone()
            .get_payload(proto::GetPayloadRequest { payload_id: id.to_vec() })
            .await
            .map_err(|s| status_err(&s))?
            .into_inner();
        let payload = r
            .payload
            .as_ref()
            .ok_or_else(|| EngineError::InvalidParams("GetPayload response without a payload".into()))
            .and_then(Payload::from_proto)?;
        Ok((payload, parse_u256("block_value", &r.block_value)?))
    }

    /// The generated client (tests send requests the typed methods never would).
    #[cfg(test)]
    pub(crate) fn raw(&self) -> engine_client::EngineClient<InterceptedService<Channel, Auth>> {
        self.inner.clone()
    }

    /// `GetAccountProofs` for any number of addresses: sent in calls of at most
    /// [`MAX_PROOF_ADDRESSES`] (the server's limit), answers concatenated in order. An answer
    /// of the wrong length is an error.
    pub async fn account_proofs(
        &self,
        state_root: B256,
        addresses: &[Address],
    ) -> Result<Vec<AccountProof>, EngineError> {
        let mut out = Vec::with_capacity(addresses.len());
        for chunk in addresses.chunks(MAX_PROOF_ADDRESSES) {
            let req = proto::GetAccountProofsRequest {
                state_root: state_root.to_vec(),
                addresses: chunk.iter().map(|a| a.to_vec()).collect(),
            };
            let r =
                self.inner.clone().get_account_proofs(req).await.map_err(|s| status_err(&s))?.into_inner();
            if r.accounts.len() != chunk.len() {
                return Err(EngineError::Internal(format!(
                    "asked for {} account proofs, got {}",
                    chunk.len(),
                    r.accounts.len()
                )));
            }
            for a in &r.accounts {
                out.push(AccountProof::from_proto(a)?);
            }
        }
        Ok(out)
    }

    /// `SubscribeTransactions`: new pool transactions until the connection ends.
    pub async fn subscribe_transactions(
        &self,
    ) -> Result<impl Stream<Item = Result<PooledTx, EngineError>>, EngineError> {
        let r = self
            .inner
            .clone()
            .subscribe_transactions(proto::SubscribeTransactionsRequest {})
            .await
            .map_err(|s| status_err(&s))?
            .into_inner();
        Ok(r.map(|item| {
            let t = item.map_err(|s| status_err(&s))?;
            Ok(PooledTx { hash: crate::types::parse_b256("hash", &t.hash)?, raw: Bytes::from(t.raw) })
        }))
    }

    /// `SetSyncStatus`: tells the execution client how a sync goes (`None`: it is over).
    pub async fn set_sync_status(&self, progress: Option<SyncProgress>) -> Result<(), EngineError> {
        let req = proto::SyncStatus {
            syncing: progress.is_some(),
            starting_block: progress.map_or(0, |p| p.starting_block),
            highest_block: progress.map_or(0, |p| p.highest_block),
        };
        self.inner.clone().set_sync_status(req).await.map_err(|s| status_err(&s))?;
        Ok(())
    }

    /// `PooledTransactionHashes`: the ids of the pool's transactions, executable ones first, at
    /// most `limit` (at most [`MAX_POOLED_HASHES`]).
    pub async fn pooled_transaction_hashes(&self, limit: usize) -> Result<Vec<B256>, EngineError> {
        let limit = limit.min(MAX_POOLED_HASHES);
        let req = proto::PooledTransactionHashesRequest { limit: limit as u32 };
        let r =
            self.inner.clone().pooled_transaction_hashes(req).await.map_err(|s| status_err(&s))?.into_inner();
        if r.hashes.len() > limit {
            return Err(EngineError::Internal(format!("asked for {limit} ids, got {}", r.hashes.len())));
        }
        r.hashes.iter().map(|h| crate::types::parse_b256("hashes", h)).collect()
    }

    /// `GetPooledTransactions` for any number of ids (calls of at most [`MAX_GET_POOLED`]):
    /// the pooled ones, in the order asked.
    pub async fn pooled_transactions(&self, hashes: &[B256]) -> Result<Vec<PooledTx>, EngineError> {
        let mut out = Vec::new();
        for chunk in hashes.chunks(MAX_GET_POOLED) {
            let req =
                proto::GetPooledTransactionsRequest { hashes: chunk.iter().map(|h| h.to_vec()).collect() };
            let r = self
                .inner
                .clone()
                .get_pooled_transactions(req)
                .await
                .map_err(|s| status_err(&s))?
                .into_inner();
            if r.transactions.len() > chunk.len() {
                return Err(EngineError::Internal(format!(
                    "asked for {} transactions, got {}",
                    chunk.len(),
                    r.transactions.len()
                )));
            }
            for t in r.transactions {
                out.push(PooledTx {
                    hash: crate::types::parse_b256("hash", &t.hash)?,
                    raw: Bytes::from(t.raw),
                });
            }
        }
        Ok(out)
    }

    /// `SubmitTransactions` for any number of raw transactions (calls of at most
    /// [`MAX_SUBMIT_TRANSACTIONS`]): the pool's verdict on each, in order.
    pub async fn submit_transactions(&self, transactions: &[Bytes]) -> Result<Vec<TxVerdict>, EngineError> {
        let mut out = Vec::with_capacity(transactions.len());
        for chunk in transactions.chunks(MAX_SUBMIT_TRANSACTIONS) {
            let req =
                proto::SubmitTransactionsRequest { transactions: chunk.iter().map(|t| t.to_vec()).collect() };
            let r =
                self.inner.clone().submit_transactions(req).await.map_err(|s| status_err(&s))?.into_inner();
            if r.verdicts.len() != chunk.len() {
                return Err(EngineError::Internal(format!(
                    "submitted {} transactions, got {} verdicts",
                    chunk.len(),
                    r.verdicts.len()
                )));
            }
            for v in &r.verdicts {
                out.push(TxVerdict::from_proto(v)?);
            }
        }
        Ok(out)
    }
}
