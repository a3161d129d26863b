// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.20;

import {QoinSignatures} from "QoinSignatures.sol";

/// Recovers the signers of messages signed through JSON-RPC (`personal_sign`, `eth_sign`,
/// `eth_signTypedData_v4`), with QoinSignatures, and what `ecrecover` makes of the same bytes.
contract SignatureCheck {
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant MAIL_TYPEHASH = keccak256("Mail(address to,string contents)");

    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("Qoin Mail"), keccak256("1"), block.chainid, address(this)));
    }

    function recoverPersonal(bytes calldata message, bytes calldata signed) external view returns (address) {
        return QoinSignatures.recover(QoinSignatures.toEthSignedMessageHash(message), signed);
    }

    function recoverMail(address to, string calldata contents, bytes calldata signed) external view returns (address) {
        bytes32 structHash = keccak256(abi.encode(MAIL_TYPEHASH, to, keccak256(bytes(contents))));
        return QoinSignatures.recover(QoinSignatures.toTypedDataHash(domainSeparator(), structHash), signed);
    }

    function ecrecoverPersonal(bytes calldata message, bytes calldata signed) external pure returns (address) {
        if (signed.length != 65) return address(0);
        bytes32 r = bytes32(signed[0:32]);
        bytes32 s = bytes32(signed[32:64]);
        return ecrecover(QoinSignatures.toEthSignedMessageHash(message), uint8(signed[64]), r, s);
    }
}
