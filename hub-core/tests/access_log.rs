//! The access log over real sockets: one line per HTTP request with what was asked and how it
//! went, nothing the client sent beyond the request line, and none without `access_log`.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod log_capture;
mod support;

use hub_core::{Config, Server};
use log_capture::{logs_until, Capture};
use support::{call_xml, config, registry, Conn};

fn start(access_log: bool) -> hub_core::RunningServer {
    Server::builder()
        .config(Config {
            access_log,
            ..config()
        })
        .registry(registry())
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// The access line logged for the request just answered.
fn access_line(logs: &Capture) -> String {
    let text = logs_until(logs, "hub::access");
    let mut lines = text.lines().filter(|l| l.contains("hub::access"));
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("no access line in {text}"));
    assert!(lines.next().is_none(), "one line per request: {text}");
    line.to_owned()
}

fn assert_has(line: &str, fields: &[&str]) {
    for field in fields {
        assert!(line.contains(field), "{field} in {line}");
    }
}

#[test]
fn every_request_has_a_line_and_no_client_text_beyond_the_request_line() {
    let logs = Capture::install(tracing::Level::INFO);
    let server = start(true);
    let mut c = Conn::open(server.local_addr());

    let r = c.call("becho", &["<string>s3cr3t-argument</string>"]);
    assert_eq!(r.status, 200);
    let line = access_line(&logs);
    assert_has(
        &line,
        &[
            "peer=127.0.0.1:",
            "http_method=POST",
            "uri=/RPC2",
            "status=200",
            &format!("bytes={}", r.body.len()),
            "micros=",
            "call=\"becho\"",
            "fault=-",
        ],
    );
    assert!(!line.contains("s3cr3t"), "{line}");

    // A fault's code; a name the registry does not know is not written out.
    let r = c.call("no_such_method_SECRET_NAME", &[]);
    assert!(r.body.contains("-32601"), "{}", r.body);
    let line = access_line(&logs);
    assert_has(&line, &["status=200", "call=\"(unknown)\"", "fault=-32601"]);
    assert!(!line.contains("SECRET"), "{line}");
    let r = c.call("fail", &["<int>1005</int>"]);
    assert!(r.body.contains("1005"), "{}", r.body);
    assert_has(&access_line(&logs), &["call=\"fail\"", "fault=1005"]);

    // Not XML: the parse fault, and no method.
    let r = c.request("POST", "/RPC2", "not xml s3cr3t-body");
    assert!(r.body.contains("-32700"), "{}", r.body);
    let line = access_line(&logs);
    assert_has(&line, &["call=\"-\"", "fault=-32700"]);
    assert!(!line.contains("s3cr3t"), "{line}");

    // Other routes: their status, their URI with its query.
    assert_eq!(c.request("GET", "/RPC2", "").status, 405);
    assert_has(
        &access_line(&logs),
        &["http_method=GET", "uri=/RPC2", "status=405", "call=\"-\""],
    );
    assert_eq!(c.request("GET", "/nowhere?x=1", "").status, 404);
    assert_has(&access_line(&logs), &["uri=/nowhere?x=1", "status=404"]);

    // A multicall is one request: one line.
    let body = lifecycle_support::multicall_xml(&[
        ("becho", &["<int>1</int>"]),
        ("echo", &["<int>2</int>"]),
    ]);
    assert_eq!(lifecycle_support::post(&mut c, &body, &[]).status, 200);
    assert_has(
        &access_line(&logs),
        &["call=\"system.multicall\"", "fault=-"],
    );
    server.shutdown();

    // Without `access_log`, nothing.
    let quiet = start(false);
    let mut c = Conn::open(quiet.local_addr());
    let r = c.request("POST", "/RPC2", &call_xml("becho", &["<int>3</int>"]));
    assert_eq!(r.status, 200);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let text = logs.take();
    assert!(!text.contains("hub::access"), "{text}");
    quiet.shutdown();
}
