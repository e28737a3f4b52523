//! Doc attributes whose value is an expression (`concat!`, `include_str!`) are part of the
//! help text, joined with the `///` lines by newlines as rustdoc joins them.
#![allow(non_snake_case)]
use hub::rpc_method;

/// Gets a build's id.
#[doc = concat!("Accepts ", "nothing.")]
///
/// Never fails.
#[rpc_method]
fn getBuildId() -> i32 {
    1
}

#[doc = include_str!("doc_expressions.md")]
#[rpc_method]
fn listTags() -> Vec<String> {
    Vec::new()
}

/// Only lines.
#[rpc_method]
fn plain() {}

fn main() {
    let registry = hub::Registry::from_inventory().expect("no duplicates");
    let doc = |name: &str| registry.get(name).map(|m| m.doc().to_owned());
    assert_eq!(
        doc("getBuildId").as_deref(),
        Some("Gets a build's id.\nAccepts nothing.\n\nNever fails.")
    );
    // The file's text as it is, final newline included.
    assert_eq!(
        doc("listTags").as_deref(),
        Some("Lists the tags.\n\nTakes no arguments.\n")
    );
    assert_eq!(doc("plain").as_deref(), Some("Only lines."));
}
