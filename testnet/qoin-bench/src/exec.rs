//! Execution-client benchmarks: the signature precompiles, block import, the state root.

use crate::{emit, rate, round};
use qoin_crypto::{Domain, Keypair};
use qoin_execution::precompiles;
use serde_json::json;

/// Time per call of each signature precompile (32-byte message) and the gas it charges, so
/// the gas schedule can be checked against `GAS_PER_MICROSECOND`.
pub(crate) fn precompile_costs(secs: f64) {
    let k = Keypair::from_seed(&[5u8; 32]);
    let msg = [0x11u8; 32];
    let f = k.sign_falcon_bare(&msg);
    let mut falcon = k.public().falcon().to_vec();
    falcon.extend_from_slice(&(f.len() as u16).to_be_bytes());
    falcon.extend_from_slice(&f);
    falcon.extend_from_slice(&msg);
    let mut mldsa = k.public().mldsa().to_vec();
    mldsa.extend_from_slice(&k.sign_mldsa_bare(&msg));
    mldsa.extend_from_slice(&msg);
    let mut dual = k.public().to_bytes();
    dual.extend_from_slice(&k.sign(Domain::Contract, &msg).to_bytes());
    dual.extend_from_slice(&msg);
    type Logic = fn(&[u8], u64) -> revm_result::Result;
    let cases: [(&str, Logic, Vec<u8>); 3] = [
        ("falcon512", precompiles::falcon512, falcon),
        ("mldsa44", precompiles::mldsa44, mldsa),
        ("dual", precompiles::dual, dual),
    ];
    for (name, logic, input) in cases {
        let out = logic(&input, u64::MAX).ok().filter(|o| o.bytes[31] == 1);
        let Some(out) = out else {
            eprintln!("{name}: the precompile did not accept a valid signature");
            std::process::exit(1);
        };
        let per_sec = rate(secs, 1, || {
            std::hint::black_box(logic(&input, u64::MAX).ok());
        });
        let micros = 1e6 / per_sec;
        emit(&json!({
            "bench": "precompiles", "unit": "us/call", "value": round(micros), "precompile": name,
            "gas": out.gas_used, "gas_per_us": round(out.gas_used as f64 / micros),
            "target_gas_per_us": precompiles::GAS_PER_MICROSECOND, "threads": 1,
        }));
    }
}

mod revm_result {
    /// The precompile logic's result type.
    pub(crate) type Result = revm::precompile::EthPrecompileResult;
}
