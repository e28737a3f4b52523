use hub::rpc_method;

/// Has no `Serialize`.
struct BuildInfo {
    id: i64,
}

#[rpc_method]
fn get_build(id: i64) -> BuildInfo {
    BuildInfo { id }
}

fn main() {}
