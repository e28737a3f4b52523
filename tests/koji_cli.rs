//! The real `koji` CLI against the echo example: `call` with positional and keyword
//! arguments, a fault mapped to koji's exception, `list-api` (koji's `_listapi`), and all of
//! it again with every answer gzipped.

mod support;

use std::path::PathBuf;

use support::{koji, serve, Served};

/// A koji config naming `url`, so the CLI needs no system profile.
fn koji_config(server: &Served, tag: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("hub-koji-test-{}-{tag}.conf", std::process::id()));
    std::fs::write(
        &path,
        format!("[koji]\nserver = {}\nauthtype = noauth\n", server.url()),
    )
    .expect("temp config written");
    path
}

#[test]
fn koji_cli_calls_echo() {
    let server = serve("echo", &[]);
    let conf = koji_config(&server, "calls");
    let conf = conf.to_str().expect("a UTF-8 temp path");
    let url = server.url();
    let k = |args: &[&str]| {
        let mut all = vec!["-c", conf];
        all.extend_from_slice(args);
        koji(&url, &all)
    };

    let ran = k(&["call", "echo", "5"]);
    assert_eq!(ran.ok().trim(), "5", "{ran}");

    let ran = k(&["call", "--python", "echo", "['a', {'b': None}, 2.5]"]);
    assert_eq!(ran.ok().trim(), "['a', {'b': None}, 2.5]", "{ran}");

    let ran = k(&["call", "getBuild", "7"]);
    let out = ran.ok();
    for member in [
        "'id': 7",
        "'name': 'bash'",
        "'version': '5.2.15'",
        "'release': '3.fc40'",
        "'state': 1",
        "'owner_name': 'builder'",
        "'volume_id_set': True",
        "'score': 0.5",
    ] {
        assert!(out.contains(member), "no {member} in {ran}");
    }

    let ran = k(&["call", "--json-output", "getBuild", "7"]);
    let json: serde_json::Value = serde_json::from_str(ran.ok()).expect("JSON output");
    assert_eq!(json["owner_name"], "builder", "{ran}");
    assert_eq!(json["volume_id_set"], true, "{ran}");

    // keyword arguments travel as koji's __starstar struct and bind by name;
    // koji maps fault 1005 to its BuildError
    let ran = k(&["call", "fail", "code=1005", "message=kw args"]);
    assert_eq!(ran.status, Some(1), "{ran}");
    assert!(ran.stderr.contains("BuildError: kw args"), "{ran}");
    let ran = k(&["call", "fail", "message=x", "code=1000"]);
    assert!(ran.stderr.contains("GenericError: x"), "{ran}");

    let ran = k(&["call", "sleep", "ms=3"]);
    assert_eq!(ran.ok().trim(), "3", "{ran}");

    // a panic is a fault like any other, and the server keeps serving
    let ran = k(&["call", "crash"]);
    assert_eq!(ran.status, Some(1), "{ran}");
    assert!(ran.stderr.contains("-32603"), "{ran}");
    let ran = k(&["call", "echo", "alive"]);
    assert_eq!(ran.ok().trim(), "'alive'", "{ran}");
    let _ = std::fs::remove_file(conf);
}

#[test]
fn koji_cli_lists_the_api() {
    let server = serve("echo", &["--handlers", "blocking"]);
    let conf = koji_config(&server, "list");
    let ran = koji(
        &server.url(),
        &["-c", conf.to_str().expect("a UTF-8 temp path"), "list-api"],
    );
    let _ = std::fs::remove_file(&conf);
    let out = ran.ok();
    for line in [
        "echo(value)",
        "getBuild(id)",
        "fail(code, message)",
        "sleep(ms)",
        "crash()",
        "getAPIVersion()",
        "system.methodHelp(method_name)",
        "  description: Returns its one argument unchanged, whatever its XML-RPC type.",
        "  description: Answers the fault `code` with `message`.",
    ] {
        assert!(out.lines().any(|l| l == line), "no line `{line}` in {ran}");
    }
}

/// `getBuild(7)` posted with `requests` (koji's transport), which must have come gzipped.
const REQUESTS_GETBUILD: &str = r#"
import sys, requests, xmlrpc.client as x
r = requests.post(sys.argv[1], data=x.dumps((7,), "getBuild"), headers={"Content-Type": "text/xml"})
assert r.headers.get("Content-Encoding") == "gzip", r.headers
(build,), _ = x.loads(r.content)
print(build["name"])
"#;

/// koji's client (`requests`) asks for gzip: with every answer gzipped, its calls and
/// `list-api` read them as before, and `requests` is seen getting them gzipped.
#[test]
fn koji_cli_reads_gzipped_answers() {
    let hub_conf = std::env::temp_dir().join(format!("hub-koji-gzip-{}.toml", std::process::id()));
    std::fs::write(&hub_conf, "gzip_answers_over = 1\n").expect("temp config written");
    let server = serve(
        "echo",
        &["--config", hub_conf.to_str().expect("a UTF-8 temp path")],
    );
    let conf = koji_config(&server, "gzip");
    let conf = conf.to_str().expect("a UTF-8 temp path");
    let url = server.url();
    let ran = koji(
        &url,
        &["-c", conf, "call", "--json-output", "getBuild", "7"],
    );
    let json: serde_json::Value = serde_json::from_str(ran.ok()).expect("JSON output");
    assert_eq!(json["release"], "3.fc40", "{ran}");
    let ran = koji(&url, &["-c", conf, "list-api"]);
    assert!(ran.ok().lines().any(|l| l == "getBuild(id)"), "{ran}");
    let ran = koji(
        &url,
        &["-c", conf, "call", "fail", "code=1005", "message=zipped"],
    );
    assert!(ran.stderr.contains("BuildError: zipped"), "{ran}");
    // What koji's transport was sent: requests' own Accept-Encoding got a gzipped answer.
    let ran = support::python(REQUESTS_GETBUILD, &[&url]);
    assert_eq!(ran.ok().trim(), "bash", "{ran}");
    let _ = (std::fs::remove_file(conf), std::fs::remove_file(&hub_conf));
}
