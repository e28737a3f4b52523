//! koji's small fixed methods.

use hub::{rpc_method, Value};

/// Answers a greeting.
#[rpc_method]
pub fn hello() -> &'static str {
    "Hello World"
}

/// The API version.
#[rpc_method(name = "getAPIVersion")]
pub fn get_api_version() -> i32 {
    1
}

/// Returns what it was given.
#[rpc_method]
pub fn echo(value: Value) -> Value {
    value
}
