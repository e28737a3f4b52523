use hub::rpc_method;

/// Has no conversion into `hub::Fault`.
#[derive(Debug)]
struct NotFound;

#[rpc_method]
fn get_build(id: i64) -> Result<i64, NotFound> {
    if id > 0 { Ok(id) } else { Err(NotFound) }
}

fn main() {}
