use hub::rpc_method;

#[rpc_method]
fn show(value: impl std::fmt::Display) -> String {
    value.to_string()
}

fn main() {}
