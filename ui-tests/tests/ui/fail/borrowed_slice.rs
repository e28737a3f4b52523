use hub::rpc_method;

#[rpc_method]
fn total(values: &[i64]) -> i64 {
    values.iter().sum()
}

fn main() {}
