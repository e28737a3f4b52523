//! A lifetime parameter (on the context) is refused with its own reason.
use hub::{rpc_method, Context};

#[rpc_method]
fn whoami<'a>(ctx: &'a Context) -> String {
    ctx.method().to_owned()
}

fn main() {}
