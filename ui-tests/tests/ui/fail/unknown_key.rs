use hub::rpc_method;

#[rpc_method(nmae = "getBuild")]
fn get_build(id: i64) -> i64 {
    id
}

fn main() {}
