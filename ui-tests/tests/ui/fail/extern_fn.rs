use hub::rpc_method;

#[rpc_method]
extern "C" fn answer() -> i32 {
    42
}

fn main() {}
