//! The bounded queue of blocking jobs between the IO units and the worker pool.
//!
//! One queue for the whole server (phxrpc keeps one per unit, so its limit is per unit and a
//! busy unit cannot borrow idle workers of another). Jobs sit in a `crossbeam-channel`
//! bounded channel, a lock-free MPMC array: a push from an IO unit never blocks (`try_send`:
//! a full queue is refused at once). The answer goes back through an `answer` slot, which
//! also tells a worker that the client has gone (the waiter was dropped) so the job is
//! skipped; on an IO unit, answers are delivered in batches through the unit's mailbox.
//!
//! Workers do not sleep in the channel's own `recv`: its waiting receivers spin, then
//! `sched_yield` several times, then park, and every push wakes one of them, so with 20
//! workers on a small machine most of the pool's CPU went to yields and wake-ups
//! (docs/benchmark-log.md). Instead the queue keeps its own `Idle` set: a push wakes a worker only
//! when no worker is already awake and about to look at the queue, and then the one that
//! parked last (its stack and caches are warm; the others stay asleep).

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

use crate::answer::Reply;
use crate::qos::Qos;
use crate::stats::Stats;

pub use crate::answer::{companion, JobResult, Unanswered};

/// Why a blocking job was not queued, or not run. Each is answered `503` + `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue held `max_queue_length` jobs.
    QueueFull,
    /// QoS fast reject.
    FastReject,
    /// The job waited longer than `max_queue_wait_ms` and was not run.
    QueueWaitDrop,
    /// The server is shutting down.
    ShuttingDown,
    /// The method had as many calls running as its `max_in_flight` allows.
    MethodBusy,
}

impl Refusal {
    /// A short reason, for the `503` body.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::QueueFull => "server busy: queue full",
            Refusal::FastReject => "server busy: fast reject",
            Refusal::QueueWaitDrop => "server busy: waited too long in queue",
            Refusal::ShuttingDown => "server shutting down",
            Refusal::MethodBusy => "server busy: too many calls of this method at once",
        }
    }
}

/// Work for a worker: runs on the worker thread.
pub(crate) trait Task: Send {
    /// Whether the client stopped waiting (the job need not run).
    fn client_gone(&self) -> bool;
    /// Runs the job and sends its answer; answers whether its caller still waited for it.
    fn run(self: Box<Self>) -> bool;
    /// Answers [`Refusal::QueueWaitDrop`] without running.
    fn expire(self: Box<Self>);
}

struct CallTask<T, F> {
    tx: Reply<T>,
    f: F,
}

impl<T: Send, F: FnOnce() -> T + Send> Task for CallTask<T, F> {
    fn client_gone(&self) -> bool {
        self.tx.is_closed()
    }

    fn run(self: Box<Self>) -> bool {
        let CallTask { tx, f } = *self;
        tx.send(Ok(f()))
    }

    fn expire(self: Box<Self>) {
        let _ = self.tx.send(Err(Refusal::QueueWaitDrop));
    }
}

pub(crate) struct Job {
    pub(crate) enqueued: Instant,
    pub(crate) task: Box<dyn Task>,
}

pub(crate) enum Msg {
    Job(Job),
    Stop,
}

/// Empty polls of the queue (each followed by a spin-loop hint) a worker makes before it
/// parks. While it polls it counts as searching, so a push meanwhile wakes nobody: a futex
/// wait and a wake saved. Kept short because on a small, busy machine the spinning worker
/// takes a core from the IO units that would push the next job: in interleaved runs
/// (docs/benchmark-log.md) 0 and 50 polls were alike, 200 lost throughput once the box was loaded,
/// 20,000 starved the IO units, and yielding instead of spinning traded futex calls for
/// `sched_yield` calls.
const SPINS: u32 = 50;

/// One worker's parking spot.
#[derive(Debug)]
pub(crate) struct Parker {
    woken: AtomicBool,
    thread: Thread,
}

impl Parker {
    /// The calling thread's parker.
    pub(crate) fn current() -> Arc<Self> {
        Arc::new(Self {
            woken: AtomicBool::new(false),
            thread: std::thread::current(),
        })
    }
}

/// Which workers sleep, and how many are awake looking for a job.
///
/// The invariant that no job is left with every worker asleep: a worker counts itself
/// `searching` from the end of a job until it parks; parking, it uncounts itself and then
/// looks at the queue once more, under the lock a waker takes. A push looks at `searching`
/// after the job is in; at zero it wakes a parked worker. Both sides put a `SeqCst` fence
/// between their write and their read, so at least one of them sees the other. A worker that
/// takes a job while it was the last one searching wakes another if jobs remain, so a deep
/// queue brings up workers one by one.
#[derive(Debug, Default)]
struct Idle {
    /// Parked workers; the last one parked is woken first.
    parked: Mutex<Vec<Arc<Parker>>>,
    searching: AtomicUsize,
}

/// The queue, its QoS controller and its limits.
#[derive(Debug)]
pub struct JobQueue {
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    idle: Idle,
    pub(crate) qos: Qos,
    /// `max_queue_wait_ms`, which a config reload may change.
    max_wait_ms: AtomicU64,
    pub(crate) stats: Arc<Stats>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Job(_) => "Msg::Job",
            Msg::Stop => "Msg::Stop",
        })
    }
}

impl JobQueue {
    /// A queue holding at most `capacity` jobs.
    pub fn new(capacity: usize, max_wait: Duration, qos: Qos, stats: Arc<Stats>) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        Self {
            tx,
            rx,
            idle: Idle::default(),
            qos,
            max_wait_ms: AtomicU64::new(u64::try_from(max_wait.as_millis()).unwrap_or(u64::MAX)),
            stats,
        }
    }

    /// How long a job may wait for a worker before it is answered `503` unrun.
    #[inline]
    pub(crate) fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms.load(Ordering::Relaxed))
    }

    /// Sets [`max_wait`](Self::max_wait) for the jobs popped from now on.
    pub(crate) fn set_max_wait(&self, max_wait: Duration) {
        let ms = u64::try_from(max_wait.as_millis()).unwrap_or(u64::MAX);
        self.max_wait_ms.store(ms, Ordering::Relaxed);
    }

    /// The queue `config` describes: its bound, its queue-wait limit and its QoS controller.
    pub(crate) fn configured(config: &crate::Config, stats: Arc<Stats>) -> Self {
        let qos = Qos::new(
            Duration::from_millis(config.fast_reject_threshold_ms),
            config.fast_reject_adjust_rate,
            Instant::now(),
        );
        Self::new(config.max_queue_length, config.max_queue_wait(), qos, stats)
    }

    /// Jobs waiting now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no job is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Queues `f` for a worker, unless QoS or the queue's bound refuses it.
    /// Dropping the returned receiver before a worker starts the job cancels it.
    pub fn submit<T, F>(&self, f: F) -> Result<JobResult<T>, Refusal>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let now = Instant::now();
        let counters = &self.stats.counters;
        if !self.qos.admit(now, self.rx.len()) {
            counters.fast_rejects.add(1);
            return Err(Refusal::FastReject);
        }
        let (tx, rx) = crate::answer::channel();
        let job = Job {
            enqueued: now,
            task: Box::new(CallTask { tx, f }),
        };
        match self.tx.try_send(Msg::Job(job)) {
            Ok(()) => {
                counters.queue_pushes.add(1);
                self.pushed();
                Ok(rx)
            }
            Err(TrySendError::Full(_)) => {
                counters.queue_full_rejects.add(1);
                Err(Refusal::QueueFull)
            }
            Err(TrySendError::Disconnected(_)) => Err(Refusal::ShuttingDown),
        }
    }

    /// After a push: wake a worker unless one is already looking.
    fn pushed(&self) {
        fence(Ordering::SeqCst);
        if self.idle.searching.load(Ordering::Relaxed) == 0 {
            self.wake_one();
        }
    }

    /// Wakes the worker that parked last, if any is parked.
    fn wake_one(&self) {
        let woken = {
            let mut parked = self
                .idle
                .parked
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let p = parked.pop();
            if p.is_some() {
                // Counted before it runs, so pushes meanwhile do not wake another.
                self.idle.searching.fetch_add(1, Ordering::SeqCst);
            }
            p
        };
        if let Some(p) = woken {
            p.woken.store(true, Ordering::Release);
            p.thread.unpark();
        }
    }

    /// The next message for the worker `me`, parking while there is none.
    pub(crate) fn next(&self, me: &Arc<Parker>) -> Msg {
        let idle = &self.idle;
        idle.searching.fetch_add(1, Ordering::SeqCst);
        loop {
            let mut polls = 0;
            loop {
                match self.rx.try_recv() {
                    Ok(msg) => {
                        self.took();
                        return msg;
                    }
                    Err(TryRecvError::Empty) if polls < SPINS => {
                        polls += 1;
                        std::hint::spin_loop();
                    }
                    Err(TryRecvError::Empty) => break,
                    // Not while the queue exists (it holds a sender); stop anyway.
                    Err(TryRecvError::Disconnected) => {
                        idle.searching.fetch_sub(1, Ordering::SeqCst);
                        return Msg::Stop;
                    }
                }
            }
            {
                let mut parked = idle.parked.lock().unwrap_or_else(PoisonError::into_inner);
                idle.searching.fetch_sub(1, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if !self.rx.is_empty() {
                    // A push that saw us searching did not wake anyone: look again.
                    idle.searching.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                me.woken.store(false, Ordering::Relaxed);
                parked.push(Arc::clone(me));
            }
            // `woken` guards against spurious returns from `park`.
            while !me.woken.swap(false, Ordering::Acquire) {
                std::thread::park();
            }
            // The waker counted us as searching.
        }
    }

    /// A worker took a message and stops searching; if it was the last one searching and
    /// jobs remain, another is woken for them.
    fn took(&self) {
        if self.idle.searching.fetch_sub(1, Ordering::SeqCst) == 1 {
            fence(Ordering::SeqCst);
            if !self.rx.is_empty() {
                self.wake_one();
            }
        }
    }

    /// Asks one worker to stop once the jobs ahead are done, if the queue has room now.
    pub(crate) fn try_stop_worker(&self) -> bool {
        let sent = self.tx.try_send(Msg::Stop).is_ok();
        if sent {
            self.pushed();
        }
        sent
    }

    /// Asks `n` workers to stop once the jobs ahead are done; gives up at `deadline`.
    pub(crate) fn stop_workers(&self, n: usize, deadline: Instant) {
        for _ in 0..n {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.tx.send_timeout(Msg::Stop, left).is_err() {
                return;
            }
            self.pushed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: usize) -> Arc<JobQueue> {
        let qos = Qos::new(Duration::from_secs(3600), 5, Instant::now());
        let stats = Arc::new(Stats::new(std::iter::empty::<&str>()));
        Arc::new(JobQueue::new(
            capacity,
            Duration::from_secs(3600),
            qos,
            stats,
        ))
    }

    /// Pushes from several threads against a few workers that keep parking and waking:
    /// a lost wake-up would leave a job unanswered (caught by the liveness bound).
    #[test]
    fn every_job_is_taken_however_pushes_and_parking_interleave() {
        let q = queue(64);
        let config = crate::Config {
            workers: 3,
            ..crate::Config::default()
        };
        let workers = crate::worker::spawn(&config, &q, None).expect("spawn");
        let pushers: Vec<_> = (0..4)
            .map(|p| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    let mut sum = 0u64;
                    for i in 0..5_000u64 {
                        let rx = loop {
                            match q.submit(move || p * 1_000_000 + i) {
                                Ok(rx) => break rx,
                                // a full queue is refused at once: try again
                                Err(Refusal::QueueFull) => std::thread::yield_now(),
                                Err(other) => panic!("{other:?}"),
                            }
                        };
                        // every few jobs, let the workers run dry and park
                        if i % 7 == 0 {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        let deadline = Instant::now() + Duration::from_secs(60);
                        let mut rx = rx;
                        let v = loop {
                            match rx.try_take() {
                                Some(Ok(v)) => break v,
                                None => {
                                    assert!(Instant::now() < deadline, "job {p}/{i} never taken");
                                    std::thread::yield_now();
                                }
                                Some(Err(e)) => panic!("{e:?}"),
                            }
                        };
                        sum += v.expect("ran") - p * 1_000_000;
                    }
                    sum
                })
            })
            .collect();
        for p in pushers {
            assert_eq!(p.join().expect("pusher"), (0..5_000).sum::<u64>());
        }
        // graceful stop: each worker takes one Stop and exits
        q.stop_workers(3, Instant::now() + Duration::from_secs(60));
        for w in workers {
            w.join().expect("worker");
        }
        assert_eq!(q.idle.searching.load(Ordering::SeqCst), 0);
    }
}
