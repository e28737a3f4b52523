use hub::rpc_method;

#[rpc_method]
fn numbers() -> impl serde::Serialize {
    vec![1, 2, 3]
}

fn main() {}
