use hub::{rpc_method, Context};

#[rpc_method]
fn lookup(id: i64, ctx: &Context) -> String {
    format!("{} {id}", ctx.method())
}

fn main() {}
