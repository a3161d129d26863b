//! # qoin-crypto
//!
//! Owns Qoin's post-quantum cryptography:
//!
//! - the **dual signature**: every signature is a Falcon-512 signature *and* an ML-DSA-44
//!   signature over the same domain-separated message; it verifies only if both verify
//!   ([`DualSignature`], [`Keypair::sign`], [`verify`]);
//! - the **suite byte** ([`Suite`]) that names the parameter sets, leaving room for
//!   Falcon-1024 + ML-DSA-87;
//! - **domain separation** between transaction signatures and mining tickets ([`Domain`]);
//! - **addresses**: the last 20 bytes of keccak256 over a tag, the suite and both public keys
//!   ([`PublicKeys::address`]);
//! - deterministic key derivation from a 32-byte seed ([`Keypair::from_seed`]);
//! - **batch verification** across all cores with rayon ([`verify_batch`]);
//! - the **encrypted keystore** file (argon2id + XChaCha20-Poly1305, [`keystore`]).
//!
//! Signing uses PQClean through `pqcrypto-falcon` (the fixed-length "padded" Falcon-512
//! encoding, 666-byte signatures) and `pqcrypto-mldsa`; verification uses `pqcrypto-mldsa` for
//! ML-DSA-44 and `fn-dsa-vrfy` (original-Falcon mode, cross-checked against PQClean) for
//! Falcon-512, the fastest of the implementations measured side by side. Seeded key
//! generation uses the pure-Rust `fn-dsa-kgen` (Falcon) and `fips204` (ML-DSA) generators,
//! whose key encodings are the standard ones PQClean reads; a test checks the two agree.
//!
//! Nothing in this crate panics on untrusted bytes: every length, suite and encoding is
//! checked and reported as a [`CryptoError`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod batch;
mod domain;
mod error;
mod keys;
pub mod keystore;
mod public;
mod signature;
mod suite;

pub use batch::{verify_batch, VerifyItem};
pub use domain::{is_domain_message, signing_message, Domain};
pub use error::CryptoError;
pub use keys::{Keypair, SEED_LEN};
pub use public::PublicKeys;
pub use signature::{verify, verify_falcon512, verify_mldsa44, DualSignature};
pub use suite::Suite;

/// keccak256 of `data`, the hash used for addresses and transaction ids.
pub fn keccak256(data: impl AsRef<[u8]>) -> alloy_primitives::B256 {
    alloy_primitives::keccak256(data)
}

#[cfg(test)]
mod tests;
