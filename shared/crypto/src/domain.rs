//! Signing domains: the tag prefixed to every signed message.

/// What a signature is for. The domain tag is part of the signed message, so a signature
/// made for one domain never verifies in another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A transaction's signature over its signing hash.
    Transaction,
    /// A miner's ticket over a block header pre-image.
    MiningTicket,
    /// A message signed for a contract, checked by the dual-signature precompile.
    Contract,
}

impl Domain {
    /// The ASCII tag that prefixes every message signed in this domain.
    pub const fn tag(self) -> &'static [u8] {
        match self {
            Self::Transaction => b"QOIN/TX/v1",
            Self::MiningTicket => b"QOIN/MINING-TICKET/v1",
            Self::Contract => b"QOIN/CONTRACT/v1",
        }
    }
}

/// The message both schemes sign: `len(tag) as u8 ‖ tag ‖ msg`.
pub fn signing_message(domain: Domain, msg: &[u8]) -> Vec<u8> {
    let tag = domain.tag();
    let mut m = Vec::with_capacity(1 + tag.len() + msg.len());
    m.push(tag.len() as u8);
    m.extend_from_slice(tag);
    m.extend_from_slice(msg);
    m
}
