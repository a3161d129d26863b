// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Counter} from "../src/Counter.sol";

/// forge's cheat codes, declared here: forge-std cannot be installed offline.
interface Vm {
    function startBroadcast() external;
    function stopBroadcast() external;
}

/// Deploys a Counter starting at 5 and adds 7: two transactions, `forge script --broadcast`.
contract Deploy {
    Vm constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function run() external {
        vm.startBroadcast();
        Counter c = new Counter(5);
        c.add(7);
        vm.stopBroadcast();
    }
}
