//! Parallel verification of many dual signatures.

use crate::{verify, CryptoError, Domain, DualSignature, PublicKeys};
use rayon::prelude::*;

/// One signature to check in a batch.
#[derive(Debug, Clone, Copy)]
pub struct VerifyItem<'a> {
    /// The signer's public keys.
    pub keys: &'a PublicKeys,
    /// The domain the signature was made in.
    pub domain: Domain,
    /// The signed message (without the domain prefix).
    pub msg: &'a [u8],
    /// The dual signature.
    pub sig: &'a DualSignature,
}

/// Verifies every item on rayon's pool (all cores) and returns one result per item, in order.
///
/// Falcon and ML-DSA verification are independent per item, so the batch scales with the
/// number of cores; there is no cross-item shortcut, so one bad item never hides another.
pub fn verify_batch(items: &[VerifyItem<'_>]) -> Vec<Result<(), CryptoError>> {
    items.par_iter().with_min_len(8).map(|it| verify(it.keys, it.domain, it.msg, it.sig)).collect()
}
