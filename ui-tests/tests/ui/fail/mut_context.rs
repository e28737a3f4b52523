use hub::{rpc_method, Context};

#[rpc_method]
fn touch(ctx: &mut Context) -> String {
    ctx.method().to_owned()
}

fn main() {}
