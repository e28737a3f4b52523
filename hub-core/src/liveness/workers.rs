//! What each worker is running, for the monitor in [`super`], and stand-ins for held workers.
//!
//! A blocking handler cannot be stopped. Past its time budget, or once its client has gone,
//! its caller is answered, but its worker stays busy until the handler returns. Before, a
//! few such calls (a database lock that never comes, a hung remote call) took the pool's
//! workers one by one: blocking calls waited in the queue and were refused, and nothing said
//! why.
//!
//! Each worker has a [`Slot`]; a blocking call fills it for as long as it runs (one
//! uncontended lock at each end, on the worker's own thread). Each period the monitor reads
//! the slots ([`PoolWatch::look`]) and:
//! - warns once for each call still running after its caller stopped waiting;
//! - starts a **stand-in** worker for each worker so held, so `workers` of them still serve;
//!   at most `workers` stand-ins at a time, so a hang that takes every call does not grow
//!   the pool without bound. Once the held calls return, the pool shrinks back: while it
//!   has more than `workers` workers not held, the monitor queues a stop message for each
//!   one too many (the first free worker takes it and retires);
//! - warns once when every worker has been on its current call for the stall threshold
//!   (the pool is saturated: counted in `pool_saturations`), naming what they run;
//! - warns once when every worker, stand-ins included, is held by a call nobody waits for.
//!   Then systemd's watchdog is not fed, so the hub is restarted, as mod_wsgi's
//!   `request-timeout` restarts a koji hub whose threads are all stuck.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Liveness;
use crate::lifecycle::Awaited;
use crate::registry::Method;
use crate::server::Shared;

/// One worker's place in the pool: whether a worker thread holds it, and its current call.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Set for a worker's slot before its thread starts; cleared when the worker stops.
    enlisted: AtomicBool,
    running: Mutex<Option<Running>>,
}

impl Slot {
    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a worker is busy with.
#[derive(Debug, Clone)]
pub(crate) enum Doing {
    /// A blocking method's call.
    Call(Arc<Method>),
    /// A blocking authenticator, for a request ([`crate::lifecycle::authenticate_on_worker`]).
    Authenticating,
}

impl Doing {
    /// What the log calls it: the method's name, or `authenticator`.
    fn name(&self) -> &str {
        match self {
            Doing::Call(method) => method.name(),
            Doing::Authenticating => "authenticator",
        }
    }
}

#[derive(Debug)]
struct Running {
    doing: Doing,
    since: Instant,
    awaited: Arc<Awaited>,
    /// Whether the monitor has warned that nobody waits for it any more.
    reported: bool,
}

/// The pool as the monitor sees it.
#[derive(Debug)]
pub(crate) struct Pool {
    /// `workers` slots for the pool's own workers, then as many for stand-ins.
    slots: Box<[Slot]>,
    /// `workers`: how many free workers the pool keeps.
    size: usize,
    /// Stop messages queued to shrink the pool and not yet taken.
    retiring: AtomicUsize,
    /// Stand-ins started, for the drain to stop and join.
    stand_ins: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    /// A pool of `size` workers: their slots, the first `size`, are taken before they start.
    pub(crate) fn new(size: usize) -> Self {
        let slots: Box<[Slot]> = (0..size * 2).map(|_| Slot::default()).collect();
        for slot in &slots[..size] {
            slot.enlisted.store(true, Relaxed);
        }
        Self {
            slots,
            size,
            retiring: AtomicUsize::new(0),
            stand_ins: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn take_stand_ins(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(
            &mut *self
                .stand_ins
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

thread_local! {
    /// This worker's slot, on a worker's thread when the pool is watched.
    static WORKER: OnceCell<(Arc<Liveness>, usize)> = const { OnceCell::new() };
}

/// Makes the calling thread the worker of slot `i` (at the worker's start).
pub(crate) fn enlist(liveness: &Arc<Liveness>, i: usize) {
    if i < liveness.pool.slots.len() {
        WORKER.with(|worker| worker.set((Arc::clone(liveness), i)).ok());
    }
}

/// Frees this worker's slot as it stops (a retirement the monitor asked for, or the drain).
pub(crate) fn leave() {
    WORKER.with(|worker| {
        if let Some((liveness, i)) = worker.get() {
            let pool = &liveness.pool;
            // In this order: the monitor reads `retiring` before it counts the slots.
            pool.slots[*i].enlisted.store(false, Relaxed);
            let _ = pool
                .retiring
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        }
    });
}

/// Marks this worker busy with `doing` until the guard drops; `awaited` tells whether its
/// caller still waits. Nothing happens off a watched worker.
pub(crate) fn busy_with(doing: impl FnOnce() -> Doing, awaited: &Arc<Awaited>) -> Busy {
    WORKER.with(|worker| {
        if let Some((liveness, i)) = worker.get() {
            *liveness.pool.slots[*i].running() = Some(Running {
                doing: doing(),
                since: Instant::now(),
                awaited: Arc::clone(awaited),
                reported: false,
            });
        }
    });
    Busy(())
}

/// Frees this worker's slot when dropped (see [`busy_with`]).
#[must_use = "the worker counts as busy only while this lives"]
pub(crate) struct Busy(());

impl Drop for Busy {
    fn drop(&mut self) {
        WORKER.with(|worker| {
            if let Some((liveness, i)) = worker.get() {
                // Taken out first: its `Arc`s are dropped after the lock is released.
                let done = liveness.pool.slots[*i].running().take();
                drop(done);
            }
        });
    }
}

/// What the monitor remembers of the pool between two looks.
#[derive(Debug, Default)]
pub(crate) struct PoolWatch {
    /// When the current saturation was first seen.
    saturated_since: Option<Instant>,
    /// Whether every worker is held by a call nobody waits for (warned about once).
    all_held: bool,
}

/// One look at the slots.
#[derive(Debug, Default)]
struct Census {
    /// Workers in the pool (stand-ins included).
    live: usize,
    busy: usize,
    /// Busy with a call whose caller stopped waiting.
    held: usize,
    /// How long the most recently started call has run: every worker has been busy at
    /// least this long (when all are).
    all_busy_for: Option<Duration>,
}

impl PoolWatch {
    /// Reads the slots, warns about what is new, starts or retires stand-ins, and answers
    /// whether the pool still serves someone (the watchdog is fed only then).
    pub(crate) fn look(&mut self, shared: &Arc<Shared>, liveness: &Arc<Liveness>) -> bool {
        let pool = &liveness.pool;
        let now = Instant::now();
        // Read before the census: a worker leaves its slot before it uncounts itself here.
        let retiring = pool.retiring.load(Relaxed);
        let census = take_census(pool, now);
        let serving = census.live - census.held;
        // Stand-ins for held workers, within the cap; retirement once they are not needed.
        let wanted = pool
            .size
            .saturating_sub(serving)
            .min(pool.slots.len() - census.live);
        let started = (0..wanted)
            .filter(|_| start_stand_in(shared, liveness))
            .count();
        if started > 0 {
            tracing::info!(
                started,
                held = census.held,
                "stand-in workers started in place of workers held by calls nobody waits for"
            );
        }
        let surplus = serving.saturating_sub(pool.size + retiring);
        for _ in 0..surplus {
            // Counted before the stop is sent: the worker that takes it may leave (and
            // uncount it) before this line would run again, and a count raised after that
            // stayed for good, one stand-in never retired (found in review).
            pool.retiring.fetch_add(1, Relaxed);
            if !shared.queue.try_stop_worker() {
                let _ = pool
                    .retiring
                    .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
                break;
            }
        }
        let stand_ins = (census.live + started).saturating_sub(pool.size);
        shared
            .stats
            .counters
            .stand_in_workers
            .store(stand_ins as u64, Relaxed);

        let all_busy = census.busy > 0 && census.busy == census.live && started == 0;
        let saturated = all_busy && census.all_busy_for.is_some_and(|d| d >= liveness.stall);
        match (self.saturated_since, saturated) {
            (None, true) => {
                let busy_for = census.all_busy_for.unwrap_or_default();
                self.saturated_since = Some(now.checked_sub(busy_for).unwrap_or(now));
                shared.stats.counters.pool_saturations.add(1);
                tracing::warn!(
                    workers = census.live,
                    busy_ms = busy_for.as_millis() as u64,
                    running = %running_summary(pool, now),
                    "worker pool saturated: every worker has been on its call for {} ms; \
                     blocking calls wait in the queue (refused after max_queue_wait_ms, or \
                     answered the time-budget fault first)",
                    busy_for.as_millis()
                );
            }
            // Over once a worker is seen free (not when one only turned over a call).
            (Some(since), false) if !all_busy => {
                self.saturated_since = None;
                tracing::info!(
                    saturated_ms = now.saturating_duration_since(since).as_millis() as u64,
                    "worker pool has a free worker again"
                );
            }
            _ => {}
        }
        let all_held = all_busy && census.held == census.busy;
        if all_held && !self.all_held {
            let watchdog = if liveness.watchdog.is_some() {
                "; systemd's watchdog is not fed until one returns"
            } else {
                ""
            };
            tracing::warn!(
                workers = census.live,
                running = %running_summary(pool, now),
                "every worker, stand-ins included, is held by a call whose caller stopped \
                 waiting: no blocking call can run until one returns{watchdog}"
            );
        }
        self.all_held = all_held;
        !all_held
    }
}

/// Counts the workers, warning once about each call found running after its caller left.
fn take_census(pool: &Pool, now: Instant) -> Census {
    let mut census = Census::default();
    for slot in pool.slots.iter() {
        if !slot.enlisted.load(Relaxed) {
            continue;
        }
        census.live += 1;
        let mut running = slot.running();
        let Some(call) = running.as_mut() else {
            continue;
        };
        census.busy += 1;
        let ran = now.saturating_duration_since(call.since);
        census.all_busy_for = Some(census.all_busy_for.map_or(ran, |d| d.min(ran)));
        if call.awaited.is_abandoned() {
            census.held += 1;
            if !call.reported {
                call.reported = true;
                tracing::warn!(
                    method = call.doing.name(),
                    running_ms = ran.as_millis() as u64,
                    "blocking handler still running after its caller stopped waiting \
                     (time budget or client gone): its worker stays busy until it returns"
                );
            }
        }
    }
    census
}

/// Starts a worker in a free slot, in place of one held by a call nobody waits for;
/// answers whether it did.
fn start_stand_in(shared: &Arc<Shared>, liveness: &Arc<Liveness>) -> bool {
    let pool = &liveness.pool;
    let Some(i) = pool.slots.iter().position(|slot| {
        slot.enlisted
            .compare_exchange(false, true, Relaxed, Relaxed)
            .is_ok()
    }) else {
        return false;
    };
    match crate::worker::spawn_one(shared, liveness, i) {
        Ok(thread) => {
            let mut stand_ins = pool
                .stand_ins
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Those that retired need no joining.
            stand_ins.retain(|t| !t.is_finished());
            stand_ins.push(thread);
            true
        }
        Err(err) => {
            pool.slots[i].enlisted.store(false, Relaxed);
            tracing::warn!(%err, "could not start a stand-in worker");
            false
        }
    }
}

/// The calls running now, by method: `sleep ×2 (longest 1500 ms)`.
fn running_summary(pool: &Pool, now: Instant) -> String {
    let mut by_method: BTreeMap<String, (usize, Duration)> = BTreeMap::new();
    for slot in pool.slots.iter() {
        if let Some(call) = slot.running().as_ref() {
            let entry = by_method
                .entry(call.doing.name().to_owned())
                .or_insert((0, Duration::ZERO));
            entry.0 += 1;
            entry.1 = entry.1.max(now.saturating_duration_since(call.since));
        }
    }
    let mut out = String::new();
    for (method, (calls, longest)) in by_method {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "{method} ×{calls} (longest {} ms)",
            longest.as_millis()
        );
    }
    out
}
