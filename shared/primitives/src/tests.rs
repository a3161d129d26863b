//! Encoding round-trips, malformed-input handling and the spec's test vectors.

use crate::*;
use proptest::prelude::*;
use qoin_crypto::{Domain, Keypair};
use std::sync::OnceLock;

fn key(i: u8) -> &'static Keypair {
    static KEYS: OnceLock<Vec<Keypair>> = OnceLock::new();
    &KEYS.get_or_init(|| (0..2).map(|i| Keypair::from_seed(&[i + 1; 32])).collect())[i as usize]
}

/// The transaction of the spec's test vector.
fn vector_tx() -> TxRequest {
    TxRequest {
        chain_id: 7777,
        nonce: 5,
        max_priority_fee_per_gas: 1_000_000_000,
        max_fee_per_gas: 30_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(Address::repeat_byte(0x22)),
        value: U256::from(1_000_000u64),
        input: Bytes::new(),
        access_list: vec![],
    }
}

fn spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/spec.md")).unwrap()
}

#[test]
fn spec_test_vectors() {
    // Seed 0x01 × 32 → address; the same transaction → id. Both values are in docs/spec.md.
    let kp = key(0);
    let addr = format!("{:#x}", kp.address());
    let id = format!("{:#x}", vector_tx().id_for(kp.address()));
    assert_eq!(addr, "0x96827940d45cffdc28a3ab3d27965680e74c8c26");
    assert_eq!(id, "0x251a157c972d5ab0e178f6c770135b48d94b7f5ba2908488d39e5ec7fd06da7b");
    let falcon_pk = format!("{:#x}", alloy_primitives::keccak256(kp.public().falcon()));
    let mldsa_pk = format!("{:#x}", alloy_primitives::keccak256(kp.public().mldsa()));
    assert_eq!(falcon_pk, "0xe639751ff18a2ef8b9fa54fde6e531570b57107650b6223b2d9e2c81f748c796");
    assert_eq!(mldsa_pk, "0xfaf947b7ac30def52ed16d63872f0037a1cd68e21ad7144b867e7c9babeac8da");
    let preimage = hex::encode(vector_tx().id_preimage(kp.address()));
    let spec = spec();
    for (what, v) in [
        ("address", &addr),
        ("tx id", &id),
        ("Falcon pk", &falcon_pk),
        ("ML-DSA pk", &mldsa_pk),
        ("id pre-image", &preimage),
    ] {
        assert!(spec.contains(v.as_str()), "docs/spec.md lacks the {what} vector {v}");
    }
}

#[test]
fn tx_round_trip_and_signature() {
    let tx = vector_tx().sign(key(0));
    tx.verify_signature().unwrap();
    let bytes = tx.encode();
    assert_eq!(bytes[0], QOIN_TX_TYPE);
    let back = SignedTx::decode(&bytes).unwrap();
    assert_eq!(back, tx);
    assert_eq!(back.sender(), key(0).address());
    back.verify_signature().unwrap();
}

#[test]
fn impersonated_envelope_round_trips_and_never_verifies() {
    let who = Address::repeat_byte(0xc0);
    let tx = vector_tx().impersonated(who);
    assert_eq!(tx.sender(), who);
    assert_eq!(tx.id(), vector_tx().id_for(who), "the id is a signed transaction's from that sender");
    assert!(tx.public_keys().is_none() && tx.signature().is_none());
    let bytes = tx.encode();
    let back = SignedTx::decode(&bytes).unwrap();
    assert_eq!(back, tx);
    assert!(back.is_impersonated());
    assert_eq!(back.suite_byte(), IMPERSONATED_SUITE);
    assert_eq!(back.verify_signature(), Err(TxError::Impersonated(who)));
    // A signed transaction's keys with the impersonated signature byte, a short sender, and
    // the impersonated keys with a real signature: all malformed.
    let signed = vector_tx().sign(key(0));
    let wire = |keys: Vec<u8>, sig: Vec<u8>| {
        SignedTx::decode(&crate::transaction::encode_with(signed.request(), keys, sig))
    };
    let keys = signed.public_keys().unwrap().to_bytes();
    assert!(matches!(wire(keys, vec![0]), Err(TxError::Envelope(_))));
    assert!(matches!(wire([&[0u8][..], &[0xc0; 19]].concat(), vec![0]), Err(TxError::Envelope(_))));
    assert!(matches!(
        wire([&[0u8][..], &[0xc0; 20]].concat(), signed.signature_bytes()),
        Err(TxError::Envelope(_))
    ));
    assert_eq!(wire([&[0u8][..], &[0xc0; 20]].concat(), vec![0]), Ok(tx));
    let signed_again = wire(signed.public_keys().unwrap().to_bytes(), signed.signature_bytes());
    assert_eq!(signed_again, Ok(signed), "the test's encoder is the real one");
}

#[test]
fn tx_id_excludes_signature_but_binds_sender() {
    let a = vector_tx().sign(key(0));
    let b = vector_tx().sign(key(0));
    assert_ne!(a.signature_bytes(), b.signature_bytes(), "signing is randomised");
    assert_eq!(a.id(), b.id());
    let c = vector_tx().sign(key(1));
    assert_ne!(a.id(), c.id(), "same fields from another sender must have another id");
}

#[test]
fn tx_tampering_is_detected() {
    let tx = vector_tx().sign(key(0));
    // Change the value but keep the signature: the id changes and the signature fails.
    let mut req = tx.request().clone();
    req.value = U256::from(999_999_999u64);
    let forged =
        SignedTx::from_parts(req, tx.public_keys().unwrap().clone(), tx.signature().unwrap().clone());
    assert!(matches!(forged.verify_signature(), Err(TxError::BadSignature(_))));
    // Another account's keys with this signature.
    let forged =
        SignedTx::from_parts(tx.request().clone(), key(1).public().clone(), tx.signature().unwrap().clone());
    assert!(matches!(forged.verify_signature(), Err(TxError::BadSignature(_))));
    // A mining ticket signature over the same id is not a transaction signature.
    let ticket_sig = key(0).sign(Domain::MiningTicket, tx.id().as_slice());
    let forged = SignedTx::from_parts(tx.request().clone(), tx.public_keys().unwrap().clone(), ticket_sig);
    assert!(matches!(forged.verify_signature(), Err(TxError::BadSignature(_))));
}

#[test]
fn ecdsa_and_malformed_transactions_are_rejected() {
    // An EIP-1559 Ethereum transaction and a legacy one.
    let eip1559 = hex::decode("02f86c0180843b9aca00850ba43b740082520894").unwrap();
    let e = SignedTx::decode(&eip1559).unwrap_err();
    assert_eq!(e, TxError::EcdsaNotAccepted(0x02));
    assert!(e.to_string().contains("post-quantum"), "{e}");
    let legacy = hex::decode("f86c098504a817c800825208943535353535353535353535353535353535353535").unwrap();
    assert_eq!(SignedTx::decode(&legacy), Err(TxError::EcdsaNotAccepted(0x00)));
    assert_eq!(SignedTx::decode(&[]), Err(TxError::Empty));
    assert_eq!(SignedTx::decode(&[0x7e, 1, 2]), Err(TxError::UnknownType(0x7e)));

    let mut bytes = vector_tx().sign(key(0)).encode();
    bytes.push(0);
    assert_eq!(SignedTx::decode(&bytes), Err(TxError::TrailingBytes(1)));
    bytes.truncate(bytes.len() - 100);
    assert!(matches!(SignedTx::decode(&bytes), Err(TxError::Rlp(_))));
    assert!(matches!(SignedTx::decode(&vec![0x51; MAX_TX_SIZE + 1]), Err(TxError::TooLarge(_))));
}

fn arb_request() -> impl Strategy<Value = TxRequest> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u128>(),
        any::<u128>(),
        any::<u64>(),
        proptest::option::of(any::<[u8; 20]>()),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(
            (any::<[u8; 20]>(), proptest::collection::vec(any::<[u8; 32]>(), 0..3)),
            0..3,
        ),
    )
        .prop_map(|(chain_id, nonce, tip, cap, gas, to, value, input, al)| TxRequest {
            chain_id,
            nonce,
            max_priority_fee_per_gas: tip,
            max_fee_per_gas: cap,
            gas_limit: gas,
            to: to.map_or(TxKind::Create, |a| TxKind::Call(Address::from(a))),
            value: U256::from_be_bytes(value),
            input: input.into(),
            access_list: al
                .into_iter()
                .map(|(a, ks)| AccessListItem {
                    address: Address::from(a),
                    storage_keys: ks.into_iter().map(B256::from).collect(),
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn tx_encoding_round_trips(req in arb_request()) {
        let tx = req.sign(key(1));
        let back = SignedTx::decode(&tx.encode()).unwrap();
        prop_assert_eq!(&back, &tx);
        prop_assert!(back.verify_signature().is_ok());
    }

    #[test]
    fn tx_decoder_survives_mutation(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut bytes = vector_tx().sign(key(0)).encode();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if let Ok(tx) = SignedTx::decode(&bytes) {
            // Whatever decodes re-encodes to the same bytes (canonical encoding).
            prop_assert_eq!(tx.encode(), bytes.clone());
        }
        let _ = SignedTx::decode(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn decoders_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..8000)) {
        let _ = SignedTx::decode(&bytes);
        let mut typed = bytes.clone();
        typed.insert(0, QOIN_TX_TYPE);
        let _ = SignedTx::decode(&typed);
        let _ = Header::decode(&bytes);
        let _ = Block::decode(&bytes);
    }
}

// ---- header and block ----

fn header(kp: &Keypair) -> Header {
    let mut h = Header {
        parent_hash: B256::repeat_byte(1),
        siblings: vec![B256::repeat_byte(2), B256::repeat_byte(3)],
        height: 42,
        timestamp_ms: 1_767_225_600_000,
        difficulty: 0x1800_0000_0000_0000,
        payload_hash: B256::repeat_byte(4),
        state_root: B256::repeat_byte(5),
        transactions_root: B256::repeat_byte(6),
        coinbase: Address::repeat_byte(7),
        miner_keys: kp.public().clone(),
        extra_nonce: 9,
        ticket: kp.sign(Domain::MiningTicket, b"placeholder"),
        solution: [0xab; SOLUTION_LEN],
    };
    h.sign_ticket(kp).unwrap();
    h
}

#[test]
fn header_round_trip_and_ticket() {
    let h = header(key(0));
    let bytes = h.encode().unwrap();
    assert!(bytes.len() <= MAX_HEADER_SIZE);
    let back = Header::decode(&bytes).unwrap();
    assert_eq!(back, h);
    assert_eq!(back.hash().unwrap(), h.hash().unwrap());
    back.verify_ticket().unwrap();
    assert_eq!(back.miner(), key(0).address());
}

#[test]
fn ticket_covers_the_preimage_but_not_the_nonces() {
    let h = header(key(0));
    let mut moved = h.clone();
    moved.extra_nonce += 1;
    moved.solution = [0; SOLUTION_LEN];
    moved.verify_ticket().unwrap();
    assert_ne!(moved.hash().unwrap(), h.hash().unwrap());

    for change in [
        |h: &mut Header| h.coinbase = Address::repeat_byte(0xee),
        |h: &mut Header| h.timestamp_ms += 1,
        |h: &mut Header| h.siblings.pop().map(drop).unwrap_or(()),
        |h: &mut Header| h.state_root = B256::ZERO,
    ] {
        let mut stolen = h.clone();
        change(&mut stolen);
        assert!(matches!(stolen.verify_ticket(), Err(HeaderError::BadTicket(_))));
    }
    // A thief re-signing with their own keys makes a different header (and puzzle).
    let mut stolen = h.clone();
    stolen.miner_keys = key(1).public().clone();
    assert!(stolen.verify_ticket().is_err());
    // A transaction-domain signature is not a ticket.
    let mut wrong_domain = h.clone();
    wrong_domain.ticket = key(0).sign(Domain::Transaction, h.ticket_message().unwrap().as_slice());
    assert!(wrong_domain.verify_ticket().is_err());
}

#[test]
fn malformed_headers_are_errors() {
    let h = header(key(0));
    let bytes = h.encode().unwrap();
    for cut in [0, 1, 100, 207, 208, bytes.len() - 1] {
        assert!(Header::decode(&bytes[..cut]).is_err(), "truncated to {cut}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(Header::decode(&long).is_err());
    let mut too_many = h;
    too_many.siblings = vec![B256::ZERO; MAX_SIBLINGS + 1];
    assert!(too_many.encode().is_err());
    // A reserved suite byte in the ticket is a typed envelope error.
    let ticket_offset = u32::from_le_bytes(bytes[188..192].try_into().unwrap()) as usize;
    let mut reserved = bytes;
    reserved[ticket_offset] = 0x02;
    assert!(matches!(Header::decode(&reserved), Err(HeaderError::Envelope(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn header_decoder_survives_mutation(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
        let mut bytes = BYTES.get_or_init(|| header(key(0)).encode().unwrap()).clone();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if let Ok(h) = Header::decode(&bytes) {
            prop_assert_eq!(h.encode().unwrap(), bytes);
        }
    }
}

#[test]
fn block_round_trip_and_transactions_root() {
    let txs: Vec<Vec<u8>> =
        (0..3u64).map(|n| TxRequest { nonce: n, ..vector_tx() }.sign(key(0)).encode()).collect();
    let mut h = header(key(0));
    h.transactions_root = transactions_root(&txs).unwrap();
    let block = Block { header: h, transactions: txs.clone() };
    block.check_transactions_root().unwrap();
    let back = Block::decode(&block.encode().unwrap()).unwrap();
    assert_eq!(back, block);
    assert_eq!(back.hash().unwrap(), block.header.hash().unwrap());
    for t in &back.transactions {
        SignedTx::decode(t).unwrap().verify_signature().unwrap();
    }

    let mut reordered = block;
    reordered.transactions.swap(0, 1);
    assert!(matches!(reordered.check_transactions_root(), Err(HeaderError::TransactionsRoot { .. })));
    assert_ne!(transactions_root(&[]).unwrap(), transactions_root(&txs[..1]).unwrap());
}

/// A 303-byte block found by `cargo fuzz run block_decode`: the transaction list's offsets
/// pointed outside the block and the SSZ library panicked slicing by them.
#[test]
fn a_block_with_bad_transaction_offsets_is_an_error_not_a_panic() {
    let bytes = hex::decode(concat!(
        "080000000001000065650000000000000000000000000800000800000000c7000000000000000000d0000000006060606060646060606060606060606060606060606060606060606a60000000000000000000000f0200007e000000000000000000000000fffad1d1d1d1d1d1d1d1d1d1ffffffffffffffffdfffff0000ffffffffffffffffffffffffffffffffffffffffd1d1d165",
        "d1d1d1d1656d656500002c6565656565656565656565656565656500000000020000d00000000000450065ff0065d1000000ffffffffffffffffd1d1d165d1d1d1d1656d656500002c6565656565000000000800000000c70000000000000000000000000000000800000800000000c7000000000000000000d000006060606060ffffffffffffffffd1d1d165d1d1d1d16565656565650000"
    ))
    .unwrap();
    assert_eq!(bytes.len(), 303);
    let err = Block::decode(&bytes).unwrap_err();
    assert!(matches!(err, HeaderError::Ssz(_)), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Any byte of a valid block's transaction list changed, or the block cut anywhere:
    /// an error or a block that re-encodes to the same bytes, never a panic.
    #[test]
    fn block_decoder_survives_mutation(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
        let bytes = BYTES.get_or_init(|| {
            let txs: Vec<Vec<u8>> = (0..3u64).map(|n| TxRequest { nonce: n, ..vector_tx() }.sign(key(0)).encode()).collect();
            let mut h = header(key(0));
            h.transactions_root = transactions_root(&txs).unwrap();
            Block { header: h, transactions: txs }.encode().unwrap()
        });
        let tx_list_at = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        // Mostly the transaction list's offset table and first bytes, sometimes anywhere.
        let i = if byte % 2 == 0 { tx_list_at + pos.index(16) } else { pos.index(bytes.len()) };
        let mut mutated = bytes.clone();
        mutated[i] = byte;
        if let Ok(b) = Block::decode(&mutated) {
            prop_assert_eq!(b.encode().unwrap(), mutated);
        }
        let _ = Block::decode(&bytes[..cut.index(bytes.len())]);
    }
}

// ---- genesis ----

const DEV_GENESIS: &str = r#"{
  "chainId": 7777,
  "timestamp": 1767225600,
  "gasLimit": 30000000,
  "baseFeePerGas": "0x3b9aca00",
  "targetBlockTimeMs": 1000,
  "pow": { "initialEquations": 24, "halfLifeSecs": 600 },
  "rewards": { "totalSupply": "120000000000000", "genesisSharePercent": 10, "halvingIntervalSecs": 126230400 },
  "alloc": {
    "0x1111111111111111111111111111111111111111": { "balance": "1000000000000" },
    "0x2222222222222222222222222222222222222222": { "balance": "0x10", "nonce": 1, "code": "0x6000", "storage": {
      "0x0000000000000000000000000000000000000000000000000000000000000001": "0x0000000000000000000000000000000000000000000000000000000000000002" } }
  }
}"#;

#[test]
fn genesis_parses_and_round_trips() {
    let g = Genesis::from_json(DEV_GENESIS).unwrap();
    assert_eq!(g.chain_id, 7777);
    assert_eq!(g.base_fee_per_gas, U256::from(1_000_000_000u64));
    assert_eq!(g.alloc[&Address::repeat_byte(0x11)].balance, U256::from(1_000_000_000_000u64));
    assert_eq!(g.alloc[&Address::repeat_byte(0x22)].code.len(), 2);
    assert_eq!(Genesis::from_json(&g.to_json()).unwrap(), g);
}

#[test]
fn genesis_errors_are_clear() {
    let over = DEV_GENESIS.replace("\"1000000000000\"", "\"12000000000001\"");
    let e = Genesis::from_json(&over).unwrap_err().to_string();
    assert!(e.contains("more than the genesis share"), "{e}");
    let unknown = DEV_GENESIS.replace("\"gasLimit\"", "\"gasLimitt\"");
    let e = Genesis::from_json(&unknown).unwrap_err().to_string();
    assert!(e.contains("gasLimitt") && e.contains("line"), "{e}");
    let e = Genesis::from_json(&DEV_GENESIS.replace("7777", "0")).unwrap_err().to_string();
    assert!(e.contains("chainId"), "{e}");
    assert!(matches!(Genesis::from_json(&DEV_GENESIS[..200]), Err(GenesisError::Json(_))));
    let e = Genesis::from_json(&DEV_GENESIS.replace("\"initialEquations\": 24", "\"initialEquations\": 65"))
        .unwrap_err();
    assert!(e.to_string().contains("initialEquations"), "{e}");
    // A genesis cannot allocate a system contract's address: every genesis holds the markets.
    let taken = DEV_GENESIS
        .replace("0x2222222222222222222222222222222222222222", "0x000000000000000000000000000000000000a000");
    let e = Genesis::from_json(&taken).unwrap_err().to_string();
    assert!(e.contains("system contract"), "{e}");
    let g = Genesis::from_json(DEV_GENESIS).unwrap();
    assert_eq!(g.state().len(), g.alloc.len() + 2);
    assert!(!g.state()[&crate::system::STORAGE_MARKET].code.is_empty());
}

#[test]
fn amounts_print_in_qoin() {
    assert_eq!(crate::format_qoin(U256::from(crate::dev::DEV_BALANCE)), "10000 QOIN");
    assert_eq!(crate::format_qoin(U256::from(21_000 * crate::GWEI)), "0.000021 QOIN");
    assert_eq!(crate::format_qoin(U256::from(1u8)), "0.000000000000000001 QOIN");
    assert_eq!(crate::format_qoin(U256::ZERO), "0 QOIN");
}

#[test]
fn rewards_sum_to_the_mined_supply() {
    let r = RewardParams::default();
    let b = r.blocks_per_halving(1000);
    assert_eq!(b, 126_230_400);
    let r0 = r.block_reward(1, 1000);
    assert_eq!(
        r0,
        U256::from(427_789_185_489_390_828u64),
        "docs/spec.md §7 quotes this figure (~0.428 QOIN)"
    );
    assert_eq!(r0, r.block_reward(b, 1000));
    assert_eq!(r.block_reward(b + 1, 1000), r0 >> 1);
    assert_eq!(r.block_reward(0, 1000), U256::ZERO);
    // Sum over all eras never exceeds the 90% mined share and comes within rounding of it.
    let mined = r.total_supply - r.genesis_supply();
    let total: U256 = (0..64u64).map(|era| r.block_reward(1 + era * b, 1000) * U256::from(b)).sum();
    assert!(total <= mined);
    assert!(mined - total < U256::from(64 * b), "lost {} shor to rounding", mined - total);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// The hand-written SSZ encoder agrees with `ssz_rs` and round-trips through the decoder.
    #[test]
    fn header_encoding_matches_ssz_rs(
        hashes in any::<[[u8; 32]; 4]>(),
        siblings in proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_SIBLINGS),
        nums in any::<[u64; 4]>(),
        coinbase in any::<[u8; 20]>(),
        solution in any::<[u8; SOLUTION_LEN]>(),
        signer in 0u8..2,
    ) {
        static SIGS: OnceLock<Vec<qoin_crypto::DualSignature>> = OnceLock::new();
        let sigs = SIGS.get_or_init(|| (0..2).map(|i| key(i).sign(Domain::MiningTicket, b"t")).collect());
        let h = Header {
            parent_hash: B256::from(hashes[0]),
            siblings: siblings.into_iter().map(B256::from).collect(),
            height: nums[0],
            timestamp_ms: nums[1],
            difficulty: nums[2],
            payload_hash: B256::from(hashes[1]),
            state_root: B256::from(hashes[2]),
            transactions_root: B256::from(hashes[3]),
            coinbase: Address::from(coinbase),
            miner_keys: key(signer).public().clone(),
            extra_nonce: nums[3],
            ticket: sigs[signer as usize].clone(),
            solution,
        };
        let bytes = h.encode().unwrap();
        prop_assert_eq!(&bytes, &h.encode_with_ssz_rs().unwrap());
        prop_assert!(Header::decode(&bytes).unwrap() == h, "decode(encode(h)) != h");
        // The pre-images are prefixes of the same container, with their own offsets.
        prop_assert_eq!(h.seal_preimage().unwrap().len(), bytes.len() - SOLUTION_LEN);
        prop_assert_eq!(h.preimage().unwrap().len(), bytes.len() - SOLUTION_LEN - 8 - 4 - 3087);
    }
}

#[test]
fn dev_genesis_is_valid_and_funds_the_dev_keys() {
    let keys = crate::dev::dev_keys();
    let g = crate::dev::dev_genesis(&keys);
    assert_eq!(Genesis::from_json(&g.to_json()).unwrap(), g);
    assert_eq!(g.alloc.len(), 10);
    assert!(keys.iter().all(|k| g.alloc.contains_key(&k.address())));
    // The seed derivation is part of the spec: pin the first address.
    assert_eq!(keys[0].address(), Keypair::from_seed(&crate::dev::dev_seed(0)).address());
    assert_ne!(keys[0].address(), keys[1].address());
}

#[test]
fn dev_account_zero_address_is_pinned() {
    // Listed in docs/spec.md; a change here changes every dev tool's configuration.
    let k = Keypair::from_seed(&crate::dev::dev_seed(0));
    assert_eq!(format!("{:#x}", k.address()), "0x9f021c080ff0b79a92ff62af61d425eaee5c502b");
}

// ---- qoin-js interoperability (fixtures in shared/qoin-js/test/fixtures) ----

const QOIN_JS_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../qoin-js/test/fixtures");

fn qoin_js_fixture(name: &str) -> serde_json::Value {
    let path = format!("{QOIN_JS_FIXTURES}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn fixture_hex(v: &serde_json::Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

/// Keys qoin-js made (noble's Falcon generator, which no seed reproduces here) open from
/// the keystore qoin-js wrote, and what qoin-js signed with them verifies here.
#[test]
fn keys_and_signatures_made_by_qoin_js_are_accepted() {
    let f = qoin_js_fixture("js-keystore.json");
    let file = qoin_crypto::keystore::KeystoreFile::parse(&f["file"].to_string()).unwrap();
    let keys = file.decrypt(f["password"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(keys.address(), file.address);
    let tx = SignedTx::decode(&fixture_hex(&f["signedTransaction"])).unwrap();
    tx.verify_signature().unwrap();
    assert_eq!(tx.sender(), keys.address());
    assert_eq!(format!("{:#x}", tx.id()), f["transactionId"].as_str().unwrap());
    // A personal_sign-style message: keys ‖ dual signature over the digest, contract domain.
    let signed = fixture_hex(&f["signedMessage"]);
    let pk = qoin_crypto::PublicKeys::from_bytes(&signed[..2210]).unwrap();
    let sig = qoin_crypto::DualSignature::from_bytes(&signed[2210..]).unwrap();
    let digest = fixture_hex(&f["messageDigest"]);
    qoin_crypto::verify(&pk, Domain::Contract, &digest, &sig).unwrap();
    assert_eq!(pk.address(), keys.address());
    // Signed here with the key loaded from qoin-js's file: still that address.
    let again = vector_tx().sign(&keys);
    again.verify_signature().unwrap();
    assert_eq!(again.sender(), keys.address());
}

/// The fixture qoin-js's tests read (`rust-keystore.json`) still opens here and its
/// transaction still verifies, so the two sides test the same bytes.
#[test]
fn the_rust_fixture_for_qoin_js_is_current() {
    let f = qoin_js_fixture("rust-keystore.json");
    let file = qoin_crypto::keystore::KeystoreFile::parse(&f["file"].to_string()).unwrap();
    let keys = file.decrypt(f["password"].as_str().unwrap().as_bytes()).unwrap();
    let tx = SignedTx::decode(&fixture_hex(&f["signedTransaction"])).unwrap();
    tx.verify_signature().unwrap();
    assert_eq!(tx.sender(), keys.address());
    assert_eq!(format!("{:#x}", tx.id()), f["transactionId"].as_str().unwrap());
}

/// Writes `rust-keystore.json` for qoin-js's tests (`cargo test -p qoin-primitives --
/// --ignored write_qoin_js_fixture`): a keystore written here and a transaction signed here.
#[test]
#[ignore = "writes a fixture; run by hand when the keystore format changes"]
fn write_qoin_js_fixture() {
    let seed = [0x5a; 32];
    let password = "rust-side";
    let file =
        qoin_crypto::keystore::encrypt(&seed, password.as_bytes(), qoin_crypto::keystore::KdfParams::LIGHT)
            .unwrap();
    let tx = vector_tx().sign(&Keypair::from_seed(&seed));
    let out = serde_json::json!({
        "comment": "Written by qoin-primitives' write_qoin_js_fixture: a keystore qoin-el wrote and a transaction it signed.",
        "password": password,
        "file": serde_json::from_str::<serde_json::Value>(&file.to_json()).unwrap(),
        "signedTransaction": format!("0x{}", hex::encode(tx.encode())),
        "transactionId": format!("{:#x}", tx.id()),
    });
    std::fs::write(
        format!("{QOIN_JS_FIXTURES}/rust-keystore.json"),
        serde_json::to_string_pretty(&out).unwrap(),
    )
    .unwrap();
}

proptest! {
    /// The root combined from per-transaction roots (computed in parallel by the block checks)
    /// is the list's SSZ root.
    #[test]
    fn the_transactions_root_from_per_transaction_roots_is_the_lists_root(
        txs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..24),
    ) {
        let roots: Vec<B256> = txs.iter().map(|t| transaction_root(t).unwrap()).collect();
        prop_assert_eq!(transactions_root_of(&roots).unwrap(), transactions_root(&txs).unwrap());
    }
}

#[test]
fn a_transaction_root_refuses_an_oversized_transaction() {
    assert!(transaction_root(&vec![0u8; crate::MAX_TX_SIZE + 1]).is_err());
    let full = vec![7u8; crate::MAX_TX_SIZE];
    assert_eq!(
        transactions_root_of(&[transaction_root(&full).unwrap()]).unwrap(),
        transactions_root(&[full]).unwrap()
    );
}
