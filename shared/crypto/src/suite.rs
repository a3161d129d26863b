use crate::CryptoError;
use std::fmt;

/// The parameter sets of a dual signature, named by one byte on the wire.
///
/// Only [`Suite::Falcon512MlDsa44`] is implemented; `0x02` is reserved for
/// Falcon-1024 + ML-DSA-87 so a future fork can raise the security level without
/// changing any encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Suite {
    /// Falcon-512 (padded, 666-byte signatures) + ML-DSA-44. NIST levels 1 and 2.
    Falcon512MlDsa44 = 0x01,
    /// Falcon-1024 + ML-DSA-87 (NIST level 5). Reserved; not accepted yet.
    Falcon1024MlDsa87 = 0x02,
}

impl Suite {
    /// The suite byte.
    pub const fn as_byte(self) -> u8 {
        self as u8
    }

    /// Parses a suite byte, rejecting unknown values.
    pub fn from_byte(b: u8) -> Result<Self, CryptoError> {
        match b {
            0x01 => Ok(Self::Falcon512MlDsa44),
            0x02 => Ok(Self::Falcon1024MlDsa87),
            other => Err(CryptoError::UnknownSuite(other)),
        }
    }

    /// Parses a suite byte and requires that this build implements it.
    pub fn supported(b: u8) -> Result<Self, CryptoError> {
        let suite = Self::from_byte(b)?;
        suite.ensure_supported()?;
        Ok(suite)
    }

    /// Errors unless this build can sign and verify with the suite.
    pub fn ensure_supported(self) -> Result<(), CryptoError> {
        match self {
            Self::Falcon512MlDsa44 => Ok(()),
            Self::Falcon1024MlDsa87 => Err(CryptoError::UnsupportedSuite(self)),
        }
    }

    /// Length of the Falcon public key.
    pub const fn falcon_pk_len(self) -> usize {
        match self {
            Self::Falcon512MlDsa44 => 897,
            Self::Falcon1024MlDsa87 => 1793,
        }
    }

    /// Length of the ML-DSA public key.
    pub const fn mldsa_pk_len(self) -> usize {
        match self {
            Self::Falcon512MlDsa44 => 1312,
            Self::Falcon1024MlDsa87 => 2592,
        }
    }

    /// Length of the (padded, fixed-length) Falcon signature.
    pub const fn falcon_sig_len(self) -> usize {
        match self {
            Self::Falcon512MlDsa44 => 666,
            Self::Falcon1024MlDsa87 => 1280,
        }
    }

    /// Length of the ML-DSA signature.
    pub const fn mldsa_sig_len(self) -> usize {
        match self {
            Self::Falcon512MlDsa44 => 2420,
            Self::Falcon1024MlDsa87 => 4627,
        }
    }

    /// Largest Falcon public key of any suite (wire-format bound).
    pub const MAX_FALCON_PK_LEN: usize = 1793;
    /// Largest ML-DSA public key of any suite (wire-format bound).
    pub const MAX_MLDSA_PK_LEN: usize = 2592;
    /// Largest Falcon signature of any suite (wire-format bound).
    pub const MAX_FALCON_SIG_LEN: usize = 1280;
    /// Largest ML-DSA signature of any suite (wire-format bound).
    pub const MAX_MLDSA_SIG_LEN: usize = 4627;
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Falcon512MlDsa44 => write!(f, "0x01 (Falcon-512 + ML-DSA-44)"),
            Self::Falcon1024MlDsa87 => write!(f, "0x02 (Falcon-1024 + ML-DSA-87)"),
        }
    }
}
