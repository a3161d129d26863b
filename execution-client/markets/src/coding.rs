//! Rate-1/2 erasure coding of a file at chunk granularity (Reed-Solomon, `reed-solomon-simd`),
//! so that a replica holding the coded file loses data only when it loses more than half the
//! chunks of a stripe, which the storage market's challenges find (spec §17.1).
//!
//! Layout: the plain bytes are `len (8 bytes, big-endian) ‖ file`, zero-padded to whole
//! [`CHUNK_SIZE`] chunks; they are cut into stripes of at most [`STRIPE`] data chunks, and each
//! stripe of `k` data chunks is followed by its `k` recovery chunks. The coded file has twice
//! as many chunks as the plain one; any `k` of a stripe's `2k` chunks restore it.

use crate::storage::CHUNK_SIZE;

/// Data chunks per stripe (256 KiB): a stripe's `2 × 256` chunks code fast and a lost stripe
/// is a bounded loss.
pub const STRIPE: usize = 256;

/// Why a coded file could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum CodingError {
    /// The coded file's chunk count is not a valid layout (zero or odd).
    Layout(usize),
    /// A stripe has fewer than half its chunks: its data is lost.
    Lost {
        /// The stripe.
        stripe: usize,
        /// Chunks present.
        present: usize,
        /// Chunks needed.
        needed: usize,
    },
    /// A chunk is not [`CHUNK_SIZE`] bytes.
    ChunkSize(usize),
    /// The length prefix does not fit the data (not a coded file, or corrupted).
    Length(u64),
    /// The Reed-Solomon library refused the input.
    Codec(String),
}

impl std::fmt::Display for CodingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Layout(n) => write!(f, "{n} chunks is not a coded file (an even, non-zero count)"),
            Self::Lost { stripe, present, needed } => {
                write!(f, "stripe {stripe} has {present} of the {needed} chunks it needs: its data is lost")
            }
            Self::ChunkSize(i) => write!(f, "chunk {i} is not {CHUNK_SIZE} bytes"),
            Self::Length(l) => write!(f, "the length prefix {l} does not fit the data"),
            Self::Codec(e) => write!(f, "reed-solomon: {e}"),
        }
    }
}

impl std::error::Error for CodingError {}

/// `(first data chunk, data chunks)` of each stripe of `data_chunks` plain chunks.
fn stripes(data_chunks: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..data_chunks.div_ceil(STRIPE)).map(move |s| (s * STRIPE, STRIPE.min(data_chunks - s * STRIPE)))
}

/// Codes `file`: the bytes a client commits to and providers store (a multiple of
/// [`CHUNK_SIZE`], twice the padded plain size).
pub fn encode(file: &[u8]) -> Result<Vec<u8>, CodingError> {
    let mut plain = Vec::with_capacity(8 + file.len() + CHUNK_SIZE);
    plain.extend_from_slice(&(file.len() as u64).to_be_bytes());
    plain.extend_from_slice(file);
    let d = plain.len().div_ceil(CHUNK_SIZE);
    plain.resize(d * CHUNK_SIZE, 0);
    let mut coded = Vec::with_capacity(2 * plain.len());
    for (first, k) in stripes(d) {
        let data = &plain[first * CHUNK_SIZE..(first + k) * CHUNK_SIZE];
        let recovery = reed_solomon_simd::encode(k, k, data.chunks(CHUNK_SIZE))
            .map_err(|e| CodingError::Codec(e.to_string()))?;
        coded.extend_from_slice(data);
        for r in recovery {
            coded.extend_from_slice(&r);
        }
    }
    Ok(coded)
}

/// Restores the file from the coded file's chunks, `None` for those missing (each present one
/// must already be checked against the Merkle root: this does not detect wrong chunks).
pub fn decode(chunks: &[Option<&[u8]>]) -> Result<Vec<u8>, CodingError> {
    if chunks.is_empty() || !chunks.len().is_multiple_of(2) {
        return Err(CodingError::Layout(chunks.len()));
    }
    if let Some(i) = chunks.iter().position(|c| c.is_some_and(|c| c.len() != CHUNK_SIZE)) {
        return Err(CodingError::ChunkSize(i));
    }
    let d = chunks.len() / 2;
    let mut plain = Vec::with_capacity(d * CHUNK_SIZE);
    for (stripe, (first, k)) in stripes(d).enumerate() {
        // In the coded file, stripe `s` starts at twice its first data chunk.
        let at = 2 * first;
        let data = &chunks[at..at + k];
        let recovery = &chunks[at + k..at + 2 * k];
        if data.iter().all(Option::is_some) {
            data.iter().flatten().for_each(|c| plain.extend_from_slice(c));
            continue;
        }
        let present = data.iter().chain(recovery).filter(|c| c.is_some()).count();
        if present < k {
            return Err(CodingError::Lost { stripe, present, needed: k });
        }
        let restored = reed_solomon_simd::decode(
            k,
            k,
            data.iter().enumerate().filter_map(|(i, c)| c.map(|c| (i, c))),
            recovery.iter().enumerate().filter_map(|(i, c)| c.map(|c| (i, c))),
        )
        .map_err(|e| CodingError::Codec(e.to_string()))?;
        for (i, c) in data.iter().enumerate() {
            match (c, restored.get(&i)) {
                (Some(c), _) => plain.extend_from_slice(c),
                (None, Some(r)) => plain.extend_from_slice(r),
                (None, None) => return Err(CodingError::Codec(format!("data chunk {i} not restored"))),
            }
        }
    }
    let len = u64::from_be_bytes(plain[..8].try_into().map_err(|_| CodingError::Layout(chunks.len()))?);
    let end = usize::try_from(len).ok().and_then(|l| l.checked_add(8)).filter(|e| *e <= plain.len());
    let Some(end) = end else { return Err(CodingError::Length(len)) };
    plain.truncate(end);
    plain.drain(..8);
    Ok(plain)
}
