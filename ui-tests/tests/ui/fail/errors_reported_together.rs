use hub::rpc_method;

// Every problem is reported in one compile, each on its own token.
#[rpc_method(name = 42, blocking = true)]
fn lookup<T>(_name: &str, (a, b): (i64, i64)) -> i64 {
    a + b
}

fn main() {}
