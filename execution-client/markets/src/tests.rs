//! The storage market contract as the genesis deploys it, driven through the execution
//! client's chain (real revm, real MDBX, dual-signed transactions): asks, bids, deals, proofs
//! against the chain's own headers, misses, a failed replica's slot taken again, expiry, and
//! every party's balance to the shor.

use crate::harness::{events, Net};
use crate::storage::{self, verify_path, ChunkedFile, StorageMarket as M, CHUNK_SIZE};
use alloy_primitives::{keccak256, Bytes, Log, B256, U256};
use qoin_primitives::system::{COMPUTE_MARKET, STORAGE_MARKET};

const PRICE: u128 = 2; // shor per byte per period
const MAX_PRICE: u128 = 3;
const COLLATERAL_PER_BYTE: u128 = 10;
const CAPACITY: u64 = 1 << 20;

fn post_ask(net: &mut Net, who: usize, price: u128, lasts: u64) -> U256 {
    let value = U256::from(COLLATERAL_PER_BYTE) * U256::from(CAPACITY);
    let expiry = net.number() + lasts;
    let logs = net.send(
        who,
        M::postAskCall {
            price,
            minSize: 1024,
            maxSize: CAPACITY,
            collateralPerByte: COLLATERAL_PER_BYTE,
            capacity: CAPACITY,
            expiry,
        },
        value,
    );
    events::<M::AskPosted>(&logs)[0].askId
}

/// `len` pseudo-random bytes.
fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| keccak256((i as u64).to_be_bytes())[0]).collect()
}

/// A file of `len` pseudo-random bytes, chunked as given (not coded).
fn file(len: usize) -> ChunkedFile {
    ChunkedFile::new(bytes(len)).unwrap()
}

#[test]
fn coded_files_survive_the_loss_of_half_of_each_stripe() {
    use crate::coding::{decode, encode, CodingError, STRIPE};
    for len in [0usize, 1, 1016, 1017, 5_000, 300 * 1024] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let coded = encode(&data).unwrap();
        let chunks: Vec<&[u8]> = coded.chunks(CHUNK_SIZE).collect();
        assert_eq!(chunks.len() % 2, 0);
        assert_eq!(chunks.len() / 2, (len + 8).div_ceil(CHUNK_SIZE), "{len}: rate 1/2");
        let all: Vec<Option<&[u8]>> = chunks.iter().map(|c| Some(*c)).collect();
        assert_eq!(decode(&all).unwrap(), data, "{len}: whole");
        // Every data chunk gone: the recovery chunks alone restore the file.
        let d = chunks.len() / 2;
        let mut starts = vec![];
        let mut first = 0;
        while first < d {
            let k = STRIPE.min(d - first);
            starts.push((2 * first, k));
            first += k;
        }
        let mut half = all.clone();
        for &(at, k) in &starts {
            half[at..at + k].iter_mut().for_each(|c| *c = None);
        }
        assert_eq!(decode(&half).unwrap(), data, "{len}: from recovery chunks");
        // Every other chunk gone.
        let alternate: Vec<Option<&[u8]>> =
            all.iter().enumerate().map(|(i, c)| if i % 2 == 0 { *c } else { None }).collect();
        assert_eq!(decode(&alternate).unwrap(), data, "{len}: alternate chunks");
        // One more than half of a stripe gone: a clear error, not wrong data.
        let (at, k) = *starts.last().unwrap();
        let mut lost = half.clone();
        lost[at + k] = None;
        match decode(&lost) {
            Err(CodingError::Lost { present, needed, .. }) => assert_eq!((present, needed), (k - 1, k)),
            other => panic!("{len}: {other:?}"),
        }
    }
    assert_eq!(decode(&[]), Err(CodingError::Layout(0)));
    assert_eq!(decode(&[Some(&[0u8; 10][..]), None]), Err(CodingError::ChunkSize(0)));
    // Chunks that are not a coded file: the length prefix gives it away.
    let junk = [0xffu8; CHUNK_SIZE];
    assert!(matches!(decode(&[Some(&junk[..]), Some(&junk[..])]), Err(CodingError::Length(_))));
}

#[test]
fn merkle_paths_walk_as_the_contract_walks_them() {
    for len in [1, 1024, 1025, 3 * 1024, 5 * 1024 + 7, 33 * 1024] {
        let f = file(len);
        for i in 0..f.chunks() {
            let path = f.path(i).unwrap();
            let leaf = storage::leaf(f.chunk(i).unwrap());
            assert!(verify_path(leaf, i, f.chunks(), &path, f.root()), "{len} bytes, chunk {i}");
            // Another chunk's leaf, or the path of another index, does not verify.
            let other = storage::leaf(&[0xff; 1024]);
            assert!(!verify_path(other, i, f.chunks(), &path, f.root()));
            if f.chunks() > 1 {
                let j = (i + 1) % f.chunks();
                assert!(!verify_path(leaf, j, f.chunks(), &path, f.root()) || f.chunk(j) == f.chunk(i));
            }
        }
    }
    assert!(ChunkedFile::new(vec![]).is_err());
    assert_eq!(file(10).path(1), Err(crate::storage::ProofError::OutOfRange(1)));
}

#[test]
fn a_deal_pays_proofs_charges_misses_and_a_failed_replica_is_replaced() {
    let mut net = Net::new(5);
    let (client, p1, p2, p3, anyone) = (0, 1, 2, 3, 4);
    // The market is in the genesis: code at its address, nothing posted yet.
    assert_eq!(net.call(anyone, &M::bidCountCall {}, U256::ZERO).unwrap(), U256::ZERO);
    let client_start = net.balance(net.addr(client));

    let asks: Vec<U256> = [p1, p2, p3].iter().map(|&p| post_ask(&mut net, p, PRICE, 10_000)).collect();
    let dear = post_ask(&mut net, anyone, MAX_PRICE + 1, 10_000);

    // 3,000 bytes, coded: 3 plain chunks (with the length prefix) and 3 recovery chunks.
    let plain = bytes(3_000);
    let f = ChunkedFile::new(crate::coding::encode(&plain).unwrap()).unwrap();
    assert_eq!(f.chunks(), 6);
    let (period, periods) = (16u64, 8u64);
    let escrow = U256::from(2u64 * f.size()) * U256::from(MAX_PRICE) * U256::from(periods);
    let bid = M::postBidCall {
        root: f.root(),
        chunks: f.chunks(),
        replicas: 2,
        period,
        periods,
        maxPrice: MAX_PRICE,
        expiry: net.number() + 100,
    };
    assert_eq!(net.refused(client, bid.clone(), escrow - U256::from(1)), "escrow");
    assert_eq!(
        net.refused(client, M::postBidCall { replicas: 1, ..bid }, escrow / U256::from(2)),
        "replicas"
    );
    let logs = net.send(client, bid, escrow);
    let deal = events::<M::BidPosted>(&logs)[0].bidId;
    let d = deal.to::<u64>();

    // Too dear an ask cannot take it; a provider takes one slot only.
    assert_eq!(
        net.refused(anyone, M::takeCall { bidId: deal, slot: U256::ZERO, askId: dear }, U256::ZERO),
        "price above the bid"
    );
    net.send(p1, M::takeCall { bidId: deal, slot: U256::ZERO, askId: asks[0] }, U256::ZERO);
    assert_eq!(
        net.refused(p1, M::takeCall { bidId: deal, slot: U256::ZERO, askId: asks[0] }, U256::ZERO),
        "already a replica"
    );
    let logs = net.send(p2, M::takeCall { bidId: deal, slot: U256::ZERO, askId: asks[1] }, U256::ZERO);
    assert_eq!(events::<M::DealActive>(&logs).len(), 1, "the second slot activates the deal");
    // The client got back what its maximum price held above the providers' prices.
    let per_period = U256::from(f.size()) * U256::from(PRICE);
    let over = U256::from(2u64 * f.size()) * U256::from(MAX_PRICE - PRICE) * U256::from(periods);
    let mut client_expected = client_start - escrow + over;
    assert_eq!(net.balance(net.addr(client)) + net.gas[&net.addr(client)], client_expected);
    assert_eq!(
        net.refused(p3, M::takeCall { bidId: deal, slot: U256::ZERO, askId: asks[2] }, U256::ZERO),
        "slot not open"
    );

    // Period 0 starts one period after activation (the upload); its proof is refused before.
    let s0 = net.period_start(d, 0);
    assert_eq!(net.refused(p1, net.proof_stub(d, 0, 0), U256::ZERO), "period not started");
    net.advance_to(s0);
    // Both replicas prove period 0; each is paid the period's price at once.
    for (who, slot) in [(p1, 0), (p2, 1)] {
        let before = net.balance(net.addr(who)) + net.gas.get(&net.addr(who)).copied().unwrap_or_default();
        let logs = net.send(who, net.proof(&f, d, slot, 0), U256::ZERO);
        assert_eq!(events::<M::Proven>(&logs)[0].paid, per_period);
        let after = net.balance(net.addr(who)) + net.gas[&net.addr(who)];
        assert_eq!(after - before, per_period);
    }
    // A wrong chunk, another block's header, or the same period twice are refused.
    net.advance_to(net.period_start(d, 1));
    let mut bad = net.proof(&f, d, 0, 1);
    let mut chunk = bad.data[0].to_vec();
    chunk[0] ^= 1;
    bad.data[0] = chunk.into();
    assert_eq!(net.refused(p1, bad, U256::ZERO), "merkle path");
    let mut bad = net.proof(&f, d, 0, 1);
    bad.header = net.header(net.number() - 1).0;
    assert_eq!(net.refused(p1, bad, U256::ZERO), "header");
    assert_eq!(net.refused(p1, net.proof(&f, d, 0, 0), U256::ZERO), "not the period due");
    // Slot 1's proof for period 1 from the wrong provider.
    assert_eq!(net.refused(p1, net.proof(&f, d, 1, 1), U256::ZERO), "not this slot's provider");

    // p1 keeps proving; p2 stops after period 0: three missed periods fail its replica.
    let mut missed = Vec::new();
    let mut failed = Vec::new();
    for p in 1..4 {
        net.advance_to(net.period_start(d, p));
        net.send(p1, net.proof(&f, d, 0, p), U256::ZERO);
        // After period p's window, anyone may settle: p2's period p counts as missed.
        net.advance_to(net.period_start(d, p) + period);
        let logs = net.send(anyone, M::settleAllCall { bidId: deal }, U256::ZERO);
        missed.extend(events::<M::Missed>(&logs));
        failed.extend(events::<M::SlotReopened>(&logs));
    }
    assert_eq!(missed.iter().map(|m| m.period.to::<u64>()).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(missed.iter().all(|m| m.slot == U256::from(1)));
    let collateral = U256::from(f.size()) * U256::from(COLLATERAL_PER_BYTE);
    let third = collateral / U256::from(3);
    assert!(missed.iter().all(|m| m.penalty == third));
    assert_eq!(failed.len(), 1);
    assert!(failed[0].failed && failed[0].formerProvider == net.addr(p2));
    // The client got each missed period's price back, the collateral in thirds and the rest.
    client_expected += per_period * U256::from(3) + collateral;
    assert_eq!(net.balance(net.addr(client)) + net.gas[&net.addr(client)], client_expected);

    // p3 takes the reopened slot at the slot's price; its first period leaves a full period
    // to fetch the data from the surviving replica.
    let logs = net.send(p3, M::takeCall { bidId: deal, slot: U256::from(1), askId: asks[2] }, U256::ZERO);
    let taken = &events::<M::SlotTaken>(&logs)[0];
    let first = taken.firstPeriod.to::<u64>();
    assert!(net.period_start(d, first) >= net.number() + period, "a full period to fetch");
    // p3 fetches the data from the surviving replica, which serves each chunk with its path;
    // every chunk is checked against the root before it is kept, and the file decodes.
    let fetched: Vec<Option<&[u8]>> = (0..f.chunks())
        .map(|i| {
            let (chunk, path) = (f.chunk(i).unwrap(), f.path(i).unwrap());
            verify_path(storage::leaf(chunk), i, f.chunks(), &path, f.root()).then_some(chunk)
        })
        .collect();
    assert_eq!(crate::coding::decode(&fetched).unwrap(), plain);
    // Periods p3 missed before it joined are nobody's: the client gets them back at the end.
    for p in 4..periods {
        net.advance_to(net.period_start(d, p));
        net.send(p1, net.proof(&f, d, 0, p), U256::ZERO);
        if p >= first {
            net.send(p3, net.proof(&f, d, 1, p), U256::ZERO);
        }
    }
    assert_eq!(net.refused(anyone, M::finishCall { bidId: deal }, U256::ZERO), "deal not over");
    net.advance_to(net.period_start(d, periods - 1) + period);
    let logs = net.send(anyone, M::finishCall { bidId: deal }, U256::ZERO);
    let refunded = events::<M::DealFinished>(&logs)[0].refunded;
    // Slot 1 was unpaid from period 4 to p3's first: those periods come back to the client.
    assert_eq!(refunded, per_period * U256::from(first - 4));
    client_expected += refunded;
    assert_eq!(net.balance(net.addr(client)) + net.gas[&net.addr(client)], client_expected);

    // The books balance to the shor: the client paid exactly the periods proven.
    let proven = U256::from(periods + (periods - first) + 1);
    assert_eq!(client_start - client_expected, per_period * proven - collateral);
    // The market holds only the asks' free collateral, and p2's ask is down by the collateral
    // it lost; p1's and p3's are whole again.
    let held = net.balance(STORAGE_MARKET);
    let mut free = U256::ZERO;
    for (i, a) in asks.iter().chain([&dear]).enumerate() {
        let ask = net.call(anyone, &M::asksCall(*a), U256::ZERO).unwrap();
        free += ask.collateral;
        let whole = U256::from(COLLATERAL_PER_BYTE) * U256::from(CAPACITY);
        let expected = if i == 1 { whole - collateral } else { whole };
        assert_eq!(ask.collateral, expected, "ask {i}");
        assert_eq!(ask.capacity, CAPACITY, "ask {i}'s capacity is free again");
    }
    assert_eq!(held, free);
}

#[test]
fn unfilled_bids_and_asks_expire_and_pay_back_in_the_same_transaction() {
    let mut net = Net::new(3);
    let (client, p1, anyone) = (0, 1, 2);
    let client_start = net.balance(net.addr(client));
    let ask = post_ask(&mut net, p1, PRICE, 40);
    let f = file(4096);
    let escrow = U256::from(2 * f.size()) * U256::from(PRICE) * U256::from(4);
    let expiry = net.number() + 5;
    let logs = net.send(
        client,
        M::postBidCall {
            root: f.root(),
            chunks: f.chunks(),
            replicas: 2,
            period: 16,
            periods: 4,
            maxPrice: PRICE,
            expiry,
        },
        escrow,
    );
    let bid = events::<M::BidPosted>(&logs)[0].bidId;
    net.send(p1, M::takeCall { bidId: bid, slot: U256::ZERO, askId: ask }, U256::ZERO);
    let locked = U256::from(f.size()) * U256::from(COLLATERAL_PER_BYTE);
    let a = net.call(anyone, &M::asksCall(ask), U256::ZERO).unwrap();
    assert_eq!(a.capacity, CAPACITY - f.size());
    // Nobody but the client may cancel before the expiry; anyone may after.
    assert_eq!(net.refused(anyone, M::cancelBidCall { bidId: bid }, U256::ZERO), "not expired");
    net.advance_to(expiry);
    let logs = net.send(anyone, M::cancelBidCall { bidId: bid }, U256::ZERO);
    assert_eq!(events::<M::BidCancelled>(&logs)[0].refunded, escrow);
    assert_eq!(net.balance(net.addr(client)) + net.gas[&net.addr(client)], client_start);
    // The provider's collateral and capacity are back on its ask.
    let a = net.call(anyone, &M::asksCall(ask), U256::ZERO).unwrap();
    assert_eq!(
        (a.capacity, a.collateral),
        (CAPACITY, U256::from(COLLATERAL_PER_BYTE) * U256::from(CAPACITY))
    );
    assert!(locked > U256::ZERO);
    assert_eq!(net.refused(anyone, M::cancelBidCall { bidId: bid }, U256::ZERO), "not an open bid");

    // An expired ask is closed by anyone and its collateral goes to its provider.
    let p1_before = net.balance(net.addr(p1));
    assert_eq!(net.refused(anyone, M::closeAskCall { askId: ask }, U256::ZERO), "not expired");
    net.advance_to(net.number() + 40);
    net.send(anyone, M::closeAskCall { askId: ask }, U256::ZERO);
    assert_eq!(net.balance(net.addr(p1)) - p1_before, U256::from(COLLATERAL_PER_BYTE) * U256::from(CAPACITY));
    assert_eq!(net.balance(STORAGE_MARKET), U256::ZERO);
}

impl Net {
    /// A proof call with no data, for checks the contract makes before reading it.
    fn proof_stub(&self, deal: u64, slot: u64, p: u64) -> M::proveCall {
        M::proveCall {
            bidId: U256::from(deal),
            slot: U256::from(slot),
            p: U256::from(p),
            header: Bytes::new(),
            data: vec![],
            paths: vec![],
        }
    }
}

#[test]
fn compute_jobs_are_paid_on_agreement_and_mediated_on_disagreement_or_dispute() {
    use crate::compute::{commitment, ComputeMarket as C};
    let mut net = Net::new(5);
    net.at = COMPUTE_MARKET;
    let (client, p1, p2, p3, mediator) = (0, 1, 2, 3, 4);
    let fee = U256::from(1_000_000u64);
    net.send(mediator, C::registerMediatorCall { fee }, U256::ZERO);
    let collateral: u128 = 5_000_000;
    let price: u128 = 7;
    let speedless = C::postAskCall {
        price,
        maxFuel: 1 << 30,
        maxMemory: 1 << 26,
        fuelPerSecond: 0,
        collateralPerJob: collateral,
        expiry: net.number() + 1_000,
    };
    assert_eq!(net.refused(p1, speedless, U256::from(collateral)), "fuel per second");
    let mut asks = vec![];
    for p in [p1, p2, p3] {
        let logs = net.send(
            p,
            C::postAskCall {
                price,
                maxFuel: 1 << 30,
                maxMemory: 1 << 26,
                fuelPerSecond: 1_000_000_000,
                collateralPerJob: collateral,
                expiry: net.number() + 1_000,
            },
            U256::from(10 * collateral),
        );
        asks.push(events::<C::AskPosted>(&logs)[0].askId);
    }
    let (fuel_limit, max_price, phase) = (1_000_000u64, 9u128, 4u64);
    let module = keccak256(b"job.wasm");
    let output = keccak256(b"the job's standard output");
    let wrong = keccak256(b"something else");
    let fuel = 600_000u64;
    // Posts a job for `replicas`, has `takers` take it; its id.
    let post = |net: &mut Net, replicas: u8, takers: &[usize]| -> U256 {
        let escrow = U256::from(replicas) * U256::from(fuel_limit) * U256::from(max_price);
        let logs = net.send(
            client,
            C::postJobCall {
                module,
                input: keccak256(b"input"),
                fuelLimit: fuel_limit,
                memoryLimit: 1 << 24,
                replicas,
                maxPrice: max_price,
                phaseLength: phase,
                expiry: net.number() + 50,
                mediator: net.addr(mediator),
            },
            escrow,
        );
        let job = events::<C::JobPosted>(&logs)[0].jobId;
        for &t in takers {
            net.send(t, C::takeCall { jobId: job, askId: asks[t - 1] }, U256::ZERO);
        }
        job
    };
    let salt = |who: usize| keccak256([who as u8]);
    let commit = |net: &mut Net, job: U256, slot: u64, who: usize, out: B256| {
        let c = commitment(out, fuel, salt(who), net.addr(who));
        assert_eq!(
            net.call(
                who,
                &C::commitmentCall { output: out, fuel, salt: salt(who), provider: net.addr(who) },
                U256::ZERO
            )
            .unwrap(),
            c
        );
        net.send(who, C::commitCall { jobId: job, slot: U256::from(slot), c }, U256::ZERO);
    };
    let reveal = |net: &mut Net, job: U256, slot: u64, who: usize, out: B256| -> Vec<Log> {
        net.send(
            who,
            C::revealCall { jobId: job, slot: U256::from(slot), output: out, fuel, salt: salt(who) },
            U256::ZERO,
        )
    };
    let paid = U256::from(fuel) * U256::from(price);

    // 1. Two replicas agree; after the dispute window each is paid its fuel at its price.
    let before: Vec<U256> = (0..5).map(|i| net.worth(i)).collect();
    let job = post(&mut net, 2, &[p1, p2]);
    commit(&mut net, job, 0, p1, output);
    assert_eq!(
        net.refused(
            p1,
            C::revealCall { jobId: job, slot: U256::ZERO, output, fuel, salt: salt(p1) },
            U256::ZERO
        ),
        "not revealing",
        "no reveal before every commitment is in"
    );
    commit(&mut net, job, 1, p2, output);
    assert_eq!(
        net.refused(
            p1,
            C::revealCall { jobId: job, slot: U256::ZERO, output, fuel: fuel + 1, salt: salt(p1) },
            U256::ZERO
        ),
        "does not match the commitment"
    );
    reveal(&mut net, job, 0, p1, output);
    reveal(&mut net, job, 1, p2, output);
    assert_eq!(net.refused(p3, C::settleCall { jobId: job }, U256::ZERO), "nothing to settle yet");
    net.advance_to(net.number() + phase);
    let logs = net.send(p3, C::settleCall { jobId: job }, U256::ZERO);
    let done = &events::<C::JobDone>(&logs)[0];
    assert!(done.agreed && done.output == output);
    assert_eq!(net.worth(p1) - before[p1], paid);
    assert_eq!(net.worth(p2) - before[p2], paid);
    assert_eq!(
        before[client] - net.worth(client),
        paid * U256::from(2),
        "the client paid the fuel used, no more"
    );

    // 2. Three replicas, p3 lies: its reveal starts mediation; the mediator's answer pays p1
    // and p2 and splits p3's collateral between the client and the mediator.
    let before: Vec<U256> = (0..5).map(|i| net.worth(i)).collect();
    let job = post(&mut net, 3, &[p1, p2, p3]);
    commit(&mut net, job, 0, p1, output);
    commit(&mut net, job, 1, p2, output);
    commit(&mut net, job, 2, p3, wrong);
    reveal(&mut net, job, 0, p1, output);
    reveal(&mut net, job, 1, p2, output);
    let logs = reveal(&mut net, job, 2, p3, wrong);
    assert_eq!(events::<C::MediationRequested>(&logs).len(), 1);
    assert_eq!(
        net.refused(p1, C::mediateCall { jobId: job, output, fuel }, U256::ZERO),
        "not the job's mediator"
    );
    let logs = net.send(mediator, C::mediateCall { jobId: job, output, fuel }, U256::ZERO);
    assert_eq!(events::<C::Slashed>(&logs).len(), 1);
    let half = U256::from(collateral / 2);
    assert_eq!(net.worth(p1) - before[p1], paid);
    assert_eq!(net.worth(p2) - before[p2], paid);
    assert_eq!(net.worth(mediator) - before[mediator], half);
    assert_eq!(net.worth(client) + paid * U256::from(2), before[client] + U256::from(collateral) - half);
    // p3's ask lost the collateral; p1's and p2's have theirs back.
    let a3 = net.call(p3, &C::asksCall(asks[2]), U256::ZERO).unwrap();
    assert_eq!(a3.collateral, U256::from(9 * collateral));

    // 3. The client disputes agreeing results; the mediator finds them right: the providers
    // are paid and the client's deposit pays the mediator.
    let before: Vec<U256> = (0..5).map(|i| net.worth(i)).collect();
    let job = post(&mut net, 2, &[p1, p2]);
    commit(&mut net, job, 0, p1, output);
    commit(&mut net, job, 1, p2, output);
    reveal(&mut net, job, 0, p1, output);
    reveal(&mut net, job, 1, p2, output);
    assert_eq!(net.refused(client, C::disputeCall { jobId: job }, U256::ZERO), "deposit");
    net.send(client, C::disputeCall { jobId: job }, fee);
    net.send(mediator, C::mediateCall { jobId: job, output, fuel }, U256::ZERO);
    assert_eq!(net.worth(p1) - before[p1], paid);
    assert_eq!(net.worth(mediator) - before[mediator], fee);
    assert_eq!(before[client] - net.worth(client), paid * U256::from(2) + fee);

    // 4. p2 never commits: after the commit phase its collateral goes to the client, p1's
    // result stands alone and is paid.
    let before: Vec<U256> = (0..5).map(|i| net.worth(i)).collect();
    let job = post(&mut net, 2, &[p1, p2]);
    commit(&mut net, job, 0, p1, output);
    net.advance_to(net.number() + phase);
    let logs = reveal(&mut net, job, 0, p1, output);
    assert_eq!(events::<C::Slashed>(&logs)[0].provider, net.addr(p2));
    net.advance_to(net.number() + phase);
    net.send(client, C::settleCall { jobId: job }, U256::ZERO);
    assert_eq!(net.worth(p1) - before[p1], paid);
    assert_eq!(net.worth(client) + paid, before[client] + U256::from(collateral));

    // 5. A mediator that never answers leaves the job void: everything goes back.
    let before: Vec<U256> = (0..5).map(|i| net.worth(i)).collect();
    let job = post(&mut net, 2, &[p1, p3]);
    commit(&mut net, job, 0, p1, output);
    commit(&mut net, job, 1, p3, wrong);
    reveal(&mut net, job, 0, p1, output);
    reveal(&mut net, job, 1, p3, wrong);
    net.advance_to(net.number() + phase);
    net.send(client, C::settleCall { jobId: job }, U256::ZERO);
    for who in [client, p1, p3, mediator] {
        assert_eq!(net.worth(who), before[who], "party {who}");
    }
    // The books balance: the market holds only the asks' free collateral.
    let mut free = U256::ZERO;
    for a in &asks {
        free += net.call(client, &C::asksCall(*a), U256::ZERO).unwrap().collateral;
    }
    assert_eq!(net.balance(COMPUTE_MARKET), free);
}

#[test]
fn chunk_records_round_trip_and_malformed_ones_are_refused() {
    use crate::storage::{decode_records, encode_records, ChunkRecord, RecordError};
    let records = vec![
        ChunkRecord { chunk: vec![1; CHUNK_SIZE], path: vec![B256::repeat_byte(2), B256::repeat_byte(3)] },
        ChunkRecord { chunk: vec![4; CHUNK_SIZE], path: vec![] },
    ];
    let bytes = encode_records(&records);
    assert_eq!(decode_records(&bytes).unwrap(), records);
    assert_eq!(decode_records(&bytes[..bytes.len() - 1]), Err(RecordError::Short(CHUNK_SIZE)));
    assert_eq!(decode_records(&bytes[..CHUNK_SIZE + 10]), Err(RecordError::PathShort));
    let mut long = vec![0u8; CHUNK_SIZE];
    long.push(33);
    long.extend(vec![0u8; 33 * 32]);
    assert_eq!(decode_records(&long), Err(RecordError::PathTooLong(33)));
    assert_eq!(decode_records(&[]), Ok(vec![]));
}
