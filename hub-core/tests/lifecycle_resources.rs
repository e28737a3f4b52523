//! Per-request resources with a real SQLite database (a temp file): commit on success,
//! rollback on a fault or a panic, blocking and async handlers, multicall isolation,
//! acquisition failures, and every acquired connection released.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_core::registry::Registry;
use hub_core::{Context, Fault, RequestResource, RpcError, RunningServer, Server, ServerBuilder};
use hub_xmlrpc::Value;
use lifecycle_support::{fault_code, multicall_xml, outcome, post};
use rusqlite::Connection;
use support::{config, Conn};

static ACQUIRED: AtomicUsize = AtomicUsize::new(0);
static RELEASED: AtomicUsize = AtomicUsize::new(0);
static FACTORY_DOWN: AtomicBool = AtomicBool::new(false);
/// The tests share the counters above: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A connection with an open transaction, released (closed) when dropped.
struct Db(Connection);

impl Db {
    fn open(path: &Path) -> Result<Db, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        ACQUIRED.fetch_add(1, Ordering::SeqCst);
        Ok(Db(conn))
    }
}

impl RequestResource for Db {
    fn commit(self) -> Result<(), Fault> {
        self.0
            .execute_batch("COMMIT")
            .map_err(|e| Fault::new(1, format!("commit: {e}")))
    }

    fn rollback(self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        RELEASED.fetch_add(1, Ordering::SeqCst);
    }
}

/// Inserts `name` through this call's connection, then fails as the name says.
fn insert(ctx: &Context, p: &hub_core::Params) -> Result<Value, RpcError> {
    let name = p
        .positional
        .first()
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    ctx.resource::<Db>()?
        .0
        .execute("INSERT INTO t (name) VALUES (?1)", [&name])
        .map_err(|e| Fault::new(2, e.to_string()))?;
    if name.starts_with("fail") {
        return Err(Fault::new(1005, "failed after writing").into());
    }
    if name.starts_with("panic") {
        panic!("panicked after writing");
    }
    Ok(Value::from(name))
}

fn registry() -> Arc<Registry> {
    let r = Registry::builder()
        .blocking("insert", |ctx, p| insert(ctx, &p))
        .asynchronous("ainsert", |ctx, p| async move {
            tokio::task::yield_now().await;
            let r = insert(&ctx, &p);
            tokio::task::yield_now().await;
            r
        })
        .blocking("noop", |_ctx, _p| Ok(Value::Nil))
        .build()
        .unwrap();
    Arc::new(r)
}

fn temp_db(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("hub-lifecycle-{tag}-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (name TEXT NOT NULL)")
        .unwrap();
    path
}

fn rows(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT name FROM t ORDER BY rowid").unwrap();
    let names = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    names
}

fn start(f: impl FnOnce(ServerBuilder) -> ServerBuilder) -> RunningServer {
    let builder = Server::builder().config(config()).registry(registry());
    f(builder).build().unwrap().start().unwrap()
}

#[test]
fn commit_on_success_rollback_on_fault_and_panic() {
    let _serial = serial();
    let path = temp_db("commit");
    let db = path.clone();
    let server = start(|b| b.resource(move |_ctx| Ok(Db::open(&db)?)));
    let mut c = Conn::open(server.local_addr());
    let call =
        |c: &mut Conn, m: &str, name: &str| c.call(m, &[&format!("<string>{name}</string>")]);
    let acquired = ACQUIRED.load(Ordering::SeqCst);
    for m in ["insert", "ainsert"] {
        assert_eq!(
            outcome(&call(&mut c, m, &format!("ok-{m}"))),
            Ok(Value::from(format!("ok-{m}")))
        );
        assert_eq!(fault_code(&call(&mut c, m, &format!("fail-{m}"))), 1005);
        assert_eq!(fault_code(&call(&mut c, m, &format!("panic-{m}"))), -32603);
    }
    // lazy: a call that does not ask acquires nothing
    assert_eq!(outcome(&c.call("noop", &[])), Ok(Value::Nil));
    assert_eq!(ACQUIRED.load(Ordering::SeqCst) - acquired, 6);
    assert_eq!(rows(&path), ["ok-insert", "ok-ainsert"]);

    // multicall: each entry its own transaction; failing ones roll back only themselves
    let body = multicall_xml(&[
        ("insert", &["<string>m1</string>"]),
        ("insert", &["<string>fail-m2</string>"]),
        ("ainsert", &["<string>m3</string>"]),
        ("ainsert", &["<string>panic-m4</string>"]),
        ("insert", &["<string>panic-m5</string>"]),
        ("insert", &["<string>m6</string>"]),
    ]);
    let r = post(&mut c, &body, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.matches("faultCode").count(), 3, "{}", r.body);
    assert_eq!(rows(&path), ["ok-insert", "ok-ainsert", "m1", "m3", "m6"]);
    server.shutdown();
    assert_eq!(
        ACQUIRED.load(Ordering::SeqCst),
        RELEASED.load(Ordering::SeqCst),
        "every connection released"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn acquisition_failure_answers_outage_and_workers_live() {
    let _serial = serial();
    let path = temp_db("outage");
    let db = path.clone();
    let mut cfg = config();
    cfg.faults.offline = 1014;
    cfg.resource_outage_message = "database outage".into();
    let server = Server::builder()
        .config(cfg)
        .registry(registry())
        .eager_resource(move |_ctx| {
            if FACTORY_DOWN.load(Ordering::SeqCst) {
                return Err("connection refused".into());
            }
            Ok(Db::open(&db)?)
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut c = Conn::open(server.local_addr());
    FACTORY_DOWN.store(true, Ordering::SeqCst);
    // more failures than workers, blocking and async: the eager resource is taken even by
    // a method that does not use it, and the handler does not run
    for _ in 0..3 {
        for m in ["insert", "ainsert", "noop"] {
            let r = c.call(m, &["<string>lost</string>"]);
            assert_eq!(outcome(&r), Err((1014, "database outage".into())), "{m}");
        }
    }
    FACTORY_DOWN.store(false, Ordering::SeqCst);
    assert_eq!(
        outcome(&c.call("insert", &["<string>back</string>"])),
        Ok(Value::from("back"))
    );
    assert_eq!(rows(&path), ["back"]);
    server.shutdown();
    let _ = std::fs::remove_file(&path);
}

/// A resource whose commit fails: the call answers the commit's fault.
struct FailingCommit;

impl RequestResource for FailingCommit {
    fn commit(self) -> Result<(), Fault> {
        Err(Fault::new(1001, "deferred constraint violated"))
    }
    fn rollback(self) {}
}

#[test]
fn failed_commit_is_the_answer_and_an_unknown_type_a_fault() {
    let reg = Registry::builder()
        .blocking("commitfail", |ctx, _p| {
            ctx.resource::<FailingCommit>()?;
            Ok(Value::from("handler done"))
        })
        .blocking("undeclared", |ctx, _p| {
            ctx.resource::<Db>()?;
            Ok(Value::Nil)
        })
        .build()
        .unwrap();
    let server = Server::builder()
        .config(config())
        .registry(reg)
        .resource(|_ctx| Ok(FailingCommit))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let mut c = Conn::open(server.local_addr());
    assert_eq!(
        outcome(&c.call("commitfail", &[])),
        Err((1001, "deferred constraint violated".into()))
    );
    let (code, msg) = outcome(&c.call("undeclared", &[])).unwrap_err();
    assert_eq!(code, -32603);
    assert!(msg.contains("no resource of type"), "{msg}");
    server.shutdown();
}
