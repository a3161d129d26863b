//! The consensus block header, an SSZ container.
//!
//! Field order (SSZ, little-endian integers, variable-size fields through 4-byte offsets):
//!
//! | # | field | SSZ type |
//! |---|---|---|
//! | 1 | `parent_hash` | `Vector[uint8, 32]` |
//! | 2 | `siblings` | `List[Vector[uint8, 32], 4]` |
//! | 3 | `height` | `uint64` |
//! | 4 | `timestamp_ms` | `uint64` |
//! | 5 | `difficulty` | `uint64` |
//! | 6 | `payload_hash` | `Vector[uint8, 32]` |
//! | 7 | `state_root` | `Vector[uint8, 32]` |
//! | 8 | `transactions_root` | `Vector[uint8, 32]` |
//! | 9 | `coinbase` | `Vector[uint8, 20]` |
//! | 10 | `miner_keys` | `List[uint8, 4386]` |
//! | 11 | `extra_nonce` | `uint64` |
//! | 12 | `ticket` | `List[uint8, 5908]` |
//! | 13 | `solution` | `Vector[uint8, 16]` |
//!
//! The block hash is `keccak256(ssz(header))`. The miner's ticket is a dual signature in the
//! mining domain over `keccak256(ssz(pre-image))`, where the pre-image is fields 1–10
//! (everything but `extra_nonce`, `ticket` and `solution`).

use alloy_primitives::{Address, B256};
use qoin_crypto::{CryptoError, Domain, DualSignature, Keypair, PublicKeys, Suite};
use ssz_rs::prelude::*;

/// Most siblings of its parent a block may reference.
pub const MAX_SIBLINGS: usize = 4;
/// Bytes of the PoW solution field (room for n ≤ 128 variables).
pub const SOLUTION_LEN: usize = 16;
const MAX_KEYS: usize = 1 + Suite::MAX_FALCON_PK_LEN + Suite::MAX_MLDSA_PK_LEN;
const MAX_SIG: usize = 1 + Suite::MAX_FALCON_SIG_LEN + Suite::MAX_MLDSA_SIG_LEN;
/// Largest possible SSZ encoding of a header (rejects oversized input before parsing).
pub const MAX_HEADER_SIZE: usize =
    4 * 3 + 32 * 4 + 32 * MAX_SIBLINGS + 8 * 4 + 20 + SOLUTION_LEN + MAX_KEYS + MAX_SIG;

/// Why bytes are not a valid header (or block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The SSZ structure is malformed.
    #[error("malformed SSZ: {0}")]
    Ssz(String),
    /// Larger than any valid encoding.
    #[error("{got} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Bytes received.
        got: usize,
        /// Limit.
        max: usize,
    },
    /// The miner's keys or ticket envelope is malformed.
    #[error("bad miner keys or ticket: {0}")]
    Envelope(CryptoError),
    /// The ticket does not verify against the miner's keys.
    #[error("invalid mining ticket: {0}")]
    BadTicket(CryptoError),
    /// The transactions do not hash to the header's `transactions_root`.
    #[error("transactions root mismatch: header {header}, body {body}")]
    TransactionsRoot {
        /// Root in the header.
        header: B256,
        /// Root of the body.
        body: B256,
    },
}

/// A consensus block header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Hash of the parent header.
    pub parent_hash: B256,
    /// Hashes of siblings of the parent (same parent, same height) whose work this block
    /// counts (a "generation"); at most [`MAX_SIBLINGS`].
    pub siblings: Vec<B256>,
    /// Height (genesis is 0).
    pub height: u64,
    /// Unix time in milliseconds.
    pub timestamp_ms: u64,
    /// Compact difficulty (its encoding is specified with the proof of work).
    pub difficulty: u64,
    /// Hash of the execution payload (the execution client's block hash).
    pub payload_hash: B256,
    /// State root after the payload.
    pub state_root: B256,
    /// SSZ `hash_tree_root` of the block's transaction list.
    pub transactions_root: B256,
    /// Account credited with the block reward and fees.
    pub coinbase: Address,
    /// The miner's public keys; the ticket verifies against them.
    pub miner_keys: PublicKeys,
    /// Lets a miner move to a fresh puzzle without re-signing (not covered by the ticket).
    pub extra_nonce: u64,
    /// The miner's dual signature over the pre-image, in the mining domain.
    pub ticket: DualSignature,
    /// The proof-of-work solution.
    pub solution: [u8; SOLUTION_LEN],
}

type Bytes32 = Vector<u8, 32>;

#[derive(Debug, Default, Clone, PartialEq, Eq, SimpleSerialize)]
pub(crate) struct HeaderSsz {
    parent_hash: Bytes32,
    siblings: List<Bytes32, MAX_SIBLINGS>,
    height: u64,
    timestamp_ms: u64,
    difficulty: u64,
    payload_hash: Bytes32,
    state_root: Bytes32,
    transactions_root: Bytes32,
    coinbase: Vector<u8, 20>,
    miner_keys: List<u8, MAX_KEYS>,
    extra_nonce: u64,
    ticket: List<u8, MAX_SIG>,
    solution: Vector<u8, SOLUTION_LEN>,
}

pub(crate) fn vector<const N: usize>(bytes: &[u8]) -> Vector<u8, N> {
    Vector::try_from(bytes.to_vec()).unwrap_or_else(|_| unreachable!("length fixed by the type"))
}

fn list<const N: usize>(bytes: &[u8]) -> Result<List<u8, N>, HeaderError> {
    List::try_from(bytes.to_vec()).map_err(|_| HeaderError::Ssz(format!("more than {N} bytes")))
}

/// Byte length of the header's fixed part, and where its three offsets sit.
const HEADER_FIXED_LEN: usize = 208;
const HEADER_OFFSETS: [usize; 3] = [32, 176, 188];

/// Validates an SSZ container's offset table before `ssz_rs` reads it (its derived decoder
/// does unchecked arithmetic on hostile offsets). `offsets_at` are the positions of the
/// 4-byte offsets in the fixed part of `fixed_len` bytes. The first offset must equal
/// `fixed_len` and the offsets must not decrease or pass the end, as the SSZ spec requires.
pub(crate) fn check_offsets(
    bytes: &[u8],
    fixed_len: usize,
    offsets_at: &[usize],
) -> Result<Vec<usize>, HeaderError> {
    if bytes.len() < fixed_len {
        return Err(HeaderError::Ssz(format!("{} bytes, fixed part needs {fixed_len}", bytes.len())));
    }
    let mut out = Vec::with_capacity(offsets_at.len());
    let mut prev = fixed_len;
    for (i, &pos) in offsets_at.iter().enumerate() {
        let raw: [u8; 4] = bytes
            .get(pos..pos + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| HeaderError::Ssz(format!("offset {i} out of range")))?;
        let off = u32::from_le_bytes(raw) as usize;
        if (i == 0 && off != fixed_len) || off < prev || off > bytes.len() {
            return Err(HeaderError::Ssz(format!("invalid offset {off} for variable field {i}")));
        }
        out.push(off);
        prev = off;
    }
    Ok(out)
}

pub(crate) fn check_header_offsets(bytes: &[u8]) -> Result<(), HeaderError> {
    check_offsets(bytes, HEADER_FIXED_LEN, &HEADER_OFFSETS).map(drop)
}

pub(crate) fn ssz_bytes<T: SimpleSerialize>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    // Serialising a value that was built within its type's bounds cannot fail.
    value.serialize(&mut buf).unwrap_or_else(|e| unreachable!("bounded SSZ value serialises: {e}"));
    buf
}

impl Header {
    fn siblings_ssz(&self) -> Result<List<Bytes32, MAX_SIBLINGS>, HeaderError> {
        let v: Vec<Bytes32> = self.siblings.iter().map(|h| vector(h.as_slice())).collect();
        List::try_from(v).map_err(|_| HeaderError::Ssz(format!("more than {MAX_SIBLINGS} siblings")))
    }

    pub(crate) fn to_ssz(&self) -> Result<HeaderSsz, HeaderError> {
        Ok(HeaderSsz {
            parent_hash: vector(self.parent_hash.as_slice()),
            siblings: self.siblings_ssz()?,
            height: self.height,
            timestamp_ms: self.timestamp_ms,
            difficulty: self.difficulty,
            payload_hash: vector(self.payload_hash.as_slice()),
            state_root: vector(self.state_root.as_slice()),
            transactions_root: vector(self.transactions_root.as_slice()),
            coinbase: vector(self.coinbase.as_slice()),
            miner_keys: list(&self.miner_keys.to_bytes())?,
            extra_nonce: self.extra_nonce,
            ticket: list(&self.ticket.to_bytes())?,
            solution: vector(&self.solution),
        })
    }

    pub(crate) fn from_ssz(s: &HeaderSsz) -> Result<Self, HeaderError> {
        let miner_keys = PublicKeys::from_bytes(&s.miner_keys).map_err(HeaderError::Envelope)?;
        let ticket = DualSignature::from_bytes(&s.ticket).map_err(HeaderError::Envelope)?;
        let mut solution = [0u8; SOLUTION_LEN];
        solution.copy_from_slice(&s.solution);
        Ok(Self {
            parent_hash: B256::from_slice(&s.parent_hash),
            siblings: s.siblings.iter().map(|h| B256::from_slice(h)).collect(),
            height: s.height,
            timestamp_ms: s.timestamp_ms,
            difficulty: s.difficulty,
            payload_hash: B256::from_slice(&s.payload_hash),
            state_root: B256::from_slice(&s.state_root),
            transactions_root: B256::from_slice(&s.transactions_root),
            coinbase: Address::from_slice(&s.coinbase),
            miner_keys,
            extra_nonce: s.extra_nonce,
            ticket,
            solution,
        })
    }

    /// SSZ encoding of the first `count` fields (13 = the header, 12 = the seal pre-image,
    /// 10 = the ticket pre-image). Written directly (the layout is fixed and documented in
    /// `docs/spec.md` §5); a test checks it against `ssz_rs`.
    fn ssz_prefix(&self, count: usize) -> Result<Vec<u8>, HeaderError> {
        enum Field<'a> {
            Fixed(&'a [u8]),
            Var(Vec<u8>),
        }
        if self.siblings.len() > MAX_SIBLINGS {
            return Err(HeaderError::Ssz(format!("more than {MAX_SIBLINGS} siblings")));
        }
        let (height, time, difficulty, extra) = (
            self.height.to_le_bytes(),
            self.timestamp_ms.to_le_bytes(),
            self.difficulty.to_le_bytes(),
            self.extra_nonce.to_le_bytes(),
        );
        let fields = [
            Field::Fixed(self.parent_hash.as_slice()),
            Field::Var(self.siblings.iter().flat_map(|h| h.0).collect()),
            Field::Fixed(&height),
            Field::Fixed(&time),
            Field::Fixed(&difficulty),
            Field::Fixed(self.payload_hash.as_slice()),
            Field::Fixed(self.state_root.as_slice()),
            Field::Fixed(self.transactions_root.as_slice()),
            Field::Fixed(self.coinbase.as_slice()),
            Field::Var(self.miner_keys.to_bytes()),
            Field::Fixed(&extra),
            Field::Var(self.ticket.to_bytes()),
            Field::Fixed(&self.solution),
        ];
        let fields = &fields[..count];
        let fixed_len: usize = fields.iter().map(|f| if let Field::Fixed(b) = f { b.len() } else { 4 }).sum();
        let var_len: usize = fields.iter().map(|f| if let Field::Var(b) = f { b.len() } else { 0 }).sum();
        let mut out = Vec::with_capacity(fixed_len + var_len);
        let mut offset = fixed_len;
        for f in fields {
            match f {
                Field::Fixed(b) => out.extend_from_slice(b),
                Field::Var(b) => {
                    out.extend_from_slice(&(offset as u32).to_le_bytes());
                    offset += b.len();
                }
            }
        }
        for f in fields {
            if let Field::Var(b) = f {
                out.extend_from_slice(b);
            }
        }
        Ok(out)
    }

    /// SSZ encoding. Fails only if `siblings` holds more than [`MAX_SIBLINGS`] entries.
    pub fn encode(&self) -> Result<Vec<u8>, HeaderError> {
        self.ssz_prefix(13)
    }

    /// The same encoding through `ssz_rs` (tests compare the two).
    #[cfg(test)]
    pub(crate) fn encode_with_ssz_rs(&self) -> Result<Vec<u8>, HeaderError> {
        Ok(ssz_bytes(&self.to_ssz()?))
    }

    /// Decodes an SSZ header; malformed bytes, bad envelopes and oversized input are errors.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        if bytes.len() > MAX_HEADER_SIZE {
            return Err(HeaderError::TooLarge { got: bytes.len(), max: MAX_HEADER_SIZE });
        }
        check_header_offsets(bytes)?;
        let s = HeaderSsz::deserialize(bytes).map_err(|e| HeaderError::Ssz(e.to_string()))?;
        Self::from_ssz(&s)
    }

    /// `keccak256(ssz(header))`.
    pub fn hash(&self) -> Result<B256, HeaderError> {
        Ok(alloy_primitives::keccak256(self.encode()?))
    }

    /// SSZ encoding of the pre-image: every field but `extra_nonce`, `ticket`, `solution`.
    pub fn preimage(&self) -> Result<Vec<u8>, HeaderError> {
        self.ssz_prefix(10)
    }

    /// SSZ encoding of the seal pre-image: every field but `solution` (fields 1–12). The
    /// proof-of-work puzzle is derived from it.
    pub fn seal_preimage(&self) -> Result<Vec<u8>, HeaderError> {
        self.ssz_prefix(12)
    }

    /// The message the ticket signs: `keccak256(preimage)`.
    pub fn ticket_message(&self) -> Result<B256, HeaderError> {
        Ok(alloy_primitives::keccak256(self.preimage()?))
    }

    /// Signs the ticket with the miner's key pair, which must match `miner_keys`.
    pub fn sign_ticket(&mut self, keypair: &Keypair) -> Result<(), HeaderError> {
        self.miner_keys = keypair.public().clone();
        let msg = self.ticket_message()?;
        self.ticket = keypair.sign(Domain::MiningTicket, msg.as_slice());
        Ok(())
    }

    /// Verifies the ticket against `miner_keys` in the mining domain.
    pub fn verify_ticket(&self) -> Result<(), HeaderError> {
        let msg = self.ticket_message()?;
        qoin_crypto::verify(&self.miner_keys, Domain::MiningTicket, msg.as_slice(), &self.ticket)
            .map_err(HeaderError::BadTicket)
    }

    /// The miner's address (derived from `miner_keys`).
    pub fn miner(&self) -> Address {
        self.miner_keys.address()
    }
}
