//! `name`, `aliases`, `perm`, `sensitive`, `timeout_ms` and `max_in_flight`, and doc comments
//! as help text.

use hub::rpc_method;

/// Gets a build.
///
/// Accepts an id.
#[rpc_method(name = "build.get", perm = "admin")]
fn get(build_id: i64) -> i64 {
    build_id
}

#[rpc_method(perm = "repo")]
fn regen_repo() {}

/// Lists the tags.
#[rpc_method(name = "listTags", aliases = ["list_tags", "tags.list"])]
fn list_tags() -> Vec<String> {
    Vec::new()
}

#[rpc_method(aliases = [])]
fn no_aliases() {}

/// Imports a whole build: may take long.
#[rpc_method(name = "importBuild", perm = "admin", timeout_ms = 600_000)]
fn import_build(path: String) -> bool {
    !path.is_empty()
}

#[rpc_method(timeout_ms = 0)]
fn watch_tasks() {}

/// A report over every build: at most two at once.
#[rpc_method(max_in_flight = 2, timeout_ms = 600_000)]
fn build_report() -> u64 {
    0
}

/// Logs in.
#[rpc_method(sensitive)]
fn login(user: String, password: String) -> bool {
    !user.is_empty() && !password.is_empty()
}

fn main() {
    let registry = hub::Registry::from_inventory().expect("no duplicates");
    let get = registry.get("build.get").expect("registered under its XML-RPC name");
    assert_eq!(get.perm(), Some("admin"));
    assert_eq!(get.doc(), "Gets a build.\n\nAccepts an id.");
    assert_eq!(get.argdesc(), "(build_id)");
    assert!(registry.get("get").is_none());

    let regen = registry.get("regen_repo").expect("registered under the function's name");
    assert_eq!(regen.perm(), Some("repo"));
    assert_eq!(regen.doc(), "");
    assert!(!regen.is_sensitive());

    assert_eq!(regen.timeout(), None, "the server's time budget");

    let tags = registry.get("tags.list").expect("registered under its alias");
    assert_eq!(tags.name(), "listTags");
    assert_eq!(tags.aliases().collect::<Vec<_>>(), ["list_tags", "tags.list"]);
    assert!(std::sync::Arc::ptr_eq(tags, registry.get("list_tags").expect("the other alias")));
    assert_eq!(registry.get("no_aliases").map(|m| m.aliases().count()), Some(0));

    let import = registry.get("importBuild").expect("registered");
    assert_eq!(import.timeout(), Some(std::time::Duration::from_secs(600)));
    let watch = registry.get("watch_tasks").expect("registered");
    assert_eq!(watch.timeout(), Some(std::time::Duration::ZERO), "no time budget");

    let report = registry.get("build_report").expect("registered");
    assert_eq!(report.max_in_flight(), Some(2));
    assert_eq!(watch.max_in_flight(), None, "no limit");

    let login = registry.get("login").expect("registered");
    assert!(login.is_sensitive(), "`sensitive` keeps its arguments out of the logs");
}
