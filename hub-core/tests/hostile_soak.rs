//! Soak: many connections send a mix of valid, invalid, panicking, slow, multicall, pipelined
//! and abandoned calls for `HUB_SOAK_SECS` seconds (default 20). Every answer must carry its
//! own request's unique token (no cross-talk), every request sent in full must be answered,
//! resident memory must stay flat after warm-up, and no connection may be left held.
#![allow(clippy::unwrap_used)]

mod hostile_support;
mod lifecycle_support;
mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostile_support::{held, resident_kib, soak_secs, start};
use hub_xmlrpc::{parse_response, Limits, MethodResponse, Value};
use support::{call_xml, config, wait_until, Conn, Resp};

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    answered: AtomicU64,
    busy: AtomicU64,
    abandoned: AtomicU64,
}

/// What one request expects back.
enum Want {
    Value(Value),
    Fault(i32),
    /// A multicall's entries: each its own value, or, for a blocking entry refused by the
    /// engine under load (queue full, fast reject), the `system_error` fault in its place.
    Entries(Vec<Value>),
}

/// A multicall entry the engine refused: `{faultCode: -32400, ...}`.
fn is_refused_entry(entry: &Value) -> bool {
    entry
        .as_struct()
        .and_then(|s| s.get("faultCode"))
        .and_then(Value::as_i64)
        == Some(-32400)
}

fn decode(r: &Resp) -> Result<Value, i32> {
    match parse_response(r.body.as_bytes(), &Limits::DEFAULT).unwrap() {
        MethodResponse::Success(v) => Ok(v),
        MethodResponse::Fault(f) => Err(f.code),
    }
}

fn frame(body: &str) -> String {
    format!(
        "POST /RPC2 HTTP/1.1\r\nHost: soak\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One request of the mix: its bytes and what it must answer.
fn pick(rng: &mut fastrand::Rng, token: &str) -> (String, Want) {
    let s = |t: &str| format!("<string>{t}</string>");
    match rng.u32(0..100) {
        0..=34 => (call_xml("echo", &[&s(token)]), Want::Value(Value::from(token))),
        35..=54 => (call_xml("becho", &[&s(token)]), Want::Value(Value::from(token))),
        55..=64 => (
            format!("<methodCall><methodName>echo</methodName><params><param><value><string>{token}</value></param>"),
            Want::Fault(-32700),
        ),
        65..=69 => (call_xml("crash", &[]), Want::Fault(-32603)),
        70..=72 => (call_xml("acrash", &[]), Want::Fault(-32603)),
        73..=82 => {
            let ms = rng.i64(0..15);
            (call_xml("sleep", &[&format!("<int>{ms}</int>")]), Want::Value(Value::Int(ms)))
        }
        83..=87 => (call_xml("nosuch", &[&s(token)]), Want::Fault(-32601)),
        _ => {
            let a = format!("{token}-a");
            let b = format!("{token}-b");
            let body = lifecycle_support::multicall_xml(&[
                ("echo", &[&s(&a)]),
                ("becho", &[&s(&b)]),
            ]);
            let want = vec![
                Value::Array(vec![Value::from(a)]),
                Value::Array(vec![Value::from(b)]),
            ];
            (body, Want::Entries(want))
        }
    }
}

fn client(addr: SocketAddr, id: usize, until: Instant, tally: Arc<Tally>) {
    let mut rng = fastrand::Rng::with_seed(id as u64 * 7919 + 1);
    let mut conn = Conn::open(addr);
    let mut seq = 0u64;
    while Instant::now() < until {
        // now and then: abandon a half-sent request, or start a new connection
        match rng.u32(0..100) {
            0..=1 => {
                let (body, _) = pick(&mut rng, "abandoned");
                let req = frame(&body);
                let _ = conn.stream.write_all(&req.as_bytes()[..req.len() / 2]);
                tally.abandoned.fetch_add(1, Ordering::Relaxed);
                conn = Conn::open(addr);
                continue;
            }
            2..=4 => conn = Conn::open(addr),
            _ => {}
        }
        // one to three requests pipelined in one write
        let depth = if rng.u32(0..10) == 0 { 3 } else { 1 };
        let mut wire = String::new();
        let mut wants = Vec::new();
        for _ in 0..depth {
            seq += 1;
            let token = format!("TOK{id}-{seq}-{}", rng.u64(..));
            let (body, want) = pick(&mut rng, &token);
            wire.push_str(&frame(&body));
            wants.push((token, want));
        }
        conn.stream.write_all(wire.as_bytes()).unwrap();
        tally.sent.fetch_add(depth, Ordering::Relaxed);
        for (token, want) in wants {
            let r = conn
                .read_response()
                .unwrap_or_else(|| panic!("client {id}: no answer for {token}"));
            tally.answered.fetch_add(1, Ordering::Relaxed);
            if r.status == 503 {
                tally.busy.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            assert_eq!(r.status, 200, "{token}: {r:?}");
            match (decode(&r), want) {
                (Ok(got), Want::Value(v)) => assert_eq!(got, v, "{token}: cross-talk"),
                (Ok(Value::Array(got)), Want::Entries(want)) => {
                    assert_eq!(got.len(), want.len(), "{token}: {got:?}");
                    for (g, w) in got.iter().zip(&want) {
                        assert!(g == w || is_refused_entry(g), "{token}: cross-talk: {g:?}");
                    }
                }
                (Err(code), Want::Fault(c)) => assert_eq!(code, c, "{token}"),
                (got, _) => panic!("{token}: unexpected {got:?}"),
            }
            // no answer carries another request's token
            for (at, _) in r.body.match_indices("TOK") {
                assert!(r.body[at..].starts_with(&token), "{token}: {}", r.body);
            }
        }
    }
}

#[test]
fn soak_mixed_traffic_no_cross_talk_flat_memory() {
    hostile_support::quiet_deliberate_panics();
    let secs = soak_secs(20);
    let mut cfg = config();
    cfg.workers = 4;
    cfg.io_units = 2;
    let server = start(cfg);
    let addr = server.local_addr();
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    // resident memory: sampled through the run; the baseline is the peak of the warm-up
    let warm = Duration::from_secs(secs / 4).max(Duration::from_secs(2));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut warm_peak = 0;
            let mut later_peak = 0;
            while !done.load(Ordering::SeqCst) {
                let rss = resident_kib();
                if start.elapsed() < warm {
                    warm_peak = warm_peak.max(rss);
                } else {
                    later_peak = later_peak.max(rss);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (warm_peak, later_peak)
        })
    };
    let clients: Vec<_> = (0..32)
        .map(|id| {
            let tally = Arc::clone(&tally);
            std::thread::spawn(move || client(addr, id, until, tally))
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (warm_peak, later_peak) = sampler.join().unwrap();
    let sent = tally.sent.load(Ordering::SeqCst);
    let answered = tally.answered.load(Ordering::SeqCst);
    let busy = tally.busy.load(Ordering::SeqCst);
    let stats = server.stats().counters.snapshot();
    eprintln!(
        "soak {secs} s, 32 connections: {sent} requests ({:.0}/s), {answered} answered, {busy} answered 503, \
         {} abandoned mid-request, {} panics caged; resident peak {} MiB in warm-up, {} MiB after",
        sent as f64 / secs as f64,
        tally.abandoned.load(Ordering::SeqCst),
        stats.panics,
        warm_peak / 1024,
        later_peak / 1024,
    );
    assert_eq!(sent, answered, "unanswered requests");
    assert!(sent > 1000, "only {sent} requests");
    assert!(
        later_peak <= warm_peak + 48 * 1024,
        "resident memory grew from {warm_peak} KiB to {later_peak} KiB"
    );
    assert!(wait_until(Duration::from_secs(10), || held(&server) == 0));
    server.shutdown();
}
