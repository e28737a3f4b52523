//! Connections held per client address (`max_connections_per_ip`), so that one client
//! opening connections in a loop cannot take all of `max_connections` from the others.
//!
//! The acceptor counts each connection against its peer's address before handing it to a
//! unit, and the connection uncounts itself when it ends, however it ends. One lock per
//! connection opened and one per connection closed, not per request. They are counted with
//! the limit off too (the default: behind a reverse proxy every connection has the proxy's
//! address), so that a limit set by a config reload applies to what each client holds
//! already, not only to the connections opened after it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// The connections each address holds now; an address holding none has no entry, so the map
/// holds at most `max_connections` entries.
#[derive(Debug)]
pub(crate) struct PerIp {
    /// `max_connections_per_ip`; 0: no limit.
    limit: AtomicU32,
    held: Mutex<HashMap<IpAddr, u32, foldhash::fast::RandomState>>,
}

impl PerIp {
    /// The limit `config` asks for (0: none, but connections still counted).
    pub(crate) fn configured(config: &crate::Config) -> PerIp {
        let per_ip = PerIp {
            limit: AtomicU32::new(0),
            held: Mutex::new(HashMap::default()),
        };
        per_ip.set(config);
        per_ip
    }

    /// Takes `max_connections_per_ip` from `config` (a reload): connections a client holds
    /// past a lowered limit stay open, and it opens no more until it is under it.
    pub(crate) fn set(&self, config: &crate::Config) {
        let limit = u32::try_from(config.max_connections_per_ip).unwrap_or(u32::MAX);
        self.limit.store(limit, Relaxed);
    }

    /// Counts a connection from `ip`, unless it already holds the limit (then `false`, and
    /// nothing is counted).
    pub(crate) fn admit(&self, ip: IpAddr) -> bool {
        let limit = self.limit.load(Relaxed);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let n = held.entry(client_key(ip)).or_insert(0);
        if limit > 0 && *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    /// Uncounts a connection [`PerIp::admit`] counted.
    pub(crate) fn release(&self, ip: IpAddr) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let key = client_key(ip);
        if let Some(n) = held.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&key);
            }
        }
    }
}

/// One client, one key: an IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`)
/// counts as its IPv4 address, and an IPv6 client as its /64. A host is handed a whole /64
/// to pick addresses from (SLAAC, privacy addresses), so counted by address one client could
/// open `max_connections_per_ip` connections from each of 2^64 of them.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & NETWORK_64)),
        },
        v4 => v4,
    }
}

/// The network half of an IPv6 address.
const NETWORK_64: u128 = !(u64::MAX as u128);

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(n: usize) -> PerIp {
        PerIp::configured(&crate::Config {
            max_connections_per_ip: n,
            ..crate::Config::default()
        })
    }

    #[test]
    fn each_address_holds_at_most_the_limit_and_gets_its_room_back() {
        let per_ip = limited(2);
        let a: IpAddr = "10.0.0.1".parse().expect("an address");
        let b: IpAddr = "10.0.0.2".parse().expect("an address");
        assert!(per_ip.admit(a) && per_ip.admit(a));
        assert!(!per_ip.admit(a), "a third from the same address");
        assert!(per_ip.admit(b), "another address has its own room");
        per_ip.release(a);
        assert!(per_ip.admit(a), "room again once one closed");
        per_ip.release(a);
        per_ip.release(a);
        per_ip.release(b);
        assert!(
            per_ip.held.lock().expect("lock").is_empty(),
            "no entry left behind"
        );
    }

    #[test]
    fn a_mapped_ipv4_client_is_the_same_client() {
        let per_ip = limited(1);
        assert!(per_ip.admit("192.0.2.7".parse().expect("an address")));
        assert!(!per_ip.admit("::ffff:192.0.2.7".parse().expect("an address")));
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let per_ip = limited(2);
        let ip = |s: &str| -> IpAddr { s.parse().expect("an address") };
        assert!(per_ip.admit(ip("2001:db8:1:2::1")));
        assert!(per_ip.admit(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")));
        assert!(
            !per_ip.admit(ip("2001:db8:1:2:ffff::9")),
            "a third address of the same /64"
        );
        assert!(
            per_ip.admit(ip("2001:db8:1:3::1")),
            "the next /64 is another client"
        );
        per_ip.release(ip("2001:db8:1:2::1"));
        assert!(
            per_ip.admit(ip("2001:db8:1:2::77")),
            "room again once one closed"
        );
    }

    #[test]
    fn zero_is_off_and_still_counts_for_a_limit_set_later() {
        let per_ip = limited(0);
        let a: IpAddr = "10.0.0.1".parse().expect("an address");
        assert!((0..5).all(|_| per_ip.admit(a)), "no limit");
        per_ip.set(&crate::Config {
            max_connections_per_ip: 6,
            ..crate::Config::default()
        });
        assert!(per_ip.admit(a), "a sixth under a limit of 6");
        assert!(!per_ip.admit(a), "the five held before the limit count");
        per_ip.set(&crate::Config {
            max_connections_per_ip: 3,
            ..crate::Config::default()
        });
        per_ip.release(a);
        per_ip.release(a);
        assert!(!per_ip.admit(a), "four held: still over a lowered limit");
        per_ip.release(a);
        assert!(!per_ip.admit(a), "three held: at it");
        per_ip.release(a);
        assert!(per_ip.admit(a), "under it again");
    }
}
