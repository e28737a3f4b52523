//! A SIGTERM sent the moment `start_with_signals` has returned drains the server instead of
//! killing the process: the handlers are installed before it returns. (They used to be
//! installed by a task the acceptor thread ran a little later; a supervisor that stopped a
//! hub right after it said it was listening killed it about one time in fifteen.)
//!
//! The signal goes to this test process, straight from `kill(2)` (microseconds, where a
//! `kill` command takes long enough for the old code to have caught up): were it not
//! handled, the test binary would die of it and the test fail. Alone in its file so that no
//! other test shares the process.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use hub_core::Server;
use support::{config, registry, Conn};

#[test]
fn sigterm_the_moment_the_server_is_up_drains_it() {
    for round in 0..20 {
        let server = Server::builder()
            .config(config())
            .registry(registry())
            .build()
            .unwrap()
            .start_with_signals()
            .unwrap();
        let addr = server.local_addr();
        assert!(terminate_self(), "round {round}: kill failed");
        // A signal caught but lost (the old code could also miss one that came while it
        // subscribed) leaves `wait` blocked: bounded here.
        let (done, waited) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            server.wait();
            let _ = done.send(());
        });
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

/// Sends SIGTERM to this process.
#[allow(unsafe_code)]
fn terminate_self() -> bool {
    // SAFETY: kill(2) on our own pid with a valid signal number touches no memory of ours.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) == 0 }
}
