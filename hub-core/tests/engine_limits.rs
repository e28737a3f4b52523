//! Refusals, limits, timeouts and graceful shutdown over real loopback sockets.
//! Timing margins are generous: these run on a noisy 2-core machine.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{assert_refused, config, open_from, parks, start, wait_until, Conn};

const LONG: Duration = Duration::from_secs(10);

fn pops(s: &hub_core::RunningServer) -> u64 {
    s.stats().counters.snapshot().queue_pops
}

fn pushes(s: &hub_core::RunningServer) -> u64 {
    s.stats().counters.snapshot().queue_pushes
}

/// A server with one worker and a queue of one, both taken: the worker sleeps 800 ms and one
/// call waits behind it (their threads answer the two statuses).
fn full_queue() -> (
    hub_core::RunningServer,
    std::thread::JoinHandle<u16>,
    std::thread::JoinHandle<u16>,
) {
    let mut cfg = config();
    cfg.workers = 1;
    cfg.max_queue_length = 1;
    cfg.max_queue_wait_ms = 60_000;
    cfg.fast_reject_threshold_ms = 60_000;
    let server = start(cfg);
    let addr = server.local_addr();
    let busy =
        std::thread::spawn(move || Conn::open(addr).call("sleep", &["<int>800</int>"]).status);
    assert!(wait_until(LONG, || pops(&server) == 1));
    let queued =
        std::thread::spawn(move || Conn::open(addr).call("sleep", &["<int>1</int>"]).status);
    assert!(wait_until(LONG, || pushes(&server) == 2));
    (server, busy, queued)
}

#[test]
fn over_max_connections_answers_503() {
    let mut cfg = config();
    cfg.max_connections = 1;
    let server = start(cfg);
    let mut first = Conn::open(server.local_addr());
    assert_eq!(first.call("echo", &["<int>1</int>"]).status, 200);
    assert_refused(Conn::open(server.local_addr()));
    assert_eq!(server.stats().counters.snapshot().connections_rejected, 1);
    // the held connection still works, and once it is gone a new one is accepted
    assert_eq!(first.call("echo", &["<int>3</int>"]).status, 200);
    drop(first);
    assert!(wait_until(LONG, || server
        .stats()
        .counters
        .snapshot()
        .connections_held
        == 0));
    assert_eq!(
        Conn::open(server.local_addr())
            .call("echo", &["<int>4</int>"])
            .status,
        200
    );
    server.shutdown();
}

/// One client address holding `max_connections_per_ip` connections is answered `503` for
/// the next, while another address is served; a connection closing gives its address room
/// again.
#[test]
fn over_max_connections_per_ip_answers_503_and_other_clients_are_served() {
    let mut cfg = config();
    cfg.max_connections_per_ip = 3;
    let server = start(cfg);
    let addr = server.local_addr();
    let counters = || server.stats().counters.snapshot();
    let mut held: Vec<Conn> = (0..3)
        .map(|i| {
            let mut c = open_from("127.0.0.1", addr);
            assert_eq!(c.call("echo", &[&format!("<int>{i}</int>")]).status, 200);
            c
        })
        .collect();
    assert_refused(open_from("127.0.0.1", addr));
    assert_eq!(counters().per_ip_rejections, 1);
    assert_eq!(counters().connections_rejected, 0);
    // Another client is served, three times over.
    for i in 0..3 {
        let mut other = open_from("127.0.0.2", addr);
        assert_eq!(
            other.call("echo", &[&format!("<int>{i}</int>")]).status,
            200
        );
        held.push(other);
    }
    // The held connections still work; one closing gives its address room again.
    assert_eq!(held[0].call("echo", &["<int>5</int>"]).status, 200);
    held.remove(0);
    assert!(wait_until(LONG, || counters().connections_held == 5));
    assert_eq!(
        open_from("127.0.0.1", addr)
            .call("echo", &["<int>6</int>"])
            .status,
        200
    );
    assert_eq!(counters().per_ip_rejections, 1);
    server.shutdown();
}

#[test]
fn queue_full_answers_503() {
    let (server, busy, queued) = full_queue();
    let addr = server.local_addr();
    let r = Conn::open(addr).call("sleep", &["<int>1</int>"]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert!(r.body.contains("queue full"), "{}", r.body);
    // async methods are not queued: still served
    assert_eq!(Conn::open(addr).call("echo", &["<int>1</int>"]).status, 200);
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(queued.join().unwrap(), 200);
    assert_eq!(server.stats().counters.snapshot().queue_full_rejects, 1);
    server.shutdown();
}

#[test]
fn queue_wait_drop_answers_503_without_running() {
    let mut cfg = config();
    cfg.workers = 1;
    cfg.max_queue_wait_ms = 100;
    cfg.fast_reject_threshold_ms = 60_000;
    let server = start(cfg);
    let addr = server.local_addr();
    let busy =
        std::thread::spawn(move || Conn::open(addr).call("sleep", &["<int>700</int>"]).status);
    assert!(wait_until(LONG, || pops(&server) == 1));
    let before = support::COUNT_RUNS.load(Ordering::SeqCst);
    let r = Conn::open(addr).call("count", &[]);
    assert_eq!(r.status, 503);
    assert!(r.body.contains("waited too long"), "{}", r.body);
    assert_eq!(
        support::COUNT_RUNS.load(Ordering::SeqCst),
        before,
        "dropped job ran"
    );
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(server.stats().counters.snapshot().queue_wait_drops, 1);
    server.shutdown();
}

#[test]
fn job_of_a_departed_client_is_not_run() {
    let mut cfg = config();
    cfg.workers = 1;
    cfg.max_queue_wait_ms = 60_000;
    cfg.fast_reject_threshold_ms = 60_000;
    let server = start(cfg);
    let addr = server.local_addr();
    let busy =
        std::thread::spawn(move || Conn::open(addr).call("sleep", &["<int>700</int>"]).status);
    assert!(wait_until(LONG, || pops(&server) == 1));
    let before = support::COUNT_RUNS.load(Ordering::SeqCst);
    {
        let mut gone = Conn::open(addr);
        gone.send("POST", "/RPC2", &support::call_xml("count", &[]));
        assert!(wait_until(LONG, || pushes(&server) == 2));
    } // the client hangs up while its job is queued
    assert_eq!(busy.join().unwrap(), 200);
    assert!(wait_until(LONG, || pops(&server) == 2));
    assert_eq!(
        support::COUNT_RUNS.load(Ordering::SeqCst),
        before,
        "abandoned job ran"
    );
    assert_eq!(server.stats().counters.snapshot().client_gone_skips, 1);
    server.shutdown();
}

#[test]
fn body_over_max_request_length_is_413() {
    let mut cfg = config();
    cfg.max_request_length = 1024;
    let server = start(cfg);
    // declared too large: refused before reading
    let mut c = Conn::open(server.local_addr());
    let big = support::call_xml("echo", &[&format!("<string>{}</string>", "x".repeat(2000))]);
    let r = c.request("POST", "/RPC2", &big);
    assert_eq!(r.status, 413);
    // chunked, no length up front: refused while streaming
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.write_all(b"POST /RPC2 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for _ in 0..3 {
        s.write_all(format!("200\r\n{}\r\n", "y".repeat(512)).as_bytes())
            .unwrap();
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut c = Conn::from_stream(s);
    let r = c.read_response().expect("413");
    assert_eq!(r.status, 413);
    // a body under the limit, chunked, is fine
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    let body = support::call_xml("echo", &["<string>small</string>"]);
    s.write_all(format!("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes()).unwrap();
    let r = Conn::from_stream(s).read_response().expect("200");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("small"));
    assert_eq!(server.stats().counters.snapshot().too_large, 2);
    server.shutdown();
}

#[test]
fn slow_headers_slow_body_and_idle_keepalive_are_cut_off() {
    let mut cfg = config();
    cfg.socket_timeout_ms = 300;
    let server = start(cfg);
    let addr = server.local_addr();
    // a client that connects and never sends a byte
    let t = Instant::now();
    let mut c = Conn::open(addr);
    assert!(c.closed_within(LONG), "silent client not cut off");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    // headers that never finish
    let t = Instant::now();
    let mut c = Conn::open(addr);
    c.stream
        .write_all(b"POST /RPC2 HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    assert!(c.closed_within(LONG), "dribbling headers not cut off");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    // a body that never finishes: 408
    let mut c = Conn::open(addr);
    c.stream
        .write_all(b"POST /RPC2 HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n<method")
        .unwrap();
    let r = c.read_response().expect("408");
    assert_eq!(r.status, 408);
    assert!(c.closed_within(LONG));
    // an idle keep-alive connection is closed
    let mut c = Conn::open(addr);
    assert_eq!(c.call("echo", &["<int>1</int>"]).status, 200);
    let t = Instant::now();
    assert!(c.closed_within(LONG), "idle keep-alive not closed");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert!(server.stats().counters.snapshot().timeouts >= 4);
    server.shutdown();
}

#[test]
fn graceful_shutdown_answers_every_accepted_request() {
    let mut cfg = config();
    cfg.workers = 4;
    cfg.drain_timeout_ms = 8000;
    cfg.max_queue_wait_ms = 60_000;
    cfg.fast_reject_threshold_ms = 60_000;
    let server = start(cfg);
    let addr = server.local_addr();
    let n = 12;
    // 12 slow blocking calls in flight (read, queued or running) when shutdown starts
    let clients: Vec<_> = (0..n)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                let r = c.call("sleep", &["<int>300</int>"]);
                (i, r.status, r.body)
            })
        })
        .collect();
    let mut idle = Conn::open(addr);
    assert_eq!(idle.call("echo", &["<int>1</int>"]).status, 200);
    assert!(wait_until(LONG, || pushes(&server) >= n));
    let handle = server.shutdown_handle();
    let t = Instant::now();
    handle.shutdown();
    // new connections are refused once the listener is gone
    assert!(wait_until(LONG, || TcpStream::connect(addr).is_err()));
    for c in clients {
        let (i, status, body) = c.join().unwrap();
        assert_eq!(status, 200, "client {i}: {body}");
        assert!(body.contains("300"), "client {i}: {body}");
    }
    // the idle keep-alive connection is closed, not left hanging
    assert!(idle.closed_within(LONG));
    server.wait();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}

#[test]
fn healthz_is_503_while_draining() {
    let mut cfg = config();
    cfg.workers = 1;
    let server = start(cfg);
    let addr = server.local_addr();
    let busy = std::thread::spawn(move || {
        let mut c = Conn::open(addr);
        let r = c.call("sleep", &["<int>600</int>"]);
        // the connection that was in flight can still ask for health: pipelined after
        (r.status, r.header("connection"))
    });
    assert!(wait_until(LONG, || pops(&server) == 1));
    let mut probe = Conn::open(addr);
    assert_eq!(probe.request("GET", "/healthz", "").status, 200);
    server.shutdown_handle().shutdown();
    // the probe connection was idle: it may be closed at once, or answer 503
    probe.send("GET", "/healthz", "");
    if let Some(r) = probe.read_response() {
        assert_eq!(r.status, 503);
    }
    let (status, connection) = busy.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(connection.as_deref(), Some("close"));
    server.wait();
}

#[test]
fn idle_connections_park_and_wake() {
    let mut cfg = config();
    cfg.socket_timeout_ms = 2000; // parks after 1 s idle
    let server = start(cfg);
    let addr = server.local_addr();
    // an idle keep-alive connection is parked, then serves its next request
    let mut c = Conn::open(addr);
    assert_eq!(c.call("echo", &["<int>1</int>"]).status, 200);
    assert!(wait_until(LONG, || parks(&server) >= 1), "not parked");
    let r = c.call("becho", &["<string>after park</string>"]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("after park"), "{}", r.body);
    drop(c);
    // half a request head is buffered when the connection parks: it is replayed
    let before = parks(&server);
    let mut c = Conn::open(addr);
    assert_eq!(c.call("echo", &["<int>2</int>"]).status, 200);
    // (a new connection parks as soon as its first request is answered; the half head
    // finds it parked only briefly, so hyper holds it until the tick parks it again)
    assert!(wait_until(LONG, || parks(&server) > before), "not parked");
    let before = parks(&server);
    let body = support::call_xml("echo", &["<string>replayed</string>"]);
    let req = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (first, rest) = req.split_at(20);
    c.stream.write_all(first.as_bytes()).unwrap();
    assert!(wait_until(LONG, || parks(&server) > before), "not parked");
    c.stream.write_all(rest.as_bytes()).unwrap();
    let r = c.read_response().expect("answered after replay");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("replayed"), "{}", r.body);
    server.shutdown();
}

/// `system.multicall`'s parameter: an array of `{methodName, params}` for these methods and
/// their parameters' XML.
fn multicall_entries(entries: &[(&str, &str)]) -> String {
    let entries: String = entries
        .iter()
        .map(|(m, p)| {
            format!(
                "<value><struct><member><name>methodName</name><value><string>{m}</string></value></member>\
                 <member><name>params</name><value><array><data>{p}</data></array></value></member></struct></value>"
            )
        })
        .collect();
    format!("<array><data>{entries}</data></array>")
}

/// Sends a multicall of `refused` (a method and its one argument's value) then an `echo`:
/// one HTTP `200`, the refused entry the system-error fault saying `why`, the echo served.
fn refused_entry_then_served(addr: std::net::SocketAddr, refused: (&str, &str), why: &str) {
    let (method, arg) = refused;
    let calls = multicall_entries(&[
        (method, &format!("<value>{arg}</value>")),
        ("echo", "<value><string>served</string></value>"),
    ]);
    let r = Conn::open(addr).call("system.multicall", &[&calls]);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("-32400") && r.body.contains(why),
        "{}",
        r.body
    );
    assert!(r.body.contains("served"), "{}", r.body);
}

#[test]
fn multicall_entry_refused_by_the_queue_is_a_fault_not_a_503() {
    let (server, busy, queued) = full_queue();
    let addr = server.local_addr();
    refused_entry_then_served(addr, ("becho", "<string>blocked</string>"), "queue full");
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(queued.join().unwrap(), 200);
    server.shutdown();
}

#[test]
fn a_method_over_its_max_in_flight_is_refused_and_the_others_served() {
    use hub_core::registry::Method;
    use hub_xmlrpc::Value;
    let ms = |p: &hub_core::Params| p.positional.first().and_then(Value::as_i64).unwrap_or(0);
    let registry = support::registry_builder()
        .method(
            Method::blocking("slow", move |_ctx, p| {
                std::thread::sleep(Duration::from_millis(ms(&p) as u64));
                Ok(Value::Int(ms(&p)))
            })
            .with_max_in_flight(2),
        )
        .method(
            Method::asynchronous("aslow", move |_ctx, p| async move {
                tokio::time::sleep(Duration::from_millis(ms(&p) as u64)).await;
                Ok(Value::Int(ms(&p)))
            })
            .with_max_in_flight(1)
            .with_alias("slowly"),
        )
        .build()
        .unwrap();
    let mut cfg = config();
    cfg.workers = 4;
    let server = hub_core::Server::builder()
        .config(cfg)
        .registry(registry)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = server.local_addr();
    let refusals =
        |s: &hub_core::RunningServer| s.stats().counters.snapshot().method_limit_refusals;
    let call = move |method: &'static str, ms: u32| {
        std::thread::spawn(move || {
            let r = Conn::open(addr).call(method, &[&format!("<int>{ms}</int>")]);
            (r.status, r.body)
        })
    };

    // Two calls of `slow` hold its two places (two of the four workers).
    let held = [call("slow", 1500), call("slow", 1500)];
    assert!(wait_until(LONG, || pops(&server) == 2));
    // A third is refused at once, with a worker free; other methods are served meanwhile.
    let started = Instant::now();
    let r = Conn::open(addr).call("slow", &["<int>1</int>"]);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body.contains("too many calls of this method"),
        "{}",
        r.body
    );
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert!(started.elapsed() < Duration::from_millis(1000));
    let r = Conn::open(addr).call("becho", &["<int>5</int>"]);
    assert!(r.status == 200 && r.body.contains(">5<"), "{}", r.body);
    // In a multicall, that entry's fault; the others run.
    refused_entry_then_served(
        addr,
        ("slow", "<int>1</int>"),
        "too many calls of this method",
    );
    assert_eq!(refusals(&server), 2);
    // `/metrics` shows `slow` at its limit, `aslow` idle, each once (no alias series).
    let metrics = || Conn::open(addr).request("GET", "/metrics", "").body;
    let gauges = |text: &str| -> Vec<String> {
        let lines = text
            .lines()
            .filter(|l| l.starts_with("hub_method_") && l.contains("in_flight"));
        lines.map(str::to_owned).collect()
    };
    assert_eq!(
        gauges(&metrics()),
        [
            "hub_method_in_flight{method=\"aslow\"} 0",
            "hub_method_in_flight{method=\"slow\"} 2",
            "hub_method_max_in_flight{method=\"aslow\"} 1",
            "hub_method_max_in_flight{method=\"slow\"} 2",
        ]
    );
    for h in held {
        let (status, body) = h.join().unwrap();
        assert!(status == 200 && body.contains(">1500<"), "{status} {body}");
    }
    // Their places are back.
    assert!(metrics().contains("hub_method_in_flight{method=\"slow\"} 0\n"));
    let r = Conn::open(addr).call("slow", &["<int>1</int>"]);
    assert_eq!(r.status, 200, "{}", r.body);

    // An async method's place is shared with its alias: while `aslow` runs (its call
    // counted, its answer not yet), `slowly` is refused.
    let held = call("aslow", 1500);
    assert!(wait_until(LONG, || server
        .stats()
        .method("aslow")
        .calls
        .get()
        == 1));
    let r = Conn::open(addr).call("slowly", &["<int>1</int>"]);
    assert_eq!(r.status, 503, "{}", r.body);
    let (status, _) = held.join().unwrap();
    assert_eq!(status, 200);
    let r = Conn::open(addr).call("slowly", &["<int>1</int>"]);
    assert_eq!(r.status, 200, "{}", r.body);
    server.shutdown();
}

/// A client over `max_requests_per_ip_per_sec` is answered `429` with a `Retry-After`, while
/// other clients (by address, or as a trusted proxy names them) are served, and `/healthz`
/// and `/metrics` are not counted.
#[test]
fn a_client_over_its_request_rate_gets_429_and_the_others_are_served() {
    let mut cfg = config();
    cfg.max_requests_per_ip_per_sec = 2;
    cfg.requests_per_ip_burst = 3;
    let server = start(cfg);
    let addr = server.local_addr();
    let limited = || server.stats().counters.snapshot().rate_limited;
    let mut c = open_from("127.0.0.1", addr);
    // The burst, then refused at once. The body came with its head: dropped, and the
    // connection kept for the client's next try.
    for n in 0..3 {
        assert_eq!(c.call("echo", &[&format!("<int>{n}</int>")]).status, 200);
    }
    let r = c.call("echo", &["<int>3</int>"]);
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert_eq!(r.header("connection"), None);
    assert_eq!(limited(), 1);
    // So is one of 30 KiB, past what hyper reads at once, sent whole with its head.
    let big = format!("<string>{}</string>", "x".repeat(30 << 10));
    let r = c.call("echo", &[&big]);
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("connection"), None);
    assert_eq!(limited(), 2);
    // A client waiting for `100 Continue` is answered 429 at once, not asked for its body.
    let mut expecting = open_from("127.0.0.1", addr);
    let head = "POST /RPC2 HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\
                Expect: 100-continue\r\n\r\n";
    expecting.stream.write_all(head.as_bytes()).unwrap();
    let r = expecting.read_response().expect("an answer");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(limited(), 3);
    // A body still on the wire is not waited for: refused, and that connection closes.
    let mut slow = open_from("127.0.0.1", addr);
    let head = "POST /RPC2 HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n<?xml";
    slow.stream.write_all(head.as_bytes()).unwrap();
    let r = slow.read_response().expect("an answer");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(slow.closed_within(LONG));
    assert_eq!(limited(), 4);
    // Another client is served; monitoring is not counted.
    let mut other = open_from("127.0.0.2", addr);
    assert_eq!(other.call("echo", &["<int>5</int>"]).status, 200);
    assert_eq!(c.request("GET", "/healthz", "").status, 200);
    assert_eq!(c.request("GET", "/metrics", "").status, 200);
    // Half a second later: one more token, one more call.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(c.call("echo", &["<int>6</int>"]).status, 200);
    // And soon refused again (within a few calls, however slow this machine is today).
    let refused = (0..5).any(|_| {
        open_from("127.0.0.1", addr)
            .call("echo", &["<int>7</int>"])
            .status
            == 429
    });
    assert!(refused);
    assert!(limited() >= 5);
    server.shutdown();

    // Behind a trusted proxy, each client the proxy names has its own rate.
    let mut cfg = config();
    cfg.max_requests_per_ip_per_sec = 1;
    cfg.trusted_proxies = vec!["127.0.0.0/8".to_owned()];
    let server = start(cfg);
    let via_proxy = |client: &str| {
        let mut c = Conn::open(server.local_addr());
        let forwarded = [("X-Forwarded-For", client.to_owned())];
        lifecycle_support::call_with(&mut c, "echo", &["<int>1</int>"], &forwarded).status
    };
    assert_eq!(via_proxy("203.0.113.1"), 200);
    assert_eq!(via_proxy("203.0.113.1"), 429);
    assert_eq!(via_proxy("203.0.113.2"), 200);
    server.shutdown();
}
