//! Any bytes sent to a live in-process server as one connection's worth of HTTP: the server
//! answers or closes within its socket timeout, never panics (libFuzzer aborts on a panic in
//! any thread), every answer starts with a status line, and no connection is leaked.
#![no_main]

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hub_core::registry::Registry;
use hub_core::{RpcError, RunningServer, Server, Value};
use libfuzzer_sys::fuzz_target;

#[path = "exchange.rs"]
mod exchange;

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
        let config = exchange::config();
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
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // The server may answer and close before reading everything (413, 431, 400).
    let _ = s.write_all(data);
    let _ = s.shutdown(Shutdown::Write);
    exchange::read_answer(&mut s);
    drop(s);
    // Every few hundred inputs: nothing is left held once the clients are gone.
    exchange::no_connection_leaked(server(), RUNS.fetch_add(1, Ordering::Relaxed), 500);
});
