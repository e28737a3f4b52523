//! The worker pool: `workers` OS threads running blocking handlers (phxrpc's thread mode).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::queue::{JobQueue, Msg, Parker};

/// Starts `n` workers on `queue`.
pub(crate) fn spawn(n: usize, queue: &Arc<JobQueue>) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..n)
        .map(|i| {
            let queue = Arc::clone(queue);
            std::thread::Builder::new()
                .name(format!("hub-worker-{i}"))
                .spawn(move || run(&queue))
        })
        .collect()
}

/// One worker: take a job; skip it if its client left; answer it without running if it
/// waited too long; else run it. A panic that escapes the job is caught: the worker lives on.
fn run(queue: &JobQueue) {
    queue.qos.worker_started();
    serve(queue);
    queue.qos.worker_stopped();
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
        if wait > queue.max_wait {
            stats.counters.queue_wait_drops.add(1);
            job.task.expire();
            continue;
        }
        let task = job.task;
        if catch_unwind(AssertUnwindSafe(move || task.run())).is_err() {
            // The dispatcher catches handler panics itself; this is the last line of defence.
            stats.counters.panics.add(1);
        }
        // QoS predicts queue waits from how long jobs hold a worker.
        queue.qos.record_service(now.elapsed());
    }
}
