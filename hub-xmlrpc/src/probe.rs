//! [`xmlrpc_type_name`]: which XML-RPC type a Rust type decodes from.

use serde::de::DeserializeOwned;

/// The XML-RPC type name `T` decodes from (`"int"`, `"struct"`, ... or `"any"`).
pub fn xmlrpc_type_name<T: DeserializeOwned>() -> &'static str {
    todo!()
}
