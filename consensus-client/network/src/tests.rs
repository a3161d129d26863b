//! The wire messages: round trips, limits, and random bytes that never panic.

use crate::wire::*;
use alloy_primitives::{Address, Bloom, Bytes, B256};
use proptest::prelude::*;
use qoin_crypto::{Domain, Keypair};
use qoin_engine_api::Payload;
use qoin_primitives::Header;

pub(crate) fn header(height: u64) -> Header {
    let k = Keypair::from_seed(&[3; 32]);
    Header {
        parent_hash: B256::repeat_byte(1),
        siblings: vec![B256::repeat_byte(2)],
        height,
        timestamp_ms: 1_767_225_600_000 + height,
        difficulty: 0,
        payload_hash: B256::repeat_byte(4),
        state_root: B256::repeat_byte(5),
        transactions_root: B256::repeat_byte(6),
        coinbase: k.address(),
        miner_keys: k.public().clone(),
        extra_nonce: 7,
        ticket: k.sign(Domain::MiningTicket, b"ticket"),
        solution: [9; 16],
    }
}

pub(crate) fn payload(number: u64) -> Payload {
    Payload {
        parent_hash: B256::repeat_byte(1),
        number,
        timestamp: 1_767_225_600 + number,
        fee_recipient: Address::repeat_byte(3),
        state_root: B256::repeat_byte(5),
        receipts_root: B256::repeat_byte(6),
        logs_bloom: Bloom::default(),
        gas_limit: 30_000_000,
        gas_used: 21_000,
        base_fee_per_gas: 7,
        prev_randao: B256::repeat_byte(8),
        block_hash: B256::repeat_byte(4),
        transactions: vec![Bytes::from_static(b"\x51not-a-real-tx")],
        credits: vec![],
    }
}

fn status() -> Status {
    Status {
        chain_id: 1337,
        genesis_hash: B256::repeat_byte(0x9e),
        head_hash: B256::repeat_byte(0x11),
        head_height: 42,
        cumulative_work: 1 << 100,
    }
}

#[test]
fn every_message_round_trips() {
    for r in [
        Request::Status(status()),
        Request::HeadersByRange { start: 5, count: MAX_HEADERS_PER_REQUEST },
        Request::HeadersByHash(vec![B256::repeat_byte(1); 3]),
        Request::PayloadsByHash(vec![B256::repeat_byte(2); MAX_HASHES_PER_REQUEST]),
        Request::PoolHashes,
        Request::TransactionsByHash(vec![B256::repeat_byte(3); MAX_TXS_PER_REQUEST]),
    ] {
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
    }
    // (Falcon signatures are randomised: each value is built once and compared with itself.)
    for r in [
        Response::Status(status()),
        Response::Headers(vec![header(1), header(2)]),
        Response::Payloads(vec![payload(1)]),
        Response::Refused("rate limited".into()),
        Response::TransactionHashes(vec![B256::repeat_byte(4); MAX_POOL_HASHES]),
        Response::Transactions(vec![Bytes::from_static(b"\x51a transaction"); MAX_TXS_PER_REQUEST]),
    ] {
        assert_eq!(Response::decode(&r.encode().unwrap()).unwrap(), r);
    }
    let b = GossipBlock { header: header(3), payload: payload(3) };
    assert_eq!(GossipBlock::decode(&b.encode().unwrap()).unwrap(), b);
    // Payloads sent as a store holds them are the same bytes on the wire as typed ones.
    let (p1, p2) = (payload(1), payload(2));
    let stored = Response::StoredPayloads(vec![p1.to_bytes().into(), p2.to_bytes().into()]);
    let typed = Response::Payloads(vec![p1, p2]);
    assert_eq!(stored.encode().unwrap(), typed.encode().unwrap());
    assert_eq!(Response::decode(&stored.encode().unwrap()).unwrap(), typed);
}

#[test]
fn limits_are_enforced_before_decoding() {
    let too_many = Request::HeadersByRange { start: 0, count: MAX_HEADERS_PER_REQUEST + 1 };
    assert!(matches!(Request::decode(&too_many.encode()), Err(WireError::TooMany { .. })));
    let hashes = Request::PayloadsByHash(vec![B256::ZERO; MAX_HASHES_PER_REQUEST + 1]);
    assert!(matches!(Request::decode(&hashes.encode()), Err(WireError::TooMany { .. })));
    let big = vec![0u8; MAX_REQUEST_BYTES + 1];
    assert!(matches!(Request::decode(&big), Err(WireError::TooLarge { .. })));
    let txs = Request::TransactionsByHash(vec![B256::ZERO; MAX_TXS_PER_REQUEST + 1]);
    assert!(matches!(Request::decode(&txs.encode()), Err(WireError::TooMany { .. })));
    let ids = Response::TransactionHashes(vec![B256::ZERO; MAX_POOL_HASHES + 1]);
    assert!(matches!(Response::decode(&ids.encode().unwrap()), Err(WireError::TooMany { .. })));
    let txs = Response::Transactions(vec![Bytes::new(); MAX_TXS_PER_REQUEST + 1]);
    assert!(matches!(Response::decode(&txs.encode().unwrap()), Err(WireError::TooMany { .. })));
    let huge = Response::Transactions(vec![Bytes::from(vec![0x51; MAX_GOSSIP_TX_BYTES + 1])]);
    assert!(matches!(Response::decode(&huge.encode().unwrap()), Err(WireError::TooLarge { .. })));
    let big = vec![0u8; MAX_GOSSIP_BLOCK_BYTES + 1];
    assert!(matches!(GossipBlock::decode(&big), Err(WireError::TooLarge { .. })));
    // A short hash is a field error, not a panic.
    let p = proto::Request {
        kind: Some(proto::request::Kind::HeadersByHash(proto::ByHash { hashes: vec![vec![1, 2, 3]] })),
    };
    assert!(matches!(Request::decode(&prost::Message::encode_to_vec(&p)), Err(WireError::Field(_))));
    assert!(matches!(Request::decode(&[]), Err(WireError::Field("request.kind"))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Request::decode(&bytes);
        let _ = Response::decode(&bytes);
        let _ = GossipBlock::decode(&bytes);
    }

    #[test]
    fn mutated_blocks_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = GossipBlock { header: header(3), payload: payload(3) }.encode().unwrap();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let _ = GossipBlock::decode(&bytes);
    }
}

// ---- two real nodes over loopback ----

mod swarm {
    use super::*;
    use crate::service::{read_deny_list, start, GossipVerdict, NetworkConfig, NetworkEvent, NetworkHandle};
    use libp2p::{Multiaddr, PeerId};
    use std::collections::HashSet;
    use std::time::Duration;
    use tokio::sync::{mpsc, watch};

    fn config(dir: &std::path::Path, chain_id: u64, bootnodes: Vec<Multiaddr>) -> NetworkConfig {
        NetworkConfig {
            key_path: dir.join("node.key"),
            listen: vec![
                "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
                "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
            ],
            bootnodes,
            max_inbound: 16,
            max_outbound: 16,
            chain_id,
            genesis_hash: status().genesis_hash,
            deny_file: None,
            inbound_delay: Duration::ZERO,
        }
    }

    struct Node {
        _dir: tempfile::TempDir,
        handle: NetworkHandle,
        events: mpsc::Receiver<NetworkEvent>,
        status: watch::Sender<Status>,
    }

    async fn node(chain_id: u64, bootnodes: Vec<Multiaddr>, quic_first: bool) -> (Node, Multiaddr) {
        delayed_node(chain_id, bootnodes, quic_first, Duration::ZERO).await
    }

    async fn delayed_node(
        chain_id: u64,
        bootnodes: Vec<Multiaddr>,
        quic_first: bool,
        delay: Duration,
    ) -> (Node, Multiaddr) {
        let dir = tempfile::tempdir().unwrap();
        let (status_tx, status_rx) = watch::channel(Status { chain_id, ..status() });
        let config = NetworkConfig { inbound_delay: delay, ..config(dir.path(), chain_id, bootnodes) };
        let (handle, events) = start(&config, status_rx, None).unwrap();
        let addr = loop {
            let addrs = handle.listen_addrs().await.unwrap();
            let want = if quic_first { "quic" } else { "tcp" };
            if let Some(a) = addrs.iter().find(|a| a.to_string().contains(want)) {
                break a.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        (Node { _dir: dir, handle, events, status: status_tx }, addr)
    }

    async fn next_event<T>(n: &mut Node, secs: u64, mut pick: impl FnMut(NetworkEvent) -> Option<T>) -> T {
        tokio::time::timeout(Duration::from_secs(secs), async {
            loop {
                if let Some(t) = pick(n.events.recv().await.expect("network stopped")) {
                    return t;
                }
            }
        })
        .await
        .expect("timed out waiting for a network event")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_meet_answer_sync_requests_and_gossip_blocks() {
        for quic in [false, true] {
            let (mut a, a_addr) = node(1337, vec![], quic).await;
            let (mut b, _) = node(1337, vec![a_addr], quic).await;
            // Each learns the other's status.
            let seen = next_event(&mut b, 20, |e| match e {
                NetworkEvent::PeerStatus { peer, status } => Some((peer, status)),
                _ => None,
            })
            .await;
            assert_eq!(seen.0, a.handle.peer_id());
            assert_eq!(seen.1.head_height, 42);
            next_event(&mut a, 20, |e| matches!(e, NetworkEvent::PeerStatus { .. }).then_some(())).await;

            // B asks A for headers; A's node answers from its "store".
            let a_id = a.handle.peer_id();
            let asking = tokio::spawn({
                let b = b.handle.clone();
                async move { b.request(a_id, Request::HeadersByRange { start: 1, count: 2 }).await }
            });
            let (peer, channel) = next_event(&mut a, 20, |e| match e {
                NetworkEvent::Request {
                    peer,
                    request: Request::HeadersByRange { start: 1, count: 2 },
                    channel,
                } => Some((peer, channel)),
                _ => None,
            })
            .await;
            assert_eq!(peer, b.handle.peer_id());
            // (Falcon signatures are randomised: build the headers once.)
            let headers = vec![header(1), header(2)];
            a.handle.respond(channel, Response::Headers(headers.clone())).await.unwrap();
            let answer = asking.await.unwrap().unwrap();
            assert_eq!(answer, Response::Headers(headers));

            // A gossips a block; B receives it once the subscriptions are exchanged.
            let block = GossipBlock { header: header(7), payload: payload(7) };
            let got = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    a.handle.publish_block(&block).await.unwrap();
                    match tokio::time::timeout(Duration::from_millis(500), b.events.recv()).await {
                        Ok(Some(NetworkEvent::Block { id, source, block })) => return (id, source, block),
                        _ => continue,
                    }
                }
            })
            .await
            .expect("the block arrived");
            assert_eq!(*got.2, block);
            assert_eq!(got.1, a.handle.peer_id());
            b.handle.report(got.0, got.1, GossipVerdict::Accept).await.unwrap();

            if !quic {
                // A's head moves with no gossip B could hear: the periodic status exchange
                // (about every 10 s) still tells B, on the connection it already has.
                let moved = Status { head_height: 99, cumulative_work: 1 << 40, ..*a.status.borrow() };
                a.status.send_replace(moved);
                let heard = next_event(&mut b, 25, |e| match e {
                    NetworkEvent::PeerStatus { peer, status } if status.head_height == 99 => {
                        Some((peer, status))
                    }
                    _ => None,
                })
                .await;
                assert_eq!(heard, (a.handle.peer_id(), moved));
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_of_another_chain_is_banned() {
        let (mut a, a_addr) = node(1337, vec![], false).await;
        let (c, _) = node(7, vec![a_addr], false).await;
        let c_id = c.handle.peer_id();
        let a_id = a.handle.peer_id();
        // Each side sees the other's status; whichever reads it first bans the other and
        // disconnects (so the other may never read one). A never reports C as a peer of its
        // chain.
        tokio::time::timeout(Duration::from_secs(20), async {
            while !a.handle.banned().await.unwrap().contains(&c_id)
                && !c.handle.banned().await.unwrap().contains(&a_id)
            {
                if let Ok(Some(NetworkEvent::PeerStatus { peer, .. })) =
                    tokio::time::timeout(Duration::from_millis(100), a.events.recv()).await
                {
                    assert_ne!(peer, c_id, "a peer of chain 7 was taken for chain 1337");
                }
            }
        })
        .await
        .expect("the peer of another chain was banned");
        tokio::time::timeout(Duration::from_secs(10), async {
            while a.handle.peers().await.unwrap().contains(&c_id) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("and disconnected");
        // And it cannot come back: a request from C fails.
        let r = c.handle.request(a.handle.peer_id(), Request::HeadersByRange { start: 0, count: 1 }).await;
        assert!(r.is_err(), "{r:?}");
    }

    async fn wait_peers(n: &Node, want: impl Fn(&[PeerId]) -> bool, secs: u64, what: &str) {
        tokio::time::timeout(Duration::from_secs(secs), async {
            while !want(&n.handle.peers().await.unwrap()) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_denied_peer_is_cut_off_and_comes_back_when_the_list_is_lifted() {
        let (a, a_addr) = node(1337, vec![], false).await;
        let (b, _) = node(1337, vec![a_addr], false).await;
        let (a_id, b_id) = (a.handle.peer_id(), b.handle.peer_id());
        wait_peers(&a, |p| p.contains(&b_id), 20, "the two meet").await;
        a.handle.deny(HashSet::from([b_id])).await.unwrap();
        wait_peers(&a, |p| !p.contains(&b_id), 10, "the denied peer is disconnected").await;
        wait_peers(&b, |p| !p.contains(&a_id), 10, "on both sides").await;
        let r = b.handle.request(a_id, Request::HeadersByRange { start: 0, count: 1 }).await;
        assert!(r.is_err(), "a denied peer cannot reach us: {r:?}");
        // Lifted: B dials its bootnode again on its next tick (every 10 s).
        a.handle.deny(HashSet::new()).await.unwrap();
        wait_peers(&b, |p| p.contains(&a_id), 25, "the peer comes back once the list is lifted").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_test_delay_holds_every_inbound_message() {
        let delay = Duration::from_millis(400);
        let (mut a, a_addr) = node(1337, vec![], false).await;
        let (mut b, _) = delayed_node(1337, vec![a_addr], false, delay).await;
        next_event(&mut b, 20, |e| matches!(e, NetworkEvent::PeerStatus { .. }).then_some(())).await;
        next_event(&mut a, 20, |e| matches!(e, NetworkEvent::PeerStatus { .. }).then_some(())).await;
        let (a_id, b_id) = (a.handle.peer_id(), b.handle.peer_id());

        // B's answer from A is held: the round trip takes at least the delay.
        let started = std::time::Instant::now();
        let asking = tokio::spawn({
            let b = b.handle.clone();
            async move { b.request(a_id, Request::HeadersByRange { start: 1, count: 1 }).await }
        });
        let channel = next_event(&mut a, 20, |e| match e {
            NetworkEvent::Request { channel, .. } => Some(channel),
            _ => None,
        })
        .await;
        assert!(started.elapsed() < delay, "A (no delay) sees the request at once");
        a.handle.respond(channel, Response::Headers(vec![])).await.unwrap();
        assert_eq!(asking.await.unwrap().unwrap(), Response::Headers(vec![]));
        assert!(started.elapsed() >= delay, "the answer was held: {:?}", started.elapsed());

        // A's request reaches B's node only after the delay.
        let started = std::time::Instant::now();
        let asking = tokio::spawn({
            let a = a.handle.clone();
            async move { a.request(b_id, Request::HeadersByRange { start: 1, count: 1 }).await }
        });
        let channel = next_event(&mut b, 20, |e| match e {
            NetworkEvent::Request { channel, .. } => Some(channel),
            _ => None,
        })
        .await;
        assert!(started.elapsed() >= delay, "the request was held: {:?}", started.elapsed());
        b.handle.respond(channel, Response::Headers(vec![])).await.unwrap();
        assert_eq!(asking.await.unwrap().unwrap(), Response::Headers(vec![]));
    }

    #[test]
    fn deny_lists_read_peer_ids_and_multiaddrs_and_refuse_a_bad_line_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deny");
        assert!(read_deny_list(&path).unwrap().is_empty(), "no file: nobody denied");
        let (p1, p2) = (PeerId::random(), PeerId::random());
        std::fs::write(&path, format!("# partition\n{p1}\n\n  /ip4/127.0.0.1/tcp/1/p2p/{p2}  \n")).unwrap();
        assert_eq!(read_deny_list(&path).unwrap(), HashSet::from([p1, p2]));
        std::fs::write(&path, format!("{p1}\n/ip4/127.0.0.1/tcp/1\n")).unwrap();
        let e = read_deny_list(&path).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}

/// A port another program holds: the node refuses to start and says why (the transport's own
/// error says nothing; the reason is in its source).
#[tokio::test]
async fn a_port_in_use_is_named_in_the_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = crate::NetworkConfig {
        key_path: dir.path().join("node.key"),
        listen: vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()],
        bootnodes: vec![],
        max_inbound: 8,
        max_outbound: 8,
        chain_id: 1337,
        genesis_hash: B256::repeat_byte(0x9e),
        deny_file: None,
        inbound_delay: std::time::Duration::ZERO,
    };
    let (_, status) = tokio::sync::watch::channel(status());
    let Err(e) = crate::start(&config, status, None) else { panic!("listened on a port in use") };
    let text = e.to_string();
    assert!(text.contains(&format!("/tcp/{port}")) && text.to_lowercase().contains("in use"), "{text}");
}
