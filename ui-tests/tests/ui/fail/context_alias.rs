//! A type alias of the hub's context is not recognised (the macro sees names, not types):
//! the advice says so.
use hub::rpc_method;

type Ctx = hub::Context;

#[rpc_method]
fn whoami(ctx: &Ctx) -> String {
    ctx.method().to_owned()
}

fn main() {}
