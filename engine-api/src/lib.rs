//! # qoin-engine-api
//!
//! Owns the engine API between `qoin-cl` and `qoin-el`. Today: [`jwt`], the HS256
//! authentication every engine call carries (a 32-byte hex secret file shared by both
//! programs, generated if absent; `iat` within ±60 s), as Ethereum's engine API does it.
//!
//! Still to come here (the engine-API work): `proto/engine.proto`, the tonic server (run
//! inside `qoin-el`) and client (used by `qoin-cl`) for `ExchangeCapabilities`, `NewPayload`,
//! `ForkchoiceUpdated`, `GetPayload`, `GetAccountProofs` and the stream of new local
//! transactions, with Ethereum's status semantics (VALID / INVALID / SYNCING / ACCEPTED) and
//! version negotiation.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod jwt;
