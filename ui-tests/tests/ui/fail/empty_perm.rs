use hub::rpc_method;

#[rpc_method(perm = "")]
fn reset() {}

fn main() {}
