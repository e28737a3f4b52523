//! The context is recognised by any path ending in `Context`; bindings may be
//! `mut`; raw identifiers are named without `r#`.

use hub::rpc_method;

mod aliases {
    pub use hub::Context;
}

#[rpc_method]
fn full_path(_ctx: &hub::Context) -> bool {
    true
}

#[rpc_method]
fn engine_path(_ctx: &hub::core::Context, mut count: u32) -> u32 {
    count += 1;
    count
}

#[rpc_method]
fn module_path(_: &aliases::Context) {}

fn main() {
    let registry = hub::Registry::from_inventory().expect("no duplicates");
    let params = |name: &str| registry.get(name).map(|m| m.params().len());
    assert_eq!(params("full_path"), Some(0));
    assert_eq!(params("engine_path"), Some(1));
    assert_eq!(params("module_path"), Some(0));
    let raw = registry.get("match").expect("registered without `r#`");
    assert_eq!(raw.params()[0].name, "type");
    assert_eq!(raw.params()[0].rust_type, "String");
}

/// Raw identifiers lose their `r#` on the wire.
#[rpc_method]
fn r#match(r#type: String) -> String {
    r#type
}
