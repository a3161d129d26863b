//! Pool rules, each with the wording dapp tools match on.

use super::*;
use qoin_crypto::Keypair;
use qoin_primitives::TxRequest;
use std::sync::OnceLock;

fn keys() -> &'static [Keypair] {
    static K: OnceLock<Vec<Keypair>> = OnceLock::new();
    K.get_or_init(|| (20..24u8).map(|i| Keypair::from_seed(&[i; 32])).collect())
}

#[derive(Default)]
struct State(HashMap<Address, (u64, U256)>);

impl AccountState for State {
    fn nonce_and_balance(&self, a: &Address) -> (u64, U256) {
        self.0.get(a).copied().unwrap_or_default()
    }
}

fn funded(balance: u64) -> State {
    State(keys().iter().map(|k| (k.address(), (0, U256::from(balance)))).collect())
}

fn tx(from: usize, nonce: u64, fee: u128, tip: u128) -> SignedTx {
    TxRequest {
        chain_id: 7,
        nonce,
        max_priority_fee_per_gas: tip,
        max_fee_per_gas: fee,
        gas_limit: 21_000,
        to: TxKind::Call(Address::repeat_byte(9)),
        value: U256::from(1u8),
        ..Default::default()
    }
    .sign(&keys()[from])
}

fn pool() -> TxPool {
    TxPool::new(PoolConfig::new(7, 30_000_000, 10))
}

/// The refusal's message.
fn msg<T: std::fmt::Debug>(r: Result<T, PoolError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

#[test]
fn admission_checks_use_geths_wording() {
    let now = Instant::now();
    let mut p = pool();
    let mut st = funded(10_000_000);
    st.0.get_mut(&keys()[0].address()).unwrap().0 = 5;
    assert!(msg(p.add(tx(0, 4, 100, 1), &st, now)).starts_with("nonce too low"));
    let wrong_chain =
        TxRequest { chain_id: 8, gas_limit: 21_000, max_fee_per_gas: 100, ..Default::default() }
            .sign(&keys()[1]);
    assert!(msg(p.add(wrong_chain, &st, now)).starts_with("invalid chain id"));
    assert_eq!(p.add(tx(1, 0, 100, 101), &st, now), Err(PoolError::TipAboveFeeCap));
    assert!(msg(p.add(tx(1, 0, 9, 1), &st, now)).starts_with("transaction underpriced"));
    let low_gas = TxRequest { chain_id: 7, gas_limit: 20_000, max_fee_per_gas: 100, ..Default::default() }
        .sign(&keys()[1]);
    assert!(msg(p.add(low_gas, &st, now)).starts_with("intrinsic gas too low"));
    let huge = TxRequest { chain_id: 7, gas_limit: 30_000_001, max_fee_per_gas: 100, ..Default::default() }
        .sign(&keys()[1]);
    assert_eq!(msg(p.add(huge, &st, now)), "exceeds block gas limit");

    let t = tx(1, 0, 100, 1);
    assert_eq!(p.add(t.clone(), &st, now), Ok(Admitted::Pending));
    assert_eq!(msg(p.add(t, &st, now)), "already known");
    assert!(!p.is_empty() && p.len() == 1);
}

#[test]
fn unsigned_impersonated_transactions_only_while_impersonating() {
    let mut p = pool();
    let who = Address::repeat_byte(0xc0);
    let st = State([(who, (0, U256::from(10_000_000u64)))].into_iter().collect());
    let t = tx(0, 0, 100, 1).request().clone().impersonated(who);
    let now = Instant::now();
    assert!(msg(p.add(t.clone(), &st, now)).contains("carries no signature"));
    // Said so before any other check: an unfunded sender is not told "insufficient funds".
    let broke = tx(0, 0, 100, 1).request().clone().impersonated(Address::repeat_byte(0xc1));
    assert!(msg(p.add(broke, &st, now)).contains("carries no signature"));
    p.impersonate(who);
    assert_eq!(p.add(t.clone(), &st, now).unwrap(), Admitted::Pending);
    assert!(!p.verified(&t), "an impersonated transaction never counts as verified");
    p.stop_impersonating(&who);
    let next = tx(0, 1, 100, 1).request().clone().impersonated(who);
    assert!(msg(p.add(next, &st, now)).contains("carries no signature"));
}

#[test]
fn balance_counts_pending_spends() {
    let now = Instant::now();
    let mut p = pool();
    // Each costs 21,000 × 100 + 1 = 2,100,001; the balance covers two.
    let st = funded(4_300_000);
    p.add(tx(0, 0, 100, 1), &st, now).unwrap();
    p.add(tx(0, 1, 100, 1), &st, now).unwrap();
    let e = msg(p.add(tx(0, 2, 100, 1), &st, now));
    assert!(e.starts_with("insufficient funds for gas * price + value"), "{e}");
}

#[test]
fn a_cost_that_would_overflow_is_refused_not_wrapped() {
    let now = Instant::now();
    let mut p = pool();
    let st = funded(4_300_000);
    // gas * fee + value is 2^256 exactly: wrapped, it would cost 0.
    let gas_fee = U256::from(21_000u64 * 100);
    let wrap = TxRequest {
        chain_id: 7,
        max_fee_per_gas: 100,
        gas_limit: 21_000,
        to: TxKind::Call(Address::repeat_byte(9)),
        value: U256::MAX - gas_fee + U256::from(1u8),
        ..Default::default()
    };
    let e = msg(p.add(wrap.clone().sign(&keys()[0]), &st, now));
    assert!(e.starts_with("insufficient funds for gas * price + value"), "{e}");
    // Nor can it hide behind an earlier pooled transaction of the sender's.
    p.add(tx(1, 0, 100, 1), &st, now).unwrap();
    let e = msg(p.add(TxRequest { nonce: 1, ..wrap }.sign(&keys()[1]), &st, now));
    assert!(e.starts_with("insufficient funds"), "{e}");
    assert_eq!(p.len(), 1);
}

#[test]
fn replacement_needs_a_ten_percent_bump_of_both_fees() {
    let now = Instant::now();
    let mut p = pool();
    let st = funded(100_000_000);
    let first = tx(0, 0, 100, 10);
    p.add(first.clone(), &st, now).unwrap();
    assert_eq!(msg(p.add(tx(0, 0, 109, 20), &st, now)), "replacement transaction underpriced");
    assert_eq!(msg(p.add(tx(0, 0, 200, 10), &st, now)), "replacement transaction underpriced");
    let better = tx(0, 0, 110, 11);
    assert_eq!(p.add(better.clone(), &st, now), Ok(Admitted::Replaced(first.id())));
    assert!(p.get(&first.id()).is_none());
    assert_eq!(p.get(&better.id()), Some(&better));
    assert_eq!(p.len(), 1);
}

#[test]
fn gaps_queue_and_pending_orders_by_tip_within_nonce_order() {
    let now = Instant::now();
    let mut p = pool();
    let st = funded(100_000_000);
    assert_eq!(p.add(tx(0, 2, 500, 50), &st, now), Ok(Admitted::Queued));
    assert_eq!(p.add(tx(0, 0, 100, 5), &st, now), Ok(Admitted::Pending));
    assert_eq!(p.add(tx(1, 0, 300, 30), &st, now), Ok(Admitted::Pending));
    assert_eq!(p.queued(&st).len(), 1);
    assert_eq!(p.next_nonce(&keys()[0].address(), &st), 1);
    // Filling the gap makes nonce 2 executable.
    assert_eq!(p.add(tx(0, 1, 100, 5), &st, now), Ok(Admitted::Pending));
    assert!(p.queued(&st).is_empty());
    assert_eq!(p.next_nonce(&keys()[0].address(), &st), 3);
    let order: Vec<(usize, u64)> = p
        .pending(&st, 10)
        .iter()
        .map(|t| (keys().iter().position(|k| k.address() == t.sender()).unwrap(), t.request().nonce))
        .collect();
    // Sender 1 (tip 30) first; sender 0's nonce 2 (tip 50) must still follow its nonces 0 and 1.
    assert_eq!(order, vec![(1, 0), (0, 0), (0, 1), (0, 2)]);
    // A base fee above a transaction's cap stops its sender's run there.
    assert_eq!(p.pending(&st, 200).len(), 1);
}

#[test]
fn limits_evict_the_cheapest_and_refuse_when_full_of_better() {
    let now = Instant::now();
    let mut p =
        TxPool::new(PoolConfig { max_total: 2, max_per_sender: 1, ..PoolConfig::new(7, 30_000_000, 10) });
    let st = funded(100_000_000);
    p.add(tx(0, 0, 100, 1), &st, now).unwrap();
    assert!(msg(p.add(tx(0, 1, 100, 1), &st, now)).starts_with("account limit exceeded"));
    p.add(tx(1, 0, 200, 1), &st, now).unwrap();
    assert_eq!(msg(p.add(tx(2, 0, 50, 1), &st, now)), "txpool is full");
    let rich = tx(3, 0, 300, 1);
    p.add(rich.clone(), &st, now).unwrap();
    assert_eq!(p.len(), 2);
    assert!(p.get(&rich.id()).is_some());
    assert!(
        p.pending(&st, 10).iter().all(|t| t.request().max_fee_per_gas >= 200),
        "the 100-fee transaction was evicted"
    );
}

#[test]
fn prune_drops_mined_and_expired() {
    let now = Instant::now();
    let mut p = pool();
    let mut st = funded(100_000_000);
    p.add(tx(0, 0, 100, 1), &st, now).unwrap();
    p.add(tx(0, 1, 100, 1), &st, now).unwrap();
    p.add(tx(1, 0, 100, 1), &st, now + Duration::from_secs(3600)).unwrap();
    st.0.get_mut(&keys()[0].address()).unwrap().0 = 1; // nonce 0 mined
    p.prune(&st, now + Duration::from_secs(60));
    assert_eq!(p.len(), 2);
    p.prune(&st, now + Duration::from_secs(3 * 3600 + 1));
    assert_eq!(p.len(), 1, "sender 0's transaction expired, sender 1's did not");
}

#[test]
fn signatures_are_checked_once() {
    let now = Instant::now();
    let mut p = pool();
    let st = funded(100_000_000);
    let t = tx(0, 0, 100, 1);
    p.add(t.clone(), &st, now).unwrap();
    assert!(p.verified(&t));
    // The same transaction signed again (randomised signature) is not the verified one.
    let resigned = TxRequest { ..t.request().clone() }.sign(&keys()[0]);
    assert_eq!(resigned.id(), t.id());
    assert!(!p.verified(&resigned));
    // A forged signature is refused.
    let forged = SignedTx::from_parts(
        tx(1, 0, 100, 1).request().clone(),
        keys()[1].public().clone(),
        t.signature().unwrap().clone(),
    );
    assert!(msg(p.add(forged, &st, now)).starts_with("invalid transaction signature"));
}
