use hub::rpc_method;

#[rpc_method(timeout_ms = "30s")]
fn import_build(path: String) -> bool {
    !path.is_empty()
}

#[rpc_method(timeout_ms = 99_999_999_999_999_999_999)]
fn regen_repo() {}

#[rpc_method(timeout_ms)]
fn tag_build() {}

#[rpc_method(timeout_ms = 1000, timeout_ms = 2000)]
fn untag_build() {}

fn main() {}
