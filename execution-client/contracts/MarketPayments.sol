// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.20;

/// @title MarketPayments
/// @notice What both market contracts (spec §17) share: payments sent in the transaction
/// that makes them due, kept for `withdraw` when the receiver refuses them, one call at a
/// time, one error type for every refusal, and the directory of the parties' endpoints (the
/// URL of the HTTP server a provider takes uploads and serves data at).
abstract contract MarketPayments {
    /// Longest endpoint URL, in bytes.
    uint256 public constant MAX_ENDPOINT = 256;
    /// Payments whose receiver refused them, for `withdraw`.
    mapping(address => uint256) public owed;
    /// 2 while a call runs (0 or 1 otherwise: the genesis holds no storage, so no initialiser).
    uint256 private locked;

    /// Every refusal, with the reason in words.
    error Refused(string why);

    /// Each party's published endpoint (empty: none).
    mapping(address => string) public endpoint;

    event EndpointSet(address indexed party, string url);

    modifier nonReentrant() {
        if (locked == 2) revert Refused("reentrant call");
        locked = 2;
        _;
        locked = 1;
    }

    /// @notice Publishes the URL where the sender's HTTP server is reached (empty: none).
    function setEndpoint(string calldata url) external {
        if (bytes(url).length > MAX_ENDPOINT) revert Refused("endpoint too long");
        endpoint[msg.sender] = url;
        emit EndpointSet(msg.sender, url);
    }

    /// @notice Pays out what the caller refused earlier.
    function withdraw() external nonReentrant {
        uint256 amount = owed[msg.sender];
        owed[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert Refused("transfer failed");
    }

    /// Sends `amount` with 50,000 gas (enough for a contract wallet's `receive`), or keeps it
    /// for `withdraw` when the receiver refuses it or runs out: a receiver cannot block the
    /// transaction that pays it.
    function pay(address to, uint256 amount) internal {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount, gas: 50_000}("");
        if (!ok) owed[to] += amount;
    }
}
