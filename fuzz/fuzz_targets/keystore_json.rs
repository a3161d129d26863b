//! Keystore files: parsing must never panic (decryption is bounded by the KDF limits, so
//! it is exercised only with the cheapest parameters).
#![no_main]
use libfuzzer_sys::fuzz_target;
use qoin_crypto::keystore::KeystoreFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(f) = KeystoreFile::parse(text) {
            let p = f.crypto.kdfparams;
            if p.m_cost_kib <= 64 && p.t_cost == 1 {
                let _ = f.decrypt(b"password");
            }
        }
    }
});
