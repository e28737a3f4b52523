use hub::rpc_method;

#[rpc_method]
fn ignore(_: i64) {}

fn main() {}
