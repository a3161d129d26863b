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
//! - `qoin-market storage put | get | status`: the client side of a storage deal;
//! - `qoin-provider compute`: a compute provider. It keeps an ask open, takes the jobs that
//!   fit it, receives their module and input over HTTP (checked against the job's hashes),
//!   runs them with the deterministic runner, commits and reveals the result, settles, and
//!   serves the result; it resumes from its data directory;
//! - `qoin-provider mediator`: a mediator. It registers its fee, takes the files of the jobs
//!   naming it, and re-runs a job when mediation is requested, posting the true result;
//! - `qoin-market compute submit | result | dispute | status`: the client side of a job.
//!
//! [`node`] is the JSON-RPC client (WebSocket: requests and `eth_subscribe`), [`wallet`] the
//! post-quantum key that signs, [`transfer`] the HTTP reads both sides share, [`job_store`]
//! the compute jobs' files and routes, [`disk`] the data directories' files, [`daemon`] the
//! daemons' loop and server, [`deal_file`] a storage deal's file on disk.

pub mod cli;
pub mod client;
pub mod compute_client;
pub mod compute_provider;
pub mod daemon;
pub mod deal_file;
pub mod disk;
pub mod job_store;
pub mod mediator;
pub mod node;
pub mod storage_provider;
pub mod transfer;
pub mod wallet;
