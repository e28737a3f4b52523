use hub::rpc_method;

#[rpc_method(name = "getBuild", aliases = ["get build", get_build, "old", "old", "getBuild"])]
fn get_build(id: i64) -> i64 {
    id
}

#[rpc_method(aliases = "list_tags")]
fn list_tags() {}

#[rpc_method(aliases = ["list_users"])]
fn list_users() {}

fn main() {}
