//! Transactions from the network or `eth_sendRawTransaction`: decode must never panic, and
//! whatever decodes must re-encode to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qoin_primitives::SignedTx;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = SignedTx::decode(data) {
        assert_eq!(tx.encode(), data);
        let _ = tx.verify_signature();
    }
});
