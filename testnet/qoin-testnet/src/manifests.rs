//! `qoin-testnet manifests`: the same network as `up`, for Kubernetes.
//!
//! Writes, into `--out DIR`:
//!
//! | file | what |
//! |---|---|
//! | `namespace.yaml` | the namespace everything lives in |
//! | `genesis.yaml` | a ConfigMap holding the new chain's `genesis.json` |
//! | `secrets.yaml` | the engine JWT secret (one per network: each pod's two containers share it), the pods' p2p keys (so the bootnode's peer id is known beforehand) and the miners' keystores with their password |
//! | `service.yaml` | a headless Service (stable DNS names `qoin-I.qoin.NS.svc.cluster.local` for discovery) and one for the execution clients' metrics, annotated for Prometheus |
//! | `statefulset.yaml` | N pods, each a pair (`el`, `cl`) on one volume claim; pod 0 is the bootnode; the first K mine; the consensus client's metrics annotated for Prometheus |
//! | `Dockerfile` | one image with both binaries, built from the repository root |
//! | `genesis.json` | the genesis again, for tools outside the cluster |
//!
//! The keys are test keys written in the clear into `secrets.yaml` (the keystore password too):
//! a testnet's, not a validator's to keep.

use anyhow::Context as _;
use base64::Engine as _;
use qoin_crypto::keystore::{KdfParams, Keystore};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options of `qoin-testnet manifests`.
#[derive(clap::Args, Debug)]
pub(crate) struct ManifestArgs {
    /// Pairs (pods).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// How many mine (the first K pods; default all).
    #[arg(long)]
    miners: Option<usize>,
    /// Where to write the files.
    #[arg(long)]
    out: PathBuf,
    /// Namespace of every object.
    #[arg(long, default_value = "qoin")]
    namespace: String,
    /// Image with `qoin-el` and `qoin-cl` (built from the Dockerfile written beside).
    #[arg(long, default_value = "qoin:dev")]
    image: String,
    /// Target block time of the new chain, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    block_time_ms: u64,
    /// Proof-of-work search threads per miner (the initial difficulty is measured on this
    /// machine for that many threads per miner).
    #[arg(long, default_value_t = 1)]
    miner_threads: usize,
    /// Size of each pod's volume claim.
    #[arg(long, default_value = "10Gi")]
    storage: String,
    /// Do not unlock the ten dev accounts on the nodes' JSON-RPC.
    #[arg(long)]
    no_dev_accounts: bool,
}

const NAME: &str = "qoin";
const P2P_PORT: u16 = 30333;
const RPC_PORT: u16 = 8545;
const ENGINE_PORT: u16 = 8551;
const EL_METRICS_PORT: u16 = 9100;
const CL_METRICS_PORT: u16 = 9101;
/// The user the image runs as (and the volume's group).
const UID: u64 = 10001;

const DOCKERFILE: &str = r#"# The Qoin image: qoin-el and qoin-cl. Build from the repository root:
#   docker build -f DIR/Dockerfile -t qoin:dev .
FROM rust:1.92-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p qoin-el -p qoin-cl

FROM debian:bookworm-slim
RUN useradd --uid 10001 --user-group --create-home qoin
COPY --from=build /src/target/release/qoin-el /src/target/release/qoin-cl /usr/local/bin/
USER 10001
# JSON-RPC, execution metrics, consensus metrics, p2p (TCP and QUIC)
EXPOSE 8545 9100 9101 30333/tcp 30333/udp
ENTRYPOINT ["/bin/sh", "-c"]
"#;

fn labels() -> Value {
    json!({"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "qoin-testnet"})
}

fn meta(name: &str, ns: &str) -> Value {
    json!({"name": name, "namespace": ns, "labels": labels()})
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn write_yaml(path: &Path, docs: &[Value]) -> anyhow::Result<()> {
    let mut text = String::from("# Written by qoin-testnet manifests.\n");
    for d in docs {
        text.push_str("---\n");
        text.push_str(&serde_yaml_ng::to_string(d).context("YAML")?);
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The consensus client's start script: pod ordinal from the host name; the bootnode for all
/// but pod 0; the miner's keystore for the first `miners`.
fn cl_script(ns: &str, bootnode_id: &str, miners: usize, threads: usize) -> String {
    format!(
        r#"set -e
i="${{HOSTNAME##*-}}"
set -- --datadir /data/cl --genesis /etc/qoin/genesis/genesis.json \
  --execution-endpoint http://127.0.0.1:{ENGINE_PORT} --execution-jwt /etc/qoin/jwt/jwt.hex \
  --metrics.addr 0.0.0.0 --metrics.port {CL_METRICS_PORT} --p2p.addr 0.0.0.0 --p2p.port {P2P_PORT}
if [ "$i" != 0 ]; then
  set -- "$@" --bootnodes /dns4/{NAME}-0.{NAME}.{ns}.svc.cluster.local/tcp/{P2P_PORT}/p2p/{bootnode_id}
fi
if [ "$i" -lt {miners} ]; then
  set -- "$@" --keystore /data/cl/keystore --password-file /secrets/validators/password --miner.threads {threads}
fi
exec qoin-cl "$@"
"#
    )
}

/// Copies the pod's own keys out of the secrets into its volume (once).
const SETUP_SCRIPT: &str = r#"set -e
i="${HOSTNAME##*-}"
mkdir -p /data/el /data/cl/p2p /data/cl/keystore
[ -f /data/cl/p2p/node.key ] || cp "/secrets/p2p/node-$i.key" /data/cl/p2p/node.key
if [ -f "/secrets/validators/node-$i.json" ] && [ -z "$(ls -A /data/cl/keystore)" ]; then
  cp "/secrets/validators/node-$i.json" /data/cl/keystore/
fi
"#;

pub(crate) fn manifests(args: &ManifestArgs) -> anyhow::Result<()> {
    if args.nodes == 0 {
        anyhow::bail!("--nodes must be at least 1");
    }
    let miners = args.miners.unwrap_or(args.nodes);
    if miners > args.nodes {
        anyhow::bail!("--miners {miners} is more than --nodes {}", args.nodes);
    }
    let ns = args.namespace.as_str();
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    // The chain.
    let (rate, solver) = crate::dev::measure_rate(args.miner_threads)?;
    let difficulty = crate::dev::calibrated(rate * miners.max(1) as f64, args.block_time_ms);
    let genesis_path = out.join("genesis.json");
    crate::dev::write_genesis(&genesis_path, args.block_time_ms, difficulty, Default::default())?;
    let genesis = std::fs::read_to_string(&genesis_path)?;

    // Keys, made here so that the bootnode's peer id is known and each miner has its own.
    let scratch = tempdir(out)?;
    let mut p2p_keys = BTreeMap::new();
    let mut bootnode_id = String::new();
    for i in 0..args.nodes {
        let path = scratch.join(format!("node-{i}.key"));
        let key = qoin_cl_network::key::load_or_create(&path).context("p2p key")?;
        if i == 0 {
            bootnode_id = key.public().to_peer_id().to_string();
        }
        p2p_keys.insert(format!("node-{i}.key"), b64(&std::fs::read(&path)?));
    }
    let password = "testnet";
    let mut validators = BTreeMap::new();
    validators.insert("password".to_string(), b64(format!("{password}\n").as_bytes()));
    let mut coinbases = Vec::new();
    for i in 0..miners {
        let ks = Keystore::new(scratch.join(format!("ks-{i}")));
        let address = ks.create(password.as_bytes(), KdfParams::LIGHT).context("validator key")?;
        let file = std::fs::read(ks.path_of(&address))?;
        validators.insert(format!("node-{i}.json"), b64(&file));
        coinbases.push(format!("{address:#x}"));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mut jwt = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut jwt);

    write_yaml(
        &out.join("namespace.yaml"),
        &[json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels()}})],
    )?;
    write_yaml(
        &out.join("genesis.yaml"),
        &[json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("qoin-genesis", ns),
            "data": {"genesis.json": genesis}})],
    )?;
    write_yaml(
        &out.join("secrets.yaml"),
        &[
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("qoin-jwt", ns), "type": "Opaque",
                "data": {"jwt.hex": b64(hex::encode(jwt).as_bytes())}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("qoin-p2p-keys", ns), "type": "Opaque",
                "data": p2p_keys}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("qoin-validators", ns), "type": "Opaque",
                "data": validators}),
        ],
    )?;
    let selector = json!({"app.kubernetes.io/name": NAME});
    write_yaml(
        &out.join("service.yaml"),
        &[
            json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(NAME, ns), "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": true,
                "selector": selector,
                "ports": [
                    {"name": "p2p-tcp", "port": P2P_PORT, "protocol": "TCP"},
                    {"name": "p2p-quic", "port": P2P_PORT, "protocol": "UDP"},
                    {"name": "rpc", "port": RPC_PORT, "protocol": "TCP"},
                    {"name": "cl-metrics", "port": CL_METRICS_PORT, "protocol": "TCP"},
                    {"name": "el-metrics", "port": EL_METRICS_PORT, "protocol": "TCP"}
                ]
            }}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {
                "name": "qoin-el-metrics", "namespace": ns, "labels": labels(),
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": EL_METRICS_PORT.to_string(),
                    "prometheus.io/path": "/metrics"}
            }, "spec": {
                "clusterIP": "None",
                "selector": selector,
                "ports": [{"name": "el-metrics", "port": EL_METRICS_PORT, "protocol": "TCP"}]
            }}),
        ],
    )?;
    let mut el_args = vec![
        "exec qoin-el --datadir /data/el node --genesis /etc/qoin/genesis/genesis.json --mine off".to_string(),
        format!("--http.addr 0.0.0.0 --http.port {RPC_PORT} --authrpc.addr 127.0.0.1 --authrpc.port {ENGINE_PORT}"),
        format!("--authrpc.jwtsecret /etc/qoin/jwt/jwt.hex --metrics.addr 0.0.0.0 --metrics.port {EL_METRICS_PORT}"),
    ];
    if !args.no_dev_accounts {
        // Test accounts on a pod address: spendable by whoever reaches the Service, which is
        // what a test network's dev accounts are for.
        el_args.push("--dev --allow-insecure-unlock".into());
    }
    let mounts = json!([
        {"name": "data", "mountPath": "/data"},
        {"name": "genesis", "mountPath": "/etc/qoin/genesis", "readOnly": true},
        {"name": "jwt", "mountPath": "/etc/qoin/jwt", "readOnly": true},
        {"name": "validators", "mountPath": "/secrets/validators", "readOnly": true}
    ]);
    let resources = json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}});
    let statefulset = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta(NAME, ns),
        "spec": {
            "serviceName": NAME,
            "replicas": args.nodes,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels(), "annotations": {
                    "prometheus.io/scrape": "true", "prometheus.io/port": CL_METRICS_PORT.to_string(),
                    "prometheus.io/path": "/metrics",
                    "qoin.network/miners": miners.to_string(),
                    "qoin.network/coinbases": coinbases.join(",")
                }},
                "spec": {
                    "securityContext": {"runAsUser": UID, "runAsGroup": UID, "fsGroup": UID, "runAsNonRoot": true},
                    "initContainers": [{
                        "name": "setup", "image": args.image,
                        "command": ["/bin/sh", "-c", SETUP_SCRIPT],
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/data"},
                            {"name": "p2p-keys", "mountPath": "/secrets/p2p", "readOnly": true},
                            {"name": "validators", "mountPath": "/secrets/validators", "readOnly": true}
                        ]
                    }],
                    "containers": [
                        {
                            "name": "el", "image": args.image,
                            "command": ["/bin/sh", "-c", el_args.join(" ")],
                            "ports": [
                                {"name": "rpc", "containerPort": RPC_PORT, "protocol": "TCP"},
                                {"name": "el-metrics", "containerPort": EL_METRICS_PORT, "protocol": "TCP"}
                            ],
                            "readinessProbe": {"tcpSocket": {"port": RPC_PORT}, "periodSeconds": 5},
                            "resources": resources,
                            "volumeMounts": mounts
                        },
                        {
                            "name": "cl", "image": args.image,
                            "command": ["/bin/sh", "-c", cl_script(ns, &bootnode_id, miners, args.miner_threads)],
                            "ports": [
                                {"name": "p2p-tcp", "containerPort": P2P_PORT, "protocol": "TCP"},
                                {"name": "p2p-quic", "containerPort": P2P_PORT, "protocol": "UDP"},
                                {"name": "cl-metrics", "containerPort": CL_METRICS_PORT, "protocol": "TCP"}
                            ],
                            "readinessProbe": {"tcpSocket": {"port": CL_METRICS_PORT}, "periodSeconds": 5},
                            "resources": resources,
                            "volumeMounts": mounts
                        }
                    ],
                    "volumes": [
                        {"name": "genesis", "configMap": {"name": "qoin-genesis"}},
                        {"name": "jwt", "secret": {"secretName": "qoin-jwt", "defaultMode": 0o440}},
                        {"name": "p2p-keys", "secret": {"secretName": "qoin-p2p-keys", "defaultMode": 0o440}},
                        {"name": "validators", "secret": {"secretName": "qoin-validators", "defaultMode": 0o440}}
                    ]
                }
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": labels()},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": args.storage}}}
            }]
        }
    });
    write_yaml(&out.join("statefulset.yaml"), &[statefulset])?;
    std::fs::write(out.join("Dockerfile"), DOCKERFILE)?;
    tracing::info!(target: qoin_tracing::targets::TESTNET,
        "{} pods, {miners} mining ({solver} measured at {rate:.3e} candidates/s per miner here: the initial \
         difficulty assumes miners as fast as this machine)", args.nodes);
    println!(
        "wrote {}: build the image from the repository root with `docker build -f {}/Dockerfile -t {} .`, \
              then `kubectl apply -f {}`",
        out.display(),
        out.display(),
        args.image,
        out.display()
    );
    Ok(())
}

/// A fresh scratch directory inside `out` (removed when done).
fn tempdir(out: &Path) -> anyhow::Result<PathBuf> {
    let dir = out.join(format!(".keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
