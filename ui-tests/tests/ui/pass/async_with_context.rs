//! An async method taking the context, driven the way the engine drives it.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use hub::{rpc_method, Context, Params, Registry, Value};

/// Reports which method the context says is running.
#[rpc_method(name = "ctx.method")]
async fn current_method(ctx: &Context, suffix: String) -> String {
    format!("{}{suffix}", ctx.method())
}

/// Polls a future that never waits to completion.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn main() {
    let registry = Arc::new(Registry::from_inventory().expect("no duplicates"));
    let method = registry.get("ctx.method").expect("registered").clone();
    assert!(!method.is_blocking());
    assert_eq!(method.signature(), ["string", "string"]);

    let ctx = Arc::new(Context::new("ctx.method", None, Default::default(), 1, registry));
    let params = Params { positional: vec![Value::from("!")], named: None };
    assert_eq!(run(method.call_async(ctx, params)), Ok(Value::from("ctx.method!")));
}
