//! Any bytes sent to a live in-process server as one connection's worth of HTTP: the server
//! answers or closes within its socket timeout, never panics (libFuzzer aborts on a panic in
//! any thread), every answer starts with a status line, and no connection is leaked.
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hub_core::registry::Registry;
use hub_core::{RpcError, RunningServer, Server, Value};
use libfuzzer_sys::fuzz_target;

fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let registry = Registry::builder()
            .asynchronous("echo", |_ctx, p| async move {
                Ok(p.positional.into_iter().next().unwrap_or(Value::Nil))
            })
            .blocking("becho", |_ctx, p| {
                Ok(p.positional.into_iter().next().unwrap_or(Value::Nil))
            })
            .blocking("fail", |_ctx, _p| Err(RpcError::InvalidParams("no".into())))
            .build()
            .expect("registry");
        let mut config = hub_core::Config::default();
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.io_units = 1;
        config.workers = 2;
        config.socket_timeout_ms = 1000;
        config.max_request_length = 64 * 1024;
        config.max_upload_length = 64 * 1024;
        config.stat_interval_secs = 0;
        config.memory_warn_threshold_kib = 0;
        config.gzip_answers_over = 64;
        Server::builder()
            .config(config)
            .registry(Arc::new(registry))
            .upload(|mut upload: hub_core::Upload| async move {
                let mut n = 0i64;
                while let Some(c) = upload.body().chunk().await? {
                    n += c.len() as i64;
                }
                Ok(Value::Int(n))
            })
            .build()
            .expect("server")
            .start()
            .expect("start")
    })
}

fn addr() -> SocketAddr {
    server().local_addr()
}

static RUNS: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let mut s = TcpStream::connect(addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    // The server may answer and close before reading everything (413, 431, 400).
    let _ = s.write_all(data);
    let _ = s.shutdown(Shutdown::Write);
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            // libFuzzer's own timers interrupt system calls now and then.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
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
    drop(s);
    // Every few hundred inputs: nothing is left held once the clients are gone.
    if RUNS.fetch_add(1, Ordering::Relaxed) % 500 == 499 {
        let end = Instant::now() + Duration::from_secs(5);
        while server().stats().counters.snapshot().connections_held > 0 {
            assert!(Instant::now() < end, "connections leaked");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
});
