use hub::rpc_method;

#[rpc_method]
fn first<T: Default>(items: Vec<T>) -> usize {
    items.len()
}

fn main() {}
