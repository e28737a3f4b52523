//! The request path over real loopback sockets: calls, faults, gzipped answers, multicall,
//! routes, metrics, and a real client (Python's `xmlrpc.client`).
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{config, start, Conn};

#[test]
fn calls_faults_and_panics() {
    let server = start(config());
    let mut c = Conn::open(server.local_addr());
    // async and blocking handlers, on one keep-alive connection
    let r = c.call("echo", &["<string>hi</string>"]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").as_deref(), Some("text/xml"));
    assert!(r.body.contains("hi"), "{}", r.body);
    let r = c.call("becho", &["<int>7</int>"]);
    assert!(
        r.body.contains("<int>7</int>") || r.body.contains("<i4>7</i4>"),
        "{}",
        r.body
    );
    // default fault codes
    let r = c.call("nope", &[]);
    assert!(
        r.body.contains("-32601") && r.body.contains("nope"),
        "{}",
        r.body
    );
    let r = c.request("POST", "/RPC2", "<methodCall><methodName>x");
    assert!(r.body.contains("-32700"), "{}", r.body);
    let r = c.request("POST", "/", "<methodCall><bogus/></methodCall>");
    assert!(r.body.contains("-32600"), "{}", r.body);
    let r = c.call("sleep", &["<string>x</string>"]);
    assert!(r.body.contains("-32602"), "{}", r.body);
    let r = c.call("fail", &["<int>1005</int>"]);
    assert!(
        r.body.contains("1005") && r.body.contains("failed on purpose"),
        "{}",
        r.body
    );
    // panics answer an internal error and the workers live on (more panics than workers)
    for _ in 0..4 {
        let r = c.call("crash", &[]);
        assert_eq!(r.status, 200);
        assert!(r.body.contains("-32603"), "{}", r.body);
        assert!(
            !r.body.contains("boom"),
            "panic text must not leak: {}",
            r.body
        );
        let r = c.call("acrash", &[]);
        assert!(r.body.contains("-32603"), "{}", r.body);
    }
    let r = c.call("becho", &["<string>alive</string>"]);
    assert!(r.body.contains("alive"), "{}", r.body);
    // koji's keyword arguments reach the handler as `named`
    let r = c.call(
        "kw",
        &[
            "<struct><member><name>owner</name><value><string>alice</string></value></member>\
           <member><name>__starstar</name><value><boolean>1</boolean></value></member></struct>",
        ],
    );
    assert!(
        r.body.contains("alice") && !r.body.contains("__starstar"),
        "{}",
        r.body
    );
    server.shutdown();
}

#[test]
fn configured_fault_codes() {
    let mut cfg = config();
    cfg.faults.method_not_found = 1000;
    cfg.faults.invalid_params = 1019;
    let server = start(cfg);
    let mut c = Conn::open(server.local_addr());
    assert!(c.call("nope", &[]).body.contains("<int>1000</int>"));
    assert!(c.call("sleep", &[]).body.contains("<int>1019</int>"));
    server.shutdown();
}

/// `gzip_answers_over`: an answer at least that long is gzipped for a client that accepts
/// gzip (and comes back whole); a shorter one, or one for a client that does not, is sent as
/// is; with the default (0) nothing is.
#[test]
fn big_answers_are_gzipped_for_clients_that_accept_it() {
    use std::io::Read as _;

    let post = |c: &mut Conn, accept: Option<&str>, text: &str| {
        let accept = accept.map(|a| vec![("Accept-Encoding", a.to_owned())]);
        let body = support::call_xml("echo", &[&format!("<string>{text}</string>")]);
        lifecycle_support::post(c, &body, accept.as_deref().unwrap_or_default())
    };
    let big = "koji-build ".repeat(1000);
    let mut cfg = config();
    cfg.gzip_answers_over = 4096;
    let server = start(cfg);
    let mut c = Conn::open(server.local_addr());
    for accept in ["gzip", "gzip, deflate", "deflate, gzip;q=0.5", "*"] {
        let r = post(&mut c, Some(accept), &big);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.header("content-encoding").as_deref(),
            Some("gzip"),
            "{accept}"
        );
        assert_eq!(r.header("vary").as_deref(), Some("accept-encoding"));
        assert!(r.bytes.len() < big.len() / 10, "{} bytes", r.bytes.len());
        let mut xml = String::new();
        flate2::read::GzDecoder::new(&r.bytes[..])
            .read_to_string(&mut xml)
            .unwrap();
        assert!(xml.starts_with("<?xml") && xml.contains(&big), "{accept}");
        assert!(xml.trim_end().ends_with("</methodResponse>"), "{accept}");
    }
    for (accept, text) in [
        (Some("gzip"), "short"),
        (None, big.as_str()),
        (Some("identity"), big.as_str()),
        (Some("gzip;q=0"), big.as_str()),
        (Some("deflate"), big.as_str()),
    ] {
        let r = post(&mut c, accept, text);
        assert_eq!(r.header("content-encoding"), None, "{accept:?}");
        assert!(r.body.contains(text), "{accept:?}");
    }
    server.shutdown();

    let server = start(config());
    let mut c = Conn::open(server.local_addr());
    let r = post(&mut c, Some("gzip"), &big);
    assert_eq!(r.header("content-encoding"), None, "off by default");
    assert!(r.body.contains(&big));
    server.shutdown();
}

#[test]
fn multicall_in_order_and_isolated() {
    let mut cfg = config();
    cfg.max_multicall_calls = 5;
    let server = start(cfg);
    let mut c = Conn::open(server.local_addr());
    let entry = |m: &str, p: &str| {
        format!(
            "<struct><member><name>methodName</name><value><string>{m}</string></value></member>\
             <member><name>params</name><value><array><data>{p}</data></array></value></member></struct>"
        )
    };
    let calls = [
        entry("echo", "<value><string>first</string></value>"),
        entry("fail", "<value><int>1004</int></value>"),
        entry(
            "system.multicall",
            "<value><array><data></data></array></value>",
        ),
        entry("sleep", "<value><int>1</int></value>"),
        entry("crash", ""),
    ]
    .concat();
    let r = c.call(
        "system.multicall",
        &[
            &format!("<array><data><value>{calls}</value></data></array>")
                .replace("</struct><struct>", "</struct></value><value><struct>"),
        ],
    );
    assert_eq!(r.status, 200);
    let b = &r.body;
    let first = b.find("first").expect(b);
    let f1004 = b.find("1004").expect(b);
    let nested = b.find("may not be nested").expect(b);
    let slept = b.find("<int>1</int>").expect(b);
    let crash = b.find("-32603").expect(b);
    assert!(
        first < f1004 && f1004 < nested && nested < slept && slept < crash,
        "{b}"
    );
    assert!(b.contains("faultCode") && b.contains("faultString"), "{b}");
    // over max_multicall_calls: the whole call is refused
    let six = (0..6)
        .map(|_| entry("echo", "<value><int>1</int></value>"))
        .collect::<Vec<_>>();
    let six = format!(
        "<array><data><value>{}</value></data></array>",
        six.join("</value><value>")
    );
    let r = c.call("system.multicall", &[&six]);
    assert!(
        r.body.contains("-32602") && r.body.contains("at most 5"),
        "{}",
        r.body
    );
    server.shutdown();
}

#[test]
fn routes_405_404_healthz_metrics() {
    let server = start(config());
    let mut c = Conn::open(server.local_addr());
    let r = c.request("GET", "/RPC2", "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("POST"));
    assert!(r.body.contains("Only POST"), "{}", r.body);
    let r = c.request("PUT", "/", "x");
    assert_eq!(r.status, 405);
    assert_eq!(c.request("GET", "/elsewhere", "").status, 404);
    let r = c.request("GET", "/healthz", "");
    assert_eq!(r.status, 200);
    for _ in 0..3 {
        c.call("echo", &["<int>1</int>"]);
    }
    c.call("crash", &[]);
    c.call("sleep", &["<int>1</int>"]);
    let r = c.request("GET", "/metrics", "");
    assert_eq!(r.status, 200);
    let m = &r.body;
    assert!(
        m.contains("hub_method_calls_total{method=\"echo\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("hub_method_faults_total{method=\"crash\"} 1"),
        "{m}"
    );
    assert!(m.contains("hub_panics_total 1"), "{m}");
    assert!(m.contains("hub_queue_pushes_total 2"), "{m}");
    assert!(m.contains("hub_queue_pops_total 2"), "{m}");
    assert!(m.contains("hub_connections_accepted_total 1"), "{m}");
    assert!(m.contains("hub_connections_held 1"), "{m}");
    assert!(
        m.contains("hub_method_duration_seconds_count{method=\"echo\"} 3"),
        "{m}"
    );
    let reads = server.stats().counters.snapshot().requests_read;
    assert_eq!(reads, 10);
    server.shutdown();
}

#[test]
fn slow_blocking_does_not_delay_async_on_another_connection() {
    let mut cfg = config();
    cfg.workers = 1;
    cfg.io_units = 1; // same unit: the strictest case
    let server = start(cfg);
    let addr = server.local_addr();
    let slow = std::thread::spawn(move || {
        let mut c = Conn::open(addr);
        let t = Instant::now();
        let r = c.call("sleep", &["<int>2000</int>"]);
        (r.status, t.elapsed())
    });
    assert!(support::wait_until(Duration::from_secs(10), || {
        server.stats().counters.snapshot().queue_pops >= 1
    }));
    let mut c = Conn::open(addr);
    let t = Instant::now();
    for i in 0..20 {
        let r = c.call("echo", &[&format!("<int>{i}</int>")]);
        assert_eq!(r.status, 200);
    }
    let fast = t.elapsed();
    let (status, slow_took) = slow.join().unwrap();
    assert_eq!(status, 200);
    assert!(slow_took >= Duration::from_millis(1900), "{slow_took:?}");
    // 20 async calls finished while the only worker was busy sleeping.
    assert!(
        fast < Duration::from_millis(1500),
        "async calls waited: {fast:?}"
    );
    server.shutdown();
}

#[test]
fn python_xmlrpc_client() {
    let server = start(config());
    let url = format!("http://{}/RPC2", server.local_addr());
    let script = r#"
import sys, xmlrpc.client
p = xmlrpc.client.ServerProxy(sys.argv[1], allow_none=True)
assert p.echo({'a': [1, 2.5, 'x', None, True]}) == {'a': [1, 2.5, 'x', None, True]}
assert p.becho(2**30) == 2**30
try:
    p.fail(1014)
    raise SystemExit('no fault')
except xmlrpc.client.Fault as f:
    assert f.faultCode == 1014, f
mc = xmlrpc.client.MultiCall(p)
mc.echo('one'); mc.sleep(1); mc.nope()
it = iter(mc())
assert next(it) == 'one'
assert next(it) == 1
try:
    next(it)
    raise SystemExit('no fault')
except xmlrpc.client.Fault as f:
    assert f.faultCode == -32601, f
print('ok')
"#;
    let out = Command::new("python3")
        .args(["-c", script, &url])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.shutdown();
}

#[test]
fn pipelining_and_expect_continue() {
    let server = start(config());
    let mut c = Conn::open(server.local_addr());
    // two requests in one write: two answers, in order
    let one = support::call_xml("becho", &["<string>one</string>"]);
    let two = support::call_xml("echo", &["<string>two</string>"]);
    let both = [&one, &two]
        .iter()
        .map(|b| {
            format!(
                "POST /RPC2 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )
        })
        .collect::<String>();
    std::io::Write::write_all(&mut c.stream, both.as_bytes()).unwrap();
    let r1 = c.read_response().unwrap();
    let r2 = c.read_response().unwrap();
    assert!(
        r1.body.contains("one") && r2.body.contains("two"),
        "{r1:?} {r2:?}"
    );
    // Expect: 100-continue: the interim answer comes before the body is sent
    let body = support::call_xml("echo", &["<string>continued</string>"]);
    let head = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    std::io::Write::write_all(&mut c.stream, head.as_bytes()).unwrap();
    let interim = c.read_response().expect("100 Continue");
    assert_eq!(interim.status, 100);
    std::io::Write::write_all(&mut c.stream, body.as_bytes()).unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("continued"), "{}", r.body);
    server.shutdown();
}

#[test]
fn every_listen_address_is_served() {
    let cfg = hub_core::Config::from_toml(
        "listen = [\"127.0.0.1:0\", \"127.0.0.2:0\"]\nio_units = 2\nworkers = 2\n\
         stat_interval_secs = 0",
    )
    .unwrap();
    let server = start(cfg);
    let addrs = server.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert_eq!(server.local_addr(), addrs[0]);
    let ips: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    assert_eq!(ips, ["127.0.0.1", "127.0.0.2"]);
    // Each answers, async and blocking calls alike, in turn and on kept-alive connections.
    let mut conns: Vec<Conn> = addrs.iter().map(|a| Conn::open(*a)).collect();
    for round in 0..3 {
        for (i, c) in conns.iter_mut().enumerate() {
            for method in ["echo", "becho"] {
                let token = format!("<int>{}</int>", round * 10 + i);
                let r = c.call(method, &[&token]);
                assert_eq!(r.status, 200, "{r:?}");
                assert!(
                    r.body.contains(&token) || r.body.contains(&token.replace("int", "i4")),
                    "{method} on {}: {}",
                    addrs[i],
                    r.body
                );
            }
        }
    }
    server.shutdown();
}

/// Names the caller after the address the authenticator was given.
struct ByAddress;

impl hub_core::auth::Authenticator for ByAddress {
    fn authenticate(
        &self,
        req: &hub_core::auth::AuthRequest<'_>,
    ) -> Result<Option<hub_core::auth::Caller>, hub_core::auth::AuthFailure> {
        Ok(req
            .peer
            .map(|p| hub_core::auth::Caller::new(p.ip().to_string())))
    }
}

#[test]
fn a_trusted_proxy_s_forwarded_for_names_the_client() {
    use hub_core::registry::Registry;
    use hub_xmlrpc::Value;
    use lifecycle_support::{call_with, outcome};
    let serve = |trusted: &[&str], header: hub_core::ClientAddressHeader| {
        let registry = Registry::builder()
            // What the handler and the authenticator were told the client is.
            .blocking("client", |ctx, _p| {
                let peer = ctx.peer().map(|p| p.ip().to_string()).unwrap_or_default();
                let caller = ctx
                    .caller()
                    .map(|c| c.name().to_owned())
                    .unwrap_or_default();
                Ok(Value::from(format!("{peer} {caller}")))
            })
            .build()
            .unwrap();
        hub_core::Server::builder()
            .config(hub_core::Config {
                trusted_proxies: trusted.iter().map(|s| (*s).to_owned()).collect(),
                client_address_header: header,
                ..config()
            })
            .registry(registry)
            .authenticator(ByAddress)
            .build()
            .unwrap()
            .start()
            .unwrap()
    };
    let client_by = |c: &mut Conn, header: &str, forwarded: Option<&str>| {
        let headers: Vec<(&str, String)> = forwarded
            .map(|f| vec![(header, f.to_owned())])
            .unwrap_or_default();
        outcome(&call_with(c, "client", &[], &headers)).unwrap()
    };
    let client = |c: &mut Conn, forwarded: Option<&str>| client_by(c, "X-Forwarded-For", forwarded);
    use hub_core::ClientAddressHeader::{Forwarded, XForwardedFor};
    // Loopback is the proxy here: its header names the client, for the handler and the
    // authenticator alike.
    let server = serve(&["127.0.0.0/8"], XForwardedFor);
    let mut c = Conn::open(server.local_addr());
    assert_eq!(client(&mut c, None), Value::from("127.0.0.1 127.0.0.1"));
    assert_eq!(
        client(&mut c, Some("198.51.100.1, 203.0.113.9")),
        Value::from("203.0.113.9 203.0.113.9")
    );
    assert_eq!(
        client(&mut c, Some("not an address")),
        Value::from("127.0.0.1 127.0.0.1")
    );
    // RFC 7239's header is not the one this server reads.
    assert_eq!(
        client_by(&mut c, "Forwarded", Some("for=203.0.113.9")),
        Value::from("127.0.0.1 127.0.0.1")
    );
    server.shutdown();
    // A proxy writing `Forwarded`: its `for=` names the client, and `X-Forwarded-For` is not
    // read.
    let server = serve(&["127.0.0.0/8"], Forwarded);
    let mut c = Conn::open(server.local_addr());
    assert_eq!(
        client_by(
            &mut c,
            "Forwarded",
            Some(r#"for=198.51.100.1, for="[2001:db8::7]:4711";proto=https"#)
        ),
        Value::from("2001:db8::7 2001:db8::7")
    );
    assert_eq!(
        client(&mut c, Some("203.0.113.9")),
        Value::from("127.0.0.1 127.0.0.1")
    );
    server.shutdown();
    // Loopback is not a trusted proxy: what its clients write is ignored.
    let server = serve(&["10.0.0.0/8"], XForwardedFor);
    let mut c = Conn::open(server.local_addr());
    assert_eq!(
        client(&mut c, Some("203.0.113.9")),
        Value::from("127.0.0.1 127.0.0.1")
    );
    server.shutdown();
    // An entry that is not an address or a network stops the build, naming the key.
    let e = hub_core::Config::from_toml("trusted_proxies = [\"10.0.0.0/33\"]").unwrap_err();
    assert!(e.to_string().contains("trusted_proxies"), "{e}");
}

/// Every time limit may be as long as its type holds (`u64::MAX` ms: "never", as an operator
/// writes it): calls of each kind are answered and the server stops, where a deadline
/// computed from one used to overflow and end every connection.
#[test]
fn time_limits_of_any_length_are_served() {
    let server = start(hub_core::Config {
        socket_timeout_ms: u64::MAX,
        handler_timeout_ms: u64::MAX,
        max_queue_wait_ms: u64::MAX,
        stall_warn_ms: u64::MAX,
        drain_timeout_ms: u64::MAX,
        fast_reject_threshold_ms: u64::MAX,
        ..config()
    });
    let mut c = Conn::open(server.local_addr());
    for (method, arg) in [
        ("echo", "<int>1</int>"),
        ("becho", "<int>2</int>"),
        ("sleep", "<int>600</int>"),
    ] {
        let r = c.call(method, &[arg]);
        assert_eq!(r.status, 200, "{method}: {}", r.body);
        assert!(r.body.contains("<int>"), "{method}: {}", r.body);
    }
    let r = c.call("crash", &[]);
    assert!(r.body.contains("faultCode"), "{}", r.body);
    drop(c);
    server.shutdown();
}

/// A call whose body stops short is answered `408` at the socket timeout, with
/// `Connection: close`: the connection ends there, and what the client sends after it (the
/// rest of that body) is never read as a request of its own. Each round is a fresh
/// connection's first request, which the hub would otherwise park once answered.
#[test]
fn the_rest_of_a_cut_off_body_is_never_a_request() {
    let server = start(hub_core::Config {
        socket_timeout_ms: 400,
        ..config()
    });
    let call = support::call_xml("echo", &["<string>smuggled</string>"]);
    let smuggled = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{call}",
        call.len()
    );
    for round in 0..3 {
        let mut c = Conn::open(server.local_addr());
        let head = format!(
            "POST /RPC2 HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n<?xml vers",
            10 + smuggled.len()
        );
        std::io::Write::write_all(&mut c.stream, head.as_bytes()).unwrap();
        let r = c.read_response().expect("the 408");
        assert_eq!(r.status, 408, "{round}");
        assert_eq!(r.header("connection").as_deref(), Some("close"), "{round}");
        let _ = std::io::Write::write_all(&mut c.stream, smuggled.as_bytes());
        assert_eq!(
            rest_until_closed(&mut c),
            "",
            "{round}: answered after its 408"
        );
    }
    server.shutdown();
}

/// What the server sends until it closes the connection (within 5 s).
fn rest_until_closed(c: &mut Conn) -> String {
    use std::io::Read;
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&rest).into_owned(),
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return String::from_utf8_lossy(&rest).into_owned()
            }
            Err(e) => panic!("not closed: {e}; read {:?}", String::from_utf8_lossy(&rest)),
        }
    }
}

/// Dropping a `RunningServer` shuts it down whole: the acceptor and the units drain, and
/// then the workers stop too (they used to stay for the life of the process, one set per
/// dropped server). Seen from inside: a job leaves a thread-local guard on its worker, whose
/// destructor runs only when that thread exits.
#[test]
fn a_dropped_server_stops_its_workers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    struct ExitFlag(Arc<AtomicBool>);
    impl Drop for ExitFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    thread_local! {
        static GUARD: std::cell::RefCell<Option<ExitFlag>> = const { std::cell::RefCell::new(None) };
    }
    let exited = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&exited);
    let registry = support::registry_builder()
        .blocking("mark", move |_ctx, _p| {
            let flag = ExitFlag(Arc::clone(&flag));
            GUARD.with(|g| *g.borrow_mut() = Some(flag));
            Ok(hub_xmlrpc::Value::Bool(true))
        })
        .build()
        .unwrap();
    let server = hub_core::Server::builder()
        .config(hub_core::Config {
            workers: 1,
            drain_timeout_ms: 200,
            ..config()
        })
        .registry(registry)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut c = Conn::open(server.local_addr());
    assert_eq!(c.call("mark", &[]).status, 200);
    drop(c);
    assert!(!exited.load(Ordering::SeqCst));
    drop(server);
    assert!(
        support::wait_until(Duration::from_secs(10), || exited.load(Ordering::SeqCst)),
        "the worker of a dropped server is still running"
    );
}
