//! A `#[cfg]` below `#[rpc_method]` applies to the registration too: a method compiled out
//! is not registered (and its registration does not name the missing function).
use hub::rpc_method;

#[rpc_method]
#[cfg(any())]
fn only_with_feature() -> i32 {
    1
}

#[rpc_method]
#[cfg(all())]
fn always() -> i32 {
    1
}

fn main() {
    let registry = hub::Registry::from_inventory().expect("no duplicates");
    assert!(registry.get("only_with_feature").is_none());
    assert!(registry.get("always").is_some());
}
