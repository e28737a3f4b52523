//! Whether the IO units are running their tasks. An async handler that does blocking work
//! (a synchronous database call, a long computation) stops its unit's thread, and every
//! connection of that unit waits; nothing else in the process notices.
//!
//! Each unit beats (stores the time) every quarter of `stall_warn_ms`. A monitor on the
//! acceptor thread warns when a unit has not beaten for `stall_warn_ms`, once per stall, and
//! marks the unit stalled; the async handler whose poll was under way names itself when that
//! poll returns ([`Blame`]), and otherwise the monitor says the stall is over when the beats
//! resume. Stalls are counted in `unit_stalls`. Under systemd's
//! watchdog (`WatchdogSec=`, so `WATCHDOG_USEC` for this process) the monitor sends
//! `WATCHDOG=1` only while every unit beats: a unit stuck for good gets the hub restarted.
//!
//! The monitor also looks at what the workers run ([`workers`]): a worker held by a blocking
//! call nobody waits for any more gets a stand-in, a saturated pool is warned about, and a
//! pool held whole starves the watchdog.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::server::Shared;

mod workers;

pub(crate) use workers::{busy_with, enlist, leave, Doing};

/// The units' beats, in milliseconds since `epoch`.
#[derive(Debug)]
pub(crate) struct Liveness {
    epoch: Instant,
    beats: Box<[AtomicU64]>,
    /// Set by the monitor when it finds a unit stalled; taken by whoever reports the stall's
    /// end (the handler that caused it, or the monitor).
    stalled: Box<[AtomicBool]>,
    /// The [`Hook`] each unit is in now, 0 for none.
    inside: Box<[AtomicU8]>,
    /// What each worker runs now, and the stand-ins started for held ones.
    pool: workers::Pool,
    /// How long without a beat is a stall.
    stall: Duration,
    /// Where systemd's watchdog wants `WATCHDOG=1`, this often.
    watchdog: Option<Duration>,
}

/// The stall threshold when only the watchdog asks for beats (`stall_warn_ms = 0`).
const WATCHDOG_ONLY_STALL: Duration = Duration::from_secs(1);

impl Liveness {
    /// What `config` and the environment ask for: `None` when neither stall warnings nor the
    /// watchdog are on (no unit then beats).
    pub(crate) fn configured(config: &crate::Config) -> Option<Liveness> {
        let watchdog = crate::systemd::watchdog_interval();
        let stall = match (config.stall_warn_ms, watchdog) {
            (0, None) => return None,
            (0, Some(_)) => WATCHDOG_ONLY_STALL,
            (ms, _) => Duration::from_millis(ms),
        };
        Some(Liveness {
            epoch: Instant::now(),
            beats: (0..config.io_units).map(|_| AtomicU64::new(0)).collect(),
            stalled: (0..config.io_units)
                .map(|_| AtomicBool::new(false))
                .collect(),
            inside: (0..config.io_units).map(|_| AtomicU8::new(0)).collect(),
            pool: workers::Pool::new(config.workers),
            stall,
            watchdog,
        })
    }

    /// The stand-in workers started and not yet joined (for the drain).
    pub(crate) fn take_stand_ins(&self) -> Vec<std::thread::JoinHandle<()>> {
        self.pool.take_stand_ins()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// How often units beat and the monitor looks: a quarter of the stall, and at least as
    /// often as the watchdog wants its ping.
    fn period(&self) -> Duration {
        let quarter = self.stall / 4;
        self.watchdog.map_or(quarter, |every| quarter.min(every))
    }

    /// How long ago each unit last beat.
    fn ages(&self) -> impl Iterator<Item = Duration> + '_ {
        let now = self.now_ms();
        self.beats
            .iter()
            .map(move |beat| Duration::from_millis(now.saturating_sub(beat.load(Relaxed))))
    }
}

thread_local! {
    /// This IO unit's liveness and number, on a unit's thread when stalls are watched.
    static UNIT: OnceCell<(Arc<Liveness>, usize)> = const { OnceCell::new() };
}

/// Unit `i`'s beat, for as long as its runtime runs it (on the unit's thread).
pub(crate) async fn beat(liveness: Arc<Liveness>, i: usize) {
    UNIT.with(|unit| unit.set((Arc::clone(&liveness), i)).ok());
    let mut tick = tokio::time::interval(liveness.period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        liveness.beats[i].store(liveness.now_ms(), Relaxed);
    }
}

/// Application code a unit runs outside an async handler's poll, where a blocking call
/// would stall it: named in the stall's warning.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub(crate) enum Hook {
    Authenticator = 1,
    ResourceFactory = 2,
    ResourceFinish = 3,
}

impl Hook {
    const ALL: [Hook; 3] = [
        Hook::Authenticator,
        Hook::ResourceFactory,
        Hook::ResourceFinish,
    ];

    fn name(self) -> &'static str {
        match self {
            Hook::Authenticator => "the authenticator",
            Hook::ResourceFactory => "a resource's factory",
            Hook::ResourceFinish => "a resource's commit or rollback",
        }
    }

    /// The name of the hook marked as `code` (see [`in_hook`]), if any.
    fn named(code: u8) -> Option<&'static str> {
        Self::ALL
            .into_iter()
            .find(|hook| *hook as u8 == code)
            .map(Hook::name)
    }
}

/// Runs `f`, a `hook`, marked as what this IO unit is in (on a unit's thread; elsewhere
/// just runs it). Two thread-local reads and two relaxed swaps.
pub(crate) fn in_hook<T>(hook: Hook, f: impl FnOnce() -> T) -> T {
    let mark = |code: u8| {
        UNIT.with(|unit| {
            unit.get()
                .map_or(0, |(liveness, i)| liveness.inside[*i].swap(code, Relaxed))
        })
    };
    let outer = mark(hook as u8);
    let r = f();
    mark(outer);
    r
}

/// Watches the beats and the workers until the acceptor stops (the drain: systemd no longer
/// watches then).
pub(crate) async fn monitor(shared: Arc<Shared>, liveness: Arc<Liveness>) {
    let mut tick = tokio::time::interval(liveness.period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When each stalled unit was first seen stalled, and the hook it was in then.
    let mut stalled: Vec<Option<(Instant, Option<&str>)>> = vec![None; liveness.beats.len()];
    let mut last_ping: Option<Instant> = None;
    let mut pool = workers::PoolWatch::default();
    loop {
        tick.tick().await;
        let mut all_beating = true;
        for (i, age) in liveness.ages().enumerate() {
            let now_stalled = age >= liveness.stall;
            all_beating &= !now_stalled;
            match (stalled[i], now_stalled) {
                (None, true) => {
                    let now = Instant::now();
                    let inside = Hook::named(liveness.inside[i].load(Relaxed));
                    stalled[i] = Some((now.checked_sub(age).unwrap_or(now), inside));
                    liveness.stalled[i].store(true, Relaxed);
                    shared.stats.counters.unit_stalls.add(1);
                    tracing::warn!(
                        unit = i,
                        stalled_ms = age.as_millis() as u64,
                        inside = inside.unwrap_or("a handler or the unit's own work"),
                        "IO unit stalled: something is blocking its thread, and its \
                         connections wait (blocking work belongs in a blocking handler or \
                         spawn_blocking)"
                    );
                }
                (Some((since, inside)), false) => {
                    stalled[i] = None;
                    // Not claimed by a handler: the unit was blocked elsewhere.
                    if liveness.stalled[i].swap(false, Relaxed) {
                        let inside = inside.unwrap_or(
                            "outside an async handler's poll: the unit's own work, such as \
                             gzipping a huge answer",
                        );
                        tracing::warn!(
                            unit = i,
                            stalled_ms = since.elapsed().as_millis() as u64,
                            "IO unit running again (it was blocked in {inside})"
                        );
                    }
                }
                _ => {}
            }
        }
        let pool_serves = pool.look(&shared, &liveness);
        if let Some(every) = liveness.watchdog {
            let due = last_ping.is_none_or(|at| at.elapsed() >= every);
            if all_beating && pool_serves && due {
                crate::systemd::notify_watchdog();
                last_ping = Some(Instant::now());
            }
        }
    }
}

/// An async handler's future, polled on its IO unit: if the unit was found stalled while a
/// poll was under way, the poll's end names `method` as the cause.
pub(crate) struct Blame<'a, F> {
    handler: F,
    method: &'a str,
}

impl<'a, F> Blame<'a, F> {
    pub(crate) fn new(handler: F, method: &'a str) -> Self {
        Self { handler, method }
    }
}

impl<F: Future + Unpin> Future for Blame<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let polled = Pin::new(&mut self.handler).poll(cx);
        // One thread-local read and one relaxed load when nothing stalled.
        UNIT.with(|unit| {
            let Some((liveness, i)) = unit.get() else {
                return;
            };
            if liveness.stalled[*i].load(Relaxed) && liveness.stalled[*i].swap(false, Relaxed) {
                let since_beat = liveness
                    .now_ms()
                    .saturating_sub(liveness.beats[*i].load(Relaxed));
                tracing::warn!(
                    unit = i,
                    method = self.method,
                    stalled_ms = since_beat,
                    "IO unit was blocked by this async handler: blocking work belongs in a \
                     blocking handler or spawn_blocking"
                );
            }
        });
        polled
    }
}
