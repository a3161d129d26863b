//! Message signing with the keys the node holds: `personal_sign`, `eth_sign` and
//! `eth_signTypedData_v4`.
//!
//! The digest is Ethereum's (EIP-191 `"\x19Ethereum Signed Message:\n" ‖ len ‖ message`, or
//! the EIP-712 signing hash), signed with the dual post-quantum signature in the contract
//! domain, so the DUAL precompile (and `QoinSignatures.sol`) verifies it. The answer is
//! `public keys (2,210 bytes) ‖ dual signature (3,087 bytes)`: 5,297 bytes, not Ethereum's 65;
//! `ecrecover` cannot read it (spec §13).

use crate::convert::{data, Args};
use crate::error::{RpcError, RpcResult};
use alloy_dyn_abi::TypedData;
use alloy_primitives::{eip191_hash_message, Address, Bytes, B256, U256};
use qoin_crypto::Domain;
use qoin_el_node::Node;
use serde_json::Value;

/// Signs `digest` with `address`'s key: keys ‖ signature.
fn sign_digest(node: &Node, address: Address, digest: B256) -> RpcResult {
    let key = node.signer(&address).ok_or_else(|| RpcError::server("unknown account"))?;
    let mut out = key.public().to_bytes();
    out.extend_from_slice(&key.sign(Domain::Contract, digest.as_slice()).to_bytes());
    Ok(data(&out))
}

/// `personal_sign(message, address)`: EIP-191 over the message bytes.
pub(super) fn personal_sign(node: &Node, args: &Args) -> RpcResult {
    let message: Bytes = args.req(0, "message")?;
    let address: Address = args.req(1, "address")?;
    sign_digest(node, address, eip191_hash_message(&message))
}

/// `eth_sign(address, message)`: as `personal_sign`, parameters the other way round (geth).
pub(super) fn eth_sign(node: &Node, args: &Args) -> RpcResult {
    let address: Address = args.req(0, "address")?;
    let message: Bytes = args.req(1, "message")?;
    sign_digest(node, address, eip191_hash_message(&message))
}

/// `eth_signTypedData_v4(address, typedData)`: the EIP-712 signing hash of the typed data (an
/// object, or the JSON text of one, as wallets send it). A `chainId` in its domain must be
/// this chain's, as wallets require.
pub(super) fn sign_typed_data_v4(node: &Node, args: &Args) -> RpcResult {
    let address: Address = args.req(0, "address")?;
    let raw = args.get(1).ok_or_else(|| RpcError::invalid_params("missing value for typed data"))?;
    let parsed = match raw {
        Value::String(text) => serde_json::from_str::<TypedData>(text),
        other => serde_json::from_value::<TypedData>(other.clone()),
    };
    let typed = parsed.map_err(|e| RpcError::invalid_params(format!("invalid typed data: {e}")))?;
    let ours = node.chain().genesis().chain_id;
    if let Some(chain) = typed.domain.chain_id {
        if chain != U256::from(ours) {
            return Err(RpcError::invalid_params(format!(
                "the typed data's domain names chain {chain}, this node's chain is {ours}"
            )));
        }
    }
    let digest = typed
        .eip712_signing_hash()
        .map_err(|e| RpcError::invalid_params(format!("invalid typed data: {e}")))?;
    sign_digest(node, address, digest)
}
