//! `market-transfer`: upload and retrieval MB/s of the storage market's HTTP protocol over
//! loopback, against plain HTTP of the same bytes in the same run.
//!
//! A dev node (`qoin-el --dev --mine 250`, release) and two storage providers (the daemon's
//! own code, `storage_provider::run`, on this process's runtime) hold a deal for a 16 MiB
//! file made by `qoin-market storage put`'s code. Then, each for the measuring time:
//! - `upload`: the coded file PUT to a provider, which checks its Merkle root against the
//!   deal's and writes it to disk (synced) before answering;
//! - `retrieval`: every chunk fetched in 256-chunk records with Merkle paths and checked
//!   against the deal's root (`transfer::fetch_all`);
//! - `get`: retrieval plus the Reed-Solomon decoding back to the file (`qoin-market storage
//!   get`), MB/s of the file;
//! - the reference: the same bytes PUT to and GET from a plain HTTP server (axum, the body
//!   read and dropped, or served from memory) with the same HTTP client.

use crate::{emit, round};
use axum::routing::get;
use qoin_market_agents::client::{self, PutTerms};
use qoin_market_agents::node::Node;
use qoin_market_agents::storage_provider::{self, StorageConfig};
use qoin_market_agents::transfer;
use qoin_market_agents::wallet::Wallet;
use qoin_markets::coding;
use qoin_markets::storage::ChunkedFile;
use serde_json::json;
use std::time::{Duration, Instant};

const FILE_BYTES: usize = 16 << 20;

fn fail(e: &dyn std::fmt::Display) -> ! {
    crate::fail("market-transfer", e)
}

/// Runs `step` until `secs` have passed (at least twice); MB/s of `bytes` per step.
fn mb_per_s(secs: f64, bytes: usize, mut step: impl FnMut()) -> f64 {
    step(); // warm up
    let start = Instant::now();
    let mut n = 0u64;
    while n < 2 || start.elapsed() < Duration::from_secs_f64(secs) {
        step();
        n += 1;
    }
    (bytes as f64 * n as f64) / start.elapsed().as_secs_f64() / 1e6
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&e))
}

pub(crate) fn market_transfer(secs: f64) {
    let secret = std::env::temp_dir().join(format!("qoin-bench-transfer-{}.jwt", std::process::id()));
    let _ = qoin_engine_api::jwt::JwtSecret::load_or_create(&secret).unwrap_or_else(|e| fail(&e));
    let el = crate::rpc::start_el(&secret, "250");
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(&e));
    let dir = std::env::temp_dir().join(format!("qoin-bench-transfer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut urls = vec![];
    for account in [1u32, 2] {
        let port = free_port();
        let config = StorageConfig {
            datadir: dir.join(format!("provider{account}")),
            capacity: 256 << 20,
            price: 1,
            collateral_per_byte: 1,
            min_size: 1024,
            max_size: None,
            ask_blocks: 10_000,
            listen: ([127, 0, 0, 1], port).into(),
            public_url: None,
        };
        urls.push(format!("http://127.0.0.1:{port}"));
        let rpc = el.rpc.clone();
        rt.spawn(async move {
            let wallet = Wallet::dev(account).unwrap_or_else(|e| fail(&e));
            let node = Node::connect(&rpc).await.unwrap_or_else(|e| fail(&e));
            if let Err(e) = storage_provider::run(node, wallet, config).await {
                fail(&format!("provider {account}: {e:#}"));
            }
        });
    }
    // The file, stored as the client stores it.
    let plain: Vec<u8> =
        (0..FILE_BYTES as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let path = dir.join("file.bin");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&e));
    std::fs::write(&path, &plain).unwrap_or_else(|e| fail(&e));
    let terms = PutTerms { replicas: 2, period: 64, duration: 10, max_price: 1, expiry: 200 };
    let (deal, node) = rt.block_on(async {
        // The providers post their asks first.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let node = Node::connect(&el.rpc).await.unwrap_or_else(|e| fail(&e));
        let wallet = Wallet::dev(0).unwrap_or_else(|e| fail(&e));
        let deal =
            client::put(&node, &wallet, &path, &terms).await.unwrap_or_else(|e| fail(&format!("{e:#}")));
        (deal, node)
    });
    let coded =
        ChunkedFile::new(coding::encode(&plain).unwrap_or_else(|e| fail(&e))).unwrap_or_else(|e| fail(&e));
    let bytes = coded.bytes().to_vec();
    let agent = transfer::agent();

    // Plain HTTP of the same bytes: the reference.
    let served = bytes.clone();
    let port = free_port();
    let app = axum::Router::new()
        .route(
            "/blob",
            get(move || std::future::ready(served.clone())).put(|body: axum::body::Bytes| async move {
                std::hint::black_box(body.len());
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    rt.spawn(async move {
        if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            let _ = axum::serve(l, app).await;
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let blob = format!("http://127.0.0.1:{port}/blob");
    let raw_put = mb_per_s(secs, bytes.len(), || {
        transfer::upload(&agent, &blob, &bytes, &|_| {}).unwrap_or_else(|e| fail(&e));
    });
    let raw_get = mb_per_s(secs, bytes.len(), || {
        let mut resp = agent.get(&blob).call().unwrap_or_else(|e| fail(&e));
        let body = resp.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap_or_else(|e| fail(&e));
        assert_eq!(body.len(), bytes.len());
    });

    let target = format!("{}/storage/{deal}", urls[0]);
    let upload = mb_per_s(secs, bytes.len(), || {
        transfer::upload(&agent, &target, &bytes, &|_| {}).unwrap_or_else(|e| fail(&e));
    });
    let (chunks, root) = (coded.chunks(), coded.root());
    let retrieval = mb_per_s(secs, bytes.len(), || {
        let got = transfer::fetch_all(&urls[..1], deal, chunks, root, &|_| {}).unwrap_or_else(|e| fail(&e));
        assert!(got.iter().all(Option::is_some), "every chunk verified");
    });
    let out = dir.join("back.bin");
    let me = Wallet::dev(0).unwrap_or_else(|e| fail(&e)).address();
    let whole = mb_per_s(secs, plain.len(), || {
        rt.block_on(client::get(&node, me, deal, &out)).unwrap_or_else(|e| fail(&e));
    });
    assert!(std::fs::read(&out).ok().as_deref() == Some(&plain[..]), "the file read back");
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for (what, value, reference, unit_bytes) in [
        ("upload", upload, Some(raw_put), bytes.len()),
        ("retrieval", retrieval, Some(raw_get), bytes.len()),
        ("get", whole, None, plain.len()),
    ] {
        let mut line = json!({"bench": "market-transfer", "what": what, "unit": "MB/s", "value": round(value),
            "bytes": unit_bytes, "threads": threads});
        if let Some(r) = reference {
            line["plain_http_mb_s"] = json!(round(r));
            line["ratio"] = json!((value / r * 1000.0).round() / 1000.0);
        }
        emit(&line);
    }
    // The providers stop with the runtime, before the node they follow.
    rt.shutdown_background();
    drop(el);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&secret);
}
