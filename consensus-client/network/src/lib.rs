//! # qoin-cl-network
//!
//! Owns the consensus client's peer-to-peer network (spec §16), on libp2p:
//!
//! - transports: TCP with Noise and Yamux, and QUIC (whose TLS 1.3 prefers the hybrid
//!   `X25519MLKEM768` key exchange); the node key kept in the data directory ([`key`]);
//! - discovery: identify and a private Kademlia DHT seeded by `--bootnodes`;
//! - gossip: gossipsub topics for blocks and transactions, message ids from the content,
//!   every message validated by the node before it is forwarded ([`NetworkEvent`],
//!   [`GossipVerdict`]);
//! - sync: a request-response protocol (status, headers by range and by hash, payloads by
//!   hash) with a size limit on every frame and a cap on every request ([`wire`], [`codec`]);
//! - peer scores, bans and request rate limits ([`peers`]);
//! - rust-libp2p's metrics (transport bytes, connections, gossipsub, identify, Kademlia) in
//!   the node's registry;
//! - for test networks, a delay on every inbound message (`NetworkConfig::inbound_delay`),
//!   and free loopback ports ([`ports`]).
//!
//! It owns no chain data: the node answers peers' requests and validates what they send.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod codec;
pub mod key;
pub mod peers;
pub mod ports;
pub mod service;
pub mod wire;

pub use libp2p::{gossipsub::MessageId, request_response::ResponseChannel, Multiaddr, PeerId};
pub use peers::Penalty;
pub use service::{
    read_deny_list, start, DenyListError, GossipVerdict, NetworkConfig, NetworkError, NetworkEvent,
    NetworkHandle, RequestError,
};
pub use wire::{GossipBlock, Request, Response, Status};

#[cfg(test)]
mod tests;
