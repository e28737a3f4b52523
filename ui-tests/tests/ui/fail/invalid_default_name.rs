//! Without `name = "..."` the method is named after the function, and that name is checked
//! like one given with `name`.
#![allow(non_snake_case)]
use hub::rpc_method;

#[rpc_method]
fn café() -> i32 {
    1
}

/// A valid `name` makes any function name fine.
#[rpc_method(name = "cafe")]
fn crème() -> i32 {
    2
}

fn main() {}
