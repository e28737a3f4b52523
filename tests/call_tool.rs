//! The `call` example, run as a process against the echo example: typed and inferred
//! arguments, keyword arguments, `--json`, `--list`, `--help`, `--multicall`, the exit
//! status and stderr of faults and errors, and HTTPS with `--ca` and `--cert`.

mod support;

use support::{example, run, serve, ClientCerts, Pki, Ran};

fn call(url: &str, args: &[&str]) -> Ran {
    call_with_stdin(url, args, "")
}

fn call_with_stdin(url: &str, args: &[&str], stdin: &str) -> Ran {
    let mut all = vec!["--url", url, "--timeout", "30"];
    all.extend_from_slice(args);
    run(example("call"), &all, stdin)
}

#[test]
fn typed_and_inferred_arguments() {
    let server = serve("echo", &[]);
    let url = server.url();
    let echo = |arg: &str| {
        let ran = call(&url, &["--json", "echo", arg]);
        serde_json::from_str::<serde_json::Value>(ran.ok()).unwrap_or_else(|e| panic!("{e}: {ran}"))
    };
    // (ARG, what --json prints, what the pretty printer prints)
    let cases: &[(&str, serde_json::Value, &str)] = &[
        ("5", 5.into(), "5"),
        ("-12", (-12).into(), "-12"),
        ("i:5", 5.into(), "5"),
        (
            "9007199254740993",
            9007199254740993_i64.into(),
            "9007199254740993",
        ),
        ("s:5", "5".into(), "\"5\""),
        ("1.5", 1.5.into(), "1.5"),
        ("d:2", 2.0.into(), "2.0"),
        ("-1e3", (-1000.0).into(), "-1000.0"),
        ("true", true.into(), "true"),
        ("b:0", false.into(), "false"),
        ("nil", serde_json::Value::Null, "nil"),
        ("hello", "hello".into(), "\"hello\""),
        ("inf", "inf".into(), "\"inf\""),
        ("s:a=b", "a=b".into(), "\"a=b\""),
        ("<&>\"'", "<&>\"'".into(), "\"<&>\\\"'\""),
        (
            "dt:1998-07-17T14:08:55",
            "19980717T14:08:55".into(),
            "dateTime(19980717T14:08:55)",
        ),
        ("b64:aGk=", "aGk=".into(), "base64(aGk=)"),
        ("[]", serde_json::json!([]), "[]"),
        ("{}", serde_json::json!({}), "{}"),
    ];
    for (arg, json, pretty) in cases {
        assert_eq!(&echo(arg), json, "echo {arg} --json");
        let ran = call(&url, &["echo", arg]);
        assert_eq!(ran.ok().trim_end(), *pretty, "echo {arg}: {ran}");
    }
    // JSON structs and arrays, nested; member order kept
    let doc = r#"{"z": [1, 2.5, null, true, "s"], "a": {"deep": []}, "é": -1}"#;
    let ran = call(&url, &["--json", "echo", doc]);
    let back: serde_json::Value = serde_json::from_str(ran.ok()).expect("JSON");
    assert_eq!(
        back,
        serde_json::from_str::<serde_json::Value>(doc).expect("JSON")
    );
    assert!(
        ran.stdout.find("\"z\"") < ran.stdout.find("\"a\""),
        "order: {ran}"
    );
    let ran = call(&url, &["echo", doc]);
    assert_eq!(
        ran.ok(),
        "{\n  z: [\n    1,\n    2.5,\n    nil,\n    true,\n    \"s\",\n  ]\n  a: {\n    deep: []\n  }\n  é: -1\n}\n",
        "{ran}"
    );
    // getBuild, readably, in the server's member order
    let ran = call(&url, &["getBuild", "7"]);
    assert_eq!(
        ran.ok(),
        "{\n  id: 7\n  name: \"bash\"\n  version: \"5.2.15\"\n  release: \"3.fc40\"\n  state: 1\n  \
         owner_name: \"builder\"\n  volume_id_set: true\n  score: 0.5\n}\n",
        "{ran}"
    );
}

#[test]
fn keyword_arguments_faults_and_errors() {
    let server = serve("echo", &["--handlers", "blocking"]);
    let url = server.url();
    // keyword arguments bind by name, in any order
    let ran = call(&url, &["sleep", "ms=2"]);
    assert_eq!(ran.ok().trim(), "2", "{ran}");
    let ran = call(&url, &["fail", "message=by name", "code=i:1005"]);
    ran.expect_status(1);
    assert_eq!(ran.stderr.trim(), "fault 1005: by name", "{ran}");
    assert_eq!(ran.stdout, "", "{ran}");
    let ran = call(&url, &["fail", "1005", "message=mixed"]);
    ran.expect_status(1);
    assert_eq!(ran.stderr.trim(), "fault 1005: mixed", "{ran}");
    // positional faults, wrong arguments, unknown methods, panics
    let ran = call(&url, &["fail", "42", "x"]);
    ran.expect_status(1);
    assert_eq!(ran.stderr.trim(), "fault 42: x", "{ran}");
    let ran = call(&url, &["getBuild", "s:7"]);
    ran.expect_status(1);
    assert!(ran.stderr.starts_with("fault -32602: "), "{ran}");
    let ran = call(&url, &["nope"]);
    ran.expect_status(1);
    assert!(ran.stderr.starts_with("fault -32601: "), "{ran}");
    let ran = call(&url, &["crash"]);
    ran.expect_status(1);
    assert!(ran.stderr.starts_with("fault -32603: "), "{ran}");
    // usage errors exit 2
    run(example("call"), &[], "").expect_status(2);
    call(&url, &["echo", "i:five"]).expect_status(2);
    call(&url, &["echo", "{not json"]).expect_status(2);
    call(&url, &["fail", "code=1", "positional"]).expect_status(2);
    run(example("call"), &["--bogus", "echo"], "").expect_status(2);
    // transport and HTTP errors exit 3, with the reason on stderr
    let ran = call(&format!("http://{}/nowhere", server.addr), &["echo", "1"]);
    ran.expect_status(3);
    assert!(ran.stderr.contains("HTTP status 404"), "{ran}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}/RPC2", closed.local_addr().expect("addr"));
    drop(closed);
    let ran = call(&dead, &["echo", "1"]);
    ran.expect_status(3);
    assert!(ran.stderr.contains("transport"), "{ran}");
    // --timeout: a 3 s sleep against a 0.3 s timeout
    let ran = run(
        example("call"),
        &["--url", &url, "--timeout", "0.3", "sleep", "3000"],
        "",
    );
    ran.expect_status(3);
    assert!(ran.stderr.contains("no response within 300ms"), "{ran}");
}

#[test]
fn list_help_and_multicall() {
    let server = serve("echo", &[]);
    let url = server.url();
    let ran = call(&url, &["--list"]);
    let names: Vec<&str> = ran.ok().lines().collect();
    for name in [
        "echo",
        "getBuild",
        "sleep",
        "fail",
        "crash",
        "system.listMethods",
    ] {
        assert!(names.contains(&name), "no {name} in {ran}");
    }
    let ran = call(&url, &["--json", "--list"]);
    let json: Vec<String> = serde_json::from_str(ran.ok()).expect("a JSON list");
    assert_eq!(json, names);

    let ran = call(&url, &["--help", "getBuild"]);
    assert_eq!(
        ran.ok(),
        "getBuild(id)\ndescription: Returns a fixed build struct carrying the given id.\n\
         signature: struct getBuild(int)\n",
        "{ran}"
    );
    let ran = call(&url, &["--help", "fail"]);
    assert!(
        ran.ok().contains("signature: nil fail(int, string)\n"),
        "{ran}"
    );
    let ran = call(&url, &["--help", "nope"]);
    ran.expect_status(1);

    // one call per line; quoting; comments; a fault in the middle does not stop the rest
    let batch = "\
# a comment, then a blank line

echo 'two words'
getBuild i:7
fail 1005 \"in a \\\"batch\\\"\"
echo '{\"k\": [1, null]}'
sleep ms=1
";
    let ran = call_with_stdin(&url, &["--multicall"], batch);
    ran.expect_status(1);
    assert_eq!(
        ran.stdout,
        "[0] \"two words\"\n[1] {\n  id: 7\n  name: \"bash\"\n  version: \"5.2.15\"\n  \
         release: \"3.fc40\"\n  state: 1\n  owner_name: \"builder\"\n  volume_id_set: true\n  \
         score: 0.5\n}\n[3] {\n  k: [\n    1,\n    nil,\n  ]\n}\n[4] 1\n",
        "{ran}"
    );
    assert_eq!(ran.stderr, "[2] fault 1005: in a \"batch\"\n", "{ran}");

    let ran = call_with_stdin(&url, &["--json", "--multicall"], "echo 1\nfail 7 x\n");
    ran.expect_status(1);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!([1, {"faultCode": 7, "faultString": "x"}]),
        "{ran}"
    );
    let ran = call_with_stdin(&url, &["--multicall"], "echo a\necho b\n");
    assert_eq!(ran.ok(), "[0] \"a\"\n[1] \"b\"\n");
    call_with_stdin(&url, &["--multicall"], "# nothing\n").expect_status(2);
    call_with_stdin(&url, &["--multicall"], "echo 'open\n").expect_status(2);
}

/// Over HTTPS to an echo that requires client certificates: `--ca` and `--cert` call it; no
/// `--ca` (the system's CAs do not know the test CA) or no `--cert` is a transport error
/// (exit 3); a file that cannot be used is a usage error (exit 2) naming it.
#[test]
fn https_with_a_ca_file_and_a_client_certificate() {
    let pki = Pki::new("call-https");
    let server = serve(
        "echo",
        &["--config", &pki.server_config(ClientCerts::Required, "")],
    );
    let url = server.url();
    assert!(url.starts_with("https://"), "{url}");
    let (ca, alice) = (pki.ca(), pki.client("alice"));
    let ran = call(&url, &["--ca", &ca, "--cert", &alice, "echo", "s:over tls"]);
    assert_eq!(ran.ok().trim(), "\"over tls\"", "{ran}");

    let ran = call(&url, &["--cert", &alice, "echo", "1"]);
    ran.expect_status(3);
    assert!(ran.stderr.contains("certificate"), "{ran}");
    let ran = call(&url, &["--ca", &ca, "echo", "1"]);
    ran.expect_status(3);
    assert!(ran.stderr.to_lowercase().contains("certificate"), "{ran}");

    let missing = pki.dir.path("missing.pem");
    let ran = call(&url, &["--ca", &missing, "echo", "1"]);
    ran.expect_status(2);
    assert!(ran.stderr.contains("missing.pem"), "{ran}");
}

#[test]
fn retries_wait_for_a_hub_that_is_starting() {
    // A port nothing listens on yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("its address");
    let url = format!("http://{addr}/RPC2");
    let ran = call(&url, &["echo", "5"]);
    assert_eq!(
        ran.status,
        Some(3),
        "no retries: the connection error at once: {ran}"
    );
    let waiting = {
        let url = url.clone();
        std::thread::spawn(move || call(&url, &["--retries", "30", "echo", "5"]))
    };
    std::thread::sleep(std::time::Duration::from_millis(700));
    let listen = addr.to_string();
    let _server = serve("echo", &["--listen", &listen]);
    let ran = waiting.join().expect("the waiting call");
    assert_eq!(ran.ok().trim(), "5", "{ran}");
    let ran = call(&url, &["--retries", "many", "echo", "5"]);
    assert_eq!(ran.status, Some(2), "{ran}");
}
