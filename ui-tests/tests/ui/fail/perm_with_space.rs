//! A stray space in a permission would make the method callable by no one.
use hub::rpc_method;

#[rpc_method(perm = "admin ")]
fn purge() {}

fn main() {}
