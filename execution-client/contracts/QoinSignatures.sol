// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.20;

/// @title QoinSignatures
/// @notice Checks Qoin's post-quantum signatures in a contract, where Ethereum code would use
/// `ecrecover`: the dual Falcon-512 + ML-DSA-44 signatures that a Qoin node's `personal_sign`,
/// `eth_sign` and `eth_signTypedData_v4` answer, and that qoin-js makes the same way.
///
/// A signed digest is `public keys (2,210 bytes) ‖ dual signature (3,087 bytes)` = 5,297 bytes
/// (spec §2.3), signed over a 32-byte digest in the contract domain and checked by the DUAL
/// precompile at `0x…0f03` (spec §12). The signer's address is derived from the keys
/// (spec §2.5), so `recover` answers an address as `ecrecover` does, and `address(0)` for
/// anything that does not verify. `ecrecover` itself cannot read these signatures: given one
/// it answers `address(0)`.
///
/// The digests are Ethereum's: EIP-191 (`toEthSignedMessageHash`) for `personal_sign` and
/// `eth_sign`, EIP-712 (`toTypedDataHash`) for `eth_signTypedData_v4`.
library QoinSignatures {
    /// The dual-signature precompile (spec §12).
    address internal constant DUAL_PRECOMPILE = address(0x0f03);
    /// Public keys: suite ‖ Falcon-512 key ‖ ML-DSA-44 key.
    uint256 internal constant KEYS_LENGTH = 2210;
    /// Dual signature: suite ‖ Falcon-512 signature (padded) ‖ ML-DSA-44 signature.
    uint256 internal constant SIGNATURE_LENGTH = 3087;
    /// What the signing methods answer: keys ‖ signature.
    uint256 internal constant SIGNED_LENGTH = KEYS_LENGTH + SIGNATURE_LENGTH;

    /// @notice The address whose keys signed `digest`, or `address(0)` if `signed` is not a
    /// valid signature of it.
    function recover(bytes32 digest, bytes memory signed) internal view returns (address) {
        if (signed.length != SIGNED_LENGTH) return address(0);
        (bool ok, bytes memory out) = DUAL_PRECOMPILE.staticcall(abi.encodePacked(signed, digest));
        if (!ok || out.length != 32 || abi.decode(out, (uint256)) != 1) return address(0);
        return keysAddress(signed);
    }

    /// @notice Whether `signed` is `signer`'s valid signature of `digest`.
    function isValidSignatureNow(address signer, bytes32 digest, bytes memory signed)
        internal
        view
        returns (bool)
    {
        return signer != address(0) && recover(digest, signed) == signer;
    }

    /// @notice The address of the public keys that `signed` begins with:
    /// the last 20 bytes of `keccak256("QOIN/ADDRESS/v1" ‖ keys)`.
    function keysAddress(bytes memory signed) internal pure returns (address) {
        require(signed.length >= KEYS_LENGTH, "QoinSignatures: shorter than the public keys");
        bytes memory tagged = abi.encodePacked("QOIN/ADDRESS/v1", signed);
        bytes32 h;
        assembly ("memory-safe") {
            // 15 bytes of tag, then the keys.
            h := keccak256(add(tagged, 32), 2225)
        }
        return address(uint160(uint256(h)));
    }

    /// @notice EIP-191: `keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ message)`, the
    /// digest `personal_sign` and `eth_sign` sign.
    function toEthSignedMessageHash(bytes memory message) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n", decimal(message.length), message));
    }

    /// @notice EIP-712: `keccak256("\x19\x01" ‖ domainSeparator ‖ structHash)`, the digest
    /// `eth_signTypedData_v4` signs.
    function toTypedDataHash(bytes32 domainSeparator, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", domainSeparator, structHash));
    }

    function decimal(uint256 value) private pure returns (bytes memory out) {
        uint256 digits = 1;
        for (uint256 v = value; v >= 10; v /= 10) digits++;
        out = new bytes(digits);
        for (uint256 i = digits; i > 0; i--) {
            out[i - 1] = bytes1(uint8(48 + (value % 10)));
            value /= 10;
        }
    }
}
