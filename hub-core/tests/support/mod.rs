//! Helpers for the engine's integration tests: a test registry, a server on an ephemeral
//! port, and a tiny raw HTTP/1.1 client (tests only; the server side is hyper).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub_core::registry::{Registry, RegistryBuilder};
use hub_core::{Config, RpcError, Server};
use hub_xmlrpc::{Fault, Value};

/// How many times `count` ran (shared across the test binary: compare differences).
pub static COUNT_RUNS: AtomicUsize = AtomicUsize::new(0);

fn int_arg(p: &hub_core::Params) -> Result<i64, RpcError> {
    match p.positional.first() {
        Some(Value::Int(n)) => Ok(*n),
        _ => Err(RpcError::InvalidParams("expected one int".into())),
    }
}

/// A non-negative int argument, as milliseconds.
pub fn ms_arg(p: &hub_core::Params) -> Result<u64, RpcError> {
    match p.positional.first() {
        Some(Value::Int(n)) if *n >= 0 => Ok(*n as u64),
        _ => Err(RpcError::InvalidParams(
            "expected one non-negative int".into(),
        )),
    }
}

/// The test registry, built.
pub fn registry() -> Arc<Registry> {
    Arc::new(registry_builder().build().unwrap())
}

/// echo (async), blocking `becho`, sleep (blocking, ms), count (blocking),
/// crash (blocking panic), acrash (async panic), fail (fault), kw (async: echoes kwargs);
/// other suites add their own methods to it.
pub fn registry_builder() -> RegistryBuilder {
    Registry::builder()
        .asynchronous("echo", |_ctx, p| async move {
            p.positional
                .into_iter()
                .next()
                .ok_or_else(|| RpcError::InvalidParams("echo takes one value".into()))
        })
        .blocking("becho", |_ctx, p| {
            p.positional
                .into_iter()
                .next()
                .ok_or_else(|| RpcError::InvalidParams("becho takes one value".into()))
        })
        .blocking("sleep", |_ctx, p| {
            let ms = ms_arg(&p)?;
            std::thread::sleep(Duration::from_millis(ms));
            Ok(Value::Int(ms as i64))
        })
        .blocking("count", |_ctx, _p| {
            Ok(Value::Int(
                COUNT_RUNS.fetch_add(1, Ordering::SeqCst) as i64 + 1,
            ))
        })
        .blocking("crash", |_ctx, _p| panic!("boom"))
        .asynchronous("acrash", |_ctx, _p| async move { panic!("async boom") })
        .blocking("fail", |_ctx, p| {
            Err(RpcError::Fault(Fault::new(
                int_arg(&p)? as i32,
                "failed on purpose",
            )))
        })
        .asynchronous("kw", |_ctx, p| async move {
            Ok(p.named.map(Value::Struct).unwrap_or(Value::Nil))
        })
}

/// A config for tests: ephemeral port, quiet stats, short drain.
pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        io_units: 2,
        workers: 2,
        stat_interval_secs: 0,
        drain_timeout_ms: 5000,
        ..Config::default()
    }
}

/// Starts a server with `config` and the test registry.
pub fn start(config: Config) -> hub_core::RunningServer {
    Server::builder()
        .config(config)
        .registry(registry())
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// How many times `server` has parked a connection so far.
pub fn parks(server: &hub_core::RunningServer) -> u64 {
    server.stats().counters.snapshot().connections_parked
}

/// An XML-RPC call body.
pub fn call_xml(method: &str, params: &[&str]) -> String {
    let params: String = params
        .iter()
        .map(|p| format!("<param><value>{p}</value></param>"))
        .collect();
    format!("<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>")
}

/// One HTTP response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: String,
    /// The body as received (`body` is it read as UTF-8, lossily).
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// A raw keep-alive HTTP/1.1 connection, over TCP or any other byte stream (TLS).
pub struct Conn<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

impl Conn {
    /// Sends a chunked body of `total` bytes (a multiple of 16 KiB) after a head already
    /// written, while a second thread reads the answer; stops sending once it has arrived, so
    /// an answer sent before the body ends (a 413) is read as soon as it comes.
    pub fn send_chunked(&mut self, total: usize) -> Option<Resp> {
        let mut reader = Conn::from_stream(self.stream.try_clone().unwrap());
        let answered = Arc::new(AtomicBool::new(false));
        let reading = {
            let answered = Arc::clone(&answered);
            std::thread::spawn(move || {
                let r = reader.read_response();
                answered.store(true, Ordering::SeqCst);
                r
            })
        };
        let block = vec![b'x'; 16 * 1024];
        let frame = [format!("{:x}\r\n", block.len()).as_bytes(), &block, b"\r\n"].concat();
        let mut sent = 0;
        while sent < total && !answered.load(Ordering::SeqCst) {
            if self.stream.write_all(&frame).is_err() {
                break; // the server answered and closed early
            }
            sent += block.len();
        }
        if sent >= total {
            let _ = self.stream.write_all(b"0\r\n\r\n");
        }
        reading.join().unwrap()
    }

    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn from_stream(stream: TcpStream) -> Conn {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Whether the server closes the connection (EOF or reset) within `within`.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut b = [0u8; 1024];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

impl<S: Read + Write> Conn<S> {
    /// A connection over `stream` (its timeouts are the caller's).
    pub fn over(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, method: &str, path: &str, body: &str) {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(req.as_bytes()).unwrap();
    }

    pub fn request(&mut self, method: &str, path: &str, body: &str) -> Resp {
        self.send(method, path, body);
        self.read_response().expect("a response")
    }

    pub fn call(&mut self, method: &str, params: &[&str]) -> Resp {
        self.request("POST", "/RPC2", &call_xml(method, params))
    }

    /// Reads one response; `None` if the server closed the connection first.
    pub fn read_response(&mut self) -> Option<Resp> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let mut resp = Resp {
            status,
            head,
            body: String::new(),
            bytes: Vec::new(),
        };
        let len: usize = resp
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let start = head_end + 4;
        while self.buf.len() < start + len {
            if !self.fill() {
                return None;
            }
        }
        resp.bytes = self.buf[start..start + len].to_vec();
        resp.body = String::from_utf8_lossy(&resp.bytes).into_owned();
        self.buf.drain(..start + len);
        Some(resp)
    }

    fn fill(&mut self) -> bool {
        let mut b = [0u8; 8192];
        match self.stream.read(&mut b) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Polls `cond` every 10 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// A call on `conn`, a connection over a limit: answered `503` + `Retry-After`, then closed.
pub fn assert_refused(mut conn: Conn) {
    conn.send("POST", "/RPC2", &call_xml("echo", &["<int>2</int>"]));
    let r = conn.read_response().expect("an answer, not a silent close");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert!(conn.closed_within(Duration::from_secs(10)));
}

/// A connection from `source` (any 127.0.0.0/8 address is this machine's loopback).
pub fn open_from(source: &str, addr: SocketAddr) -> Conn {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    Conn::from_stream(socket.into())
}
