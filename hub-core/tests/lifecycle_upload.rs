//! Uploads over real sockets: a 100 MiB body streamed with bounded memory, query parameters,
//! the size limit (declared and streamed), the caller, offline, and no handler.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_core::registry::Registry;
use hub_core::{Caller, Config, RpcError, Server, ServerBuilder, SessionStore, Struct, Upload};
use hub_xmlrpc::Value;
use lifecycle_support::{fault_code, outcome, session};
use support::{config, Conn};

/// The uploads share the process's memory: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: u64 = 1 << 20;

/// adler32, as koji's `fileverify=adler32`.
#[derive(Clone, Copy)]
struct Adler(u32, u32);

impl Adler {
    fn new() -> Self {
        Adler(1, 0)
    }
    fn update(&mut self, data: &[u8]) {
        for chunk in data.chunks(5552) {
            for &b in chunk {
                self.0 += u32::from(b);
                self.1 += self.0;
            }
            self.0 %= 65521;
            self.1 %= 65521;
        }
    }
    fn hex(self) -> String {
        format!("{:08x}", (self.1 << 16) | self.0)
    }
}

/// Reads the body chunk by chunk; answers koji's `{size, fileverify, offset, hexdigest}` plus
/// the file name and the caller.
async fn receive(mut upload: Upload) -> Result<Value, RpcError> {
    let name = upload.query("filename").unwrap_or("").to_owned();
    let offset = upload.query("offset").unwrap_or("0").to_owned();
    let who = upload
        .context()
        .caller()
        .map_or(Value::Nil, |c| Value::from(c.name().to_owned()));
    let mut sum = Adler::new();
    let mut size = 0u64;
    while let Some(chunk) = upload.body().chunk().await? {
        sum.update(&chunk);
        size += chunk.len() as u64;
    }
    let mut answer = Struct::new();
    answer.insert("size", size as i64);
    answer.insert("fileverify", "adler32");
    answer.insert("offset", offset);
    answer.insert("hexdigest", sum.hex());
    answer.insert("filename", name);
    answer.insert("caller", who);
    Ok(Value::Struct(answer))
}

fn start(cfg: Config, f: impl FnOnce(ServerBuilder) -> ServerBuilder) -> hub_core::RunningServer {
    let registry = Registry::builder().build().unwrap();
    f(Server::builder().config(cfg).registry(registry))
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// Sends an upload head; the body follows separately.
fn head(c: &mut Conn, query: &str, length: Option<u64>, extra: &[(&str, String)]) {
    let framing = match length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_owned(),
    };
    let extra: String = extra.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let req = format!(
        "POST /RPC2?{query} HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n{extra}{framing}\r\n"
    );
    c.stream.write_all(req.as_bytes()).unwrap();
}

fn resident_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096 / 1024
}

fn member<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.as_struct().unwrap().get(name).unwrap()
}

#[test]
fn hundred_mib_streamed_with_bounded_memory() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = start(config(), |b| b.upload(receive));
    let mut c = Conn::open(server.local_addr());
    // Warm up (hyper, the unit, the allocator), then measure.
    head(&mut c, "filename=warm", Some(MIB), &[]);
    c.stream.write_all(&vec![1u8; MIB as usize]).unwrap();
    assert!(outcome(&c.read_response().unwrap()).is_ok());

    let baseline = resident_kib();
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(resident_kib(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let total = 100 * MIB;
    head(&mut c, "filename=big%20file.rpm&offset=0", Some(total), &[]);
    let mut block = vec![0u8; 64 * 1024];
    let mut expected = Adler::new();
    let mut sent = 0u64;
    let mut n = 0u8;
    while sent < total {
        block.iter_mut().for_each(|b| {
            *b = n;
            n = n.wrapping_mul(31).wrapping_add(7);
        });
        expected.update(&block);
        c.stream.write_all(&block).unwrap();
        sent += block.len() as u64;
    }
    let r = c.read_response().unwrap();
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let v = outcome(&r).unwrap();
    assert_eq!(member(&v, "size"), &Value::Int(total as i64));
    assert_eq!(member(&v, "hexdigest"), &Value::from(expected.hex()));
    assert_eq!(member(&v, "filename"), &Value::from("big file.rpm"));
    assert_eq!(member(&v, "offset"), &Value::from("0"));
    let growth_mib = peak.load(Ordering::SeqCst).saturating_sub(baseline) / 1024;
    eprintln!("resident growth during the 100 MiB upload: {growth_mib} MiB");
    assert!(
        growth_mib < 32,
        "resident memory grew by {growth_mib} MiB during a 100 MiB upload"
    );
    // The connection stays usable for XML-RPC afterwards.
    let r = c.call("system.listMethods", &[]);
    assert!(outcome(&r).is_ok(), "{r:?}");
    server.shutdown();
}

#[test]
fn limits_caller_offline_and_no_handler() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sessions = Arc::new(SessionStore::new());
    let mut cfg = config();
    cfg.max_upload_length = MIB;
    let server = start(cfg, |b| {
        b.upload(receive).authenticator(Arc::clone(&sessions))
    });
    let addr = server.local_addr();

    // a declared length over the limit: 413 before reading
    let mut c = Conn::open(addr);
    head(&mut c, "filename=x", Some(2 * MIB), &[]);
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    // a chunked body that runs past it: cut off with 413
    let mut c = Conn::open(addr);
    head(&mut c, "filename=x", None, &[]);
    let too_large = server.stats().counters.snapshot().too_large;
    // The server lingers (reads and discards) after the 413 so it reaches a client that is
    // still streaming (see hostile_http.rs for the repeated version).
    let r = c
        .send_chunked(3 * MIB as usize)
        .expect("the 413, not a bare close");
    assert_eq!(r.status, 413, "{r:?}");
    assert!(support::wait_until(Duration::from_secs(5), || {
        server.stats().counters.snapshot().too_large == too_large + 1
    }));
    // within the limit, chunked, with a session: the handler sees the caller
    let (id, key) = sessions.create(Caller::new("uploader")).unwrap();
    let mut c = Conn::open(addr);
    head(&mut c, "filename=small", None, &session(id as i64, &key, 1));
    let v = outcome(&c.send_chunked(512 * 1024).unwrap()).unwrap();
    assert_eq!(member(&v, "size"), &Value::Int(512 * 1024));
    assert_eq!(member(&v, "caller"), &Value::from("uploader"));
    // offline: the offline fault
    server.status().go_offline("uploads paused");
    let mut c = Conn::open(addr);
    head(&mut c, "filename=x", Some(3), &[]);
    c.stream.write_all(b"abc").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(outcome(&r), Err((-32400, "uploads paused".into())));
    server.shutdown();

    // no upload handler: a fault
    let server = start(config(), |b| b);
    let mut c = Conn::open(server.local_addr());
    head(&mut c, "filename=x", Some(3), &[]);
    c.stream.write_all(b"abc").unwrap();
    assert_eq!(fault_code(&c.read_response().unwrap()), -32601);
    server.shutdown();
}

/// Reads the whole body, then takes `stall_ms` (a query parameter) of its own time.
async fn receive_then_stall(mut upload: Upload) -> Result<Value, RpcError> {
    let stall: u64 = upload.query("stall_ms").unwrap_or("0").parse().unwrap_or(0);
    let mut size = 0i64;
    while let Some(chunk) = upload.body().chunk().await? {
        size += chunk.len() as i64;
    }
    tokio::time::sleep(Duration::from_millis(stall)).await;
    Ok(Value::Int(size))
}

#[test]
fn the_time_budget_counts_the_handlers_time_not_the_wait_for_data() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cfg = Config {
        handler_timeout_ms: 400,
        ..config()
    };
    let system_error = cfg.faults.system_error;
    let server = start(cfg, |b| b.upload(receive_then_stall));
    let addr = server.local_addr();

    // A client slower than the budget (a byte every 250 ms): the handler only waits, and
    // the upload is taken whole.
    let mut c = Conn::open(addr);
    head(&mut c, "stall_ms=0", Some(5), &[]);
    for byte in b"slow!" {
        std::thread::sleep(Duration::from_millis(250));
        c.stream.write_all(&[*byte]).unwrap();
    }
    assert_eq!(outcome(&c.read_response().unwrap()), Ok(Value::Int(5)));

    // A handler that takes 3 s of its own: the budget's fault, long before that.
    let timeouts = server.stats().counters.snapshot().timeouts;
    let mut c = Conn::open(addr);
    head(&mut c, "stall_ms=3000", Some(3), &[]);
    c.stream.write_all(b"abc").unwrap();
    let asked = std::time::Instant::now();
    let r = c.read_response().unwrap();
    assert!(asked.elapsed() < Duration::from_millis(2500), "{r:?}");
    match outcome(&r) {
        Err((code, message)) => {
            assert_eq!(code, system_error);
            assert!(message.contains("time budget of 400 ms"), "{message}");
        }
        Ok(v) => panic!("answered over its budget: {v:?}"),
    }
    assert_eq!(server.stats().counters.snapshot().timeouts, timeouts + 1);
    server.shutdown();
}
