//! The server and client against a recording backend: authentication, version negotiation,
//! error mapping and conversions.

use crate::jwt::JwtSecret;
use crate::*;
use alloy_primitives::{Address, Bytes, B256, U256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_stream::StreamExt as _;

struct Recorder {
    calls: AtomicUsize,
    last_head: Mutex<Option<B256>>,
    txs: broadcast::Sender<PooledTx>,
    sync: Mutex<Vec<Option<SyncProgress>>>,
    verified_flags: Mutex<Vec<bool>>,
}

fn payload() -> Payload {
    Payload {
        parent_hash: B256::repeat_byte(1),
        number: 7,
        timestamp: 1_700_000_000,
        fee_recipient: Address::repeat_byte(2),
        state_root: B256::repeat_byte(3),
        receipts_root: B256::repeat_byte(4),
        logs_bloom: Default::default(),
        gas_limit: 30_000_000,
        gas_used: 21_000,
        base_fee_per_gas: 7,
        prev_randao: B256::repeat_byte(5),
        block_hash: B256::repeat_byte(6),
        transactions: vec![Bytes::from_static(&[0x51, 1, 2, 3])],
        credits: vec![Credit {
            address: Address::repeat_byte(9),
            amount: U256::from(427_789_185_489_390_828u64),
        }],
    }
}

impl EngineBackend for Recorder {
    fn client_name(&self) -> String {
        "recorder/1".into()
    }
    fn chain_info(&self) -> Result<(u64, B256, B256), EngineError> {
        Ok((9, B256::repeat_byte(0x99), B256::repeat_byte(0x98)))
    }
    fn new_payload(&self, p: Payload, signatures_verified: bool) -> Result<PayloadStatus, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.verified_flags.lock().unwrap().push(signatures_verified);
        assert_eq!(p, payload(), "the payload arrives intact");
        Ok(PayloadStatus::invalid(Some(p.parent_hash), "state root mismatch"))
    }
    fn forkchoice_updated(
        &self,
        head: B256,
        finalized: Option<B256>,
        attributes: Option<Attributes>,
    ) -> Result<(PayloadStatus, Option<PayloadId>), EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_head.lock().unwrap() = Some(head);
        if finalized.is_some() {
            return Err(EngineError::InvalidForkchoiceState("finalized is not an ancestor of head".into()));
        }
        match attributes {
            Some(a) if a.timestamp_ms == 0 => Err(EngineError::InvalidAttributes("timestamp 0".into())),
            Some(a) => Ok((PayloadStatus::valid(), Some(a.payload_id(&head)))),
            None => Ok((PayloadStatus::syncing(), None)),
        }
    }
    fn get_payload(&self, id: PayloadId) -> Result<(Payload, U256), EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if id == [0; 8] {
            return Err(EngineError::UnknownPayload);
        }
        Ok((payload(), U256::from(5u8)))
    }
    fn account_proofs(&self, root: B256, addresses: &[Address]) -> Result<Vec<AccountProof>, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(addresses
            .iter()
            .map(|a| AccountProof {
                address: *a,
                exists: true,
                nonce: 1,
                balance: U256::from(2u8),
                storage_root: root,
                code_hash: B256::ZERO,
                proof: vec![Bytes::from_static(b"node")],
            })
            .collect())
    }
    fn subscribe_transactions(&self) -> broadcast::Receiver<PooledTx> {
        self.txs.subscribe()
    }
    fn submit_transactions(&self, transactions: Vec<Bytes>) -> Result<Vec<TxVerdict>, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // The first byte says the verdict.
        Ok(transactions
            .iter()
            .map(|t| {
                let verdict = match t.first() {
                    Some(1) => Verdict::Added,
                    Some(2) => Verdict::Known,
                    Some(4) => Verdict::Refused,
                    _ => Verdict::Invalid,
                };
                let hash = (verdict != Verdict::Invalid).then(|| alloy_primitives::keccak256(t));
                TxVerdict { hash, verdict, error: format!("{verdict:?}") }
            })
            .collect())
    }
    fn set_sync_status(&self, progress: Option<SyncProgress>) {
        self.sync.lock().unwrap().push(progress);
    }
    /// A pool of 5,000 transactions: id i is `[i as u16; 16]`, its encoding the id's bytes.
    fn pooled_transaction_hashes(&self, limit: usize) -> Result<Vec<B256>, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok((0..5_000u16).take(limit).map(pooled_id).collect())
    }
    fn pooled_transactions(&self, hashes: &[B256]) -> Result<Vec<PooledTx>, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(hashes
            .iter()
            .filter(|h| (0..5_000u16).any(|i| pooled_id(i) == **h))
            .map(|h| PooledTx { hash: *h, raw: Bytes::copy_from_slice(h.as_slice()) })
            .collect())
    }
}

fn pooled_id(i: u16) -> B256 {
    let mut b = [0u8; 32];
    for pair in b.chunks_mut(2) {
        pair.copy_from_slice(&i.to_be_bytes());
    }
    B256::from(b)
}

async fn start() -> (Arc<Recorder>, ServerHandle, JwtSecret) {
    let backend = Arc::new(Recorder {
        calls: AtomicUsize::new(0),
        last_head: Mutex::new(None),
        txs: broadcast::channel(16).0,
        sync: Mutex::new(Vec::new()),
        verified_flags: Mutex::new(Vec::new()),
    });
    let secret = JwtSecret::random();
    let handle = serve(backend.clone(), "127.0.0.1:0".parse().unwrap(), secret.clone()).await.unwrap();
    (backend, handle, secret)
}

fn url(h: &ServerHandle) -> String {
    format!("http://{}", h.addr)
}

fn attrs(ts: u64) -> Attributes {
    Attributes {
        timestamp_ms: ts,
        fee_recipient: Address::repeat_byte(0xfe),
        credits: vec![Credit { address: Address::repeat_byte(0xfe), amount: U256::from(10u8) }],
        prev_randao: B256::repeat_byte(0xaa),
    }
}

#[tokio::test]
async fn calls_round_trip_with_statuses_and_distinct_errors() {
    let (backend, handle, secret) = start().await;
    let c = EngineClient::new(&url(&handle), secret, "test-cl").unwrap();
    let info = c.exchange_capabilities().await.unwrap();
    assert_eq!(info.client, "recorder/1");
    assert_eq!(info.versions, vec![1]);
    assert_eq!((info.chain_id, info.genesis_hash), (9, B256::repeat_byte(0x99)));

    let st = c.new_payload(&payload(), false).await.unwrap();
    assert_eq!(st.status, Status::Invalid);
    c.new_payload(&payload(), true).await.unwrap();
    assert_eq!(*backend.verified_flags.lock().unwrap(), [false, true], "the flag arrives as sent");
    assert_eq!(st.latest_valid_hash, Some(B256::repeat_byte(1)));
    assert_eq!(st.validation_error.as_deref(), Some("state root mismatch"));

    // A run: statuses up to the first that is not VALID (the backend's default goes one by one).
    let p = payload();
    let calls = backend.calls.load(Ordering::SeqCst);
    let statuses = c.new_payloads(&[&p, &p, &p], true).await.unwrap();
    assert_eq!(statuses.iter().map(|s| s.status).collect::<Vec<_>>(), [Status::Invalid]);
    assert_eq!(backend.calls.load(Ordering::SeqCst), calls + 1, "the payloads after it are not looked at");
    assert_eq!(*backend.verified_flags.lock().unwrap(), [false, true, true]);
    let too_many = vec![&p; MAX_NEW_PAYLOADS + 1];
    assert!(
        matches!(c.new_payloads(&too_many, true).await.unwrap_err(), EngineError::InvalidParams(m) if m.contains("at most 64"))
    );
    assert_eq!(backend.calls.load(Ordering::SeqCst), calls + 1, "refused before the backend sees it");

    let head = B256::repeat_byte(0x11);
    let (st, id) = c.forkchoice_updated(head, None, Some(&attrs(1_000))).await.unwrap();
    assert_eq!(st.status, Status::Valid);
    let (_, again) = c.forkchoice_updated(head, None, Some(&attrs(1_000))).await.unwrap();
    assert_eq!(id, again, "the same attributes on the same head give the same payload id");
    let (_, other) = c.forkchoice_updated(head, None, Some(&attrs(2_000))).await.unwrap();
    assert_ne!(id, other);
    let (st, none) = c.forkchoice_updated(head, None, None).await.unwrap();
    assert_eq!((st.status, none), (Status::Syncing, None));

    assert_eq!(
        c.forkchoice_updated(head, Some(B256::ZERO), None).await.unwrap_err(),
        EngineError::InvalidForkchoiceState("finalized is not an ancestor of head".into())
    );
    assert_eq!(
        c.forkchoice_updated(head, None, Some(&attrs(0))).await.unwrap_err(),
        EngineError::InvalidAttributes("timestamp 0".into())
    );
    assert_eq!(c.get_payload([0; 8]).await.unwrap_err(), EngineError::UnknownPayload);
    let (p, value) = c.get_payload(id.unwrap()).await.unwrap();
    assert_eq!((p, value), (payload(), U256::from(5u8)));

    let proofs = c.account_proofs(B256::repeat_byte(7), &[Address::repeat_byte(1)]).await.unwrap();
    assert_eq!(proofs[0].storage_root, B256::repeat_byte(7));
    // The server takes at most MAX_PROOF_ADDRESSES per call ...
    let too_many = proto::GetAccountProofsRequest {
        state_root: B256::ZERO.to_vec(),
        addresses: vec![Address::ZERO.to_vec(); types::MAX_PROOF_ADDRESSES + 1],
    };
    let refused = c.raw().get_account_proofs(too_many).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
    // ... and the client splits a longer list into calls the server takes, answers in order.
    let many: Vec<Address> = (0..2 * types::MAX_PROOF_ADDRESSES as u32 + 5)
        .map(|i| Address::left_padding_from(&i.to_be_bytes()))
        .collect();
    let before = backend.calls.load(Ordering::SeqCst);
    let proofs = c.account_proofs(B256::ZERO, &many).await.unwrap();
    assert_eq!(proofs.iter().map(|p| p.address).collect::<Vec<_>>(), many);
    assert_eq!(backend.calls.load(Ordering::SeqCst) - before, 3);

    // Verdicts come back one per transaction, in order, across the per-call limit.
    let order = [1u8, 2, 3, 4];
    let txs: Vec<Bytes> = (0..types::MAX_SUBMIT_TRANSACTIONS + 3)
        .map(|i| Bytes::from(vec![order[i % 4], (i % 251) as u8, (i / 251) as u8]))
        .collect();
    let before = backend.calls.load(Ordering::SeqCst);
    let verdicts = c.submit_transactions(&txs).await.unwrap();
    assert_eq!(backend.calls.load(Ordering::SeqCst) - before, 2);
    assert_eq!(verdicts.len(), txs.len());
    for (t, v) in txs.iter().zip(&verdicts) {
        let want =
            [Verdict::Added, Verdict::Known, Verdict::Invalid, Verdict::Refused][usize::from(t[0] - 1)];
        assert_eq!(v.verdict, want);
        assert_eq!(v.hash, (want != Verdict::Invalid).then(|| alloy_primitives::keccak256(t)));
    }
    let too_many = proto::SubmitTransactionsRequest {
        transactions: vec![vec![1u8]; types::MAX_SUBMIT_TRANSACTIONS + 1],
    };
    let refused = c.raw().submit_transactions(too_many).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");

    // The pool's ids, capped at the limit; transactions by id across the per-call limit, the
    // unknown ones left out, in the order asked.
    let ids = c.pooled_transaction_hashes(10).await.unwrap();
    assert_eq!(ids, (0..10).map(pooled_id).collect::<Vec<_>>());
    assert_eq!(c.pooled_transaction_hashes(100_000).await.unwrap().len(), types::MAX_POOLED_HASHES);
    let too_many = proto::PooledTransactionHashesRequest { limit: types::MAX_POOLED_HASHES as u32 + 1 };
    let refused = c.raw().pooled_transaction_hashes(too_many).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
    let mut asked: Vec<B256> = (0..types::MAX_GET_POOLED as u16 + 10).rev().map(pooled_id).collect();
    asked.insert(3, B256::repeat_byte(0xee));
    let before = backend.calls.load(Ordering::SeqCst);
    let got = c.pooled_transactions(&asked).await.unwrap();
    assert_eq!(backend.calls.load(Ordering::SeqCst) - before, 2);
    let want: Vec<B256> = asked.iter().copied().filter(|h| *h != B256::repeat_byte(0xee)).collect();
    assert_eq!(got.iter().map(|t| t.hash).collect::<Vec<_>>(), want);
    assert!(got.iter().all(|t| t.raw.as_ref() == t.hash.as_slice()));
    let too_many =
        proto::GetPooledTransactionsRequest { hashes: vec![vec![0u8; 32]; types::MAX_GET_POOLED + 1] };
    let refused = c.raw().get_pooled_transactions(too_many).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
    let short = proto::GetPooledTransactionsRequest { hashes: vec![vec![0u8; 31]] };
    let refused = c.raw().get_pooled_transactions(short).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");

    // Sync progress arrives as sent, and its end as none.
    let progress = SyncProgress { starting_block: 3, highest_block: 300 };
    c.set_sync_status(Some(progress)).await.unwrap();
    c.set_sync_status(None).await.unwrap();
    assert_eq!(*backend.sync.lock().unwrap(), vec![Some(progress), None]);

    let mut stream = Box::pin(c.subscribe_transactions().await.unwrap());
    // The subscription is registered once the call returned; a sent transaction arrives.
    let tx = PooledTx { hash: B256::repeat_byte(0x77), raw: Bytes::from_static(&[0x51]) };
    backend.txs.send(tx.clone()).unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), tx);
    handle.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_token_is_unauthenticated_and_has_no_effect() {
    let (backend, handle, _secret) = start().await;
    let wrong = EngineClient::new(&url(&handle), JwtSecret::random(), "intruder").unwrap();
    let e = wrong.forkchoice_updated(B256::repeat_byte(1), None, Some(&attrs(5))).await.unwrap_err();
    assert!(matches!(&e, EngineError::Unauthenticated(m) if m.contains("signature")), "{e}");
    assert!(matches!(wrong.exchange_capabilities().await.unwrap_err(), EngineError::Unauthenticated(_)));
    assert!(matches!(
        wrong.new_payload(&payload(), false).await.unwrap_err(),
        EngineError::Unauthenticated(_)
    ));
    assert_eq!(backend.calls.load(Ordering::SeqCst), 0, "the backend never saw a call");
    assert_eq!(*backend.last_head.lock().unwrap(), None);

    // No token at all, through the raw generated client.
    let channel = tonic::transport::Channel::from_shared(url(&handle)).unwrap().connect().await.unwrap();
    let mut raw = proto::engine_client::EngineClient::new(channel);
    let s = raw.exchange_capabilities(proto::Capabilities::default()).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    assert!(s.message().contains("missing"), "{}", s.message());
    handle.stop().await;
}

#[tokio::test]
async fn a_newer_client_gets_a_clear_version_error() {
    let (backend, handle, secret) = start().await;
    let newer = client::EngineClient::with_version(&url(&handle), secret, "qoin-cl/9", 2).unwrap();
    let e = newer.exchange_capabilities().await.unwrap_err();
    let EngineError::UnsupportedVersion(msg) = &e else { panic!("{e:?}") };
    assert!(msg.contains("recorder/1") && msg.contains("[1]") && msg.contains("version 2"), "{msg}");
    // Skipping the exchange does not help: every call is checked.
    let e = newer.new_payload(&payload(), false).await.unwrap_err();
    assert!(matches!(&e, EngineError::UnsupportedVersion(m) if m.contains("version 2")), "{e:?}");
    assert_eq!(backend.calls.load(Ordering::SeqCst), 0);
    handle.stop().await;
}

#[test]
fn malformed_fields_are_errors_not_panics() {
    let mut p = payload().to_proto();
    p.state_root = vec![1; 31];
    assert!(
        matches!(Payload::from_proto(&p), Err(EngineError::InvalidParams(m)) if m.contains("state_root"))
    );
    let bytes = payload().to_bytes();
    assert_eq!(Payload::from_bytes(&bytes).unwrap(), payload());
    assert!(Payload::from_bytes(&bytes[..bytes.len() / 2]).is_err());
    assert!(Payload::from_bytes(&[0xff; 40]).is_err());
}

#[test]
fn every_engine_error_survives_the_status_round_trip() {
    for e in [
        EngineError::UnknownPayload,
        EngineError::InvalidForkchoiceState("a".into()),
        EngineError::InvalidAttributes("b".into()),
        EngineError::InvalidParams("c".into()),
        EngineError::UnsupportedVersion("d".into()),
        EngineError::Unauthenticated("e".into()),
        EngineError::Internal("f".into()),
    ] {
        assert_eq!(EngineError::from_status(&e.to_status()), e);
    }
}
