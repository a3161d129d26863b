//! Execution-client benchmarks: the signature precompiles, block import, the state root.

use crate::{emit, rate, round};
use qoin_crypto::{Domain, Keypair};
use qoin_evm::precompiles;
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
    type Logic = fn(&[u8], u64) -> revm::precompile::EthPrecompileResult;
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

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use qoin_el_chain::Chain;
use qoin_el_storage::block::{Body, Credit, ElHeader, SealedBlock};
use qoin_primitives::{Genesis, GenesisAccount, PowParams, RewardParams, SignedTx, TxKind, TxRequest};
use qoin_store::StoreOptions;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::time::Instant;

/// Accounts funded in the import benchmarks' genesis, each with its own key; every one
/// sends one transaction (key generation, ~1.3 ms each, takes about a minute on 2 cores).
const FUNDED: usize = 100_000;
/// Transactions per block unless `--txs-per-block` says otherwise: the reference size
/// (`sync-transfers` compares against it).
pub(crate) const PER_BLOCK: usize = 5_000;

/// The blocks an import benchmark imports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ImportShape {
    /// Transactions per block; the `FUNDED` senders' transactions fill `FUNDED / txs_per_block`
    /// blocks.
    pub txs_per_block: usize,
    /// Import as the execution client does a block whose consensus client verified its
    /// transactions' signatures (`NewPayload`'s `signatures_verified`): no signature checks.
    pub signatures_verified: bool,
    /// Blocks imported in one database transaction (`Chain::import_batch`, as the execution
    /// client imports a sync's runs of blocks); 1: a transaction per block.
    pub blocks_per_commit: usize,
}

impl Default for ImportShape {
    fn default() -> Self {
        Self { txs_per_block: PER_BLOCK, signatures_verified: false, blocks_per_commit: 1 }
    }
}
const CHAIN_ID: u64 = 4242;
const TOKEN: Address = Address::repeat_byte(0x70);

fn bench_genesis(funded: &[Address], token: Option<(&[u8], &[Address])>) -> Genesis {
    let mut alloc: BTreeMap<Address, GenesisAccount> = funded
        .iter()
        .map(|a| (*a, GenesisAccount { balance: U256::from(10u64.pow(18)), ..Default::default() }))
        .collect();
    if let Some((code, holders)) = token {
        let storage = holders
            .iter()
            .map(|h| {
                let mut pre = [0u8; 64];
                pre[12..32].copy_from_slice(h.as_slice());
                (keccak256(pre), B256::from(U256::from(1_000_000u64)))
            })
            .collect();
        alloc.insert(
            TOKEN,
            GenesisAccount { code: Bytes::copy_from_slice(code), storage, ..Default::default() },
        );
    }
    Genesis {
        chain_id: CHAIN_ID,
        timestamp: 1_767_225_600,
        gas_limit: 500_000_000,
        base_fee_per_gas: U256::from(qoin_primitives::GWEI),
        target_block_time_ms: 1000,
        pow: PowParams { initial_equations: 20, initial_mantissa: 0, half_life_secs: 600 },
        rewards: RewardParams::default(),
        alloc,
    }
}

fn open(dir: &std::path::Path, genesis: Genesis) -> Chain {
    let options = StoreOptions { max_size: 1 << 36, durable: true, ..Default::default() };
    match Chain::open(dir, genesis, options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot open a chain in {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
}

fn tmpdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("qoin-bench-{}-{}", std::process::id(), unique_suffix()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn unique_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// A deterministic pseudo-random address among `n` funded ones.
fn pick(funded: &[Address], i: u64) -> Address {
    let h = keccak256(i.to_be_bytes());
    funded[(u64::from_be_bytes(h[..8].try_into().unwrap_or_default()) % funded.len() as u64) as usize]
}

/// `n` keys from fixed seeds (the same ones every run), made in parallel.
pub(crate) fn bench_keys(n: usize) -> Vec<Keypair> {
    (0..n as u32)
        .into_par_iter()
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            seed[4..8].copy_from_slice(b"BNCH");
            Keypair::from_seed(&seed)
        })
        .collect()
}

/// Builds the blocks `shape` says (one transaction per sender) on one chain, then imports
/// them into a fresh chain, timing only the import (decode, signature checks in parallel
/// unless `shape.signatures_verified`, execution, state root, one MDBX commit per block);
/// emits the result and returns tx/s.
fn import_bench(name: &str, erc20: bool, shape: ImportShape) -> f64 {
    let per_block = shape.txs_per_block;
    if per_block == 0 || per_block > FUNDED {
        fail(&format!("--txs-per-block must be between 1 and {FUNDED}, not {per_block}"));
    }
    if shape.blocks_per_commit == 0 {
        fail(&"--blocks-per-commit must be at least 1");
    }
    let blocks_n = (FUNDED / per_block) as u64;
    let t0 = Instant::now();
    let keys = bench_keys(FUNDED);
    let funded: Vec<Address> = keys.iter().map(Keypair::address).collect();
    eprintln!("{name}: {FUNDED} keys in {:.1} s", t0.elapsed().as_secs_f64());
    let code = if erc20 { Some(token_code()) } else { None };
    let genesis = bench_genesis(&funded, code.as_deref().map(|c| (c, &funded[..])));

    let build_dir = tmpdir();
    let builder = open(&build_dir, genesis.clone());
    let mut blocks: Vec<(ElHeader, Body)> = Vec::new();
    for b in 0..blocks_n {
        let senders = &keys[b as usize * per_block..(b as usize + 1) * per_block];
        let txs: Vec<SignedTx> = senders
            .par_iter()
            .enumerate()
            .map(|(i, k)| {
                let to = pick(&funded, b * per_block as u64 + i as u64);
                let (to, value, input, gas) = if erc20 {
                    let mut data = keccak256("transfer(address,uint256)")[..4].to_vec();
                    data.extend_from_slice(B256::left_padding_from(to.as_slice()).as_slice());
                    data.extend_from_slice(&U256::from(1u8).to_be_bytes::<32>());
                    (TOKEN, U256::ZERO, Bytes::from(data), 100_000)
                } else {
                    (to, U256::from(1_000u64), Bytes::new(), 21_000)
                };
                TxRequest {
                    chain_id: CHAIN_ID,
                    nonce: 0,
                    max_priority_fee_per_gas: 1,
                    max_fee_per_gas: 10_000_000_000,
                    gas_limit: gas,
                    to: TxKind::Call(to),
                    value,
                    input,
                    access_list: Vec::new(),
                }
                .sign(k)
            })
            .collect();
        let head = builder.head().unwrap_or_else(|e| fail(&e));
        let env = builder.child_env(&head, head.timestamp + 1, Address::repeat_byte(0xfe), B256::ZERO);
        let executed = builder.build(&env, txs, Vec::<Credit>::new()).unwrap_or_else(|e| fail(&e));
        if executed.transactions.len() != per_block || executed.receipts.iter().any(|r| !r.success) {
            fail(&format!(
                "block {b}: {} of {per_block} transactions succeeded",
                executed.transactions.len()
            ));
        }
        builder.commit_built(&executed).unwrap_or_else(|e| fail(&e));
        let body = Body {
            transactions: executed.transactions.iter().map(|t| Bytes::from(t.encode())).collect(),
            credits: executed.credits.clone(),
        };
        blocks.push((executed.header, body));
    }
    drop(builder);
    let _ = std::fs::remove_dir_all(&build_dir);

    let import_dir = tmpdir();
    let chain = open(&import_dir, genesis);
    let mut block_ms = Vec::new();
    let written_before = written_bytes();
    let start = Instant::now();
    for run in blocks.chunks(shape.blocks_per_commit) {
        let t = Instant::now();
        if let [(header, body)] = run {
            chain.import_with(header, body, &|_| shape.signatures_verified).unwrap_or_else(|e| fail(&e));
        } else {
            let sealed: Vec<SealedBlock> = run.iter().map(|(h, b)| SealedBlock::seal(h, b.clone())).collect();
            match chain.import_batch(&sealed, &|_| shape.signatures_verified) {
                Ok((_, None)) => {}
                Ok((n, Some(e))) => fail(&format!("block {n} of a run: {e}")),
                Err(e) => fail(&e),
            }
        }
        // A run's time shared among its blocks.
        let ms = t.elapsed().as_secs_f64() * 1e3 / run.len() as f64;
        block_ms.extend(std::iter::repeat_n(ms, run.len()));
    }
    let secs = start.elapsed().as_secs_f64();
    // What the imports sent to the disk (the page-cache pages they dirtied): this process
    // writes nothing else meanwhile.
    let written_mib_per_block = written_bytes().zip(written_before).map(|(after, before)| {
        round(after.saturating_sub(before) as f64 / blocks_n as f64 / (1 << 20) as f64)
    });
    let txs = blocks_n as usize * per_block;
    drop(chain);
    let _ = std::fs::remove_dir_all(&import_dir);
    block_ms.sort_by(f64::total_cmp);
    let tx_per_s = txs as f64 / secs;
    emit(&json!({
        "bench": name, "unit": "tx/s", "value": round(tx_per_s),
        "transactions": txs, "blocks": blocks_n, "txs_per_block": per_block, "funded_accounts": FUNDED,
        "signatures_verified": shape.signatures_verified, "blocks_per_commit": shape.blocks_per_commit,
        "written_mib_per_block": written_mib_per_block,
        "block_ms_median": round(block_ms[block_ms.len() / 2]), "block_ms_max": round(block_ms[block_ms.len() - 1]),
        "threads": rayon::current_num_threads(),
    }));
    tx_per_s
}

fn fail(e: &dyn std::fmt::Display) -> ! {
    crate::fail("benchmark", e)
}

fn token_code() -> Vec<u8> {
    let artifact: serde_json::Value =
        serde_json::from_str(include_str!("../../../execution-client/qoin-el/tests/contracts/Token.json"))
            .unwrap_or_else(|e| fail(&e));
    let hex = artifact["deployedBytecode"].as_str().unwrap_or_default().trim_start_matches("0x");
    hex::decode(hex).unwrap_or_else(|e| fail(&e))
}

pub(crate) fn import_transfers(shape: ImportShape) -> f64 {
    import_bench("import-transfers", false, shape)
}

pub(crate) fn import_erc20(shape: ImportShape) {
    import_bench("import-erc20", true, shape);
}

/// The bytes this process has caused to be written to storage (`write_bytes` of
/// `/proc/self/io`: the page-cache memory it dirtied, through `write` calls or a writable
/// map), where the system reports it.
fn written_bytes() -> Option<u64> {
    parse_write_bytes(&std::fs::read_to_string("/proc/self/io").ok()?)
}

fn parse_write_bytes(io: &str) -> Option<u64> {
    io.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok())
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A state of `ACCOUNTS` accounts, then blocks crediting `TOUCHED` random ones: the time to
/// compute the new root (execution of the credits is negligible) and to commit it.
pub(crate) fn state_root() {
    const ACCOUNTS: u64 = 1_000_000;
    const TOUCHED: u64 = 10_000;
    const ROUNDS: u64 = 5;
    let funded: Vec<Address> =
        (0..ACCOUNTS).map(|i| Address::from_word(keccak256(i.to_be_bytes()))).collect();
    let genesis = bench_genesis(&funded, None);
    let dir = tmpdir();
    let t = Instant::now();
    let chain = open(&dir, genesis);
    let genesis_secs = t.elapsed().as_secs_f64();
    let mut roots = Vec::new();
    let mut commits = Vec::new();
    for r in 0..ROUNDS {
        let credits: Vec<Credit> = (0..TOUCHED)
            .map(|i| Credit {
                address: pick(&funded, r * TOUCHED + i + 1_000_000_007),
                amount: U256::from(1u8),
            })
            .collect();
        let head = chain.head().unwrap_or_else(|e| fail(&e));
        let env = chain.child_env(&head, head.timestamp + 1, Address::ZERO, B256::ZERO);
        let t = Instant::now();
        let executed = chain.build(&env, Vec::new(), credits).unwrap_or_else(|e| fail(&e));
        roots.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        chain.commit_built(&executed).unwrap_or_else(|e| fail(&e));
        commits.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let rss = rss_mib();
    drop(chain);
    let _ = std::fs::remove_dir_all(&dir);
    roots.sort_by(f64::total_cmp);
    commits.sort_by(f64::total_cmp);
    emit(&json!({
        "bench": "state-root", "unit": "ms", "value": round(roots[roots.len() / 2]),
        "what": "median time to execute and compute the state root after touching accounts",
        "accounts": ACCOUNTS, "touched": TOUCHED, "rounds": ROUNDS,
        "max_ms": round(roots[roots.len() - 1]), "commit_ms_median": round(commits[commits.len() / 2]),
        "genesis_build_s": round(genesis_secs), "threads": 1,
    }));
    emit(
        &json!({"bench": "state-root", "unit": "MiB", "value": round(rss), "what": "resident memory of the process", "accounts": ACCOUNTS}),
    );
}

#[cfg(test)]
mod tests {
    use super::parse_write_bytes;

    #[test]
    fn written_bytes_come_from_the_write_bytes_line() {
        let io = "rchar: 13339\nwchar: 4043410217\nsyscr: 30\nsyscw: 603055\nread_bytes: 552960\nwrite_bytes: 29253025792\ncancelled_write_bytes: 4096\n";
        assert_eq!(parse_write_bytes(io), Some(29_253_025_792));
        assert_eq!(parse_write_bytes("rchar: 1\nwchar: 2\n"), None);
        assert_eq!(parse_write_bytes("write_bytes: lots\n"), None);
    }
}
