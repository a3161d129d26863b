//! `qoin-provider mediator`: a mediator's daemon.
//!
//! At start it registers (or updates) its fee and publishes its endpoint. Each new head it
//! reads the compute market's logs since the last block it read: a `JobPosted` naming it
//! makes it take that job's module and input over HTTP ([`crate::job_store`]; the client
//! sends them when it posts the job); a `MediationRequested` naming it makes it run the job
//! (in the background) with the same deterministic runner as the providers and post the true
//! result with `mediate`. A module or input the client did not send is fetched from the job's providers
//! (checked against the job's hashes). It serves its results, as providers do, until
//! `--keep-blocks` after the job's end.
//!
//! The data directory holds `state.json` (the last block read and the jobs naming it) and
//! `jobs/<id>/`.

use crate::compute_provider::phase;
use crate::daemon::{follow, open_jobs, serve, Daemon};
use crate::disk::write_atomic;
use crate::job_store::{Expected, JobStore, Part, Run, Runs};
use crate::node::{decode_events, log_range, publish_endpoint, CallError, Node};
use crate::transfer;
use crate::wallet::Wallet;
use alloy_primitives::{Address, B256, U256};
use qoin_markets::compute::{ComputeMarket as C, JobResult};
use qoin_markets::job::{Limits, Runner, MAX_MODULE_BYTES};
use qoin_primitives::system::COMPUTE_MARKET;
use qoin_tracing::targets::MARKET;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{info, warn};

/// What the mediator offers (`qoin-provider mediator`'s options).
#[derive(Debug, Clone, clap::Args)]
pub struct MediatorConfig {
    /// Where the mediator keeps its state and its jobs' files.
    #[arg(long)]
    pub datadir: PathBuf,
    /// Fee in shor per mediation (paid by whoever was wrong).
    #[arg(long)]
    pub fee: u128,
    /// Largest job input taken (`64MiB`).
    #[arg(long, value_parser = crate::cli::parse_size, default_value = "64MiB")]
    pub max_input: u64,
    /// Blocks a job's files and result stay served after its end.
    #[arg(long, default_value_t = 10_000)]
    pub keep_blocks: u64,
    /// Where the HTTP server (module and input uploads, results) listens.
    #[arg(long = "http", default_value = "127.0.0.1:8800")]
    pub listen: SocketAddr,
    /// The URL others reach that server at, published on chain (default: http://<--http>).
    #[arg(long)]
    pub public_url: Option<String>,
}

/// A job naming this mediator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Named {
    module: B256,
    input: B256,
    /// Whether mediation was requested.
    requested: bool,
    /// The result posted, once mediated.
    mediated: Option<B256>,
    done_at: Option<u64>,
}

impl Named {
    fn new(module: B256, input: B256) -> Self {
        Self { module, input, requested: false, mediated: None, done_at: None }
    }
}

/// What survives a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    scanned: u64,
    jobs: BTreeMap<u64, Named>,
}

/// Runs the mediator until the process is stopped.
pub async fn run(node: Node, wallet: Wallet, config: MediatorConfig) -> anyhow::Result<()> {
    if config.fee == 0 {
        anyhow::bail!("--fee must be above 0 (the contract registers no free mediator)");
    }
    let (state, store) = open_jobs(&config.datadir, config.max_input, |s: &State| {
        let open = s.jobs.iter().filter(|(_, n)| n.done_at.is_none());
        open.map(|(job, n)| (*job, Expected { module: n.module, input: n.input })).collect()
    })?;
    serve(config.listen, store.clone().router()).await?;
    let me = wallet.address();
    let url = config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
    info!(target: MARKET, mediator = %me, http = %config.listen, %url, fee = config.fee, "mediator");
    let fee = node.call(me, COMPUTE_MARKET, &C::mediatorFeeCall(me)).await?;
    if fee != U256::from(config.fee) {
        node.send(
            &wallet,
            COMPUTE_MARKET,
            &C::registerMediatorCall { fee: U256::from(config.fee) },
            U256::ZERO,
        )
        .await?;
        info!(target: MARKET, fee = config.fee, "registered");
    }
    publish_endpoint(&node, &wallet, COMPUTE_MARKET, &url).await?;
    let runner = Runner::new();
    follow(&mut Mediator { node, wallet, config, store, state, me, runner, runs: Runs::default() }).await
}

struct Mediator {
    node: Node,
    wallet: Wallet,
    config: MediatorConfig,
    store: Arc<JobStore>,
    state: State,
    me: Address,
    runner: Runner,
    /// Runs under way.
    runs: Runs,
}

impl Mediator {
    fn save(&self) -> anyhow::Result<()> {
        write_atomic(&self.config.datadir.join("state.json"), &serde_json::to_vec_pretty(&self.state)?)
    }
}

impl Daemon for Mediator {
    fn node(&self) -> &Node {
        &self.node
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        let head = self.node.block_number().await?;
        while let Some((from, to)) = log_range(self.state.scanned, head) {
            let logs = self.node.logs(COMPUTE_MARKET, from, to).await?;
            for posted in decode_events::<C::JobPosted>(&logs, COMPUTE_MARKET) {
                if posted.mediator != self.me {
                    continue;
                }
                let job = posted.jobId.saturating_to::<u64>();
                let expected = Expected { module: posted.module, input: posted.input };
                self.store.expect(job, expected);
                self.state.jobs.entry(job).or_insert(Named::new(posted.module, posted.input));
            }
            for asked in decode_events::<C::MediationRequested>(&logs, COMPUTE_MARKET) {
                if asked.mediator != self.me {
                    continue;
                }
                let job = asked.jobId.saturating_to::<u64>();
                info!(target: MARKET, job, until = %asked.until, "mediation requested");
                if !self.state.jobs.contains_key(&job) {
                    // Posted before this mediator first read the logs: the chain has its hashes.
                    let j = self.node.call(self.me, COMPUTE_MARKET, &C::jobsCall(asked.jobId)).await?;
                    self.store.expect(job, Expected { module: j.module, input: j.input });
                    self.state.jobs.insert(job, Named::new(j.module, j.input));
                }
                if let Some(n) = self.state.jobs.get_mut(&job) {
                    n.requested = true;
                }
            }
            self.state.scanned = to;
            self.save()?;
        }
        let jobs: Vec<(u64, Named)> = self.state.jobs.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (job, named) in jobs {
            if let Err(e) = self.work(job, named, head).await {
                warn!(target: MARKET, job, "{e:#}");
            }
        }
        self.save()
    }
}

impl Mediator {
    async fn work(&mut self, job: u64, named: Named, head: u64) -> anyhow::Result<()> {
        if let Some(done) = named.done_at {
            if head > done + self.config.keep_blocks {
                self.store.forget(job);
                self.state.jobs.remove(&job);
            }
            return Ok(());
        }
        let id = U256::from(job);
        let j = self.node.call(self.me, COMPUTE_MARKET, &C::jobsCall(id)).await?;
        if j.phase == phase::DONE {
            if let Some(n) = self.state.jobs.get_mut(&job) {
                n.done_at = Some(head);
            }
            return Ok(());
        }
        if j.phase != phase::MEDIATING || named.mediated.is_some() || head > j.phaseEnd {
            return Ok(());
        }
        // The run goes on in the background (the loop keeps serving other jobs' deadlines).
        let outcome = match self.runs.poll(job).await? {
            Run::Finished(outcome, _) => outcome,
            Run::Running => return Ok(()),
            Run::NotStarted => {
                self.fetch_missing(job, &named, j.replicas).await?;
                let limits = Limits::job(j.fuelLimit, j.memoryLimit);
                return self.runs.start(job, &self.store, &self.runner, limits);
            }
        };
        let result = JobResult::of(&outcome);
        self.store.set_result(job, &result)?;
        let output = result.output_hash();
        let call = C::mediateCall { jobId: id, output, fuel: outcome.fuel };
        match self.node.send(&self.wallet, COMPUTE_MARKET, &call, U256::ZERO).await {
            Ok(r) => {
                let slashed: Vec<String> =
                    r.events::<C::Slashed>(COMPUTE_MARKET).iter().map(|s| s.provider.to_string()).collect();
                info!(target: MARKET, job, status = %outcome.status, fuel = outcome.fuel, %output, ?slashed, "mediated");
            }
            Err(CallError::Refused(why)) => info!(target: MARKET, job, "mediate: {why}"),
            Err(e) => return Err(e.into()),
        }
        if let Some(n) = self.state.jobs.get_mut(&job) {
            n.mediated = Some(output);
        }
        Ok(())
    }

    /// Fetches a module or input the client did not send from the job's providers.
    async fn fetch_missing(&self, job: u64, named: &Named, replicas: u8) -> anyhow::Result<()> {
        let id = U256::from(job);
        let mut sources = vec![];
        for i in 0..u64::from(replicas) {
            let s =
                self.node.call(self.me, COMPUTE_MARKET, &C::slotsCall { _0: id, _1: U256::from(i) }).await?;
            let url = self.node.call(self.me, COMPUTE_MARKET, &C::endpointCall(s.provider)).await?;
            if !url.is_empty() {
                sources.push(url);
            }
        }
        for (part, hash, limit) in [
            (Part::Module, named.module, MAX_MODULE_BYTES as u64),
            (Part::Input, named.input, self.config.max_input),
        ] {
            if self.store.part(job, part).is_some() {
                continue;
            }
            let (store, sources) = (self.store.clone(), sources.clone());
            tokio::task::spawn_blocking(move || {
                let agent = transfer::agent();
                for url in &sources {
                    match transfer::fetch_part(&agent, url, job, part, hash, limit) {
                        Ok(bytes) => {
                            if store.put(job, part, &bytes).is_ok() {
                                info!(target: MARKET, job, part = part.name(), %url, "fetched from a provider");
                                return;
                            }
                        }
                        Err(e) => warn!(target: MARKET, job, "{e:#}"),
                    }
                }
            })
            .await?;
        }
        Ok(())
    }
}
