use hub::rpc_method;

#[rpc_method]
struct Build {
    id: i64,
}

fn main() {}
