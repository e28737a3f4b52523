//! What the HTTP fuzz targets check of one connection, whatever its transport: the server
//! answers or closes, every answer starts with a status line, and no connection is leaked.

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use hub_core::{Config, RunningServer};

/// The fuzzed server's options: one IO unit, two workers, 64 KiB limits, a 1 s socket
/// timeout, answers of 64 bytes and more gzipped, no stat line, no memory watch.
pub fn config() -> Config {
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.io_units = 1;
    config.workers = 2;
    config.socket_timeout_ms = 1000;
    config.max_request_length = 64 * 1024;
    config.max_upload_length = 64 * 1024;
    config.stat_interval_secs = 0;
    config.memory_warn_threshold_kib = 0;
    config.gzip_answers_over = 64;
    // A rate the fuzzer's one client stays under, but a burst of 4: the fifth of an input's
    // pipelined calls and on are refused (`429`), kept alive or closed by what of their
    // bodies has arrived.
    config.max_requests_per_ip_per_sec = 5_000;
    config.requests_per_ip_burst = 4;
    config
}

/// Reads until the server closes; panics if it neither answers nor closes in time (the
/// stream's read timeout) or answers something that is not HTTP.
pub fn read_answer(s: &mut impl Read) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // A close with data unread, or (TLS) without a close_notify.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe
                ) =>
            {
                break
            }
            // libFuzzer's own timers interrupt system calls now and then.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("no answer nor close after {:?}: {e}", started.elapsed()),
        }
    }
    if !answer.is_empty() {
        assert!(
            answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "),
            "not a status line: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
}

/// Every `every` calls: waits until `server` holds no connection (the clients are gone).
pub fn no_connection_leaked(server: &RunningServer, run: u64, every: u64) {
    if run % every != every - 1 {
        return;
    }
    let end = Instant::now() + Duration::from_secs(5);
    while server.stats().counters.snapshot().connections_held > 0 {
        assert!(Instant::now() < end, "connections leaked");
        std::thread::sleep(Duration::from_millis(5));
    }
}
