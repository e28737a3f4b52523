//! Functions named like the expansion's old generated items (`__hub_decode`, ...) or its
//! wrapper's arguments are called, not shadowed by them.
use hub::rpc_method;

#[rpc_method(name = "decode")]
fn __hub_decode(x: i32) -> i32 {
    x
}

#[rpc_method(name = "handler")]
fn __hub_handler(x: i32) -> i32 {
    x + 1
}

#[rpc_method(name = "returns")]
fn __hub_returns() -> String {
    String::new()
}

#[rpc_method(name = "ctx")]
fn __ctx(_ctx: &hub::Context, x: i32) -> i32 {
    x
}

#[rpc_method(name = "params")]
async fn __params(x: i32) -> i32 {
    x
}

fn main() {
    let registry = std::sync::Arc::new(hub::Registry::from_inventory().expect("no duplicates"));
    for name in ["decode", "handler", "returns", "ctx", "params"] {
        assert!(registry.get(name).is_some(), "{name} is registered");
    }
    assert_eq!(registry.get("returns").map(|m| m.returns()), Some("string"));
    for (name, answer) in [("decode", 41), ("handler", 42), ("ctx", 41)] {
        let method = registry.get(name).expect("registered");
        let ctx = hub::Context::new(name, None, Default::default(), 1, registry.clone());
        let params = hub::Params {
            positional: vec![hub::Value::from(41)],
            named: None,
        };
        assert_eq!(
            method.call_blocking(&ctx, params),
            Ok(hub::Value::from(answer)),
            "{name} calls the user's function"
        );
    }
}
