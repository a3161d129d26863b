//! # qoin-engine-api
//!
//! Owns the engine API between `qoin-cl` and `qoin-el` (spec §15): the protocol in
//! `proto/engine.proto` (gRPC, generated with tonic), its values as checked Rust types
//! ([`types`]), the server the execution client runs ([`server::serve`] over an
//! [`server::EngineBackend`]), the client the consensus client uses ([`client::EngineClient`]),
//! and [`jwt`], the HS256 authentication every call carries (a 32-byte hex secret file shared
//! by both programs, generated if absent; `iat` within ±60 s), as Ethereum's engine API does.
//!
//! Semantics follow Ethereum's engine API: payload statuses VALID / INVALID (with the latest
//! valid hash) / SYNCING / ACCEPTED; unknown payload id, invalid forkchoice state and invalid
//! payload attributes as distinct errors (distinct gRPC codes and a `qoin-engine-error`
//! metadata name); equal attributes on the same head give the same payload id. Every call
//! carries `qoin-engine-version`, and `ExchangeCapabilities` lets a client refuse a server
//! that speaks another version with a message naming both.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod client;
pub mod jwt;
pub mod server;
pub mod types;

/// The generated protobuf messages and gRPC stubs (package `qoin.engine.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic, rust_2018_idioms)]
pub mod proto {
    tonic::include_proto!("qoin.engine.v1");
}

pub use client::EngineClient;
pub use server::{serve, EngineBackend, ServerHandle};
pub use types::{
    AccountProof, Attributes, Credit, EngineError, Payload, PayloadId, PayloadStatus, PooledTx, Status,
    SyncProgress, TxVerdict, Verdict, MAX_GET_POOLED, MAX_NEW_PAYLOADS, MAX_POOLED_HASHES,
    MAX_PROOF_ADDRESSES, MAX_SUBMIT_TRANSACTIONS,
};

#[cfg(test)]
mod tests;
