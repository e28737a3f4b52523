use hub::rpc_method;

const NAME: &str = "getBuild";

#[rpc_method(name = NAME)]
fn get_build(id: i64) -> i64 {
    id
}

fn main() {}
