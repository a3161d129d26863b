//! `qoin-market compute`: the client side of a compute job.
//!
//! - `submit`: checks that the module can be a job, picks a mediator (the one given, or the
//!   cheapest registered one with an endpoint), posts the job with its escrow, sends the
//!   module and input to the mediator and to each provider as it takes its slot, and cancels
//!   the job (which refunds it) if its slots are not all taken before its expiry;
//! - `result`: waits for the job's end, then fetches the result from a provider whose
//!   revealed output is the job's (or the mediator) and checks it against the output on
//!   chain before writing it;
//! - `dispute`: contests results that agree, with the mediator's fee as a deposit;
//! - `status`: the job as the chain has it.

use crate::client::{bar, refused, short, upload_retrying};
use crate::compute_provider::phase;
use crate::node::{decode_events, Node, LOG_RANGE};
use crate::transfer;
use crate::wallet::Wallet;
use alloy_primitives::{keccak256, Address, Log, B256, U256};
use anyhow::{bail, Context as _};
use indicatif::MultiProgress;
use qoin_markets::compute::{ComputeMarket as C, JobResult};
use qoin_markets::job::Runner;
use qoin_primitives::system::COMPUTE_MARKET;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How far back `submit` looks for registered mediators, and `result` for a job's end.
const LOOKBACK: u64 = 100_000;

/// The terms of a compute job.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitTerms {
    /// The file the job reads on standard input.
    #[arg(long)]
    pub input: PathBuf,
    /// Replicas (distinct providers that run it), 1 to 8.
    #[arg(long, default_value_t = 2)]
    pub replicas: u8,
    /// Most fuel the job may use.
    #[arg(long)]
    pub fuel: u64,
    /// Most memory the job may use (`16MiB`).
    #[arg(long, value_parser = crate::cli::parse_size, default_value = "16MiB")]
    pub memory: u64,
    /// Most shor per unit of fuel the client pays each replica.
    #[arg(long)]
    pub max_price: u128,
    /// Blocks each phase lasts (commit, reveal, dispute, mediation), 4 to 100,000.
    #[arg(long, default_value_t = 20)]
    pub phase: u64,
    /// Blocks the job stays open for providers.
    #[arg(long, default_value_t = 100)]
    pub expiry: u64,
    /// The mediator (default: the cheapest registered one that publishes an endpoint).
    #[arg(long)]
    pub mediator: Option<Address>,
}

/// Reads logs of the compute market backwards from `head` (at most [`LOOKBACK`] blocks),
/// `topic1` the first indexed topic if given, until `found` says to stop.
async fn scan_back(
    node: &Node,
    head: u64,
    topic1: Option<B256>,
    mut found: impl FnMut(&[Log]) -> bool,
) -> anyhow::Result<()> {
    let floor = head.saturating_sub(LOOKBACK);
    let mut to = head;
    loop {
        let from = to.saturating_sub(LOG_RANGE - 1).max(floor);
        let logs = match topic1 {
            Some(t) => node.logs_about(COMPUTE_MARKET, t, from, to).await?,
            None => node.logs(COMPUTE_MARKET, from, to).await?,
        };
        if found(&logs) || from <= floor {
            return Ok(());
        }
        to = from - 1;
    }
}

/// The cheapest registered mediator that publishes an endpoint.
async fn pick_mediator(node: &Node, me: Address) -> anyhow::Result<(Address, U256)> {
    let head = node.block_number().await?;
    let mut seen = vec![];
    scan_back(node, head, None, |logs| {
        for r in decode_events::<C::MediatorRegistered>(logs, COMPUTE_MARKET) {
            if !seen.contains(&r.mediator) {
                seen.push(r.mediator);
            }
        }
        false
    })
    .await?;
    let mut best: Option<(Address, U256)> = None;
    for m in seen {
        let fee = refused(node.call(me, COMPUTE_MARKET, &C::mediatorFeeCall(m)).await)?;
        let url = refused(node.call(me, COMPUTE_MARKET, &C::endpointCall(m)).await)?;
        if fee.is_zero() || url.is_empty() {
            continue;
        }
        if best.is_none_or(|(_, f)| fee < f) {
            best = Some((m, fee));
        }
    }
    best.context("no registered mediator publishes an endpoint; name one with --mediator")
}

/// Sends the module and the input to the party at `url` in a blocking task.
fn send_parts(
    multi: &MultiProgress,
    who: &str,
    url: &str,
    job: u64,
    module: &std::sync::Arc<Vec<u8>>,
    input: &std::sync::Arc<Vec<u8>>,
) -> tokio::task::JoinHandle<Result<(), transfer::UploadError>> {
    let base = format!("{}/compute/{job}", url.trim_end_matches('/'));
    let module_bar = bar(multi, module.len() as u64, format!("module to {who}"));
    let input_bar = bar(multi, input.len() as u64, format!("input to {who}"));
    let (module, input) = (module.clone(), input.clone());
    tokio::task::spawn_blocking(move || {
        upload_retrying(&format!("{base}/module"), &module, &module_bar)?;
        upload_retrying(&format!("{base}/input"), &input, &input_bar)
    })
}

/// Posts the job `module_path` under `terms`; its id.
pub async fn submit(
    node: &Node,
    wallet: &Wallet,
    module_path: &Path,
    terms: &SubmitTerms,
) -> anyhow::Result<u64> {
    let module = std::fs::read(module_path).with_context(|| format!("reading {}", module_path.display()))?;
    let input = std::fs::read(&terms.input).with_context(|| format!("reading {}", terms.input.display()))?;
    Runner::new()
        .check(&module)
        .map_err(|why| anyhow::anyhow!("{} cannot be a job: {why}", module_path.display()))?;
    let me = wallet.address();
    let (mediator, fee) = match terms.mediator {
        Some(m) => (m, refused(node.call(me, COMPUTE_MARKET, &C::mediatorFeeCall(m)).await)?),
        None => pick_mediator(node, me).await?,
    };
    let escrow = U256::from(terms.replicas) * U256::from(terms.fuel) * U256::from(terms.max_price);
    let head = node.block_number().await?;
    let call = C::postJobCall {
        module: keccak256(&module),
        input: keccak256(&input),
        fuelLimit: terms.fuel,
        memoryLimit: terms.memory,
        replicas: terms.replicas,
        maxPrice: terms.max_price,
        phaseLength: terms.phase,
        expiry: head + terms.expiry,
        mediator,
    };
    let r = refused(node.send(wallet, COMPUTE_MARKET, &call, escrow).await)?;
    let id = r.events::<C::JobPosted>(COMPUTE_MARKET).first().map(|e| e.jobId).context("no JobPosted")?;
    let job = id.saturating_to::<u64>();
    eprintln!(
        "job {job}: module {} bytes, input {} bytes, {} replicas, fuel limit {}, escrow {escrow} shor, mediator {mediator} (fee {fee}); waiting for providers",
        module.len(),
        input.len(),
        terms.replicas,
        terms.fuel
    );
    let (module, input) = (std::sync::Arc::new(module), std::sync::Arc::new(input));
    let multi = MultiProgress::new();
    let mut uploads = vec![];
    let url = refused(node.call(me, COMPUTE_MARKET, &C::endpointCall(mediator)).await)?;
    if url.is_empty() {
        eprintln!("the mediator publishes no endpoint: it will fetch the job's files from the providers");
    } else {
        uploads.push((
            "the mediator".to_string(),
            send_parts(&multi, "the mediator", &url, job, &module, &input),
        ));
    }
    // Send each provider the files as soon as it takes its slot: its commit phase starts
    // when the last slot is taken.
    let mut sent = 0u8;
    loop {
        let j = refused(node.call(me, COMPUTE_MARKET, &C::jobsCall(id)).await)?;
        while sent < j.filled {
            let s =
                refused(node.call(me, COMPUTE_MARKET, &C::slotsCall { _0: id, _1: U256::from(sent) }).await)?;
            let url = refused(node.call(me, COMPUTE_MARKET, &C::endpointCall(s.provider)).await)?;
            let who = short(s.provider);
            if url.is_empty() {
                eprintln!("provider {who} publishes no endpoint; it cannot receive the job");
            } else {
                uploads
                    .push((format!("provider {who}"), send_parts(&multi, &who, &url, job, &module, &input)));
            }
            sent += 1;
        }
        if j.phase != phase::OPEN {
            break;
        }
        if node.block_number().await? > j.expiry {
            refused(node.send(wallet, COMPUTE_MARKET, &C::cancelJobCall { jobId: id }, U256::ZERO).await)?;
            bail!("job {job}: its slots were not all taken before its expiry; it is cancelled and its escrow refunded");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (who, u) in uploads {
        if let Err(e) = u.await? {
            eprintln!("job {job}: sending the files to {who} failed: {e}");
        }
    }
    Ok(job)
}

/// How a job ended, as `result` reports it.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The result, checked against the job's output.
    pub result: JobResult,
    /// Whether the replicas agreed (no mediation).
    pub agreed: bool,
    /// The escrow refunded to the client.
    pub refunded: U256,
}

/// Waits for job `job`'s end (or, with `wait` false, requires it), fetches its result and
/// writes its standard output to `out`.
pub async fn result(node: &Node, me: Address, job: u64, out: &Path, wait: bool) -> anyhow::Result<Ended> {
    let id = U256::from(job);
    let mut last = 0u8;
    let j = loop {
        let j = refused(node.call(me, COMPUTE_MARKET, &C::jobsCall(id)).await)?;
        if j.client == Address::ZERO {
            bail!("there is no job {job}");
        }
        if j.phase == phase::DONE {
            break j;
        }
        if !wait {
            bail!("job {job} is {} (not over yet)", phase::name(j.phase));
        }
        if j.phase != last {
            eprintln!("job {job}: {} until block {}", phase::name(j.phase), j.phaseEnd);
            last = j.phase;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let head = node.block_number().await?;
    let mut done = None;
    scan_back(node, head, Some(B256::from(id)), |logs| {
        done = decode_events::<C::JobDone>(logs, COMPUTE_MARKET).into_iter().last();
        done.is_some()
    })
    .await?;
    let done = done
        .with_context(|| format!("job {job} is over but its JobDone is not in the last {LOOKBACK} blocks"))?;
    if done.output == B256::ZERO {
        bail!(
            "job {job} ended without a result (no provider revealed one, or the mediator did not answer); {} shor refunded",
            done.refunded
        );
    }
    let mut sources = vec![];
    for i in 0..u64::from(j.replicas) {
        let s = refused(node.call(me, COMPUTE_MARKET, &C::slotsCall { _0: id, _1: U256::from(i) }).await)?;
        if s.revealed && s.output == done.output {
            sources.push(refused(node.call(me, COMPUTE_MARKET, &C::endpointCall(s.provider)).await)?);
        }
    }
    sources.push(refused(node.call(me, COMPUTE_MARKET, &C::endpointCall(j.mediator)).await)?);
    sources.retain(|u| !u.is_empty());
    let output = done.output;
    let multi = MultiProgress::new();
    let download = bar(&multi, 0, "download".into());
    let result = tokio::task::spawn_blocking(move || {
        let agent = transfer::agent();
        let mut why = vec![];
        let progress = |n: u64, len: Option<u64>| {
            if let Some(len) = len {
                download.set_length(len);
            }
            download.set_position(n);
        };
        for url in &sources {
            match transfer::fetch_result(&agent, url, job, output, &progress) {
                Ok(r) => {
                    download.finish();
                    return Ok(r);
                }
                Err(e) => why.push(format!("{e:#}")),
            }
        }
        Err(anyhow::anyhow!("no party served job {job}'s result: {}", why.join("; ")))
    })
    .await??;
    std::fs::write(out, &result.stdout).with_context(|| format!("writing {}", out.display()))?;
    Ok(Ended { result, agreed: done.agreed, refunded: done.refunded })
}

/// Contests job `job`'s agreeing results: the mediator re-runs it.
pub async fn dispute(node: &Node, wallet: &Wallet, job: u64) -> anyhow::Result<()> {
    let id = U256::from(job);
    let j = refused(node.call(wallet.address(), COMPUTE_MARKET, &C::jobsCall(id)).await)?;
    let fee = refused(node.call(wallet.address(), COMPUTE_MARKET, &C::mediatorFeeCall(j.mediator)).await)?;
    refused(node.send(wallet, COMPUTE_MARKET, &C::disputeCall { jobId: id }, fee).await)?;
    eprintln!("job {job}: disputed; {fee} shor deposited with mediator {}", j.mediator);
    Ok(())
}

/// The job as the chain has it, as JSON.
pub async fn status(node: &Node, me: Address, job: u64) -> anyhow::Result<serde_json::Value> {
    let id = U256::from(job);
    let j = refused(node.call(me, COMPUTE_MARKET, &C::jobsCall(id)).await)?;
    if j.client == Address::ZERO {
        bail!("there is no job {job}");
    }
    let mut slots = vec![];
    for i in 0..u64::from(j.filled) {
        let s = refused(node.call(me, COMPUTE_MARKET, &C::slotsCall { _0: id, _1: U256::from(i) }).await)?;
        let ask = refused(node.call(me, COMPUTE_MARKET, &C::asksCall(U256::from(s.askId))).await)?;
        slots.push(serde_json::json!({
            "slot": i, "provider": s.provider, "price": s.price.to_string(), "fuelPerSecond": ask.fuelPerSecond,
            "collateral": s.collateral.to_string(), "committed": s.commitment != B256::ZERO,
            "revealed": s.revealed, "output": s.output, "fuel": s.fuel,
        }));
    }
    Ok(serde_json::json!({
        "job": job, "phase": phase::name(j.phase), "phaseEnd": j.phaseEnd, "client": j.client,
        "mediator": j.mediator, "module": j.module, "input": j.input, "fuelLimit": j.fuelLimit,
        "memoryLimit": j.memoryLimit, "replicas": j.replicas, "maxPrice": j.maxPrice.to_string(),
        "escrow": j.escrow.to_string(), "disputed": j.disputed, "head": node.block_number().await?,
        "slots": slots,
    }))
}
