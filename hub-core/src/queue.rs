//! The bounded queue of blocking jobs between the IO units and the worker pool.
//!
//! One queue for the whole server (phxrpc keeps one per unit, so its limit is per unit and a
//! busy unit cannot borrow idle workers of another). It is a `crossbeam-channel` bounded
//! channel: a lock-free MPMC array queue whose receivers park when it is empty, so idle
//! workers cost nothing and a push from an IO unit never blocks (`try_send`: a full queue is
//! refused at once). The answer goes back on a tokio oneshot, which also tells a worker that
//! the client has gone (the receiver was dropped) so the job is skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::qos::Qos;
use crate::stats::Stats;

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
}

impl Refusal {
    /// A short reason, for the `503` body.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::QueueFull => "server busy: queue full",
            Refusal::FastReject => "server busy: fast reject",
            Refusal::QueueWaitDrop => "server busy: waited too long in queue",
            Refusal::ShuttingDown => "server shutting down",
        }
    }
}

/// Work for a worker: runs on the worker thread.
pub(crate) trait Task: Send {
    /// Whether the client stopped waiting (the job need not run).
    fn client_gone(&self) -> bool;
    /// Runs the job and sends its answer.
    fn run(self: Box<Self>);
    /// Answers [`Refusal::QueueWaitDrop`] without running.
    fn expire(self: Box<Self>);
}

struct CallTask<T, F> {
    tx: oneshot::Sender<Result<T, Refusal>>,
    f: F,
}

impl<T: Send, F: FnOnce() -> T + Send> Task for CallTask<T, F> {
    fn client_gone(&self) -> bool {
        self.tx.is_closed()
    }

    fn run(self: Box<Self>) {
        let CallTask { tx, f } = *self;
        let _ = tx.send(Ok(f()));
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

/// The queue, its QoS controller and its limits.
#[derive(Debug)]
pub struct JobQueue {
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    pub(crate) qos: Qos,
    pub(crate) max_wait: Duration,
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

/// The answer of a queued job: its value, or why it did not run.
pub type JobResult<T> = oneshot::Receiver<Result<T, Refusal>>;

impl JobQueue {
    /// A queue holding at most `capacity` jobs.
    pub fn new(capacity: usize, max_wait: Duration, qos: Qos, stats: Arc<Stats>) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        Self {
            tx,
            rx,
            qos,
            max_wait,
            stats,
        }
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
            counters
                .fast_rejects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(Refusal::FastReject);
        }
        let (tx, rx) = oneshot::channel();
        let job = Job {
            enqueued: now,
            task: Box::new(CallTask { tx, f }),
        };
        match self.tx.try_send(Msg::Job(job)) {
            Ok(()) => {
                counters
                    .queue_pushes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(rx)
            }
            Err(TrySendError::Full(_)) => {
                counters
                    .queue_full_rejects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(Refusal::QueueFull)
            }
            Err(TrySendError::Disconnected(_)) => Err(Refusal::ShuttingDown),
        }
    }

    pub(crate) fn receiver(&self) -> &Receiver<Msg> {
        &self.rx
    }

    /// Asks `n` workers to stop once the jobs ahead are done; gives up at `deadline`.
    pub(crate) fn stop_workers(&self, n: usize, deadline: Instant) {
        for _ in 0..n {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.tx.send_timeout(Msg::Stop, left).is_err() {
                return;
            }
        }
    }
}
