//! Chunk records from a storage provider (`GET /storage/{deal}/chunks/...`): decode must
//! never panic, and whatever decodes must re-encode to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qoin_markets::storage::{decode_records, encode_records};

fuzz_target!(|data: &[u8]| {
    if let Ok(records) = decode_records(data) {
        assert_eq!(encode_records(&records), data);
    }
});
