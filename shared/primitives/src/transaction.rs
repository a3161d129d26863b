//! The Qoin transaction: an EIP-2718 typed transaction with EIP-1559 fee fields and a
//! post-quantum signature envelope.
//!
//! ```text
//! encoded    = 0x51 ‖ rlp([chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas,
//!                         gas_limit, to, value, input, access_list,
//!                         public_keys, signature])
//! tx id      = keccak256(0x51 ‖ rlp([chain_id, nonce, max_priority_fee_per_gas,
//!                         max_fee_per_gas, gas_limit, to, value, input, access_list, sender]))
//! signature  = DualSignature over the tx id in the Transaction domain
//! ```
//!
//! `public_keys` and `signature` are RLP strings holding the suite-prefixed encodings of
//! [`PublicKeys`] and [`DualSignature`]; `sender` is the address derived from the keys. The id
//! excludes the signatures (Falcon and ML-DSA both sign with fresh randomness, so the same
//! transaction signed twice has two different signatures but one id) and includes the
//! sender (two accounts sending identical fields have different ids).
//!
//! **Impersonated envelope (development chains only).** `public_keys = 0x00 ‖ sender (20
//! bytes)` and `signature = 0x00`: a transaction that names its sender and carries no
//! signature, made by a development node for `anvil_impersonateAccount`. It decodes (so a dev
//! chain's blocks read back), but [`SignedTx::verify_signature`] always refuses it, so a pool,
//! a block import or a consensus client that checks signatures never accepts one.

use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use qoin_crypto::{CryptoError, Domain, DualSignature, Keypair, PublicKeys};

/// The EIP-2718 type byte of a Qoin transaction (`'Q'`).
pub const QOIN_TX_TYPE: u8 = 0x51;
/// Largest accepted encoded transaction (as geth's 128 KiB pool limit).
pub const MAX_TX_SIZE: usize = 128 * 1024;

/// Why bytes are not a valid Qoin transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Nothing to decode.
    #[error("empty transaction")]
    Empty,
    /// A legacy or EIP-2718 Ethereum transaction, signed with ECDSA.
    #[error(
        "ECDSA-signed Ethereum transactions (type {0:#04x}) are not accepted: Qoin requires a \
         post-quantum transaction of type 0x51 signed with both Falcon-512 and ML-DSA-44; sign it \
         with a Qoin keystore account (eth_sendTransaction on a node holding the key, or the \
         Qoin SDK) instead"
    )]
    EcdsaNotAccepted(u8),
    /// An unknown type byte.
    #[error("unknown transaction type {0:#04x}")]
    UnknownType(u8),
    /// Larger than [`MAX_TX_SIZE`].
    #[error("transaction of {0} bytes exceeds the {MAX_TX_SIZE}-byte limit")]
    TooLarge(usize),
    /// The RLP body is malformed.
    #[error("malformed transaction RLP: {0}")]
    Rlp(alloy_rlp::Error),
    /// Bytes after the RLP list.
    #[error("{0} trailing bytes after the transaction")]
    TrailingBytes(usize),
    /// The keys or signature envelope is malformed.
    #[error("bad signature envelope: {0}")]
    Envelope(CryptoError),
    /// The signature does not verify.
    #[error("invalid transaction signature: {0}")]
    BadSignature(CryptoError),
    /// An impersonated (unsigned) transaction, which only a development node accepts.
    #[error(
        "transaction from {0} is impersonated (signature suite 0x00) and carries no signature: only a \
         development node impersonating that account accepts it"
    )]
    Impersonated(Address),
}

/// The suite byte of the impersonated envelope (see the module docs).
pub const IMPERSONATED_SUITE: u8 = 0x00;

/// How a transaction proves its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    /// Public keys and the dual signature over the id.
    Signed { keys: PublicKeys, signature: DualSignature },
    /// No proof: a development node's impersonation (the sender is named in the envelope).
    Impersonated,
}

/// One entry of an EIP-2930 access list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, RlpEncodable, RlpDecodable)]
pub struct AccessListItem {
    /// Account accessed.
    pub address: Address,
    /// Storage slots accessed.
    pub storage_keys: Vec<B256>,
}

/// The fields a sender chooses: EIP-1559 fees, the call, the access list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxRequest {
    /// Chain the transaction is valid on (replay protection).
    pub chain_id: u64,
    /// Sender's nonce.
    pub nonce: u64,
    /// Tip per gas paid to the miner.
    pub max_priority_fee_per_gas: u128,
    /// Highest total fee per gas (base fee + tip).
    pub max_fee_per_gas: u128,
    /// Gas limit.
    pub gas_limit: u64,
    /// Recipient, or `Create` to deploy a contract.
    pub to: TxKind,
    /// Value transferred, in shor.
    pub value: U256,
    /// Call data or init code.
    pub input: Bytes,
    /// EIP-2930 access list.
    pub access_list: Vec<AccessListItem>,
}

#[derive(RlpEncodable)]
struct IdPayload<'a> {
    chain_id: u64,
    nonce: u64,
    max_priority_fee_per_gas: u128,
    max_fee_per_gas: u128,
    gas_limit: u64,
    to: TxKind,
    value: U256,
    input: &'a Bytes,
    access_list: &'a Vec<AccessListItem>,
    sender: Address,
}

#[derive(RlpEncodable, RlpDecodable)]
struct Wire {
    chain_id: u64,
    nonce: u64,
    max_priority_fee_per_gas: u128,
    max_fee_per_gas: u128,
    gas_limit: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    access_list: Vec<AccessListItem>,
    public_keys: Bytes,
    signature: Bytes,
}

impl Wire {
    fn new(t: &TxRequest, public_keys: Vec<u8>, signature: Vec<u8>) -> Self {
        Self {
            chain_id: t.chain_id,
            nonce: t.nonce,
            max_priority_fee_per_gas: t.max_priority_fee_per_gas,
            max_fee_per_gas: t.max_fee_per_gas,
            gas_limit: t.gas_limit,
            to: t.to,
            value: t.value,
            input: t.input.clone(),
            access_list: t.access_list.clone(),
            public_keys: public_keys.into(),
            signature: signature.into(),
        }
    }

    /// `0x51 ‖ rlp(...)`.
    fn encoded(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.length());
        out.push(QOIN_TX_TYPE);
        self.encode(&mut out);
        out
    }
}

/// `0x51 ‖ rlp(...)` of a request with any envelope bytes (tests build malformed ones).
#[cfg(test)]
pub(crate) fn encode_with(t: &TxRequest, public_keys: Vec<u8>, signature: Vec<u8>) -> Vec<u8> {
    Wire::new(t, public_keys, signature).encoded()
}

impl TxRequest {
    /// The transaction id this request has when sent by `sender` (see the module docs).
    pub fn id_for(&self, sender: Address) -> B256 {
        alloy_primitives::keccak256(self.id_preimage(sender))
    }

    /// The bytes hashed into the id: `0x51 ‖ rlp([..fields, sender])`.
    pub fn id_preimage(&self, sender: Address) -> Vec<u8> {
        let payload = IdPayload {
            chain_id: self.chain_id,
            nonce: self.nonce,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            max_fee_per_gas: self.max_fee_per_gas,
            gas_limit: self.gas_limit,
            to: self.to,
            value: self.value,
            input: &self.input,
            access_list: &self.access_list,
            sender,
        };
        let mut buf = Vec::with_capacity(1 + payload.length());
        buf.push(QOIN_TX_TYPE);
        payload.encode(&mut buf);
        buf
    }

    /// Signs the request with both keys.
    pub fn sign(self, keypair: &Keypair) -> SignedTx {
        let sender = keypair.address();
        let id = self.id_for(sender);
        let signature = keypair.sign(Domain::Transaction, id.as_slice());
        SignedTx { tx: self, auth: Auth::Signed { keys: keypair.public().clone(), signature }, id, sender }
    }

    /// An unsigned transaction naming `sender`, for a development node that impersonates it
    /// (see the module docs): every signature check refuses it.
    pub fn impersonated(self, sender: Address) -> SignedTx {
        let id = self.id_for(sender);
        SignedTx { tx: self, auth: Auth::Impersonated, id, sender }
    }
}

/// A signed Qoin transaction, with its id and sender cached.
///
/// Decoding checks structure (type, RLP, envelope lengths) but not the signature, which
/// costs ~60 µs: call [`SignedTx::verify_signature`] (or batch them) before trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    tx: TxRequest,
    auth: Auth,
    id: B256,
    sender: Address,
}

impl SignedTx {
    /// Assembles a transaction from a request, keys and signature (not verified).
    pub fn from_parts(tx: TxRequest, keys: PublicKeys, signature: DualSignature) -> Self {
        let sender = keys.address();
        let id = tx.id_for(sender);
        Self { tx, auth: Auth::Signed { keys, signature }, id, sender }
    }

    /// The sender's chosen fields.
    pub fn request(&self) -> &TxRequest {
        &self.tx
    }
    /// The sender's public keys (`None` for an impersonated transaction).
    pub fn public_keys(&self) -> Option<&PublicKeys> {
        match &self.auth {
            Auth::Signed { keys, .. } => Some(keys),
            Auth::Impersonated => None,
        }
    }
    /// The dual signature (`None` for an impersonated transaction).
    pub fn signature(&self) -> Option<&DualSignature> {
        match &self.auth {
            Auth::Signed { signature, .. } => Some(signature),
            Auth::Impersonated => None,
        }
    }
    /// Whether this is an unsigned, impersonated transaction (development chains only).
    pub fn is_impersonated(&self) -> bool {
        self.auth == Auth::Impersonated
    }
    /// The suite byte of the envelope ([`IMPERSONATED_SUITE`] when impersonated).
    pub fn suite_byte(&self) -> u8 {
        match &self.auth {
            Auth::Signed { signature, .. } => signature.suite().as_byte(),
            Auth::Impersonated => IMPERSONATED_SUITE,
        }
    }
    /// The envelope's signature field as encoded (`0x00` when impersonated).
    pub fn signature_bytes(&self) -> Vec<u8> {
        match &self.auth {
            Auth::Signed { signature, .. } => signature.to_bytes(),
            Auth::Impersonated => vec![IMPERSONATED_SUITE],
        }
    }
    /// The transaction id (hash without signatures).
    pub fn id(&self) -> B256 {
        self.id
    }
    /// The sender's address, derived from its keys.
    pub fn sender(&self) -> Address {
        self.sender
    }

    /// Checks the dual signature over the id.
    pub fn verify_signature(&self) -> Result<(), TxError> {
        match &self.auth {
            Auth::Signed { keys, signature } => {
                qoin_crypto::verify(keys, Domain::Transaction, self.id.as_slice(), signature)
                    .map_err(TxError::BadSignature)
            }
            Auth::Impersonated => Err(TxError::Impersonated(self.sender)),
        }
    }

    fn wire(&self) -> Wire {
        let public_keys = match &self.auth {
            Auth::Signed { keys, .. } => keys.to_bytes(),
            Auth::Impersonated => [&[IMPERSONATED_SUITE][..], self.sender.as_slice()].concat(),
        };
        Wire::new(&self.tx, public_keys, self.signature_bytes())
    }

    /// EIP-2718 encoding: `0x51 ‖ rlp(...)`.
    pub fn encode(&self) -> Vec<u8> {
        self.wire().encoded()
    }

    /// Decodes an EIP-2718 encoded transaction; every malformation is a [`TxError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, TxError> {
        if bytes.len() > MAX_TX_SIZE {
            return Err(TxError::TooLarge(bytes.len()));
        }
        let (&ty, mut rest) = bytes.split_first().ok_or(TxError::Empty)?;
        match ty {
            QOIN_TX_TYPE => {}
            0x00..=0x04 => return Err(TxError::EcdsaNotAccepted(ty)),
            // A legacy transaction starts with an RLP list header.
            0xc0..=0xff => return Err(TxError::EcdsaNotAccepted(0x00)),
            other => return Err(TxError::UnknownType(other)),
        }
        let wire = Wire::decode(&mut rest).map_err(TxError::Rlp)?;
        if !rest.is_empty() {
            return Err(TxError::TrailingBytes(rest.len()));
        }
        let tx = TxRequest {
            chain_id: wire.chain_id,
            nonce: wire.nonce,
            max_priority_fee_per_gas: wire.max_priority_fee_per_gas,
            max_fee_per_gas: wire.max_fee_per_gas,
            gas_limit: wire.gas_limit,
            to: wire.to,
            value: wire.value,
            input: wire.input,
            access_list: wire.access_list,
        };
        if wire.public_keys.first() == Some(&IMPERSONATED_SUITE) {
            let sender = match (&wire.public_keys[1..], &wire.signature[..]) {
                (address, [IMPERSONATED_SUITE]) if address.len() == 20 => Address::from_slice(address),
                _ => {
                    return Err(TxError::Envelope(CryptoError::Malformed(
                        "impersonated envelope: keys must be 0x00 and a 20-byte sender, signature 0x00",
                    )))
                }
            };
            return Ok(tx.impersonated(sender));
        }
        let keys = PublicKeys::from_bytes(&wire.public_keys).map_err(TxError::Envelope)?;
        let signature = DualSignature::from_bytes(&wire.signature).map_err(TxError::Envelope)?;
        if keys.suite() != signature.suite() {
            return Err(TxError::Envelope(CryptoError::SuiteMismatch {
                key: keys.suite(),
                signature: signature.suite(),
            }));
        }
        Ok(Self::from_parts(tx, keys, signature))
    }
}
