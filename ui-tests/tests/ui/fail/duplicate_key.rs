use hub::rpc_method;

#[rpc_method(name = "getBuild", perm = "admin", name = "get_build")]
fn get_build(id: i64) -> i64 {
    id
}

fn main() {}
