//! The built-in methods describe the declared ones truthfully.

use hub::{RpcError, Value};

use crate::{call_positional, invalid_params, members, registry};

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|item| Value::from(*item)).collect())
}

#[test]
fn list_methods_is_sorted_and_complete() {
    let registry = registry();
    let names: Vec<&str> = registry.names().collect();
    assert_eq!(
        call_positional("system.listMethods", vec![]),
        Ok(strings(&names))
    );
}

#[test]
fn method_help_is_koji_style() {
    assert_eq!(
        call_positional("system.methodHelp", vec!["getBuild".into()]),
        Ok(Value::from(
            "getBuild(build_id, strict=None)\ndescription: Returns the build with this id.\n\n\
             With `strict`, an unknown build is a fault instead of nil."
        ))
    );
    assert_eq!(
        call_positional("system.methodHelp", vec!["hello".into()]),
        Ok(Value::from("hello()\ndescription: Answers a greeting."))
    );
}

#[test]
fn method_signature_lists_one_signature_per_arity() {
    let signature = |name: &str| call_positional("system.methodSignature", vec![name.into()]);
    let arrays = |items: &[&[&str]]| Value::Array(items.iter().map(|s| strings(s)).collect());
    assert_eq!(
        signature("getBuild"),
        Ok(arrays(&[&["struct", "int"], &["struct", "int", "boolean"]]))
    );
    assert_eq!(
        signature("listBuilds"),
        Ok(arrays(&[
            &["array", "string"],
            &["array", "string", "int"],
            &["array", "string", "int", "boolean"],
        ]))
    );
    assert_eq!(signature("importBuild"), Ok(arrays(&[&["int", "struct"]])));
    assert_eq!(signature("deleteBuild"), Ok(arrays(&[&["nil", "int"]])));
    assert_eq!(signature("getUser"), Ok(arrays(&[&["struct", "string"]])));
    assert_eq!(
        signature("hasPerm"),
        Ok(arrays(&[&["boolean", "string", "string"]]))
    );
    assert_eq!(signature("sum"), Ok(arrays(&[&["double", "array"]])));
    assert_eq!(signature("hello"), Ok(arrays(&[&["string"]])));
    assert_eq!(signature("echo"), Ok(arrays(&[&["any", "any"]])));
    assert_eq!(
        signature("system.methodSignature"),
        Ok(arrays(&[&["array", "string"]]))
    );
}

#[test]
fn asking_about_an_unknown_method_is_invalid_params() {
    assert_eq!(
        call_positional("system.methodSignature", vec!["nope".into()]),
        Err(RpcError::InvalidParams("no method named `nope`".into()))
    );
    let message = invalid_params(call_positional("system.methodHelp", vec![]));
    assert_eq!(
        message,
        "missing parameter `method_name` (params[0], string)"
    );
}

#[test]
fn listapi_describes_every_method_koji_style() {
    let Ok(Value::Array(entries)) = call_positional("_listapi", vec![]) else {
        panic!("_listapi answers an array");
    };
    // An entry per name, aliases (koji's `multiCall`) included.
    assert_eq!(entries.len(), registry().names().count());
    let entry = |name: &str| {
        entries
            .iter()
            .find(|entry| entry.as_struct().and_then(|s| s.get("name")) == Some(&Value::from(name)))
            .cloned()
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    let optional = |name: &str| Value::Array(vec![name.into(), Value::Nil]);
    assert_eq!(
        entry("listBuilds"),
        Value::Struct(members([
            ("name", "listBuilds".into()),
            ("doc", "Lists the ids of builds of a package.".into()),
            ("argdesc", "(package, limit=None, reverse=None)".into()),
            (
                "args",
                Value::Array(vec![
                    "package".into(),
                    optional("limit"),
                    optional("reverse")
                ])
            ),
        ]))
    );
    assert_eq!(
        entry("whatAmI"),
        Value::Struct(members([
            ("name", "whatAmI".into()),
            (
                "doc",
                "The method name the context carries, to show the context arrives.".into()
            ),
            ("argdesc", "()".into()),
            ("args", Value::Array(vec![])),
        ]))
    );
}
