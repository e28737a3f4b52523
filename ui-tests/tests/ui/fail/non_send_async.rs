use std::rc::Rc;

use hub::rpc_method;

async fn tick() {}

#[rpc_method]
async fn count() -> usize {
    let shared = Rc::new(1);
    tick().await;
    *shared
}

fn main() {}
