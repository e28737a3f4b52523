use hub::rpc_method;

#[rpc_method]
fn span((start, end): (i64, i64)) -> i64 {
    end - start
}

fn main() {}
