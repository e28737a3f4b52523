use hub::rpc_method;

/// Has no `Deserialize`.
struct BuildQuery {
    package: String,
}

#[rpc_method]
fn list_builds(query: BuildQuery) -> Vec<String> {
    vec![query.package]
}

fn main() {}
