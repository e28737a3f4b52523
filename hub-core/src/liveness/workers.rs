//! What each worker is running, for the monitor in [`super`].
//!
//! A blocking handler cannot be stopped. Past its time budget, or once its client has gone,
//! its caller is answered, but its worker stays busy until the handler returns. When every
//! worker is held like that (a database lock that never comes, a hung remote call), blocking
//! calls wait in the queue and are refused after `max_queue_wait_ms`, and nothing said why.
//!
//! Each worker has a [`Slot`]; a blocking call fills it for as long as it runs (one
//! uncontended lock at each end, on the worker's own thread). Each period the monitor reads
//! the slots ([`PoolWatch::look`]) and warns:
//! - once for each call still running after its caller stopped waiting;
//! - once when every worker has been on its current call for the stall threshold (the pool
//!   is saturated: counted in `pool_saturations`), naming what they run;
//! - once when every worker is held by a call nobody waits for. Then systemd's watchdog is
//!   not fed, so the hub is restarted, as mod_wsgi's `request-timeout` restarts a koji hub
//!   whose threads are all stuck.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::Liveness;
use crate::lifecycle::Awaited;
use crate::registry::Method;
use crate::stats::Stats;

/// One worker's current call, if any.
#[derive(Debug, Default)]
pub(crate) struct Slot(Mutex<Option<Running>>);

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Running {
    method: Arc<Method>,
    since: Instant,
    awaited: Arc<Awaited>,
    /// Whether the monitor has warned that nobody waits for it any more.
    reported: bool,
}

thread_local! {
    /// This worker's slot, on a worker's thread when the pool is watched.
    static WORKER: OnceCell<(Arc<Liveness>, usize)> = const { OnceCell::new() };
}

/// Makes the calling thread worker `i` of `liveness` (at the worker's start).
pub(crate) fn enlist(liveness: &Arc<Liveness>, i: usize) {
    if i < liveness.workers.len() {
        WORKER.with(|worker| worker.set((Arc::clone(liveness), i)).ok());
    }
}

/// Marks this worker busy with a call of `method` until the guard drops; `awaited` tells
/// whether its caller still waits. Nothing happens off a watched worker.
pub(crate) fn busy_with(method: &Arc<Method>, awaited: &Arc<Awaited>) -> Busy {
    WORKER.with(|worker| {
        if let Some((liveness, i)) = worker.get() {
            *liveness.workers[*i].lock() = Some(Running {
                method: Arc::clone(method),
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
                let done = liveness.workers[*i].lock().take();
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

impl PoolWatch {
    /// Reads the slots, warns about what is new, and answers whether the pool still serves
    /// someone (the watchdog is fed only then).
    pub(crate) fn look(&mut self, liveness: &Liveness, stats: &Stats) -> bool {
        let slots = &liveness.workers;
        let now = Instant::now();
        let (mut busy, mut held) = (0, 0);
        // How long the most recently started call has run: every worker has been busy at
        // least this long.
        let mut all_busy_for = Duration::MAX;
        for slot in slots.iter() {
            let mut slot = slot.lock();
            let Some(call) = slot.as_mut() else {
                continue;
            };
            busy += 1;
            let running = now.saturating_duration_since(call.since);
            all_busy_for = all_busy_for.min(running);
            if call.awaited.is_abandoned() {
                held += 1;
                if !call.reported {
                    call.reported = true;
                    tracing::warn!(
                        method = call.method.name(),
                        running_ms = running.as_millis() as u64,
                        "blocking handler still running after its caller stopped waiting \
                         (time budget or client gone): its worker stays busy until it returns"
                    );
                }
            }
        }
        let all_busy = busy > 0 && busy == slots.len();
        match (
            self.saturated_since,
            all_busy && all_busy_for >= liveness.stall,
        ) {
            (None, true) => {
                self.saturated_since = Some(now.checked_sub(all_busy_for).unwrap_or(now));
                stats.counters.pool_saturations.add(1);
                tracing::warn!(
                    workers = slots.len(),
                    busy_ms = all_busy_for.as_millis() as u64,
                    running = %running_summary(slots, now),
                    "worker pool saturated: every worker has been on its call for {} ms; \
                     blocking calls wait in the queue and are refused after \
                     max_queue_wait_ms",
                    all_busy_for.as_millis()
                );
            }
            (Some(since), false) if !all_busy => {
                self.saturated_since = None;
                tracing::info!(
                    saturated_ms = now.saturating_duration_since(since).as_millis() as u64,
                    "worker pool has a free worker again"
                );
            }
            _ => {}
        }
        let all_held = all_busy && held == busy;
        if all_held && !self.all_held {
            let watchdog = if liveness.watchdog.is_some() {
                "; systemd's watchdog is not fed until one returns"
            } else {
                ""
            };
            tracing::warn!(
                workers = slots.len(),
                running = %running_summary(slots, now),
                "every worker is held by a call whose caller stopped waiting: no blocking \
                 call can run until one returns{watchdog}"
            );
        }
        self.all_held = all_held;
        !all_held
    }
}

/// The calls running now, by method: `sleep ×2 (longest 1500 ms)`.
fn running_summary(slots: &[Slot], now: Instant) -> String {
    let mut by_method: BTreeMap<String, (usize, Duration)> = BTreeMap::new();
    for slot in slots {
        if let Some(call) = slot.lock().as_ref() {
            let entry = by_method
                .entry(call.method.name().to_owned())
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
