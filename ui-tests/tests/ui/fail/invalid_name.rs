use hub::rpc_method;

#[rpc_method(name = "get build")]
fn get_build(id: i64) -> i64 {
    id
}

fn main() {}
