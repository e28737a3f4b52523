//! Every accepted return shape, and the XML-RPC type each one advertises.

use hub::{rpc_method, Fault, RpcError};
use serde::Serialize;

#[derive(Debug)]
struct AppError;

impl From<AppError> for Fault {
    fn from(_: AppError) -> Fault {
        Fault::new(1000, "application error")
    }
}

/// An alias named `Result` hiding the error type (like `io::Result`) still counts.
mod app {
    pub type Result<T> = std::result::Result<T, super::AppError>;
}

/// Only `Serialize`: its XML-RPC type cannot be probed, so it is `any`.
#[derive(Serialize)]
struct Report {
    lines: Vec<String>,
}

#[rpc_method]
fn nothing() {}

#[rpc_method]
fn unit() -> () {}

#[rpc_method]
fn maybe() -> Option<f64> {
    None
}

#[rpc_method]
fn fallible() -> Result<Vec<String>, Fault> {
    Ok(vec![])
}

#[rpc_method]
fn aliased() -> app::Result<bool> {
    Err(AppError)
}

#[rpc_method]
fn rpc_error() -> Result<i32, RpcError> {
    Err(RpcError::InvalidParams("no".into()))
}

#[rpc_method]
fn report() -> Report {
    Report { lines: vec![] }
}

#[rpc_method]
fn boxed() -> Box<str> {
    "boxed".into()
}

fn main() {
    let registry = hub::Registry::from_inventory().expect("no duplicates");
    let returns = |name: &str| registry.get(name).map(|m| m.returns().to_owned());
    assert_eq!(returns("nothing").as_deref(), Some("nil"));
    assert_eq!(returns("unit").as_deref(), Some("nil"));
    assert_eq!(returns("maybe").as_deref(), Some("double"));
    assert_eq!(returns("fallible").as_deref(), Some("array"));
    assert_eq!(returns("aliased").as_deref(), Some("boolean"));
    assert_eq!(returns("rpc_error").as_deref(), Some("int"));
    assert_eq!(returns("report").as_deref(), Some("any"));
    assert_eq!(returns("boxed").as_deref(), Some("string"));
}
