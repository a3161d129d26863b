use crate::Suite;

/// Everything that can be wrong with a key, a signature or its encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The suite byte names no suite this node knows.
    #[error("unknown signature suite {0:#04x}")]
    UnknownSuite(u8),
    /// The suite is known but this build does not implement it yet.
    #[error("signature suite {0} is reserved and not yet supported")]
    UnsupportedSuite(Suite),
    /// The public keys and the signature name different suites.
    #[error("signature suite {signature} does not match the key suite {key}")]
    SuiteMismatch {
        /// Suite of the public keys.
        key: Suite,
        /// Suite of the signature.
        signature: Suite,
    },
    /// A key or signature has the wrong length for its suite.
    #[error("{what} must be {expected} bytes, got {got}")]
    BadLength {
        /// Which component (e.g. "Falcon-512 public key").
        what: &'static str,
        /// Length the suite requires.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// A public key is the right length but not a valid encoding.
    #[error("invalid {0} encoding")]
    InvalidKey(&'static str),
    /// The Falcon half of a dual signature does not verify.
    #[error("Falcon-512 signature does not verify")]
    FalconInvalid,
    /// The ML-DSA half of a dual signature does not verify.
    #[error("ML-DSA-44 signature does not verify")]
    MlDsaInvalid,
    /// A byte string could not be decoded (truncated, trailing bytes, bad prefix).
    #[error("malformed encoding: {0}")]
    Malformed(&'static str),
}

/// `Ok` when a component has the length its suite requires.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), CryptoError> {
    if expected == got {
        Ok(())
    } else {
        Err(CryptoError::BadLength { what, expected, got })
    }
}
