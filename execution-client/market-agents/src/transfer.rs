//! What clients and providers send each other over HTTP (spec §17.4):
//!
//! - `PUT /storage/{deal}`: the client's coded file, whole (its chunks, the last one
//!   zero-padded or not); the provider keeps it only if its Merkle root is the bid's root;
//! - `GET /storage/{deal}/chunks/{from}/{count}`: at most [`MAX_CHUNKS_PER_REQUEST`] chunks
//!   from `from`, each as a record: the 1,024-byte chunk, one byte `n`, then the `n` 32-byte
//!   hashes of its Merkle path from leaf to root. The reader checks every chunk against the
//!   deal's root before it keeps it.
//!
//! Errors answer a status and a line of text saying why. The compute jobs' routes are in
//! [`crate::job_store`]; the reads of them are here.

use crate::job_store::Part;
use alloy_primitives::{keccak256, B256};
use anyhow::{anyhow, bail, Context as _};
use qoin_markets::compute::JobResult;
use qoin_markets::job::MAX_OUTPUT_BYTES;
pub use qoin_markets::storage::{decode_records, encode_records, ChunkRecord};
use qoin_markets::storage::{leaf, verify_path, CHUNK_SIZE, MAX_PATH};
use qoin_tracing::targets::MARKET;
use std::io::Read;
use std::time::Duration;
use tracing::warn;

/// Most chunks one retrieval request may ask for (a quarter of a MiB of data).
pub const MAX_CHUNKS_PER_REQUEST: u64 = 256;

/// An HTTP agent that reads error answers instead of failing on their status.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// Why an upload did not go through.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The provider answered with an error status and its reason.
    #[error("PUT {url}: {status} {why}")]
    Refused {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The provider's reason.
        why: String,
    },
    /// The provider could not be reached, or the connection broke.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// `PUT`s `data` to `url`, reporting progress to `progress` (bytes sent so far).
pub fn upload(
    agent: &ureq::Agent,
    url: &str,
    data: &[u8],
    progress: &dyn Fn(u64),
) -> Result<(), UploadError> {
    struct Counting<'a> {
        data: &'a [u8],
        sent: u64,
        progress: &'a dyn Fn(u64),
    }
    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.data.read(buf)?;
            self.sent += n as u64;
            (self.progress)(self.sent);
            Ok(n)
        }
    }
    let mut body = Counting { data, sent: 0, progress };
    let mut resp = agent
        .put(url)
        .header("content-length", data.len().to_string())
        .send(ureq::SendBody::from_reader(&mut body))
        .with_context(|| format!("PUT {url}"))?;
    if !resp.status().is_success() {
        let why = resp.body_mut().read_to_string().unwrap_or_default().trim().to_string();
        return Err(UploadError::Refused { url: url.to_string(), status: resp.status().as_u16(), why });
    }
    Ok(())
}

/// The body of `GET url`, at most `limit` bytes; an error with the server's reason if it
/// does not answer 2xx.
fn get_bytes(agent: &ureq::Agent, url: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
    get_bytes_with(agent, url, limit, &|_, _| {})
}

/// [`get_bytes`], telling `progress` the bytes read so far and the length the server
/// declared, if it did.
fn get_bytes_with(
    agent: &ureq::Agent,
    url: &str,
    limit: u64,
    progress: &dyn Fn(u64, Option<u64>),
) -> anyhow::Result<Vec<u8>> {
    let mut resp = agent.get(url).call().with_context(|| format!("GET {url}"))?;
    if !resp.status().is_success() {
        let why = resp.body_mut().read_to_string().unwrap_or_default();
        return Err(anyhow!("GET {url}: {} {}", resp.status(), why.trim()));
    }
    let declared = resp.body().content_length();
    let mut reader = resp.body_mut().with_config().limit(limit).reader();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = reader.read(&mut buf).with_context(|| format!("GET {url}"))?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        progress(out.len() as u64, declared);
    }
}

/// Fetches a compute job's module or input from the party at `base`, checked against its
/// hash (at most `limit` bytes).
pub fn fetch_part(
    agent: &ureq::Agent,
    base: &str,
    job: u64,
    part: Part,
    hash: B256,
    limit: u64,
) -> anyhow::Result<Vec<u8>> {
    let url = format!("{}/compute/{job}/{}", base.trim_end_matches('/'), part.name());
    let bytes = get_bytes(agent, &url, limit)?;
    if keccak256(&bytes) != hash {
        bail!("GET {url}: not the job's {}", part.name());
    }
    Ok(bytes)
}

/// Fetches a compute job's result from the party at `base`, checked against the job's
/// `output` on chain.
/// `progress` is told the bytes read so far and the length declared.
pub fn fetch_result(
    agent: &ureq::Agent,
    base: &str,
    job: u64,
    output: B256,
    progress: &dyn Fn(u64, Option<u64>),
) -> anyhow::Result<JobResult> {
    let url = format!("{}/compute/{job}/result", base.trim_end_matches('/'));
    let bytes = get_bytes_with(agent, &url, MAX_OUTPUT_BYTES as u64 + 5, progress)?;
    let result = JobResult::decode(&bytes).with_context(|| format!("GET {url}"))?;
    if result.output_hash() != output {
        bail!("GET {url}: the result does not hash to the job's output");
    }
    Ok(result)
}

/// Fetches chunks `from..from + count` of a deal from the provider at `base` and checks
/// each against `root` (a file of `chunks` chunks). Chunks that do not verify are `None`.
pub fn fetch_chunks(
    agent: &ureq::Agent,
    base: &str,
    deal: u64,
    from: u64,
    count: u64,
    chunks: u64,
    root: B256,
) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
    let url = format!("{}/storage/{deal}/chunks/{from}/{count}", base.trim_end_matches('/'));
    let bytes = get_bytes(agent, &url, count * (CHUNK_SIZE as u64 + 1 + 32 * MAX_PATH as u64))?;
    let records = decode_records(&bytes).with_context(|| format!("GET {url}"))?;
    if records.len() as u64 != count {
        bail!("GET {url}: {} chunks for {count} asked", records.len());
    }
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(i, r)| verify_path(leaf(&r.chunk), from + i as u64, chunks, &r.path, root).then_some(r.chunk))
        .collect())
}

/// Chunks `from..from + count` of a deal, each from the first of `sources` that serves it
/// verified; `None` for those none did.
fn fetch_range(
    agent: &ureq::Agent,
    sources: &[String],
    deal: u64,
    from: u64,
    count: u64,
    chunks: u64,
    root: B256,
) -> Vec<Option<Vec<u8>>> {
    let mut got: Vec<Option<Vec<u8>>> = vec![None; count as usize];
    for url in sources {
        match fetch_chunks(agent, url, deal, from, count, chunks, root) {
            Ok(range) => {
                for (slot, chunk) in got.iter_mut().zip(range) {
                    if slot.is_none() {
                        *slot = chunk;
                    }
                }
                if got.iter().all(Option::is_some) {
                    break;
                }
            }
            Err(e) => warn!(target: MARKET, deal, "{e:#}"),
        }
    }
    got
}

/// A deal's coded file read from its replicas range by range, every chunk verified: what a
/// provider repairing a slot writes to disk, holding one range in memory at a time. A range
/// that no source serves whole and verified ends the read with an error.
pub struct ChunkReader {
    agent: ureq::Agent,
    sources: Vec<String>,
    deal: u64,
    chunks: u64,
    root: B256,
    next: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    /// Reads deal `deal` (`chunks` chunks under `root`) from `sources`.
    pub fn new(sources: Vec<String>, deal: u64, chunks: u64, root: B256) -> Self {
        Self { agent: agent(), sources, deal, chunks, root, next: 0, buf: Vec::new(), pos: 0 }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.next >= self.chunks {
                return Ok(0);
            }
            let count = MAX_CHUNKS_PER_REQUEST.min(self.chunks - self.next);
            let got =
                fetch_range(&self.agent, &self.sources, self.deal, self.next, count, self.chunks, self.root);
            let Some(range) = got.into_iter().collect::<Option<Vec<Vec<u8>>>>() else {
                return Err(std::io::Error::other(format!(
                    "deal {}: no replica served chunks {}..{} verified",
                    self.deal,
                    self.next,
                    self.next + count
                )));
            };
            self.buf = range.concat();
            self.pos = 0;
            self.next += count;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Ranges fetched at once by [`fetch_all`]: one request's checks overlap the next one's
/// transfer and the provider's work on a third.
pub const PARALLEL_REQUESTS: usize = 4;

/// Fetches every chunk of a deal from `sources` in turn (each range from the first source
/// that serves it whole and verified), [`PARALLEL_REQUESTS`] ranges at once; `None` for
/// chunks no source served. `progress` is told the bytes fetched so far.
pub fn fetch_all(
    sources: &[String],
    deal: u64,
    chunks: u64,
    root: B256,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
    let ranges: Vec<(u64, u64)> = (0..chunks)
        .step_by(MAX_CHUNKS_PER_REQUEST as usize)
        .map(|from| (from, MAX_CHUNKS_PER_REQUEST.min(chunks - from)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicU64::new(0);
    let fetched: Vec<std::sync::Mutex<Vec<Option<Vec<u8>>>>> =
        ranges.iter().map(|_| std::sync::Mutex::new(Vec::new())).collect();
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_REQUESTS.min(ranges.len()) {
            scope.spawn(|| {
                let agent = agent();
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(from, count)) = ranges.get(k) else { break };
                    let got = fetch_range(&agent, sources, deal, from, count, chunks, root);
                    if let Ok(mut slot) = fetched[k].lock() {
                        *slot = got;
                    }
                    let bytes = count * CHUNK_SIZE as u64;
                    progress(done.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed) + bytes);
                }
            });
        }
    });
    let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(chunks as usize);
    for (range, (_, count)) in fetched.into_iter().zip(&ranges) {
        let got = range.into_inner().map_err(|_| anyhow!("a fetch thread panicked"))?;
        if got.len() as u64 != *count {
            bail!("deal {deal}: a range was not fetched");
        }
        out.extend(got);
    }
    Ok(out)
}
