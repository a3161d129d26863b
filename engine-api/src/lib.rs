//! # qoin-engine-api
//!
//! Will own the engine API between `qoin-cl` and `qoin-el`: `proto/engine.proto`, the tonic
//! server (run inside `qoin-el`) and client (used by `qoin-cl`), JWT (HS256) authentication
//! with a shared secret file, and version/capability negotiation. The methods are
//! `ExchangeCapabilities`, `NewPayload`, `ForkchoiceUpdated`, `GetPayload`,
//! `GetAccountProofs` and a stream of new local transactions, with Ethereum's status
//! semantics (VALID / INVALID / SYNCING / ACCEPTED).
//!
//! Nothing is implemented here yet: this crate is filled by the engine-API work, which
//! builds on the execution client. It exists now so the workspace has its final shape.
