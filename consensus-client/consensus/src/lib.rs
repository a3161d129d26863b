//! # qoin-consensus
//!
//! Owns Qoin's consensus rules as pure, I/O-free functions over plain data (as lighthouse
//! keeps its `consensus/` crates), so they are tested with hand-built chains and random bytes
//! without a network or a disk:
//!
//! - [`params`]: the chain parameters the rules read, the difficulty of a child block, the
//!   reward schedule and the credits a block pays (siblings' miners included);
//! - [`validate`]: a header against its parent, siblings and the parameters (structure,
//!   height, time, difficulty, siblings, proof of work, ticket signature), then the payload
//!   against the header;
//! - [`forkchoice`]: GHOST, the heaviest subtree, over generations of siblings.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod forkchoice;
pub mod params;
pub mod validate;

#[cfg(test)]
mod tests;
