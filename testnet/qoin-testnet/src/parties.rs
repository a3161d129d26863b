//! The market parties `up` starts beside the nodes: `--storage-providers S`,
//! `--compute-providers C` and `--mediators M` run `qoin-provider storage`, `compute` and
//! `mediator` (spec §17.4-17.5), each with a key of its own funded in the genesis, its data in
//! `D/<name>/` (`storage0`, `compute0`, `mediator0`, …), its log in `D/<name>/provider.log`,
//! talking to the nodes' JSON-RPC in turn (party i to node i mod N) and serving HTTP on a free
//! loopback port. `up` returns once each has registered on chain: its endpoint published, and
//! its ask posted (providers) or its fee registered (mediators). They are listed in
//! `network.json` under `parties`, stopped by `down`, and named like nodes by `kill` and
//! `restart`.

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolEvent};
use anyhow::{bail, Context as _};
use qoin_crypto::keystore::{KdfParams, Keystore};
use qoin_markets::compute::ComputeMarket;
use qoin_markets::storage::StorageMarket;
use qoin_primitives::dev::DEV_BALANCE;
use qoin_primitives::system::{COMPUTE_MARKET, STORAGE_MARKET};
use qoin_primitives::GenesisAccount;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a party does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    Storage,
    Compute,
    Mediator,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Storage => "storage",
            Role::Compute => "compute",
            Role::Mediator => "mediator",
        }
    }

    fn market(self) -> Address {
        match self {
            Role::Storage => STORAGE_MARKET,
            Role::Compute | Role::Mediator => COMPUTE_MARKET,
        }
    }

    /// The role's options beyond the common ones: modest terms any test client can meet.
    fn options(self) -> &'static [&'static str] {
        match self {
            Role::Storage => &["--capacity", "1GiB", "--price", "1"],
            Role::Compute => &["--price", "1"],
            Role::Mediator => &["--fee", "1000000000000000"],
        }
    }
}

/// A party of the network, as `network.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Party {
    /// `storage0`, `compute1`, `mediator0`, …
    pub(crate) name: String,
    pub(crate) role: Role,
    /// The account it signs with (keystore in `D/<name>/keystore`, password in
    /// `D/<name>/password`).
    pub(crate) address: Address,
    /// The JSON-RPC it talks to.
    pub(crate) rpc: String,
    /// Its HTTP server (published on chain as its endpoint).
    pub(crate) url: String,
    pub(crate) pid: Option<u32>,
    pub(crate) command: Vec<String>,
}

/// How many parties of each role `up` starts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) storage: usize,
    pub(crate) compute: usize,
    pub(crate) mediators: usize,
}

impl Counts {
    fn roles(self) -> impl Iterator<Item = (Role, usize)> {
        [(Role::Storage, self.storage), (Role::Compute, self.compute), (Role::Mediator, self.mediators)]
            .into_iter()
            .flat_map(|(role, n)| (0..n).map(move |i| (role, i)))
    }

    pub(crate) fn any(self) -> bool {
        self.storage + self.compute + self.mediators > 0
    }
}

/// A party's key, made before the genesis that funds it.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    name: String,
    role: Role,
    address: Address,
}

/// Makes each party's key (light key derivation: test keys) under `D/<name>/`.
pub(crate) fn keys(d: &Path, counts: Counts) -> anyhow::Result<Vec<Key>> {
    counts
        .roles()
        .map(|(role, i)| {
            let name = format!("{}{i}", role.name());
            let dir = d.join(&name);
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::write(dir.join("password"), "testnet\n")?;
            let address = Keystore::new(dir.join("keystore"))
                .create(b"testnet", KdfParams::LIGHT)
                .with_context(|| format!("cannot create {name}'s key"))?;
            Ok(Key { name, role, address })
        })
        .collect()
}

/// The genesis accounts that fund the parties: a dev account's balance each.
pub(crate) fn alloc(keys: &[Key]) -> BTreeMap<Address, GenesisAccount> {
    keys.iter()
        .map(|k| (k.address, GenesisAccount { balance: U256::from(DEV_BALANCE), ..Default::default() }))
        .collect()
}

/// Each party's command line: `qoin-provider` at `bin`, party i talking to `rpcs[i % N]`,
/// its HTTP server on the port `port` gives it.
pub(crate) fn commands(
    d: &Path,
    bin: &Path,
    keys: &[Key],
    rpcs: &[String],
    log: &[String],
    mut port: impl FnMut() -> anyhow::Result<u16>,
) -> anyhow::Result<Vec<Party>> {
    let s = |p: &Path| p.display().to_string();
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let dir = d.join(&k.name);
            let rpc = rpcs[i % rpcs.len()].clone();
            let listen = format!("127.0.0.1:{}", port()?);
            let mut command = vec![s(bin), "--rpc".into(), rpc.clone(), "--keystore".into()];
            command.extend([s(&dir.join("keystore")), "--from".into(), format!("{:#x}", k.address)]);
            command.extend(["--password-file".into(), s(&dir.join("password"))]);
            command.extend(log.iter().cloned());
            command.push(k.role.name().into());
            command.extend(k.role.options().iter().map(|o| o.to_string()));
            command.extend(["--datadir".into(), s(&dir.join("data")), "--http".into(), listen.clone()]);
            Ok(Party {
                name: k.name.clone(),
                role: k.role,
                address: k.address,
                rpc,
                url: format!("http://{listen}"),
                pid: None,
                command,
            })
        })
        .collect()
}

fn call(rpc: &str, to: Address, data: Vec<u8>) -> anyhow::Result<Bytes> {
    let v = crate::net::rpc(rpc, "eth_call", &json!([{"to": to, "input": Bytes::from(data)}, "latest"]))?;
    Ok(serde_json::from_value(v)?)
}

/// Whether the party has registered: its endpoint is its URL, and its ask is posted
/// (providers) or its fee registered (mediators).
fn registered(p: &Party) -> anyhow::Result<bool> {
    let market = p.role.market();
    let endpoint = call(&p.rpc, market, StorageMarket::endpointCall(p.address).abi_encode())?;
    if StorageMarket::endpointCall::abi_decode_returns(&endpoint)? != p.url {
        return Ok(false);
    }
    Ok(match p.role {
        Role::Mediator => {
            let fee = call(&p.rpc, market, ComputeMarket::mediatorFeeCall(p.address).abi_encode())?;
            !ComputeMarket::mediatorFeeCall::abi_decode_returns(&fee)?.is_zero()
        }
        Role::Storage | Role::Compute => {
            let topic0 = match p.role {
                Role::Storage => StorageMarket::AskPosted::SIGNATURE_HASH,
                _ => ComputeMarket::AskPosted::SIGNATURE_HASH,
            };
            let filter = json!({"address": market, "fromBlock": "0x0", "toBlock": "latest",
                "topics": [topic0, null, p.address.into_word()]});
            let logs = crate::net::rpc(&p.rpc, "eth_getLogs", &json!([filter]))?;
            logs.as_array().is_some_and(|l| !l.is_empty())
        }
    })
}

/// Waits until every party has registered; a party that exited is an error naming its log.
pub(crate) fn wait_registered(d: &Path, parties: &[Party], limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    for p in parties {
        loop {
            if p.pid.is_some_and(|pid| !crate::net::alive(pid)) {
                bail!("{} exited; see {}", p.name, log_path(d, &p.name).display());
            }
            if registered(p).unwrap_or(false) {
                break;
            }
            if start.elapsed() > limit {
                bail!("{} did not register within {limit:?}; see {}", p.name, log_path(d, &p.name).display());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    Ok(())
}

/// A party's log file.
pub(crate) fn log_path(d: &Path, name: &str) -> std::path::PathBuf {
    d.join(name).join("provider.log")
}
