//! Key pairs: seeded key derivation and signing with both schemes.

use crate::domain::signing_message;
use crate::{CryptoError, Domain, DualSignature, PublicKeys, Suite};
use alloy_primitives::Address;
use pqcrypto_falcon::falconpadded512 as falcon;
use pqcrypto_mldsa::mldsa44 as mldsa;
use pqcrypto_traits::sign::SecretKey as _;
use sha3::digest::{ExtendableOutput, Update, XofReader};
use std::fmt;
use zeroize::Zeroizing;

/// Length of the master seed a key pair is derived from.
pub const SEED_LEN: usize = 32;

/// Tags that separate the two per-scheme seeds derived from one master seed.
const FALCON_KEYGEN_TAG: &[u8] = b"QOIN/KEYGEN/FALCON-512/v1";
const MLDSA_KEYGEN_TAG: &[u8] = b"QOIN/KEYGEN/ML-DSA-44/v1";

/// A dual key pair: Falcon-512 and ML-DSA-44 secret keys with their public keys.
pub struct Keypair {
    public: PublicKeys,
    address: Address,
    falcon_sk: falcon::SecretKey,
    mldsa_sk: mldsa::SecretKey,
}

impl Keypair {
    /// Derives a key pair deterministically from a 32-byte master seed.
    ///
    /// The Falcon seed is `SHAKE256("QOIN/KEYGEN/FALCON-512/v1" ‖ seed)[..32]`, fed to the
    /// NTRU key generator of `fn-dsa-kgen` (its `keygen` draws exactly these 32 bytes);
    /// the ML-DSA seed ξ is `SHAKE256("QOIN/KEYGEN/ML-DSA-44/v1" ‖ seed)[..32]`, fed to
    /// FIPS 204 `ML-DSA.KeyGen_internal`. The same seed always gives the same address.
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Self {
        use fn_dsa_kgen::KeyPairGenerator as _;
        let falcon_seed = derive_seed(FALCON_KEYGEN_TAG, seed);

        let mut kg = fn_dsa_kgen::KeyPairGenerator512::default();
        let mut falcon_sk =
            Zeroizing::new(vec![0u8; fn_dsa_kgen::sign_key_size(fn_dsa_kgen::FN_DSA_LOGN_512)]);
        let mut falcon_pk = vec![0u8; fn_dsa_kgen::vrfy_key_size(fn_dsa_kgen::FN_DSA_LOGN_512)];
        let mut rng = FixedSeed { seed: falcon_seed, used: false };
        kg.keygen(fn_dsa_kgen::FN_DSA_LOGN_512, &mut rng, &mut falcon_sk, &mut falcon_pk);

        let (mldsa_pk, mldsa_sk) = mldsa_from_seed(seed);
        Self::from_parts(falcon_pk, &falcon_sk, mldsa_pk, &mldsa_sk)
            .unwrap_or_else(|e| unreachable!("generated keys have the suite's lengths: {e}"))
    }

    /// A key pair from a master seed and a Falcon-512 secret key made elsewhere: the ML-DSA
    /// keys come from the seed (§2.5 of the spec), the Falcon keys from `falcon_sk` (the
    /// standard 1,281-byte encoding, header byte `0x59`), whatever generator made it. This is
    /// what a version-2 keystore carries, so keys made by an implementation without
    /// `fn-dsa-kgen` (qoin-js, on noble's round-3 generator) load here with their address.
    pub fn from_seed_and_falcon_key(seed: &[u8; SEED_LEN], falcon_sk: &[u8]) -> Result<Self, CryptoError> {
        use fn_dsa_sign::SigningKey as _;
        let invalid = CryptoError::InvalidKey("Falcon-512 secret key");
        if falcon_sk.len() != fn_dsa_kgen::sign_key_size(fn_dsa_kgen::FN_DSA_LOGN_512) {
            return Err(invalid);
        }
        let key = fn_dsa_sign::SigningKey512::decode(falcon_sk).ok_or(invalid)?;
        let mut falcon_pk = vec![0u8; fn_dsa_kgen::vrfy_key_size(fn_dsa_kgen::FN_DSA_LOGN_512)];
        key.to_verifying_key(&mut falcon_pk);
        let (mldsa_pk, mldsa_sk) = mldsa_from_seed(seed);
        let keypair = Self::from_parts(falcon_pk, falcon_sk, mldsa_pk, &mldsa_sk)?;
        // The public key comes from f and g alone, and decoding is not a check of the key
        // equation fG - gF = q (it may or may not refuse an altered F): a key whose F was
        // altered could give the right address and then sign wrongly. One signature and its
        // check catch it (~0.3 ms, at load).
        const PROBE: &[u8] = b"QOIN/KEY-CHECK/v1";
        let probe = keypair.sign(Domain::Contract, PROBE);
        crate::verify(keypair.public(), Domain::Contract, PROBE, &probe).map_err(|_| {
            CryptoError::InvalidKey("Falcon-512 secret key (it does not sign for its public key)")
        })?;
        Ok(keypair)
    }

    /// The Falcon-512 secret key in its standard encoding (1,281 bytes), as a version-2
    /// keystore stores it.
    pub(crate) fn falcon_secret_key(&self) -> &[u8] {
        self.falcon_sk.as_bytes()
    }

    /// A fresh key pair from the operating system's randomness, with the seed it came from.
    pub fn generate() -> (Self, Zeroizing<[u8; SEED_LEN]>) {
        use rand_core::RngCore as _;
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        rand_core::OsRng.fill_bytes(seed.as_mut());
        (Self::from_seed(&seed), seed)
    }

    fn from_parts(
        falcon_pk: Vec<u8>,
        falcon_sk: &[u8],
        mldsa_pk: Vec<u8>,
        mldsa_sk: &[u8],
    ) -> Result<Self, CryptoError> {
        let suite = Suite::Falcon512MlDsa44;
        let public = PublicKeys::new(suite, falcon_pk, mldsa_pk)?;
        let falcon_sk = falcon::SecretKey::from_bytes(falcon_sk)
            .map_err(|_| CryptoError::InvalidKey("Falcon-512 secret key"))?;
        let mldsa_sk = mldsa::SecretKey::from_bytes(mldsa_sk)
            .map_err(|_| CryptoError::InvalidKey("ML-DSA-44 secret key"))?;
        Ok(Self { address: public.address(), public, falcon_sk, mldsa_sk })
    }

    /// The public keys.
    pub fn public(&self) -> &PublicKeys {
        &self.public
    }

    /// The account address (see [`PublicKeys::address`]).
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs `msg` under `domain` with both schemes.
    pub fn sign(&self, domain: Domain, msg: &[u8]) -> DualSignature {
        let m = signing_message(domain, msg);
        let f = pqcrypto_falcon::falconpadded512::detached_sign(&m, &self.falcon_sk);
        let d = pqcrypto_mldsa::mldsa44::detached_sign(&m, &self.mldsa_sk);
        use pqcrypto_traits::sign::DetachedSignature as _;
        DualSignature::from_parts_unchecked(self.public.suite(), f.as_bytes().to_vec(), d.as_bytes().to_vec())
    }

    /// A Falcon-512 signature (padded, 666 bytes) over the bare message `msg`, without a
    /// domain prefix: what [`crate::verify_falcon512`] and the Falcon precompile check.
    pub fn sign_falcon_bare(&self, msg: &[u8]) -> Vec<u8> {
        use pqcrypto_traits::sign::DetachedSignature as _;
        pqcrypto_falcon::falconpadded512::detached_sign(msg, &self.falcon_sk).as_bytes().to_vec()
    }

    /// An ML-DSA-44 signature over the bare message `msg` (empty context), without a domain
    /// prefix: what [`crate::verify_mldsa44`] and the ML-DSA precompile check.
    pub fn sign_mldsa_bare(&self, msg: &[u8]) -> Vec<u8> {
        use pqcrypto_traits::sign::DetachedSignature as _;
        pqcrypto_mldsa::mldsa44::detached_sign(msg, &self.mldsa_sk).as_bytes().to_vec()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.address)
    }
}

/// The ML-DSA-44 key pair of a master seed: ξ = `SHAKE256("QOIN/KEYGEN/ML-DSA-44/v1" ‖ seed)[..32]`.
fn mldsa_from_seed(seed: &[u8; SEED_LEN]) -> (Vec<u8>, Zeroizing<Vec<u8>>) {
    use fips204::traits::{KeyGen as _, SerDes as _};
    let (pk, sk) = fips204::ml_dsa_44::KG::keygen_from_seed(&derive_seed(MLDSA_KEYGEN_TAG, seed));
    (pk.into_bytes().to_vec(), Zeroizing::new(sk.into_bytes().to_vec()))
}

fn derive_seed(tag: &[u8], seed: &[u8; SEED_LEN]) -> [u8; 32] {
    let mut xof = sha3::Shake256::default();
    xof.update(tag);
    xof.update(seed);
    let mut out = [0u8; 32];
    xof.finalize_xof().read(&mut out);
    out
}

/// A "random" source that hands out one fixed 32-byte seed: the Falcon key generator draws
/// exactly 32 bytes and expands them deterministically with SHAKE256.
struct FixedSeed {
    seed: [u8; 32],
    used: bool,
}

impl rand_core::RngCore for FixedSeed {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // The generator asks for its 32-byte seed once; anything beyond is a change in
        // fn-dsa-kgen that would silently change every derived address, so fail loudly.
        assert!(!self.used && dest.len() == 32, "fn-dsa-kgen must draw exactly one 32-byte seed");
        dest.copy_from_slice(&self.seed);
        self.used = true;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for FixedSeed {}
