//! QoS fast reject: refuse a blocking job at once when it would wait too long for a worker.
//!
//! **What phxrpc does** (`HshaServerQos`): one reject probability. Once a second, if at least
//! 1000 queue-wait samples exist, it compares their average to `fast_reject_threshold_ms` and
//! moves the probability up or down by `fast_reject_adjust_rate` points; each request is then
//! refused by a coin flip. That is a feedback loop on a lagging signal: when a window's
//! average finally exceeds the threshold the queue is already long, the probability keeps
//! rising while that queue drains (refusing work the idle workers could have done), then falls
//! while the next queue builds. Our first port (windows of 64 samples or 100 ms) still did
//! both under 3x overload: 82–85% refused where capacity allowed ~67% acceptance, and the
//! accepted requests waited up to ~110–180 ms at p99 (docs/benchmark-log.md).
//!
//! **What we do**: predict the wait of the job being admitted and refuse it if that exceeds
//! the threshold, like CoDel bounding sojourn time rather than queue length. The prediction is
//! `jobs ahead × service time ÷ workers`, the service time being a moving average of recent
//! runs as the workers measure them. The queue thus never holds more than the workers drain
//! within the threshold: an accepted job waits about the threshold at most, and under overload
//! the queue stays at that length, so the workers never idle while requests are refused and
//! acceptance is the capacity. An empty queue always admits, so there is nothing to recover
//! from once a flood is over.
//!
//! phxrpc's feedback stays, to correct the prediction rather than to flip coins. Every window
//! ([`WINDOW_SAMPLES`] samples or [`WINDOW`], whichever comes first, so it reacts at any
//! traffic) the average observed wait is compared to the threshold: over it, the wait budget
//! the prediction is held to is cut by `fast_reject_adjust_rate` more points of the threshold
//! (up to [`MAX_CUT`]); under it, the cut shrinks by the same step. This catches what the
//! average service time cannot see: workers stuck in handlers much slower than the recent
//! ones, a burst of slow methods, the hand-off time between jobs. A window with no samples
//! shrinks the cut when the queue is empty and keeps it when jobs are queued but none was
//! taken (the workers are all stuck: no news is not good news). One caller wins each window
//! (a compare-and-swap on its start), so adjustments never double up.
//!
//! Every method takes the time (or the measured durations) as an argument, so the controller
//! is tested with simulated time.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Longest time between two adjustments while there is any activity.
pub const WINDOW: Duration = Duration::from_millis(100);
/// Samples that close a window early.
pub const WINDOW_SAMPLES: u64 = 64;
/// Largest cut of the wait budget, in percent of the threshold.
pub const MAX_CUT: u32 = 99;
/// Weight of the newest run in the service-time average: 1/16 (smooths a mix of methods and
/// still follows a change of service time within a few dozen jobs).
const SERVICE_SHIFT: u32 = 4;

/// The fast-reject controller.
#[derive(Debug)]
pub struct Qos {
    threshold_us: u64,
    step: u32,
    /// Points of the threshold taken off the wait budget (the feedback).
    cut: AtomicU32,
    /// Moving average of a job's run time, in nanoseconds; 0 until the first run.
    service_ns: AtomicU64,
    /// Workers serving the queue.
    workers: AtomicUsize,
    wait_sum_us: AtomicU64,
    samples: AtomicU64,
    window_start_us: AtomicU64,
    origin: Instant,
}

impl Qos {
    /// A controller with the given wait threshold and feedback step (percentage points).
    pub fn new(threshold: Duration, step: u32, now: Instant) -> Self {
        Self {
            threshold_us: u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX),
            step: step.clamp(1, MAX_CUT),
            cut: AtomicU32::new(0),
            service_ns: AtomicU64::new(0),
            workers: AtomicUsize::new(0),
            wait_sum_us: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            window_start_us: AtomicU64::new(0),
            origin: now,
        }
    }

    /// Points of the threshold currently taken off the wait budget (0 = the full threshold).
    pub fn cut(&self) -> u32 {
        self.cut.load(Relaxed)
    }

    /// The longest predicted wait admitted now.
    pub fn budget(&self) -> Duration {
        Duration::from_micros(self.budget_us())
    }

    /// The moving average of a job's run time (zero before the first run).
    pub fn service_time(&self) -> Duration {
        Duration::from_nanos(self.service_ns.load(Relaxed))
    }

    /// A worker starts serving the queue.
    pub fn worker_started(&self) {
        self.workers.fetch_add(1, Relaxed);
    }

    /// A worker stops serving the queue.
    pub fn worker_stopped(&self) {
        self.workers.fetch_sub(1, Relaxed);
    }

    /// The wait predicted for a job queued behind `queue_len` others.
    pub fn predicted_wait(&self, queue_len: usize) -> Duration {
        Duration::from_nanos(u64::try_from(self.predicted_ns(queue_len)).unwrap_or(u64::MAX))
    }

    /// Records how long one job waited in the queue (called when a worker takes it).
    pub fn record_wait(&self, wait: Duration, now: Instant, queue_len: usize) {
        let us = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        self.wait_sum_us.fetch_add(us, Relaxed);
        let n = self.samples.fetch_add(1, Relaxed) + 1;
        if n >= WINDOW_SAMPLES || self.window_elapsed(now) {
            self.adjust(now, queue_len);
        }
    }

    /// Records how long one job ran on its worker.
    pub fn record_service(&self, ran: Duration) {
        let x = u64::try_from(ran.as_nanos()).unwrap_or(u64::MAX).max(1);
        let old = self.service_ns.load(Relaxed);
        // Racing workers may lose each other's update: harmless for an average.
        let new = if old == 0 {
            x
        } else {
            old - (old >> SERVICE_SHIFT) + (x >> SERVICE_SHIFT)
        };
        self.service_ns.store(new.max(1), Relaxed);
    }

    /// Whether to admit a new job, `queue_len` jobs being queued now.
    pub fn admit(&self, now: Instant, queue_len: usize) -> bool {
        if self.window_elapsed(now) {
            self.adjust(now, queue_len);
        }
        queue_len == 0 || self.predicted_ns(queue_len) <= u128::from(self.budget_us()) * 1000
    }

    fn predicted_ns(&self, queue_len: usize) -> u128 {
        let workers = self.workers.load(Relaxed).max(1) as u128;
        queue_len as u128 * u128::from(self.service_ns.load(Relaxed)) / workers
    }

    fn budget_us(&self) -> u64 {
        let keep = u64::from(100 - self.cut.load(Relaxed).min(MAX_CUT));
        self.threshold_us.saturating_mul(keep) / 100
    }

    fn micros(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_micros()).unwrap_or(u64::MAX)
    }

    fn window_elapsed(&self, now: Instant) -> bool {
        let start = self.window_start_us.load(Relaxed);
        self.micros(now).saturating_sub(start) >= WINDOW.as_micros() as u64
    }

    fn adjust(&self, now: Instant, queue_len: usize) {
        let start = self.window_start_us.load(Relaxed);
        let now_us = self.micros(now);
        if self
            .window_start_us
            .compare_exchange(start, now_us.max(start), Relaxed, Relaxed)
            .is_err()
        {
            return; // another thread is adjusting this window
        }
        let n = self.samples.swap(0, Relaxed);
        let sum = self.wait_sum_us.swap(0, Relaxed);
        let cut = self.cut.load(Relaxed);
        let new = if n == 0 {
            if queue_len == 0 {
                cut.saturating_sub(self.step)
            } else {
                cut
            }
        } else if sum / n > self.threshold_us {
            (cut + self.step).min(MAX_CUT)
        } else {
            cut.saturating_sub(self.step)
        };
        self.cut.store(new, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Threshold 20 ms, step 5, 20 workers that have been running 5 ms jobs.
    fn qos(t0: Instant) -> Qos {
        let q = Qos::new(20 * MS, 5, t0);
        for _ in 0..20 {
            q.worker_started();
        }
        q.record_service(5 * MS);
        q
    }

    /// The longest queue `q` admits to at `now`.
    fn admitted_len(q: &Qos, now: Instant) -> usize {
        (0..100_000)
            .take_while(|&n| q.admit(now, n))
            .last()
            .expect("an empty queue admits")
    }

    #[test]
    fn admission_bounds_the_predicted_wait() {
        let t0 = Instant::now();
        let q = qos(t0);
        // 20 workers draining 5 ms jobs: one job every 250 µs, 80 of them in 20 ms
        assert_eq!(q.predicted_wait(80), 20 * MS);
        assert_eq!(admitted_len(&q, t0), 80);
        assert!(!q.admit(t0, 81));
        // slower jobs: a shorter queue
        for _ in 0..200 {
            q.record_service(20 * MS);
        }
        assert_eq!(admitted_len(&q, t0), 20);
        // an empty queue always admits, however slow the jobs
        q.record_service(Duration::from_secs(3600));
        assert!(q.admit(t0, 0));
        assert!(!q.admit(t0, 1));
    }

    #[test]
    fn no_run_yet_admits_until_the_queue_bound() {
        let t0 = Instant::now();
        let q = Qos::new(20 * MS, 5, t0);
        assert!(q.admit(t0, 0) && q.admit(t0, 10_000));
        assert_eq!(q.service_time(), Duration::ZERO);
    }

    #[test]
    fn fewer_workers_shorten_the_queue() {
        let t0 = Instant::now();
        let q = qos(t0);
        for _ in 0..10 {
            q.worker_stopped();
        }
        assert_eq!(admitted_len(&q, t0), 40);
    }

    #[test]
    fn service_time_follows_recent_runs() {
        let t0 = Instant::now();
        let q = qos(t0);
        assert_eq!(q.service_time(), 5 * MS);
        // one outlier moves the average by a sixteenth
        q.record_service(21 * MS);
        assert_eq!(q.service_time(), 6 * MS);
        for _ in 0..200 {
            q.record_service(MS);
        }
        assert!(q.service_time() < MS + Duration::from_micros(20));
    }

    #[test]
    fn slow_waits_cut_the_budget_by_sample_count() {
        let t0 = Instant::now();
        let q = qos(t0);
        for _ in 0..WINDOW_SAMPLES {
            q.record_wait(50 * MS, t0, 10);
        }
        assert_eq!(q.cut(), 5);
        assert_eq!(q.budget(), 19 * MS);
        assert_eq!(admitted_len(&q, t0), 76);
        for _ in 0..WINDOW_SAMPLES * 30 {
            q.record_wait(50 * MS, t0, 10);
        }
        assert_eq!(q.cut(), MAX_CUT, "capped");
        assert_eq!(q.budget(), Duration::from_micros(200));
        // a budget below one job's share refuses any queueing, never an empty queue
        assert!(q.admit(t0, 0));
        assert!(!q.admit(t0, 1));
    }

    #[test]
    fn low_traffic_reacts_within_a_window() {
        let t0 = Instant::now();
        let q = qos(t0);
        // only three samples, but a window of time passes: the cut moves anyway
        q.record_wait(80 * MS, t0, 1);
        q.record_wait(80 * MS, t0, 1);
        q.record_wait(80 * MS, t0 + WINDOW, 1);
        assert_eq!(q.cut(), 5);
        // fast waits restore it
        q.record_wait(MS, t0 + WINDOW * 2, 0);
        assert_eq!(q.cut(), 0);
    }

    #[test]
    fn idle_restores_but_stuck_workers_keep_the_cut() {
        let t0 = Instant::now();
        let q = qos(t0);
        for _ in 0..WINDOW_SAMPLES * 4 {
            q.record_wait(50 * MS, t0, 10);
        }
        assert_eq!(q.cut(), 20);
        // no samples, jobs queued: keep
        assert!(q.admit(t0 + WINDOW, 3));
        assert_eq!(q.cut(), 20);
        // no samples, queue empty: restore one step, once per window
        q.admit(t0 + WINDOW * 2, 0);
        q.admit(t0 + WINDOW * 2, 0);
        assert_eq!(q.cut(), 15);
        q.admit(t0 + WINDOW * 3, 0);
        assert_eq!(q.cut(), 10);
    }

    /// Overload in simulated time: 20 workers, jobs of 4–6 ms (5 ms on average), one offered
    /// every 83 µs (3x capacity) for 10 s. Accepted jobs wait about the threshold at most (the
    /// queue sits at the admitted length, the feedback flaps by a step around it; the worst
    /// is over by less than one job's run), and no worker idles while jobs are refused.
    #[test]
    fn simulated_overload_accepts_capacity_within_the_threshold() {
        let sim = simulate(1.0);
        // capacity: 20 workers × 200 jobs/s × 10 s, plus the queue left at the end
        assert!((39_500..=40_100).contains(&sim.accepted), "{sim:?}");
        assert!(sim.refused >= 79_000, "{sim:?}");
        assert!(sim.p99 <= 22 * MS && sim.worst <= 25 * MS, "{sim:?}");
        assert_eq!(sim.idle, Duration::ZERO, "{sim:?}");
    }

    /// The same, but each run takes 1.5x what the workers report (as if the hand-off between
    /// jobs cost that much): the prediction alone would let jobs wait 30 ms; the feedback
    /// cuts the budget until the observed waits are back near the threshold.
    #[test]
    fn feedback_corrects_an_optimistic_prediction() {
        let sim = simulate(1.5);
        // capacity: 20 / 7.5 ms × 10 s
        assert!(sim.accepted >= 26_000, "{sim:?}");
        assert!(sim.p99 <= 25 * MS, "{sim:?}");
        assert!(sim.cut_max >= 20, "{sim:?}");
    }

    #[derive(Debug)]
    struct Sim {
        accepted: u64,
        refused: u64,
        /// Of the waits after the first simulated second.
        p99: Duration,
        worst: Duration,
        /// Worker time spent idle while jobs were being refused.
        idle: Duration,
        cut_max: u32,
    }

    /// Runs the admission against a discrete-event model of the pool. Each job runs
    /// 4–6 ms (a fixed pseudo-random sequence; equal runs would keep the workers in lockstep)
    /// and really holds its worker `stretch` times what is recorded.
    fn simulate(stretch: f64) -> Sim {
        use std::collections::VecDeque;
        let t0 = Instant::now();
        let q = qos(t0);
        let gap = Duration::from_micros(83);
        let end = t0 + Duration::from_secs(10);
        let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
        let mut run = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            Duration::from_micros(4_000 + rng % 2_001)
        };
        let mut free_at = vec![t0; 20];
        let mut queue: VecDeque<Instant> = VecDeque::new();
        let (mut accepted, mut refused, mut cut_max) = (0, 0, 0);
        let mut waits = Vec::new();
        let mut idle = Duration::ZERO;
        let mut now = t0;
        while now < end {
            // workers free by `now` take the queued jobs in order
            loop {
                let (w, at) = free_at
                    .iter()
                    .copied()
                    .enumerate()
                    .min_by_key(|&(_, t)| t)
                    .expect("20 workers");
                if at > now {
                    break;
                }
                let Some(enq) = queue.pop_front() else {
                    free_at[w] = now; // waits for the next arrival
                    break;
                };
                let start = at.max(enq);
                if refused > 0 {
                    idle += start - at;
                }
                if start > t0 + Duration::from_secs(1) {
                    waits.push(start - enq);
                }
                q.record_wait(start - enq, start, queue.len());
                let ran = run();
                q.record_service(ran);
                free_at[w] = start + ran.mul_f64(stretch);
                cut_max = cut_max.max(q.cut());
            }
            if q.admit(now, queue.len()) {
                queue.push_back(now);
                accepted += 1;
            } else {
                refused += 1;
            }
            now += gap;
        }
        waits.sort();
        Sim {
            accepted,
            refused,
            p99: waits[waits.len() * 99 / 100],
            worst: waits.last().copied().unwrap_or_default(),
            idle,
            cut_max,
        }
    }
}
