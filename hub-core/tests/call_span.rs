//! A handler's own log lines carry its call's span, `call{method id user}`, once the server's
//! spans are on (they are at DEBUG): blocking and async handlers, each multicall entry, and
//! an upload's handler.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod log_capture;
mod support;

use hub_core::registry::Registry;
use hub_core::{Server, Value};
use lifecycle_support::{call_with, multicall_xml, outcome, post, ByHeader};
use log_capture::{line_where, Capture};
use support::{config, Conn};

#[test]
fn a_handler_s_logs_carry_its_call() {
    let logs = Capture::install(tracing::Level::DEBUG);
    let registry = Registry::builder()
        .blocking("tag", |_ctx, p| {
            tracing::info!(tag = ?p.positional.first(), "tagging in a worker");
            Ok(Value::Nil)
        })
        .asynchronous("atag", |_ctx, p| async move {
            tracing::info!(tag = ?p.positional.first(), "tagging on the unit");
            Ok(Value::Nil)
        })
        .build()
        .unwrap();
    let server = Server::builder()
        .config(config())
        .registry(registry)
        .upload(|upload: hub_core::Upload| async move {
            tracing::info!(file = ?upload.query("filename"), "receiving");
            Ok(Value::Nil)
        })
        .authenticator(ByHeader)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut c = Conn::open(server.local_addr());
    let alice = [("X-User", "alice".to_owned())];
    assert!(outcome(&call_with(&mut c, "tag", &["<string>f40</string>"], &alice)).is_ok());
    assert!(outcome(&c.call("atag", &["<string>f41</string>"])).is_ok());
    let batch = multicall_xml(&[
        ("tag", &["<string>f42</string>"]),
        ("atag", &["<string>f43</string>"]),
    ]);
    assert!(outcome(&post(&mut c, &batch, &alice)).is_ok());
    let upload = "POST /RPC2?filename=f44.rpm HTTP/1.1\r\nHost: test\r\n\
                  Content-Type: application/octet-stream\r\nX-User: bob\r\n\
                  Content-Length: 3\r\n\r\nabc";
    std::io::Write::write_all(&mut c.stream, upload.as_bytes()).unwrap();
    assert!(outcome(&c.read_response().unwrap()).is_ok());
    let text = logs.take();
    let logged = |tag: &str| line_where(&text, |l| l.contains(tag) && l.contains("tagging"));
    let blocking = logged("f40");
    assert!(
        blocking.contains("call{method=\"tag\" id=") && blocking.contains("user=\"alice\"}"),
        "{blocking}"
    );
    let unit = logged("f41");
    assert!(
        unit.contains("call{method=\"atag\" id=") && unit.contains("user=\"-\"}"),
        "{unit}"
    );
    // Each entry of a multicall in a span of its own, with its own request id.
    let (first, second) = (logged("f42"), logged("f43"));
    assert!(first.contains("call{method=\"tag\""), "{first}");
    assert!(second.contains("call{method=\"atag\""), "{second}");
    let id = |line: &str| {
        line.split(" id=")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .map(str::to_owned)
    };
    assert_ne!(id(&first), id(&second), "{first}\n{second}");
    // An upload's handler too.
    let received = line_where(&text, |l| l.contains("f44.rpm") && l.contains("receiving"));
    assert!(
        received.contains("call{method=\"upload\"") && received.contains("user=\"bob\"}"),
        "{received}"
    );
    server.shutdown();
}
