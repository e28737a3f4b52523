//! A conditional parameter is refused on its attribute: the generated wrapper would still
//! decode and pass it.
use hub::rpc_method;

#[rpc_method]
fn getBuild(
    build_id: i32,
    #[cfg(any())] strict: bool,
    #[cfg_attr(test, allow(unused))] arch: String,
) -> String {
    format!("{build_id}.{arch}")
}

fn main() {}
