//! Unit tests of the dual signature, key derivation and keystore.

use crate::keystore::{KdfParams, Keystore, KeystoreError, KeystoreFile};
use crate::*;
use proptest::prelude::*;
use std::sync::OnceLock;

fn kp(i: u8) -> &'static Keypair {
    static KEYS: OnceLock<Vec<Keypair>> = OnceLock::new();
    &KEYS.get_or_init(|| (0..3).map(|i| Keypair::from_seed(&[i; 32])).collect())[i as usize]
}

#[test]
fn seed_gives_the_same_address_every_time() {
    let a = Keypair::from_seed(&[7; 32]);
    let b = Keypair::from_seed(&[7; 32]);
    assert_eq!(a.address(), b.address());
    assert_eq!(a.public(), b.public());
    assert_ne!(a.address(), Keypair::from_seed(&[8; 32]).address());
    assert_eq!(a.public().falcon().len(), 897);
    assert_eq!(a.public().mldsa().len(), 1312);
}

#[test]
fn sign_and_verify_in_both_domains() {
    let k = kp(1);
    for domain in [Domain::Transaction, Domain::MiningTicket, Domain::Contract] {
        let sig = k.sign(domain, b"payload");
        assert_eq!(sig.encoded_len(), 1 + 666 + 2420);
        verify(k.public(), domain, b"payload", &sig).unwrap();
        assert_eq!(verify(k.public(), domain, b"payloaD", &sig), Err(CryptoError::FalconInvalid));
    }
}

#[test]
fn signature_from_another_domain_is_rejected() {
    let k = kp(1);
    let sig = k.sign(Domain::MiningTicket, b"header");
    assert_eq!(verify(k.public(), Domain::Transaction, b"header", &sig), Err(CryptoError::FalconInvalid));
}

#[test]
fn both_halves_must_verify() {
    let k = kp(1);
    let other = kp(2);
    let sig = k.sign(Domain::Transaction, b"m");
    let other_sig = other.sign(Domain::Transaction, b"m");
    // Good Falcon half, ML-DSA half from another key.
    let mixed = DualSignature::new(sig.suite(), sig.falcon().to_vec(), other_sig.mldsa().to_vec()).unwrap();
    assert_eq!(verify(k.public(), Domain::Transaction, b"m", &mixed), Err(CryptoError::MlDsaInvalid));
    // A flipped bit in the ML-DSA half.
    let mut m = sig.mldsa().to_vec();
    m[100] ^= 1;
    let flipped = DualSignature::new(sig.suite(), sig.falcon().to_vec(), m).unwrap();
    assert_eq!(verify(k.public(), Domain::Transaction, b"m", &flipped), Err(CryptoError::MlDsaInvalid));
    // Someone else's keys.
    assert_eq!(verify(other.public(), Domain::Transaction, b"m", &sig), Err(CryptoError::FalconInvalid));
}

#[test]
fn wrong_lengths_and_suites_are_typed_errors() {
    let k = kp(1);
    let sig = k.sign(Domain::Transaction, b"m");
    let bytes = sig.to_bytes();
    assert_eq!(DualSignature::from_bytes(&bytes).unwrap(), sig);
    assert!(matches!(
        DualSignature::from_bytes(&bytes[..bytes.len() - 1]),
        Err(CryptoError::BadLength { .. })
    ));
    assert!(matches!(DualSignature::from_bytes(&[]), Err(CryptoError::Malformed(_))));
    let mut other_suite = bytes;
    other_suite[0] = 0x02;
    assert_eq!(
        DualSignature::from_bytes(&other_suite),
        Err(CryptoError::UnsupportedSuite(Suite::Falcon1024MlDsa87))
    );
    other_suite[0] = 0x7f;
    assert_eq!(DualSignature::from_bytes(&other_suite), Err(CryptoError::UnknownSuite(0x7f)));
    assert!(matches!(
        DualSignature::new(Suite::Falcon512MlDsa44, vec![0; 665], vec![0; 2420]),
        Err(CryptoError::BadLength { expected: 666, got: 665, .. })
    ));

    let pk = k.public().to_bytes();
    assert_eq!(&PublicKeys::from_bytes(&pk).unwrap(), k.public());
    assert!(matches!(PublicKeys::from_bytes(&pk[..100]), Err(CryptoError::BadLength { .. })));
    let mut bad_header = pk;
    bad_header[1] = 0x0a;
    assert_eq!(
        PublicKeys::from_bytes(&bad_header),
        Err(CryptoError::InvalidKey("Falcon-512 public key header"))
    );
}

#[test]
fn batch_reports_each_item_in_order() {
    let k = kp(1);
    let msgs: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 40]).collect();
    let sigs: Vec<DualSignature> = msgs.iter().map(|m| k.sign(Domain::Transaction, m)).collect();
    let mut items: Vec<VerifyItem<'_>> = msgs
        .iter()
        .zip(&sigs)
        .map(|(msg, sig)| VerifyItem { keys: k.public(), domain: Domain::Transaction, msg, sig })
        .collect();
    items[5].msg = b"not what was signed";
    items[13].domain = Domain::MiningTicket;
    let results = verify_batch(&items);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_ok(), i != 5 && i != 13, "item {i}: {r:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let _ = DualSignature::from_bytes(&bytes);
        let _ = PublicKeys::from_bytes(&bytes);
    }

    #[test]
    fn random_signature_bytes_never_verify(f in proptest::collection::vec(any::<u8>(), 666), m in proptest::collection::vec(any::<u8>(), 2420)) {
        let sig = DualSignature::new(Suite::Falcon512MlDsa44, f, m).unwrap();
        prop_assert!(verify(kp(0).public(), Domain::Transaction, b"x", &sig).is_err());
        prop_assert_eq!(DualSignature::from_bytes(&sig.to_bytes()).unwrap(), sig);
    }
}

// ---- keystore ----

fn stored() -> (tempfile::TempDir, Keystore, alloy_primitives::Address) {
    let dir = tempfile::tempdir().unwrap();
    let ks = Keystore::new(dir.path().join("keystore"));
    let addr = ks.store(&[42; 32], b"correct horse", KdfParams::LIGHT).unwrap();
    (dir, ks, addr)
}

#[test]
fn keystore_round_trip_and_listing() {
    let (_dir, ks, addr) = stored();
    assert_eq!(addr, Keypair::from_seed(&[42; 32]).address());
    let kp = ks.unlock(&addr, b"correct horse").unwrap();
    assert_eq!(kp.address(), addr);
    let second = ks.create(b"pw", KdfParams::LIGHT).unwrap();
    let listed: Vec<_> = ks.list().unwrap().into_iter().map(|(_, f)| f.unwrap().address).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&addr) && listed.contains(&second));
    // Storing the same account twice is refused, not overwritten.
    assert!(matches!(ks.store(&[42; 32], b"other", KdfParams::LIGHT), Err(KeystoreError::Io { .. })));
    assert!(ks.unlock(&addr, b"correct horse").is_ok());
}

#[test]
fn keystore_wrong_password() {
    let (_dir, ks, addr) = stored();
    assert!(matches!(ks.unlock(&addr, b"Correct horse"), Err(KeystoreError::WrongPassword)));
}

#[test]
fn keystore_truncated_file() {
    let (_dir, ks, addr) = stored();
    let path = ks.path_of(&addr);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    assert!(matches!(ks.unlock(&addr, b"correct horse"), Err(KeystoreError::Truncated)));
}

#[test]
fn keystore_tampered_file() {
    let (_dir, ks, addr) = stored();
    let path = ks.path_of(&addr);
    let orig = KeystoreFile::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();

    // Flip one byte of the ciphertext.
    let mut f = orig.clone();
    let mut ct = hex::decode(&f.crypto.ciphertext).unwrap();
    ct[3] ^= 0x80;
    f.crypto.ciphertext = hex::encode(ct);
    assert!(matches!(f.decrypt(b"correct horse"), Err(KeystoreError::Tampered(_))));

    // Claim another address.
    let mut f = orig.clone();
    f.address = alloy_primitives::Address::repeat_byte(0x11);
    assert!(matches!(f.decrypt(b"correct horse"), Err(KeystoreError::Tampered(_))));

    // Lower the KDF cost (changes the derived key, so it reads as a wrong password).
    let mut f = orig.clone();
    f.crypto.kdfparams.t_cost = 2;
    assert!(f.decrypt(b"correct horse").is_err());

    // Absurd KDF cost in a hostile file: refused before any allocation.
    let mut f = orig;
    f.crypto.kdfparams.m_cost_kib = u32::MAX;
    assert!(matches!(KeystoreFile::parse(&f.to_json()), Err(KeystoreError::Malformed(_))));

    // Not JSON at all / unknown fields.
    assert!(matches!(KeystoreFile::parse("hello"), Err(KeystoreError::Malformed(_))));
    assert!(matches!(KeystoreFile::parse(r#"{"version":1,"bogus":2}"#), Err(KeystoreError::Malformed(_))));
}

#[test]
fn bare_signatures_verify_and_reject_tampering() {
    let k = Keypair::from_seed(&[9u8; 32]);
    let f = k.sign_falcon_bare(b"hello");
    let d = k.sign_mldsa_bare(b"hello");
    assert_eq!(f.len(), 666);
    assert_eq!(crate::verify_falcon512(k.public().falcon(), b"hello", &f), Ok(()));
    assert_eq!(crate::verify_mldsa44(k.public().mldsa(), b"hello", &d), Ok(()));
    assert_eq!(crate::verify_falcon512(k.public().falcon(), b"hellO", &f), Err(CryptoError::FalconInvalid));
    assert_eq!(crate::verify_mldsa44(k.public().mldsa(), b"hellO", &d), Err(CryptoError::MlDsaInvalid));
    // A bare signature is not a domain-separated one and vice versa.
    let dual = k.sign(Domain::Contract, b"hello");
    assert_eq!(
        crate::verify_falcon512(k.public().falcon(), b"hello", dual.falcon()),
        Err(CryptoError::FalconInvalid)
    );
    // Garbage keys and signatures are errors, not panics.
    assert!(crate::verify_falcon512(&[1, 2, 3], b"m", &f).is_err());
    assert!(crate::verify_falcon512(k.public().falcon(), b"m", &[0x39; 10]).is_err());
    assert!(crate::verify_mldsa44(&[], b"m", &d).is_err());
    assert!(crate::verify_mldsa44(k.public().mldsa(), b"m", &d[..100]).is_err());
}

/// Falcon-512 signatures are verified with `fn-dsa-vrfy` (original-Falcon mode) and made with
/// PQClean: both libraries must give every input the same verdict. Signatures made by each
/// verify with the other, and mutated keys, messages and signatures (5,000, from a fixed seed)
/// are refused or accepted by both alike.
#[test]
fn falcon_verdicts_are_the_same_through_fn_dsa_and_pqclean() {
    use fn_dsa_kgen::KeyPairGenerator as _;
    use fn_dsa_sign::{SigningKey as _, SigningKey512, DOMAIN_NONE, HASH_ID_ORIGINAL_FALCON};
    use pqcrypto_falcon::falconpadded512 as f;
    use pqcrypto_traits::sign::{DetachedSignature as _, PublicKey as _, SecretKey as _};

    let pqclean = |pk: &[u8], msg: &[u8], sig: &[u8]| -> bool {
        match (f::PublicKey::from_bytes(pk), f::DetachedSignature::from_bytes(sig)) {
            (Ok(pk), Ok(sig)) => f::verify_detached_signature(&sig, msg, &pk).is_ok(),
            _ => false,
        }
    };
    let ours = |pk: &[u8], msg: &[u8], sig: &[u8]| crate::verify_falcon512(pk, msg, sig).is_ok();

    let mut kg = fn_dsa_kgen::KeyPairGenerator512::default();
    let mut sk = vec![0u8; fn_dsa_kgen::sign_key_size(9)];
    let mut pk = vec![0u8; fn_dsa_kgen::vrfy_key_size(9)];
    kg.keygen(9, &mut rand_core::OsRng, &mut sk, &mut pk);
    let msg = b"cross-implementation".to_vec();

    // PQClean's signature, fn-dsa's verdict.
    let by_pqclean = f::detached_sign(&msg, &f::SecretKey::from_bytes(&sk).unwrap()).as_bytes().to_vec();
    assert_eq!(by_pqclean.len(), 666);
    assert!(ours(&pk, &msg, &by_pqclean) && pqclean(&pk, &msg, &by_pqclean));
    // fn-dsa's signature, PQClean's verdict.
    let mut by_fn_dsa = vec![0u8; 666];
    SigningKey512::decode(&sk).unwrap().sign(
        &mut rand_core::OsRng,
        &DOMAIN_NONE,
        &HASH_ID_ORIGINAL_FALCON,
        &msg,
        &mut by_fn_dsa,
    );
    assert!(pqclean(&pk, &msg, &by_fn_dsa) && ours(&pk, &msg, &by_fn_dsa));

    // Mutations: a byte set, a byte flipped, in the key, the signature or the message.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..5_000 {
        let (mut k, mut m, mut s) =
            (pk.clone(), msg.clone(), if i % 2 == 0 { by_pqclean.clone() } else { by_fn_dsa.clone() });
        let r = next();
        let target: &mut Vec<u8> = match r % 5 {
            0 => &mut k,
            1 | 2 => &mut s,
            3 => &mut m,
            _ => &mut s, // left alone below: a valid triple
        };
        if r % 5 != 4 {
            let at = (next() as usize) % target.len();
            target[at] = if r & 0x100 == 0 { target[at] ^ (1 << (next() % 8)) } else { next() as u8 };
        }
        let (a, b) = (pqclean(&k, &m, &s), ours(&k, &m, &s));
        assert_eq!(a, b, "mutation {i}: PQClean says {a}, fn-dsa says {b}");
        if a {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(accepted > 900 && refused > 2_500, "accepted {accepted}, refused {refused}");
}

#[test]
fn keystore_writes_version_2_with_the_falcon_key() {
    let (_dir, ks, addr) = stored();
    let f = ks.read(&ks.path_of(&addr)).unwrap();
    assert_eq!(f.version, 2);
    assert_eq!(hex::decode(&f.crypto.ciphertext).unwrap().len(), 32 + 1281 + 16);
    let kp = f.decrypt(b"correct horse").unwrap();
    assert_eq!(kp.address(), Keypair::from_seed(&[42; 32]).address());
    assert_eq!(kp.falcon_secret_key(), Keypair::from_seed(&[42; 32]).falcon_secret_key());

    // Relabelled as version 1 (seed only): refused, not read as another key.
    let mut old = f.clone();
    old.version = 1;
    assert!(matches!(old.decrypt(b"correct horse"), Err(KeystoreError::Tampered(_))));
    // A version from the future is not guessed at.
    let mut future = f;
    future.version = 3;
    assert!(matches!(KeystoreFile::parse(&future.to_json()), Err(KeystoreError::Malformed(_))));
}

#[test]
fn a_falcon_key_whose_f_was_altered_is_refused_though_its_address_matches() {
    let good = Keypair::from_seed(&[42; 32]);
    let sk = good.falcon_secret_key().to_vec();
    assert!(Keypair::from_seed_and_falcon_key(&[42; 32], &sk).is_ok());
    // The last 512 bytes are F (one signed byte per coefficient); the public key comes from f
    // and g alone, so the address would still match.
    for at in [sk.len() - 1, sk.len() - 300] {
        let mut bad = sk.clone();
        bad[at] = bad[at].wrapping_add(1);
        let e = Keypair::from_seed_and_falcon_key(&[42; 32], &bad).unwrap_err();
        assert!(e.to_string().contains("does not sign for its public key"), "{e}");
    }
}

#[test]
fn keystore_still_reads_version_1_files() {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    // A version-1 file as earlier releases wrote it: the seed alone under the v1 AAD.
    let seed = [7u8; 32];
    let address = Keypair::from_seed(&seed).address();
    let p = KdfParams::LIGHT;
    let (salt, nonce) = ([3u8; 32], [4u8; 24]);
    let params = argon2::Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(64)).unwrap();
    let mut k = [0u8; 64];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(b"pw", &salt, &mut k)
        .unwrap();
    let aad = format!("QOIN/KEYSTORE/v1|{address:#x}|1|{}|{}|{}", p.m_cost_kib, p.t_cost, p.p_cost);
    let ct = chacha20poly1305::XChaCha20Poly1305::new_from_slice(&k[..32])
        .unwrap()
        .encrypt(chacha20poly1305::XNonce::from_slice(&nonce), Payload { msg: &seed, aad: aad.as_bytes() })
        .unwrap();
    let mut check = b"QOIN/KEYSTORE-CHECK/v1".to_vec();
    check.extend_from_slice(&k[32..]);
    let json = format!(
        r#"{{"version":1,"address":"{address:#x}","suite":1,"crypto":{{"kdf":"argon2id","kdfparams":{{"m_cost_kib":{},"t_cost":{},"p_cost":{}}},"salt":"{}","cipher":"xchacha20-poly1305","nonce":"{}","ciphertext":"{}","check":"{}"}}}}"#,
        p.m_cost_kib,
        p.t_cost,
        p.p_cost,
        hex::encode(salt),
        hex::encode(nonce),
        hex::encode(ct),
        hex::encode(crate::keccak256(check))
    );
    let kp = KeystoreFile::parse(&json).unwrap().decrypt(b"pw").unwrap();
    assert_eq!(kp.address(), address);
}

#[test]
fn a_falcon_key_from_elsewhere_keeps_its_address() {
    // The seed's own Falcon key gives the seed's address.
    let kp = Keypair::from_seed(&[1; 32]);
    let again = Keypair::from_seed_and_falcon_key(&[1; 32], kp.falcon_secret_key()).unwrap();
    assert_eq!(again.address(), kp.address());
    assert_eq!(again.public(), kp.public());
    // Another seed's Falcon key: the keys of that Falcon key and this seed's ML-DSA key.
    let other = Keypair::from_seed(&[2; 32]);
    let mixed = Keypair::from_seed_and_falcon_key(&[1; 32], other.falcon_secret_key()).unwrap();
    assert_eq!(mixed.public().falcon(), other.public().falcon());
    assert_eq!(mixed.public().mldsa(), kp.public().mldsa());
    let sig = mixed.sign(Domain::Transaction, &[9; 32]);
    assert!(verify(mixed.public(), Domain::Transaction, &[9; 32], &sig).is_ok());
    // Not a Falcon key: refused.
    assert!(Keypair::from_seed_and_falcon_key(&[1; 32], &[0u8; 1281]).is_err());
    assert!(Keypair::from_seed_and_falcon_key(&[1; 32], &kp.falcon_secret_key()[..1280]).is_err());
}
