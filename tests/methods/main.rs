//! A user crate's view: a dozen `#[rpc_method]`s across several modules, served
//! with no registration code, and checked through the registry the server uses.

mod api;
mod decoding;
mod introspection;
mod registration;
mod results;

use std::sync::Arc;

use hub::{Context, Params, Registry, RpcError, Struct, Value};

/// The registry built the way the server builds it.
fn registry() -> Arc<Registry> {
    Arc::new(Registry::from_inventory().expect("no duplicate method names"))
}

/// Calls `method` as the engine would, on the calling thread (async methods are
/// driven by a current-thread runtime).
fn call(method: &str, positional: Vec<Value>, named: Option<Struct>) -> Result<Value, RpcError> {
    let registry = registry();
    let ctx = Arc::new(Context::new(
        method,
        None,
        Default::default(),
        7,
        registry.clone(),
    ));
    let found = registry
        .get(method)
        .unwrap_or_else(|| panic!("method {method} is not registered"));
    let params = Params { positional, named };
    if found.is_blocking() {
        found.call_blocking(&ctx, params)
    } else {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(found.call_async(ctx, params))
    }
}

/// Positional arguments only.
fn call_positional(method: &str, positional: Vec<Value>) -> Result<Value, RpcError> {
    call(method, positional, None)
}

/// Builds a struct from `(name, value)` pairs.
fn members<const N: usize>(pairs: [(&'static str, Value); N]) -> Struct {
    let mut out = Struct::new();
    for (name, value) in pairs {
        out.insert(name, value);
    }
    out
}

/// The message of an invalid-params error, or a panic naming what came instead.
fn invalid_params(result: Result<Value, RpcError>) -> String {
    match result {
        Err(RpcError::InvalidParams(message)) => message,
        other => panic!("expected invalid params, got {other:?}"),
    }
}
