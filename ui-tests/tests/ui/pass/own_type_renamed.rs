//! A type of the user's own named `Context`, imported under another name, is decoded.
#![allow(non_snake_case)]
use hub::rpc_method;

mod build {
    #[derive(serde::Deserialize)]
    pub struct Context {
        pub arch: String,
    }
}

use build::Context as BuildContext;

#[rpc_method]
fn buildArch(ctx: BuildContext) -> String {
    ctx.arch
}

fn main() {
    let registry = hub::Registry::from_inventory().expect("no duplicates");
    assert_eq!(registry.get("buildArch").map(|m| m.params().len()), Some(1));
}
