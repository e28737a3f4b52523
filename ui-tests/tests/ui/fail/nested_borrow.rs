//! A `&` inside a parameter's type is refused where it is written, with the owned type
//! to take instead.
use hub::rpc_method;

#[rpc_method]
fn listBuilds(owner: Option<&str>, tags: Vec<&[u8]>, pair: (i64, &'static str)) -> usize {
    owner.map_or(0, str::len) + tags.len() + pair.1.len()
}

fn main() {}
