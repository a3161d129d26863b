//! A harness for the market contracts (feature `harness`, and this crate's tests): one
//! execution client's chain (real revm, real MDBX, dual-signed transactions) with funded
//! keys, blocks made on demand, calls run without writing, proofs built from the chain's own
//! headers. The tests and the `market-gas` benchmark drive the contracts through it; a
//! failure panics with what went wrong, as a test's would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::storage::{challenges, randomness_of, Answer, ChunkedFile, StorageMarket as M};
use alloy_primitives::{keccak256, Address, Bytes, Log, B256, U256};
use alloy_sol_types::{SolCall, SolError, SolEvent};
use qoin_crypto::Keypair;
use qoin_el_chain::Chain;
use qoin_el_storage::block::Receipt;
use qoin_el_storage::tables::Accounts;
use qoin_evm::state::StateReader;
use qoin_primitives::system::{COMPUTE_MARKET, STORAGE_MARKET};
use qoin_primitives::{SignedTx, TxKind, TxRequest};
use qoin_store::StoreOptions;
use revm::context::{BlockEnv, TxEnv};
use revm::database_interface::WrapDatabaseRef;
use revm::{Context, ExecuteEvm, MainBuilder, MainContext};
use std::collections::HashMap;

/// One execution client's chain with funded keys, blocks made on demand.
pub struct Net {
    chain: Chain,
    _dir: tempfile::TempDir,
    /// The funded keys, by index.
    pub keys: Vec<Keypair>,
    nonces: HashMap<Address, u64>,
    /// Gas each account paid, in shor.
    pub gas: HashMap<Address, U256>,
    /// The contract transactions and calls go to.
    pub at: Address,
}

impl Net {
    /// A new chain whose genesis funds `n` keys with 1,000 QOIN each (30M gas per block).
    pub fn new(n: u8) -> Self {
        let keys: Vec<Keypair> = (1..=n).map(|i| Keypair::from_seed(&[0x40 + i; 32])).collect();
        let dir = tempfile::tempdir().unwrap();
        let genesis = qoin_el_chain::test_utils::funded_genesis(&keys, 30_000_000);
        let chain =
            Chain::open(dir.path(), genesis, StoreOptions { max_size: 1 << 32, ..Default::default() })
                .unwrap();
        Self { chain, _dir: dir, keys, nonces: HashMap::new(), gas: HashMap::new(), at: STORAGE_MARKET }
    }

    /// Key `i`'s address.
    pub fn addr(&self, i: usize) -> Address {
        self.keys[i].address()
    }

    /// The head's number.
    pub fn number(&self) -> u64 {
        self.chain.head().unwrap().number
    }

    /// `a`'s balance at the head.
    pub fn balance(&self, a: Address) -> U256 {
        let r = self.chain.store().read().unwrap();
        r.get::<Accounts>(&a).unwrap().map_or(U256::ZERO, |acc| acc.balance)
    }

    /// Mines one block holding `txs` (each must be included) and returns their receipts.
    pub fn block(&mut self, txs: Vec<SignedTx>) -> Vec<Receipt> {
        let head = self.chain.head().unwrap();
        let n = head.number + 1;
        let env = self.chain.child_env(
            &head,
            head.timestamp + 1,
            Address::repeat_byte(0xbe),
            keccak256(n.to_be_bytes()),
        );
        let count = txs.len();
        let executed = self.chain.build(&env, txs, vec![]).unwrap();
        assert_eq!(executed.transactions.len(), count, "every transaction fits the block");
        let mut used = 0;
        for (t, r) in executed.transactions.iter().zip(&executed.receipts) {
            let gas = r.cumulative_gas_used - used;
            used = r.cumulative_gas_used;
            *self.gas.entry(t.sender()).or_default() += U256::from(gas) * U256::from(env.base_fee);
        }
        self.chain.commit_built(&executed).unwrap();
        executed.receipts
    }

    /// Mines empty blocks up to `number`.
    pub fn advance_to(&mut self, number: u64) {
        while self.number() < number {
            self.block(vec![]);
        }
    }

    /// A transaction from key `from` to [`Net::at`], signed, with the next nonce.
    pub fn tx(&mut self, from: usize, input: Vec<u8>, value: U256) -> SignedTx {
        let sender = self.addr(from);
        let nonce = self.nonces.entry(sender).or_default();
        let tx = TxRequest {
            chain_id: self.chain.genesis().chain_id,
            nonce: *nonce,
            max_priority_fee_per_gas: 0,
            max_fee_per_gas: 100_000_000_000,
            gas_limit: 3_000_000,
            to: TxKind::Call(self.at),
            value,
            input: Bytes::from(input),
            ..Default::default()
        }
        .sign(&self.keys[from]);
        *nonce += 1;
        tx
    }

    /// What `who` holds plus the gas it paid: its balance as if gas were free.
    pub fn worth(&self, who: usize) -> U256 {
        let a = self.addr(who);
        self.balance(a) + self.gas.get(&a).copied().unwrap_or_default()
    }

    /// Sends `call` from key `from` in a block of its own; it must succeed. Its logs.
    #[allow(clippy::needless_pass_by_value)] // calls read as values at the call sites
    pub fn send<C: SolCall>(&mut self, from: usize, call: C, value: U256) -> Vec<Log> {
        self.send_receipt(from, &call, value).logs
    }

    /// [`Net::send`], answering the whole receipt (its gas, its logs).
    pub fn send_receipt<C: SolCall>(&mut self, from: usize, call: &C, value: U256) -> Receipt {
        if let Err(why) = self.call(from, call, value) {
            panic!("{} refused: {why}", C::SIGNATURE);
        }
        let tx = self.tx(from, call.abi_encode(), value);
        let r = self.block(vec![tx]).remove(0);
        assert!(r.success, "{} reverted", C::SIGNATURE);
        r
    }

    /// Runs `call` on the head's state without writing: its result, or the contract's reason
    /// for refusing it.
    pub fn call<C: SolCall>(&self, from: usize, call: &C, value: U256) -> Result<C::Return, String> {
        let r = self.chain.store().read().unwrap();
        let head = self.chain.head().unwrap();
        let caller = self.addr(from);
        let block = BlockEnv {
            number: U256::from(head.number + 1),
            timestamp: U256::from(head.timestamp + 1),
            gas_limit: 30_000_000,
            basefee: 0,
            prevrandao: Some(keccak256((head.number + 1).to_be_bytes())),
            ..BlockEnv::default()
        };
        let tx = TxEnv {
            caller,
            gas_limit: 10_000_000,
            gas_price: 0,
            kind: revm::primitives::TxKind::Call(self.at),
            value,
            data: call.abi_encode().into(),
            nonce: self.nonces.get(&caller).copied().unwrap_or_default(),
            chain_id: Some(self.chain.genesis().chain_id),
            ..TxEnv::default()
        };
        let mut evm = Context::mainnet()
            .with_db(WrapDatabaseRef(StateReader::new(&r)))
            .with_cfg(qoin_evm::execute::cfg_env(self.chain.genesis().chain_id))
            .with_block(block)
            .build_mainnet()
            .with_precompiles(qoin_evm::precompiles::provider());
        let out = evm.transact(tx).map_err(|e| e.to_string())?.result;
        let data = out.output().cloned().unwrap_or_default();
        if out.is_success() {
            C::abi_decode_returns(&data).map_err(|e| e.to_string())
        } else {
            Err(M::Refused::abi_decode(&data).map(|r| r.why).unwrap_or_else(|_| format!("{out:?}")))
        }
    }

    /// The reason the contract refuses `call` (it must refuse it).
    #[allow(clippy::needless_pass_by_value)] // calls read as values at the call sites
    pub fn refused<C: SolCall>(&self, from: usize, call: C, value: U256) -> String {
        match self.call(from, &call, value) {
            Ok(_) => panic!("{} was accepted", C::SIGNATURE),
            Err(why) => why,
        }
    }

    /// The header RLP and randomness of block `n`.
    pub fn header(&self, n: u64) -> (Bytes, B256) {
        let h = self.chain.header(n).unwrap().unwrap();
        let rlp = alloy_rlp::encode(&h);
        assert_eq!(randomness_of(&rlp), Some(h.prev_randao));
        (Bytes::from(rlp), h.prev_randao)
    }

    /// A proof call for period `p` of slot `slot` of deal `deal` from `file`.
    pub fn proof(&self, file: &ChunkedFile, deal: u64, slot: u64, p: u64) -> M::proveCall {
        let start: U256 = self
            .call(0, &M::periodStartCall { bidId: U256::from(deal), p: U256::from(p) }, U256::ZERO)
            .unwrap();
        let (header, randomness) = self.header(start.to());
        let indices = challenges(randomness, deal, slot, p, file.chunks());
        let Answer { data, paths } = file.answer(&indices).unwrap();
        M::proveCall {
            bidId: U256::from(deal),
            slot: U256::from(slot),
            p: U256::from(p),
            header,
            data: data.into_iter().map(Bytes::from).collect(),
            paths,
        }
    }

    /// The first block of period `p` of storage deal `deal`.
    pub fn period_start(&self, deal: u64, p: u64) -> u64 {
        self.call(0, &M::periodStartCall { bidId: U256::from(deal), p: U256::from(p) }, U256::ZERO)
            .unwrap()
            .to()
    }
}

/// The market events of type `E` in `logs`.
pub fn events<E: SolEvent>(logs: &[Log]) -> Vec<E> {
    logs.iter()
        .filter(|l| l.address == STORAGE_MARKET || l.address == COMPUTE_MARKET)
        .filter_map(|l| E::decode_log_data(&l.data).ok())
        .collect()
}
