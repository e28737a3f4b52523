//! A blocking method: registered, described, and callable with decoded parameters.

use std::sync::Arc;

use hub::{rpc_method, Context, Params, Registry, Value};

/// Multiplies a number.
#[rpc_method]
fn scale(value: i64, factor: Option<i64>) -> i64 {
    value * factor.unwrap_or(2)
}

fn main() {
    let registry = Arc::new(Registry::from_inventory().expect("no duplicates"));
    let method = registry.get("scale").expect("registered at link time");
    assert!(method.is_blocking());
    assert_eq!(method.doc(), "Multiplies a number.");
    assert_eq!(method.signatures(), [vec!["int", "int"], vec!["int", "int", "int"]]);

    let ctx = Context::new("scale", None, Default::default(), 1, registry.clone());
    let params = Params { positional: vec![Value::from(21)], named: None };
    assert_eq!(method.call_blocking(&ctx, params), Ok(Value::from(42)));
    assert_eq!(scale(2, Some(3)), 6);
}
