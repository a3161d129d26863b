//! Signature envelopes and public keys: decode must never panic; verification of whatever
//! decodes must return an error, never crash.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qoin_crypto::{verify, Domain, DualSignature, PublicKeys};

fuzz_target!(|data: &[u8]| {
    let sig = DualSignature::from_bytes(data);
    let keys = PublicKeys::from_bytes(data);
    if let Ok(s) = &sig {
        assert_eq!(s.to_bytes(), data);
    }
    if let Ok(k) = &keys {
        assert_eq!(k.to_bytes(), data);
    }
    // Split the input into keys ‖ signature and try to verify.
    if data.len() > 2210 {
        let (k, s) = data.split_at(2210);
        if let (Ok(k), Ok(s)) = (PublicKeys::from_bytes(k), DualSignature::from_bytes(s)) {
            let _ = verify(&k, Domain::Transaction, b"fuzz", &s);
        }
    }
});
