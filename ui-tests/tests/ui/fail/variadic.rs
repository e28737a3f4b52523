use hub::rpc_method;

#[rpc_method]
fn printf_like(format: String, _: ...) -> String {
    format
}

fn main() {}
