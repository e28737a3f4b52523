//! A blocking authenticator (`ServerBuilder::blocking_authenticator`) over real sockets: it
//! runs on a worker, so the unit serves its other connections while one request's lookup
//! waits; its answers, refusals and panics reach the client as with one on the unit; its job
//! waits in the worker queue, and a full queue refuses the request.
//!
//! The session and permission tests of `lifecycle.rs` also run with the koji sessions
//! checked on the workers.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod support;

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use hub_core::registry::Registry;
use hub_core::{
    AuthFailure, AuthRequest, Authenticator, Caller, Config, RunningServer, Server, Upload,
};
use hub_xmlrpc::Value;
use lifecycle_support::{call_with, fault_code, multicall_xml, outcome, post, send};
use support::{call_xml, config, Conn};

/// Long enough that only a server that stopped serving misses it.
const LONG: Duration = Duration::from_secs(10);

/// Holds whatever waits at it until the test opens it (or `LONG` passes, so a failing test
/// does not leave threads blocked for good).
#[derive(Debug, Default)]
struct Gate {
    /// How many have arrived, and whether it is open.
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 += 1;
        self.changed.notify_all();
        let _ = self
            .changed
            .wait_timeout_while(state, LONG, |(_, open)| !*open);
    }

    /// Whether `n` have arrived within `LONG`.
    fn arrivals(&self, n: usize) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, _) = self
            .changed
            .wait_timeout_while(state, LONG, |(arrived, _)| *arrived < n)
            .unwrap_or_else(PoisonError::into_inner);
        state.0 >= n
    }

    fn open(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.changed.notify_all();
    }
}

/// Opens both gates when dropped, so a failed assertion does not hang the server's drain.
struct OpenOnDrop(Arc<Gate>, Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
        self.1.open();
    }
}

/// Trusts `X-User` (a lookup standing in for a database's); `X-Wait` holds it at the gate,
/// `X-Panic` makes it panic, the user `refused` is refused. Records the threads it ran on.
#[derive(Debug, Default)]
struct Lookup {
    gate: Arc<Gate>,
    threads: Mutex<Vec<String>>,
}

impl Authenticator for Lookup {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure> {
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        self.threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(thread);
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        if header("x-panic").is_some() {
            panic!("secret-detail of the lookup");
        }
        if header("x-wait").is_some() {
            self.gate.wait();
        }
        match header("x-user") {
            None => Ok(None),
            Some("refused") => Err(AuthFailure::Invalid("no such user: refused".into())),
            Some(name) => Ok(Some(Caller::new(name))),
        }
    }
}

/// A server on one IO unit with `cfg`'s other options, its lookup, and the gate its `hold`
/// method waits at; both gates open when the guard drops. `whoami` (blocking) and `awhoami`
/// (async) answer the caller's name; an upload answers it after reading its body.
fn start(cfg: Config) -> (RunningServer, Arc<Lookup>, Arc<Gate>, OpenOnDrop) {
    fn who(ctx: &hub_core::Context) -> Value {
        ctx.caller()
            .map_or(Value::Nil, |c| Value::from(c.name().to_owned()))
    }
    let lookup = Arc::new(Lookup::default());
    let hold = Arc::new(Gate::default());
    let open = OpenOnDrop(Arc::clone(&lookup.gate), Arc::clone(&hold));
    let held = Arc::clone(&hold);
    let registry = Registry::builder()
        .blocking("whoami", |ctx, _p| Ok(who(ctx)))
        .asynchronous("awhoami", |ctx, _p| async move { Ok(who(&ctx)) })
        .blocking("hold", move |_ctx, _p| {
            held.wait();
            Ok(Value::Nil)
        })
        .build()
        .unwrap();
    let server = Server::builder()
        .config(Config { io_units: 1, ..cfg })
        .registry(Arc::new(registry))
        .blocking_authenticator(Arc::clone(&lookup))
        .upload(|mut upload: Upload| async move {
            while upload.body().chunk().await?.is_some() {}
            Ok(who(upload.context()))
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    (server, lookup, hold, open)
}

fn user(name: &str) -> Vec<(&'static str, String)> {
    vec![("X-User", name.to_owned())]
}

/// Writes a call with `headers` without waiting for its answer.
fn send_with(c: &mut Conn, method: &str, headers: &[(&str, String)]) {
    send(c, &call_xml(method, &[]), headers);
}

/// A connection that gives up on an answer after 5 s.
fn impatient(server: &RunningServer) -> Conn {
    let c = Conn::open(server.local_addr());
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    c
}

#[test]
fn a_blocking_authenticator_runs_on_a_worker_while_its_unit_serves() {
    let (server, lookup, _hold, _open) = start(config());

    // One request's lookup waits at the gate, on a worker...
    let mut waiting = Conn::open(server.local_addr());
    send_with(
        &mut waiting,
        "whoami",
        &[user("alice"), vec![("X-Wait", "1".into())]].concat(),
    );
    assert!(lookup.gate.arrivals(1), "the lookup never started");
    // ...while the unit (the only one) serves other connections, async and blocking calls.
    let mut c = impatient(&server);
    let r = call_with(&mut c, "awhoami", &[], &user("bob"));
    assert_eq!(outcome(&r), Ok(Value::from("bob")));
    let r = call_with(&mut c, "whoami", &[], &user("carol"));
    assert_eq!(outcome(&r), Ok(Value::from("carol")));
    lookup.gate.open();
    let r = waiting.read_response().expect("the held request's answer");
    assert_eq!(outcome(&r), Ok(Value::from("alice")));

    // Anonymous, refused, panicking, a multicall, an upload.
    assert_eq!(outcome(&c.call("whoami", &[])), Ok(Value::Nil));
    let refused = call_with(&mut c, "awhoami", &[], &user("refused"));
    assert_eq!(
        outcome(&refused),
        Err((-32001, "no such user: refused".into()))
    );
    // Refused credentials are not a call of the method, as on the unit; an accepted one is.
    let whoami_stats = || {
        let m = server.stats().method("whoami");
        (m.calls.get(), m.faults.get())
    };
    let before = whoami_stats();
    let refused = call_with(&mut c, "whoami", &[], &user("refused"));
    assert_eq!(fault_code(&refused), -32001);
    assert_eq!(server.stats().counters.snapshot().auth_failures, 2);
    assert_eq!(whoami_stats(), before);
    let r = call_with(&mut c, "whoami", &[], &user("grace"));
    assert_eq!(outcome(&r), Ok(Value::from("grace")));
    assert_eq!(whoami_stats(), (before.0 + 1, before.1));
    let panicked = call_with(&mut c, "whoami", &[], &[("X-Panic", "1".into())]);
    assert_eq!(
        outcome(&panicked),
        Err((-32603, "internal error in authentication".into()))
    );
    let batch = multicall_xml(&[("whoami", &[]), ("awhoami", &[])]);
    let r = post(&mut c, &batch, &user("dave"));
    assert_eq!(r.body.matches("dave").count(), 2, "{}", r.body);
    let upload = "POST /RPC2?filename=x HTTP/1.1\r\nHost: test\r\n\
                  Content-Type: application/octet-stream\r\nX-User: erin\r\n\
                  Content-Length: 3\r\n\r\nabc";
    c.stream.write_all(upload.as_bytes()).unwrap();
    let r = c.read_response().expect("the upload's answer");
    assert_eq!(outcome(&r), Ok(Value::from("erin")));

    // One trip to the pool for each call: a blocking method's lookup runs in its own job.
    let pushes = || server.stats().counters.snapshot().queue_pushes;
    for method in ["whoami", "awhoami"] {
        let before = pushes();
        let r = call_with(&mut c, method, &[], &user("frank"));
        assert_eq!(outcome(&r), Ok(Value::from("frank")));
        assert_eq!(pushes(), before + 1, "{method}");
    }

    // Every lookup ran on a worker, none on the unit.
    let threads = lookup.threads.lock().unwrap().clone();
    assert_eq!(threads.len(), 12, "{threads:?}");
    assert!(
        threads.iter().all(|t| t.starts_with("hub-worker-")),
        "{threads:?}"
    );
    server.shutdown();
}

#[test]
fn a_blocking_authenticator_waits_in_the_worker_queue() {
    let (server, _lookup, hold, _open) = start(Config {
        workers: 1,
        max_queue_length: 1,
        ..config()
    });

    // The one worker is held by a call, and the queue's one place taken by a lookup.
    let mut holding = Conn::open(server.local_addr());
    send_with(&mut holding, "hold", &[]);
    assert!(hold.arrivals(1), "the held call never started");
    let mut queued = Conn::open(server.local_addr());
    send_with(&mut queued, "awhoami", &user("alice"));
    let counters = || server.stats().counters.snapshot();
    assert!(
        support::wait_until(LONG, || {
            let now = counters();
            now.queue_pushes == now.queue_pops + 1
        }),
        "the lookup never reached the queue"
    );
    // An async method needs no worker, but its request's lookup does: refused with the queue.
    let mut c = impatient(&server);
    let r = call_with(&mut c, "awhoami", &[], &user("bob"));
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("server busy"), "{}", r.body);
    hold.open();
    let r = queued.read_response().expect("the queued request's answer");
    assert_eq!(outcome(&r), Ok(Value::from("alice")));
    assert_eq!(outcome(&holding.read_response().unwrap()), Ok(Value::Nil));
    let r = call_with(&mut c, "awhoami", &[], &user("bob"));
    assert_eq!(outcome(&r), Ok(Value::from("bob")));
    server.shutdown();
}

#[test]
fn a_lookup_counts_in_the_budget_of_an_upload_or_a_multicall() {
    let (server, lookup, _hold, _open) = start(Config {
        handler_timeout_ms: 300,
        ..config()
    });
    let upload = |extra: &str| {
        format!(
            "POST /RPC2?filename=x HTTP/1.1\r\nHost: test\r\n\
             Content-Type: application/octet-stream\r\nX-User: erin\r\n{extra}\
             Content-Length: 3\r\n\r\nabc"
        )
    };
    // A lookup held past the budget: the upload gets the budget's fault, not a wait.
    let mut c = impatient(&server);
    let t = std::time::Instant::now();
    c.stream
        .write_all(upload("X-Wait: 1\r\n").as_bytes())
        .unwrap();
    let r = c.read_response().expect("the budget's fault");
    let (code, msg) = outcome(&r).expect_err("a fault");
    assert_eq!(code, -32400, "{msg}");
    assert!(msg.contains("time budget of 300 ms"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(server.stats().counters.snapshot().timeouts, 1);
    // A multicall's lookup has the server's budget (its entries have their methods').
    let mut c = impatient(&server);
    let t = std::time::Instant::now();
    let batch = multicall_xml(&[("whoami", &[])]);
    send(
        &mut c,
        &batch,
        &[("X-User", "erin".into()), ("X-Wait", "1".into())],
    );
    let r = c.read_response().expect("the budget's fault");
    let (code, msg) = outcome(&r).expect_err("a fault");
    assert_eq!(code, -32400, "{msg}");
    assert!(msg.contains("time budget of 300 ms"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(server.stats().counters.snapshot().timeouts, 2);
    lookup.gate.open();
    // A quick lookup leaves the handler the rest of the budget.
    let mut c = impatient(&server);
    c.stream.write_all(upload("").as_bytes()).unwrap();
    let r = c.read_response().expect("the upload's answer");
    assert_eq!(outcome(&r), Ok(Value::from("erin")));
    server.shutdown();
}
