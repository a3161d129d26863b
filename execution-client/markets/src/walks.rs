//! Books that balance: both market contracts driven through random sequences of orders,
//! deals, proofs, misses, failures, retakes, expiries, cancellations, commits, reveals,
//! disputes, mediations and refusals, on the execution client's chain.
//!
//! After every transaction:
//! - no shor is created or lost: what the parties gained (gas aside) is what the market lost;
//! - the market holds exactly its asks' free collateral, each deal's or job's escrow, locked
//!   collateral and dispute deposit, and nothing owed;
//! - what each deal or job holds by the contract's own account equals what went into it minus
//!   what came out of it, counted from the parties' balances around the transactions that
//!   touched it: escrow + collateral = payouts + refunds + slashes + collateral returned;
//! - a transaction the contract refuses moves nothing but its sender's gas.
//!
//! When the walk ends every deal and job is ended and every ask closed: the market holds
//! nothing, and every deal's and job's books are at zero.
//!
//! Each walk is seeded; `QOIN_MARKET_WALKS=N` runs N seeds of each market (4 by default), and
//! a failure names its seed.

use crate::compute::ComputeMarket as C;
use crate::harness::{events, Net};
use crate::storage::{ChunkedFile, StorageMarket as M};
use alloy_primitives::{keccak256, Address, Log, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use qoin_primitives::system::{COMPUTE_MARKET, STORAGE_MARKET};
use std::collections::BTreeMap;

/// splitmix64: a small seeded generator, so a failing walk can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// True with probability `percent`%.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[(self.next() % items.len() as u64) as usize])
    }
}

fn walks() -> u64 {
    std::env::var("QOIN_MARKET_WALKS").ok().and_then(|v| v.parse().ok()).unwrap_or(4)
}

fn signed(v: U256) -> i128 {
    i128::try_from(v.to::<u128>()).unwrap()
}

/// The books of one walk: every party's worth and the per-deal ledgers.
struct Books {
    market: Address,
    /// Keys whose balances are watched (every key of the net).
    parties: usize,
    /// What went into each deal or job minus what came out of it.
    ledger: BTreeMap<u64, i128>,
    /// The sum of every party's worth and the market's balance at the start.
    total: U256,
    /// Refused transactions sent for real.
    refusals: usize,
    /// Counts of what happened, by event name.
    seen: BTreeMap<&'static str, usize>,
}

impl Books {
    fn new(net: &Net, market: Address) -> Self {
        let parties = net.keys.len();
        let total = (0..parties).map(|i| net.worth(i)).sum::<U256>() + net.balance(market);
        Self { market, parties, ledger: BTreeMap::new(), total, refusals: 0, seen: BTreeMap::new() }
    }

    fn worths(&self, net: &Net) -> Vec<U256> {
        (0..self.parties).map(|i| net.worth(i)).collect()
    }

    /// Runs `call` from `from` on behalf of deal or job `deal`, with `free` the sum of the
    /// open asks' free collateral. Accepted: sent in a block of its own, the books updated,
    /// its logs returned. Refused: sometimes sent anyway (it must revert and move nothing).
    #[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // calls read as values
    fn act<Call: SolCall>(
        &mut self,
        net: &mut Net,
        rng: &mut Rng,
        from: usize,
        call: Call,
        value: U256,
        deal: Option<u64>,
        free: &dyn Fn(&Net) -> U256,
    ) -> Option<Vec<Log>> {
        net.at = self.market;
        let refused = net.call(from, &call, value).err();
        if refused.is_some() && !rng.chance(5) {
            return None;
        }
        let (worth0, market0, free0) = (self.worths(net), net.balance(self.market), free(net));
        let tx = net.tx(from, call.abi_encode(), value);
        let receipt = net.block(vec![tx]).remove(0);
        let (worth1, market1, free1) = (self.worths(net), net.balance(self.market), free(net));
        let gained: i128 = worth1.iter().zip(&worth0).map(|(a, b)| signed(*a) - signed(*b)).sum::<i128>();
        let lost = signed(market0) - signed(market1);
        assert_eq!(gained, lost, "{}: shor created or lost", Call::SIGNATURE);
        if let Some(why) = refused {
            assert!(!receipt.success, "{} was refused ({why}) in a call but not in a block", Call::SIGNATURE);
            assert_eq!((worth1, market1), (worth0, market0), "a refused {} moved funds", Call::SIGNATURE);
            self.refusals += 1;
            return None;
        }
        assert!(receipt.success, "{} accepted in a call, reverted in a block", Call::SIGNATURE);
        if let Some(d) = deal {
            // What the deal holds changed by what the market's balance did, less what the
            // asks' free collateral did.
            *self.ledger.entry(d).or_default() +=
                (signed(market1) - signed(market0)) - (signed(free1) - signed(free0));
        } else {
            assert_eq!(
                signed(market1) - signed(market0),
                signed(free1) - signed(free0),
                "{}",
                Call::SIGNATURE
            );
        }
        *self.seen.entry(Call::SIGNATURE.split('(').next().unwrap_or_default()).or_default() += 1;
        Some(receipt.logs)
    }

    fn count<E: SolEvent>(&mut self, logs: &[Log], name: &'static str) -> Vec<E> {
        let found = events::<E>(logs);
        *self.seen.entry(name).or_default() += found.len();
        found
    }

    /// Nothing is owed: every payment reached its receiver in the transaction that made it.
    fn owed(&self, net: &Net, owed: &dyn Fn(&Net, Address) -> U256) -> U256 {
        (0..self.parties).map(|i| owed(net, net.addr(i))).sum()
    }

    /// The market holds exactly its asks' free collateral (`free`), what each deal or job
    /// holds by the contract's own storage (`held`) and what it owes; each deal or job holds
    /// what its ledger says went into it and did not come out.
    fn check(
        &self,
        net: &Net,
        held: &[(u64, U256)],
        free: U256,
        owed: &dyn Fn(&Net, Address) -> U256,
        at: &str,
    ) {
        let total: U256 = held.iter().map(|(_, h)| *h).sum();
        assert_eq!(
            net.balance(self.market),
            free + total + self.owed(net, owed),
            "{at}: the market's balance is not its asks' collateral and its deals' funds"
        );
        for (d, h) in held {
            let ledger = self.ledger.get(d).copied().unwrap_or_default();
            assert_eq!(signed(*h), ledger, "{at}: the books of deal or job {d}");
        }
    }

    fn close(&self, net: &Net) {
        let total = (0..self.parties).map(|i| net.worth(i)).sum::<U256>() + net.balance(self.market);
        assert_eq!(total, self.total, "the walk ends with as many shor as it started with");
        assert_eq!(net.balance(self.market), U256::ZERO, "funds left in the market");
        for (d, held) in &self.ledger {
            assert_eq!(*held, 0, "deal {d}'s books do not close");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Storage

struct Deal {
    id: u64,
    client: usize,
    file: usize,
    replicas: u64,
    periods: u64,
}

fn storage_free(net: &Net, asks: &[U256]) -> U256 {
    asks.iter()
        .map(|a| net.call(0, &M::asksCall(*a), U256::ZERO).unwrap())
        .filter(|a| !a.closed)
        .map(|a| a.collateral)
        .sum()
}

/// What the market's own storage says deal `d` holds: its escrow and its slots' collateral.
fn storage_held(net: &Net, d: &Deal) -> U256 {
    let bid = net.call(0, &M::bidsCall(U256::from(d.id)), U256::ZERO).unwrap();
    let slots: U256 = (0..d.replicas)
        .map(|i| {
            net.call(0, &M::slotsCall { _0: U256::from(d.id), _1: U256::from(i) }, U256::ZERO)
                .unwrap()
                .collateral
        })
        .sum();
    bid.escrow + slots
}

fn storage_walk(seed: u64, files: &[ChunkedFile]) -> Books {
    let mut rng = Rng(seed);
    let mut net = Net::new(8);
    net.at = STORAGE_MARKET;
    let clients = [0usize, 1];
    let providers = [2usize, 3, 4, 5, 6];
    let anyone = 7usize;
    let mut books = Books::new(&net, STORAGE_MARKET);
    let mut asks: Vec<(usize, U256)> = vec![];
    let mut deals: Vec<Deal> = vec![];
    // How reliably each provider proves (provider 6 is flaky, and loses replicas).
    let reliability = |p: usize| if p == 6 { 25 } else { 92 };

    let free_of = |asks: &[(usize, U256)]| {
        let ids: Vec<U256> = asks.iter().map(|(_, a)| *a).collect();
        move |net: &Net| storage_free(net, &ids)
    };
    for &p in &providers {
        let capacity = 64 * 1024u64;
        let cpb = rng.range(1, 12) as u128;
        // Some asks hold too little collateral for every file: their takes are refused.
        let value = U256::from(cpb) * U256::from(capacity) / U256::from(rng.range(1, 3));
        let call = M::postAskCall {
            price: rng.range(1, 4) as u128,
            minSize: 1024,
            maxSize: capacity,
            collateralPerByte: cpb,
            capacity,
            expiry: net.number() + rng.range(150, 300),
        };
        // The free collateral counted around it includes the ask it posts.
        let next = net.call(0, &M::askCountCall {}, U256::ZERO).unwrap() + U256::from(1);
        let free = free_of(&[asks.clone(), vec![(p, next)]].concat());
        let logs = books.act(&mut net, &mut rng, p, call, value, None, &free).unwrap();
        asks.push((p, events::<M::AskPosted>(&logs)[0].askId));
    }
    let owed = |net: &Net, a: Address| net.call(0, &M::owedCall(a), U256::ZERO).unwrap();
    let steps = 140;
    let mut step = 0;
    loop {
        step += 1;
        let ending = step > steps;
        let free = free_of(&asks);
        let number = net.number();
        // Proofs due now, from providers that keep their data this period.
        for d in &deals {
            for slot in 0..d.replicas {
                let s = net
                    .call(0, &M::slotsCall { _0: U256::from(d.id), _1: U256::from(slot) }, U256::ZERO)
                    .unwrap();
                let bid = net.call(0, &M::bidsCall(U256::from(d.id)), U256::ZERO).unwrap();
                if s.provider == Address::ZERO || bid.start == 0 || bid.finished || s.next >= d.periods {
                    continue;
                }
                let (p, from, until) = net
                    .call(0, &M::dueCall { bidId: U256::from(d.id), slot: U256::from(slot) }, U256::ZERO)
                    .map(|r| (r.p.to::<u64>(), r.from.to::<u64>(), r.until.to::<u64>()))
                    .unwrap();
                let who = providers.iter().copied().find(|&i| net.addr(i) == s.provider).unwrap();
                // The provider decides once per period whether it holds the data.
                let keeps = keccak256(
                    [seed.to_be_bytes(), d.id.to_be_bytes(), slot.to_be_bytes(), p.to_be_bytes()].concat(),
                )[0] as u64
                    * 100
                    / 256
                    < reliability(who);
                if keeps && number + 1 >= from && number < until {
                    let proof = net.proof(&files[d.file], d.id, slot, p);
                    if rng.chance(5) {
                        // A wrong chunk: refused, nothing moves.
                        let mut bad = proof.clone();
                        let mut chunk = bad.data[0].to_vec();
                        chunk[7] ^= 0x20;
                        bad.data[0] = chunk.into();
                        assert!(books
                            .act(&mut net, &mut rng, who, bad, U256::ZERO, Some(d.id), &free)
                            .is_none());
                    }
                    if let Some(logs) =
                        books.act(&mut net, &mut rng, who, proof, U256::ZERO, Some(d.id), &free)
                    {
                        let proven = books.count::<M::Proven>(&logs, "Proven");
                        let price = s.price;
                        assert_eq!(proven[0].paid, U256::from(files[d.file].size()) * U256::from(price));
                        books.count::<M::Missed>(&logs, "Missed");
                    }
                }
            }
        }
        let open: Vec<usize> = (0..deals.len())
            .filter(|&i| !net.call(0, &M::bidsCall(U256::from(deals[i].id)), U256::ZERO).unwrap().finished)
            .collect();
        if ending && open.is_empty() {
            break;
        }
        assert!(step < steps + 2_000, "seed {seed}: deals still open long after the walk");
        // Providers take open slots: an open bid's next one, or a reopened one.
        for &i in &open {
            if !rng.chance(50) {
                continue;
            }
            let d = &deals[i];
            let (who, ask) = asks[(rng.next() % asks.len() as u64) as usize];
            let slot = (0..d.replicas)
                .find(|&s| {
                    let slot = M::slotsCall { _0: U256::from(d.id), _1: U256::from(s) };
                    net.call(0, &slot, U256::ZERO).unwrap().provider == Address::ZERO
                })
                .unwrap_or(0);
            let call = M::takeCall { bidId: U256::from(d.id), slot: U256::from(slot), askId: ask };
            if let Some(logs) = books.act(&mut net, &mut rng, who, call, U256::ZERO, Some(d.id), &free) {
                let taken = books.count::<M::SlotTaken>(&logs, "SlotTaken");
                if taken[0].firstPeriod > U256::ZERO {
                    *books.seen.entry("retaken").or_default() += 1;
                }
                books.count::<M::DealActive>(&logs, "DealActive");
            }
        }
        match rng.next() % 10 {
            // A client posts a bid (sometimes with the wrong escrow), while fewer than six
            // are open.
            0 | 1 if !ending && open.len() < 6 => {
                let client = rng.pick(&clients).unwrap();
                let file = (rng.next() % files.len() as u64) as usize;
                let f = &files[file];
                let (replicas, periods) = (rng.range(2, 3), rng.range(4, 7));
                let max_price = rng.range(2, 5) as u128;
                let escrow = U256::from(replicas * f.size()) * U256::from(max_price) * U256::from(periods);
                let value = if rng.chance(10) { escrow + U256::from(1) } else { escrow };
                let call = M::postBidCall {
                    root: f.root(),
                    chunks: f.chunks(),
                    replicas: replicas as u8,
                    period: rng.range(16, 20),
                    periods,
                    maxPrice: max_price,
                    expiry: net.number() + rng.range(10, 40),
                };
                let id = U256::from(net.call(0, &M::bidCountCall {}, U256::ZERO).unwrap()) + U256::from(1);
                if books.act(&mut net, &mut rng, client, call, value, Some(id.to()), &free).is_some() {
                    deals.push(Deal { id: id.to(), client, file, replicas, periods });
                }
            }
            // Anyone settles a deal's missed periods.
            4 => {
                let Some(i) = rng.pick(&open) else { continue };
                let id = deals[i].id;
                let call = M::settleAllCall { bidId: U256::from(id) };
                if let Some(logs) = books.act(&mut net, &mut rng, anyone, call, U256::ZERO, Some(id), &free) {
                    books.count::<M::Missed>(&logs, "Missed");
                    let reopened = books.count::<M::SlotReopened>(&logs, "SlotReopened");
                    assert!(reopened.iter().all(|r| r.failed));
                }
            }
            // Anyone finishes a deal; a client (or anyone after the expiry) cancels a bid.
            5 | 6 => {
                let Some(i) = rng.pick(&open) else { continue };
                let (id, client) = (deals[i].id, deals[i].client);
                // Clients seldom withdraw a bid before its expiry; anyone may after it.
                let who = if rng.chance(15) { client } else { anyone };
                if let Some(logs) = books.act(
                    &mut net,
                    &mut rng,
                    who,
                    M::finishCall { bidId: U256::from(id) },
                    U256::ZERO,
                    Some(id),
                    &free,
                ) {
                    books.count::<M::DealFinished>(&logs, "DealFinished");
                    books.count::<M::Missed>(&logs, "Missed");
                } else if let Some(logs) = books.act(
                    &mut net,
                    &mut rng,
                    who,
                    M::cancelBidCall { bidId: U256::from(id) },
                    U256::ZERO,
                    Some(id),
                    &free,
                ) {
                    books.count::<M::BidCancelled>(&logs, "BidCancelled");
                }
            }
            // A provider gives up a slot.
            7 if rng.chance(30) => {
                let Some(i) = rng.pick(&open) else { continue };
                let d = &deals[i];
                let slot = rng.range(0, d.replicas - 1);
                let s = net
                    .call(0, &M::slotsCall { _0: U256::from(d.id), _1: U256::from(slot) }, U256::ZERO)
                    .unwrap();
                let Some(who) = providers.iter().copied().find(|&p| net.addr(p) == s.provider) else {
                    continue;
                };
                let call = M::abandonCall { bidId: U256::from(d.id), slot: U256::from(slot) };
                if let Some(logs) = books.act(&mut net, &mut rng, who, call, U256::ZERO, Some(d.id), &free) {
                    books.count::<M::SlotReopened>(&logs, "SlotReopened");
                    *books.seen.entry("abandoned").or_default() += 1;
                }
            }
            // Time passes.
            _ => {
                let n = net.number() + rng.range(1, 6);
                net.advance_to(n);
            }
        }
        let held: Vec<(u64, U256)> = deals.iter().map(|d| (d.id, storage_held(&net, d))).collect();
        books.check(&net, &held, free(&net), &owed, &format!("seed {seed}, step {step}"));
    }
    // Every ask closes (its provider may close it at any time); the market is empty.
    for &(who, ask) in &asks {
        let free = free_of(&asks);
        books.act(&mut net, &mut rng, who, M::closeAskCall { askId: ask }, U256::ZERO, None, &free);
    }
    assert_eq!(books.owed(&net, &owed), U256::ZERO);
    books.close(&net);
    books
}

#[test]
fn storage_books_balance_through_random_walks() {
    let files: Vec<ChunkedFile> = [1_500usize, 3_000, 5_000]
        .iter()
        .map(|&n| ChunkedFile::new((0..n).map(|i| (i * 13 % 256) as u8).collect()).unwrap())
        .collect();
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for seed in 0..walks() {
        let books = storage_walk(seed, &files);
        for (k, v) in books.seen {
            *seen.entry(k).or_default() += v;
        }
        *seen.entry("refused").or_default() += books.refusals;
    }
    eprintln!("storage walks: {seen:?}");
    // The walks went through every path the books must survive.
    for what in [
        "postBid",
        "take",
        "DealActive",
        "Proven",
        "Missed",
        "SlotReopened",
        "retaken",
        "DealFinished",
        "BidCancelled",
        "abandoned",
        "refused",
    ] {
        assert!(seen.get(what).copied().unwrap_or_default() > 0, "no walk saw {what}: {seen:?}");
    }
}

// ------------------------------------------------------------------------------------------
// Compute

/// How a provider behaves on a slot.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Conduct {
    Honest,
    /// Commits and reveals a wrong output.
    Lies,
    /// Never commits.
    Silent,
    /// Commits, never reveals.
    Hides,
}

struct Job {
    id: u64,
    client: usize,
    mediator: usize,
    replicas: u64,
    output: B256,
    fuel: u64,
    /// Each taken slot: its provider and conduct.
    slots: Vec<(usize, Conduct)>,
    /// Whether its client considered disputing its agreeing results.
    considered: bool,
}

fn compute_free(net: &Net, asks: &[U256]) -> U256 {
    asks.iter()
        .map(|a| net.call(0, &C::asksCall(*a), U256::ZERO).unwrap())
        .filter(|a| !a.closed)
        .map(|a| a.collateral)
        .sum()
}

fn compute_held(net: &Net, j: &Job) -> U256 {
    let job = net.call(0, &C::jobsCall(U256::from(j.id)), U256::ZERO).unwrap();
    let slots: U256 = (0..j.replicas)
        .map(|i| {
            net.call(0, &C::slotsCall { _0: U256::from(j.id), _1: U256::from(i) }, U256::ZERO)
                .unwrap()
                .collateral
        })
        .sum();
    job.escrow + job.deposit + slots
}

const OPEN: u8 = 1;
const DONE: u8 = 6;
const RUNNING: u8 = 2;
const REVEALING: u8 = 3;
const REVEALED: u8 = 4;
const MEDIATING: u8 = 5;

fn compute_walk(seed: u64) -> Books {
    let mut rng = Rng(seed ^ 0xc0ffee);
    let mut net = Net::new(8);
    net.at = COMPUTE_MARKET;
    let clients = [0usize, 1];
    let providers = [2usize, 3, 4, 5];
    let mediators = [6usize, 7];
    let mut books = Books::new(&net, COMPUTE_MARKET);
    let mut asks: Vec<(usize, U256)> = vec![];
    let mut jobs: Vec<Job> = vec![];
    let free_of = |asks: &[(usize, U256)]| {
        let ids: Vec<U256> = asks.iter().map(|(_, a)| *a).collect();
        move |net: &Net| compute_free(net, &ids)
    };
    for &m in &mediators {
        let free = free_of(&asks);
        let fee = U256::from(rng.range(1_000, 5_000));
        books.act(&mut net, &mut rng, m, C::registerMediatorCall { fee }, U256::ZERO, None, &free).unwrap();
    }
    for &p in &providers {
        let per_job = rng.range(10_000, 50_000) as u128;
        let call = C::postAskCall {
            price: rng.range(1, 5) as u128,
            maxFuel: 1_000_000,
            maxMemory: 1 << 24,
            fuelPerSecond: 1_000_000_000,
            collateralPerJob: per_job,
            expiry: net.number() + rng.range(150, 300),
        };
        let next = net.call(0, &C::askCountCall {}, U256::ZERO).unwrap() + U256::from(1);
        let free = free_of(&[asks.clone(), vec![(p, next)]].concat());
        let value = U256::from(per_job) * U256::from(rng.range(3, 8));
        let logs = books.act(&mut net, &mut rng, p, call, value, None, &free).unwrap();
        asks.push((p, events::<C::AskPosted>(&logs)[0].askId));
    }
    let owed = |net: &Net, a: Address| net.call(0, &C::owedCall(a), U256::ZERO).unwrap();
    let salt = |job: u64, who: usize| keccak256([job.to_be_bytes(), (who as u64).to_be_bytes()].concat());
    let steps = 160;
    let mut step = 0;
    loop {
        step += 1;
        let ending = step > steps;
        let free = free_of(&asks);
        let phases: Vec<u8> = jobs
            .iter()
            .map(|j| net.call(0, &C::jobsCall(U256::from(j.id)), U256::ZERO).unwrap().phase)
            .collect();
        let live: Vec<usize> = (0..jobs.len()).filter(|&i| phases[i] != DONE).collect();
        if ending && live.is_empty() {
            break;
        }
        assert!(step < steps + 2_000, "seed {seed}: jobs still open long after the walk");
        // What each provider does when its job's phase calls for it.
        for &i in &live {
            let j = &jobs[i];
            for (slot, &(who, conduct)) in j.slots.iter().enumerate() {
                let (out, fuel) = match conduct {
                    Conduct::Lies => (keccak256(j.output), j.fuel),
                    _ => (j.output, j.fuel),
                };
                let s = U256::from(slot);
                let id = U256::from(j.id);
                if phases[i] == RUNNING && conduct != Conduct::Silent && rng.chance(60) {
                    let c = crate::compute::commitment(out, fuel, salt(j.id, who), net.addr(who));
                    if let Some(logs) = books.act(
                        &mut net,
                        &mut rng,
                        who,
                        C::commitCall { jobId: id, slot: s, c },
                        U256::ZERO,
                        Some(j.id),
                        &free,
                    ) {
                        books.count::<C::Committed>(&logs, "Committed");
                    }
                } else if phases[i] == REVEALING && conduct != Conduct::Hides && rng.chance(60) {
                    // Sometimes a reveal that does not match the commitment first.
                    if rng.chance(10) {
                        let bad = C::revealCall {
                            jobId: id,
                            slot: s,
                            output: out,
                            fuel: fuel + 1,
                            salt: salt(j.id, who),
                        };
                        books.act(&mut net, &mut rng, who, bad, U256::ZERO, Some(j.id), &free);
                    }
                    let call = C::revealCall { jobId: id, slot: s, output: out, fuel, salt: salt(j.id, who) };
                    if let Some(logs) =
                        books.act(&mut net, &mut rng, who, call, U256::ZERO, Some(j.id), &free)
                    {
                        books.count::<C::Revealed>(&logs, "Revealed");
                        books.count::<C::Slashed>(&logs, "Slashed");
                        books.count::<C::MediationRequested>(&logs, "MediationRequested");
                    }
                }
            }
        }
        // Providers take open jobs' slots, and will behave as drawn; clients dispute some
        // agreeing results; mediators answer (or let the phase pass).
        for &i in &live {
            let (id, client, mediator) = (jobs[i].id, jobs[i].client, jobs[i].mediator);
            if phases[i] == OPEN && rng.chance(50) {
                let (who, ask) = asks[(rng.next() % asks.len() as u64) as usize];
                let call = C::takeCall { jobId: U256::from(id), askId: ask };
                if books.act(&mut net, &mut rng, who, call, U256::ZERO, Some(id), &free).is_some() {
                    let conduct = match rng.next() % 20 {
                        0..=2 => Conduct::Lies,
                        3 => Conduct::Silent,
                        4 => Conduct::Hides,
                        _ => Conduct::Honest,
                    };
                    jobs[i].slots.push((who, conduct));
                }
            }
            if phases[i] == REVEALED && !jobs[i].considered {
                jobs[i].considered = true;
                if rng.chance(30) {
                    let fee = net.call(0, &C::mediatorFeeCall(net.addr(mediator)), U256::ZERO).unwrap();
                    let call = C::disputeCall { jobId: U256::from(id) };
                    if let Some(logs) = books.act(&mut net, &mut rng, client, call, fee, Some(id), &free) {
                        books.count::<C::Disputed>(&logs, "Disputed");
                        books.count::<C::MediationRequested>(&logs, "MediationRequested");
                    }
                }
            }
            if phases[i] == MEDIATING && rng.chance(40) {
                let call =
                    C::mediateCall { jobId: U256::from(id), output: jobs[i].output, fuel: jobs[i].fuel };
                if let Some(logs) = books.act(&mut net, &mut rng, mediator, call, U256::ZERO, Some(id), &free)
                {
                    books.count::<C::Mediated>(&logs, "Mediated");
                    books.count::<C::Slashed>(&logs, "Slashed");
                }
            }
        }
        match rng.next() % 10 {
            // A client posts a job (sometimes with the wrong escrow), while fewer than four
            // are live.
            0 | 1 if !ending && live.len() < 4 => {
                let client = rng.pick(&clients).unwrap();
                let mediator = rng.pick(&mediators).unwrap();
                let (replicas, fuel_limit, max_price) =
                    (rng.range(1, 3), rng.range(1_000, 10_000), rng.range(3, 6));
                let escrow = U256::from(replicas * fuel_limit * max_price);
                let value = if rng.chance(10) { escrow - U256::from(1) } else { escrow };
                let id = net.call(0, &C::jobCountCall {}, U256::ZERO).unwrap().to::<u64>() + 1;
                let call = C::postJobCall {
                    module: keccak256(b"job.wasm"),
                    input: keccak256(id.to_be_bytes()),
                    fuelLimit: fuel_limit,
                    memoryLimit: 1 << 20,
                    replicas: replicas as u8,
                    maxPrice: max_price as u128,
                    phaseLength: rng.range(4, 6),
                    expiry: net.number() + rng.range(8, 25),
                    mediator: net.addr(mediator),
                };
                if books.act(&mut net, &mut rng, client, call, value, Some(id), &free).is_some() {
                    let fuel = rng.range(1, fuel_limit);
                    jobs.push(Job {
                        id,
                        client,
                        mediator,
                        replicas,
                        output: keccak256(id.to_le_bytes()),
                        fuel,
                        slots: vec![],
                        considered: false,
                    });
                }
            }
            // Anyone settles a job; a client (or anyone after the expiry) cancels one.
            5 | 6 => {
                let Some(i) = rng.pick(&live) else { continue };
                let (id, client) = (jobs[i].id, jobs[i].client);
                let who = if rng.chance(50) { client } else { providers[0] };
                if let Some(logs) = books.act(
                    &mut net,
                    &mut rng,
                    who,
                    C::settleCall { jobId: U256::from(id) },
                    U256::ZERO,
                    Some(id),
                    &free,
                ) {
                    books.count::<C::Slashed>(&logs, "Slashed");
                    for done in books.count::<C::JobDone>(&logs, "JobDone") {
                        let name = if done.agreed {
                            "agreed"
                        } else if done.output == B256::ZERO {
                            "void"
                        } else {
                            "ended"
                        };
                        *books.seen.entry(name).or_default() += 1;
                    }
                } else if (phases[i] == OPEN && rng.chance(10)) || ending {
                    if let Some(logs) = books.act(
                        &mut net,
                        &mut rng,
                        who,
                        C::cancelJobCall { jobId: U256::from(id) },
                        U256::ZERO,
                        Some(id),
                        &free,
                    ) {
                        books.count::<C::JobDone>(&logs, "cancelled");
                    }
                }
            }
            _ => {
                let n = net.number() + rng.range(1, 4);
                net.advance_to(n);
            }
        }
        let held: Vec<(u64, U256)> = jobs.iter().map(|j| (j.id, compute_held(&net, j))).collect();
        books.check(&net, &held, free(&net), &owed, &format!("seed {seed}, step {step}"));
    }
    for &(who, ask) in &asks {
        let free = free_of(&asks);
        books.act(&mut net, &mut rng, who, C::closeAskCall { askId: ask }, U256::ZERO, None, &free);
    }
    assert_eq!(books.owed(&net, &owed), U256::ZERO);
    books.close(&net);
    books
}

#[test]
fn compute_books_balance_through_random_walks() {
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for seed in 0..walks() {
        let books = compute_walk(seed);
        for (k, v) in books.seen {
            *seen.entry(k).or_default() += v;
        }
        *seen.entry("refused").or_default() += books.refusals;
    }
    eprintln!("compute walks: {seen:?}");
    for what in [
        "postJob",
        "take",
        "Committed",
        "Revealed",
        "agreed",
        "Disputed",
        "MediationRequested",
        "Mediated",
        "Slashed",
        "void",
        "cancelled",
        "refused",
    ] {
        assert!(seen.get(what).copied().unwrap_or_default() > 0, "no walk saw {what}: {seen:?}");
    }
}
