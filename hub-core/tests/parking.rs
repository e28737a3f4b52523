//! Parked connections: many at once, answered after parking (and after the unit has given
//! the freed memory back), drained on shutdown.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{config, parks, start, wait_until, Conn};

const LONG: Duration = Duration::from_secs(20);

/// More connections than the parks after which a unit trims (256), so the trim path runs
/// between the two rounds of requests.
const CONNS: usize = 300;

#[test]
fn many_parked_connections_are_answered_again() {
    let mut cfg = config();
    // Parks after 1 s idle (4 ticks of 250 ms); closes after 10 s idle, well after the test.
    cfg.socket_timeout_ms = 10_000;
    let server = start(cfg);
    let addr = server.local_addr();
    let mut conns: Vec<Conn> = (0..CONNS).map(|_| Conn::open(addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c.call("echo", &[&format!("<int>{i}</int>")]);
        assert_eq!(r.status, 200);
    }
    let first = CONNS as u64;
    assert!(
        wait_until(LONG, || parks(&server) >= first),
        "{} parked",
        parks(&server)
    );
    // Long enough for a unit's trim check (once a second) to have run after the parks.
    std::thread::sleep(Duration::from_millis(1200));
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c.call("echo", &[&format!("<string>again {i}</string>")]);
        assert_eq!(r.status, 200);
        assert!(r.body.contains(&format!("again {i}<")), "{}", r.body);
    }
    // They park again, and shutdown closes them all.
    assert!(
        wait_until(LONG, || parks(&server) >= 2 * first),
        "{} parked",
        parks(&server)
    );
    server.shutdown();
    for c in &mut conns {
        assert!(
            c.closed_within(LONG),
            "parked connection not closed at shutdown"
        );
    }
}

/// A new connection's first request, and a request that comes after the connection had been
/// quiet for a park window (a daemon polling the hub), park the connection as soon as they are
/// answered, not a window later; requests sent back to back keep it with hyper between them;
/// and an early park does not shorten the idle timeout.
#[test]
fn a_polling_client_is_parked_as_soon_as_it_is_answered() {
    let mut cfg = config();
    // Parks after 1 s quiet (4 ticks of 250 ms); closes after 3 s idle.
    cfg.socket_timeout_ms = 3_000;
    let server = start(cfg);
    let addr = server.local_addr();
    let soon = Duration::from_millis(500);
    let mut c = Conn::open(addr);
    // The first request: parked when answered (the tick would take a second).
    assert_eq!(c.call("echo", &["<int>1</int>"]).status, 200);
    assert!(
        wait_until(soon, || parks(&server) == 1),
        "{} parks",
        parks(&server)
    );
    // Requests back to back: the first finds it parked only for a moment, so hyper stays
    // for the rest of the burst, and the tick parks it a window after the last one.
    for i in 2..7 {
        let r = c.call("echo", &[&format!("<int>{i}</int>")]);
        assert_eq!(r.status, 200);
        assert!(r.body.contains(&format!("<int>{i}</int>")), "{}", r.body);
    }
    assert_eq!(parks(&server), 1, "parked between back-to-back requests");
    assert!(
        wait_until(LONG, || parks(&server) == 2),
        "not parked after the burst"
    );
    // It was quiet for a window: its next answer parks it at once.
    assert_eq!(c.call("echo", &["<int>7</int>"]).status, 200);
    let answered = std::time::Instant::now();
    assert!(
        wait_until(soon, || parks(&server) == 3),
        "{} parks",
        parks(&server)
    );
    // Parked at once, it is still closed only after the whole idle timeout.
    assert!(c.closed_within(LONG), "idle connection not closed");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(2_900),
        "closed after {idle:?} idle"
    );
    server.shutdown();
}

#[test]
fn a_request_sent_as_shutdown_starts_is_answered_by_a_parked_connection() {
    let mut cfg = config();
    cfg.socket_timeout_ms = 2000;
    cfg.drain_timeout_ms = 4000;
    let server = start(cfg);
    let addr = server.local_addr();
    let mut c = Conn::open(addr);
    assert_eq!(c.call("echo", &["<int>1</int>"]).status, 200);
    assert!(wait_until(LONG, || parks(&server) >= 1), "not parked");
    // The request is on the wire before shutdown starts: the parked connection lingers
    // for it and answers it, closing afterwards.
    c.send(
        "POST",
        "/RPC2",
        &support::call_xml("echo", &["<int>2</int>"]),
    );
    let handle = server.shutdown_handle();
    handle.shutdown();
    let r = c.read_response().expect("answered while draining");
    assert_eq!(r.status, 200);
    assert!(c.closed_within(LONG));
}
