//! Compressed bodies. Requests: `Content-Encoding: gzip` (or `x-gzip`) and `deflate` are
//! decoded; any other coding is refused with `415`. Answers: gzipped past
//! `gzip_answers_over` bytes for a client whose `Accept-Encoding` takes gzip.
//!
//! Python's `xmlrpc.client` gzips a request once its `Transport.encode_threshold` is set, and
//! Apache ws-xmlrpc does with `setGzipCompressing(true)`; both expect the server to decode it
//! (Python's own server does). The decoded body is bounded by `max_request_length` like a
//! plain one — a small body that inflates past it is answered `413` as soon as the limit is
//! passed, so a "zip bomb" costs at most the limit in memory — and is then parsed as usual.

use std::io::Read;

use bytes::Bytes;
use flate2::bufread::{MultiGzDecoder, ZlibDecoder};
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
use http::HeaderMap;

/// What `Accept-Encoding` a `415` names: the request codings the hub decodes.
pub(crate) const ACCEPTED: &str = "gzip, deflate";

/// A request body's content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// As sent (no `Content-Encoding`, or `identity`).
    Identity,
    /// `gzip` / `x-gzip` (RFC 1952; several members are decoded in turn).
    Gzip,
    /// `deflate`: the zlib format (RFC 1950), as HTTP defines it.
    Deflate,
}

/// A `Content-Encoding` the hub does not decode (`br`, `zstd`, two codings stacked, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsupported;

/// Why a compressed body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// It inflates past the limit (`413`).
    TooLarge,
    /// Not valid data in its coding, or cut short (`400`).
    Corrupt,
}

/// The coding of a body sent with `headers`. `identity` entries are skipped; more than one
/// other coding is refused, as is any coding other than gzip and deflate.
pub(crate) fn coding(headers: &HeaderMap) -> Result<Coding, Unsupported> {
    let mut found = Coding::Identity;
    // This runs on every request: a scan of the few headers a request has costs about half
    // of a hashed `get_all` (callgrind: ~95 instructions against ~185).
    let values = headers
        .iter()
        .filter(|(name, _)| *name == CONTENT_ENCODING)
        .map(|(_, value)| value);
    for value in values {
        for name in value.as_bytes().split(|&b| b == b',') {
            let name = name.trim_ascii();
            let this = if name.is_empty() || name.eq_ignore_ascii_case(b"identity") {
                continue;
            } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
                Coding::Gzip
            } else if name.eq_ignore_ascii_case(b"deflate") {
                Coding::Deflate
            } else {
                return Err(Unsupported);
            };
            if found != Coding::Identity {
                return Err(Unsupported);
            }
            found = this;
        }
    }
    Ok(found)
}

/// `body` decoded from `coding`, refused once it passes `max` bytes.
// Inlined: on every request, an identity body is then a branch, not a call.
#[inline]
pub(crate) fn decode(coding: Coding, body: Bytes, max: usize) -> Result<Bytes, DecodeError> {
    match coding {
        Coding::Identity => Ok(body),
        Coding::Gzip => inflate(MultiGzDecoder::new(&body[..]), body.len(), max),
        Coding::Deflate => {
            let mut decoder = ZlibDecoder::new(&body[..]);
            let out = inflate(&mut decoder, body.len(), max)?;
            // Bytes after the stream are not part of the body: refused, as gzip's decoder
            // refuses them (they were dropped; found in review).
            if !decoder.get_ref().is_empty() {
                return Err(DecodeError::Corrupt);
            }
            Ok(out)
        }
    }
}

fn inflate(decoder: impl Read, compressed: usize, max: usize) -> Result<Bytes, DecodeError> {
    // XML compresses well: start at a few times the compressed size, never past the limit.
    let mut out = Vec::with_capacity(compressed.saturating_mul(4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Corrupt)?;
    if out.len() > max {
        return Err(DecodeError::TooLarge);
    }
    Ok(Bytes::from(out))
}

/// Whether a client sending `headers` takes a gzipped answer: `gzip` (or `x-gzip`) listed
/// in `Accept-Encoding` with a non-zero weight, or `*` when gzip is not named (RFC 9110
/// §12.5.3).
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None, None);
    for value in headers.get_all(ACCEPT_ENCODING) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            let wanted = parts.all(|param| !is_zero_weight(param.trim_ascii()));
            if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
                gzip = Some(wanted);
            } else if name == b"*" {
                any = Some(wanted);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// `q=0`, `q=0.0`, ... (a weight of zero: "not acceptable").
fn is_zero_weight(param: &[u8]) -> bool {
    let Some(weight) = param
        .strip_prefix(b"q=")
        .or_else(|| param.strip_prefix(b"Q="))
    else {
        return false;
    };
    let weight = weight.trim_ascii();
    weight.first() == Some(&b'0') && weight[1..].iter().all(|&b| b == b'.' || b == b'0')
}

/// `data` gzipped at the fastest level: on 8 MB of koji-like build listings, 18x smaller at
/// ~1 GB/s, where the default level reaches 29x at ~150 MB/s (BENCHMARKS.md).
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Compression::fast());
    // Writing into a `Vec` cannot fail.
    let _ = std::io::Write::write_all(&mut out, data);
    out.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::{GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use http::HeaderValue;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).expect("in memory");
        Bytes::from(e.finish().expect("in memory"))
    }

    fn zlib(data: &[u8]) -> Bytes {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).expect("in memory");
        Bytes::from(e.finish().expect("in memory"))
    }

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CONTENT_ENCODING, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_coding_is_read_from_content_encoding() {
        for (values, want) in [
            (&[][..], Ok(Coding::Identity)),
            (&["identity"][..], Ok(Coding::Identity)),
            (&[""][..], Ok(Coding::Identity)),
            (&["gzip"][..], Ok(Coding::Gzip)),
            (&["GZip"][..], Ok(Coding::Gzip)),
            (&["x-gzip"][..], Ok(Coding::Gzip)),
            (&[" deflate "][..], Ok(Coding::Deflate)),
            (&["identity, gzip"][..], Ok(Coding::Gzip)),
            (&["gzip", "identity"][..], Ok(Coding::Gzip)),
            (&["br"][..], Err(Unsupported)),
            (&["zstd"][..], Err(Unsupported)),
            (&["compress"][..], Err(Unsupported)),
            (&["gzip, gzip"][..], Err(Unsupported)),
            (&["deflate", "gzip"][..], Err(Unsupported)),
            (&["gzip, br"][..], Err(Unsupported)),
        ] {
            assert_eq!(coding(&headers(values)), want, "{values:?}");
        }
    }

    #[test]
    fn gzip_is_accepted_as_accept_encoding_weighs_it() {
        for (values, want) in [
            (&[][..], false),
            (&[""][..], false),
            (&["identity"][..], false),
            (&["deflate"][..], false),
            (&["gzip"][..], true),
            (&["GZIP"][..], true),
            (&["x-gzip"][..], true),
            (&["gzip, deflate"][..], true), // requests (koji)
            (&["deflate", "gzip;q=0.5"][..], true),
            (&["gzip;q=1.0"][..], true),
            (&["gzip; q=0.001"][..], true),
            (&["gzip;q=0"][..], false),
            (&["gzip;q=0.000"][..], false),
            (&["gzip ; Q=0"][..], false),
            (&["*"][..], true),
            (&["*;q=0"][..], false),
            (&["gzip;q=0, *"][..], false),
            (&["*;q=0, gzip"][..], true),
        ] {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(ACCEPT_ENCODING, HeaderValue::from_static(v));
            }
            assert_eq!(accepts_gzip(&h), want, "{values:?}");
        }
    }

    #[test]
    fn answers_are_gzipped_whole() {
        let xml = "<methodResponse>".repeat(1000);
        // The server's own encoder (`gzip` here is the tests' default-level one).
        let packed = super::gzip(xml.as_bytes());
        assert!(packed.len() < xml.len() / 10, "{} bytes", packed.len());
        assert_eq!(
            decode(Coding::Gzip, Bytes::from(packed), 1 << 20).as_deref(),
            Ok(xml.as_bytes())
        );
        assert_eq!(
            decode(Coding::Gzip, Bytes::from(super::gzip(b"")), 10).as_deref(),
            Ok(&b""[..])
        );
    }

    #[test]
    fn gzip_and_deflate_bodies_are_decoded() {
        let xml = b"<?xml version='1.0'?><methodCall><methodName>echo</methodName></methodCall>";
        assert_eq!(
            decode(Coding::Gzip, gzip(xml), 1 << 20).as_deref(),
            Ok(&xml[..])
        );
        assert_eq!(
            decode(Coding::Deflate, zlib(xml), 1 << 20).as_deref(),
            Ok(&xml[..])
        );
        let plain = Bytes::from_static(xml);
        assert_eq!(decode(Coding::Identity, plain.clone(), 10), Ok(plain));
        // Two gzip members one after the other are one body.
        let mut two = gzip(b"<a>").to_vec();
        two.extend_from_slice(&gzip(b"</a>"));
        assert_eq!(
            decode(Coding::Gzip, Bytes::from(two), 100).as_deref(),
            Ok(&b"<a></a>"[..])
        );
    }

    #[test]
    fn the_limit_applies_to_the_decoded_body() {
        let data = vec![b'x'; 1000];
        assert_eq!(
            decode(Coding::Gzip, gzip(&data), 1000).map(|b| b.len()),
            Ok(1000)
        );
        assert_eq!(
            decode(Coding::Gzip, gzip(&data), 999),
            Err(DecodeError::TooLarge)
        );
        assert_eq!(
            decode(Coding::Deflate, zlib(&data), 999),
            Err(DecodeError::TooLarge)
        );
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // 64 MiB of zeros in ~64 KiB: decoding stops one byte past the 1 MiB limit.
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).expect("in memory");
        }
        let bomb = Bytes::from(e.finish().expect("in memory"));
        assert!(bomb.len() < 128 << 10, "{} bytes", bomb.len());
        assert_eq!(
            decode(Coding::Gzip, bomb, 1 << 20),
            Err(DecodeError::TooLarge)
        );
    }

    #[test]
    fn corrupt_or_truncated_data_is_refused() {
        let good = gzip(b"<methodCall/>");
        let truncated = good.slice(..good.len() - 3);
        let mut flipped = good.to_vec();
        flipped[12] ^= 0xff;
        let mut trailing = good.to_vec();
        trailing.extend_from_slice(b"garbage");
        for bad in [
            Bytes::from_static(b"<methodCall/>"),
            Bytes::new(),
            truncated,
            Bytes::from(flipped),
            Bytes::from(trailing),
        ] {
            assert_eq!(
                decode(Coding::Gzip, bad.clone(), 1 << 20),
                Err(DecodeError::Corrupt),
                "{bad:?}"
            );
        }
        assert_eq!(
            decode(Coding::Deflate, gzip(b"x"), 1 << 20),
            Err(DecodeError::Corrupt)
        );
        let mut trailing = zlib(b"<methodCall/>").to_vec();
        assert_eq!(
            decode(Coding::Deflate, Bytes::from(trailing.clone()), 1 << 20).as_deref(),
            Ok(&b"<methodCall/>"[..])
        );
        trailing.extend_from_slice(b"garbage");
        assert_eq!(
            decode(Coding::Deflate, Bytes::from(trailing), 1 << 20),
            Err(DecodeError::Corrupt),
            "bytes after the deflate stream"
        );
    }
}
