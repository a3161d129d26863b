//! `qoin-provider compute`: a compute provider's daemon.
//!
//! Each new head it reads the compute market's logs since the last block it read (saved with
//! its state, so a restart misses nothing), takes the jobs that fit its ask (`JobPosted`), and
//! moves every job it holds along: once the job runs and the client's module and input have
//! come (checked against the job's hashes, [`crate::job_store`]), it runs the job with the
//! deterministic runner in the background (the loop goes on, so a long job does not make it
//! miss another job's deadlines), keeps the result and a random salt on disk, and only then
//! commits;
//! it reveals in the reveal phase, and settles the job after the dispute window (or after a
//! mediator that never answered). It serves its results until `--keep-blocks` after the
//! job's end. It keeps one ask open, posting a new one when the old one nears its expiry.
//!
//! The data directory holds `state.json` (the ask, the last block read, the jobs held with
//! their results and salts) and `jobs/<id>/`.

use crate::daemon::{follow, open_jobs, serve, Daemon};
use crate::disk::write_atomic;
use crate::job_store::{Expected, JobStore, Run, Runs};
use crate::node::{decode_events, log_range, publish_endpoint, CallError, Node, Receipt};
use crate::wallet::Wallet;
use alloy_primitives::{Address, B256, U256};
use anyhow::Context as _;
use qoin_markets::compute::{commitment, ComputeMarket as C, JobResult};
use qoin_markets::job::{Limits, Outcome, Runner};
use qoin_primitives::system::COMPUTE_MARKET;
use qoin_tracing::targets::MARKET;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{info, warn};

/// An ask is replaced when fewer blocks than this remain before its expiry.
const ASK_RENEW_MARGIN: u64 = 50;

/// The job phases of `ComputeMarket.sol`.
pub mod phase {
    /// Slots being taken.
    pub const OPEN: u8 = 1;
    /// Commits.
    pub const RUNNING: u8 = 2;
    /// Reveals.
    pub const REVEALING: u8 = 3;
    /// The dispute window.
    pub const REVEALED: u8 = 4;
    /// Waiting for the mediator.
    pub const MEDIATING: u8 = 5;
    /// Over.
    pub const DONE: u8 = 6;

    /// A phase's name.
    pub fn name(p: u8) -> &'static str {
        match p {
            OPEN => "open",
            RUNNING => "running",
            REVEALING => "revealing",
            REVEALED => "revealed",
            MEDIATING => "mediating",
            DONE => "done",
            _ => "none",
        }
    }
}

/// A fault a test makes a provider commit (hidden from `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Commit, reveal and serve a wrong output (a lying provider, for tests of mediation).
    WrongOutput,
}

/// What the provider offers (`qoin-provider compute`'s options).
#[derive(Debug, Clone, clap::Args)]
pub struct ComputeConfig {
    /// Where the provider keeps its state and its jobs' files.
    #[arg(long)]
    pub datadir: PathBuf,
    /// Price in shor per unit of fuel.
    #[arg(long)]
    pub price: u128,
    /// Most fuel a job taken may have.
    #[arg(long, default_value_t = 10_000_000_000)]
    pub max_fuel: u64,
    /// Most memory a job taken may have (`64MiB`).
    #[arg(long, value_parser = crate::cli::parse_size, default_value = "256MiB")]
    pub max_memory: u64,
    /// Collateral in shor locked per job taken.
    #[arg(long, default_value_t = 1_000_000_000_000_000)]
    pub collateral_per_job: u128,
    /// The speed published in the ask, in fuel per second (default: measured at start with
    /// the runner on this machine).
    #[arg(long)]
    pub fuel_per_second: Option<u64>,
    /// Jobs at once (the ask's collateral covers this many).
    #[arg(long, default_value_t = 4)]
    pub jobs: u64,
    /// Largest job input taken (`64MiB`).
    #[arg(long, value_parser = crate::cli::parse_size, default_value = "64MiB")]
    pub max_input: u64,
    /// Blocks each ask stays open (a new one follows).
    #[arg(long, default_value_t = 10_000)]
    pub ask_blocks: u64,
    /// Blocks a job's files and result stay served after its end.
    #[arg(long, default_value_t = 10_000)]
    pub keep_blocks: u64,
    /// Where the HTTP server (module and input uploads, results) listens.
    #[arg(long = "http", default_value = "127.0.0.1:8700")]
    pub listen: SocketAddr,
    /// The URL others reach that server at, published on chain (default: http://<--http>).
    #[arg(long)]
    pub public_url: Option<String>,
    /// For tests: misbehave.
    #[arg(long, hide = true)]
    pub fault: Option<Fault>,
}

impl ComputeConfig {
    /// The URL published on chain.
    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

/// A job run here: what was committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Ran {
    output: B256,
    fuel: u64,
    salt: B256,
}

/// A job this provider holds a slot of.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Held {
    slot: u64,
    module: B256,
    input: B256,
    fuel_limit: u64,
    memory_limit: u64,
    ran: Option<Ran>,
    /// The head at which the job was seen over.
    done_at: Option<u64>,
}

/// What survives a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    ask: Option<U256>,
    /// The last block whose market logs were read.
    scanned: u64,
    jobs: BTreeMap<u64, Held>,
}

/// Runs the provider until the process is stopped.
pub async fn run(node: Node, wallet: Wallet, config: ComputeConfig) -> anyhow::Result<()> {
    let (state, store) = open_jobs(&config.datadir, config.max_input, |s: &State| {
        let open = s.jobs.iter().filter(|(_, h)| h.done_at.is_none());
        open.map(|(job, h)| (*job, Expected { module: h.module, input: h.input })).collect()
    })?;
    serve(config.listen, store.clone().router()).await?;
    let me = wallet.address();
    info!(target: MARKET, provider = %me, http = %config.listen, url = %config.public_url(), fault = ?config.fault, "compute provider");
    publish_endpoint(&node, &wallet, COMPUTE_MARKET, &config.public_url()).await?;
    let runner = Runner::new();
    let speed = match config.fuel_per_second {
        Some(speed) => speed.max(1),
        None => {
            let runner = runner.clone();
            tokio::task::spawn_blocking(move || measure_speed(&runner)).await??
        }
    };
    info!(target: MARKET, fuel_per_second = speed, "speed");
    follow(&mut Provider { node, wallet, config, store, state, me, runner, runs: Runs::default(), speed })
        .await
}

/// The runner's fuel per second on this machine: a counting loop of about 25 million fuel.
pub fn measure_speed(runner: &Runner) -> anyhow::Result<u64> {
    let module = wat::parse_str(
        r#"(module (func (export "_start") (local i32)
            (local.set 0 (i32.const 5000000))
            (loop (local.set 0 (i32.sub (local.get 0) (i32.const 1))) (br_if 0 (local.get 0)))))"#,
    )?;
    let started = std::time::Instant::now();
    let outcome = runner.run(&module, b"", &Limits::job(u64::MAX / 2, qoin_markets::job::PAGE));
    anyhow::ensure!(outcome.succeeded(), "the speed measurement did not run: {}", outcome.detail);
    Ok(((outcome.fuel as f64 / started.elapsed().as_secs_f64().max(1e-6)) as u64).max(1))
}

struct Provider {
    node: Node,
    wallet: Wallet,
    config: ComputeConfig,
    store: Arc<JobStore>,
    state: State,
    me: Address,
    runner: Runner,
    /// Runs under way.
    runs: Runs,
    /// Fuel per second, as the ask states it.
    speed: u64,
}

impl Daemon for Provider {
    fn node(&self) -> &Node {
        &self.node
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        let head = self.node.block_number().await?;
        self.ensure_ask(head).await?;
        while let Some((from, to)) = log_range(self.state.scanned, head) {
            let logs = self.node.logs(COMPUTE_MARKET, from, to).await?;
            for posted in decode_events::<C::JobPosted>(&logs, COMPUTE_MARKET) {
                self.consider(posted).await;
            }
            self.state.scanned = to;
            self.save()?;
        }
        let jobs: Vec<(u64, Held)> = self.state.jobs.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (job, held) in jobs {
            if let Err(e) = self.work(job, held, head).await {
                warn!(target: MARKET, job, "{e:#}");
            }
        }
        self.save()
    }
}

impl Provider {
    async fn call<K: alloy_sol_types::SolCall>(&self, call: &K) -> Result<K::Return, CallError> {
        self.node.call(self.me, COMPUTE_MARKET, call).await
    }

    async fn send<K: alloy_sol_types::SolCall>(&self, call: &K, value: U256) -> Result<Receipt, CallError> {
        self.node.send(&self.wallet, COMPUTE_MARKET, call, value).await
    }

    fn save(&self) -> anyhow::Result<()> {
        write_atomic(&self.config.datadir.join("state.json"), &serde_json::to_vec_pretty(&self.state)?)
    }

    async fn ensure_ask(&mut self, head: u64) -> anyhow::Result<()> {
        if let Some(id) = self.state.ask {
            let ask = self.call(&C::asksCall(id)).await?;
            if !ask.closed && ask.expiry > head + ASK_RENEW_MARGIN {
                return Ok(());
            }
            if !ask.closed {
                self.send(&C::closeAskCall { askId: id }, U256::ZERO).await?;
            }
        }
        let c = &self.config;
        let call = C::postAskCall {
            price: c.price,
            maxFuel: c.max_fuel,
            maxMemory: c.max_memory,
            fuelPerSecond: self.speed,
            collateralPerJob: c.collateral_per_job,
            expiry: head + c.ask_blocks,
        };
        let value = U256::from(c.collateral_per_job) * U256::from(c.jobs);
        let r = self.send(&call, value).await?;
        let id = r.events::<C::AskPosted>(COMPUTE_MARKET).first().map(|e| e.askId).context("no AskPosted")?;
        info!(target: MARKET, ask = %id, price = c.price, max_fuel = c.max_fuel, fuel_per_second = self.speed, jobs = c.jobs, "ask posted");
        self.state.ask = Some(id);
        self.save()
    }

    /// Takes a slot of a posted job whose terms fit the ask.
    async fn consider(&mut self, posted: C::JobPosted) {
        let job = posted.jobId.saturating_to::<u64>();
        let Some(ask) = self.state.ask else { return };
        if self.state.jobs.contains_key(&job) || posted.fuelLimit > U256::from(self.config.max_fuel) {
            return;
        }
        let Ok(j) = self.call(&C::jobsCall(posted.jobId)).await else { return };
        if j.phase != phase::OPEN || j.maxPrice < self.config.price || j.memoryLimit > self.config.max_memory
        {
            return;
        }
        match self.send(&C::takeCall { jobId: posted.jobId, askId: ask }, U256::ZERO).await {
            Ok(r) => {
                let Some(t) =
                    r.events::<C::SlotTaken>(COMPUTE_MARKET).into_iter().find(|t| t.provider == self.me)
                else {
                    return;
                };
                let held = Held {
                    slot: t.slot.saturating_to(),
                    module: j.module,
                    input: j.input,
                    fuel_limit: j.fuelLimit,
                    memory_limit: j.memoryLimit,
                    ran: None,
                    done_at: None,
                };
                self.store.expect(job, Expected { module: j.module, input: j.input });
                info!(target: MARKET, job, slot = held.slot, fuel_limit = held.fuel_limit, "slot taken");
                self.state.jobs.insert(job, held);
                if let Err(e) = self.save() {
                    warn!(target: MARKET, job, "{e:#}");
                }
            }
            Err(CallError::Refused(why)) => info!(target: MARKET, job, "not taken: {why}"),
            Err(CallError::Reverted(_)) => info!(target: MARKET, job, "not taken: another take came first"),
            Err(e) => warn!(target: MARKET, job, "take: {e:#}"),
        }
    }

    /// Keeps a finished run's result and a fresh salt, on disk before anything is committed:
    /// what this provider commits and reveals, even after a restart.
    fn keep(&mut self, job: u64, outcome: &Outcome, took: std::time::Duration) -> anyhow::Result<Ran> {
        let mut result = JobResult::of(outcome);
        if self.config.fault == Some(Fault::WrongOutput) {
            result.stdout.extend_from_slice(b" (wrong)");
        }
        self.store.set_result(job, &result)?;
        let mut salt = B256::ZERO;
        OsRng.fill_bytes(salt.as_mut_slice());
        let ran = Ran { output: result.output_hash(), fuel: outcome.fuel, salt };
        info!(target: MARKET, job, status = %outcome.status, fuel = outcome.fuel, bytes = outcome.stdout.len(),
            ms = took.as_millis() as u64, output = %ran.output, "ran");
        if let Some(h) = self.state.jobs.get_mut(&job) {
            h.ran = Some(ran.clone());
        }
        self.save()?;
        Ok(ran)
    }

    /// The job's result to commit: kept from before, or from a run that has finished (one is
    /// started once the files are here). `None` while there is none yet.
    async fn result(
        &mut self,
        job: u64,
        held: &Held,
        commit_until: u64,
        head: u64,
    ) -> anyhow::Result<Option<Ran>> {
        if let Some(ran) = &held.ran {
            return Ok(Some(ran.clone()));
        }
        match self.runs.poll(job).await? {
            Run::Finished(outcome, took) => self.keep(job, &outcome, took).map(Some),
            Run::Running => Ok(None),
            Run::NotStarted if self.store.ready(job) => {
                let limits = Limits::job(held.fuel_limit, held.memory_limit);
                self.runs.start(job, &self.store, &self.runner, limits).map(|()| None)
            }
            Run::NotStarted => {
                if head + 2 >= commit_until {
                    warn!(target: MARKET, job, commit_until, "the module or input has not come");
                }
                Ok(None)
            }
        }
    }

    /// What a held job needs now.
    async fn work(&mut self, job: u64, held: Held, head: u64) -> anyhow::Result<()> {
        let id = U256::from(job);
        if let Some(done) = held.done_at {
            if head > done + self.config.keep_blocks {
                self.store.forget(job);
                self.state.jobs.remove(&job);
                info!(target: MARKET, job, "files dropped");
            }
            return Ok(());
        }
        let j = self.call(&C::jobsCall(id)).await?;
        let slot = self.call(&C::slotsCall { _0: id, _1: U256::from(held.slot) }).await?;
        match j.phase {
            phase::RUNNING if slot.commitment == B256::ZERO && head <= j.phaseEnd => {
                let Some(ran) = self.result(job, &held, j.phaseEnd, head).await? else { return Ok(()) };
                let c = commitment(ran.output, ran.fuel, ran.salt, self.me);
                self.send(&C::commitCall { jobId: id, slot: U256::from(held.slot), c }, U256::ZERO).await?;
                info!(target: MARKET, job, "committed");
            }
            phase::REVEALING if !slot.revealed && slot.commitment != B256::ZERO && head <= j.phaseEnd => {
                let ran = held.ran.context("committed, but the result is not in state.json")?;
                let call = C::revealCall {
                    jobId: id,
                    slot: U256::from(held.slot),
                    output: ran.output,
                    fuel: ran.fuel,
                    salt: ran.salt,
                };
                self.send(&call, U256::ZERO).await?;
                info!(target: MARKET, job, output = %ran.output, fuel = ran.fuel, "revealed");
            }
            phase::RUNNING | phase::REVEALING | phase::REVEALED | phase::MEDIATING if head > j.phaseEnd => {
                // The phase is over: settle moves the job on (pays, slashes, or voids it).
                match self.send(&C::settleCall { jobId: id }, U256::ZERO).await {
                    Ok(r) => {
                        for d in r.events::<C::JobDone>(COMPUTE_MARKET) {
                            info!(target: MARKET, job, agreed = d.agreed, refunded = %d.refunded, "settled");
                        }
                    }
                    Err(CallError::Refused(why)) => info!(target: MARKET, job, "settle: {why}"),
                    Err(CallError::Reverted(_)) => info!(target: MARKET, job, "settle: another came first"),
                    Err(e) => return Err(e.into()),
                }
            }
            phase::DONE => {
                info!(target: MARKET, job, revealed = slot.revealed, output = %slot.output, "job over");
                if let Some(h) = self.state.jobs.get_mut(&job) {
                    h.done_at = Some(head);
                }
            }
            _ => {}
        }
        Ok(())
    }
}
