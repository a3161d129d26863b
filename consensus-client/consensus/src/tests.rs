//! Validation of mined headers: every rule named when broken, sibling references, and no
//! byte sequence that panics or validates as another block.

use crate::params::ChainParams;
use crate::validate::{validate_header, BlockMeta, InvalidBlock};
use alloy_primitives::{Address, B256, U256};
use proptest::prelude::*;
use qoin_crypto::{Domain, Keypair};
use qoin_primitives::{Genesis, GenesisAccount, Header, PowParams, RewardParams};
use std::sync::atomic::AtomicBool;

const T0: u64 = 1_767_225_600;

fn genesis(alloc: &[Address]) -> Genesis {
    Genesis {
        chain_id: 9,
        timestamp: T0,
        gas_limit: 30_000_000,
        base_fee_per_gas: U256::from(7u8),
        target_block_time_ms: 1000,
        pow: PowParams { initial_equations: 8, initial_mantissa: 0, half_life_secs: 120 },
        rewards: RewardParams::default(),
        alloc: alloc
            .iter()
            .map(|a| (*a, GenesisAccount { balance: U256::from(10u64.pow(12)), ..Default::default() }))
            .collect(),
    }
}

fn params() -> ChainParams {
    ChainParams::new(&genesis(&[]), B256::repeat_byte(0x6e), B256::repeat_byte(0x5e)).unwrap()
}

/// A sealed child of `parent` by `miner` at `ts_ms`.
fn mine(parent: &BlockMeta, p: &ChainParams, miner: &Keypair, ts_ms: u64, siblings: &[B256]) -> Header {
    let mut h = Header {
        parent_hash: parent.hash,
        siblings: siblings.to_vec(),
        height: parent.height + 1,
        timestamp_ms: ts_ms,
        difficulty: p.child_difficulty(parent.height, parent.timestamp_ms).to_compact(),
        payload_hash: B256::repeat_byte(0x11),
        state_root: B256::repeat_byte(0x22),
        transactions_root: qoin_primitives::transactions_root(&[]).unwrap(),
        coinbase: miner.address(),
        miner_keys: miner.public().clone(),
        extra_nonce: 0,
        ticket: miner.sign(Domain::MiningTicket, b""),
        solution: [0; 16],
    };
    h.sign_ticket(miner).unwrap();
    qoin_kernels::seal(&mut h, &qoin_kernels::Portable, &AtomicBool::new(false)).unwrap();
    h
}

#[test]
fn a_mined_header_validates_and_each_broken_rule_is_named() {
    let p = params();
    let g = BlockMeta::genesis(&p);
    let miner = Keypair::from_seed(&[7; 32]);
    let t = p.genesis_time_ms + 1000;
    let h = mine(&g, &p, &miner, t, &[]);
    let meta = validate_header(&h, &g, &[], &p, t).unwrap();
    assert_eq!(meta.height, 1);
    assert_eq!(meta.work, U256::from(1u64 << 32) << 8);

    let mut wrong_height = h.clone();
    wrong_height.height = 2;
    assert!(matches!(validate_header(&wrong_height, &g, &[], &p, t), Err(InvalidBlock::Height { .. })));
    let mut early = h.clone();
    early.timestamp_ms = g.timestamp_ms;
    assert!(matches!(validate_header(&early, &g, &[], &p, t), Err(InvalidBlock::Time(_))));
    assert!(
        matches!(validate_header(&h, &g, &[], &p, t - 20_000), Err(InvalidBlock::Time(_))),
        "15 s in the future"
    );
    let mut easy = h.clone();
    easy.difficulty = qoin_pow::Difficulty::new(9, 0).unwrap().to_compact();
    assert!(matches!(validate_header(&easy, &g, &[], &p, t), Err(InvalidBlock::Difficulty { .. })));
    let mut stolen = h.clone();
    stolen.coinbase = Address::repeat_byte(0x66);
    assert!(validate_header(&stolen, &g, &[], &p, t).is_err(), "a changed coinbase breaks seal and ticket");
    let mut bad_solution = h.clone();
    bad_solution.solution[0] ^= 1;
    assert!(matches!(validate_header(&bad_solution, &g, &[], &p, t), Err(InvalidBlock::Pow(_))));
    let other = BlockMeta { hash: B256::repeat_byte(1), ..g };
    assert!(matches!(validate_header(&h, &other, &[], &p, t), Err(InvalidBlock::WrongParent { .. })));
}

#[test]
fn sibling_references_follow_the_generation_rule() {
    let p = params();
    let g = BlockMeta::genesis(&p);
    let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
    let t = p.genesis_time_ms;
    let parent_h = mine(&g, &p, &a, t + 1000, &[]);
    let parent = validate_header(&parent_h, &g, &[], &p, t + 1000).unwrap();
    let sib_h = mine(&g, &p, &b, t + 1100, &[]);
    let sib = validate_header(&sib_h, &g, &[], &p, t + 1100).unwrap();
    let child = mine(&parent, &p, &a, t + 2000, &[sib.hash]);
    assert!(validate_header(&child, &parent, std::slice::from_ref(&sib), &p, t + 2000).is_ok());
    // The parent itself is no sibling; neither is a block at another height.
    let selfref = mine(&parent, &p, &a, t + 2000, &[parent.hash]);
    assert!(matches!(
        validate_header(&selfref, &parent, std::slice::from_ref(&parent), &p, t + 2000),
        Err(InvalidBlock::Sibling { why: "is the parent itself", .. })
    ));
    let twice = mine(&parent, &p, &a, t + 2000, &[sib.hash, sib.hash]);
    assert!(matches!(
        validate_header(&twice, &parent, &[sib.clone(), sib], &p, t + 2000),
        Err(InvalidBlock::Sibling { why: "referenced twice", .. })
    ));
    // Rewards: the sibling's miner gets an eighth, taken from the block's reward.
    let credits = p.credits(2, a.address(), &[b.address()]);
    let r = p.rewards.block_reward(2, 1000);
    assert_eq!(credits[1].amount, r / U256::from(8u8));
    assert_eq!(credits[0].amount + credits[1].amount, r, "issuance stays on schedule");
    assert_eq!(r, U256::from(427_789_185_489_390_828u64));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_byte_sequence_panics_decoding_or_validation(bytes in proptest::collection::vec(any::<u8>(), 0..12_000)) {
        let p = params();
        let g = BlockMeta::genesis(&p);
        if let Ok(h) = Header::decode(&bytes) {
            let _ = validate_header(&h, &g, &[], &p, u64::MAX);
        }
    }

    #[test]
    fn flipped_bytes_of_a_valid_header_never_validate_as_another_block(pos in 0usize..10_000, bit in 0u8..8) {
        let p = params();
        let g = BlockMeta::genesis(&p);
        let miner = Keypair::from_seed(&[3; 32]);
        let t = p.genesis_time_ms + 1000;
        let h = mine(&g, &p, &miner, t, &[]);
        let mut bytes = h.encode().unwrap();
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        if let Ok(mutated) = Header::decode(&bytes) {
            prop_assert!(validate_header(&mutated, &g, &[], &p, t).is_err());
        }
    }
}
