//! A SIGTERM sent the moment `start_with_signals` has returned drains the server instead of
//! killing the process: the handlers are installed before it returns. (They used to be
//! installed by a task the acceptor thread ran a little later; a supervisor that stopped a
//! hub right after it said it was listening killed it about one time in fifteen.)
//!
//! A second one during the drain stops the server at once, leaving the call in flight.
//!
//! The signal goes to this test process, straight from `kill(2)` (microseconds, where a
//! `kill` command takes long enough for the old code to have caught up): were it not
//! handled, the test binary would die of it and the test fail. Alone in their file so that
//! no other test shares the process, and one at a time (every server started with signals
//! hears every signal).
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::mpsc::Receiver;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hub_core::{Config, RunningServer, Server};
use support::{call_xml, config, registry, Conn};

/// Held by each test: the process's signals reach every server started with them.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn sigterm_the_moment_the_server_is_up_drains_it() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for round in 0..20 {
        let server = start_with_signals(config());
        let addr = server.local_addr();
        assert!(terminate_self(), "round {round}: kill failed");
        // A signal caught but lost (the old code could also miss one that came while it
        // subscribed) leaves `wait` blocked: bounded here.
        let waited = wait_in_background(server);
        assert!(
            waited.recv_timeout(Duration::from_secs(20)).is_ok(),
            "round {round}: SIGTERM did not stop the server"
        );
        // Drained and closed: the port no longer takes calls.
        assert!(
            std::net::TcpStream::connect(addr).is_err() || {
                let mut c = Conn::open(addr);
                c.closed_within(Duration::from_secs(5))
            },
            "round {round}: still serving"
        );
    }
}

#[test]
fn a_second_sigterm_during_the_drain_stops_the_server_now() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = start_with_signals(Config {
        drain_timeout_ms: 60_000,
        ..config()
    });
    let addr = server.local_addr();
    // A call that would hold the drain for 30 s.
    let mut busy = Conn::open(addr);
    busy.send("POST", "/RPC2", &call_xml("sleep", &["<int>30000</int>"]));
    std::thread::sleep(Duration::from_millis(200));
    let waited = wait_in_background(server);

    assert!(terminate_self(), "kill failed");
    // The first signal drains: the port closes, the call in flight is waited for.
    assert!(
        support::wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(addr).is_err()
        }),
        "still accepting after SIGTERM"
    );
    assert!(
        waited.recv_timeout(Duration::from_millis(500)).is_err(),
        "the drain did not wait for the call in flight"
    );

    let second = Instant::now();
    assert!(terminate_self(), "kill failed");
    assert!(
        waited.recv_timeout(Duration::from_secs(10)).is_ok(),
        "a second SIGTERM did not stop the server"
    );
    assert!(second.elapsed() < Duration::from_secs(10));
    // The connection is closed without an answer: that is what stopping now gives up.
    assert!(busy.read_response().is_none(), "answered after all");
}

/// A server with the test registry and `config`, started with signals.
fn start_with_signals(config: Config) -> RunningServer {
    Server::builder()
        .config(config)
        .registry(registry())
        .build()
        .unwrap()
        .start_with_signals()
        .unwrap()
}

/// Runs `server.wait()` on a thread of its own; the receiver hears when it returned.
fn wait_in_background(server: RunningServer) -> Receiver<()> {
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        server.wait();
        let _ = done.send(());
    });
    waited
}

/// Sends SIGTERM to this process.
#[allow(unsafe_code)]
fn terminate_self() -> bool {
    // SAFETY: kill(2) on our own pid with a valid signal number touches no memory of ours.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) == 0 }
}
