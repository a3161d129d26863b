// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.20;

import "./MarketPayments.sol";

/// @title StorageMarket
/// @notice Qoin's general storage market (spec §17), deployed at
/// `0x000000000000000000000000000000000000a000` in every Qoin genesis.
///
/// Providers post **asks** (a price per byte per period, a size range, collateral per byte and
/// a capacity, with the collateral deposited). Clients post **bids** for a file they have
/// erasure-coded and cut into 1,024-byte chunks under a Merkle root, with the payment for every
/// replica and period escrowed. Providers **take** a bid's replica slots through their asks, at
/// most one slot each; when every slot is taken the bid is an active **deal**: the excess over
/// the providers' prices goes back to the client, one period is left for the upload, and each
/// following period every replica proves it still holds the data by answering a challenge of
/// `CHALLENGES` random chunks with their Merkle paths. A valid proof pays that period's price to
/// the provider at once; a missed period pays a third of the replica's collateral to the
/// client and refunds the period's price; the third miss fails the replica and reopens its
/// slot, on the same terms and with the remaining escrow, for another provider to take.
///
/// The challenge of a period comes from `prev_randao` of the execution header at the period's
/// first block, which is the hash of the consensus header before it: a miner can only steer it
/// by throwing away blocks it has mined (spec §17.3). The proof carries that header's RLP, which
/// must hash to `blockhash` of the block; `prev_randao` is the header's last field.
///
/// Every order ends on chain: an unfilled bid is cancelled by its client at any time, or by
/// anyone after its expiry; a deal is finished by anyone after its last proof window; an ask is
/// closed by its provider at any time, or by anyone after its expiry. Each of these pays out in
/// the same transaction (a payment the receiver refuses is kept for `withdraw`).
contract StorageMarket is MarketPayments {
    /// Bytes per chunk: the unit that is challenged, proven and priced.
    uint256 public constant CHUNK_SIZE = 1024;
    /// Chunks challenged per replica and period (all of them for a file with fewer chunks).
    uint256 public constant CHALLENGES = 20;
    /// Blocks after a period's first block in which its proof is accepted (at most the period).
    uint256 public constant PROOF_WINDOW = 200;
    /// Missed periods after which a replica fails.
    uint256 public constant MAX_MISSES = 3;
    /// Replicas a bid asks for: at least two, held by distinct providers.
    uint256 public constant MIN_REPLICAS = 2;
    uint256 public constant MAX_REPLICAS = 16;
    /// Bounds of a proving period, in blocks.
    uint256 public constant MIN_PERIOD = 16;
    uint256 public constant MAX_PERIOD = 1_000_000;
    /// Most periods a deal lasts.
    uint256 public constant MAX_PERIODS = 100_000;
    /// Largest file, in chunks (2^32 KiB = 4 TiB).
    uint256 public constant MAX_CHUNKS = 1 << 32;

    struct Ask {
        address provider;
        uint64 minSize; // bytes
        uint64 maxSize; // bytes
        uint64 capacity; // bytes still free
        uint64 expiry; // last block it can be taken in
        bool closed;
        uint128 price; // shor per byte per period
        uint128 collateralPerByte; // shor
        uint256 collateral; // free collateral, shor
    }

    struct Bid {
        address client;
        bytes32 root; // Merkle root of the coded file's chunks
        uint64 chunks;
        uint64 period; // blocks
        uint64 periods;
        uint64 expiry; // last block its slots can be filled in
        uint64 start; // block the deal became active (0: open)
        uint8 replicas;
        uint8 filled;
        bool finished;
        uint128 maxPrice; // shor per byte per period
        uint256 escrow; // shor still held for it
    }

    struct Slot {
        address provider; // zero: open
        uint64 askId;
        uint64 next; // next period this provider answers for
        uint64 misses;
        uint64 proven; // periods proven by this provider
        uint128 price; // shor per byte per period (fixed once the deal is active)
        uint256 collateral; // locked, shor
        uint256 penalty; // what each miss pays the client
    }

    uint256 public askCount;
    uint256 public bidCount;
    mapping(uint256 => Ask) public asks;
    mapping(uint256 => Bid) public bids;
    mapping(uint256 => mapping(uint256 => Slot)) public slots;

    event AskPosted(uint256 indexed askId, address indexed provider, uint256 price, uint256 capacity);
    event AskClosed(uint256 indexed askId, uint256 refunded);
    event BidPosted(
        uint256 indexed bidId,
        address indexed client,
        bytes32 root,
        uint256 size,
        uint256 replicas,
        uint256 period,
        uint256 periods,
        uint256 maxPrice
    );
    event BidCancelled(uint256 indexed bidId, uint256 refunded);
    event SlotTaken(uint256 indexed bidId, uint256 slot, address indexed provider, uint256 askId, uint256 firstPeriod);
    event DealActive(uint256 indexed bidId, uint256 start);
    event Proven(uint256 indexed bidId, uint256 slot, uint256 period, uint256 paid);
    event Missed(uint256 indexed bidId, uint256 slot, uint256 period, uint256 penalty);
    /// A slot of an active deal is open again: its replica failed, or its provider gave it up.
    event SlotReopened(uint256 indexed bidId, uint256 slot, address indexed formerProvider, bool failed);
    event DealFinished(uint256 indexed bidId, uint256 refunded);

    // ---- asks ----

    /// @notice Offers `capacity` bytes at `price` shor per byte per period, for files of
    /// `minSize` to `maxSize` bytes, locking `collateralPerByte` of the value sent per byte
    /// stored. Takeable until block `expiry`.
    function postAsk(
        uint128 price,
        uint64 minSize,
        uint64 maxSize,
        uint128 collateralPerByte,
        uint64 capacity,
        uint64 expiry
    ) external payable returns (uint256 askId) {
        if (minSize == 0 || minSize > maxSize) revert Refused("size range");
        if (expiry <= block.number) revert Refused("expiry in the past");
        askId = ++askCount;
        asks[askId] = Ask(msg.sender, minSize, maxSize, capacity, expiry, false, price, collateralPerByte, msg.value);
        emit AskPosted(askId, msg.sender, price, capacity);
    }

    /// @notice Adds the value sent to an ask's free collateral.
    function fundAsk(uint256 askId) external payable {
        Ask storage a = asks[askId];
        if (a.provider != msg.sender || a.closed) revert Refused("not your open ask");
        a.collateral += msg.value;
    }

    /// @notice Closes an ask and returns its free collateral (deals already made stand). Its
    /// provider may close it at any time, anyone else after its expiry.
    function closeAsk(uint256 askId) external nonReentrant {
        Ask storage a = asks[askId];
        if (a.provider == address(0) || a.closed) revert Refused("no open ask");
        if (msg.sender != a.provider && block.number <= a.expiry) revert Refused("not expired");
        a.closed = true;
        uint256 refund = a.collateral;
        a.collateral = 0;
        a.capacity = 0;
        emit AskClosed(askId, refund);
        pay(a.provider, refund);
    }

    // ---- bids ----

    /// @notice Asks for `replicas` providers to store a coded file of `chunks` chunks under
    /// `root` for `periods` periods of `period` blocks, at most `maxPrice` shor per byte per
    /// period. The value sent must be `replicas * chunks * CHUNK_SIZE * maxPrice * periods`.
    /// Slots can be taken until block `expiry`.
    function postBid(
        bytes32 root,
        uint64 chunks,
        uint8 replicas,
        uint64 period,
        uint64 periods,
        uint128 maxPrice,
        uint64 expiry
    ) external payable returns (uint256 bidId) {
        if (chunks == 0 || chunks > MAX_CHUNKS) revert Refused("chunks");
        if (replicas < MIN_REPLICAS || replicas > MAX_REPLICAS) revert Refused("replicas");
        if (period < MIN_PERIOD || period > MAX_PERIOD) revert Refused("period");
        if (periods == 0 || periods > MAX_PERIODS) revert Refused("periods");
        if (expiry <= block.number) revert Refused("expiry in the past");
        uint256 size = uint256(chunks) * CHUNK_SIZE;
        if (msg.value != uint256(replicas) * size * maxPrice * periods) revert Refused("escrow");
        bidId = ++bidCount;
        bids[bidId] = Bid(msg.sender, root, chunks, period, periods, expiry, 0, replicas, 0, false, maxPrice, msg.value);
        emit BidPosted(bidId, msg.sender, root, size, replicas, period, periods, maxPrice);
    }

    /// @notice Withdraws a bid not yet active: the escrow goes back to the client and the
    /// providers who took slots get their collateral back on their asks. Its client may cancel
    /// it at any time, anyone else after its expiry.
    function cancelBid(uint256 bidId) external nonReentrant {
        Bid storage b = bids[bidId];
        if (b.client == address(0) || b.start != 0 || b.finished) revert Refused("not an open bid");
        if (msg.sender != b.client && block.number <= b.expiry) revert Refused("not expired");
        b.finished = true;
        uint256 size = uint256(b.chunks) * CHUNK_SIZE;
        for (uint256 i = 0; i < b.filled; i++) {
            Slot storage s = slots[bidId][i];
            release(s.askId, size, s.collateral);
            s.collateral = 0;
        }
        uint256 refund = b.escrow;
        b.escrow = 0;
        emit BidCancelled(bidId, refund);
        pay(b.client, refund);
    }

    /// @notice Takes a replica slot of a bid through an ask of the sender: an open bid's next
    /// slot, or a slot of an active deal that reopened when its replica failed (`slot`; ignored
    /// for an open bid). The ask's price must be within the bid's maximum (for a reopened slot,
    /// within the slot's price, which it keeps), and the ask must have room and collateral.
    function take(uint256 bidId, uint256 slot, uint256 askId) external nonReentrant {
        Bid storage b = bids[bidId];
        Ask storage a = asks[askId];
        if (a.provider != msg.sender || a.closed || block.number > a.expiry) revert Refused("not your open ask");
        if (b.client == address(0) || b.finished) revert Refused("no such bid");
        uint256 size = uint256(b.chunks) * CHUNK_SIZE;
        if (size < a.minSize || size > a.maxSize) revert Refused("size outside the ask");
        if (size > a.capacity) revert Refused("no capacity");
        uint256 collateral = size * a.collateralPerByte;
        if (collateral > a.collateral) revert Refused("not enough collateral");
        for (uint256 i = 0; i < b.replicas; i++) {
            if (slots[bidId][i].provider == msg.sender) revert Refused("already a replica");
        }
        uint64 first;
        if (b.start == 0) {
            if (block.number > b.expiry) revert Refused("bid expired");
            if (a.price > b.maxPrice) revert Refused("price above the bid");
            slot = b.filled;
            b.filled += 1;
            slots[bidId][slot].price = a.price;
        } else {
            Slot storage open = slots[bidId][slot];
            if (slot >= b.replicas || open.provider != address(0)) revert Refused("slot not open");
            if (a.price > open.price) revert Refused("price above the slot");
            // A full period to fetch the data from a surviving replica before the first proof.
            uint256 p = (block.number - b.start) / b.period + 1;
            if (p >= b.periods) revert Refused("too late in the deal");
            first = uint64(p);
        }
        a.capacity -= uint64(size);
        a.collateral -= collateral;
        Slot storage s = slots[bidId][slot];
        s.provider = msg.sender;
        s.askId = uint64(askId);
        s.next = first;
        s.misses = 0;
        s.proven = 0;
        s.collateral = collateral;
        s.penalty = collateral / MAX_MISSES;
        emit SlotTaken(bidId, slot, msg.sender, askId, first);
        if (b.start == 0 && b.filled == b.replicas) activate(bidId, b, size);
    }

    function activate(uint256 bidId, Bid storage b, uint256 size) private {
        b.start = uint64(block.number);
        uint256 cost = 0;
        for (uint256 i = 0; i < b.replicas; i++) {
            cost += size * slots[bidId][i].price * b.periods;
        }
        uint256 refund = b.escrow - cost;
        b.escrow = cost;
        emit DealActive(bidId, block.number);
        pay(b.client, refund);
    }

    // ---- proofs ----

    /// @notice The first block of period `p` of an active deal: the block whose header seeds
    /// the period's challenge. Period 0 starts one period after activation (the upload).
    function periodStart(uint256 bidId, uint256 p) public view returns (uint256) {
        Bid storage b = bids[bidId];
        if (b.start == 0) revert Refused("not active");
        return uint256(b.start) + (p + 1) * b.period;
    }

    /// @notice Blocks after a period's first block in which its proof is accepted.
    function window(uint256 bidId) public view returns (uint256) {
        uint256 period = bids[bidId].period;
        return period < PROOF_WINDOW ? period : PROOF_WINDOW;
    }

    /// @notice The chunks challenged in period `p` of slot `slot`, given `randomness` (the
    /// `prev_randao` of the period's first block): `keccak256(abi.encode(keccak256(abi.encode(
    /// randomness, bidId, slot, p)), j)) mod chunks` for `j < min(CHALLENGES, chunks)` (drawn
    /// independently, so an index may repeat).
    function challenges(bytes32 randomness, uint256 bidId, uint256 slot, uint256 p, uint256 chunks)
        public
        pure
        returns (uint256[] memory indices)
    {
        uint256 c = chunks < CHALLENGES ? chunks : CHALLENGES;
        indices = new uint256[](c);
        bytes32 seed = keccak256(abi.encode(randomness, bidId, slot, p));
        for (uint256 j = 0; j < c; j++) {
            indices[j] = uint256(keccak256(abi.encode(seed, j))) % chunks;
        }
    }

    /// @notice Proves that slot `slot` held the file in period `p`: `header` is the RLP of the
    /// execution header of the period's first block; `data[j]` is challenged chunk j (1,024
    /// bytes, the last chunk of the file zero-padded) and `paths[j]` its Merkle path, leaf to
    /// root. Settles the slot's missed periods first; pays the period's price to the provider.
    function prove(
        uint256 bidId,
        uint256 slot,
        uint256 p,
        bytes calldata header,
        bytes[] calldata data,
        bytes32[][] calldata paths
    ) external nonReentrant {
        Bid storage b = bids[bidId];
        if (b.start == 0 || b.finished) revert Refused("not an active deal");
        Slot storage s = slots[bidId][slot];
        if (s.provider != msg.sender) revert Refused("not this slot's provider");
        settle(bidId, b, slot, s);
        if (s.provider != msg.sender) revert Refused("replica failed");
        if (p != s.next || p >= b.periods) revert Refused("not the period due");
        uint256 first = periodStart(bidId, p);
        if (block.number <= first) revert Refused("period not started");
        if (keccak256(header) != blockhash(first) || header.length < 33) revert Refused("header");
        bytes32 randomness = bytes32(header[header.length - 32:]);
        uint256[] memory idx = challenges(randomness, bidId, slot, p, b.chunks);
        if (data.length != idx.length || paths.length != idx.length) revert Refused("challenge count");
        for (uint256 j = 0; j < idx.length; j++) {
            if (data[j].length != CHUNK_SIZE) revert Refused("chunk size");
            bytes32 leaf = keccak256(abi.encodePacked(bytes1(0x00), data[j]));
            if (!verifyPath(leaf, idx[j], b.chunks, paths[j], b.root)) revert Refused("merkle path");
        }
        s.next = uint64(p + 1);
        s.proven += 1;
        uint256 amount = uint256(b.chunks) * CHUNK_SIZE * s.price;
        b.escrow -= amount;
        emit Proven(bidId, slot, p, amount);
        pay(msg.sender, amount);
    }

    /// @notice Counts the missed periods of every slot of an active deal whose windows have
    /// passed (a provider's proof does this for its own slot). Anyone may call it.
    function settleAll(uint256 bidId) external nonReentrant {
        Bid storage b = bids[bidId];
        if (b.start == 0 || b.finished) revert Refused("not an active deal");
        for (uint256 i = 0; i < b.replicas; i++) {
            settle(bidId, b, i, slots[bidId][i]);
        }
    }

    /// @notice Ends a deal after its last proof window: settles the slots, returns each
    /// provider's remaining collateral and capacity, and the remaining escrow to the client.
    function finish(uint256 bidId) external nonReentrant {
        Bid storage b = bids[bidId];
        if (b.start == 0 || b.finished) revert Refused("not an active deal");
        if (block.number <= periodStart(bidId, b.periods - 1) + window(bidId)) revert Refused("deal not over");
        uint256 size = uint256(b.chunks) * CHUNK_SIZE;
        for (uint256 i = 0; i < b.replicas; i++) {
            Slot storage s = slots[bidId][i];
            settle(bidId, b, i, s);
            if (s.provider != address(0)) {
                release(s.askId, size, s.collateral);
                s.collateral = 0;
            }
        }
        b.finished = true;
        uint256 refund = b.escrow;
        b.escrow = 0;
        emit DealFinished(bidId, refund);
        pay(b.client, refund);
    }

    /// @notice Gives up a slot of an active deal. Before its first proof this costs the
    /// provider nothing (the client may never have uploaded); after, its collateral goes to the
    /// client as for a failed replica. The slot reopens.
    function abandon(uint256 bidId, uint256 slot) external nonReentrant {
        Bid storage b = bids[bidId];
        Slot storage s = slots[bidId][slot];
        if (b.start == 0 || b.finished || s.provider != msg.sender) revert Refused("not your slot");
        settle(bidId, b, slot, s);
        if (s.provider != msg.sender) return; // it failed while settling
        uint256 size = uint256(b.chunks) * CHUNK_SIZE;
        if (s.proven == 0) {
            release(s.askId, size, s.collateral);
            s.collateral = 0;
            s.provider = address(0);
            emit SlotReopened(bidId, slot, msg.sender, false);
        } else {
            fail(bidId, b, slot, s, size);
        }
    }

    /// @notice The number of a deal's slot that the chain expects a proof for now, with the
    /// block range it is accepted in: `(period, first block + 1, first block + window)`.
    function due(uint256 bidId, uint256 slot) external view returns (uint256 p, uint256 from, uint256 until) {
        p = slots[bidId][slot].next;
        uint256 first = periodStart(bidId, p);
        return (p, first + 1, first + window(bidId));
    }

    // ---- internals ----

    /// Counts the periods of `s` whose windows closed without a proof: each refunds the
    /// period's price to the client with a third of the collateral; the third fails the replica.
    function settle(uint256 bidId, Bid storage b, uint256 slot, Slot storage s) private {
        if (s.provider == address(0)) return;
        uint256 size = uint256(b.chunks) * CHUNK_SIZE;
        uint256 w = window(bidId);
        while (s.next < b.periods && block.number > periodStart(bidId, s.next) + w) {
            uint256 penalty = s.penalty < s.collateral ? s.penalty : s.collateral;
            s.collateral -= penalty;
            uint256 price = size * s.price;
            b.escrow -= price;
            s.misses += 1;
            emit Missed(bidId, slot, s.next, penalty);
            s.next += 1;
            pay(b.client, penalty + price);
            if (s.misses >= MAX_MISSES) {
                fail(bidId, b, slot, s, size);
                return;
            }
        }
    }

    /// Fails a replica: its remaining collateral goes to the client, its capacity back to its
    /// ask, and the slot reopens at the same price.
    function fail(uint256 bidId, Bid storage b, uint256 slot, Slot storage s, uint256 size) private {
        uint256 rest = s.collateral;
        s.collateral = 0;
        address provider = s.provider;
        release(s.askId, size, 0);
        s.provider = address(0);
        emit SlotReopened(bidId, slot, provider, true);
        pay(b.client, rest);
    }

    /// Returns `size` bytes of capacity and `collateral` to an ask; the collateral goes to the
    /// provider directly when the ask is closed.
    function release(uint256 askId, uint256 size, uint256 collateral) private {
        Ask storage a = asks[askId];
        if (a.closed) {
            pay(a.provider, collateral);
        } else {
            a.capacity += uint64(size);
            a.collateral += collateral;
        }
    }

    /// Walks a Merkle path as rs_merkle builds trees: leaves `keccak256(0x00 ‖ chunk)`, inner
    /// nodes `keccak256(0x01 ‖ left ‖ right)`, and the last node of a level with an odd number
    /// of nodes carried up unhashed (it has no sibling, so the path has no entry for it).
    function verifyPath(bytes32 leaf, uint256 index, uint256 n, bytes32[] calldata path, bytes32 root)
        internal
        pure
        returns (bool)
    {
        bytes32 h = leaf;
        uint256 k = 0;
        while (n > 1) {
            if (index % 2 == 1) {
                if (k >= path.length) return false;
                h = keccak256(abi.encodePacked(bytes1(0x01), path[k], h));
                k++;
            } else if (index + 1 < n) {
                if (k >= path.length) return false;
                h = keccak256(abi.encodePacked(bytes1(0x01), h, path[k]));
                k++;
            }
            index /= 2;
            n = (n + 1) / 2;
        }
        return k == path.length && h == root;
    }
}
