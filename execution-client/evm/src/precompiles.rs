//! Post-quantum signature precompiles, so contracts can check Falcon-512, ML-DSA-44 and
//! Qoin's dual signatures (spec §12).
//!
//! | address | checks | input |
//! |---|---|---|
//! | `0x…0f01` | Falcon-512 over the bare message, unless it is domain-tagged | `pk (897) ‖ sig_len (2, BE) ‖ sig ‖ msg` |
//! | `0x…0f02` | ML-DSA-44 (FIPS 204, empty context) over the bare message, unless it is domain-tagged | `pk (1312) ‖ sig (2420) ‖ msg` |
//! | `0x…0f03` | Qoin dual signature in the contract domain | `keys (2210) ‖ sig (3087) ‖ msg` |
//!
//! The two single-scheme precompiles check signatures made by any Falcon or ML-DSA software,
//! except over a message that begins as Qoin's domain-tagged messages do
//! (`len(tag) ‖ tag`, spec §2.2): those answer 0, so one half of a transaction, mining-ticket
//! or contract-domain dual signature never verifies on its own.
//!
//! Each returns a 32-byte word: 1 if the signature verifies, 0 if it does not or the input
//! is malformed. The gas is charged either way (the work is done either way); too little gas
//! is an out-of-gas halt. Gas is `base + per_word · ⌈len(msg)/32⌉`, with the bases set from
//! measured verification time (`qoin-bench -- precompiles`) at [`GAS_PER_MICROSECOND`].

use alloy_primitives::{address, Address, Bytes};
use qoin_crypto::{
    is_domain_message, verify, verify_falcon512, verify_mldsa44, Domain, DualSignature, PublicKeys,
};
use revm::handler::EthPrecompiles;
use revm::precompile::{
    call_eth_precompile, EthPrecompileOutput, EthPrecompileResult, Precompile, PrecompileHalt, PrecompileId,
    PrecompileResult, Precompiles,
};
use revm::primitives::hardfork::SpecId;
use std::sync::OnceLock;

/// Falcon-512 verification (bare message).
pub const FALCON512: Address = address!("0000000000000000000000000000000000000f01");
/// ML-DSA-44 verification (bare message, empty context).
pub const MLDSA44: Address = address!("0000000000000000000000000000000000000f02");
/// Dual-signature verification in the contract domain (`QOIN/CONTRACT/v1`).
pub const DUAL: Address = address!("0000000000000000000000000000000000000f03");

/// The rate gas prices are set at: ecrecover's 3,000 gas for roughly 30 µs.
pub const GAS_PER_MICROSECOND: u64 = 100;
/// Base gas of the Falcon-512 precompile.
pub const FALCON512_BASE_GAS: u64 = 2_700;
/// Base gas of the ML-DSA-44 precompile.
pub const MLDSA44_BASE_GAS: u64 = 1_900;
/// Base gas of the dual precompile (both checks and the key-suite decoding).
pub const DUAL_BASE_GAS: u64 = 4_700;
/// Gas per 32-byte word of message (both schemes hash the message).
pub const PER_WORD_GAS: u64 = 6;

const FALCON_PK: usize = 897;
const MLDSA_PK: usize = 1312;
const MLDSA_SIG: usize = 2420;
const KEYS_LEN: usize = 1 + FALCON_PK + MLDSA_PK;
const DUAL_SIG_LEN: usize = 1 + 666 + MLDSA_SIG;

fn word(ok: bool) -> Bytes {
    let mut out = [0u8; 32];
    out[31] = u8::from(ok);
    Bytes::copy_from_slice(&out)
}

fn charge(base: u64, msg_len: usize, gas_limit: u64) -> Result<u64, PrecompileHalt> {
    let gas = base.saturating_add(PER_WORD_GAS.saturating_mul((msg_len as u64).div_ceil(32)));
    if gas > gas_limit {
        Err(PrecompileHalt::OutOfGas)
    } else {
        Ok(gas)
    }
}

/// `key ‖ sig ‖ msg` with fixed key and signature lengths.
fn split_fixed(input: &[u8], key_len: usize, sig_len: usize) -> Option<(&[u8], &[u8], &[u8])> {
    let (key, rest) = input.split_at_checked(key_len)?;
    let (sig, msg) = rest.split_at_checked(sig_len)?;
    Some((key, sig, msg))
}

/// Charges for the message (0 bytes when the input is malformed), then answers whether
/// `check(key, sig, msg)` holds.
fn answer(
    base: u64,
    parsed: Option<(&[u8], &[u8], &[u8])>,
    gas_limit: u64,
    check: impl FnOnce(&[u8], &[u8], &[u8]) -> bool,
) -> EthPrecompileResult {
    let gas = charge(base, parsed.map_or(0, |(_, _, m)| m.len()), gas_limit)?;
    let ok = parsed.is_some_and(|(key, sig, msg)| check(key, sig, msg));
    Ok(EthPrecompileOutput::new(gas, word(ok)))
}

/// The Falcon-512 precompile's logic.
pub fn falcon512(input: &[u8], gas_limit: u64) -> EthPrecompileResult {
    let parsed = input.split_at_checked(FALCON_PK).and_then(|(pk, rest)| {
        let (len, rest) = rest.split_at_checked(2)?;
        let (sig, msg) = rest.split_at_checked(usize::from(u16::from_be_bytes([len[0], len[1]])))?;
        Some((pk, sig, msg))
    });
    answer(FALCON512_BASE_GAS, parsed, gas_limit, |pk, sig, msg| {
        !is_domain_message(msg) && verify_falcon512(pk, msg, sig).is_ok()
    })
}

/// The ML-DSA-44 precompile's logic.
pub fn mldsa44(input: &[u8], gas_limit: u64) -> EthPrecompileResult {
    answer(MLDSA44_BASE_GAS, split_fixed(input, MLDSA_PK, MLDSA_SIG), gas_limit, |pk, sig, msg| {
        !is_domain_message(msg) && verify_mldsa44(pk, msg, sig).is_ok()
    })
}

/// The dual-signature precompile's logic.
pub fn dual(input: &[u8], gas_limit: u64) -> EthPrecompileResult {
    answer(DUAL_BASE_GAS, split_fixed(input, KEYS_LEN, DUAL_SIG_LEN), gas_limit, |keys, sig, msg| {
        match (PublicKeys::from_bytes(keys), DualSignature::from_bytes(sig)) {
            (Ok(keys), Ok(sig)) => verify(&keys, Domain::Contract, msg, &sig).is_ok(),
            _ => false,
        }
    })
}

fn falcon512_fn(input: &[u8], gas_limit: u64, reservoir: u64) -> PrecompileResult {
    Ok(call_eth_precompile(falcon512, input, gas_limit, reservoir))
}

fn mldsa44_fn(input: &[u8], gas_limit: u64, reservoir: u64) -> PrecompileResult {
    Ok(call_eth_precompile(mldsa44, input, gas_limit, reservoir))
}

fn dual_fn(input: &[u8], gas_limit: u64, reservoir: u64) -> PrecompileResult {
    Ok(call_eth_precompile(dual, input, gas_limit, reservoir))
}

/// Ethereum's Prague precompiles plus Qoin's three.
pub fn precompiles() -> &'static Precompiles {
    static SET: OnceLock<Precompiles> = OnceLock::new();
    SET.get_or_init(|| {
        let mut set = Precompiles::prague().clone();
        set.extend([
            Precompile::new(PrecompileId::Custom("QOIN_FALCON512".into()), FALCON512, falcon512_fn),
            Precompile::new(PrecompileId::Custom("QOIN_MLDSA44".into()), MLDSA44, mldsa44_fn),
            Precompile::new(PrecompileId::Custom("QOIN_DUAL".into()), DUAL, dual_fn),
        ]);
        set
    })
}

/// The precompile provider every EVM this client builds uses (the spec is Prague, the one
/// [`crate::execute`] configures, so revm keeps this set).
pub fn provider() -> EthPrecompiles {
    EthPrecompiles { precompiles: precompiles(), spec: SpecId::PRAGUE }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qoin_crypto::Keypair;

    fn ok(r: EthPrecompileResult) -> (u64, bool) {
        let out = r.expect("no halt");
        (out.gas_used, out.bytes[31] == 1)
    }

    #[test]
    fn each_precompile_accepts_good_and_refuses_bad_signatures() {
        let k = Keypair::from_seed(&[3u8; 32]);
        let msg = b"pay 10 to bob".as_slice();

        let f = k.sign_falcon_bare(msg);
        let mut input = k.public().falcon().to_vec();
        input.extend_from_slice(&(f.len() as u16).to_be_bytes());
        input.extend_from_slice(&f);
        input.extend_from_slice(msg);
        assert_eq!(ok(falcon512(&input, 1_000_000)), (FALCON512_BASE_GAS + PER_WORD_GAS, true));
        let last = input.len() - 1;
        input[last] ^= 1;
        assert!(!ok(falcon512(&input, 1_000_000)).1);

        let d = k.sign_mldsa_bare(msg);
        let mut input = k.public().mldsa().to_vec();
        input.extend_from_slice(&d);
        input.extend_from_slice(msg);
        assert_eq!(ok(mldsa44(&input, 1_000_000)), (MLDSA44_BASE_GAS + PER_WORD_GAS, true));
        input[MLDSA_PK + 5] ^= 1;
        assert!(!ok(mldsa44(&input, 1_000_000)).1);

        let sig = k.sign(Domain::Contract, msg);
        let mut input = k.public().to_bytes();
        input.extend_from_slice(&sig.to_bytes());
        input.extend_from_slice(msg);
        assert_eq!(ok(dual(&input, 1_000_000)), (DUAL_BASE_GAS + PER_WORD_GAS, true));
        // A transaction-domain signature is not a contract-domain one.
        let tx_sig = k.sign(Domain::Transaction, msg);
        let mut wrong = k.public().to_bytes();
        wrong.extend_from_slice(&tx_sig.to_bytes());
        wrong.extend_from_slice(msg);
        assert!(!ok(dual(&wrong, 1_000_000)).1);
    }

    #[test]
    fn half_of_a_domain_signature_does_not_verify_on_its_own() {
        let k = Keypair::from_seed(&[4u8; 32]);
        for domain in Domain::ALL {
            let signed = qoin_crypto::signing_message(domain, &[7u8; 32]);
            let sig = k.sign(domain, &[7u8; 32]);
            let bytes = sig.to_bytes();
            // The dual signature's halves: suite ‖ falcon (666, padded) ‖ ml-dsa (2420).
            let (falcon, mldsa) = bytes[1..].split_at(666);
            assert!(qoin_crypto::verify_falcon512(k.public().falcon(), &signed, falcon).is_ok());
            assert!(qoin_crypto::verify_mldsa44(k.public().mldsa(), &signed, mldsa).is_ok());
            let mut input = k.public().falcon().to_vec();
            input.extend_from_slice(&666u16.to_be_bytes());
            input.extend_from_slice(falcon);
            input.extend_from_slice(&signed);
            assert!(!ok(falcon512(&input, 1_000_000)).1, "{domain:?}: Falcon half refused");
            let mut input = k.public().mldsa().to_vec();
            input.extend_from_slice(mldsa);
            input.extend_from_slice(&signed);
            assert!(!ok(mldsa44(&input, 1_000_000)).1, "{domain:?}: ML-DSA half refused");
        }
        // A message that merely starts with a tag's length byte, or a tag without its length,
        // is an ordinary message.
        for msg in [&b"\x0aQOIN/TX/v2"[..], &b"QOIN/TX/v1 hello"[..], &[10u8][..]] {
            let f = k.sign_falcon_bare(msg);
            let mut input = k.public().falcon().to_vec();
            input.extend_from_slice(&(f.len() as u16).to_be_bytes());
            input.extend_from_slice(&f);
            input.extend_from_slice(msg);
            assert!(ok(falcon512(&input, 1_000_000)).1, "{msg:?}");
        }
    }

    #[test]
    fn malformed_input_answers_zero_and_low_gas_halts() {
        for f in [falcon512, mldsa44, dual] {
            for input in [&[][..], &[0u8; 5][..], &[0xff; 900][..], &[0x01; 6000][..]] {
                assert!(!ok(f(input, 1_000_000)).1);
            }
            assert_eq!(f(&[0u8; 10], 100), Err(PrecompileHalt::OutOfGas));
        }
        // A declared Falcon signature length beyond the input is malformed, not a panic.
        let mut input = vec![0u8; FALCON_PK];
        input.extend_from_slice(&u16::MAX.to_be_bytes());
        assert!(!ok(falcon512(&input, 1_000_000)).1);
    }

    #[test]
    fn the_set_keeps_ethereums_precompiles() {
        let set = precompiles();
        for a in [FALCON512, MLDSA44, DUAL, address!("0000000000000000000000000000000000000001")] {
            assert!(set.contains(&a), "{a}");
        }
    }
}
