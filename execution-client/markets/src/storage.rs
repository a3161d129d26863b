//! The storage market (`StorageMarket.sol`): its ABI, chunk commitments, challenges, proofs.

use alloy_primitives::{keccak256, B256, U256};
use alloy_sol_types::SolValue;
use rs_merkle::{Hasher, MerkleTree};

pub use qoin_primitives::system::STORAGE_MARKET;

/// Bytes per chunk, the contract's `CHUNK_SIZE`: the unit that is challenged and priced.
pub const CHUNK_SIZE: usize = 1024;
/// Chunks challenged per replica and period, the contract's `CHALLENGES`.
pub const CHALLENGES: usize = 20;

// The contract's ABI from its committed artifact: a call struct per function, an event struct
// per event, `Refused(string)` for its errors.
alloy_sol_types::sol!(
    #[allow(missing_docs, clippy::too_many_arguments)]
    #[sol(all_derives)]
    StorageMarket,
    "../contracts/StorageMarket.json"
);

/// keccak256 with the storage market's domain separation: inner nodes are
/// `keccak256(0x01 ‖ left ‖ right)`, leaves `keccak256(0x00 ‖ chunk)` ([`leaf`]), so no inner
/// node can pass for a leaf; a node without a sibling (the last of an odd level) is carried up
/// unhashed, as rs_merkle does.
#[derive(Clone)]
pub struct ChunkHasher;

impl Hasher for ChunkHasher {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        keccak256(data).0
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(r) => {
                let mut pre = [0u8; 65];
                pre[0] = 0x01;
                pre[1..33].copy_from_slice(left);
                pre[33..].copy_from_slice(r);
                keccak256(pre).0
            }
            None => *left,
        }
    }
}

/// The leaf of a chunk: `keccak256(0x00 ‖ chunk)`.
pub fn leaf(chunk: &[u8]) -> B256 {
    let mut pre = Vec::with_capacity(1 + chunk.len());
    pre.push(0x00);
    pre.extend_from_slice(chunk);
    keccak256(pre)
}

/// A coded file cut into [`CHUNK_SIZE`] chunks (the last zero-padded) under a Merkle root:
/// what a client commits to in a bid and a provider proves it holds.
pub struct ChunkedFile {
    data: Vec<u8>,
    tree: ChunkTree,
}

/// The Merkle commitment of a file's chunks without the chunks themselves: what a provider
/// keeps in memory for a file it keeps on disk (a leaf hash per chunk and the inner nodes,
/// about 64 bytes per 1,024-byte chunk).
pub struct ChunkTree {
    chunks: usize,
    tree: MerkleTree<ChunkHasher>,
}

impl ChunkTree {
    /// The tree over the chunks whose leaf hashes ([`leaf`]) are `leaves`, in order.
    pub fn from_leaves(leaves: &[[u8; 32]]) -> Result<Self, ProofError> {
        if leaves.is_empty() {
            return Err(ProofError::Empty);
        }
        Ok(Self { chunks: leaves.len(), tree: MerkleTree::<ChunkHasher>::from_leaves(leaves) })
    }

    /// The number of chunks.
    pub fn chunks(&self) -> u64 {
        self.chunks as u64
    }

    /// The Merkle root.
    pub fn root(&self) -> B256 {
        // A non-empty tree always has a root.
        B256::from(self.tree.root().unwrap_or_default())
    }

    /// The Merkle path of chunk `i`, leaf to root, one sibling per level that has one.
    pub fn path(&self, i: u64) -> Result<Vec<B256>, ProofError> {
        let index = usize::try_from(i).ok().filter(|i| *i < self.chunks).ok_or(ProofError::OutOfRange(i))?;
        Ok(self.tree.proof(&[index]).proof_hashes().iter().map(|h| B256::from(*h)).collect())
    }
}

/// Why a proof could not be assembled.
#[derive(Debug, PartialEq, Eq)]
pub enum ProofError {
    /// The file is empty: nothing to commit to.
    Empty,
    /// A challenged index is not a chunk of this file.
    OutOfRange(u64),
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "an empty file has no chunks"),
            Self::OutOfRange(i) => write!(f, "chunk {i} is beyond the file"),
        }
    }
}

impl std::error::Error for ProofError {}

impl ChunkedFile {
    /// Cuts `data` into chunks and builds the tree.
    pub fn new(mut data: Vec<u8>) -> Result<Self, ProofError> {
        if data.is_empty() {
            return Err(ProofError::Empty);
        }
        let chunks = data.len().div_ceil(CHUNK_SIZE);
        data.resize(chunks * CHUNK_SIZE, 0);
        let leaves: Vec<[u8; 32]> = data.chunks(CHUNK_SIZE).map(|c| leaf(c).0).collect();
        Ok(Self { data, tree: ChunkTree::from_leaves(&leaves)? })
    }

    /// The number of chunks (the bid's `chunks`).
    pub fn chunks(&self) -> u64 {
        self.tree.chunks()
    }

    /// The bytes stored and priced: `chunks × CHUNK_SIZE`.
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// The Merkle root (the bid's `root`).
    pub fn root(&self) -> B256 {
        self.tree.root()
    }

    /// The whole file as committed: every chunk, the last one padded.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Chunk `i`, padded to [`CHUNK_SIZE`].
    pub fn chunk(&self, i: u64) -> Option<&[u8]> {
        let i = usize::try_from(i).ok().filter(|i| *i < self.tree.chunks)?;
        Some(&self.data[i * CHUNK_SIZE..(i + 1) * CHUNK_SIZE])
    }

    /// The Merkle path of chunk `i`, leaf to root, one sibling per level that has one.
    pub fn path(&self, i: u64) -> Result<Vec<B256>, ProofError> {
        self.tree.path(i)
    }

    /// The chunks and paths that answer `indices` (a period's [`challenges`]).
    pub fn answer(&self, indices: &[u64]) -> Result<Answer, ProofError> {
        let mut answer =
            Answer { data: Vec::with_capacity(indices.len()), paths: Vec::with_capacity(indices.len()) };
        for &i in indices {
            answer.data.push(self.chunk(i).ok_or(ProofError::OutOfRange(i))?.to_vec());
            answer.paths.push(self.path(i)?);
        }
        Ok(answer)
    }
}

/// A period's answer: the challenged chunks and their Merkle paths, in challenge order (the
/// `data` and `paths` of the contract's `prove`).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The chunks, [`CHUNK_SIZE`] bytes each.
    pub data: Vec<Vec<u8>>,
    /// Their paths, leaf to root.
    pub paths: Vec<Vec<B256>>,
}

/// Walks a Merkle path as the contract does (`verifyPath`): the check a client makes of every
/// chunk it retrieves.
pub fn verify_path(leaf: B256, mut index: u64, mut n: u64, path: &[B256], root: B256) -> bool {
    let mut h = leaf.0;
    let mut k = 0;
    while n > 1 {
        if index % 2 == 1 {
            let Some(s) = path.get(k) else { return false };
            h = ChunkHasher::concat_and_hash(&s.0, Some(&h));
            k += 1;
        } else if index + 1 < n {
            let Some(s) = path.get(k) else { return false };
            h = ChunkHasher::concat_and_hash(&h, Some(&s.0));
            k += 1;
        }
        index /= 2;
        n = n.div_ceil(2);
    }
    k == path.len() && h == root.0
}

/// The chunks challenged in period `period` of slot `slot` of deal `deal`, given `randomness`
/// (`prev_randao` of the period's first block), as the contract's `challenges` draws them.
pub fn challenges(randomness: B256, deal: u64, slot: u64, period: u64, chunks: u64) -> Vec<u64> {
    if chunks == 0 {
        return Vec::new();
    }
    let seed = keccak256((randomness, U256::from(deal), U256::from(slot), U256::from(period)).abi_encode());
    let n = U256::from(chunks);
    (0..CHALLENGES.min(chunks as usize))
        .map(|j| {
            let h = U256::from_be_bytes(keccak256((seed, U256::from(j)).abi_encode()).0);
            // Below `chunks`, so it fits.
            (h % n).to::<u64>()
        })
        .collect()
}

/// The randomness of a period: the `prev_randao` of the execution header at its first block,
/// which is the header's last RLP field (the contract reads the last 32 bytes of the RLP).
pub fn randomness_of(header_rlp: &[u8]) -> Option<B256> {
    let tail = header_rlp.len().checked_sub(33).map(|s| &header_rlp[s..])?;
    (tail[0] == 0xa0).then(|| B256::from_slice(&tail[1..]))
}

/// Longest Merkle path a chunk record may carry (a file of 2^32 chunks).
pub const MAX_PATH: usize = 32;

/// One chunk and its Merkle path, as providers serve them (spec §17.4): the 1,024-byte
/// chunk, one byte `n`, then the `n` 32-byte hashes of its path from leaf to root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord {
    /// The chunk's 1,024 bytes.
    pub chunk: Vec<u8>,
    /// Its Merkle path, leaf to root.
    pub path: Vec<B256>,
}

/// Why bytes are not chunk records.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordError {
    /// A record ends before its chunk and path length (bytes left).
    Short(usize),
    /// A path longer than any file's (its length).
    PathTooLong(usize),
    /// A path ends before its hashes.
    PathShort,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Short(n) => write!(f, "a chunk record is cut short ({n} bytes left)"),
            Self::PathTooLong(n) => write!(f, "a Merkle path of {n} hashes (at most {MAX_PATH})"),
            Self::PathShort => write!(f, "a Merkle path is cut short"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Encodes records as providers serve them.
pub fn encode_records(records: &[ChunkRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * (CHUNK_SIZE + 1 + 32 * 20));
    for r in records {
        out.extend_from_slice(&r.chunk);
        out.push(r.path.len() as u8);
        for h in &r.path {
            out.extend_from_slice(h.as_slice());
        }
    }
    out
}

/// Decodes served records; every malformation is a [`RecordError`].
pub fn decode_records(mut bytes: &[u8]) -> Result<Vec<ChunkRecord>, RecordError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < CHUNK_SIZE + 1 {
            return Err(RecordError::Short(bytes.len()));
        }
        let (chunk, rest) = bytes.split_at(CHUNK_SIZE);
        let (&n, rest) = rest.split_first().ok_or(RecordError::Short(0))?;
        let n = usize::from(n);
        if n > MAX_PATH {
            return Err(RecordError::PathTooLong(n));
        }
        if rest.len() < 32 * n {
            return Err(RecordError::PathShort);
        }
        let (path, rest) = rest.split_at(32 * n);
        out.push(ChunkRecord {
            chunk: chunk.to_vec(),
            path: path.chunks(32).map(B256::from_slice).collect(),
        });
        bytes = rest;
    }
    Ok(out)
}
