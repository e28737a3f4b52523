//! Floods and faults inside, over real sockets: more connections than `max_connections`,
//! more blocking calls than the queue holds, panicking handlers, handlers over their time
//! budget (`handler_timeout_ms`), failing resource hooks, and refused credentials. Each call is
//! answered, workers live on, resources are released, guarded methods never run for the
//! refused.
#![allow(clippy::unwrap_used)]

mod hostile_support;
mod lifecycle_support;
mod support;

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hostile_support::{held, start, start_with, GUARDED_RUNS};
use hub_core::registry::Method;
use hub_core::{Caller, Fault, RequestResource, SessionStore};
use hub_xmlrpc::Value;
use lifecycle_support::{call_with, outcome, session};
use support::{call_xml, config, ms_arg, wait_until, Conn};

const LONG: Duration = Duration::from_secs(10);

/// Latency of `n` async echo calls on one keep-alive connection: the slowest.
fn slowest_echo(c: &mut Conn, n: usize) -> Duration {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            let r = c.call("echo", &[&format!("<int>{i}</int>")]);
            assert_eq!(outcome(&r), Ok(Value::Int(i as i64)));
            t.elapsed()
        })
        .max()
        .unwrap_or_default()
}

#[test]
fn connection_flood_is_refused_and_a_held_client_still_served() {
    let mut cfg = config();
    cfg.max_connections = 20;
    let server = start(cfg);
    let addr = server.local_addr();
    let mut good = Conn::open(addr);
    let baseline = slowest_echo(&mut good, 20);
    // 19 more held, then 200 past the limit, from 8 threads at once
    let held_conns: Vec<_> = (0..19)
        .map(|_| {
            let mut c = Conn::open(addr);
            assert_eq!(c.call("echo", &["<int>0</int>"]).status, 200);
            c
        })
        .collect();
    let flood: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut refused = 0;
                for _ in 0..25 {
                    let mut c = Conn::open(addr);
                    c.send("POST", "/RPC2", &call_xml("echo", &["<int>1</int>"]));
                    let r = c.read_response().expect("an answer, not a silent close");
                    assert_eq!(r.status, 503, "{r:?}");
                    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
                    refused += 1;
                }
                refused
            })
        })
        .collect();
    let during = slowest_echo(&mut good, 50);
    let refused: usize = flood.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(refused, 200);
    eprintln!("held client during the flood: slowest {during:?} (before: {baseline:?})");
    assert!(during < Duration::from_secs(1), "{during:?}");
    assert_eq!(server.stats().counters.snapshot().connections_rejected, 200);
    drop(held_conns);
    drop(good);
    assert!(wait_until(LONG, || held(&server) == 0));
    assert_eq!(Conn::open(addr).call("echo", &["<int>9</int>"]).status, 200);
    server.shutdown();
}

#[test]
fn queue_flood_is_refused_503_and_async_calls_unaffected() {
    let mut cfg = config();
    cfg.workers = 2;
    cfg.max_queue_length = 4;
    cfg.max_queue_wait_ms = 60_000;
    let server = start(cfg);
    let addr = server.local_addr();
    let mut good = Conn::open(addr);
    let baseline = slowest_echo(&mut good, 20);
    let flood: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                let mut statuses = Vec::new();
                for _ in 0..5 {
                    let r = c.call("sleep", &["<int>30</int>"]);
                    if r.status == 503 {
                        assert_eq!(r.header("retry-after").as_deref(), Some("1"));
                    } else {
                        assert_eq!(outcome(&r), Ok(Value::Int(30)));
                    }
                    statuses.push(r.status);
                }
                statuses
            })
        })
        .collect();
    let during = slowest_echo(&mut good, 50);
    let statuses: Vec<u16> = flood.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    eprintln!("queue flood: {ok} served, {busy} refused; async echo slowest {during:?} (before: {baseline:?})");
    assert_eq!(ok + busy, 200, "every call answered 200 or 503");
    assert!(busy > 0 && ok > 0);
    assert!(during < Duration::from_secs(1), "{during:?}");
    // the flood is over: blocking calls are served again (once QoS has calmed down)
    let served = wait_until(LONG, || {
        std::thread::sleep(Duration::from_millis(50));
        good.call("becho", &["<string>after</string>"]).status == 200
    });
    assert!(served, "blocking calls still refused after the flood");
    server.shutdown();
}

#[test]
fn panicking_handlers_leave_workers_alive() {
    hostile_support::quiet_deliberate_panics();
    let mut cfg = config();
    cfg.workers = 2;
    let server = start(cfg);
    let mut c = Conn::open(server.local_addr());
    for i in 0..50 {
        let method = if i % 2 == 0 { "crash" } else { "acrash" };
        let r = c.call(method, &[]);
        let (code, msg) = outcome(&r).unwrap_err();
        assert_eq!(code, -32603);
        assert!(!msg.contains("boom"), "panic text leaked: {msg}");
        let r = c.call("becho", &[&format!("<int>{i}</int>")]);
        assert_eq!(outcome(&r), Ok(Value::Int(i)));
    }
    assert_eq!(server.stats().counters.snapshot().panics, 50);
    server.shutdown();
}

/// Counts resources made, committed, rolled back, and alive.
#[derive(Default)]
struct Ledger {
    made: AtomicUsize,
    committed: AtomicUsize,
    rolled_back: AtomicUsize,
    alive: AtomicUsize,
}

struct Tracked(Arc<Ledger>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RequestResource for Tracked {
    fn commit(self) -> Result<(), Fault> {
        self.0.committed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn rollback(self) {
        self.0.rolled_back.fetch_add(1, Ordering::SeqCst);
    }
}

/// Known defect (2): a handler over `handler_timeout_ms` is answered with a fault at once.
#[test]
fn handlers_over_their_time_budget_are_answered() {
    let ledger = Arc::new(Ledger::default());
    let mut cfg = config();
    cfg.workers = 1;
    cfg.handler_timeout_ms = 300;
    // The monitor looks at the pool every 50 ms: a held worker's stand-in comes quickly.
    cfg.stall_warn_ms = 200;
    let server = {
        let ledger = Arc::clone(&ledger);
        start_with(cfg, move |b| {
            b.eager_resource(move |_ctx| {
                ledger.made.fetch_add(1, Ordering::SeqCst);
                ledger.alive.fetch_add(1, Ordering::SeqCst);
                Ok(Tracked(Arc::clone(&ledger)))
            })
        })
    };
    let addr = server.local_addr();
    let mut c = Conn::open(addr);
    // within budget: served
    assert_eq!(
        outcome(&c.call("asleep", &["<int>10</int>"])),
        Ok(Value::Int(10))
    );
    // async over budget: the fault at the budget, the future dropped, its resource rolled back
    let t = Instant::now();
    let (code, msg) = outcome(&c.call("asleep", &["<int>20000</int>"])).unwrap_err();
    let took = t.elapsed();
    assert_eq!(code, -32400, "{msg}");
    assert!(msg.contains("300 ms"), "{msg}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(wait_until(LONG, || ledger.alive.load(Ordering::SeqCst) == 0));
    // blocking over budget: the fault at the budget; the worker runs on until the handler
    // returns, then serves the next call; the late result is discarded and its resource
    // rolled back, not committed (the caller was told the call failed)
    let committed_before = ledger.committed.load(Ordering::SeqCst);
    let t = Instant::now();
    let (code, _) = outcome(&c.call("sleep", &["<int>1500</int>"])).unwrap_err();
    assert_eq!(code, -32400);
    assert!(
        t.elapsed() < Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
    // the only worker is still asleep, held by a call nobody waits for: a stand-in serves
    let r = Conn::open(addr).call("becho", &["<string>early</string>"]);
    assert_eq!(outcome(&r), Ok(Value::from("early")));
    // once the handler returns, the worker serves again
    std::thread::sleep(Duration::from_millis(1600).saturating_sub(t.elapsed()));
    assert!(wait_until(LONG, || ledger.alive.load(Ordering::SeqCst) == 0));
    assert_eq!(
        ledger.committed.load(Ordering::SeqCst),
        committed_before + 1,
        "the abandoned blocking call's late success must not be committed (only the \
         stand-in's call is)"
    );
    let served = wait_until(LONG, || {
        outcome(&Conn::open(addr).call("becho", &["<string>next</string>"]))
            == Ok(Value::from("next"))
    });
    assert!(served, "the worker never came back");
    // the connection that got the fault is still usable
    assert_eq!(
        outcome(&c.call("echo", &["<int>3</int>"])),
        Ok(Value::Int(3))
    );
    assert!(wait_until(LONG, || ledger.alive.load(Ordering::SeqCst) == 0));
    let made = ledger.made.load(Ordering::SeqCst);
    let settled =
        ledger.committed.load(Ordering::SeqCst) + ledger.rolled_back.load(Ordering::SeqCst);
    assert_eq!(made, settled, "every resource committed or rolled back");
    server.shutdown();
}

/// An eager resource hook that fails or panics every other call: each call is answered, the
/// handler does not run for the failures, the rest commit.
#[test]
fn failing_resource_hook_is_answered_and_released() {
    hostile_support::quiet_deliberate_panics();
    let ledger = Arc::new(Ledger::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let mut cfg = config();
    cfg.workers = 2;
    let server = {
        let (ledger, calls) = (Arc::clone(&ledger), Arc::clone(&calls));
        start_with(cfg, move |b| {
            b.eager_resource(move |_ctx| match calls.fetch_add(1, Ordering::SeqCst) % 3 {
                0 => Err("database outage".into()),
                1 => panic!("factory panicked"),
                _ => {
                    ledger.made.fetch_add(1, Ordering::SeqCst);
                    ledger.alive.fetch_add(1, Ordering::SeqCst);
                    Ok(Tracked(Arc::clone(&ledger)))
                }
            })
        })
    };
    let mut c = Conn::open(server.local_addr());
    let runs = hostile_support::TOUCH_RUNS.load(Ordering::SeqCst);
    let mut ok = 0;
    for i in 0..30 {
        match outcome(&c.call("touch", &[])) {
            Ok(_) => ok += 1,
            Err((code, msg)) => assert!(code == -32400 || code == -32603, "call {i}: {code} {msg}"),
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(
        hostile_support::TOUCH_RUNS.load(Ordering::SeqCst) - runs,
        10
    );
    assert!(wait_until(LONG, || ledger.alive.load(Ordering::SeqCst) == 0));
    assert_eq!(ledger.committed.load(Ordering::SeqCst), 10);
    // the workers live: of three calls, one gets its resource
    let ok = (0..3)
        .filter(|_| outcome(&c.call("becho", &["<int>1</int>"])) == Ok(Value::Int(1)))
        .count();
    assert_eq!(ok, 1);
    server.shutdown();
}

/// Serializes the tests that read `GUARDED_RUNS`.
static GUARD: Mutex<()> = Mutex::new(());

#[test]
fn refused_credentials_never_run_a_guarded_method() {
    let _g = GUARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sessions = Arc::new(SessionStore::new());
    let server = start_with(config(), |b| b.authenticator(Arc::clone(&sessions)));
    let addr = server.local_addr();
    let runs = GUARDED_RUNS.load(Ordering::SeqCst);
    let mut c = Conn::open(addr);
    let refused = |c: &mut Conn, headers: &[(&str, String)]| {
        outcome(&call_with(c, "guarded", &[], headers))
            .unwrap_err()
            .0
    };
    // without a session: the permission fault
    assert_eq!(refused(&mut c, &[]), -32002);
    // a session without the permission
    let (plain, plain_key) = sessions.create(Caller::new("plain")).unwrap();
    assert_eq!(
        refused(&mut c, &session(plain as i64, &plain_key, 1)),
        -32002
    );
    // a wrong key, a malformed id, an unknown id, a partial set
    let (id, key) = sessions
        .create(Caller::new("holder").with_perm("secret"))
        .unwrap();
    assert_eq!(refused(&mut c, &session(id as i64, "wrong-key", 1)), -32001);
    assert_eq!(
        refused(
            &mut c,
            &[
                ("Koji-Session-Id", "not-a-number".into()),
                ("Koji-Session-Key", key.clone()),
                ("Koji-Session-Callnum", "1".into())
            ]
        ),
        -32001
    );
    assert_eq!(refused(&mut c, &session(id as i64 + 1000, &key, 1)), -32001);
    assert_eq!(
        refused(&mut c, &[("Koji-Session-Id", id.to_string())]),
        -32001
    );
    // the right session runs it once; replaying the same call number is refused, and so is an
    // older one
    let r = call_with(&mut c, "guarded", &[], &session(id as i64, &key, 5));
    assert_eq!(outcome(&r), Ok(Value::from("secret data")));
    assert_eq!(refused(&mut c, &session(id as i64, &key, 5)), -32004);
    assert_eq!(refused(&mut c, &session(id as i64, &key, 4)), -32003);
    // expired (destroyed): refused
    assert!(sessions.destroy(id));
    assert_eq!(refused(&mut c, &session(id as i64, &key, 6)), -32001);
    // a multicall does not bypass the check
    let mc = lifecycle_support::multicall_xml(&[("guarded", &[]), ("echo", &["<int>1</int>"])]);
    let r = lifecycle_support::post(&mut c, &mc, &[]);
    let v = outcome(&r).unwrap();
    let entries = v.as_array().unwrap();
    assert!(
        format!("{:?}", entries[0]).contains("-32002"),
        "{:?}",
        entries[0]
    );
    assert_eq!(
        GUARDED_RUNS.load(Ordering::SeqCst) - runs,
        1,
        "ran only for the valid session"
    );
    drop(c);
    assert!(wait_until(LONG, || held(&server) == 0));
    let _ = TcpStream::connect(addr);
    server.shutdown();
}

/// An async handler that blocks its IO unit's thread (here `std::thread::sleep`, in real
/// code a synchronous database call) is noticed: counted once per stall in `unit_stalls`
/// (and warned about) while the other unit keeps serving; a server doing ordinary work has
/// no stall.
#[test]
fn an_async_handler_blocking_its_unit_is_noticed() {
    let registry = support::registry_builder()
        .asynchronous("hog", |_ctx, p| async move {
            let ms = support::ms_arg(&p)?;
            // The mistake on purpose: blocking work in an async handler.
            std::thread::sleep(Duration::from_millis(ms));
            Ok(Value::Int(ms as i64))
        })
        .build()
        .unwrap();
    let server = hub_core::Server::builder()
        .config(hub_core::Config {
            // Well over what a loaded 2-core box delays a timer by.
            stall_warn_ms: 500,
            io_units: 2,
            ..config()
        })
        .registry(Arc::new(registry))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let addr = server.local_addr();
    let stalls = || server.stats().counters.snapshot().unit_stalls;
    // Connections are dealt round robin: one to each unit.
    let mut hogged = Conn::open(addr);
    let mut other = Conn::open(addr);
    for _ in 0..20 {
        assert_eq!(hogged.call("echo", &["<int>1</int>"]).status, 200);
        assert_eq!(other.call("echo", &["<int>2</int>"]).status, 200);
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(stalls(), 0, "a stall without a blocking handler");

    hogged.send("POST", "/RPC2", &call_xml("hog", &["<int>2500</int>"]));
    assert!(
        wait_until(Duration::from_secs(5), || stalls() == 1),
        "the blocked unit went unnoticed"
    );
    // The other unit serves on meanwhile.
    let started = Instant::now();
    assert_eq!(other.call("echo", &["<int>3</int>"]).status, 200);
    assert!(started.elapsed() < Duration::from_millis(500));
    let r = hogged.read_response().unwrap();
    assert!(r.body.contains("<int>2500</int>"), "{r:?}");
    // One stall, counted once however long it lasted.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(stalls(), 1);
    server.shutdown();
}

/// Blocking handlers that outlive their callers (in real code a database lock that never
/// comes) hold their workers; the callers get the time-budget fault. Each held worker gets a
/// stand-in, so blocking calls are still served. Past the cap (as many stand-ins as
/// workers) the pool's saturation is noticed, counted once in `pool_saturations`, and calls
/// needing a worker wait past their budget; once the handlers return the pool serves again
/// and shrinks back to its size. A pool kept busy by calls that end is not saturated.
#[test]
fn workers_held_past_their_callers_get_stand_ins_and_the_pool_recovers() {
    let server = support::start(hub_core::Config {
        workers: 2,
        handler_timeout_ms: 300,
        stall_warn_ms: 400,
        // Not under test: QoS would refuse some of the turning-over calls.
        fast_reject_threshold_ms: 10_000,
        ..config()
    });
    let addr = server.local_addr();
    let counters = || server.stats().counters.snapshot();
    // Both workers busy most of the time, but every call ends within 50 ms.
    let turning_over: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                let until = Instant::now() + Duration::from_millis(1200);
                while Instant::now() < until {
                    let r = c.call("sleep", &["<int>50</int>"]);
                    assert_eq!(outcome(&r), Ok(Value::Int(50)));
                }
            })
        })
        .collect();
    for t in turning_over {
        t.join().unwrap();
    }
    assert_eq!(counters().pool_saturations, 0, "a pool whose calls end");
    assert_eq!(counters().stand_in_workers, 0, "a pool whose calls end");

    // Calls that run 4 s against a budget of 300 ms, on their own connections.
    let hold = |n: usize| -> Vec<_> {
        (0..n)
            .map(|_| {
                std::thread::spawn(move || {
                    let r = Conn::open(addr).call("sleep", &["<int>4000</int>"]);
                    let (_, fault) = outcome(&r).unwrap_err();
                    assert!(fault.contains("time budget"), "{fault}");
                })
            })
            .collect()
    };
    let held_at = Instant::now();
    for t in hold(2) {
        t.join().unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(2), || counters().stand_in_workers == 2),
        "no stand-ins for the held workers"
    );
    // Both workers held, yet a blocking call is served, by a stand-in.
    let mut c = Conn::open(addr);
    assert_eq!(
        outcome(&c.call("becho", &["<int>1</int>"])),
        Ok(Value::Int(1))
    );
    assert_eq!(counters().pool_saturations, 0);

    // Two more: every worker, stand-ins included, is held, and no more are started.
    for t in hold(2) {
        t.join().unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(2), || counters().pool_saturations == 1),
        "the held pool went unnoticed"
    );
    assert_eq!(
        counters().stand_in_workers,
        2,
        "stand-ins are capped at `workers`"
    );
    let (_, fault) = outcome(&c.call("becho", &["<int>2</int>"])).unwrap_err();
    assert!(fault.contains("time budget"), "{fault}");
    assert!(
        held_at.elapsed() < Duration::from_millis(3500),
        "the test ran too slow"
    );
    // The async units serve on meanwhile.
    assert_eq!(
        outcome(&c.call("echo", &["<int>3</int>"])),
        Ok(Value::Int(3))
    );

    // The handlers return: the pool serves again and shrinks back to its two workers.
    assert!(
        wait_until(Duration::from_secs(5), || {
            let r = c.call("becho", &["<int>4</int>"]);
            r.status == 200 && outcome(&r) == Ok(Value::Int(4))
        }),
        "the pool did not recover"
    );
    assert!(
        wait_until(Duration::from_secs(5), || counters().stand_in_workers == 0),
        "the stand-ins did not retire"
    );
    for i in 5..25 {
        assert_eq!(
            outcome(&c.call("becho", &[&format!("<int>{i}</int>")])),
            Ok(Value::Int(i))
        );
    }
    assert_eq!(
        counters().pool_saturations,
        1,
        "one saturation, counted once"
    );
    server.shutdown();
}

/// Held and released again and again, a one-worker pool gets a stand-in each time and
/// retires it each time. The monitor used to count a retirement after sending its stop, and
/// a worker quick to take the stop and leave left the count one too high for good: the next
/// stand-in stayed (within 2–30 cycles with workers preempting, found in review). Workers
/// under the default policy here, so a woken worker runs before the monitor goes on.
#[test]
fn every_stand_in_is_retired_however_often_the_pool_is_held() {
    let server = start(hub_core::Config {
        workers: 1,
        handler_timeout_ms: 20,
        stall_warn_ms: 40,
        batch_scheduled_workers: false,
        fast_reject_threshold_ms: 10_000,
        ..config()
    });
    let counters = || server.stats().counters.snapshot();
    let mut c = Conn::open(server.local_addr());
    let start = Instant::now();
    let mut cycle = 0;
    while cycle < 200 && start.elapsed() < Duration::from_secs(6) {
        cycle += 1;
        // Over its budget: the worker is held by a call nobody waits for.
        assert!(outcome(&c.call("sleep", &["<int>60</int>"])).is_err());
        assert!(
            wait_until(Duration::from_secs(2), || counters().stand_in_workers == 1),
            "cycle {cycle}: no stand-in"
        );
        assert!(
            wait_until(Duration::from_secs(2), || counters().stand_in_workers == 0),
            "cycle {cycle}: the stand-in was never retired"
        );
    }
    assert!(cycle >= 20, "only {cycle} cycles");
}

/// A call held past its budget does not teach QoS that the pool is slow: its run time is
/// no measure of the pool's service (a stand-in took its worker's place). One held call of
/// 3 s used to raise the predicted wait so far that the next bursts of quick calls on an
/// idle pool were refused 503 (17–21 of 30; found in review).
#[test]
fn a_call_held_past_its_budget_does_not_make_qos_refuse_an_idle_pool() {
    let server = start(hub_core::Config {
        workers: 2,
        handler_timeout_ms: 50,
        stall_warn_ms: 100,
        ..config()
    });
    let addr = server.local_addr();
    let counters = || server.stats().counters.snapshot();
    // Six clients at once, each making five quick blocking calls.
    let burst = || {
        let clients: Vec<_> = (0..6)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut c = Conn::open(addr);
                    for _ in 0..5 {
                        let r = c.call("sleep", &["<int>2</int>"]);
                        assert!(r.status == 200 || r.status == 503, "{r:?}");
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
    };
    burst();
    assert_eq!(counters().fast_rejects, 0, "quick calls on an idle pool");
    // Answered the budget's fault at 50 ms; its worker is held for 1.5 s.
    assert!(outcome(&Conn::open(addr).call("sleep", &["<int>1500</int>"])).is_err());
    std::thread::sleep(Duration::from_millis(1700));
    burst();
    assert_eq!(
        counters().fast_rejects,
        0,
        "quick calls refused after one held call returned"
    );
}

/// A budget that runs out while a finished call's commit is under way waits for the
/// commit: the caller is answered what was committed, alone and in a multicall. It used to
/// be told "exceeded its time budget" (and a multicall's later entries "not run") while
/// its work was committed all the same (found in review).
#[test]
fn a_call_whose_commit_outlasts_its_budget_is_answered_as_committed() {
    static COMMITTED: AtomicUsize = AtomicUsize::new(0);
    struct SlowCommit;
    impl RequestResource for SlowCommit {
        fn commit(self) -> Result<(), Fault> {
            std::thread::sleep(Duration::from_millis(300));
            COMMITTED.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn rollback(self) {}
    }
    let server = start_with(
        hub_core::Config {
            handler_timeout_ms: 100,
            ..config()
        },
        |b| b.eager_resource(|_ctx| Ok(SlowCommit)),
    );
    let mut c = Conn::open(server.local_addr());
    // The handler returns at once; its commit takes 300 ms of the 100 ms budget.
    assert_eq!(
        outcome(&c.call("becho", &["<int>1</int>"])),
        Ok(Value::Int(1))
    );
    assert_eq!(COMMITTED.load(Ordering::SeqCst), 1);
    let body = lifecycle_support::multicall_xml(&[
        ("becho", &["<int>2</int>"]),
        ("becho", &["<int>3</int>"]),
    ]);
    let r = lifecycle_support::post(&mut c, &body, &[]);
    let got = outcome(&r).unwrap();
    assert_eq!(
        got,
        Value::Array(vec![
            Value::Array(vec![Value::Int(2)]),
            Value::Array(vec![Value::Int(3)])
        ]),
        "{}",
        r.body
    );
    assert_eq!(COMMITTED.load(Ordering::SeqCst), 3);
}

#[test]
fn a_method_s_own_time_budget_replaces_the_server_s() {
    fn sleeper(name: &'static str) -> Method {
        Method::blocking(name, |_ctx, p| {
            let ms = ms_arg(&p)?;
            std::thread::sleep(Duration::from_millis(ms));
            Ok(Value::Int(ms as i64))
        })
    }
    let budgeted = |server_budget_ms: u64| {
        let registry = support::registry_builder()
            .method(sleeper("patient").with_timeout(Duration::from_secs(5)))
            .method(sleeper("unbounded").with_timeout(Duration::ZERO))
            .method(sleeper("hasty").with_timeout(Duration::from_millis(150)))
            .method(
                Method::asynchronous("ahasty", |_ctx, p| async move {
                    let ms = ms_arg(&p)?;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(Value::Int(ms as i64))
                })
                .with_timeout(Duration::from_millis(150)),
            )
            .build()
            .unwrap();
        let cfg = hub_core::Config {
            workers: 4,
            handler_timeout_ms: server_budget_ms,
            ..config()
        };
        hub_core::Server::builder()
            .config(cfg)
            .registry(registry)
            .build()
            .unwrap()
            .start()
            .unwrap()
    };
    let over_budget = |c: &mut Conn, method: &str, ms: u64, budget_ms: u64| {
        let t = Instant::now();
        let r = c.call(method, &[&format!("<int>{ms}</int>")]);
        let took = t.elapsed();
        let (code, msg) = outcome(&r).expect_err("the budget's fault");
        assert_eq!(code, -32400, "{method}: {msg}");
        assert!(msg.contains(&format!("{budget_ms} ms")), "{method}: {msg}");
        assert!(took < Duration::from_millis(ms - 300), "{method}: {took:?}");
    };

    let server = budgeted(400);
    let mut c = Conn::open(server.local_addr());
    // The server's budget, and two methods that outlast it with their own.
    over_budget(&mut c, "sleep", 1200, 400);
    for method in ["patient", "unbounded"] {
        assert_eq!(
            outcome(&c.call(method, &["<int>900</int>"])),
            Ok(Value::Int(900)),
            "{method}"
        );
    }
    // Shorter than the server's, blocking and async.
    over_budget(&mut c, "hasty", 1500, 150);
    over_budget(&mut c, "ahasty", 1500, 150);
    // A multicall's entries each run within their method's budget, as called alone (the
    // first two take 900 ms together, past the server's 400); the batch stops at the first
    // entry over its budget, and keeps the answers before it.
    let timeouts = |s: &hub_core::RunningServer| s.stats().counters.snapshot().timeouts;
    let before = timeouts(&server);
    let batch = lifecycle_support::multicall_xml(&[
        ("patient", &["<int>600</int>"]),
        ("sleep", &["<int>300</int>"]),
        ("hasty", &["<int>1500</int>"]),
        ("sleep", &["<int>1</int>"]),
    ]);
    let t = Instant::now();
    let r = lifecycle_support::post(&mut c, &batch, &[]);
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t.elapsed()
    );
    let answers = lifecycle_support::entries(&r);
    assert_eq!(answers[..2], [Ok(Value::Int(600)), Ok(Value::Int(300))]);
    let (code, msg) = answers[2].clone().expect_err("hasty's own budget");
    assert_eq!(code, -32400);
    assert!(msg.contains("budget of 150 ms"), "{msg}");
    let (code, msg) = answers[3].clone().expect_err("not run");
    assert_eq!(code, -32400);
    assert!(msg.contains("not run: entry 2 (hasty)"), "{msg}");
    assert_eq!(answers.len(), 4);
    assert_eq!(timeouts(&server) - before, 1);
    // An entry without a budget of its own has the server's.
    let batch = lifecycle_support::multicall_xml(&[("sleep", &["<int>1200</int>"])]);
    let r = lifecycle_support::post(&mut c, &batch, &[]);
    let (code, msg) = lifecycle_support::entries(&r)[0]
        .clone()
        .expect_err("the server's budget");
    assert_eq!(code, -32400);
    assert!(msg.contains("budget of 400 ms"), "{msg}");
    server.shutdown();

    // A server without a budget still keeps a method's own.
    let server = budgeted(0);
    let mut c = Conn::open(server.local_addr());
    over_budget(&mut c, "hasty", 1500, 150);
    assert_eq!(
        outcome(&c.call("sleep", &["<int>600</int>"])),
        Ok(Value::Int(600))
    );
    server.shutdown();
}
