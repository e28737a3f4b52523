//! A method kept for old clients and marked `#[deprecated]` (for Rust callers): the
//! generated wrapper's call of it does not warn in the user's crate.
#![deny(deprecated)]
use hub::rpc_method;

#[deprecated(note = "use getBuild")]
#[rpc_method]
fn get_build_old(id: i32) -> i32 {
    id
}

#[rpc_method]
#[deprecated(note = "use listBuilds")]
async fn list_builds_old() -> Vec<i32> {
    Vec::new()
}

fn main() {
    let registry = hub::Registry::from_inventory().expect("no duplicates");
    assert!(registry.get("get_build_old").is_some());
    assert!(registry.get("list_builds_old").is_some());
}
