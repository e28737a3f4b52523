//! The echo example driven by xmlrpc-c's `xmlrpc` command-line client (xmlrpc-c 1.33 over
//! libcurl; Debian's `libxmlrpc-core-c3-dev`): every scalar type it can send comes back as
//! itself, answers holding structs and arrays are read member by member, and faults keep their
//! codes — with `echo`/`getBuild` as async handlers and as blocking ones.
//!
//! The client prints what it parsed (`Integer: 7`, `String: 'x'`); these tests read that.

mod support;

use support::{serve, xmlrpc_c, Served};

/// `echo(arg)` through xmlrpc-c; its printout of the answer, the `Result:` header cut off.
fn echo(server: &Served, arg: &str) -> String {
    let ran = xmlrpc_c(&server.url(), "echo", &[arg]);
    let out = ran.ok();
    out.split_once("Result:")
        .unwrap_or_else(|| panic!("no result in {ran}"))
        .1
        .trim()
        .to_owned()
}

fn scalars_round_trip(server: &Served) {
    for (arg, printed) in [
        ("i/7", "Integer: 7"),
        ("i/-2147483648", "Integer: -2147483648"),
        // xmlrpc-c sends `<i8>`; the hub answers `<int>` when it fits 32 bits (koji's rule).
        ("I/2147483647", "Integer: 2147483647"),
        ("I/9000000000", "64-bit integer: 9000000000"),
        (
            "I/-9223372036854775808",
            "64-bit integer: -9223372036854775808",
        ),
        ("b/t", "Boolean: TRUE"),
        ("b/f", "Boolean: FALSE"),
        ("d/2.5", "Floating Point: 2.500000"),
        ("d/-0.125", "Floating Point: -0.125000"),
        ("n/", "Nil"),
        ("h/00ff7f", "Bit string: 00ff7f"),
        ("s/", "String: ''"),
        ("s/plain", "String: 'plain'"),
        // The client prints bytes beyond ASCII and control characters escaped.
        (
            "s/héllo <&> ' \" ]]>",
            r#"String: 'h\xc3\xa9llo <&> ' " ]]>'"#,
        ),
        ("s/tab\tend", r"String: 'tab\tend'"),
    ] {
        assert_eq!(echo(server, arg), printed, "echo {arg}");
    }
}

#[test]
fn xmlrpc_c_round_trips_every_scalar() {
    for handlers in ["async", "blocking"] {
        let server = serve("echo", &["--handlers", handlers]);
        scalars_round_trip(&server);
    }
}

#[test]
fn xmlrpc_c_sends_and_reads_a_large_string() {
    // Larger than one read of the socket and than curl's first write; under the kernel's
    // 128 KiB limit for one command-line argument.
    let big = "x".repeat(100_000);
    let server = serve("echo", &[]);
    assert_eq!(
        echo(&server, &format!("s/{big}")),
        format!("String: '{big}'")
    );
}

#[test]
fn xmlrpc_c_reads_structs_and_arrays() {
    let server = serve("echo", &["--handlers", "blocking"]);
    let url = server.url();

    let ran = xmlrpc_c(&url, "getBuild", &["i/7"]);
    let out = ran.ok();
    assert!(out.contains("Struct of 8 members:"), "{ran}");
    for (key, value) in [
        ("id", "Integer: 7"),
        ("name", "String: 'bash'"),
        ("version", "String: '5.2.15'"),
        ("release", "String: '3.fc40'"),
        ("state", "Integer: 1"),
        ("owner_name", "String: 'builder'"),
        ("volume_id_set", "Boolean: TRUE"),
        ("score", "Floating Point: 0.500000"),
    ] {
        let member = format!("Key:   String: '{key}'\n  Value: {value}");
        assert!(out.contains(&member), "no {key} = {value} in {ran}");
    }

    let ran = xmlrpc_c(&url, "system.listMethods", &[]);
    for method in ["'echo'", "'getBuild'", "'system.multicall'"] {
        assert!(ran.ok().contains(method), "no {method} in {ran}");
    }

    // Nested arrays: [[return type, param type]].
    let ran = xmlrpc_c(&url, "system.methodSignature", &["s/getBuild"]);
    let out: String = ran.ok().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        out.contains(
            "Array of 1 items: Index 0 Array of 2 items: \
             Index 0 String: 'struct' Index 1 String: 'int'"
        ),
        "{ran}"
    );
}

#[test]
fn xmlrpc_c_reports_faults_with_their_codes() {
    let server = serve("echo", &[]);
    let url = server.url();
    for (method, args, message, code) in [
        ("nosuch", &[][..], "Invalid method: nosuch", "-32601"),
        (
            "echo",
            &["i/1", "i/2"][..],
            "echo takes exactly one argument: value",
            "-32602",
        ),
        (
            "fail",
            &["i/1005", "s/no such build"][..],
            "no such build",
            "1005",
        ),
        ("crash", &[][..], "internal error in crash", "-32603"),
    ] {
        let ran = xmlrpc_c(&url, method, args);
        assert_ne!(ran.status, Some(0), "a fault is a failed call: {ran}");
        let said = format!("{}{}", ran.stdout, ran.stderr);
        assert!(said.contains("RPC failed at server"), "{ran}");
        assert!(said.contains(message), "no {message:?} in {ran}");
        assert!(
            said.contains(&format!("(XML-RPC fault code {code})")),
            "no fault code {code} in {ran}"
        );
    }
}
