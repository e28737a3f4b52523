use hub::rpc_method;

#[rpc_method]
fn greet(name: &str) -> String {
    format!("Hello, {name}")
}

fn main() {}
