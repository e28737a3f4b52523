//! Link-time registration: what the registry knows about each declared method.

use crate::registry;

#[test]
fn every_declared_method_is_registered_with_the_built_ins() {
    let registry = registry();
    let names: Vec<&str> = registry.names().collect();
    assert_eq!(
        names,
        [
            "_listapi",
            "deleteBuild",
            "echo",
            "evenOnly",
            "getAPIVersion",
            "getBuild",
            "getTaskResult",
            "getUser",
            "hasPerm",
            "hello",
            "importBuild",
            "listBuilds",
            "multiCall",
            "sum",
            "system.listMethods",
            "system.methodHelp",
            "system.methodSignature",
            "system.multicall",
            "whatAmI",
        ]
    );
}

#[test]
fn the_permission_is_recorded() {
    let registry = registry();
    let perm = |name: &str| registry.get(name).and_then(|m| m.perm().map(str::to_owned));
    assert_eq!(perm("importBuild").as_deref(), Some("admin"));
    assert_eq!(perm("deleteBuild").as_deref(), Some("admin"));
    assert_eq!(perm("getBuild"), None);
}

#[test]
fn async_functions_become_async_methods() {
    let registry = registry();
    let blocking = |name: &str| registry.get(name).map(|m| m.is_blocking());
    assert_eq!(blocking("getBuild"), Some(true));
    assert_eq!(blocking("getUser"), Some(false));
    assert_eq!(blocking("sum"), Some(false));
    assert_eq!(blocking("system.listMethods"), Some(true));
}

#[test]
fn the_origin_is_the_declaration() {
    let registry = registry();
    let origin = registry
        .get("getBuild")
        .map(|m| m.origin())
        .expect("registered");
    let line = include_str!("api/builds.rs")
        .lines()
        .position(|line| line.contains("pub fn get_build"))
        .expect("declared there")
        + 1;
    assert!(origin.file.ends_with("api/builds.rs"), "{origin}");
    assert_eq!(origin.line as usize, line);
}

#[test]
fn the_function_stays_an_ordinary_function() {
    use crate::api::builds::{get_build, sample_build};
    assert_eq!(get_build(1, None).ok().flatten(), Some(sample_build()));
    assert_eq!(crate::api::misc::hello(), "Hello World");
}

#[test]
fn parameters_are_described_with_their_rust_and_xmlrpc_types() {
    let registry = registry();
    let list_builds = registry.get("listBuilds").expect("registered");
    let described: Vec<(&str, &str, &str, bool)> = list_builds
        .params()
        .iter()
        .map(|p| (&*p.name, &*p.rust_type, &*p.xmlrpc_type, p.optional))
        .collect();
    assert_eq!(
        described,
        [
            ("package", "String", "string", false),
            ("limit", "Option<i32>", "int", true),
            ("reverse", "Option<bool>", "boolean", true),
        ]
    );
    let import = registry.get("importBuild").expect("registered");
    assert_eq!(import.params()[0].rust_type, "BuildInfo");
    assert_eq!(import.params()[0].xmlrpc_type, "struct");
}
