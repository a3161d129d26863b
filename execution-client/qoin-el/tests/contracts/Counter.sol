// SPDX-License-Identifier: MIT
// Test contract for qoin-el's JSON-RPC tests: storage, events, both kinds of revert, and a
// call into the post-quantum signature precompiles.
pragma solidity 0.8.30;

contract Counter {
    /// Custom error, decoded by ethers/viem from the revert data.
    error TooBig(uint256 value);

    event Increased(address indexed by, uint256 amount, uint256 total);

    uint256 public count;
    address public owner;

    constructor(uint256 start) {
        count = start;
        owner = msg.sender;
    }

    function add(uint256 amount) external {
        require(amount != 42, "no 42");
        if (amount > 1000) revert TooBig(amount);
        count += amount;
        emit Increased(msg.sender, amount, count);
    }

    /// Calls a signature precompile with `input`; true only if it answered 1.
    function verifyPq(address precompile, bytes calldata input) external view returns (bool) {
        (bool ok, bytes memory out) = precompile.staticcall(input);
        return ok && out.length == 32 && abi.decode(out, (uint256)) == 1;
    }
}
