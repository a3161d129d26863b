// SPDX-License-Identifier: MIT
// Minimal ERC-20 for the import-erc20 benchmark. `balanceOf` is storage slot 0, so a
// genesis can fund holders directly: slot keccak256(pad32(holder) ‖ pad32(0)).
pragma solidity 0.8.30;

contract Token {
    mapping(address => uint256) public balanceOf;
    uint256 public totalSupply;

    event Transfer(address indexed from, address indexed to, uint256 value);

    function transfer(address to, uint256 value) external returns (bool) {
        uint256 have = balanceOf[msg.sender];
        require(have >= value, "insufficient balance");
        unchecked {
            balanceOf[msg.sender] = have - value;
        }
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}
