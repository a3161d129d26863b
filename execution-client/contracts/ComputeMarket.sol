// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.20;

import "./MarketPayments.sol";

/// @title ComputeMarket
/// @notice Qoin's general computing market (spec §17.2), deployed at
/// `0x000000000000000000000000000000000000a001` in every Qoin genesis. MODiCuM's model:
/// replicated deterministic jobs, commit-reveal of results, and registered mediators who
/// re-run a job when its results disagree or its client disputes them.
///
/// Providers post **asks** (a price per unit of fuel, the most fuel and memory a job may use,
/// their speed in fuel per second, a collateral per job), with the collateral deposited.
/// **Mediators** register with a fee (what a mediation costs whoever was wrong). Clients post **jobs**: a WASM module's hash, an
/// input's hash, fuel and memory limits, `r` replicas, a maximum price per unit of fuel, a
/// deadline and a mediator, with `r × fuelLimit × maxPrice` escrowed. Providers **take** the
/// job's slots through their asks; once all are taken, each replica runs the job and
/// **commits** `keccak256(abi.encode(output, fuel, salt, provider))` before the commit deadline,
/// then **reveals** `(output, fuel, salt)` before the reveal deadline (no one can copy another's
/// result). Then:
///
/// - all revealed the same `(output, fuel)` and the client did not **dispute** within the
///   dispute window: each provider is paid `fuel × its price`, the rest goes back to the client;
/// - results disagree, or the client disputed (paying the mediator's fee as a deposit): the
///   mediator re-runs the job and posts the true `(output, fuel)`. Providers who revealed it
///   are paid; those who did not lose their collateral, half to the client and half to the
///   mediator. The client's deposit comes back if any provider was wrong, and pays the
///   mediator if none was;
/// - a provider that misses its commit or reveal deadline is not paid and loses its collateral
///   to the client; a mediator that does not answer in time leaves the job void: everyone gets
///   back what they put in.
///
/// Every payment is made in the transaction that decides it (a refused one is kept for
/// `withdraw`).
contract ComputeMarket is MarketPayments {
    uint256 public constant MAX_REPLICAS = 8;
    /// Blocks each phase lasts at least: commit, reveal, dispute, mediation.
    uint256 public constant MIN_PHASE = 4;
    uint256 public constant MAX_PHASE = 100_000;

    struct Ask {
        address provider;
        uint64 maxFuel;
        uint64 maxMemory; // bytes
        uint64 fuelPerSecond; // the provider's stated speed (not checked)
        uint64 expiry;
        bool closed;
        uint128 price; // shor per unit of fuel
        uint128 collateralPerJob; // shor
        uint256 collateral; // free, shor
    }

    enum Phase {
        None,
        Open, // slots being taken
        Running, // commits
        Revealing,
        Revealed, // dispute window
        Mediating,
        Done
    }

    struct Job {
        address client;
        address mediator;
        bytes32 module; // keccak256 of the WASM module
        bytes32 input; // keccak256 of the input
        uint64 fuelLimit;
        uint64 memoryLimit;
        uint64 phaseLength; // blocks per phase
        uint64 expiry; // last block its slots can be taken in
        uint64 phaseEnd; // last block of the current phase
        uint8 replicas;
        uint8 filled;
        uint8 committed;
        uint8 revealed;
        Phase phase;
        bool disputed;
        uint128 maxPrice;
        uint256 escrow;
        uint256 deposit; // the client's dispute deposit
    }

    struct Slot {
        address provider;
        uint64 askId;
        uint64 fuel; // revealed
        uint128 price;
        uint256 collateral;
        bytes32 commitment;
        bytes32 output; // revealed
        bool revealed;
    }

    uint256 public askCount;
    uint256 public jobCount;
    mapping(uint256 => Ask) public asks;
    mapping(uint256 => Job) public jobs;
    mapping(uint256 => mapping(uint256 => Slot)) public slots;
    /// Registered mediators and their fees (zero: not registered).
    mapping(address => uint256) public mediatorFee;

    event AskPosted(uint256 indexed askId, address indexed provider, uint256 price);
    event AskClosed(uint256 indexed askId, uint256 refunded);
    event MediatorRegistered(address indexed mediator, uint256 fee);
    event JobPosted(
        uint256 indexed jobId,
        address indexed client,
        bytes32 module,
        bytes32 input,
        uint256 fuelLimit,
        uint256 replicas,
        address mediator
    );
    event SlotTaken(uint256 indexed jobId, uint256 slot, address indexed provider, uint256 askId);
    event JobRunning(uint256 indexed jobId, uint256 commitUntil);
    event Committed(uint256 indexed jobId, uint256 slot);
    event Revealed(uint256 indexed jobId, uint256 slot, bytes32 output, uint256 fuel);
    event Disputed(uint256 indexed jobId);
    event MediationRequested(uint256 indexed jobId, address indexed mediator, uint256 until);
    event Mediated(uint256 indexed jobId, bytes32 output, uint256 fuel);
    event Slashed(uint256 indexed jobId, uint256 slot, address indexed provider, uint256 amount);
    event JobDone(uint256 indexed jobId, bytes32 output, uint256 refunded, bool agreed);

    // ---- asks and mediators ----

    /// @notice Offers to run jobs of at most `maxFuel` fuel and `maxMemory` bytes at `price`
    /// shor per unit of fuel, at about `fuelPerSecond` (the provider's stated speed, for clients
    /// to size a job's phases; not checked), locking `collateralPerJob` of the value sent per
    /// job taken.
    function postAsk(
        uint128 price,
        uint64 maxFuel,
        uint64 maxMemory,
        uint64 fuelPerSecond,
        uint128 collateralPerJob,
        uint64 expiry
    ) external payable returns (uint256 askId) {
        if (expiry <= block.number) revert Refused("expiry in the past");
        if (fuelPerSecond == 0) revert Refused("fuel per second");
        askId = ++askCount;
        asks[askId] =
            Ask(msg.sender, maxFuel, maxMemory, fuelPerSecond, expiry, false, price, collateralPerJob, msg.value);
        emit AskPosted(askId, msg.sender, price);
    }

    /// @notice Closes an ask and returns its free collateral: its provider at any time,
    /// anyone after its expiry.
    function closeAsk(uint256 askId) external nonReentrant {
        Ask storage a = asks[askId];
        if (a.provider == address(0) || a.closed) revert Refused("no open ask");
        if (msg.sender != a.provider && block.number <= a.expiry) revert Refused("not expired");
        a.closed = true;
        uint256 refund = a.collateral;
        a.collateral = 0;
        emit AskClosed(askId, refund);
        pay(a.provider, refund);
    }

    /// @notice Registers the sender as a mediator charging `fee` per mediation (or changes
    /// its fee; jobs already posted keep the fee they were posted with).
    function registerMediator(uint256 fee) external {
        if (fee == 0) revert Refused("fee");
        mediatorFee[msg.sender] = fee;
        emit MediatorRegistered(msg.sender, fee);
    }

    // ---- jobs ----

    /// @notice Posts a job: module and input by hash, limits, `replicas` providers, at most
    /// `maxPrice` per unit of fuel, each phase `phaseLength` blocks, slots takeable until
    /// `expiry`, `mediator` (registered) for disputes. The value sent must be
    /// `replicas × fuelLimit × maxPrice`.
    function postJob(
        bytes32 module,
        bytes32 input,
        uint64 fuelLimit,
        uint64 memoryLimit,
        uint8 replicas,
        uint128 maxPrice,
        uint64 phaseLength,
        uint64 expiry,
        address mediator
    ) external payable returns (uint256 jobId) {
        if (replicas == 0 || replicas > MAX_REPLICAS) revert Refused("replicas");
        if (fuelLimit == 0) revert Refused("fuel");
        if (phaseLength < MIN_PHASE || phaseLength > MAX_PHASE) revert Refused("phase length");
        if (expiry <= block.number) revert Refused("expiry in the past");
        if (mediatorFee[mediator] == 0) revert Refused("not a mediator");
        if (msg.value != uint256(replicas) * fuelLimit * maxPrice) revert Refused("escrow");
        jobId = ++jobCount;
        Job storage j = jobs[jobId];
        j.client = msg.sender;
        j.mediator = mediator;
        j.module = module;
        j.input = input;
        j.fuelLimit = fuelLimit;
        j.memoryLimit = memoryLimit;
        j.phaseLength = phaseLength;
        j.expiry = expiry;
        j.replicas = replicas;
        j.phase = Phase.Open;
        j.maxPrice = maxPrice;
        j.escrow = msg.value;
        emit JobPosted(jobId, msg.sender, module, input, fuelLimit, replicas, mediator);
    }

    /// @notice Withdraws a job whose slots are not all taken: its client at any time, anyone
    /// after its expiry. The escrow goes back to the client, the collateral to the asks.
    function cancelJob(uint256 jobId) external nonReentrant {
        Job storage j = jobs[jobId];
        if (j.phase != Phase.Open) revert Refused("not an open job");
        if (msg.sender != j.client && block.number <= j.expiry) revert Refused("not expired");
        j.phase = Phase.Done;
        for (uint256 i = 0; i < j.filled; i++) {
            Slot storage s = slots[jobId][i];
            release(s.askId, s.collateral);
            s.collateral = 0;
        }
        uint256 refund = j.escrow;
        j.escrow = 0;
        emit JobDone(jobId, bytes32(0), refund, false);
        pay(j.client, refund);
    }

    /// @notice Takes the job's next slot through an ask of the sender.
    function take(uint256 jobId, uint256 askId) external nonReentrant {
        Job storage j = jobs[jobId];
        Ask storage a = asks[askId];
        if (a.provider != msg.sender || a.closed || block.number > a.expiry) revert Refused("not your open ask");
        if (j.phase != Phase.Open || block.number > j.expiry) revert Refused("not an open job");
        if (a.price > j.maxPrice) revert Refused("price above the job");
        if (a.maxFuel < j.fuelLimit || a.maxMemory < j.memoryLimit) revert Refused("job beyond the ask");
        if (a.collateralPerJob > a.collateral) revert Refused("not enough collateral");
        for (uint256 i = 0; i < j.filled; i++) {
            if (slots[jobId][i].provider == msg.sender) revert Refused("already a replica");
        }
        a.collateral -= a.collateralPerJob;
        uint256 slot = j.filled;
        j.filled += 1;
        Slot storage s = slots[jobId][slot];
        s.provider = msg.sender;
        s.askId = uint64(askId);
        s.price = a.price;
        s.collateral = a.collateralPerJob;
        emit SlotTaken(jobId, slot, msg.sender, askId);
        if (j.filled == j.replicas) {
            j.phase = Phase.Running;
            j.phaseEnd = uint64(block.number) + j.phaseLength;
            emit JobRunning(jobId, j.phaseEnd);
        }
    }

    /// @notice The commitment a provider makes to its result.
    function commitment(bytes32 output, uint64 fuel, bytes32 salt, address provider) public pure returns (bytes32) {
        return keccak256(abi.encode(output, fuel, salt, provider));
    }

    /// @notice Commits slot `slot`'s result (see `commitment`), before the commit deadline.
    function commit(uint256 jobId, uint256 slot, bytes32 c) external nonReentrant {
        Job storage j = jobs[jobId];
        Slot storage s = slots[jobId][slot];
        if (j.phase != Phase.Running || block.number > j.phaseEnd) revert Refused("not committing");
        if (s.provider != msg.sender || slot >= j.replicas) revert Refused("not your slot");
        if (s.commitment != bytes32(0)) revert Refused("already committed");
        s.commitment = c;
        j.committed += 1;
        emit Committed(jobId, slot);
        if (j.committed == j.replicas) {
            j.phase = Phase.Revealing;
            j.phaseEnd = uint64(block.number) + j.phaseLength;
        }
    }

    /// @notice Reveals slot `slot`'s committed result, before the reveal deadline.
    function reveal(uint256 jobId, uint256 slot, bytes32 output, uint64 fuel, bytes32 salt) external nonReentrant {
        Job storage j = jobs[jobId];
        advance(jobId, j);
        Slot storage s = slots[jobId][slot];
        if (j.phase != Phase.Revealing || block.number > j.phaseEnd) revert Refused("not revealing");
        if (s.provider != msg.sender || slot >= j.replicas) revert Refused("not your slot");
        if (s.revealed) revert Refused("already revealed");
        if (commitment(output, fuel, salt, msg.sender) != s.commitment) revert Refused("does not match the commitment");
        if (fuel > j.fuelLimit) revert Refused("fuel above the limit");
        s.revealed = true;
        s.output = output;
        s.fuel = fuel;
        j.revealed += 1;
        emit Revealed(jobId, slot, output, fuel);
        if (j.revealed == j.committed) {
            j.phase = Phase.Revealed;
            j.phaseEnd = uint64(block.number) + j.phaseLength;
            if (!agree(jobId, j)) mediation(jobId, j);
        }
    }

    /// @notice The client contests results that agree, before the dispute window closes,
    /// with the mediator's fee as a deposit (returned if the mediator proves it right).
    function dispute(uint256 jobId) external payable nonReentrant {
        Job storage j = jobs[jobId];
        advance(jobId, j);
        if (msg.sender != j.client) revert Refused("not your job");
        if (j.phase != Phase.Revealed || block.number > j.phaseEnd) revert Refused("not disputable");
        uint256 fee = mediatorFee[j.mediator];
        if (msg.value != fee) revert Refused("deposit");
        j.deposit = fee;
        j.disputed = true;
        emit Disputed(jobId);
        mediation(jobId, j);
    }

    /// @notice Ends a job whose current phase allows it: agreeing results after the dispute
    /// window, disagreeing ones go to the mediator, missed deadlines are slashed, a mediator
    /// that did not answer voids the job. Anyone may call it.
    function settle(uint256 jobId) external nonReentrant {
        Job storage j = jobs[jobId];
        Phase before = j.phase;
        advance(jobId, j);
        if (j.phase == Phase.Revealed && block.number > j.phaseEnd) {
            finalize(jobId, j, agreedOutput(jobId, j), agreedFuel(jobId, j), true);
        } else if (j.phase == Phase.Mediating && block.number > j.phaseEnd && before == Phase.Mediating) {
            void(jobId, j);
        } else if (j.phase == before) {
            revert Refused("nothing to settle yet");
        }
    }

    /// @notice The job's mediator posts the true result of a job in mediation.
    function mediate(uint256 jobId, bytes32 output, uint64 fuel) external nonReentrant {
        Job storage j = jobs[jobId];
        if (j.phase != Phase.Mediating || block.number > j.phaseEnd) revert Refused("not in mediation");
        if (msg.sender != j.mediator) revert Refused("not the job's mediator");
        if (fuel > j.fuelLimit) revert Refused("fuel above the limit");
        emit Mediated(jobId, output, fuel);
        finalize(jobId, j, output, fuel, false);
    }

    // ---- internals ----

    /// Moves a job past phases whose deadline passed: missing commits or reveals are slashed
    /// (the client gets the collateral); when the revealed results disagree, mediation starts.
    function advance(uint256 jobId, Job storage j) private {
        if (j.phase == Phase.Running && block.number > j.phaseEnd) {
            for (uint256 i = 0; i < j.replicas; i++) {
                Slot storage s = slots[jobId][i];
                if (s.commitment == bytes32(0)) slash(jobId, i, s, j.client);
            }
            if (j.committed == 0) {
                finish(jobId, j, bytes32(0), false);
                return;
            }
            j.phase = Phase.Revealing;
            j.phaseEnd = uint64(block.number) + j.phaseLength;
        }
        if (j.phase == Phase.Revealing && block.number > j.phaseEnd) {
            for (uint256 i = 0; i < j.replicas; i++) {
                Slot storage s = slots[jobId][i];
                if (s.commitment != bytes32(0) && !s.revealed) slash(jobId, i, s, j.client);
            }
            if (j.revealed == 0) {
                finish(jobId, j, bytes32(0), false);
                return;
            }
            j.phase = Phase.Revealed;
            j.phaseEnd = uint64(block.number) + j.phaseLength;
        }
        if (j.phase == Phase.Revealed && !agree(jobId, j)) mediation(jobId, j);
    }

    function mediation(uint256 jobId, Job storage j) private {
        j.phase = Phase.Mediating;
        j.phaseEnd = uint64(block.number) + j.phaseLength;
        emit MediationRequested(jobId, j.mediator, j.phaseEnd);
    }

    /// Whether every revealed result is the same `(output, fuel)`.
    function agree(uint256 jobId, Job storage j) private view returns (bool) {
        bool seen;
        bytes32 output;
        uint64 fuel;
        for (uint256 i = 0; i < j.replicas; i++) {
            Slot storage s = slots[jobId][i];
            if (!s.revealed) continue;
            if (!seen) {
                (seen, output, fuel) = (true, s.output, s.fuel);
            } else if (s.output != output || s.fuel != fuel) {
                return false;
            }
        }
        return true;
    }

    function agreedOutput(uint256 jobId, Job storage j) private view returns (bytes32) {
        for (uint256 i = 0; i < j.replicas; i++) {
            if (slots[jobId][i].revealed) return slots[jobId][i].output;
        }
        return bytes32(0);
    }

    function agreedFuel(uint256 jobId, Job storage j) private view returns (uint64) {
        for (uint256 i = 0; i < j.replicas; i++) {
            if (slots[jobId][i].revealed) return slots[jobId][i].fuel;
        }
        return 0;
    }

    /// Pays the providers whose revealed result is `(output, fuel)` and slashes the others:
    /// half of each collateral to the client, half to the mediator. A disputing client's
    /// deposit comes back if anyone was slashed, and pays the mediator if no one was.
    function finalize(uint256 jobId, Job storage j, bytes32 output, uint64 fuel, bool agreed) private {
        uint256 toMediator = 0;
        uint256 toClient = 0;
        for (uint256 i = 0; i < j.replicas; i++) {
            Slot storage s = slots[jobId][i];
            if (!s.revealed) continue;
            if (s.output == output && s.fuel == fuel) {
                uint256 amount = uint256(fuel) * s.price;
                j.escrow -= amount;
                release(s.askId, s.collateral);
                s.collateral = 0;
                pay(s.provider, amount);
            } else {
                uint256 c = s.collateral;
                s.collateral = 0;
                emit Slashed(jobId, i, s.provider, c);
                toMediator += c / 2;
                toClient += c - c / 2;
            }
        }
        if (!agreed) {
            if (toClient > 0) toClient += j.deposit;
            else toMediator += j.deposit;
            j.deposit = 0;
        }
        finish(jobId, j, output, agreed);
        pay(j.mediator, toMediator);
        pay(j.client, toClient);
    }

    /// A mediator that did not answer: everything goes back to whoever put it in.
    function void(uint256 jobId, Job storage j) private {
        for (uint256 i = 0; i < j.replicas; i++) {
            Slot storage s = slots[jobId][i];
            if (s.collateral > 0) {
                release(s.askId, s.collateral);
                s.collateral = 0;
            }
        }
        uint256 deposit = j.deposit;
        j.deposit = 0;
        finish(jobId, j, bytes32(0), false);
        pay(j.client, deposit);
    }

    /// Closes the job and refunds the rest of the escrow.
    function finish(uint256 jobId, Job storage j, bytes32 output, bool agreed) private {
        j.phase = Phase.Done;
        uint256 refund = j.escrow;
        j.escrow = 0;
        emit JobDone(jobId, output, refund, agreed);
        pay(j.client, refund);
    }

    function slash(uint256 jobId, uint256 i, Slot storage s, address to) private {
        uint256 c = s.collateral;
        s.collateral = 0;
        emit Slashed(jobId, i, s.provider, c);
        pay(to, c);
    }

    function release(uint256 askId, uint256 collateral) private {
        Ask storage a = asks[askId];
        if (a.closed) pay(a.provider, collateral);
        else a.collateral += collateral;
    }
}
