//! The registry at run time: closures registered through the builder, the
//! duplicate check, and the built-in introspection describing run-time methods.

use std::sync::Arc;

use hub_core::params::Args;
use hub_core::registry::{Method, ParamDef, Params, Registry, RpcError};
use hub_core::Context;
use hub_xmlrpc::{Fault, Struct, Value};

fn context(registry: &Arc<Registry>, method: &str) -> Context {
    Context::new(method, None, Default::default(), 1, Arc::clone(registry))
}

fn call(registry: &Arc<Registry>, method: &str, positional: Vec<Value>) -> Result<Value, RpcError> {
    let found = registry.get(method).expect("registered");
    let params = Params {
        positional,
        named: None,
    };
    if found.is_blocking() {
        found.call_blocking(&context(registry, method), params)
    } else {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(found.call_async(Arc::new(context(registry, method)), params))
    }
}

/// The parameters of `plugin.add`, decoded with the same helper generated code uses.
static ADD_PARAMS: [ParamDef; 2] = [
    ParamDef {
        name: "a",
        rust_type: "i64",
        optional: false,
        xmlrpc_type: || "int",
    },
    ParamDef {
        name: "b",
        rust_type: "Option<i64>",
        optional: true,
        xmlrpc_type: || "int",
    },
];

fn add(_ctx: &Context, params: Params) -> Result<Value, RpcError> {
    let mut args = Args::new(params, &ADD_PARAMS)?;
    let a: i64 = args.take(0)?;
    let b: Option<i64> = args.take(1)?;
    Ok(Value::from(a + b.unwrap_or(1)))
}

fn plugin_registry() -> Arc<Registry> {
    let registry = Registry::builder()
        .method(
            Method::blocking("plugin.add", add)
                .with_doc("Adds b (default 1) to a.")
                .with_param("a", "int")
                .with_optional_param("b", "int")
                .with_returns("int"),
        )
        .method(
            Method::asynchronous("plugin.later", |ctx: Arc<Context>, _params| async move {
                Ok(Value::from(ctx.method()))
            })
            .with_perm("admin")
            .with_returns("string"),
        )
        .blocking("plugin.fail", |_ctx, _params| {
            Err(RpcError::Fault(Fault::new(1004, "not allowed")))
        })
        .build()
        .expect("no duplicates");
    Arc::new(registry)
}

#[test]
fn a_registry_without_declared_methods_has_the_built_ins() {
    let registry = Arc::new(Registry::from_inventory().expect("no duplicates"));
    let names: Vec<&str> = registry.names().collect();
    assert_eq!(
        names,
        [
            "_listapi",
            "multiCall",
            "system.listMethods",
            "system.methodHelp",
            "system.methodSignature",
            "system.multicall",
        ]
    );
    // koji's name for `system.multicall`, which the engine answers, is described as it.
    let help = call(&registry, "system.methodHelp", vec!["multiCall".into()]);
    assert!(
        matches!(&help, Ok(Value::String(h)) if h.starts_with("multiCall(calls)")),
        "{help:?}"
    );
    assert!(Registry::default().is_empty());
}

#[test]
fn run_time_methods_are_called_like_declared_ones() {
    let registry = plugin_registry();
    assert_eq!(call(&registry, "plugin.add", vec![2.into()]), Ok(3.into()));
    assert_eq!(
        call(&registry, "plugin.add", vec![2.into(), 5.into()]),
        Ok(7.into())
    );
    assert_eq!(
        call(&registry, "plugin.add", vec!["2".into()]),
        Err(RpcError::InvalidParams(
            r#"params[0]: expected int, found string "2" (parameter `a`)"#.into()
        ))
    );
    assert_eq!(
        call(&registry, "plugin.later", vec![]),
        Ok("plugin.later".into())
    );
    assert_eq!(
        call(&registry, "plugin.fail", vec![]),
        Err(RpcError::Fault(Fault::new(1004, "not allowed")))
    );
}

#[test]
fn run_time_methods_are_described() {
    let registry = plugin_registry();
    let add = registry.get("plugin.add").expect("registered");
    assert_eq!(
        add.signatures(),
        [vec!["int", "int"], vec!["int", "int", "int"]]
    );
    assert_eq!(add.argdesc(), "(a, b=None)");
    assert!(add.is_blocking());
    let later = registry.get("plugin.later").expect("registered");
    assert_eq!(later.perm(), Some("admin"));
    assert!(!later.is_blocking());
    assert_eq!(
        call(&registry, "system.methodHelp", vec!["plugin.add".into()]),
        Ok("plugin.add(a, b=None)\ndescription: Adds b (default 1) to a.".into())
    );
    assert_eq!(
        call(&registry, "system.methodHelp", vec!["plugin.fail".into()]),
        Ok("plugin.fail()".into())
    );
    let signature = call(
        &registry,
        "system.methodSignature",
        vec!["plugin.fail".into()],
    );
    assert_eq!(
        signature,
        Ok(Value::Array(vec![Value::Array(vec!["any".into()])]))
    );
}

#[test]
fn listapi_follows_koji() {
    let registry = plugin_registry();
    let Ok(Value::Array(entries)) = call(&registry, "_listapi", vec![]) else {
        panic!("an array");
    };
    let mut expected = Struct::new();
    expected.insert("name", "plugin.add");
    expected.insert("doc", "Adds b (default 1) to a.");
    expected.insert("argdesc", "(a, b=None)");
    expected.insert(
        "args",
        Value::Array(vec!["a".into(), Value::Array(vec!["b".into(), Value::Nil])]),
    );
    assert!(entries.contains(&Value::Struct(expected)), "{entries:?}");
    // An entry per name, aliases (koji's `multiCall`) included.
    assert_eq!(entries.len(), registry.names().count());
}

#[test]
fn list_methods_takes_no_parameters() {
    let registry = plugin_registry();
    assert_eq!(
        call(&registry, "system.listMethods", vec![1.into()]),
        Err(RpcError::InvalidParams(
            "expected at most 0 parameters (none), got 1".into()
        ))
    );
}

#[test]
fn a_name_registered_twice_is_refused_naming_both_places() {
    let first = line!() + 2;
    let result = Registry::builder()
        .blocking("plugin.dup", |_ctx, _params| Ok(Value::Nil))
        .blocking("plugin.dup", |_ctx, _params| Ok(Value::Nil))
        .build();
    let error = result.expect_err("duplicate");
    assert_eq!(
        error.to_string(),
        format!(
            "method `plugin.dup` is defined 2 times: at {file}:{first} and at {file}:{second}",
            file = file!(),
            second = first + 1
        )
    );
}

#[test]
fn a_built_in_name_cannot_be_taken() {
    let line = line!() + 2;
    let error = Registry::builder()
        .blocking("system.listMethods", |_ctx, _params| Ok(Value::Nil))
        .build()
        .expect_err("taken by the built-in");
    let [duplicate] = error.duplicates() else {
        panic!("one duplicate: {error}");
    };
    let places: Vec<String> = duplicate.origins.iter().map(ToString::to_string).collect();
    assert_eq!(places.len(), 2);
    assert!(
        places.iter().any(|p| p.contains("introspection.rs:")),
        "{places:?}"
    );
    assert!(
        places.contains(&format!("{}:{line}", file!())),
        "{places:?}"
    );
}

#[test]
fn every_duplicate_is_reported_at_once() {
    let error = Registry::builder()
        .blocking("b", |_ctx, _params| Ok(Value::Nil))
        .blocking("a", |_ctx, _params| Ok(Value::Nil))
        .blocking("b", |_ctx, _params| Ok(Value::Nil))
        .blocking("a", |_ctx, _params| Ok(Value::Nil))
        .blocking("a", |_ctx, _params| Ok(Value::Nil))
        .build()
        .expect_err("duplicates");
    let summary: Vec<(&str, usize)> = error
        .duplicates()
        .iter()
        .map(|d| (d.name.as_str(), d.origins.len()))
        .collect();
    assert_eq!(summary, [("a", 3), ("b", 2)]);
}

#[test]
fn an_alias_is_found_and_listed_but_the_method_counted_once() {
    let registry = Registry::builder()
        .method(
            Method::blocking("plugin.new", add)
                .with_alias("plugin.old")
                .with_alias("old"),
        )
        .build()
        .expect("no duplicates");
    let by_alias = registry.get("plugin.old").expect("found by its alias");
    assert_eq!(by_alias.name(), "plugin.new");
    assert!(Arc::ptr_eq(by_alias, registry.get("old").expect("found")));
    assert_eq!(
        by_alias.aliases().collect::<Vec<_>>(),
        ["plugin.old", "old"]
    );
    let builtins = Registry::builder().build().expect("built-ins").len();
    assert_eq!(registry.len(), builtins + 1);
    assert_eq!(registry.methods().count(), builtins + 1);
    let names: Vec<&str> = registry
        .names()
        .filter(|n| !n.contains("system.") && !n.starts_with('_') && *n != "multiCall")
        .collect();
    assert_eq!(names, ["old", "plugin.new", "plugin.old"]);
}

#[test]
fn an_alias_taken_by_another_method_is_refused_naming_both_places() {
    let first = line!() + 2;
    let error = Registry::builder()
        .method(Method::blocking("getBuild", add).with_alias("get_build"))
        .method(Method::blocking("get_build", add))
        .method(Method::blocking("other", add).with_alias("getBuild"))
        .build()
        .expect_err("taken twice");
    let summary: Vec<(&str, Vec<String>)> = error
        .duplicates()
        .iter()
        .map(|d| {
            (
                d.name.as_str(),
                d.origins.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    let at = |n: u32| format!("{}:{}", file!(), first + n);
    assert_eq!(
        summary,
        [
            ("getBuild", vec![at(0), at(2)]),
            ("get_build", vec![at(0), at(1)]),
        ]
    );
}

#[test]
fn an_async_method_refuses_a_blocking_call() {
    let registry = plugin_registry();
    let later = registry.get("plugin.later").expect("registered");
    let result = later.call_blocking(&context(&registry, "plugin.later"), Params::default());
    assert_eq!(
        result,
        Err(RpcError::Fault(Fault::new(
            1,
            "method `plugin.later` is async and cannot run as a blocking call"
        )))
    );
}
