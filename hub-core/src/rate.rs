//! Requests per client (`max_requests_per_ip_per_sec`, `requests_per_ip_burst`): one client
//! calling in a tight loop (a build daemon polling with no pause, a script gone wrong) is
//! answered `429 Too Many Requests` with a `Retry-After` past its rate, and the hub's workers
//! stay with everyone else's calls.
//!
//! A token bucket per client: `burst` calls at once, refilled at the rate. The client is the
//! one `trusted_proxies` names behind a proxy, else the TCP peer; an IPv6 client counts by
//! its /64, as for `max_connections_per_ip`. Only calls and uploads are counted, not
//! `/metrics` or `/healthz`.
//!
//! The rate and the burst are read again on a config reload, so an operator can slow down a
//! client hammering the hub, or lift the limit, without a restart; buckets keep their tokens,
//! capped at the new burst.
//!
//! Memory is bounded: the table holds at most [`MAX_CLIENTS`] clients, a sixteenth in each of
//! its shards (a client's shard is a randomly seeded hash of its address, which no client can
//! aim at another's). A client whose bucket has filled up again is as if it had none, so when
//! a shard is full those are dropped; if every client in it is still limited, a new one is
//! served untracked until room is made (the bound on memory wins over the limit, and a
//! warning says so).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most clients the table tracks at once.
pub(crate) const MAX_CLIENTS: usize = 100_000;

/// Lock shards: clients spread over them by address, so the IO units rarely meet on a lock.
const SHARDS: usize = 16;

/// The buckets of the clients seen lately.
#[derive(Debug)]
pub(crate) struct RateLimit {
    /// Tokens per second; 0: no limit.
    rate: AtomicU32,
    /// Tokens a full bucket holds.
    burst: AtomicU32,
    shards: [Mutex<Shard>; SHARDS],
    /// Picks a client's shard: seeded at random, so that no client can choose addresses
    /// that fill the shard of another (each shard holds its share of [`MAX_CLIENTS`], and a
    /// full one serves new clients untracked).
    shard_hasher: foldhash::fast::RandomState,
    /// Whether the table was found full (warned about once).
    overflowed: AtomicBool,
}

/// The clients of one shard, and when its full buckets were last dropped.
#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<IpAddr, Bucket, foldhash::fast::RandomState>,
    swept: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// The limit `config` asks for (none if its rate is 0).
    pub(crate) fn configured(config: &crate::Config) -> RateLimit {
        let limit = RateLimit {
            rate: AtomicU32::new(0),
            burst: AtomicU32::new(0),
            shards: std::array::from_fn(|_| Mutex::default()),
            shard_hasher: foldhash::fast::RandomState::default(),
            overflowed: AtomicBool::new(false),
        };
        limit.set(config);
        limit
    }

    /// Takes the rate and burst `config` asks for (a config reload).
    pub(crate) fn set(&self, config: &crate::Config) {
        let rate = config.max_requests_per_ip_per_sec;
        let burst = match config.requests_per_ip_burst {
            0 => rate,
            burst => burst,
        };
        self.burst.store(burst, Ordering::Relaxed);
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// Whether requests are limited at all.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.rate.load(Ordering::Relaxed) > 0
    }

    /// Takes a token for a request from `ip` at `now`; `Err` with the wait until the next
    /// token if there is none.
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let (rate, burst) = (
            f64::from(self.rate.load(Ordering::Relaxed)),
            f64::from(self.burst.load(Ordering::Relaxed)),
        );
        if rate == 0.0 {
            return Ok(());
        }
        let key = crate::per_ip::client_key(ip);
        let shard = &self.shards[self.shard_of(key)];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if !shard.buckets.contains_key(&key) && shard.buckets.len() >= MAX_CLIENTS / SHARDS {
            // Full buckets are as good as none. Swept at most once a second: a sweep walks
            // the shard, and a flood of new addresses must not make every request pay it.
            let due = shard
                .swept
                .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
            if due {
                shard.swept = Some(now);
                shard
                    .buckets
                    .retain(|_, b| refilled(*b, now, rate, burst) < burst);
            }
            if shard.buckets.len() >= MAX_CLIENTS / SHARDS {
                if !self.overflowed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        max_clients = MAX_CLIENTS,
                        "too many clients over their request rate to track: new ones are \
                         served untracked until some are back under it"
                    );
                }
                return Ok(());
            }
        }
        let full = Bucket {
            tokens: burst,
            at: now,
        };
        let bucket = shard.buckets.entry(key).or_insert(full);
        let tokens = refilled(*bucket, now, rate, burst);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            return Ok(());
        }
        *bucket = Bucket { tokens, at: now };
        Err(Duration::from_secs_f64((1.0 - tokens) / rate))
    }

    /// The shard of a client key.
    fn shard_of(&self, key: IpAddr) -> usize {
        std::hash::BuildHasher::hash_one(&self.shard_hasher, key) as usize % SHARDS
    }

    /// Clients tracked now.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .buckets
                    .len()
            })
            .sum()
    }
}

/// The tokens `bucket` holds at `now`, refilled at `rate` up to `burst`.
fn refilled(bucket: Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate).min(burst)
}

/// The `Retry-After` of a request refused after waiting `wait` for its next token: whole
/// seconds, at least one.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn limit(rate: u32, burst: u32) -> RateLimit {
        RateLimit::configured(&crate::Config {
            max_requests_per_ip_per_sec: rate,
            requests_per_ip_burst: burst,
            ..crate::Config::default()
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limit = limit(10, 3);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(limit.admit(a, t0).is_ok());
        }
        let wait = limit.admit(a, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert_eq!(retry_after_secs(wait), 1);
        // Another client has its own bucket; an IPv6 client's /64 shares one.
        assert!(limit.admit(ip("192.0.2.2"), t0).is_ok());
        for n in 1..=3 {
            assert!(limit.admit(ip(&format!("2001:db8::{n}")), t0).is_ok());
        }
        assert!(limit.admit(ip("2001:db8::99"), t0).is_err());
        assert!(limit.admit(ip("2001:db8:0:1::1"), t0).is_ok());
        // 100 ms later, one token; a second later, the burst again, not more.
        assert!(limit.admit(a, t0 + Duration::from_millis(100)).is_ok());
        assert!(limit.admit(a, t0 + Duration::from_millis(100)).is_err());
        let later = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert!(limit.admit(a, later).is_ok());
        }
        assert!(limit.admit(a, later).is_err());
        // Without a burst set, it is the rate.
        let limit = limit_of_rate(2);
        assert!(limit.admit(a, t0).is_ok() && limit.admit(a, t0).is_ok());
        assert!(limit.admit(a, t0).is_err());
    }

    fn limit_of_rate(rate: u32) -> RateLimit {
        limit(rate, 0)
    }

    #[test]
    fn the_table_is_bounded() {
        let limit = limit(1, 1);
        let t0 = Instant::now();
        let client = |n: u32| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        let n = u32::try_from(MAX_CLIENTS).unwrap() * 2;
        // Every client over its rate, twice as many as the table holds: it stays bounded,
        // and the newest are served untracked.
        for i in 0..n {
            assert!(limit.admit(client(i), t0).is_ok());
        }
        assert!(limit.clients() <= MAX_CLIENTS);
        assert!(limit.overflowed.load(Ordering::Relaxed));
        // A second later their buckets are full again: new clients take their places.
        let later = t0 + Duration::from_secs(2);
        assert!(limit.admit(client(n + 1), later).is_ok());
        assert!(limit.admit(client(n + 1), later).is_err(), "tracked again");
        assert!(limit.clients() <= MAX_CLIENTS);
    }

    #[test]
    fn off_by_default_and_set_again() {
        let limit = RateLimit::configured(&crate::Config::default());
        assert!(!limit.is_on());
        let (a, t0) = (ip("192.0.2.1"), Instant::now());
        assert!((0..1000).all(|_| limit.admit(a, t0).is_ok()));
        limit.set(&crate::Config {
            max_requests_per_ip_per_sec: 1,
            ..crate::Config::default()
        });
        assert!(limit.is_on());
        assert!(limit.admit(a, t0).is_ok());
        assert!(limit.admit(a, t0).is_err());
        limit.set(&crate::Config::default());
        assert!(limit.admit(a, t0).is_ok());
    }
}
