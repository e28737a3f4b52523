//! The client's address behind a reverse proxy: `X-Forwarded-For`, believed only from the
//! proxies `trusted_proxies` names.
//!
//! From a trusted proxy, the header's addresses are read from the right (the hop nearest
//! the hub) past the trusted ones; the first other one is the client. A request that does
//! not come from a trusted proxy keeps its TCP peer, whatever its header says (a client can
//! write any `X-Forwarded-For`); so does one whose header is malformed where it is read.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::config::ConfigError;

/// The header read.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The proxies whose `X-Forwarded-For` is believed: addresses and networks.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Vec<Network>);

/// An address, or a network in CIDR form (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Result<Network, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an address or a network (`10.0.0.0/8`)"))?;
        let addr = addr.to_canonical();
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("`{text}`: the prefix must be 0..={bits}"))?,
        };
        Ok(Network { addr, prefix })
    }

    fn contains(self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether `a` and `b` share their first `prefix` bits.
fn same_prefix(a: u128, b: u128, prefix: u8) -> bool {
    prefix == 0 || (a ^ b) >> (128 - u32::from(prefix)) == 0
}

impl TrustedProxies {
    /// The proxies of `trusted_proxies`; an entry that is not an address or a network is an
    /// error naming the key.
    pub(crate) fn parse(list: &[String]) -> Result<TrustedProxies, ConfigError> {
        list.iter()
            .map(|entry| Network::parse(entry))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
            .map_err(|e| ConfigError::key("trusted_proxies", e))
    }

    /// Whether no proxy is trusted (the default): then nothing is read per request.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client of a request from `peer` with `headers`: the address the trusted proxies
    /// forwarded (its port unknown: 0), or `peer`.
    pub(crate) fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        // Every header line, in order, then their entries from the right.
        let mut hops: Vec<&str> = Vec::new();
        for value in headers.get_all(X_FORWARDED_FOR) {
            let Ok(text) = value.to_str() else {
                return peer;
            };
            hops.extend(text.split(',').map(str::trim));
        }
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return peer;
            };
            if !self.trusts(ip) {
                return SocketAddr::new(ip, 0);
            }
        }
        peer
    }
}

/// One hop of the header: an address, possibly with a port (`203.0.113.9:4711`,
/// `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn client_of(proxies: &TrustedProxies, peer: &str, forwarded: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for line in forwarded {
            headers.append(X_FORWARDED_FOR, line.parse().unwrap());
        }
        proxies
            .client(peer.parse().unwrap(), &headers)
            .ip()
            .to_string()
    }

    #[test]
    fn the_client_is_the_first_hop_past_the_trusted_ones() {
        let proxies = trusted(&["10.0.0.0/8", "192.0.2.7", "fd00::/8"]);
        let from_proxy = "10.1.2.3:443";
        assert_eq!(
            client_of(&proxies, from_proxy, &[]),
            "10.1.2.3",
            "no header"
        );
        assert_eq!(
            client_of(&proxies, from_proxy, &["203.0.113.9"]),
            "203.0.113.9"
        );
        // A client's own claim on the left is not believed: the hop the proxy added is.
        assert_eq!(
            client_of(
                &proxies,
                from_proxy,
                &["198.51.100.1, 203.0.113.9, 10.9.9.9"]
            ),
            "203.0.113.9"
        );
        assert_eq!(
            client_of(
                &proxies,
                from_proxy,
                &["198.51.100.1", "203.0.113.9, 192.0.2.7"]
            ),
            "203.0.113.9",
            "header lines in order"
        );
        assert_eq!(
            client_of(&proxies, from_proxy, &["203.0.113.9:4711"]),
            "203.0.113.9"
        );
        assert_eq!(
            client_of(&proxies, from_proxy, &["[2001:db8::1]:4711"]),
            "2001:db8::1"
        );
        assert_eq!(
            client_of(&proxies, "[fd00::5]:443", &["203.0.113.9"]),
            "203.0.113.9"
        );
        assert_eq!(
            client_of(&proxies, "[::ffff:10.0.0.1]:443", &["203.0.113.9"]),
            "203.0.113.9",
            "an IPv4 proxy reached over IPv6"
        );
        // Malformed where it is read, or all trusted: the proxy itself.
        assert_eq!(
            client_of(&proxies, from_proxy, &["203.0.113.9, nonsense"]),
            "10.1.2.3"
        );
        assert_eq!(
            client_of(&proxies, from_proxy, &["10.2.2.2, 10.3.3.3"]),
            "10.1.2.3"
        );
        // Not from a trusted proxy: the header is whatever the client wrote.
        assert_eq!(
            client_of(&proxies, "203.0.113.50:5000", &["10.0.0.1"]),
            "203.0.113.50"
        );
        assert_eq!(
            client_of(&proxies, "11.0.0.1:5000", &["203.0.113.9"]),
            "11.0.0.1"
        );
    }

    #[test]
    fn entries_are_addresses_or_networks() {
        assert!(TrustedProxies::parse(&[]).unwrap().is_empty());
        assert!(trusted(&["0.0.0.0/0"]).trusts("8.8.8.8".parse().unwrap()));
        assert!(!trusted(&["10.0.0.0/8"]).trusts("11.0.0.0".parse().unwrap()));
        assert!(trusted(&["10.0.0.0/31"]).trusts("10.0.0.1".parse().unwrap()));
        assert!(!trusted(&["10.0.0.0/32"]).trusts("10.0.0.1".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "proxy.example",
            "10.0.0.0/x",
            "",
        ] {
            let e = TrustedProxies::parse(&[bad.to_owned()]).unwrap_err();
            assert!(e.to_string().contains("trusted_proxies"), "{bad}: {e}");
        }
    }
}
