use hub::rpc_method;

#[rpc_method(sensitive = true)]
fn login(user: String, password: String) -> bool {
    !user.is_empty() && !password.is_empty()
}

fn main() {}
