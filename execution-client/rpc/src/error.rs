//! JSON-RPC errors: geth's codes and shapes.

use jsonrpsee::types::ErrorObjectOwned;
use serde_json::Value;

/// A JSON-RPC error: code, message, optional data.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// JSON-RPC error code.
    pub code: i32,
    /// Message.
    pub message: String,
    /// Data (revert bytes).
    pub data: Option<Value>,
}

impl RpcError {
    /// -32602: the parameters are wrong.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self { code: -32602, message: message.into(), data: None }
    }

    /// -32000: geth's code for refused transactions and failed calls.
    pub fn server(message: impl Into<String>) -> Self {
        Self { code: -32000, message: message.into(), data: None }
    }

    /// -32603: the node failed (database error).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self { code: -32603, message: format!("internal error: {e}"), data: None }
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(e: RpcError) -> Self {
        ErrorObjectOwned::owned(e.code, e.message, e.data)
    }
}

impl From<qoin_evm::ExecError> for RpcError {
    fn from(e: qoin_evm::ExecError) -> Self {
        Self::internal(e)
    }
}

impl From<qoin_store::StoreError> for RpcError {
    fn from(e: qoin_store::StoreError) -> Self {
        Self::internal(e)
    }
}

/// The result of one method.
pub type RpcResult = Result<Value, RpcError>;

impl From<qoin_el_storage::StorageError> for RpcError {
    fn from(e: qoin_el_storage::StorageError) -> Self {
        Self::internal(e)
    }
}
