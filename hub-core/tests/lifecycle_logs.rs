//! What the lifecycle logs, captured from a real server: the memory watch warning (method,
//! growth, arguments cut to 120 characters), the debug call log, and a panic with its method.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod log_capture;
mod support;

use std::sync::{Arc, Mutex};

use hub_core::params::Args;
use hub_core::registry::{Method, ParamDef, Registry};
use hub_core::{Config, Server};
use hub_xmlrpc::Value;
use lifecycle_support::{outcome, ByHeader};
use log_capture::{line_where, logs_until, Capture};
use support::{config, Conn};

/// Memory the `grow` handler keeps, so the growth is still resident after the call.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// `setPassword(user_id: int, password: string)`.
static SET_PASSWORD: [ParamDef; 2] = [
    ParamDef {
        name: "user_id",
        rust_type: "i32",
        optional: false,
        xmlrpc_type: || "int",
    },
    ParamDef {
        name: "password",
        rust_type: "String",
        optional: false,
        xmlrpc_type: || "string",
    },
];

fn registry() -> Arc<Registry> {
    let r = Registry::builder()
        .blocking("grow", |_ctx, p| {
            let mib = p.positional.first().and_then(Value::as_i64).unwrap_or(0);
            let block = vec![7u8; (mib as usize) << 20]; // written, so resident
            KEPT.lock().unwrap().push(block);
            Ok(Value::Int(mib))
        })
        .asynchronous("echo", |_ctx, p| async move {
            Ok(p.positional.into_iter().next().unwrap_or(Value::Nil))
        })
        .blocking("fail", |_ctx, _p| {
            Err(hub_core::Fault::new(1005, "failed on purpose").into())
        })
        .blocking("crash", |_ctx, _p| panic!("boom"))
        // Blocks its IO unit's thread: the mistake the stall warning is for.
        .asynchronous("hog", |_ctx, p| async move {
            let ms = p.positional.first().and_then(Value::as_i64).unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(ms as u64));
            Ok(Value::Int(ms))
        })
        // Runs on after its caller's budget: a worker held by a call nobody waits for.
        .blocking("nap", |_ctx, p| {
            let ms = p.positional.first().and_then(Value::as_i64).unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(ms as u64));
            Ok(Value::Int(ms))
        })
        .method(Method::blocking("login", |_ctx, _p| Ok(Value::Bool(true))).with_sensitive_args())
        // Decodes its arguments as `#[rpc_method(sensitive)]` code does.
        .method(
            Method::blocking("setPassword", |_ctx, params| {
                let mut args = Args::new(params, &SET_PASSWORD)?;
                let _user: i32 = args.take(0)?;
                let _password: String = args.take(1)?;
                Ok(Value::Nil)
            })
            .with_sensitive_args(),
        )
        .method(
            Method::blocking("grow_secret", |_ctx, _p| {
                KEPT.lock().unwrap().push(vec![7u8; 24 << 20]);
                Ok(Value::Nil)
            })
            .with_sensitive_args(),
        )
        .build()
        .unwrap();
    Arc::new(r)
}

fn start(cfg: Config) -> hub_core::RunningServer {
    Server::builder()
        .config(cfg)
        .registry(registry())
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// One test: the subscriber and the captured lines are process-wide.
#[test]
fn memory_watch_call_log_and_panics() {
    let logs = Capture::install(tracing::Level::INFO);
    let long_arg = format!("<string>{}</string>", "y".repeat(500));

    // The memory watch, default threshold (5000 KiB): a call keeping 24 MiB warns; a small
    // one does not.
    let server = start(config());
    let mut c = Conn::open(server.local_addr());
    assert_eq!(
        outcome(&c.call("grow", &["<int>0</int>", &long_arg])),
        Ok(Value::Int(0))
    );
    assert!(!logs.take().contains("grew from"));
    assert_eq!(
        outcome(&c.call("grow", &["<int>24</int>", &long_arg])),
        Ok(Value::Int(24))
    );
    let text = logs.take();
    let line = text
        .lines()
        .find(|l| l.contains("grew from"))
        .unwrap_or_else(|| panic!("no memory warning in {text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("processing request grow with args (24, \"yyy"),
        "{line}"
    );
    let growth: u64 = line
        .split("growth_kib=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no growth_kib in {line}"));
    assert!(growth >= 20 * 1024, "{line}");
    // The args are cut at 120 characters: `(24, "` then 114 `y`s.
    assert!(
        line.contains(&format!("(24, \"{}", "y".repeat(114))),
        "{line}"
    );
    assert!(!line.contains(&"y".repeat(115)), "{line}");
    assert_eq!(server.stats().counters.snapshot().memory_warnings, 1);
    // No call log without debug.
    assert!(!text.contains("outcome="), "{text}");

    // The arguments are found again in the request: the entry of a multicall that grew, with
    // its keyword arguments.
    let entry = |name: &str, params: &str| {
        format!(
            "<value><struct><member><name>methodName</name><value>{name}</value></member>\
             <member><name>params</name><value><array><data>{params}</data></array></value>\
             </member></struct></value>"
        )
    };
    let kwargs = "<value><struct><member><name>__starstar</name><value><boolean>1</boolean>\
                  </value></member><member><name>why</name><value>test</value></member>\
                  </struct></value>";
    let calls = format!(
        "<array><data>{}{}</data></array>",
        entry("echo", "<value>first</value>"),
        entry("grow", &format!("<value><int>24</int></value>{kwargs}"))
    );
    assert!(outcome(&c.call("system.multicall", &[&calls])).is_ok());
    let text = logs.take();
    let line = text
        .lines()
        .find(|l| l.contains("grew from"))
        .unwrap_or_else(|| panic!("no memory warning in {text}"));
    assert!(
        line.contains("processing request grow with args (24, why=\"test\")"),
        "{line}"
    );
    assert_eq!(server.stats().counters.snapshot().memory_warnings, 2);
    // A sensitive method's warning shows no arguments.
    assert!(outcome(&c.call("grow_secret", &["<string>hunter3-secret</string>"])).is_ok());
    let text = logs.take();
    assert!(
        text.contains("processing request grow_secret with args (redacted"),
        "{text}"
    );
    assert!(!text.contains("hunter3"), "{text}");
    server.shutdown();

    // Threshold 0 disables the watch.
    let mut cfg = config();
    cfg.memory_warn_threshold_kib = 0;
    let server = start(cfg);
    let mut c = Conn::open(server.local_addr());
    logs.take();
    assert!(outcome(&c.call("grow", &["<int>24</int>"])).is_ok());
    assert!(!logs.take().contains("grew from"));
    server.shutdown();

    // debug = true: every call logged with method, caller, args, duration and outcome.
    let mut cfg = config();
    cfg.debug = true;
    let server = Server::builder()
        .config(cfg)
        .registry(registry())
        .authenticator(ByHeader)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut c = Conn::open(server.local_addr());
    logs.take();
    assert!(outcome(&c.call("echo", &["<string>hello-debug</string>"])).is_ok());
    let by_alice = lifecycle_support::call_with(
        &mut c,
        "echo",
        &["<string>from-alice</string>"],
        &[("X-User", "alice".to_owned())],
    );
    assert!(outcome(&by_alice).is_ok());
    assert!(outcome(&c.call("fail", &[])).is_err());
    assert!(outcome(&c.call("crash", &[])).is_err());
    assert!(outcome(&c.call(
        "login",
        &["<string>alice</string>", "<string>hunter2-secret</string>"]
    ))
    .is_ok());
    // Its arguments in the wrong order: the decoding fault quotes the password to its caller,
    // but not to the log (found in review).
    let swapped = c.call(
        "setPassword",
        &["<string>hunter2-secret</string>", "<int>5</int>"],
    );
    let fault = outcome(&swapped).unwrap_err();
    assert!(fault.1.contains("hunter2-secret"), "{fault:?}");
    let text = logs.take();
    let call_line = |method: &str| {
        let named = format!("method=\"{method}\"");
        line_where(&text, |l| l.contains(" call ") && l.contains(&named))
    };
    let echo = line_where(&text, |l| l.contains(" call ") && l.contains("hello-debug"));
    assert!(echo.contains("outcome=\"ok\""), "{echo}");
    assert!(echo.contains("elapsed_us="), "{echo}");
    assert!(
        echo.contains("user=\"-\"") && echo.contains("session=\"-\""),
        "anonymous: {echo}"
    );
    // koji's "Completed method M for session S": who called, as well as what.
    let alice = line_where(&text, |l| l.contains(" call ") && l.contains("from-alice"));
    assert!(
        alice.contains("user=\"alice\"") && alice.contains("session=\"42\""),
        "{alice}"
    );
    let fail = call_line("fail");
    assert!(
        fail.contains("outcome=\"fault 1005: failed on purpose\""),
        "{fail}"
    );
    // A method marked sensitive has its arguments redacted, never printed.
    let login = call_line("login");
    assert!(login.contains("redacted"), "{login}");
    let set_password = call_line("setPassword");
    assert!(
        set_password.contains("outcome=\"fault -32602: (message redacted"),
        "{set_password}"
    );
    assert!(!text.contains("hunter2-secret"), "{text}");
    let crash = call_line("crash");
    assert!(crash.contains("internal error in crash: boom"), "{crash}");
    // The panic itself is logged with its method.
    assert!(
        text.lines()
            .any(|l| l.contains("handler panicked") && l.contains("crash") && l.contains("boom")),
        "{text}"
    );
    server.shutdown();

    // A stalled IO unit: warned about once it passes `stall_warn_ms`, then the async
    // handler that blocked it names itself when its poll returns.
    let mut cfg = config();
    cfg.stall_warn_ms = 300;
    let server = start(cfg);
    let mut c = Conn::open(server.local_addr());
    logs.take();
    assert!(outcome(&c.call("hog", &["<int>1200</int>"])).is_ok());
    let text = logs.take();
    line_where(&text, |l| {
        l.contains("WARN") && l.contains("IO unit stalled")
    });
    let blamed = line_where(&text, |l| l.contains("blocked by this async handler"));
    assert!(blamed.contains("method=\"hog\""), "{blamed}");
    server.shutdown();

    blocking_authenticator_logs(&logs);

    held_worker_logs(&logs);

    #[cfg(feature = "tls")]
    tls_certificate_logs(&logs);
}

/// Blocks its IO unit for `slow_login` calls: the mistake of a synchronous database lookup in
/// an authenticator.
struct SlowAuthenticator;

impl hub_core::auth::Authenticator for SlowAuthenticator {
    fn authenticate(
        &self,
        req: &hub_core::auth::AuthRequest<'_>,
    ) -> Result<Option<hub_core::auth::Caller>, hub_core::auth::AuthFailure> {
        if req.method == "slow_login" {
            std::thread::sleep(std::time::Duration::from_millis(1200));
        }
        Ok(None)
    }
}

/// A unit stalled in the authenticator (outside any handler's poll) is named as stalled
/// there, and again when it runs on; set as a blocking authenticator, the same one stalls no
/// unit, and its lookup held past the request's budget is named.
fn blocking_authenticator_logs(logs: &Capture) {
    let serve = |cfg: Config, with: fn(hub_core::ServerBuilder) -> hub_core::ServerBuilder| {
        with(Server::builder().config(cfg).registry(registry()))
            .build()
            .unwrap()
            .start()
            .unwrap()
    };
    let server = serve(
        Config {
            stall_warn_ms: 300,
            ..config()
        },
        |b| b.authenticator(SlowAuthenticator),
    );
    let mut c = Conn::open(server.local_addr());
    logs.take();
    // No such method: the authenticator runs first all the same.
    assert!(outcome(&c.call("slow_login", &[])).is_err());
    let text = logs_until(logs, "IO unit running again");
    let stalled = line_where(&text, |l| l.contains("IO unit stalled"));
    assert!(
        stalled.contains("inside=\"the authenticator\""),
        "{stalled}"
    );
    let again = line_where(&text, |l| l.contains("IO unit running again"));
    assert!(again.contains("blocked in the authenticator"), "{again}");
    server.shutdown();

    // The same one set as a blocking authenticator: its unit does not stall; a lookup still
    // running past its request's budget is named as the authenticator's.
    let server = serve(
        Config {
            stall_warn_ms: 300,
            handler_timeout_ms: 300,
            ..config()
        },
        |b| b.blocking_authenticator(SlowAuthenticator),
    );
    let mut c = Conn::open(server.local_addr());
    logs.take();
    let (_, fault) = outcome(&c.call("slow_login", &[])).unwrap_err();
    assert!(fault.contains("time budget"), "{fault}");
    let text = logs_until(logs, "still running after");
    let held = line_where(&text, |l| l.contains("still running after its caller"));
    assert!(held.contains("method=\"authenticator\""), "{held}");
    assert!(!text.contains("IO unit stalled"), "{text}");
    server.shutdown();
}

/// Workers held by calls past their callers' budget: each call is named as still running,
/// a stand-in is started for the first, the pool (the stand-in held too) is named as
/// saturated and as held whole, and its recovery is logged.
fn held_worker_logs(logs: &Capture) {
    let server = start(Config {
        workers: 1,
        handler_timeout_ms: 200,
        stall_warn_ms: 300,
        ..config()
    });
    let addr = server.local_addr();
    logs.take();
    let nap = move || {
        let (_, fault) = outcome(&Conn::open(addr).call("nap", &["<int>1500</int>"])).unwrap_err();
        assert!(fault.contains("time budget"), "{fault}");
    };
    nap();
    let mut text = logs_until(logs, "stand-in workers started");
    nap();
    text.push_str(&logs_until(logs, "free worker again"));
    let line = |what: &str| line_where(&text, |l| l.contains(what));
    let running = line("still running after its caller stopped waiting");
    assert!(
        running.contains("WARN") && running.contains("method=\"nap\""),
        "{running}"
    );
    assert!(line("stand-in workers started").contains("INFO"));
    let saturated = line("worker pool saturated");
    assert!(saturated.contains("running=nap ×2 (longest"), "{saturated}");
    let held = line("every worker, stand-ins included, is held");
    assert!(held.contains("WARN") && held.contains("nap ×2"), "{held}");
    assert!(line("free worker again").contains("INFO"));
    // Said once each, however long the calls ran.
    let once = |what: &str| assert_eq!(text.matches(what).count(), 1, "{what:?} in {text}");
    once("stand-in workers started");
    once("worker pool saturated");
    once("is held by a call whose caller stopped waiting");
    assert_eq!(text.matches("still running after").count(), 2, "{text}");
    server.shutdown();
}

#[cfg(feature = "tls")]
#[path = "../../tests/support/pki.rs"]
mod pki;

/// The certificate a TLS server is built with is named in the log with its end date, and
/// one that is not valid now is warned about (what clients will refuse).
#[cfg(feature = "tls")]
fn tls_certificate_logs(logs: &Capture) {
    let pki = pki::Pki::new("logs");
    let build = |cert: String, key: String| {
        Server::builder()
            .config(Config {
                tls_cert_file: Some(cert.into()),
                tls_key_file: Some(key.into()),
                ..config()
            })
            .registry(registry())
            .build()
            .unwrap()
    };
    logs.take();
    let _valid = build(pki.dir.path("server.pem"), pki.dir.path("server.key"));
    let text = logs.take();
    let line = text
        .lines()
        .find(|l| l.contains("serving TLS certificate"))
        .unwrap_or_else(|| panic!("no certificate line in {text}"));
    assert!(
        line.contains("CN=localhost") && line.contains("server.pem") && line.contains("until="),
        "{line}"
    );
    assert!(!text.contains("not valid now"), "{text}");

    let (cert, key) = pki.expired_server();
    let _expired = build(cert, key);
    let text = logs.take();
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("not valid now") && l.contains("2001")),
        "{text}"
    );
}
