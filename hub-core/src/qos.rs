//! QoS fast reject: refuse blocking jobs early, with a probability that follows queue wait.
//!
//! phxrpc's rule: when the average queue wait exceeds `fast_reject_threshold_ms`, the reject
//! probability grows by `fast_reject_adjust_rate` points (up to 99), otherwise it shrinks by the
//! same step. phxrpc adjusts once a second and only when 1000 samples exist, so at low traffic
//! it never reacts. Here an adjustment happens after [`WINDOW_SAMPLES`] samples **or**
//! [`WINDOW`] of time, whichever comes first, so the rate moves within 100 ms at any traffic:
//! - a window with samples compares their average wait to the threshold;
//! - a window with no samples lowers the rate when the queue is empty (nothing is waiting),
//!   and keeps it when jobs are queued but none was taken (the workers are all stuck, so no
//!   news is not good news).
//!
//! One caller wins the window (a compare-and-swap on its start), so adjustments never double
//! up. Randomness is a thread-local generator per caller (phxrpc shares one unlocked engine).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Longest time between two adjustments while there is any activity.
pub const WINDOW: Duration = Duration::from_millis(100);
/// Samples that close a window early.
pub const WINDOW_SAMPLES: u64 = 64;
/// Highest reject probability, in percent.
pub const MAX_RATE: u32 = 99;

/// The fast-reject controller.
#[derive(Debug)]
pub struct Qos {
    threshold_us: u64,
    step: u32,
    rate: AtomicU32,
    wait_sum_us: AtomicU64,
    samples: AtomicU64,
    window_start_us: AtomicU64,
    origin: Instant,
}

impl Qos {
    /// A controller with the given threshold and step (percentage points).
    pub fn new(threshold: Duration, step: u32, now: Instant) -> Self {
        Self {
            threshold_us: u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX),
            step: step.clamp(1, MAX_RATE),
            rate: AtomicU32::new(0),
            wait_sum_us: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            window_start_us: AtomicU64::new(0),
            origin: now,
        }
    }

    /// The current reject probability, in percent.
    pub fn rate(&self) -> u32 {
        self.rate.load(Relaxed)
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

    /// Whether to admit a new job; `roll` is uniform in `0..100`.
    pub fn admit(&self, now: Instant, roll: u32, queue_len: usize) -> bool {
        if self.window_elapsed(now) {
            self.adjust(now, queue_len);
        }
        roll >= self.rate.load(Relaxed)
    }

    /// [`Qos::admit`] with a thread-local random roll.
    pub fn admit_random(&self, now: Instant, queue_len: usize) -> bool {
        // Fast path: no reject rate, no random number needed.
        if self.rate.load(Relaxed) == 0 && !self.window_elapsed(now) {
            return true;
        }
        self.admit(now, fastrand::u32(0..100), queue_len)
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
        let rate = self.rate.load(Relaxed);
        let new = if n == 0 {
            if queue_len == 0 {
                rate.saturating_sub(self.step)
            } else {
                rate
            }
        } else if sum / n > self.threshold_us {
            (rate + self.step).min(MAX_RATE)
        } else {
            rate.saturating_sub(self.step)
        };
        self.rate.store(new, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qos(t0: Instant) -> Qos {
        Qos::new(Duration::from_millis(20), 5, t0)
    }

    #[test]
    fn slow_waits_raise_the_rate_by_sample_count() {
        let t0 = Instant::now();
        let q = qos(t0);
        for _ in 0..WINDOW_SAMPLES {
            q.record_wait(Duration::from_millis(50), t0, 10);
        }
        assert_eq!(q.rate(), 5);
        for _ in 0..WINDOW_SAMPLES * 30 {
            q.record_wait(Duration::from_millis(50), t0, 10);
        }
        assert_eq!(q.rate(), MAX_RATE, "capped at 99");
        // a roll under the rate is rejected, at or above admitted
        assert!(!q.admit(t0, 98, 10));
        assert!(q.admit(t0, 99, 10));
    }

    #[test]
    fn low_traffic_reacts_within_a_window() {
        let t0 = Instant::now();
        let q = qos(t0);
        // only three samples, but a window of time passes: the rate moves anyway
        q.record_wait(Duration::from_millis(80), t0, 1);
        q.record_wait(Duration::from_millis(80), t0, 1);
        q.record_wait(Duration::from_millis(80), t0 + WINDOW, 1);
        assert_eq!(q.rate(), 5);
        // fast waits lower it again
        q.record_wait(Duration::from_millis(1), t0 + WINDOW * 2, 0);
        assert_eq!(q.rate(), 0);
    }

    #[test]
    fn idle_lowers_but_stuck_workers_keep_the_rate() {
        let t0 = Instant::now();
        let q = qos(t0);
        for _ in 0..WINDOW_SAMPLES * 4 {
            q.record_wait(Duration::from_millis(50), t0, 10);
        }
        assert_eq!(q.rate(), 20);
        // no samples, jobs queued: keep
        assert!(q.admit(t0 + WINDOW, 50, 3));
        assert_eq!(q.rate(), 20);
        // no samples, queue empty: lower, once per window
        q.admit(t0 + WINDOW * 2, 50, 0);
        q.admit(t0 + WINDOW * 2, 50, 0);
        assert_eq!(q.rate(), 15);
        q.admit(t0 + WINDOW * 3, 50, 0);
        assert_eq!(q.rate(), 10);
    }

    #[test]
    fn zero_rate_admits_everything() {
        let t0 = Instant::now();
        let q = qos(t0);
        assert!((0..100).all(|r| q.admit(t0, r, 0)));
        assert!(q.admit_random(t0, 0));
    }
}
