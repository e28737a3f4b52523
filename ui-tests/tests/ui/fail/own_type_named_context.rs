//! A type of the user's own named `Context`, taken by value, is taken for the hub's context:
//! the advice says how to import it under another name.
use hub::rpc_method;

mod build {
    #[derive(serde::Deserialize)]
    pub struct Context {
        pub arch: String,
    }
}

#[rpc_method]
fn buildArch(ctx: build::Context) -> String {
    ctx.arch
}

fn main() {}
