//! `eth_call` and `eth_estimateGas`: request objects, the EVM run on a block's state, geth's
//! error wording, and the limits on both (`--rpc.gascap`, `--rpc.evmtimeout`).

use crate::convert::{data, parse, q, quantity_u256, quantity_u64, Args, BlockTag};
use crate::error::{RpcError, RpcResult};
use crate::eth::{map_state, read, resolve_required, StateAt};
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_rpc_types_eth::state::{AccountOverride, StateOverride};
use qoin_el_chain::MIN_BASE_FEE;
use qoin_el_node::Node;
use qoin_el_storage::block::{next_base_fee, ElHeader};
use qoin_evm::state::StateError;
use qoin_primitives::AccessListItem;
use qoin_store::{Tx, RO};
use revm::context::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction, ResultAndState};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::transaction::{AccessList, AccessListItem as RevmItem};
use revm::context_interface::ContextTr;
use revm::database_interface::{Database, DatabaseRef, WrapDatabaseRef};
use revm::inspector::JournalExt;
use revm::interpreter::interpreter_types::MemoryTr;
use revm::interpreter::{
    CallInputs, CallOutcome, CreateInputs, CreateOutcome, InstructionResult, Interpreter,
};
use revm::primitives::Log;
use revm::primitives::KECCAK_EMPTY;
use revm::state::{AccountInfo, Bytecode};
use revm::{Context, InspectEvm, Inspector, MainBuilder, MainContext};
use revm_inspectors::access_list::AccessListInspector;
use revm_inspectors::tracing::DebugInspector;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A call or transaction request object.
#[derive(Debug, Clone, Default)]
pub(super) struct CallRequest {
    pub(super) from: Option<Address>,
    pub(super) to: Option<Address>,
    pub(super) gas: Option<u64>,
    pub(super) gas_price: Option<u128>,
    pub(super) max_fee: Option<u128>,
    pub(super) max_priority: Option<u128>,
    pub(super) value: U256,
    pub(super) input: Bytes,
    pub(super) nonce: Option<u64>,
    pub(super) chain_id: Option<u64>,
    pub(super) access_list: Vec<AccessListItem>,
}

fn u128_field(o: &Map<String, Value>, name: &str) -> Result<Option<u128>, RpcError> {
    match o.get(name).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => {
            let x = quantity_u256(v, name)?;
            u128::try_from(x).map(Some).map_err(|_| RpcError::invalid_params(format!("{name} too large")))
        }
    }
}

pub(super) fn parse_request(v: Option<&Value>) -> Result<CallRequest, RpcError> {
    let o =
        v.and_then(Value::as_object).ok_or_else(|| RpcError::invalid_params("missing transaction object"))?;
    let field = |name: &str| o.get(name).filter(|v| !v.is_null());
    let input = match (field("input"), field("data")) {
        (Some(a), Some(b)) if a != b => {
            return Err(RpcError::invalid_params(
                "both \"data\" and \"input\" are set and not equal. Please use \"input\" to pass transaction call data",
            ))
        }
        (Some(v), _) | (None, Some(v)) => parse(v, "input")?,
        (None, None) => Bytes::new(),
    };
    let access_list = match field("accessList") {
        None => Vec::new(),
        Some(v) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Item {
                address: Address,
                #[serde(default)]
                storage_keys: Vec<B256>,
            }
            let items: Vec<Item> = parse(v, "accessList")?;
            items
                .into_iter()
                .map(|i| AccessListItem { address: i.address, storage_keys: i.storage_keys })
                .collect()
        }
    };
    Ok(CallRequest {
        from: field("from").map(|v| parse(v, "from")).transpose()?,
        to: field("to").map(|v| parse(v, "to")).transpose()?,
        gas: field("gas").map(|v| quantity_u64(v, "gas")).transpose()?,
        gas_price: u128_field(o, "gasPrice")?,
        max_fee: u128_field(o, "maxFeePerGas")?,
        max_priority: u128_field(o, "maxPriorityFeePerGas")?,
        value: field("value").map(|v| quantity_u256(v, "value")).transpose()?.unwrap_or_default(),
        input,
        nonce: field("nonce").map(|v| quantity_u64(v, "nonce")).transpose()?,
        chain_id: field("chainId").map(|v| quantity_u64(v, "chainId")).transpose()?,
        access_list,
    })
}

/// The fee cap and tip a request names (`gasPrice` sets both), if any.
fn request_fees(r: &CallRequest) -> (u128, u128) {
    match (r.gas_price, r.max_fee, r.max_priority) {
        (Some(p), None, None) => (p, p),
        (_, fee, tip) => {
            let fee = fee.or(r.gas_price).unwrap_or(0);
            (fee, tip.unwrap_or(0).min(fee))
        }
    }
}

/// The block environment calls run in: the block itself, or for `pending` the next one.
pub(super) fn call_block(header: &ElHeader, pending: bool) -> BlockEnv {
    let (number, timestamp, basefee) = if pending {
        let now = qoin_el_node::unix_secs().max(header.timestamp + 1);
        (header.number + 1, now, next_base_fee(header, MIN_BASE_FEE))
    } else {
        (header.number, header.timestamp, header.base_fee_per_gas)
    };
    BlockEnv {
        number: U256::from(number),
        beneficiary: header.beneficiary,
        timestamp: U256::from(timestamp),
        gas_limit: header.gas_limit,
        basefee,
        difficulty: U256::ZERO,
        prevrandao: Some(header.prev_randao),
        ..BlockEnv::default()
    }
}

/// How long a call (or a whole estimate, or a trace) may run, from when it started.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub(super) deadline: Option<Instant>,
    timeout: Duration,
}

impl Budget {
    /// The node's limit (`--rpc.evmtimeout`), starting now.
    pub(super) fn start(node: &Node) -> Self {
        Self::lasting(node.call_limits().evm_timeout)
    }

    /// `timeout` from now (zero: no limit).
    pub(super) fn lasting(timeout: Duration) -> Self {
        Self { deadline: (!timeout.is_zero()).then(|| Instant::now() + timeout), timeout }
    }

    pub(super) fn is_over(&self) -> bool {
        self.deadline.is_some_and(|at| Instant::now() >= at)
    }

    pub(super) fn exceeded(&self) -> RpcError {
        RpcError::server(format!(
            "execution aborted (timeout = {})",
            humantime::format_duration(self.timeout)
        ))
    }
}

/// What rides along a watched run besides the deadline.
pub(super) enum Extra {
    /// Nothing.
    Nothing,
    /// revm-inspectors' access-list collector (`eth_createAccessList`).
    Access(AccessListInspector),
    /// revm-inspectors' geth tracers (`debug_trace*`), boxed: it is large.
    Trace(Box<DebugInspector>),
}

/// What a trace keeps in memory, estimated, so that a trace of a long run is refused rather
/// than allowed to fill the node's memory: every call frame costs its input, every recorded
/// step its stack and memory when the struct logger keeps them.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordCost {
    /// Steps are recorded (the struct logger).
    pub(super) steps: bool,
    /// Each recorded step copies the stack.
    pub(super) stack: bool,
    /// Each recorded step copies memory.
    pub(super) memory: bool,
    /// Bytes estimated so far.
    pub(super) used: usize,
}

/// Estimated bytes of one recorded step besides its stack and memory copies.
pub(super) const STEP_BYTES: usize = 256;
/// Estimated bytes of one call frame besides its input.
const FRAME_BYTES: usize = 512;
/// The most a trace may keep in memory (estimated); beyond, it is refused.
pub(super) const MAX_TRACE_BYTES: usize = 256 << 20;

/// What watches a run: the deadline (the clock is read every 32 steps; once past it every
/// frame halts at its next step, so the whole run unwinds at once), the memory a trace keeps
/// (halted the same way once past [`MAX_TRACE_BYTES`]), and the [`Extra`] inspector.
pub(super) struct Watch {
    at: Option<Instant>,
    steps: u32,
    expired: bool,
    cost: Option<RecordCost>,
    pub(super) extra: Extra,
}

impl Watch {
    pub(super) fn new(budget: &Budget, cost: Option<RecordCost>, extra: Extra) -> Self {
        Self { at: budget.deadline, steps: 0, expired: false, cost, extra }
    }

    /// What the trace is estimated to keep so far, if it is counted.
    pub(super) fn cost(&self) -> Option<RecordCost> {
        self.cost
    }

    /// Whether the trace's estimate is past [`MAX_TRACE_BYTES`].
    fn too_large(&self) -> bool {
        self.cost.is_some_and(|c| c.used > MAX_TRACE_BYTES)
    }

    /// Adds `bytes` to the trace's estimate, if it is counted.
    fn charge(&mut self, bytes: usize) {
        if let Some(c) = &mut self.cost {
            c.used = c.used.saturating_add(bytes);
        }
    }

    /// The error the run ended in, if this watch stopped it.
    pub(super) fn stopped(&self, budget: &Budget) -> Result<(), RpcError> {
        if self.expired {
            return Err(budget.exceeded());
        }
        if self.too_large() {
            return Err(RpcError::server(format!(
                "trace too large: it would keep more than {} MiB; trace fewer steps (disableStack, no enableMemory) or use callTracer",
                MAX_TRACE_BYTES >> 20
            )));
        }
        Ok(())
    }
}

/// Runs `tx` on `db` with `watch` watching: revm's result and the watch afterwards.
pub(super) fn run_with<DB: Database>(
    db: DB,
    cfg: CfgEnv,
    block: BlockEnv,
    tx: TxEnv,
    watch: Watch,
) -> (Result<ResultAndState, EVMError<DB::Error>>, Watch) {
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_cfg(cfg)
        .with_block(block)
        .build_mainnet_with_inspector(watch)
        .with_precompiles(qoin_evm::precompiles::provider());
    let result = evm.inspect_tx(tx);
    (result, evm.inspector)
}

/// Calls `$method` on the [`Extra`] inspector, if there is one (`$none` otherwise).
macro_rules! extra {
    ($self:ident, $none:expr, $method:ident($($arg:expr),*)) => {
        match &mut $self.extra {
            Extra::Nothing => $none,
            Extra::Access(i) => Inspector::<CTX>::$method(i, $($arg),*),
            Extra::Trace(i) => Inspector::<CTX>::$method(&mut **i, $($arg),*),
        }
    };
}

impl<CTX: ContextTr<Journal: JournalExt>> Inspector<CTX> for Watch {
    fn initialize_interp(&mut self, interp: &mut Interpreter, context: &mut CTX) {
        extra!(self, (), initialize_interp(interp, context))
    }

    fn step(&mut self, interp: &mut Interpreter, context: &mut CTX) {
        if let Some(c) = self.cost.filter(|c| c.steps) {
            let stack = if c.stack { interp.stack.len() * 32 } else { 0 };
            let memory = if c.memory { interp.memory.size() } else { 0 };
            self.charge(STEP_BYTES + stack + memory);
        }
        let too_large = self.too_large();
        if !self.expired && !too_large {
            self.steps = self.steps.wrapping_add(1);
            if self.steps.is_multiple_of(32) && self.at.is_some_and(|at| Instant::now() >= at) {
                self.expired = true;
            }
        }
        if self.expired || too_large {
            interp.halt(InstructionResult::OutOfGas);
            return;
        }
        extra!(self, (), step(interp, context))
    }

    fn step_end(&mut self, interp: &mut Interpreter, context: &mut CTX) {
        extra!(self, (), step_end(interp, context))
    }

    fn log(&mut self, context: &mut CTX, log: Log) {
        extra!(self, (), log(context, log))
    }

    fn log_full(&mut self, interp: &mut Interpreter, context: &mut CTX, log: Log) {
        extra!(self, (), log_full(interp, context, log))
    }

    fn call(&mut self, context: &mut CTX, inputs: &mut CallInputs) -> Option<CallOutcome> {
        self.charge(FRAME_BYTES + inputs.input.len());
        extra!(self, None, call(context, inputs))
    }

    fn call_end(&mut self, context: &mut CTX, inputs: &CallInputs, outcome: &mut CallOutcome) {
        extra!(self, (), call_end(context, inputs, outcome))
    }

    fn create(&mut self, context: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        self.charge(FRAME_BYTES + inputs.init_code().len());
        extra!(self, None, create(context, inputs))
    }

    fn create_end(&mut self, context: &mut CTX, inputs: &CreateInputs, outcome: &mut CreateOutcome) {
        extra!(self, (), create_end(context, inputs, outcome))
    }

    fn selfdestruct(&mut self, contract: Address, target: Address, value: U256) {
        extra!(self, (), selfdestruct(contract, target, value))
    }
}

/// Our access list in revm's type.
fn revm_access_list(items: &[AccessListItem]) -> AccessList {
    AccessList(
        items.iter().map(|i| RevmItem { address: i.address, storage_keys: i.storage_keys.clone() }).collect(),
    )
}

/// A block's state and environment that calls run against, with one time budget for all of
/// them (`--rpc.evmtimeout`).
pub(super) struct Trial<'a, 'db> {
    node: &'a Node,
    header: ElHeader,
    state: StateAt<'a, 'db>,
    overrides: Overrides,
    pub(super) block: BlockEnv,
    pub(super) budget: Budget,
}

/// The most accounts one request may override.
const MAX_OVERRIDDEN_ACCOUNTS: usize = 1_024;

/// A caller's state overrides (`eth_call`'s and `eth_estimateGas`'s third parameter,
/// `debug_traceCall`'s `stateOverrides`), applied as geth applies them: `balance`, `nonce` and
/// `code` replace the account's; `state` replaces its whole storage, `stateDiff` the slots it
/// names. Nothing is written: the overrides last for the one request.
#[derive(Default)]
pub(super) struct Overrides {
    accounts: HashMap<Address, AccountOverride>,
    /// Each overriding code, analysed once, by hash; `code_of` names each account's.
    code: HashMap<B256, Bytecode>,
    code_of: HashMap<Address, B256>,
}

impl Overrides {
    /// Checks a request's overrides (refusing what geth refuses, and what is not supported).
    pub(super) fn new(o: Option<StateOverride>) -> Result<Self, RpcError> {
        let accounts: HashMap<Address, AccountOverride> = o.unwrap_or_default().into_iter().collect();
        if accounts.len() > MAX_OVERRIDDEN_ACCOUNTS {
            return Err(RpcError::invalid_params(format!(
                "{} accounts overridden, at most {MAX_OVERRIDDEN_ACCOUNTS}",
                accounts.len()
            )));
        }
        let (mut code, mut code_of) = (HashMap::new(), HashMap::new());
        for (address, a) in &accounts {
            if a.state.is_some() && a.state_diff.is_some() {
                return Err(RpcError::invalid_params(format!(
                    "account {address} has both 'state' and 'stateDiff'"
                )));
            }
            if a.move_precompile_to.is_some() {
                return Err(RpcError::invalid_params(
                    "movePrecompileToAddress is not supported by this node",
                ));
            }
            if let Some(c) = &a.code {
                let bytecode = Bytecode::new_raw_checked(c.clone())
                    .map_err(|e| RpcError::invalid_params(format!("account {address}: invalid code: {e}")))?;
                let hash = bytecode.hash_slow();
                code.insert(hash, bytecode);
                code_of.insert(*address, hash);
            }
        }
        Ok(Self { accounts, code, code_of })
    }

    /// Parameter `i` of a call as overrides (none when absent); geth's block overrides after
    /// it are refused rather than ignored.
    pub(super) fn param(args: &Args, i: usize) -> Result<Self, RpcError> {
        if args.get(i + 1).is_some_and(|v| !v.is_null()) {
            return Err(RpcError::invalid_params("block overrides are not supported by this node"));
        }
        Self::new(args.opt(i, "state overrides")?)
    }
}

/// A block's state with [`Overrides`] on top.
pub(super) struct Overlaid<'t, 'a, 'db> {
    base: &'t StateAt<'a, 'db>,
    overrides: &'t Overrides,
}

impl DatabaseRef for Overlaid<'_, '_, '_> {
    type Error = StateError;
    fn basic_ref(&self, a: Address) -> Result<Option<AccountInfo>, StateError> {
        let base = self.base.basic_ref(a)?;
        let Some(o) = self.overrides.accounts.get(&a) else { return Ok(base) };
        let mut info = base.unwrap_or_default();
        if let Some(balance) = o.balance {
            info.balance = balance;
        }
        if let Some(nonce) = o.nonce {
            info.nonce = nonce;
        }
        if let Some(hash) = self.overrides.code_of.get(&a) {
            info.code_hash = *hash;
            info.code = self.overrides.code.get(hash).cloned();
        }
        Ok(Some(info))
    }
    fn code_by_hash_ref(&self, h: B256) -> Result<Bytecode, StateError> {
        match self.overrides.code.get(&h) {
            Some(code) => Ok(code.clone()),
            None => self.base.code_by_hash_ref(h),
        }
    }
    fn storage_ref(&self, a: Address, slot: U256) -> Result<U256, StateError> {
        if let Some(o) = self.overrides.accounts.get(&a) {
            let key = B256::from(slot);
            if let Some(all) = &o.state {
                return Ok(all.get(&key).map_or(U256::ZERO, |v| U256::from_be_bytes(v.0)));
            }
            if let Some(v) = o.state_diff.as_ref().and_then(|d| d.get(&key)) {
                return Ok(U256::from_be_bytes(v.0));
            }
        }
        self.base.storage_ref(a, slot)
    }
    fn block_hash_ref(&self, n: u64) -> Result<B256, StateError> {
        self.base.block_hash_ref(n)
    }
}

impl<'a, 'db> Trial<'a, 'db> {
    /// Calls on the state of the block `tag` names, in that block's environment or, with
    /// `next_block`, in the environment of the block after it.
    pub(super) fn at(
        node: &'a Node,
        tx: &'a Tx<'db, RO>,
        tag: BlockTag,
        next_block: bool,
    ) -> Result<Self, RpcError> {
        let header = resolve_required(tx, tag)?;
        let state = StateAt::new(tx, &header)?;
        let block = call_block(&header, next_block);
        Ok(Self { node, header, state, overrides: Overrides::default(), block, budget: Budget::start(node) })
    }

    /// The same, with a caller's state overrides on top.
    pub(super) fn with_overrides(mut self, overrides: Overrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// The state calls run on (overrides included).
    pub(super) fn state(&self) -> Overlaid<'_, 'a, 'db> {
        Overlaid { base: &self.state, overrides: &self.overrides }
    }

    /// The gas a call may use: what it asks (else the block's limit), at most the block's
    /// limit and `--rpc.gascap` (0: no cap).
    pub(super) fn gas(&self, requested: Option<u64>) -> u64 {
        let cap = self.node.call_limits().gas_cap;
        let gas = requested.unwrap_or(self.header.gas_limit).min(self.header.gas_limit);
        if cap == 0 {
            gas
        } else {
            gas.min(cap)
        }
    }

    fn run(&self, r: &CallRequest, gas: u64) -> Result<ExecutionResult, RpcError> {
        self.run_watched(r, gas, None, Extra::Nothing).map(|(result, _)| result.result)
    }

    /// The configuration and transaction environment `r` runs in with `gas`.
    pub(super) fn env(&self, r: &CallRequest, gas: u64) -> (CfgEnv, TxEnv) {
        let (fee, tip) = request_fees(r);
        let mut cfg = qoin_evm::execute::cfg_env(self.node.chain().genesis().chain_id);
        cfg.disable_nonce_check = true;
        cfg.disable_eip3607 = true;
        if fee == 0 {
            cfg.disable_base_fee = true;
        }
        let tx = TxEnv {
            tx_type: 2,
            caller: r.from.unwrap_or_default(),
            gas_limit: gas,
            gas_price: fee,
            gas_priority_fee: Some(tip),
            kind: r.to.map_or(revm::primitives::TxKind::Create, revm::primitives::TxKind::Call),
            value: r.value,
            data: r.input.clone(),
            nonce: 0,
            chain_id: Some(cfg.chain_id),
            access_list: revm_access_list(&r.access_list),
            ..TxEnv::default()
        };
        (cfg, tx)
    }

    /// [`Trial::run`] with `extra` watching too (and a trace's memory estimate in `cost`);
    /// the result with the state it leaves, and `extra` afterwards.
    pub(super) fn run_watched(
        &self,
        r: &CallRequest,
        gas: u64,
        cost: Option<RecordCost>,
        extra: Extra,
    ) -> Result<(ResultAndState, Extra), RpcError> {
        let Self { block, budget, .. } = self;
        if budget.is_over() {
            return Err(budget.exceeded());
        }
        let (cfg, tx) = self.env(r, gas);
        let (result, watch) =
            run_with(WrapDatabaseRef(self.state()), cfg, block.clone(), tx, Watch::new(budget, cost, extra));
        watch.stopped(budget)?;
        match result {
            Ok(result) => Ok((result, watch.extra)),
            Err(e) => Err(evm_error(e)),
        }
    }
}

/// geth's wording for an EVM error.
fn evm_error<D: std::fmt::Display>(e: EVMError<D>) -> RpcError {
    match e {
        EVMError::Transaction(e) => RpcError::server(invalid_tx_message(&e)),
        EVMError::Header(e) => RpcError::server(e.to_string()),
        e => RpcError::internal(e),
    }
}

/// geth's wording for the transaction errors dapp tools match on.
fn invalid_tx_message(e: &InvalidTransaction) -> String {
    match e {
        InvalidTransaction::LackOfFundForMaxFee { fee, balance } => {
            format!("insufficient funds for gas * price + value: balance {balance}, tx cost {fee}")
        }
        InvalidTransaction::CallGasCostMoreThanGasLimit { initial_gas, gas_limit } => {
            format!("intrinsic gas too low: have {gas_limit}, want {initial_gas}")
        }
        InvalidTransaction::GasPriceLessThanBasefee => "max fee per gas less than block base fee".into(),
        InvalidTransaction::PriorityFeeGreaterThanMaxFee => {
            "max priority fee per gas higher than max fee per gas".into()
        }
        InvalidTransaction::CallerGasLimitMoreThanBlock => "exceeds block gas limit".into(),
        other => other.to_string(),
    }
}

/// The reason in `Error(string)` or `Panic(uint256)` revert data.
pub(super) fn revert_reason(out: &[u8]) -> Option<String> {
    let (selector, body) = (out.get(..4)?, out.get(4..)?);
    match selector {
        [0x08, 0xc3, 0x79, 0xa0] => {
            let offset = usize::try_from(U256::from_be_slice(body.get(..32)?)).ok()?;
            let len_word = body.get(offset..offset.checked_add(32)?)?;
            let len = usize::try_from(U256::from_be_slice(len_word)).ok()?;
            let start = offset + 32;
            let bytes = body.get(start..start.checked_add(len)?)?;
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        [0x4e, 0x48, 0x7b, 0x71] => {
            let code = U256::from_be_slice(body.get(..32)?);
            Some(format!("panic: {code:#x}"))
        }
        _ => None,
    }
}

fn revert_error(output: &Bytes) -> RpcError {
    let message = match revert_reason(output) {
        Some(reason) => format!("execution reverted: {reason}"),
        None => "execution reverted".to_string(),
    };
    RpcError { code: 3, message, data: Some(data(output)) }
}

fn halt_message(reason: &HaltReason) -> String {
    match reason {
        HaltReason::OutOfGas(_) => "out of gas".into(),
        HaltReason::OpcodeNotFound | HaltReason::InvalidFEOpcode => "invalid opcode".into(),
        HaltReason::StackUnderflow => "stack underflow".into(),
        HaltReason::StackOverflow => "stack limit reached".into(),
        HaltReason::InvalidJump => "invalid jump destination".into(),
        HaltReason::CreateContractSizeLimit => "max code size exceeded".into(),
        HaltReason::OutOfFunds => "insufficient balance for transfer".into(),
        other => format!("execution halted: {other:?}"),
    }
}

pub(super) fn call(node: &Node, args: &Args) -> RpcResult {
    let r = parse_request(args.get(0))?;
    let tag = args.block(1)?;
    let tx = read(node)?;
    let trial =
        Trial::at(node, &tx, tag, tag == BlockTag::Pending)?.with_overrides(Overrides::param(args, 2)?);
    match trial.run(&r, trial.gas(r.gas))? {
        ExecutionResult::Success { output, .. } => Ok(data(output.data())),
        ExecutionResult::Revert { output, .. } => Err(revert_error(&output)),
        ExecutionResult::Halt { reason, .. } => Err(RpcError::server(halt_message(&reason))),
    }
}

/// The gas of a plain value transfer.
const TRANSFER_GAS: u64 = 21_000;

/// The least gas (within 1.5%) `r` needs, by bisection as geth does.
pub(super) fn estimate(
    node: &Node,
    tx: &Tx<'_, RO>,
    r: &CallRequest,
    tag: BlockTag,
    overrides: Overrides,
) -> Result<u64, RpcError> {
    let trial = Trial::at(node, tx, tag, tag == BlockTag::Pending || tag == BlockTag::Latest)?
        .with_overrides(overrides);
    let (state, budget) = (trial.state(), &trial.budget);
    // Whether `gas` suffices; running out of time is an error, not an answer.
    let succeeds = |gas: u64| -> Result<bool, RpcError> {
        match trial.run(r, gas) {
            Ok(result) => Ok(matches!(result, ExecutionResult::Success { .. })),
            Err(_) if budget.is_over() => Err(budget.exceeded()),
            Err(_) => Ok(false),
        }
    };
    let mut hi = trial.gas(r.gas);
    let (fee, _) = request_fees(r);
    if fee > 0 {
        let balance =
            map_state(state.basic_ref(r.from.unwrap_or_default()))?.map_or(U256::ZERO, |a| a.balance);
        if balance < r.value {
            return Err(RpcError::server("insufficient funds for transfer"));
        }
        let cap = (balance - r.value) / U256::from(fee);
        hi = hi.min(u64::try_from(cap).unwrap_or(u64::MAX));
        if hi < TRANSFER_GAS {
            // Not even the intrinsic gas is affordable at this price: say so, as geth does,
            // rather than "intrinsic gas too low: have 0".
            return Err(RpcError::server(format!(
                "insufficient funds for gas * price + value: balance {balance}, fee per gas {fee}, value {}",
                r.value
            )));
        }
    }
    let cap = hi;
    // A plain transfer to an account without code: 21,000 if that is enough, as geth answers
    // (the search below would stop within 1.5% above it).
    if r.input.is_empty() && hi >= TRANSFER_GAS {
        if let Some(to) = r.to {
            let code = map_state(state.basic_ref(to))?.map_or(KECCAK_EMPTY, |a| a.code_hash);
            if code == KECCAK_EMPTY && succeeds(TRANSFER_GAS)? {
                return Ok(TRANSFER_GAS);
            }
        }
    }
    let first = trial.run(r, hi)?;
    let used = match &first {
        // gas used is after refunds: the limit needed may be higher (found below).
        ExecutionResult::Success { .. } => first.tx_gas_used(),
        ExecutionResult::Revert { output, .. } => return Err(revert_error(output)),
        ExecutionResult::Halt { reason: HaltReason::OutOfGas(_), .. } => {
            return Err(RpcError::server(format!("gas required exceeds allowance ({cap})")))
        }
        ExecutionResult::Halt { reason, .. } => return Err(RpcError::server(halt_message(reason))),
    };
    let mut lo = used.saturating_sub(1).max(20_999);
    let optimistic = ((used + 2_300) * 64 / 63).min(hi);
    if optimistic > lo && succeeds(optimistic)? {
        hi = optimistic;
    } else if optimistic > lo {
        lo = optimistic;
    }
    while hi - lo > 1 && (hi - lo) as f64 / hi as f64 > 0.015 {
        let mid = lo + (hi - lo) / 2;
        if succeeds(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// Parameter `i` as a block tag, `pending` when absent (geth's default for estimates).
fn tag_or_pending(args: &Args, i: usize) -> Result<BlockTag, RpcError> {
    args.get(i).map_or(Ok(BlockTag::Pending), BlockTag::parse)
}

pub(super) fn estimate_gas(node: &Node, args: &Args) -> RpcResult {
    let r = parse_request(args.get(0))?;
    let tag = tag_or_pending(args, 1)?;
    let tx = read(node)?;
    Ok(q(estimate(node, &tx, &r, tag, Overrides::param(args, 2)?)?))
}

/// Most rounds `eth_createAccessList` runs before answering (each round runs the call with the
/// previous round's list; it stops as soon as a round adds nothing).
const ACCESS_LIST_ROUNDS: usize = 10;

/// `eth_createAccessList(request, block = pending)`: the accounts and slots the call touches
/// (without the sender, the recipient and the precompiles), and the gas it uses with that
/// list; `error` says why it failed, if it did.
pub(super) fn create_access_list(node: &Node, args: &Args) -> RpcResult {
    let mut r = parse_request(args.get(0))?;
    let tag = tag_or_pending(args, 1)?;
    let tx = read(node)?;
    let trial = Trial::at(node, &tx, tag, tag == BlockTag::Pending)?;
    let gas = trial.gas(r.gas);
    for _ in 0..ACCESS_LIST_ROUNDS {
        let given = revm_access_list(&r.access_list);
        let inspector = Extra::Access(AccessListInspector::new(given.clone()));
        let (result, inspector) = trial.run_watched(&r, gas, None, inspector)?;
        let result = result.result;
        let found = match inspector {
            Extra::Access(i) => i.into_access_list(),
            _ => AccessList::default(),
        };
        let mut given_sorted = given;
        given_sorted.sort();
        if found == given_sorted {
            let list: Vec<Value> = found
                .0
                .iter()
                .map(|i| json!({"address": i.address, "storageKeys": i.storage_keys}))
                .collect();
            let mut out = json!({"accessList": list, "gasUsed": q(result.tx_gas_used())});
            match &result {
                ExecutionResult::Success { .. } => {}
                ExecutionResult::Revert { output, .. } => out["error"] = json!(revert_error(output).message),
                ExecutionResult::Halt { reason, .. } => out["error"] = json!(halt_message(reason)),
            }
            return Ok(out);
        }
        r.access_list = found
            .0
            .into_iter()
            .map(|i| AccessListItem { address: i.address, storage_keys: i.storage_keys })
            .collect();
    }
    Err(RpcError::server(format!("the access list did not settle in {ACCESS_LIST_ROUNDS} rounds")))
}
