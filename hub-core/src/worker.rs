//! The worker pool: `workers` OS threads running blocking handlers (phxrpc's thread mode).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::liveness::Liveness;
use crate::queue::{JobQueue, Msg, Parker};
use crate::server::Shared;

/// Starts `config.workers` workers on `queue`, each with its slot in `liveness` if the pool
/// is watched.
pub(crate) fn spawn(
    config: &crate::Config,
    queue: &Arc<JobQueue>,
    liveness: Option<&Arc<Liveness>>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..config.workers)
        .map(|i| start(config, queue, liveness, i))
        .collect()
}

/// Starts one more worker in slot `i` of the watched pool (a stand-in: see `liveness`).
pub(crate) fn spawn_one(
    shared: &Shared,
    liveness: &Arc<Liveness>,
    i: usize,
) -> std::io::Result<JoinHandle<()>> {
    start(&shared.config, &shared.queue, Some(liveness), i)
}

fn start(
    config: &crate::Config,
    queue: &Arc<JobQueue>,
    liveness: Option<&Arc<Liveness>>,
    i: usize,
) -> std::io::Result<JoinHandle<()>> {
    let batch = config.batch_scheduled_workers;
    let queue = Arc::clone(queue);
    let liveness = liveness.cloned();
    std::thread::Builder::new()
        .name(format!("hub-worker-{i}"))
        .spawn(move || {
            if batch {
                schedule_as_batch();
            }
            if let Some(liveness) = liveness {
                crate::liveness::enlist(&liveness, i);
            }
            run(&queue)
        })
}

/// Puts the calling thread under `SCHED_BATCH`: woken, it waits for the running thread to
/// block or use up its slice instead of preempting it. Without it, on a busy CPU a job handed
/// to a sleeping worker often preempted the IO unit that queued it, on the unit's way back
/// from the wake or from its next `writev`, in the middle of its turn (docs/benchmark-log.md,
/// session 11).
#[cfg(target_os = "linux")]
fn schedule_as_batch() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` reads `param` only during the call; pid 0 is this thread.
    #[allow(unsafe_code)]
    let refused = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0;
    if refused {
        // A seccomp profile may forbid it; the worker runs as before.
        let err = std::io::Error::last_os_error();
        tracing::debug!(%err, "SCHED_BATCH refused for a worker");
    }
}

/// Other systems have no such policy.
#[cfg(not(target_os = "linux"))]
fn schedule_as_batch() {}

/// One worker: take a job; skip it if its client left; answer it without running if it
/// waited too long; else run it. A panic that escapes the job is caught: the worker lives on.
fn run(queue: &JobQueue) {
    queue.qos.worker_started();
    serve(queue);
    queue.qos.worker_stopped();
    crate::liveness::leave();
}

fn serve(queue: &JobQueue) {
    let stats = &queue.stats;
    let me = Parker::current();
    loop {
        let job = match queue.next(&me) {
            Msg::Job(job) => job,
            Msg::Stop => return,
        };
        let now = Instant::now();
        let wait = now.saturating_duration_since(job.enqueued);
        stats.counters.queue_pops.add(1);
        stats.queue_wait.observe(wait);
        queue.qos.record_wait(wait, now, queue.len());
        if job.task.client_gone() {
            stats.counters.client_gone_skips.add(1);
            continue;
        }
        if wait > queue.max_wait() {
            stats.counters.queue_wait_drops.add(1);
            job.task.expire();
            continue;
        }
        let task = job.task;
        match catch_unwind(AssertUnwindSafe(move || task.run())) {
            // QoS predicts queue waits from how long jobs hold a worker: a job its caller
            // stopped waiting for (over its budget) is left out, as a stand-in took its
            // worker's place; one held call of 3 s made QoS refuse an idle pool's next
            // hundred calls (found in review).
            Ok(true) => queue.qos.record_service(now.elapsed()),
            Ok(false) => {}
            // The dispatcher catches handler panics itself; this is the last line of defence.
            Err(_) => stats.counters.panics.add(1),
        }
    }
}

/// The job queue and its workers with nothing around them, configured as a server's with
/// `config`: the thread-mode hand-off alone, for the end-to-end bench's peer (a bare hyper
/// server answering through it). Dropping it stops the workers once the jobs ahead are done.
#[doc(hidden)]
#[derive(Debug)]
pub struct StandalonePool {
    queue: Arc<JobQueue>,
    workers: Vec<JoinHandle<()>>,
}

impl StandalonePool {
    /// Starts `config.workers` workers on a queue bounded as `config` says.
    pub fn start(config: &crate::Config) -> std::io::Result<Self> {
        let stats = Arc::new(crate::stats::Stats::new(std::iter::empty::<&str>()));
        let queue = Arc::new(JobQueue::configured(config, stats));
        let workers = spawn(config, &queue, None)?;
        Ok(Self { queue, workers })
    }

    /// The queue to submit jobs to.
    pub fn queue(&self) -> &Arc<JobQueue> {
        &self.queue
    }
}

impl Drop for StandalonePool {
    fn drop(&mut self) {
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        stop(
            &self.queue,
            std::mem::take(&mut self.workers),
            deadline,
            &|| false,
        );
    }
}

/// Asks `workers` to stop once the jobs ahead of them are done and waits for them until
/// `deadline` or `cut_short` (a worker still busy then is left to finish alone).
pub(crate) fn stop(
    queue: &JobQueue,
    workers: Vec<JoinHandle<()>>,
    deadline: Instant,
    cut_short: &dyn Fn() -> bool,
) {
    let asked_by = if cut_short() {
        Instant::now()
    } else {
        deadline
    };
    // A worker that retired (the pool shrinking back after stand-ins) takes no stop message.
    let running = workers.iter().filter(|w| !w.is_finished()).count();
    queue.stop_workers(running, asked_by);
    for worker in workers {
        join_until(worker, deadline, cut_short);
    }
}

/// Joins `thread` if it finishes before `deadline` or `cut_short`; otherwise leaves it
/// detached (an IO unit or a worker still busy at the drain deadline).
pub(crate) fn join_until<T>(
    thread: JoinHandle<T>,
    deadline: Instant,
    cut_short: &dyn Fn() -> bool,
) {
    while !thread.is_finished() {
        if cut_short() {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(thread = ?thread.thread().name(), "still busy at the drain deadline");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = thread.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standalone_pool_runs_jobs_and_stops_its_workers_when_dropped() {
        let config = crate::Config {
            workers: 3,
            ..crate::Config::default()
        };
        let pool = StandalonePool::start(&config).expect("spawn");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let answers: Vec<_> = (0..100)
            .map(|i| pool.queue().submit(move || i * 2).expect("admitted"))
            .collect();
        let got: Vec<i32> = rt.block_on(async {
            let mut got = Vec::new();
            for a in answers {
                got.push(a.await.expect("answered").expect("ran"));
            }
            got
        });
        assert_eq!(got, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        let queue = Arc::clone(pool.queue());
        drop(pool); // joins the workers: returns only once all three have stopped
        assert_eq!(Arc::strong_count(&queue), 1, "no worker holds the queue");
    }

    /// The policy a job finds its worker under, with `batch_scheduled_workers` set to `batch`.
    #[cfg(target_os = "linux")]
    fn policy_seen_by_a_job(batch: bool) -> libc::c_int {
        let config = crate::Config {
            workers: 1,
            batch_scheduled_workers: batch,
            ..crate::Config::default()
        };
        let pool = StandalonePool::start(&config).expect("spawn");
        // SAFETY: `sched_getscheduler` only reads the calling thread's policy.
        #[allow(unsafe_code)]
        let job = pool
            .queue()
            .submit(|| unsafe { libc::sched_getscheduler(0) })
            .expect("admitted");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(job).expect("answered").expect("ran")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn workers_run_under_sched_batch_unless_configured_otherwise() {
        assert_eq!(policy_seen_by_a_job(true), libc::SCHED_BATCH);
        assert_eq!(policy_seen_by_a_job(false), libc::SCHED_OTHER);
        // SAFETY: as above; the test's own thread keeps the default policy.
        #[allow(unsafe_code)]
        let here = unsafe { libc::sched_getscheduler(0) };
        assert_eq!(here, libc::SCHED_OTHER, "only the workers change policy");
    }
}
