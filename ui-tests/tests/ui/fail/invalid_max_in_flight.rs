use hub::rpc_method;

#[rpc_method(max_in_flight = 0)]
fn none_at_all() {}

#[rpc_method(max_in_flight = "4")]
fn quoted() {}

#[rpc_method(max_in_flight = 5_000_000_000)]
fn too_many() {}

fn main() {}
