//! # qoin-consensus
//!
//! Will own the consensus client `qoin-cl`: the chain store in MDBX (headers, blocks, the
//! fork tree with cumulative work, the head), pure header validation, difficulty
//! adjustment, GHOST fork choice over generations of sibling blocks, the miner, rewards,
//! account-state sampling of the execution client, libp2p networking and sync, and
//! Prometheus metrics.
//!
//! Nothing is implemented here yet: the primitives it builds on (header, block, ticket
//! signatures, storage) live in `qoin-primitives`, `qoin-crypto` and `qoin-store`.
