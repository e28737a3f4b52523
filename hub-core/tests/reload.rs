//! The config file read again while serving: the switches it turns, the keys only a restart
//! applies, a bad file that changes nothing.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod log_capture;
mod support;

use hub_core::{FaultCodes, Server};
use hub_xmlrpc::Value;
use lifecycle_support::outcome;
use log_capture::{logs_until, Capture};
use support::{config, registry, Conn};

/// The options every version of the test's file starts with.
const BASE: &str = "listen = \"127.0.0.1:0\"\nio_units = 1\nstat_interval_secs = 0\n";

#[test]
fn a_reload_switches_offline_lockout_debug_and_the_access_log() {
    let logs = Capture::install(tracing::Level::INFO);
    let dir = std::env::temp_dir().join(format!("hub-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hub.toml");
    let write = |extra: &str| std::fs::write(&path, format!("{BASE}{extra}")).unwrap();
    write("");
    let server = Server::builder()
        .config_file(&path)
        .unwrap()
        .registry(registry())
        .build()
        .unwrap()
        .start()
        .unwrap();
    let reload = server.config_reload_handle().expect("built from a file");
    let mut c = Conn::open(server.local_addr());
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
    std::fs::write(&path, "not = [toml").unwrap();
    assert!(reload.reload().is_err());
    assert!(server.status().is_locked_out());

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
    server.shutdown();

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
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fault code `echo` answers now (panics on a value).
fn fault_code(c: &mut Conn) -> i32 {
    match outcome(&c.call("echo", &["<int>9</int>"])) {
        Err((code, _)) => code,
        Ok(v) => panic!("served: {v:?}"),
    }
}
