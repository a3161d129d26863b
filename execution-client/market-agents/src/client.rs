//! `qoin-market storage`: the client side of a storage deal.
//!
//! - `put`: erasure-codes the file (rate 1/2), commits to its chunks, posts the bid with its
//!   escrow, waits until providers have taken every slot (cancelling the bid, which refunds
//!   it, when none do before its expiry), and uploads the coded file to each provider;
//! - `get`: fetches the chunks from the deal's providers, checks every one against the
//!   deal's root, and decodes the file from whatever half of each stripe arrived;
//! - `status`: the deal as the chain has it.

use crate::node::{CallError, Node};
use crate::transfer;
use crate::wallet::Wallet;
use alloy_primitives::{Address, U256};
use anyhow::{bail, Context as _};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use qoin_markets::coding;
use qoin_markets::storage::{ChunkedFile, StorageMarket as M, CHUNK_SIZE};
use qoin_primitives::system::STORAGE_MARKET;
use std::path::Path;
use std::time::Duration;

/// The terms of a storage bid.
#[derive(Debug, Clone, clap::Args)]
pub struct PutTerms {
    /// Replicas (distinct providers), 2 to 16.
    #[arg(long, default_value_t = 2)]
    pub replicas: u8,
    /// Blocks per proving period (16 to 1,000,000).
    #[arg(long, default_value_t = 64)]
    pub period: u64,
    /// Periods the deal lasts.
    #[arg(long)]
    pub duration: u64,
    /// Most shor per byte per period the client pays each replica.
    #[arg(long)]
    pub max_price: u128,
    /// Blocks the bid stays open for providers.
    #[arg(long, default_value_t = 200)]
    pub expiry: u64,
}

/// How long an upload retries a provider that does not know of its slot yet.
const UPLOAD_WAIT: Duration = Duration::from_secs(30);

pub(crate) fn bar(multi: &MultiProgress, len: u64, what: String) -> ProgressBar {
    let bar = multi.add(ProgressBar::new(len));
    if let Ok(style) =
        ProgressStyle::with_template("{msg:24} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

pub(crate) fn refused<T>(r: Result<T, CallError>) -> anyhow::Result<T> {
    r.map_err(anyhow::Error::from)
}

/// Stores `file` under `terms`; its deal id.
pub async fn put(node: &Node, wallet: &Wallet, file: &Path, terms: &PutTerms) -> anyhow::Result<u64> {
    let plain = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let chunked = std::sync::Arc::new(ChunkedFile::new(coding::encode(&plain)?)?);
    let size = chunked.size();
    let escrow = U256::from(terms.replicas)
        * U256::from(size)
        * U256::from(terms.max_price)
        * U256::from(terms.duration);
    let head = node.block_number().await?;
    let call = M::postBidCall {
        root: chunked.root(),
        chunks: chunked.chunks(),
        replicas: terms.replicas,
        period: terms.period,
        periods: terms.duration,
        maxPrice: terms.max_price,
        expiry: head + terms.expiry,
    };
    let r = refused(node.send(wallet, STORAGE_MARKET, &call, escrow).await)?;
    let id = r.events::<M::BidPosted>(STORAGE_MARKET).first().map(|e| e.bidId).context("no BidPosted")?;
    let deal = id.saturating_to::<u64>();
    eprintln!(
        "deal {deal}: {} bytes coded to {size} ({} chunks), {} replicas, escrow {escrow} shor; waiting for providers",
        plain.len(),
        chunked.chunks(),
        terms.replicas
    );
    // Wait for every slot to be taken, or cancel at the expiry (the escrow comes back).
    loop {
        let bid = refused(node.call(wallet.address(), STORAGE_MARKET, &M::bidsCall(id)).await)?;
        if bid.start != 0 {
            break;
        }
        if node.block_number().await? > bid.expiry {
            refused(node.send(wallet, STORAGE_MARKET, &M::cancelBidCall { bidId: id }, U256::ZERO).await)?;
            bail!("deal {deal}: no providers took every slot before the bid's expiry; the bid is cancelled and its escrow refunded");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let targets = providers(node, wallet.address(), deal, terms.replicas).await?;
    let multi = MultiProgress::new();
    let mut uploads = vec![];
    for (provider, url) in targets {
        let bar = bar(&multi, chunked.size(), format!("upload to {}", short(provider)));
        let file = chunked.clone();
        let target = format!("{}/storage/{deal}", url.trim_end_matches('/'));
        uploads.push(tokio::task::spawn_blocking(move || upload_retrying(&target, file.bytes(), &bar)));
    }
    for u in uploads {
        u.await??;
    }
    Ok(deal)
}

/// Uploads `data` to `target`, showing progress on `bar`. A party learns that it holds a slot
/// (or mediates a job) from a receipt or a log, which may come a moment after the client sees
/// it on chain: "not here (yet)" (404), and a connection that broke, are retried for
/// [`UPLOAD_WAIT`].
pub(crate) fn upload_retrying(
    target: &str,
    data: &[u8],
    bar: &ProgressBar,
) -> Result<(), transfer::UploadError> {
    let agent = transfer::agent();
    let deadline = std::time::Instant::now() + UPLOAD_WAIT;
    loop {
        match transfer::upload(&agent, target, data, &|n| bar.set_position(n)) {
            // Not there yet, or the connection broke (a server may answer before reading
            // everything sent): again, until the deadline.
            Err(transfer::UploadError::Refused { status: 404, .. } | transfer::UploadError::Failed(_))
                if std::time::Instant::now() < deadline =>
            {
                bar.set_position(0);
                std::thread::sleep(Duration::from_millis(500));
            }
            r => {
                bar.finish();
                return r;
            }
        }
    }
}

pub(crate) fn short(a: Address) -> String {
    let s = a.to_string();
    format!("{}…{}", &s[..6], &s[s.len() - 4..])
}

/// The providers of a deal's slots and their published endpoints.
async fn providers(
    node: &Node,
    me: Address,
    deal: u64,
    replicas: u8,
) -> anyhow::Result<Vec<(Address, String)>> {
    let mut out = vec![];
    for i in 0..u64::from(replicas) {
        let s = refused(
            node.call(me, STORAGE_MARKET, &M::slotsCall { _0: U256::from(deal), _1: U256::from(i) }).await,
        )?;
        if s.provider == Address::ZERO {
            continue;
        }
        let url = refused(node.call(me, STORAGE_MARKET, &M::endpointCall(s.provider)).await)?;
        if url.is_empty() {
            eprintln!("provider {} publishes no endpoint", s.provider);
            continue;
        }
        out.push((s.provider, url));
    }
    Ok(out)
}

/// Retrieves deal `deal`'s file into `out`.
pub async fn get(node: &Node, me: Address, deal: u64, out: &Path) -> anyhow::Result<u64> {
    let bid = refused(node.call(me, STORAGE_MARKET, &M::bidsCall(U256::from(deal))).await)?;
    if bid.client == Address::ZERO {
        bail!("there is no deal {deal}");
    }
    let sources: Vec<String> =
        providers(node, me, deal, bid.replicas).await?.into_iter().map(|(_, u)| u).collect();
    if sources.is_empty() {
        bail!("deal {deal} has no provider with an endpoint");
    }
    let chunks = bid.chunks;
    let root = bid.root;
    let multi = MultiProgress::new();
    let bar = bar(&multi, chunks * CHUNK_SIZE as u64, "download".into());
    let got = tokio::task::spawn_blocking(move || {
        let r = transfer::fetch_all(&sources, deal, chunks, root, &|n| bar.set_position(n));
        bar.finish();
        r
    })
    .await??;
    let missing = got.iter().filter(|c| c.is_none()).count();
    if missing > 0 {
        eprintln!("{missing} of {chunks} chunks could not be fetched and verified; decoding from the rest");
    }
    let refs: Vec<Option<&[u8]>> = got.iter().map(|c| c.as_deref()).collect();
    let plain = coding::decode(&refs).with_context(|| format!("deal {deal}: the file cannot be rebuilt"))?;
    std::fs::write(out, &plain).with_context(|| format!("writing {}", out.display()))?;
    Ok(plain.len() as u64)
}

/// The deal as the chain has it, as JSON.
pub async fn status(node: &Node, me: Address, deal: u64) -> anyhow::Result<serde_json::Value> {
    let id = U256::from(deal);
    let bid = refused(node.call(me, STORAGE_MARKET, &M::bidsCall(id)).await)?;
    if bid.client == Address::ZERO {
        bail!("there is no deal {deal}");
    }
    let head = node.block_number().await?;
    let mut slots = vec![];
    for i in 0..u64::from(bid.replicas) {
        let s = refused(node.call(me, STORAGE_MARKET, &M::slotsCall { _0: id, _1: U256::from(i) }).await)?;
        slots.push(serde_json::json!({
            "slot": i, "provider": s.provider, "nextPeriod": s.next, "proven": s.proven,
            "misses": s.misses, "price": s.price.to_string(), "collateral": s.collateral.to_string(),
        }));
    }
    let state = if bid.finished {
        "finished"
    } else if bid.start == 0 {
        "open"
    } else {
        "active"
    };
    Ok(serde_json::json!({
        "deal": deal, "state": state, "client": bid.client, "root": bid.root, "chunks": bid.chunks,
        "bytes": bid.chunks * CHUNK_SIZE as u64, "replicas": bid.replicas, "period": bid.period,
        "periods": bid.periods, "start": bid.start, "escrow": bid.escrow.to_string(), "head": head, "slots": slots,
    }))
}
