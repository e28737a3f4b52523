//! A closed-loop HTTP/1.1 load generator for the end-to-end benchmark.
//!
//! Each connection is a raw keep-alive `TcpStream` that writes one prebuilt request and reads
//! one response (status line and `Content-Length` only: this is the load generator, not the
//! server), then sends the next. Optionally paced: a connection then waits for its next slot
//! (a fixed interval) before sending, so that a fixed number of connections offers a fixed
//! rate (the overload run).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod wrk;

/// How long a response may take before its request counts as unanswered.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A prebuilt `POST` carrying `body`.
pub fn post(path: &str, body: &[u8]) -> Arc<[u8]> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: hub-e2e\r\n\
         Content-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req.into()
}

/// One load run.
#[derive(Debug, Clone)]
pub struct Load {
    pub addr: SocketAddr,
    pub request: Arc<[u8]>,
    pub conns: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// Per-connection interval between sends (`None`: closed loop, as fast as answered).
    pub pace: Option<Duration>,
}

/// What a run measured (only the measured window counts, except `unanswered`/`errors`).
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Answers with status 200.
    pub ok: u64,
    /// Answers with status 503.
    pub refused: u64,
    /// Answers with any other status.
    pub other: u64,
    /// Requests written (in the measured window) that never got an answer.
    pub unanswered: u64,
    /// Connections that failed to connect or broke.
    pub errors: u64,
    /// Latency of each `200` answer in the measured window, microseconds, sorted.
    pub lat_us: Vec<u32>,
    /// Latency of each `503` answer, microseconds, sorted.
    pub refused_lat_us: Vec<u32>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn answered(&self) -> u64 {
        self.ok + self.refused + self.other
    }

    /// `200` answers per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile of the `200` latencies, in milliseconds.
    pub fn q_ms(&self, q: f64) -> f64 {
        quantile(&self.lat_us, q)
    }
}

pub fn quantile(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[i]) / 1000.0
}

/// Opens `n` connections, at most 256 connects in flight (the listen backlog is 1024).
pub async fn connect_all(addr: SocketAddr, n: usize) -> (Vec<TcpStream>, u64) {
    let mut out = Vec::with_capacity(n);
    let mut errors = 0;
    let mut left = n;
    while left > 0 {
        let batch = left.min(256);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            set.spawn(async move {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                io::Result::Ok(s)
            });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(s)) => out.push(s),
                _ => errors += 1,
            }
        }
        left -= batch;
    }
    (out, errors)
}

/// Runs `load` and returns what it measured.
pub async fn run(load: &Load) -> Outcome {
    let (streams, connect_errors) = connect_all(load.addr, load.conns).await;
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.measure;
    let mut set = tokio::task::JoinSet::new();
    let n = streams.len().max(1) as u32;
    for (i, s) in streams.into_iter().enumerate() {
        let load = load.clone();
        // Spread paced connections' slots evenly over one interval.
        let offset = load.pace.map_or(Duration::ZERO, |p| p * i as u32 / n);
        set.spawn(conn_loop(s, load, start + offset, measure_from, end));
    }
    let mut total = Outcome {
        errors: connect_errors,
        ..Outcome::default()
    };
    while let Some(r) = set.join_next().await {
        let Ok(o) = r else {
            total.errors += 1;
            continue;
        };
        total.ok += o.ok;
        total.refused += o.refused;
        total.other += o.other;
        total.unanswered += o.unanswered;
        total.errors += o.errors;
        total.lat_us.extend_from_slice(&o.lat_us);
        total.refused_lat_us.extend_from_slice(&o.refused_lat_us);
    }
    total.elapsed = load.measure;
    total.lat_us.sort_unstable();
    total.refused_lat_us.sort_unstable();
    total
}

async fn conn_loop(
    mut s: TcpStream,
    load: Load,
    first: Instant,
    measure_from: Instant,
    end: Instant,
) -> Outcome {
    let mut o = Outcome::default();
    let mut buf = Vec::with_capacity(4096);
    let mut slot = first;
    loop {
        if let Some(pace) = load.pace {
            let now = Instant::now();
            if slot > now {
                tokio::time::sleep_until(slot.into()).await;
            }
            slot = slot.max(now - pace) + pace;
        }
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let counted = sent >= measure_from;
        let answer = async {
            s.write_all(&load.request).await?;
            read_response(&mut s, &mut buf).await
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok((status, close))) => {
                if counted {
                    let us = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                    match status {
                        200 => {
                            o.ok += 1;
                            o.lat_us.push(us);
                        }
                        503 => {
                            o.refused += 1;
                            o.refused_lat_us.push(us);
                        }
                        _ => o.other += 1,
                    }
                }
                if close {
                    match TcpStream::connect(load.addr).await {
                        Ok(new) => {
                            let _ = new.set_nodelay(true);
                            s = new;
                        }
                        Err(_) => {
                            o.errors += 1;
                            break;
                        }
                    }
                }
            }
            Ok(Err(_)) | Err(_) => {
                o.unanswered += u64::from(counted);
                o.errors += 1;
                break;
            }
        }
    }
    o
}

/// Reads one response into `buf` (cleared first): its status and whether the server closes.
pub async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(u16, bool)> {
    buf.clear();
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        if s.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    };
    let head = &buf[..head_end];
    let status = std::str::from_utf8(head.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(io::ErrorKind::InvalidData)?;
    let len = header(head, b"content-length")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
        .ok_or(io::ErrorKind::InvalidData)?;
    let close = header(head, b"connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
    let total = head_end + len;
    if buf.capacity() < total {
        buf.reserve(total - buf.len());
    }
    while buf.len() < total {
        if s.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok((status, close))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of header `name` (lowercase) in a response head.
fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name)
            .then(|| line[colon + 1..].trim_ascii())
    })
}
