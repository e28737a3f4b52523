//! Helpers for the hostile-client tests: a registry with handlers that misbehave on demand,
//! raw byte requests, resident memory, and the soak duration knob.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hub_core::registry::Registry;
use hub_core::{Config, RpcError, Server, ServerBuilder};
use hub_xmlrpc::Value;

use crate::support::{ms_arg, Conn, Resp};

/// How many times each counting handler ran (shared by a test binary: compare differences).
pub static GUARDED_RUNS: AtomicUsize = AtomicUsize::new(0);
pub static TOUCH_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The engine tests' registry (`echo`, `becho`, `sleep`, `crash`, `acrash`, ...) plus `len`
/// (async: length of an array or string), `asleep` (async, milliseconds), `touch` (blocking,
/// counts its runs), `guarded` (needs permission `secret`, counts its runs).
pub fn registry() -> Arc<Registry> {
    let r = crate::support::registry_builder()
        .asynchronous("len", |_ctx, p| async move {
            match p.positional.first() {
                Some(Value::Array(a)) => Ok(Value::Int(a.len() as i64)),
                Some(Value::String(s)) => Ok(Value::Int(s.len() as i64)),
                _ => Err(RpcError::InvalidParams(
                    "len takes an array or a string".into(),
                )),
            }
        })
        .asynchronous("asleep", |_ctx, p| async move {
            let ms = ms_arg(&p)?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Value::Int(ms as i64))
        })
        .blocking("touch", |_ctx, _p| {
            Ok(Value::Int(
                TOUCH_RUNS.fetch_add(1, Ordering::SeqCst) as i64 + 1,
            ))
        })
        .method(
            hub_core::registry::Method::blocking("guarded", |_ctx, _p| {
                GUARDED_RUNS.fetch_add(1, Ordering::SeqCst);
                Ok(Value::from("secret data"))
            })
            .with_perm("secret"),
        )
        .build()
        .unwrap();
    Arc::new(r)
}

/// Starts a server with `cfg`, the hostile registry and whatever `f` adds.
pub fn start_with(
    cfg: Config,
    f: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> hub_core::RunningServer {
    f(Server::builder().config(cfg).registry(registry()))
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// Starts a server with `cfg` and the hostile registry.
pub fn start(cfg: Config) -> hub_core::RunningServer {
    start_with(cfg, |b| b)
}

/// POSTs `body` (any bytes) to `/RPC2` on a new connection and reads one answer.
pub fn post_bytes(addr: SocketAddr, body: &[u8]) -> Option<Resp> {
    post_raw(&mut Conn::open(addr), "Content-Type: text/xml\r\n", body)
}

/// Writes a `POST /RPC2` with `headers` (each line ending in CRLF) and the raw `body` on
/// `c`, and reads one answer.
pub fn post_raw(c: &mut Conn, headers: &str, body: &[u8]) -> Option<Resp> {
    let head = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: t\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    c.stream.write_all(head.as_bytes()).unwrap();
    c.stream.write_all(body).unwrap();
    c.read_response()
}

/// The process's resident memory in KiB.
pub fn resident_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096 / 1024
}

/// `HUB_SOAK_SECS` (default `default`): how long the soak-style tests run.
pub fn soak_secs(default: u64) -> u64 {
    std::env::var("HUB_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The connections-held gauge.
pub fn held(server: &hub_core::RunningServer) -> u64 {
    server.stats().counters.snapshot().connections_held
}

/// Keeps the deliberate panics (`boom`, `async boom`, `factory panicked`) out of the test
/// output (printing thousands of backtraces slows a soak down); other panics print as usual.
pub fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !matches!(text, Some("boom" | "async boom" | "factory panicked")) {
                default(info);
            }
        }));
    });
}
