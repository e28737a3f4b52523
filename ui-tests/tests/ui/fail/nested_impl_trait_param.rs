//! `impl Trait` inside a parameter's type is refused like a top-level one.
use hub::rpc_method;

#[rpc_method]
fn tagBuilds(ids: Vec<impl serde::de::DeserializeOwned + Send>) -> usize {
    ids.len()
}

fn main() {}
