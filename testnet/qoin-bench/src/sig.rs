//! `sig-libs`: the two signature schemes' verification through each maintained Rust
//! implementation, side by side on one thread of one machine, over the same keys, messages and
//! signatures (made by PQClean, which qoin-crypto uses). Each call decodes the key and the
//! signature and verifies, as a node does per transaction. Every implementation must accept
//! every signature and refuse a bent one, else the run stops: a fast library that disagrees is
//! no candidate.

use crate::{emit, rate, round};
use pqcrypto_traits::sign::{DetachedSignature as _, PublicKey as _};
use serde_json::json;

/// Keys, messages and signatures per scheme.
const ITEMS: usize = 64;

struct Item {
    pk: Vec<u8>,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

/// [`ITEMS`] messages, each signed by `sign` under a fresh key: `sign(msg)` = (key, signature).
fn items(sign: impl Fn(&[u8]) -> (Vec<u8>, Vec<u8>)) -> Vec<Item> {
    (0..ITEMS as u64)
        .map(|i| {
            let msg = alloy_primitives::keccak256(i.to_be_bytes()).to_vec();
            let (pk, sig) = sign(&msg);
            Item { pk, msg, sig }
        })
        .collect()
}

fn falcon_items() -> Vec<Item> {
    use pqcrypto_falcon::falconpadded512 as f;
    items(|msg| {
        let (pk, sk) = f::keypair();
        (pk.as_bytes().to_vec(), f::detached_sign(msg, &sk).as_bytes().to_vec())
    })
}

fn mldsa_items() -> Vec<Item> {
    use pqcrypto_mldsa::mldsa44 as d;
    items(|msg| {
        let (pk, sk) = d::keypair();
        (pk.as_bytes().to_vec(), d::detached_sign(msg, &sk).as_bytes().to_vec())
    })
}

type Verifier = fn(&[u8], &[u8], &[u8]) -> bool;

fn pqclean_falcon(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use pqcrypto_falcon::falconpadded512 as f;
    let (Ok(pk), Ok(sig)) = (f::PublicKey::from_bytes(pk), f::DetachedSignature::from_bytes(sig)) else {
        return false;
    };
    f::verify_detached_signature(&sig, msg, &pk).is_ok()
}

fn fn_dsa_falcon(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use fn_dsa_vrfy::{VerifyingKey as _, VerifyingKey512, DOMAIN_NONE, HASH_ID_ORIGINAL_FALCON};
    VerifyingKey512::decode(pk).is_some_and(|vk| vk.verify(sig, &DOMAIN_NONE, &HASH_ID_ORIGINAL_FALCON, msg))
}

fn pqclean_mldsa(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use pqcrypto_mldsa::mldsa44 as d;
    let (Ok(pk), Ok(sig)) = (d::PublicKey::from_bytes(pk), d::DetachedSignature::from_bytes(sig)) else {
        return false;
    };
    d::verify_detached_signature(&sig, msg, &pk).is_ok()
}

fn rustcrypto_mldsa(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use ml_dsa::{EncodedVerifyingKey, MlDsa44, Signature, VerifyingKey};
    let (Ok(pk), Ok(sig)) =
        (EncodedVerifyingKey::<MlDsa44>::try_from(pk), Signature::<MlDsa44>::try_from(sig))
    else {
        return false;
    };
    VerifyingKey::<MlDsa44>::decode(&pk).verify_with_context(msg, b"", &sig)
}

fn fips204_mldsa(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use fips204::traits::{SerDes as _, Verifier as _};
    let (Ok(pk), Ok(sig)) = (<[u8; 1312]>::try_from(pk), <[u8; 2420]>::try_from(sig)) else {
        return false;
    };
    fips204::ml_dsa_44::PublicKey::try_from_bytes(pk).is_ok_and(|pk| pk.verify(msg, &sig, b""))
}

/// Every verifier accepts every item and refuses it with one signature byte changed, one
/// message byte changed, and a truncated signature.
fn agree(scheme: &str, items: &[Item], verifiers: &[(&str, Verifier)]) {
    for (name, v) in verifiers {
        for (i, it) in items.iter().enumerate() {
            assert!(v(&it.pk, &it.msg, &it.sig), "{scheme}: {name} refuses valid signature {i}");
            let mut sig = it.sig.clone();
            let at = 40 + i % (sig.len() - 40);
            sig[at] ^= 0x10;
            assert!(!v(&it.pk, &it.msg, &sig), "{scheme}: {name} accepts a bent signature (byte {at})");
            let mut msg = it.msg.clone();
            let at = i % msg.len();
            msg[at] ^= 1;
            assert!(!v(&it.pk, &msg, &it.sig), "{scheme}: {name} accepts another message");
            assert!(
                !v(&it.pk, &it.msg, &it.sig[..it.sig.len() - 1]),
                "{scheme}: {name} accepts a short signature"
            );
        }
    }
}

fn measure(secs: f64, scheme: &str, items: &[Item], verifiers: &[(&str, Verifier)]) {
    agree(scheme, items, verifiers);
    let mut base = None;
    for (name, v) in verifiers {
        let mut i = 0;
        let value = rate(secs, 1, || {
            let it = &items[i % items.len()];
            i += 1;
            assert!(v(&it.pk, &it.msg, &it.sig));
        });
        let base = *base.get_or_insert(value);
        emit(&json!({
            "bench": "sig-libs", "scheme": scheme, "library": name, "threads": 1,
            "unit": "verifications/s", "value": round(value), "vs_first": (value / base * 1000.0).round() / 1000.0,
        }));
    }
}

pub(crate) fn sig_libs(secs: f64) {
    let falcon: [(&str, Verifier); 2] = [
        ("pqcrypto-falcon 0.4.1 (PQClean falcon-padded-512, AVX2)", pqclean_falcon),
        ("fn-dsa-vrfy 0.3.0 (pure Rust, AVX2, original-Falcon mode)", fn_dsa_falcon),
    ];
    measure(secs, "falcon-512", &falcon_items(), &falcon);
    let mldsa: [(&str, Verifier); 3] = [
        ("pqcrypto-mldsa 0.1.2 (PQClean ml-dsa-44, AVX2)", pqclean_mldsa),
        ("ml-dsa 0.1.2 (RustCrypto, portable)", rustcrypto_mldsa),
        ("fips204 0.4.6 (portable)", fips204_mldsa),
    ];
    measure(secs, "ml-dsa-44", &mldsa_items(), &mldsa);
}
