//! The access log over real sockets: one line per HTTP request with what was asked and how it
//! went, nothing the client sent beyond the request line, and none without `access_log`.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod log_capture;
mod support;

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use hub_core::{AuthFailure, AuthRequest, Authenticator, Caller, Config, Server, Value};
use log_capture::{logs_until, Capture};
use support::{call_xml, config, ms_arg, registry_builder, Conn};

/// The process's log capture, and the right to read it: one test at a time, since each
/// expects the access lines it reads to be its own.
fn logs() -> (MutexGuard<'static, ()>, &'static Capture) {
    static TURN: Mutex<()> = Mutex::new(());
    static LOGS: OnceLock<Capture> = OnceLock::new();
    let turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let logs = LOGS.get_or_init(|| Capture::install(tracing::Level::INFO));
    logs.take();
    (turn, logs)
}

fn start(access_log: bool) -> hub_core::RunningServer {
    serve(access_log, |b| b)
}

/// Names the caller its `X-User` header names (`refused`: refused).
struct ByHeader;

impl Authenticator for ByHeader {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure> {
        match req.headers.get("x-user").and_then(|v| v.to_str().ok()) {
            Some("refused") => Err(AuthFailure::Invalid("refused".into())),
            Some(name) => Ok(Some(Caller::new(name))),
            None => Ok(None),
        }
    }
}

/// An upload handler: takes the body; a `name=bad` upload is refused with fault 1000.
async fn take_upload(mut upload: hub_core::Upload) -> Result<Value, hub_core::RpcError> {
    let mut size = 0;
    while let Some(chunk) = upload.body().chunk().await? {
        size += chunk.len();
    }
    if upload.query("name") == Some("bad") {
        return Err(hub_core::Fault::new(1000, "a bad name").into());
    }
    Ok(Value::Int(size as i64))
}

/// Uploads four bytes with `query`, as the user `user` names for [`ByHeader`].
fn upload(c: &mut Conn, query: &str, user: &str) -> support::Resp {
    let req = format!(
        "POST /RPC2?{query} HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n\
         X-User: {user}\r\nContent-Length: 4\r\n\r\ndata"
    );
    std::io::Write::write_all(&mut c.stream, req.as_bytes()).unwrap();
    c.read_response().expect("an answer")
}

fn serve(
    access_log: bool,
    with: impl FnOnce(hub_core::ServerBuilder) -> hub_core::ServerBuilder,
) -> hub_core::RunningServer {
    let registry = registry_builder()
        .asynchronous("asleep", |_ctx, p| async move {
            let ms = ms_arg(&p)?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Value::Int(ms as i64))
        })
        .build()
        .unwrap();
    let builder = Server::builder()
        .config(Config {
            access_log,
            ..config()
        })
        .registry(std::sync::Arc::new(registry));
    with(builder).build().unwrap().start().unwrap()
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
    let (_turn, logs) = logs();
    let server = start(true);
    let mut c = Conn::open(server.local_addr());

    let r = c.call("becho", &["<string>s3cr3t-argument</string>"]);
    assert_eq!(r.status, 200);
    let line = access_line(logs);
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
            "user=\"-\"",
        ],
    );
    assert!(!line.contains("s3cr3t"), "{line}");

    // A fault's code; a name the registry does not know is not written out.
    let r = c.call("no_such_method_SECRET_NAME", &[]);
    assert!(r.body.contains("-32601"), "{}", r.body);
    let line = access_line(logs);
    assert_has(&line, &["status=200", "call=\"(unknown)\"", "fault=-32601"]);
    assert!(!line.contains("SECRET"), "{line}");
    let r = c.call("fail", &["<int>1005</int>"]);
    assert!(r.body.contains("1005"), "{}", r.body);
    assert_has(&access_line(logs), &["call=\"fail\"", "fault=1005"]);

    // Not XML: the parse fault, and no method.
    let r = c.request("POST", "/RPC2", "not xml s3cr3t-body");
    assert!(r.body.contains("-32700"), "{}", r.body);
    let line = access_line(logs);
    assert_has(&line, &["call=\"-\"", "fault=-32700"]);
    assert!(!line.contains("s3cr3t"), "{line}");

    // Other routes: their status, their URI with its query.
    assert_eq!(c.request("GET", "/RPC2", "").status, 405);
    assert_has(
        &access_line(logs),
        &["http_method=GET", "uri=/RPC2", "status=405", "call=\"-\""],
    );
    assert_eq!(c.request("GET", "/nowhere?x=1", "").status, 404);
    assert_has(&access_line(logs), &["uri=/nowhere?x", "status=404"]);
    // Of a query, only its names (old koji clients send their session key there); of a
    // long URI, a few hundred bytes: a client cannot write a secret or kilobytes of its
    // own text into the log (a 60 KB URI was logged whole; found in review).
    let r = c.request(
        "POST",
        "/RPC2?session-id=7&session-key=7-s3cr3t&callnum=1",
        &call_xml("becho", &["<int>1</int>"]),
    );
    assert_eq!(r.status, 200);
    let line = access_line(logs);
    assert_has(
        &line,
        &["uri=/RPC2?session-id&session-key&callnum", "status=200"],
    );
    assert!(!line.contains("s3cr3t"), "{line}");
    let junk = "A".repeat(8_000);
    assert_eq!(
        c.request("GET", &format!("/{junk}?{junk}={junk}"), "")
            .status,
        404
    );
    let line = access_line(logs);
    assert!(line.len() < 1024, "an access line of {} bytes", line.len());
    assert_has(
        &line,
        &["…(+7745 bytes)?AAAA", "…(+7872 bytes)", "status=404"],
    );

    // A multicall is one request: one line.
    let body = lifecycle_support::multicall_xml(&[
        ("becho", &["<int>1</int>"]),
        ("echo", &["<int>2</int>"]),
    ]);
    assert_eq!(lifecycle_support::post(&mut c, &body, &[]).status, 200);
    assert_has(
        &access_line(logs),
        &["call=\"system.multicall\"", "fault=-"],
    );
    server.shutdown();

    // Without `access_log`, nothing.
    let quiet = start(false);
    let mut c = Conn::open(quiet.local_addr());
    let r = c.request("POST", "/RPC2", &call_xml("becho", &["<int>3</int>"]));
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let text = logs.take();
    assert!(!text.contains("hub::access"), "{text}");
    quiet.shutdown();
}

#[test]
fn a_request_whose_client_went_away_is_logged_as_499() {
    let (_turn, logs) = logs();
    let server = start(true);
    for method in ["sleep", "asleep"] {
        let mut c = Conn::open(server.local_addr());
        c.send("POST", "/RPC2", &call_xml(method, &["<int>2000</int>"]));
        std::thread::sleep(Duration::from_millis(200));
        let sent = Instant::now();
        drop(c);
        // Logged when the server notices, not when the handler is done 2 s later.
        let line = access_line(logs);
        assert!(sent.elapsed() < Duration::from_millis(1500), "{line}");
        assert_has(
            &line,
            &[
                "status=499",
                "bytes=0",
                &format!("call=\"{method}\""),
                "uri=/RPC2",
            ],
        );
    }
    server.shutdown();
}

#[test]
fn the_line_names_the_caller_the_authenticator_named() {
    let (_turn, logs) = logs();
    // On the unit, and on a worker (a blocking authenticator) for a blocking method, an async
    // one and a multicall, each taking its own way there.
    let servers = [
        serve(true, |b| b.authenticator(ByHeader).upload(take_upload)),
        serve(true, |b| {
            b.blocking_authenticator(ByHeader).upload(take_upload)
        }),
    ];
    for server in &servers {
        let mut c = Conn::open(server.local_addr());
        let alice = [("X-User", "alice".to_owned())];
        let multicall = lifecycle_support::multicall_xml(&[("echo", &["<int>1</int>"])]);
        for method in ["becho", "echo"] {
            let r = lifecycle_support::call_with(&mut c, method, &["<int>1</int>"], &alice);
            assert_eq!(r.status, 200, "{}", r.body);
            assert_has(
                &access_line(logs),
                &[&format!("call=\"{method}\""), "user=\"alice\""],
            );
        }
        assert_eq!(
            lifecycle_support::post(&mut c, &multicall, &alice).status,
            200
        );
        assert_has(
            &access_line(logs),
            &["call=\"system.multicall\"", "user=\"alice\""],
        );
        // Anonymous, and refused credentials: nobody.
        assert_eq!(c.call("becho", &["<int>1</int>"]).status, 200);
        assert_has(&access_line(logs), &["user=\"-\""]);
        let refused = [("X-User", "refused".to_owned())];
        let r = lifecycle_support::call_with(&mut c, "becho", &["<int>1</int>"], &refused);
        assert!(r.body.contains("faultCode"), "{}", r.body);
        assert_has(&access_line(logs), &["user=\"-\"", "call=\"becho\""]);
        // An upload: its line names it, its caller, and the fault its handler answered.
        for (query, fault) in [("name=ok", "fault=-"), ("name=bad", "fault=1000")] {
            let r = upload(&mut c, query, "alice");
            assert_eq!(r.status, 200, "{}", r.body);
            let line = access_line(logs);
            assert_has(&line, &["call=\"upload\"", "user=\"alice\"", fault]);
            assert!(
                line.contains("uri=/RPC2?name "),
                "only the query's names: {line}"
            );
        }
        // Refused before its handler: the authenticator's fault.
        let r = upload(&mut c, "name=ok", "refused");
        assert!(r.body.contains("faultCode"), "{}", r.body);
        assert_has(
            &access_line(logs),
            &["call=\"upload\"", "user=\"-\"", "fault=-32"],
        );
    }
    for server in servers {
        server.shutdown();
    }
}
