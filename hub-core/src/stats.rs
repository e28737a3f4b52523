//! Counters, histograms, Prometheus text and the `[SERVER_STAT]` line.
//!
//! Everything on the hot path is a relaxed atomic add: no lock per request. Counters and
//! histograms that every request touches are sharded ([`Counter`]): each thread adds on its
//! own cache line, so two IO units on two cores do not pass the same lines back and forth on
//! every request; a read sums the shards. Per-method slots are allocated once from the
//! registry's names; calls to unknown names share one slot so a hostile client cannot grow
//! the table.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

/// Shards per counter. Threads take shards in the order they first count, so the IO units
/// (which count every request) get shards of their own; workers beyond eight share.
const SHARDS: usize = 8;

/// This thread's shard.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SHARD: Cell<usize> = const { Cell::new(usize::MAX) });
    SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Relaxed) % SHARDS;
            s.set(i);
        }
        i
    })
}

/// A monotonic counter that many threads add to, each on its own cache line.
#[derive(Debug, Default)]
pub struct Counter {
    shards: [CachePadded<AtomicU64>; SHARDS],
}

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.shards[shard()].fetch_add(n, Relaxed);
    }

    /// The total so far.
    pub fn get(&self) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.load(Relaxed)))
    }
}

/// Upper bounds of the latency buckets, in microseconds (`+Inf` is implicit).
pub const BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A fixed-bucket latency histogram (sharded like [`Counter`]).
#[derive(Debug, Default)]
pub struct Histogram {
    shards: [CachePadded<HistogramShard>; SHARDS],
}

#[derive(Debug, Default)]
struct HistogramShard {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_US.partition_point(|&b| b < us);
        let shard = &self.shards[shard()];
        shard.buckets[i].fetch_add(1, Relaxed);
        shard.sum_us.fetch_add(us, Relaxed);
    }

    /// Observations so far (the buckets' total: one locked add per observation fewer than a
    /// count of its own, and always equal to the `+Inf` bucket).
    pub fn count(&self) -> u64 {
        (0..=BUCKETS_US.len()).fold(0u64, |n, i| n.wrapping_add(self.sum(|s| &s.buckets[i])))
    }

    /// Sum of observations, in microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum(|s| &s.sum_us)
    }

    fn sum(&self, field: impl Fn(&HistogramShard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(field(s).load(Relaxed)))
    }

    fn write_prometheus(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += self.sum(|s| &s.buckets[i]);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.sum(|s| &s.buckets[BUCKETS_US.len()]);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_us() as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        // The `+Inf` bucket's own total: read again, the buckets may have moved meanwhile,
        // and Prometheus takes a `_count` unequal to `+Inf` for a broken histogram.
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Calls, faults and latency of one method.
#[derive(Debug, Default)]
pub struct MethodStats {
    /// Calls dispatched.
    pub calls: Counter,
    /// Calls that answered a fault.
    pub faults: Counter,
    /// Handler time (queue wait excluded).
    pub latency: Histogram,
}

/// What a [`Counters`] field reads as.
trait Total {
    fn total(&self) -> u64;
}

impl Total for AtomicU64 {
    fn total(&self) -> u64 {
        self.load(Relaxed)
    }
}

impl Total for Counter {
    fn total(&self) -> u64 {
        self.get()
    }
}

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty = $kind:literal ),* $(,)?) => {
        /// The server-wide counters (phxrpc's set, named for Prometheus).
        #[derive(Debug, Default)]
        pub struct Counters { $( $(#[$doc])* pub $name: $ty, )* }

        /// A copy of [`Counters`] at one instant.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Snapshot { $( $(#[$doc])* pub $name: u64, )* }

        impl Counters {
            /// Reads every counter.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $( $name: self.$name.total(), )* }
            }

            fn write_prometheus(&self, out: &mut String) {
                $(
                    let v = self.$name.total();
                    let suffix = if $kind == "counter" { "_total" } else { "" };
                    let _ = writeln!(out, "# TYPE hub_{}{} {}", stringify!($name), suffix, $kind);
                    let _ = writeln!(out, "hub_{}{} {}", stringify!($name), suffix, v);
                )*
            }
        }
    };
}

counters! {
    /// Connections open now.
    connections_held: AtomicU64 = "gauge",
    /// Connections accepted and handed to a unit.
    connections_accepted: Counter = "counter",
    /// Idle connections taken back from hyper to wait as bare sockets.
    connections_parked: Counter = "counter",
    /// Connections refused with `503` (over `max_connections`).
    connections_rejected: Counter = "counter",
    /// Connections refused with `503` because their client address held
    /// `max_connections_per_ip` already.
    per_ip_rejections: Counter = "counter",
    /// `accept` calls that failed.
    accept_failures: Counter = "counter",
    /// Requests whose head was read.
    requests_read: Counter = "counter",
    /// Responses handed to hyper for writing.
    responses_written: Counter = "counter",
    /// Request body bytes read.
    bytes_in: Counter = "counter",
    /// Response body bytes written.
    bytes_out: Counter = "counter",
    /// Connections that ended with a protocol or IO error (timeouts excluded).
    io_failures: Counter = "counter",
    /// Header, body or idle timeouts that cut a connection off.
    timeouts: Counter = "counter",
    /// Blocking jobs pushed onto the queue.
    queue_pushes: Counter = "counter",
    /// Blocking jobs taken by a worker.
    queue_pops: Counter = "counter",
    /// Requests refused by QoS fast reject.
    fast_rejects: Counter = "counter",
    /// Requests refused because the queue was full.
    queue_full_rejects: Counter = "counter",
    /// Calls refused because their method had `max_in_flight` calls running.
    method_limit_refusals: Counter = "counter",
    /// Calls and uploads answered `429` because their client was over
    /// `max_requests_per_ip_per_sec`.
    rate_limited: Counter = "counter",
    /// Jobs answered without running because they waited past `max_queue_wait_ms`.
    queue_wait_drops: Counter = "counter",
    /// Jobs skipped because their client had gone.
    client_gone_skips: Counter = "counter",
    /// Handlers that panicked.
    panics: Counter = "counter",
    /// Bodies refused with `413`.
    too_large: Counter = "counter",
    /// Bytes of request bodies held now against `max_body_bytes_held`.
    body_bytes_held: AtomicU64 = "gauge",
    /// Requests refused with `503` because their body would pass `max_body_bytes_held`.
    body_budget_refusals: Counter = "counter",
    /// Times an IO unit did not run its tasks for `stall_warn_ms`.
    unit_stalls: Counter = "counter",
    /// Times every worker stayed on its call for `stall_warn_ms` (blocking calls waited for
    /// a worker meanwhile).
    pool_saturations: Counter = "counter",
    /// Workers running now in place of ones held by a blocking call whose caller stopped
    /// waiting (at most `workers`).
    stand_in_workers: AtomicU64 = "gauge",
    /// Request bodies refused for their `Content-Encoding`: one the hub does not decode
    /// (`415`), or data not valid in it (`400`).
    bad_encodings: Counter = "counter",
    /// TLS connections that ended before their handshake finished: a failed or refused
    /// handshake (no or an unverified client certificate when one is required), a plain HTTP
    /// request (answered `400`), or no handshake within `socket_timeout_ms`.
    tls_failures: Counter = "counter",
    /// Calls answered the offline fault (offline, lockout, or a failed resource).
    offline_refusals: Counter = "counter",
    /// Requests whose credentials the authenticator refused.
    auth_failures: Counter = "counter",
    /// Calls refused for lack of a permission.
    permission_denials: Counter = "counter",
    /// Calls whose memory growth passed `memory_warn_threshold_kib`.
    memory_warnings: Counter = "counter",
    /// Upload requests handled.
    uploads: Counter = "counter",
}

/// All statistics of one server.
#[derive(Debug)]
pub struct Stats {
    /// Server-wide counters.
    pub counters: Counters,
    /// Time blocking jobs waited for a worker.
    pub queue_wait: Histogram,
    /// A fast hash: the keys are fixed, so names from the network cannot flood a bucket.
    /// Shared with the dispatch table, which finds a method and its slot in one lookup.
    methods: HashMap<String, Arc<MethodStats>, foldhash::fast::RandomState>,
    unknown: MethodStats,
}

impl Stats {
    /// Allocates per-method slots for `names`.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut methods: HashMap<String, Arc<MethodStats>, _> = names
            .into_iter()
            .map(|n| (n.to_owned(), Arc::default()))
            .collect();
        methods.entry("system.multicall".to_owned()).or_default();
        Self {
            counters: Counters::default(),
            queue_wait: Histogram::default(),
            methods,
            unknown: MethodStats::default(),
        }
    }

    /// The slot for `method` (the shared "unknown" slot when it is not registered).
    pub fn method(&self, method: &str) -> &MethodStats {
        self.methods.get(method).map_or(&self.unknown, |m| m)
    }

    /// The slot of a registered `method`, to be kept by the dispatch table.
    pub(crate) fn slot(&self, method: &str) -> Option<Arc<MethodStats>> {
        self.methods.get(method).cloned()
    }

    /// The slot calls to unregistered names share.
    pub(crate) fn unknown(&self) -> &MethodStats {
        &self.unknown
    }

    /// The Prometheus text exposition of everything.
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(4096 + self.methods.len() * 2048);
        self.counters.write_prometheus(&mut out);
        out.push_str("# TYPE hub_queue_wait_seconds histogram\n");
        self.queue_wait
            .write_prometheus(&mut out, "hub_queue_wait_seconds", "");
        let mut names: Vec<&String> = self.methods.keys().collect();
        names.sort();
        let all = names
            .iter()
            .map(|n| (escape(n), &*self.methods[*n]))
            .chain(std::iter::once(("(unknown)".to_owned(), &self.unknown)));
        let all: Vec<_> = all.collect();
        out.push_str("# TYPE hub_method_calls_total counter\n");
        for (n, m) in &all {
            let _ = writeln!(
                out,
                "hub_method_calls_total{{method=\"{n}\"}} {}",
                m.calls.get()
            );
        }
        out.push_str("# TYPE hub_method_faults_total counter\n");
        for (n, m) in &all {
            let _ = writeln!(
                out,
                "hub_method_faults_total{{method=\"{n}\"}} {}",
                m.faults.get()
            );
        }
        out.push_str("# TYPE hub_method_duration_seconds histogram\n");
        for (n, m) in &all {
            m.latency.write_prometheus(
                &mut out,
                "hub_method_duration_seconds",
                &format!("method=\"{n}\""),
            );
        }
        out
    }

    /// Total handler time so far, all methods, in microseconds.
    pub fn handler_time_us(&self) -> (u64, u64) {
        self.methods
            .values()
            .map(|m| &**m)
            .chain(std::iter::once(&self.unknown))
            .fold((0, 0), |(c, s), m| {
                (c + m.latency.count(), s + m.latency.sum_us())
            })
    }
}

pub(crate) fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Produces the `[SERVER_STAT]` line for the interval since the previous call.
#[derive(Debug, Default)]
pub struct StatLine {
    last: Snapshot,
    last_wait: (u64, u64),
    last_handler: (u64, u64),
}

impl StatLine {
    /// The line for the last interval, or `None` when nothing happened in it.
    pub fn next(&mut self, stats: &Stats) -> Option<String> {
        let now = stats.counters.snapshot();
        let wait = (stats.queue_wait.count(), stats.queue_wait.sum_us());
        let handler = stats.handler_time_us();
        let p = self.last;
        let quiet = now.requests_read == p.requests_read
            && now.connections_accepted == p.connections_accepted
            && now.connections_rejected == p.connections_rejected;
        let avg =
            |(c, s): (u64, u64), (pc, ps): (u64, u64)| (s - ps).checked_div(c - pc).unwrap_or(0);
        let line = format!(
            "[SERVER_STAT] held={} accepted={} rejected={} reads={} writes={} bytes_in={} \
             bytes_out={} io_failures={} timeouts={} queue_push={} queue_pop={} fast_rejects={} \
             queue_full={} queue_wait_drops={} client_gone={} panics={} too_large={} \
             queue_wait_avg_us={} handler_avg_us={} unit_stalls={} pool_saturations={} \
             stand_ins={}",
            now.connections_held,
            now.connections_accepted - p.connections_accepted,
            now.connections_rejected - p.connections_rejected,
            now.requests_read - p.requests_read,
            now.responses_written - p.responses_written,
            now.bytes_in - p.bytes_in,
            now.bytes_out - p.bytes_out,
            now.io_failures - p.io_failures,
            now.timeouts - p.timeouts,
            now.queue_pushes - p.queue_pushes,
            now.queue_pops - p.queue_pops,
            now.fast_rejects - p.fast_rejects,
            now.queue_full_rejects - p.queue_full_rejects,
            now.queue_wait_drops - p.queue_wait_drops,
            now.client_gone_skips - p.client_gone_skips,
            now.panics - p.panics,
            now.too_large - p.too_large,
            avg(wait, self.last_wait),
            avg(handler, self.last_handler),
            now.unit_stalls - p.unit_stalls,
            now.pool_saturations - p.pool_saturations,
            now.stand_in_workers,
        );
        self.last = now;
        self.last_wait = wait;
        self.last_handler = handler;
        (!quiet).then_some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One scrape's `_count` is its `+Inf` bucket, however the histogram moves meanwhile
    /// (`_count` was read again after the buckets; found in review).
    #[test]
    fn a_scrape_s_count_is_its_inf_bucket_while_observations_go_on() {
        let h = Histogram::default();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let value = |text: &str, prefix: &str| -> u64 {
            let line = text.lines().find(|l| l.starts_with(prefix)).expect(prefix);
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .expect(line)
        };
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while !stop.load(Relaxed) {
                        h.observe(Duration::from_micros(50));
                    }
                });
            }
            for _ in 0..2000 {
                let mut out = String::new();
                h.write_prometheus(&mut out, "h", "");
                let inf = value(&out, "h_bucket{le=\"+Inf\"}");
                let count = value(&out, "h_count{}");
                if inf != count {
                    stop.store(true, Relaxed);
                    panic!("+Inf bucket {inf}, _count {count}");
                }
            }
            stop.store(true, Relaxed);
        });
    }

    #[test]
    fn sharded_counts_add_up_across_threads() {
        let c = Counter::default();
        let h = Histogram::default();
        std::thread::scope(|s| {
            for t in 0..(SHARDS as u64 + 3) {
                let (c, h) = (&c, &h);
                s.spawn(move || {
                    for _ in 0..1000 {
                        c.add(t + 1);
                        h.observe(Duration::from_micros(t));
                    }
                });
            }
        });
        let n = SHARDS as u64 + 3;
        assert_eq!(c.get(), 1000 * n * (n + 1) / 2);
        assert_eq!(h.count(), 1000 * n);
        assert_eq!(h.sum_us(), 1000 * n * (n - 1) / 2);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.write_prometheus(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.0001\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count{} 4\n"), "{out}");
    }

    #[test]
    fn unknown_methods_share_a_slot_and_stat_line_is_quiet_without_traffic() {
        let s = Stats::new(["echo"]);
        s.method("nope").calls.add(1);
        s.method("other").calls.add(1);
        s.method("echo").calls.add(1);
        let text = s.prometheus();
        assert!(
            text.contains("hub_method_calls_total{method=\"(unknown)\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("hub_method_calls_total{method=\"echo\"} 1"),
            "{text}"
        );
        let mut line = StatLine::default();
        assert!(line.next(&s).is_none());
        s.counters.requests_read.add(3);
        s.counters.pool_saturations.add(1);
        s.counters.stand_in_workers.store(2, Relaxed);
        let l = line.next(&s).expect("traffic");
        assert!(l.contains("reads=3"), "{l}");
        // What the liveness monitor found: a count for the interval, a gauge as it is.
        assert!(
            l.contains("unit_stalls=0 pool_saturations=1 stand_ins=2"),
            "{l}"
        );
        assert!(line.next(&s).is_none());
    }
}
