//! Peer scores, bans and rate limits (spec §16.5). Pure bookkeeping over an explicit clock,
//! so it is tested without a network: the service asks it what to do and does it.
//!
//! Every peer starts at 0. Misbehaviour subtracts a [`Penalty`]; scores decay toward 0 with a
//! half-life of [`SCORE_HALF_LIFE`]. A peer whose score, rounded to whole points, falls to
//! [`BAN_THRESHOLD`] or below is disconnected and banned for [`BAN_DURATION`]. Sync requests draw from a token bucket per
//! peer ([`REQUEST_BURST`] tokens, [`REQUESTS_PER_SEC`] refilled per second); a request
//! without a token is refused and costs a small penalty.

use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Score at or below which a peer is banned.
pub const BAN_THRESHOLD: f64 = -100.0;
/// How long a ban lasts.
pub const BAN_DURATION: Duration = Duration::from_secs(600);
/// Half-life of a score's decay toward zero.
pub const SCORE_HALF_LIFE: Duration = Duration::from_secs(600);
/// Sync requests a peer may make at once.
pub const REQUEST_BURST: f64 = 64.0;
/// Sync requests a peer may make per second, sustained.
pub const REQUESTS_PER_SEC: f64 = 16.0;

/// What a peer did wrong, and what it costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Penalty {
    /// A block that failed validation (header, proof of work, ticket, payload).
    InvalidBlock,
    /// A transaction that failed its signature or the pool's basic checks.
    InvalidTransaction,
    /// A message that does not decode.
    Undecodable,
    /// A message over its size limit.
    Oversized,
    /// A sync response that does not answer the request (wrong items, bad chain).
    BadResponse,
    /// A request over the rate limit.
    RateLimited,
    /// Another chain (chain id or genesis).
    WrongChain,
}

impl Penalty {
    /// Points subtracted from the score.
    pub fn points(self) -> f64 {
        match self {
            Self::InvalidBlock => 50.0,
            Self::InvalidTransaction => 10.0,
            Self::Undecodable | Self::Oversized | Self::BadResponse => 25.0,
            Self::RateLimited => 2.0,
            Self::WrongChain => 200.0,
        }
    }

    /// A short name, for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidBlock => "invalid_block",
            Self::InvalidTransaction => "invalid_transaction",
            Self::Undecodable => "undecodable",
            Self::Oversized => "oversized",
            Self::BadResponse => "bad_response",
            Self::RateLimited => "rate_limited",
            Self::WrongChain => "wrong_chain",
        }
    }
}

#[derive(Debug, Clone)]
struct PeerState {
    score: f64,
    scored_at: Instant,
    tokens: f64,
    refilled_at: Instant,
}

/// What the service must do after a penalty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing more.
    Keep,
    /// Disconnect and refuse the peer until the ban ends.
    Ban,
}

/// Scores, bans and request budgets of every peer seen.
#[derive(Debug, Default)]
pub struct PeerBook {
    peers: HashMap<PeerId, PeerState>,
    banned: HashMap<PeerId, Instant>,
}

impl PeerBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&mut self, peer: PeerId, now: Instant) -> &mut PeerState {
        self.peers.entry(peer).or_insert(PeerState {
            score: 0.0,
            scored_at: now,
            tokens: REQUEST_BURST,
            refilled_at: now,
        })
    }

    /// The peer's score now (decayed).
    pub fn score(&mut self, peer: PeerId, now: Instant) -> f64 {
        let s = self.state(peer, now);
        let elapsed = now.saturating_duration_since(s.scored_at).as_secs_f64();
        s.score *= 0.5f64.powf(elapsed / SCORE_HALF_LIFE.as_secs_f64());
        s.scored_at = now;
        s.score
    }

    /// Records misbehaviour; says whether the peer is now to be banned.
    pub fn penalize(&mut self, peer: PeerId, penalty: Penalty, now: Instant) -> Verdict {
        let score = self.score(peer, now) - penalty.points();
        self.state(peer, now).score = score;
        // Compared in whole points: the decay between two penalties a moment apart (a few
        // hundredths of a point) must not save a peer that earned -100.
        if score.round() <= BAN_THRESHOLD {
            self.banned.insert(peer, now + BAN_DURATION);
            self.peers.remove(&peer);
            Verdict::Ban
        } else {
            Verdict::Keep
        }
    }

    /// Whether the peer is banned now (an expired ban is lifted).
    pub fn is_banned(&mut self, peer: &PeerId, now: Instant) -> bool {
        match self.banned.get(peer) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.banned.remove(peer);
                false
            }
            None => false,
        }
    }

    /// Bans that have ended, removed from the book (the service unblocks them).
    pub fn expired_bans(&mut self, now: Instant) -> Vec<PeerId> {
        let ended: Vec<PeerId> =
            self.banned.iter().filter(|(_, until)| **until <= now).map(|(p, _)| *p).collect();
        for p in &ended {
            self.banned.remove(p);
        }
        ended
    }

    /// Takes one request token; `false` when the peer is over its rate.
    pub fn allow_request(&mut self, peer: PeerId, now: Instant) -> bool {
        let s = self.state(peer, now);
        let elapsed = now.saturating_duration_since(s.refilled_at).as_secs_f64();
        s.tokens = (s.tokens + elapsed * REQUESTS_PER_SEC).min(REQUEST_BURST);
        s.refilled_at = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets a disconnected peer's budget (its score and ban are kept while they matter).
    pub fn forget(&mut self, peer: &PeerId, now: Instant) {
        if self.score(*peer, now).abs() < 1.0 {
            self.peers.remove(peer);
        }
    }

    /// Peers banned now.
    pub fn banned(&self, now: Instant) -> Vec<PeerId> {
        self.banned.iter().filter(|(_, until)| **until > now).map(|(p, _)| *p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_invalid_blocks_ban_and_the_ban_expires() {
        let mut book = PeerBook::new();
        let (p, t0) = (PeerId::random(), Instant::now());
        assert_eq!(book.penalize(p, Penalty::InvalidBlock, t0), Verdict::Keep);
        assert_eq!(book.penalize(p, Penalty::InvalidBlock, t0), Verdict::Ban, "-100 reaches the threshold");
        assert!(book.is_banned(&p, t0 + Duration::from_secs(1)));
        assert!(book.expired_bans(t0 + BAN_DURATION / 2).is_empty());
        assert_eq!(book.expired_bans(t0 + BAN_DURATION), vec![p]);
        assert!(!book.is_banned(&p, t0 + BAN_DURATION));
        // Back with a clean slate.
        assert_eq!(book.score(p, t0 + BAN_DURATION), 0.0);
        // Two invalid blocks a moment apart ban too: the decay in between does not save it.
        let q = PeerId::random();
        assert_eq!(book.penalize(q, Penalty::InvalidBlock, t0), Verdict::Keep);
        assert_eq!(book.penalize(q, Penalty::InvalidBlock, t0 + Duration::from_millis(300)), Verdict::Ban);
    }

    #[test]
    fn scores_decay_so_rare_mistakes_never_ban() {
        let mut book = PeerBook::new();
        let (p, t0) = (PeerId::random(), Instant::now());
        for hour in 0..24u64 {
            let t = t0 + Duration::from_secs(hour * 3600);
            assert_eq!(book.penalize(p, Penalty::InvalidBlock, t), Verdict::Keep, "hour {hour}");
        }
        assert!(book.score(p, t0 + Duration::from_secs(24 * 3600)) > -51.0);
        // A peer on another chain is banned at once.
        assert_eq!(book.penalize(PeerId::random(), Penalty::WrongChain, t0), Verdict::Ban);
    }

    #[test]
    fn request_tokens_refill_at_the_rate() {
        let mut book = PeerBook::new();
        let (p, t0) = (PeerId::random(), Instant::now());
        let burst = (0..100).take_while(|_| book.allow_request(p, t0)).count();
        assert_eq!(burst, REQUEST_BURST as usize);
        assert!(!book.allow_request(p, t0));
        let later = t0 + Duration::from_millis(500);
        let refilled = (0..100).take_while(|_| book.allow_request(p, later)).count();
        assert_eq!(refilled, (REQUESTS_PER_SEC / 2.0) as usize);
        // Other peers have their own budget.
        assert!(book.allow_request(PeerId::random(), t0));
    }
}
