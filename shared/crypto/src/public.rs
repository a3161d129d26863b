//! The two public keys of an account and the address derived from them.

use crate::error::check_len;
use crate::{CryptoError, Suite};
use alloy_primitives::{Address, B256};
use std::fmt;

/// Tag hashed in front of the public keys when deriving an address.
const ADDRESS_TAG: &[u8] = b"QOIN/ADDRESS/v1";

/// The two public keys of an account, checked for length against their suite.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKeys {
    suite: Suite,
    falcon: Vec<u8>,
    mldsa: Vec<u8>,
}

impl PublicKeys {
    /// Builds public keys from their encodings, checking the suite and both lengths.
    pub fn new(suite: Suite, falcon: Vec<u8>, mldsa: Vec<u8>) -> Result<Self, CryptoError> {
        suite.ensure_supported()?;
        check_len("Falcon public key", suite.falcon_pk_len(), falcon.len())?;
        check_len("ML-DSA public key", suite.mldsa_pk_len(), mldsa.len())?;
        // Falcon-512 public keys start with the header byte 0x00 | logn (logn = 9).
        if falcon.first() != Some(&0x09) {
            return Err(CryptoError::InvalidKey("Falcon-512 public key header"));
        }
        Ok(Self { suite, falcon, mldsa })
    }

    /// The suite of both keys.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The Falcon public key encoding.
    pub fn falcon(&self) -> &[u8] {
        &self.falcon
    }

    /// The ML-DSA public key encoding.
    pub fn mldsa(&self) -> &[u8] {
        &self.mldsa
    }

    /// The account address: the last 20 bytes of
    /// `keccak256("QOIN/ADDRESS/v1" ‖ suite ‖ falcon_pk ‖ mldsa_pk)`.
    pub fn address(&self) -> Address {
        let mut h = alloy_primitives::Keccak256::new();
        h.update(ADDRESS_TAG);
        h.update([self.suite.as_byte()]);
        h.update(&self.falcon);
        h.update(&self.mldsa);
        Address::from_word(h.finalize())
    }

    /// `keccak256(suite ‖ falcon_pk ‖ mldsa_pk)`: a 32-byte commitment to both keys.
    pub fn hash(&self) -> B256 {
        let mut h = alloy_primitives::Keccak256::new();
        h.update([self.suite.as_byte()]);
        h.update(&self.falcon);
        h.update(&self.mldsa);
        h.finalize()
    }

    /// Wire encoding: `suite ‖ falcon_pk ‖ mldsa_pk` (lengths fixed by the suite).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.falcon.len() + self.mldsa.len());
        out.push(self.suite.as_byte());
        out.extend_from_slice(&self.falcon);
        out.extend_from_slice(&self.mldsa);
        out
    }

    /// Decodes [`PublicKeys::to_bytes`], rejecting wrong lengths and unknown suites.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let (&suite, rest) = bytes.split_first().ok_or(CryptoError::Malformed("empty public keys"))?;
        let suite = Suite::supported(suite)?;
        let want = suite.falcon_pk_len() + suite.mldsa_pk_len();
        check_len("public keys", want, rest.len())?;
        let (f, m) = rest.split_at(suite.falcon_pk_len());
        Self::new(suite, f.to_vec(), m.to_vec())
    }
}

impl fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKeys({}, {})", self.suite, self.address())
    }
}
