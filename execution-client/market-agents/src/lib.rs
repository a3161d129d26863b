//! # qoin-market-agents
//!
//! Owns the programs that trade through the market contracts (spec §17), over a node's
//! JSON-RPC and plain HTTP between the parties:
//!
//! - `qoin-provider storage`: a storage provider. It keeps an ask open, takes bids (and
//!   reopened slots) that fit it, receives the client's coded file over HTTP and checks it
//!   against the bid's Merkle root, proves every period from the chain's own headers, repairs
//!   a retaken slot from a surviving replica, serves chunks with their Merkle paths, ends its
//!   deals, and resumes after a restart from its data directory;
//! - `qoin-market storage put | get | status`: the client side of a storage deal.
//!
//! [`node`] is the JSON-RPC client (WebSocket: requests and `eth_subscribe`), [`wallet`] the
//! post-quantum key that signs, [`transfer`] the HTTP routes and fetches both sides share.

pub mod cli;
pub mod client;
pub mod node;
pub mod storage_provider;
pub mod transfer;
pub mod wallet;
