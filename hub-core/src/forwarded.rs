//! The client's address behind a reverse proxy, believed only from the proxies
//! `trusted_proxies` names, in the one header `client_address_header` names:
//! `X-Forwarded-For` (the default), RFC 7239's `Forwarded` or nginx's `X-Real-IP`.
//!
//! From a trusted proxy, the chain's addresses (`X-Forwarded-For`'s entries, `Forwarded`'s
//! `for=` parameters) are read from the right (the hop nearest the hub) past the trusted
//! ones; the first other one is the client. `X-Real-IP` holds the client alone. A request that
//! does not come from a trusted proxy keeps its TCP peer, whatever its headers say (a client
//! can write any); so does one whose header is malformed where it is read, or names the
//! client `unknown` or by an obfuscated name (`for=_hidden`).
//!
//! The `Forwarded` parser is written here: the crates for it were an archived one and one
//! with dependencies of its own, for forty lines that read one parameter.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::config::{ClientAddressHeader, ConfigError};

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const FORWARDED: &str = "forwarded";
const X_REAL_IP: &str = "x-real-ip";

/// The proxies whose header is believed (addresses and networks), and that header.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies {
    proxies: Vec<Network>,
    header: ClientAddressHeader,
}

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
    /// The proxies of `trusted_proxies`, naming the client in `header`; an entry that is not
    /// an address or a network is an error naming the key.
    pub(crate) fn parse(
        list: &[String],
        header: ClientAddressHeader,
    ) -> Result<TrustedProxies, ConfigError> {
        let proxies = list
            .iter()
            .map(|entry| Network::parse(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::key("trusted_proxies", e))?;
        Ok(TrustedProxies { proxies, header })
    }

    /// Whether no proxy is trusted (the default): then nothing is read per request.
    pub(crate) fn is_empty(&self) -> bool {
        self.proxies.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(ip))
    }

    /// The client of a request from `peer` with `headers`: the address the trusted proxies
    /// forwarded (its port unknown: 0), or `peer`.
    pub(crate) fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let client = match self.header {
            ClientAddressHeader::XForwardedFor => {
                self.past_trusted(headers, X_FORWARDED_FOR, |line| {
                    line.split(',').map(|hop| parse_hop(hop.trim())).collect()
                })
            }
            ClientAddressHeader::Forwarded => self.past_trusted(headers, FORWARDED, forwarded_for),
            ClientAddressHeader::XRealIp => real_ip(headers),
        };
        client.map_or(peer, |ip| SocketAddr::new(ip, 0))
    }

    /// The first hop of the chain in every `name` line, in order, that is not a trusted
    /// proxy, read from the right: `hops` reads one line's hops, `None` for one that is not
    /// an address. `None` if one read is not, or all are trusted.
    fn past_trusted(
        &self,
        headers: &HeaderMap,
        name: &str,
        hops: impl Fn(&str) -> Vec<Option<IpAddr>>,
    ) -> Option<IpAddr> {
        let mut chain = Vec::new();
        for value in headers.get_all(name) {
            chain.extend(hops(value.to_str().ok()?));
        }
        for hop in chain.into_iter().rev() {
            let ip = hop?;
            if !self.trusts(ip) {
                return Some(ip);
            }
        }
        None
    }
}

/// `X-Real-IP`'s one address; `None` without it, or with more than one line.
fn real_ip(headers: &HeaderMap) -> Option<IpAddr> {
    let mut lines = headers.get_all(X_REAL_IP).iter();
    let line = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    parse_hop(line.to_str().ok()?.trim())
}

/// The `for=` of each element of one `Forwarded` line (`for=a;proto=https, for=b`), in
/// order: `None` for an element without one, or one that is not an address (`unknown`,
/// `_hidden`, malformed). A line that does not follow RFC 7239's grammar is one `None`: read
/// loosely, a quote a client left open (`for=1.2.3.4;x="`) swallowed the element a proxy
/// appended to the same line, and the client's own `for` was believed.
fn forwarded_for(line: &str) -> Vec<Option<IpAddr>> {
    let Some(elements) = forwarded_elements(line) else {
        return vec![None];
    };
    elements
        .into_iter()
        .map(|pairs| {
            let (_, value, escaped) = pairs
                .into_iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case("for"))?;
            // A quoted value (as an IPv6 address and any port must be) holds no escapes.
            if escaped {
                return None;
            }
            parse_hop(value)
        })
        .collect()
}

/// A `Forwarded` pair: its name, its value (a quoted one without its quotes), whether the
/// value has escapes.
type Pair<'a> = (&'a str, &'a str, bool);

/// One `Forwarded` line's elements, each its pairs as `(name, value, has escapes)` (a quoted
/// value without its quotes); `None` unless the line is `element *("," element)`, an element
/// `[pair] *(";" [pair])`, a pair `token "=" (token / quoted-string)`, with spaces allowed
/// around the separators. Unquoted values may also hold `:`, `[` and `]` (an address and
/// port some proxies leave unquoted).
fn forwarded_elements(line: &str) -> Option<Vec<Vec<Pair<'_>>>> {
    let b = line.as_bytes();
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    let skip_spaces = |mut i: usize| {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        i
    };
    let mut elements = vec![Vec::new()];
    let mut i = skip_spaces(0);
    while i < b.len() {
        match b[i] {
            b',' => elements.push(Vec::new()),
            b';' => {}
            _ => {
                let start = i;
                while i < b.len() && token(b[i]) {
                    i += 1;
                }
                let name = &line[start..i];
                if name.is_empty() || b.get(i) != Some(&b'=') {
                    return None;
                }
                i += 1;
                let (value, escaped) = if b.get(i) == Some(&b'"') {
                    let open = i + 1;
                    let mut escaped = false;
                    i = open;
                    loop {
                        match b.get(i)? {
                            b'"' => break,
                            b'\\' => {
                                escaped = true;
                                i += 2;
                            }
                            _ => i += 1,
                        }
                    }
                    let value = line.get(open..i)?;
                    i += 1;
                    (value, escaped)
                } else {
                    let start = i;
                    while i < b.len() && (token(b[i]) || b":[]".contains(&b[i])) {
                        i += 1;
                    }
                    (&line[start..i], false)
                };
                if value.is_empty() && !escaped && b[i - 1] != b'"' {
                    return None;
                }
                elements.last_mut()?.push((name, value, escaped));
                i = skip_spaces(i);
                if i < b.len() && !matches!(b[i], b',' | b';') {
                    return None;
                }
                continue;
            }
        }
        i = skip_spaces(i + 1);
    }
    Some(elements)
}

/// One hop: an address, possibly with a port (`203.0.113.9:4711`, `[2001:db8::1]:4711`,
/// `[2001:db8::1]`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let bare = hop.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    bare.unwrap_or(hop)
        .parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        trusted_in(list, ClientAddressHeader::XForwardedFor)
    }

    fn trusted_in(list: &[&str], header: ClientAddressHeader) -> TrustedProxies {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        TrustedProxies::parse(&list, header).unwrap()
    }

    fn client_of(proxies: &TrustedProxies, peer: &str, forwarded: &[&str]) -> String {
        let name = match proxies.header {
            ClientAddressHeader::XForwardedFor => X_FORWARDED_FOR,
            ClientAddressHeader::Forwarded => FORWARDED,
            ClientAddressHeader::XRealIp => X_REAL_IP,
        };
        let mut headers = HeaderMap::new();
        for line in forwarded {
            headers.append(name, line.parse().unwrap());
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
    fn forwarded_s_for_parameters_name_the_client() {
        let proxies = trusted_in(&["10.0.0.0/8"], ClientAddressHeader::Forwarded);
        let via = |lines: &[&str]| client_of(&proxies, "10.1.2.3:443", lines);
        assert_eq!(via(&["for=203.0.113.9"]), "203.0.113.9");
        assert_eq!(via(&["For=203.0.113.9;Proto=https"]), "203.0.113.9");
        assert_eq!(
            via(&["for=198.51.100.1, for=203.0.113.9;proto=https;by=10.0.0.1, for=10.9.9.9"]),
            "203.0.113.9",
            "read from the right past the trusted"
        );
        assert_eq!(
            via(&["for=198.51.100.1", "proto=http;for=203.0.113.9"]),
            "203.0.113.9",
            "header lines in order, any parameter order"
        );
        assert_eq!(
            via(&[r#"for="[2001:db8:cafe::17]:4711""#]),
            "2001:db8:cafe::17"
        );
        assert_eq!(via(&[r#"for="[2001:db8:cafe::17]""#]), "2001:db8:cafe::17");
        assert_eq!(via(&[r#"for="203.0.113.9:4711""#]), "203.0.113.9");
        // A comma or semicolon in a quoted value does not split.
        assert_eq!(
            via(&[r#"for=203.0.113.9;host="a,b;c", for=10.2.2.2"#]),
            "203.0.113.9"
        );
        // A quote the client left open does not swallow what a proxy appended to the line:
        // a line out of the grammar is not believed (the proxy itself), and a proxy's element
        // on a line of its own is read.
        for spoof in [
            r#"for=1.2.3.4;x=", for=203.0.113.9"#,
            r#"for=1.2.3.4;x=", for="[2001:db8::9]""#,
            r#"for=1.2.3.4 garbage, for=203.0.113.9"#,
            r#"for="1.2.3.4"x"#,
        ] {
            assert_eq!(via(&[spoof]), "10.1.2.3", "{spoof}");
        }
        assert_eq!(
            via(&[r#"for=1.2.3.4;x=""#, "for=203.0.113.9"]),
            "203.0.113.9"
        );
        assert_eq!(
            via(&[r#"for=203.0.113.9 ; proto=https , for=10.9.9.9"#]),
            "203.0.113.9"
        );
        // Unknown, obfuscated, without `for`, malformed, all trusted: the proxy itself.
        for unread in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            r#"for="[2001:db8::1"#,
            r#"for="203.0.113.9\:1""#,
            "for=10.2.2.2",
        ] {
            assert_eq!(via(&[unread]), "10.1.2.3", "{unread}");
        }
        // `X-Forwarded-For` is not read when `Forwarded` is the header, nor the other way.
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, "203.0.113.9".parse().unwrap());
        let peer: SocketAddr = "10.1.2.3:443".parse().unwrap();
        assert_eq!(proxies.client(peer, &headers), peer);
        headers.insert(FORWARDED, "for=198.51.100.7".parse().unwrap());
        assert_eq!(
            trusted(&["10.0.0.0/8"])
                .client(peer, &headers)
                .ip()
                .to_string(),
            "203.0.113.9"
        );
        // Not from a trusted proxy: not read.
        assert_eq!(
            client_of(&proxies, "203.0.113.50:5000", &["for=10.0.0.1"]),
            "203.0.113.50"
        );
    }

    #[test]
    fn x_real_ip_is_one_address() {
        let proxies = trusted_in(&["10.0.0.0/8"], ClientAddressHeader::XRealIp);
        let via = |lines: &[&str]| client_of(&proxies, "10.1.2.3:443", lines);
        assert_eq!(via(&["203.0.113.9"]), "203.0.113.9");
        assert_eq!(via(&["2001:db8::1"]), "2001:db8::1");
        for unread in [
            &["203.0.113.9, 198.51.100.1"][..],
            &["1.1.1.1", "2.2.2.2"],
            &[],
        ] {
            assert_eq!(via(unread), "10.1.2.3", "{unread:?}");
        }
        assert_eq!(
            client_of(&proxies, "203.0.113.50:5000", &["10.0.0.1"]),
            "203.0.113.50"
        );
    }

    #[test]
    fn the_header_is_named_in_the_config() {
        use crate::Config;
        let header = |toml: &str| Config::from_toml(toml).map(|c| c.client_address_header);
        assert_eq!(header("").unwrap(), ClientAddressHeader::XForwardedFor);
        assert_eq!(
            header(r#"client_address_header = "forwarded""#).unwrap(),
            ClientAddressHeader::Forwarded
        );
        assert_eq!(
            header(r#"client_address_header = "x-real-ip""#).unwrap(),
            ClientAddressHeader::XRealIp
        );
        let e = header(r#"client_address_header = "via""#).unwrap_err();
        assert!(e.to_string().contains("client_address_header"), "{e}");
    }

    #[test]
    fn entries_are_addresses_or_networks() {
        assert!(TrustedProxies::parse(&[], ClientAddressHeader::default())
            .unwrap()
            .is_empty());
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
            let e = TrustedProxies::parse(&[bad.to_owned()], ClientAddressHeader::default())
                .unwrap_err();
            assert!(e.to_string().contains("trusted_proxies"), "{bad}: {e}");
        }
    }
}
