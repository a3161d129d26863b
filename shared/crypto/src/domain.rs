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
    /// Every domain.
    pub const ALL: [Self; 3] = [Self::Transaction, Self::MiningTicket, Self::Contract];

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

/// Whether `msg` begins as a message signed in some domain does (`len(tag) ‖ tag`): the
/// single-scheme precompiles refuse such messages, so half of a transaction, ticket or
/// contract signature never verifies on its own there.
pub fn is_domain_message(msg: &[u8]) -> bool {
    Domain::ALL.iter().any(|d| {
        let tag = d.tag();
        msg.len() > tag.len() && usize::from(msg[0]) == tag.len() && &msg[1..=tag.len()] == tag
    })
}
