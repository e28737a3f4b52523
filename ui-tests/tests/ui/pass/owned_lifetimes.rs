//! Owned types with a lifetime (`Cow<'_, str>`, `Cow<str>`) are decoded owned, and optional
//! owned parameters (`Option<String>`, the advice for `Option<&str>`) may be left out.
#![allow(non_snake_case)]
use std::borrow::Cow;
use std::sync::Arc;

use hub::{rpc_method, Context, Params, Registry, Value};

#[rpc_method]
fn greet(name: Cow<'_, str>, greeting: Option<Cow<str>>) -> String {
    format!("{} {name}", greeting.unwrap_or(Cow::Borrowed("hello")))
}

#[rpc_method]
fn listBuilds(owner: Option<String>) -> String {
    owner.unwrap_or_else(|| "anyone".to_owned())
}

fn call(registry: &Arc<Registry>, name: &str, positional: Vec<Value>) -> Value {
    let method = registry.get(name).expect("registered");
    let ctx = Context::new(name, None, Default::default(), 1, registry.clone());
    let params = Params {
        positional,
        named: None,
    };
    method.call_blocking(&ctx, params).expect("the call succeeds")
}

fn main() {
    let registry = Arc::new(Registry::from_inventory().expect("no duplicates"));
    let text = |s: &str| Value::from(s.to_owned());
    assert_eq!(call(&registry, "greet", vec![text("koji")]), text("hello koji"));
    assert_eq!(
        call(&registry, "greet", vec![text("koji"), text("hi")]),
        text("hi koji")
    );
    assert_eq!(call(&registry, "listBuilds", vec![]), text("anyone"));
    assert_eq!(call(&registry, "listBuilds", vec![text("kojiadmin")]), text("kojiadmin"));
    let greet = registry.get("greet").expect("registered");
    assert_eq!(greet.params()[0].rust_type, "Cow<'_, str>");
    assert!(greet.params()[1].optional);
}
