//! Falcon-512 verification is done by `fn-dsa-vrfy` and signing by PQClean: for any key,
//! message and padded signature, both must give the same verdict (a disagreement would split
//! nodes). The input mutates a valid triple (even first byte: up to 64 edits of position and
//! value), or replaces its signature, key or message outright (first byte 1, 3, 5).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pqcrypto_falcon::falconpadded512 as f;
use pqcrypto_traits::sign::{DetachedSignature as _, PublicKey as _};
use qoin_crypto::{signing_message, verify_falcon512, Domain, Keypair};
use std::sync::OnceLock;

struct Triple {
    pk: Vec<u8>,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

fn valid() -> &'static Triple {
    static T: OnceLock<Triple> = OnceLock::new();
    T.get_or_init(|| {
        let kp = Keypair::from_seed(&[7; 32]);
        let sig = kp.sign(Domain::Transaction, b"fuzz");
        Triple {
            pk: kp.public().falcon().to_vec(),
            msg: signing_message(Domain::Transaction, b"fuzz"),
            sig: sig.falcon().to_vec(),
        }
    })
}

fn pqclean(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    match (f::PublicKey::from_bytes(pk), f::DetachedSignature::from_bytes(sig)) {
        (Ok(pk), Ok(sig)) => f::verify_detached_signature(&sig, msg, &pk).is_ok(),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let t = valid();
    let (mut pk, mut msg, mut sig) = (t.pk.clone(), t.msg.clone(), t.sig.clone());
    match mode {
        1 => sig = rest.to_vec(),
        3 => pk = rest.to_vec(),
        5 => msg = rest.to_vec(),
        _ => {
            // Edits of 4 bytes each: which part, position (2 bytes), new value.
            for e in rest.chunks_exact(4).take(64) {
                let part: &mut Vec<u8> = match e[0] % 3 {
                    0 => &mut sig,
                    1 => &mut pk,
                    _ => &mut msg,
                };
                let at = usize::from(u16::from_le_bytes([e[1], e[2]])) % part.len();
                part[at] = e[3];
            }
        }
    }
    // Only the padded encoding goes through fn-dsa (other lengths are PQClean's compressed
    // Falcon in both paths).
    if sig.len() == 666 {
        let ours = verify_falcon512(&pk, &msg, &sig).is_ok();
        assert_eq!(ours, pqclean(&pk, &msg, &sig), "fn-dsa and PQClean disagree");
    }
});
