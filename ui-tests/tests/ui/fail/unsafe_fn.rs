use hub::rpc_method;

#[rpc_method]
unsafe fn peek(address: u64) -> u8 {
    let _ = address;
    0
}

fn main() {}
