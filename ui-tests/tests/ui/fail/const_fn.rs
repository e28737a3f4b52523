use hub::rpc_method;

#[rpc_method]
const fn answer() -> i64 {
    42
}

fn main() {}
