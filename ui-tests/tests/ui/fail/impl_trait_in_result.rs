//! `impl Trait` inside the return type is refused like a top-level one.
use hub::{rpc_method, Fault};

#[rpc_method]
fn listTags() -> Result<impl serde::Serialize, Fault> {
    Ok(vec!["f40"])
}

fn main() {}
