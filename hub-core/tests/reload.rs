//! The config file read again while serving: the switches it turns, the keys only a restart
//! applies, a bad file that changes nothing.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod log_capture;
mod support;

use std::time::{Duration, Instant};

use hub_core::{FaultCodes, Server};
use hub_xmlrpc::Value;
use lifecycle_support::{call_with, outcome};
use log_capture::{logs_until, Capture};
use support::{assert_refused, config, open_from, registry, registry_builder, wait_until, Conn};

/// The options every version of the test's file starts with.
const BASE: &str = "listen = \"127.0.0.1:0\"\nio_units = 1\nstat_interval_secs = 0\n";

/// A server of the test registry started from a config file of its own (`BASE`, then what
/// [`FromFile::write`] adds), and its reload handle; the file's folder goes with it.
struct FromFile {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
    server: hub_core::RunningServer,
    reload: hub_core::ConfigReloadHandle,
}

impl FromFile {
    fn start(tag: &str) -> FromFile {
        Self::start_adjusted(tag, |builder| builder)
    }

    /// The same, with options set in code after the file's.
    fn start_adjusted(
        tag: &str,
        adjust: impl FnOnce(hub_core::ServerBuilder) -> hub_core::ServerBuilder,
    ) -> FromFile {
        let dir = std::env::temp_dir().join(format!("hub-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hub.toml");
        std::fs::write(&path, BASE).unwrap();
        let builder = Server::builder().config_file(&path).unwrap();
        let server = adjust(builder)
            .registry(registry())
            .build()
            .unwrap()
            .start()
            .unwrap();
        let reload = server.config_reload_handle().expect("built from a file");
        FromFile {
            dir,
            path,
            server,
            reload,
        }
    }

    /// Makes the file `BASE` and `extra`.
    fn write(&self, extra: &str) {
        std::fs::write(&self.path, format!("{BASE}{extra}")).unwrap();
    }

    /// Makes the file `BASE` and `extra` and reloads it, which must need no restart.
    fn reload_with(&self, extra: &str) {
        self.write(extra);
        assert!(self.reload.reload().unwrap().needs_restart.is_empty());
    }
}

impl Drop for FromFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_reload_switches_offline_lockout_debug_and_the_access_log() {
    let logs = Capture::install(tracing::Level::INFO);
    let hub = FromFile::start("reload");
    let (path, reload, write) = (&hub.path, &hub.reload, |extra: &str| hub.write(extra));
    let mut c = Conn::open(hub.server.local_addr());
    assert_eq!(
        outcome(&c.call("echo", &["<int>1</int>"])),
        Ok(Value::Int(1))
    );

    // Offline, with its message; nothing else changed.
    write("offline = true\noffline_message = \"upgrading, back at 14:00\"\n");
    assert!(reload.reload().unwrap().needs_restart.is_empty());
    let offline = FaultCodes::default().offline;
    assert_eq!(
        outcome(&c.call("echo", &["<int>2</int>"])),
        Err((offline, "upgrading, back at 14:00".into()))
    );
    assert_eq!(c.request("GET", "/healthz", "").status, 503);
    logs.take();

    // Back online, with the panic's text in its fault (debug) and a line per request; keys
    // only a restart applies are named, and not applied.
    write("workers = 3\naccess_log = true\ndebug = true\n[faults]\ninternal_error = 7\n");
    let done = reload.reload().unwrap();
    assert_eq!(done.needs_restart, ["faults", "workers"]);
    let r = c.call("crash", &[]);
    let internal = FaultCodes::default().internal_error;
    assert_eq!(
        outcome(&r),
        Err((internal, "internal error in crash: boom".into()))
    );
    let text = logs_until(&logs, "hub::access");
    assert!(
        text.contains("call=\"crash\"") && text.contains("fault=-32603"),
        "{text}"
    );
    assert!(text.contains("only a restart applies it"), "{text}");

    // Locked out; a file that does not validate changes nothing.
    write("lockout = true\n");
    reload.reload().unwrap();
    assert_eq!(fault_code(&mut c), offline);
    write("lockout = false\nworkers = 0\n");
    let e = reload.reload().expect_err("workers = 0 is invalid");
    assert!(e.to_string().contains("workers"), "{e}");
    assert_eq!(fault_code(&mut c), offline, "still locked out");
    std::fs::write(path, "not = [toml").unwrap();
    assert!(reload.reload().is_err());
    assert!(hub.server.status().is_locked_out());

    // Back to the first file: served, no debug text, no access line.
    write("");
    reload.reload().unwrap();
    logs.take();
    assert_eq!(
        outcome(&c.call("crash", &[])),
        Err((internal, "internal error in crash".into()))
    );
    assert_eq!(
        outcome(&c.call("echo", &["<int>3</int>"])),
        Ok(Value::Int(3))
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!logs.take().contains("hub::access"));
    drop(hub);

    // A server given its options in code has no file to read again.
    let plain = Server::builder()
        .config(config())
        .registry(registry())
        .build()
        .unwrap()
        .start()
        .unwrap();
    assert!(plain.config_reload_handle().is_none());
    plain.shutdown();
}

/// A reload applies the keys whose line changed in the file: a limit set in code and the
/// offline switch an admin method turned stay through a reload of another key, or of the
/// same file, until the file's own line for them changes.
#[test]
fn a_reload_applies_only_what_changed_in_the_file() {
    let hub = FromFile::start_adjusted("rechanged", |b| b.max_connections_per_ip(1));
    let addr = hub.server.local_addr();
    let served = |c: &mut Conn| c.call("echo", &["<int>1</int>"]).status == 200;
    let mut first = open_from("127.0.0.1", addr);
    assert!(served(&mut first));
    assert_refused(open_from("127.0.0.1", addr));
    let status = hub.server.status();
    status.set_offline(true);
    let offline = FaultCodes::default().offline;
    assert_eq!(fault_code(&mut first), offline);

    // Another key, then the same file again: the code's limit and the admin's switch stay.
    hub.reload_with(
        "gzip_answers_over = 100
",
    );
    assert_refused(open_from("127.0.0.1", addr));
    assert_eq!(fault_code(&mut first), offline, "still offline");
    hub.reload_with(
        "gzip_answers_over = 100
",
    );
    assert_refused(open_from("127.0.0.1", addr));
    assert!(status.is_offline());

    // The file's own lines for them: applied.
    hub.reload_with(
        "gzip_answers_over = 100
max_connections_per_ip = 3
offline = false
",
    );
    let mut second = open_from("127.0.0.1", addr);
    assert!(served(&mut second) && served(&mut first));
}

/// A server whose setup failed stays offline with koji's "server startup error" whatever a
/// reload changes: the file's `offline` line going to `false` (the end of an unrelated
/// maintenance) does not bring online handlers whose setup never ran, and a new
/// `offline_message` does not hide the failure (both did: found in review).
#[test]
fn a_reload_does_not_bring_a_server_whose_setup_failed_online() {
    let hub = FromFile::start_adjusted("resetup", |b| {
        b.setup(|_config| Err("database unreachable".into()))
    });
    hub.reload_with("offline = true\n");
    let mut c = Conn::open(hub.server.local_addr());
    let startup_error = Err((
        FaultCodes::default().offline,
        "server startup error".to_owned(),
    ));
    assert_eq!(outcome(&c.call("echo", &["<int>1</int>"])), startup_error);
    hub.reload_with("offline = false\n");
    assert_eq!(outcome(&c.call("echo", &["<int>2</int>"])), startup_error);
    hub.reload_with("offline = false\noffline_message = \"back at 14:00\"\n");
    assert_eq!(outcome(&c.call("echo", &["<int>3</int>"])), startup_error);
    assert_eq!(c.request("GET", "/healthz", "").status, 503);
}

/// The fault code `echo` answers now (panics on a value).
fn fault_code(c: &mut Conn) -> i32 {
    match outcome(&c.call("echo", &["<int>9</int>"])) {
        Err((code, _)) => code,
        Ok(v) => panic!("served: {v:?}"),
    }
}

#[test]
fn a_reload_retunes_the_per_call_limits() {
    let dir = std::env::temp_dir().join(format!("hub-retune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hub.toml");
    let write = |extra: &str| {
        let text = format!("{BASE}workers = 1\n{extra}");
        std::fs::write(&path, text).unwrap();
    };
    write("memory_warn_threshold_kib = 0\n");
    static KEPT: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
    let registry = registry_builder()
        // Keeps `mib` MiB, written so that they are resident: a call the memory watch sees.
        .blocking("grow", |_ctx, p| {
            let mib = p.positional.first().and_then(Value::as_i64).unwrap_or(0);
            KEPT.lock().unwrap().push(vec![7u8; (mib as usize) << 20]);
            Ok(Value::Int(mib))
        })
        .build()
        .unwrap();
    let server = Server::builder()
        .config_file(&path)
        .unwrap()
        .registry(std::sync::Arc::new(registry))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let reload = server.config_reload_handle().expect("built from a file");
    let addr = server.local_addr();
    let counters = || server.stats().counters.snapshot();
    let mut c = Conn::open(addr);
    let long = format!("<string>{}</string>", "z".repeat(2000));
    let gzip = [("Accept-Encoding", "gzip".to_owned())];
    // `becho` queued while a 300 ms call someone waits for holds the one worker: it waits
    // ~250 ms for it.
    let queued_behind_a_call = || {
        let popped = counters().queue_pops;
        let holder = std::thread::spawn(move || {
            let r = Conn::open(addr).call("sleep", &["<int>300</int>"]);
            outcome(&r)
        });
        assert!(wait_until(Duration::from_secs(5), || counters().queue_pops > popped));
        std::thread::sleep(Duration::from_millis(50));
        let r = Conn::open(addr).call("becho", &["<int>1</int>"]);
        assert_eq!(holder.join().unwrap(), Ok(Value::Int(300)));
        r
    };

    // As started: no memory watch, no gzip, no time budget, 500 ms of queue wait.
    assert_eq!(
        outcome(&c.call("grow", &["<int>24</int>"])),
        Ok(Value::Int(24))
    );
    assert_eq!(counters().memory_warnings, 0);
    let r = call_with(&mut c, "becho", &[&long], &gzip);
    assert_eq!((r.status, r.header("content-encoding")), (200, None));
    assert_eq!(
        outcome(&c.call("sleep", &["<int>600</int>"])),
        Ok(Value::Int(600))
    );
    assert_eq!(queued_behind_a_call().status, 200);

    // Retuned: each applies to the calls that start after the reload, no restart needed.
    write(
        "memory_warn_threshold_kib = 5000\ngzip_answers_over = 100\n\
         handler_timeout_ms = 400\nmax_queue_wait_ms = 100\n",
    );
    assert!(reload.reload().unwrap().needs_restart.is_empty());
    assert_eq!(
        outcome(&c.call("grow", &["<int>24</int>"])),
        Ok(Value::Int(24))
    );
    assert_eq!(counters().memory_warnings, 1);
    let r = call_with(&mut c, "becho", &[&long], &gzip);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding").as_deref(), Some("gzip"));
    let r = queued_behind_a_call();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(counters().queue_wait_drops, 1);
    let started = Instant::now();
    let (code, message) = outcome(&c.call("sleep", &["<int>1500</int>"])).unwrap_err();
    assert_eq!(code, FaultCodes::default().system_error, "{message}");
    assert!(message.contains("400 ms"), "{message}");
    assert!(started.elapsed() < Duration::from_millis(1200));

    // A request rate set and lifted without a restart.
    write("max_requests_per_ip_per_sec = 1\n");
    assert!(reload.reload().unwrap().needs_restart.is_empty());
    let statuses: Vec<u16> = (0..3)
        .map(|_| Conn::open(addr).call("becho", &["<int>1</int>"]).status)
        .collect();
    assert_eq!(statuses, [200, 429, 429]);
    write("");
    reload.reload().unwrap();
    assert_eq!(
        Conn::open(addr).call("becho", &["<int>1</int>"]).status,
        200
    );
    assert_eq!(
        Conn::open(addr).call("becho", &["<int>1</int>"]).status,
        200
    );
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `max_connections_per_ip` and `max_connections` set, lowered and lifted by a reload: the
/// connections each client held before count, the ones over a lowered limit stay open and
/// served, and a new one is refused until enough have closed.
#[test]
fn a_reload_sets_the_connection_limits() {
    let hub = FromFile::start("reconn");
    let server = &hub.server;
    let addr = server.local_addr();
    let counters = || server.stats().counters.snapshot();
    let served = |c: &mut Conn| c.call("echo", &["<int>1</int>"]).status == 200;
    let held_by = |n: u64| wait_until(Duration::from_secs(10), || counters().connections_held == n);

    // Three connections from one address before any limit.
    let mut held: Vec<Conn> = (0..3).map(|_| open_from("127.0.0.1", addr)).collect();
    assert!(held.iter_mut().all(served));

    // A limit of 2 per client: its three stay, a fourth is refused, another address served.
    hub.reload_with("max_connections_per_ip = 2\n");
    assert_refused(open_from("127.0.0.1", addr));
    assert_eq!(counters().per_ip_rejections, 1);
    assert!(
        held.iter_mut().all(served),
        "held past the limit, still served"
    );
    let mut other = open_from("127.0.0.2", addr);
    assert!(served(&mut other));
    // Two held: at the limit, still refused; one held: room for one.
    drop(held.pop());
    assert!(held_by(3));
    assert_refused(open_from("127.0.0.1", addr));
    drop(held.pop());
    assert!(held_by(2));
    let mut again = open_from("127.0.0.1", addr);
    assert!(served(&mut again));
    held.push(again);

    // All connections: three held (two from .1, one from .2); a limit of 3 refuses a fourth
    // from anywhere, and lifting both limits lets it in.
    hub.reload_with("max_connections = 3\nmax_connections_per_ip = 2\n");
    assert_refused(open_from("127.0.0.3", addr));
    assert_eq!(counters().connections_rejected, 1);
    assert!(held.iter_mut().all(served) && served(&mut other));
    hub.reload_with("");
    let mut more: Vec<Conn> = (0..3).map(|_| open_from("127.0.0.1", addr)).collect();
    assert!(more.iter_mut().all(served), "no limits again");
    assert_eq!(counters().per_ip_rejections, 2);
    assert_eq!(counters().connections_rejected, 1);
}

/// `socket_timeout_ms` lowered by a reload: a connection that goes idle after it is closed
/// at the new timeout, and a head that dribbles is cut; one idle since before keeps the
/// timeout it went idle with. Raised again, an idle connection stays open.
#[test]
fn a_reload_sets_the_socket_timeout() {
    let hub = FromFile::start("retimeout");
    let addr = hub.server.local_addr();
    let served = |c: &mut Conn| c.call("echo", &["<int>1</int>"]).status == 200;
    let mut before = Conn::open(addr);
    assert!(served(&mut before));

    hub.reload_with("socket_timeout_ms = 300\n");
    let mut idle = Conn::open(addr);
    assert!(served(&mut idle));
    let started = Instant::now();
    assert!(
        idle.closed_within(Duration::from_secs(10)),
        "idle past 300 ms"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let mut dribbling = Conn::open(addr);
    std::io::Write::write_all(&mut dribbling.stream, b"POST /RPC2 HTTP/1.1\r\nHost: t").unwrap();
    assert!(
        dribbling.closed_within(Duration::from_secs(10)),
        "a head not finished"
    );
    assert!(
        !before.closed_within(Duration::from_millis(500)),
        "idle since before the reload: its own timeout"
    );
    assert!(served(&mut before));

    hub.reload_with("");
    let mut patient = Conn::open(addr);
    assert!(served(&mut patient));
    assert!(!patient.closed_within(Duration::from_millis(1500)));
    assert!(served(&mut patient));
}
