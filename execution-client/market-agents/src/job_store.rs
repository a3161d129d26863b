//! The files of the compute jobs a provider or a mediator works on, and the HTTP routes that
//! move them (spec §17.5):
//!
//! - `PUT /compute/{job}/module` and `PUT /compute/{job}/input`: the client's WASM module and
//!   input, kept only for a job this party expects (a slot it took, or a job naming it as
//!   mediator) and only if their keccak256 is the job's `module` or `input` hash;
//! - `GET /compute/{job}/module` and `GET /compute/{job}/input`: the same bytes, for a
//!   mediator or another replica that lacks them (the reader checks the hash);
//! - `GET /compute/{job}/result`: the run's [`JobResult`] (its ending and standard output),
//!   which the reader checks against the `output` on chain.
//!
//! Errors answer a status and a line saying why: `404` (not expected here, or not there
//! yet), `400` (the bytes are not the job's), `413` (too large).
//!
//! Each job's files live in `jobs/<id>/` of the data directory (`module.wasm`, `input.bin`,
//! `result.bin`), each written whole through a renamed temporary file.

use crate::daemon::{drain, read_body};
use crate::disk::write_atomic;
use alloy_primitives::{keccak256, B256};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use qoin_markets::compute::JobResult;
use qoin_markets::job::{Limits, Outcome, Runner, MAX_MODULE_BYTES};
use qoin_tracing::targets::MARKET;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::info;

/// Jobs being run on the blocking pool, by job id (a daemon's loop polls them each tick, so
/// a long run does not make it miss another job's deadline).
#[derive(Debug, Default)]
pub struct Runs(HashMap<u64, tokio::task::JoinHandle<(Outcome, Duration)>>);

/// Where a job's run stands.
#[derive(Debug)]
pub enum Run {
    /// Not started (or already taken).
    NotStarted,
    /// Under way.
    Running,
    /// Over: its outcome and how long it took (taken out of the set).
    Finished(Outcome, Duration),
}

impl Runs {
    /// Starts `job` from its module and input in `store`, within `limits`.
    pub fn start(
        &mut self,
        job: u64,
        store: &JobStore,
        runner: &Runner,
        limits: Limits,
    ) -> anyhow::Result<()> {
        let (Some(module), Some(input)) = (store.part(job, Part::Module), store.part(job, Part::Input))
        else {
            anyhow::bail!("neither the client nor a provider sent the module and the input yet");
        };
        let runner = runner.clone();
        info!(target: MARKET, job, fuel_limit = limits.fuel, "running");
        let run = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            (runner.run(&module, &input, &limits), started.elapsed())
        });
        self.0.insert(job, run);
        Ok(())
    }

    /// Where `job`'s run stands; a finished one is taken out.
    pub async fn poll(&mut self, job: u64) -> anyhow::Result<Run> {
        match self.0.get(&job) {
            None => Ok(Run::NotStarted),
            Some(run) if !run.is_finished() => Ok(Run::Running),
            Some(_) => match self.0.remove(&job) {
                Some(run) => {
                    let (outcome, took) = run.await?;
                    Ok(Run::Finished(outcome, took))
                }
                None => Ok(Run::NotStarted),
            },
        }
    }
}

/// One of a job's two inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The WASM module.
    Module,
    /// The input it reads on standard input.
    Input,
}

impl Part {
    fn file(self) -> &'static str {
        match self {
            Part::Module => "module.wasm",
            Part::Input => "input.bin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "module" => Some(Part::Module),
            "input" => Some(Part::Input),
            _ => None,
        }
    }

    /// Its name in URLs.
    pub fn name(self) -> &'static str {
        match self {
            Part::Module => "module",
            Part::Input => "input",
        }
    }
}

/// What a job's module and input must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// keccak256 of the module.
    pub module: B256,
    /// keccak256 of the input.
    pub input: B256,
}

impl Expected {
    fn hash(&self, part: Part) -> B256 {
        match part {
            Part::Module => self.module,
            Part::Input => self.input,
        }
    }
}

/// The jobs' files and which jobs are expected.
#[derive(Debug)]
pub struct JobStore {
    dir: PathBuf,
    max_input: u64,
    expected: Mutex<HashMap<u64, Expected>>,
}

type HttpError = (StatusCode, String);

impl JobStore {
    /// The store under `datadir/jobs`, taking inputs of at most `max_input` bytes.
    pub fn new(datadir: &std::path::Path, max_input: u64) -> Self {
        Self { dir: datadir.join("jobs"), max_input, expected: Mutex::default() }
    }

    fn path(&self, job: u64, file: &str) -> PathBuf {
        self.dir.join(job.to_string()).join(file)
    }

    /// Takes uploads for `job` from now on.
    pub fn expect(&self, job: u64, expected: Expected) {
        if let Ok(mut e) = self.expected.lock() {
            e.insert(job, expected);
        }
    }

    /// Drops `job`'s files and takes no more uploads for it.
    pub fn forget(&self, job: u64) {
        if let Ok(mut e) = self.expected.lock() {
            e.remove(&job);
        }
        let _ = std::fs::remove_dir_all(self.dir.join(job.to_string()));
    }

    /// The part of `job`, if it is here (it was checked against its hash when it came).
    pub fn part(&self, job: u64, part: Part) -> Option<Vec<u8>> {
        std::fs::read(self.path(job, part.file())).ok()
    }

    /// Whether both the module and the input of `job` are here.
    pub fn ready(&self, job: u64) -> bool {
        self.path(job, Part::Module.file()).exists() && self.path(job, Part::Input.file()).exists()
    }

    /// Whether uploads for `job` are taken.
    pub fn expects(&self, job: u64) -> bool {
        self.expected.lock().is_ok_and(|e| e.contains_key(&job))
    }

    /// The most bytes `part` may be.
    pub fn max(&self, part: Part) -> usize {
        match part {
            Part::Module => MAX_MODULE_BYTES,
            Part::Input => usize::try_from(self.max_input).unwrap_or(usize::MAX),
        }
    }

    /// Keeps `data` as `job`'s `part` if the job is expected and `data` hashes to it.
    pub fn put(&self, job: u64, part: Part, data: &[u8]) -> Result<(), HttpError> {
        let expected = self.expected.lock().ok().and_then(|e| e.get(&job).copied());
        let Some(expected) = expected else {
            return Err((StatusCode::NOT_FOUND, format!("job {job} is not expected here (yet)")));
        };
        let max = self.max(part);
        if data.len() > max {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a job's {} is at most {max} bytes here", part.name()),
            ));
        }
        if keccak256(data) != expected.hash(part) {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("these bytes are not job {job}'s {}", part.name()),
            ));
        }
        write_atomic(&self.path(job, part.file()), data)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
        info!(target: MARKET, job, part = part.name(), bytes = data.len(), "received");
        Ok(())
    }

    /// Keeps a run's result for `job`.
    pub fn set_result(&self, job: u64, result: &JobResult) -> anyhow::Result<()> {
        write_atomic(&self.path(job, "result.bin"), &result.encode())
    }

    /// `job`'s result, if it ran here.
    pub fn result(&self, job: u64) -> Option<JobResult> {
        let bytes = std::fs::read(self.path(job, "result.bin")).ok()?;
        JobResult::decode(&bytes).ok()
    }

    /// The HTTP routes.
    pub fn router(self: Arc<Self>) -> Router {
        let limit = usize::try_from(self.max_input).unwrap_or(usize::MAX).max(MAX_MODULE_BYTES);
        Router::new()
            .route("/compute/{job}/{part}", get(get_part).put(put_part))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self)
    }
}

fn part_of(name: &str) -> Result<Part, HttpError> {
    if name == "result" {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "a result is not uploaded\n".into()));
    }
    Part::parse(name).ok_or((StatusCode::NOT_FOUND, format!("no {name:?}: module, input or result\n")))
}

async fn put_part(
    State(store): State<Arc<JobStore>>,
    Path((job, name)): Path<(u64, String)>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, String) {
    let part = match part_of(&name) {
        Ok(p) => p,
        Err(e) => return e,
    };
    // Refused before a byte is read when the job is not expected; never more read than a
    // part may be.
    if !store.expects(job) {
        drain(body).await;
        return (StatusCode::NOT_FOUND, format!("job {job} is not expected here (yet)\n"));
    }
    let data = match read_body(headers, body, store.max(part)).await {
        Ok(data) => data,
        Err((status, why)) => return (status, format!("job {job}'s {}: {why}\n", part.name())),
    };
    match tokio::task::spawn_blocking(move || store.put(job, part, &data)).await {
        Ok(Ok(())) => (StatusCode::OK, "stored\n".into()),
        Ok(Err((status, why))) => (status, format!("{why}\n")),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

async fn get_part(
    State(store): State<Arc<JobStore>>,
    Path((job, name)): Path<(u64, String)>,
) -> Result<Vec<u8>, HttpError> {
    let found = tokio::task::spawn_blocking(move || {
        if name == "result" {
            return Ok(store.result(job).map(|r| r.encode()));
        }
        part_of(&name).map(|part| store.part(job, part))
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")))??;
    found.ok_or((StatusCode::NOT_FOUND, format!("job {job}: not here\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_expected_jobs_own_bytes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::new(dir.path(), 10);
        let status = |r: Result<(), HttpError>| r.unwrap_err().0;
        assert_eq!(status(store.put(1, Part::Module, b"m")), StatusCode::NOT_FOUND, "not expected");
        store.expect(1, Expected { module: keccak256(b"m"), input: keccak256(b"in") });
        assert_eq!(status(store.put(1, Part::Input, b"xx")), StatusCode::BAD_REQUEST, "wrong bytes");
        assert_eq!(status(store.put(1, Part::Input, &[0; 11])), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(status(store.put(1, Part::Module, b"in")), StatusCode::BAD_REQUEST, "the input as module");
        assert!(!store.ready(1) && store.part(1, Part::Input).is_none(), "nothing refused was kept");
        store.put(1, Part::Module, b"m").unwrap();
        store.put(1, Part::Input, b"in").unwrap();
        assert!(store.ready(1));
        assert_eq!(store.part(1, Part::Input).as_deref(), Some(&b"in"[..]));
        let result = JobResult { status: qoin_markets::job::Status::Exited(0), stdout: b"out".to_vec() };
        store.set_result(1, &result).unwrap();
        assert_eq!(store.result(1), Some(result));
        store.forget(1);
        assert!(!store.ready(1) && store.result(1).is_none());
        assert_eq!(status(store.put(1, Part::Module, b"m")), StatusCode::NOT_FOUND, "forgotten");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_upload_is_answered_not_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(JobStore::new(dir.path(), 8 << 20));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, store.router()).await });
        // 48 MiB for a job nobody expects: refused before it is read, yet the client (still
        // sending) gets the 404 and its reason, not a broken pipe.
        let refused = tokio::task::spawn_blocking(move || {
            crate::transfer::upload(
                &crate::transfer::agent(),
                &format!("{url}/compute/9/input"),
                &vec![1; 48 << 20],
                &|_| {},
            )
        })
        .await
        .unwrap();
        match refused {
            Err(crate::transfer::UploadError::Refused { status: 404, why, .. }) => {
                assert!(why.contains("not expected"), "{why}")
            }
            other => panic!("expected a 404 with its reason, got {other:?}"),
        }
    }
}
