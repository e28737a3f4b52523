use hub::rpc_method;

struct Builds;

impl Builds {
    #[rpc_method]
    fn count(&self) -> i64 {
        0
    }
}

fn main() {}
