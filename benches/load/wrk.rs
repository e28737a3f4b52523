//! A second, independent load generator: `wrk` (Debian's `wrk` package), where installed.
//!
//! The same closed loop (keep-alive connections, the next request sent when the answer
//! arrives) and the same request body, from another process with its own HTTP client code
//! (C, epoll, one Lua-scripted `POST`): whether the ratios to the floor hold apart from the
//! built-in generator's way of sending and reading.

use std::io;
use std::process::Command;
use std::time::Duration;

/// What one `wrk` run reported.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    /// Requests completed (any status).
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx or 3xx (`503`s from a full queue, say).
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts, summed.
    pub socket_errors: u64,
    /// CPU time `wrk` spent, microseconds (user + system).
    pub cpu_us: f64,
}

/// `wrk`'s version line, if it is on `PATH`.
pub fn version() -> Option<String> {
    // `wrk -v` prints its version and exits with status 1.
    let out = Command::new("wrk").arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .next()
        .filter(|l| l.starts_with("wrk "))
        .map(str::to_owned)
}

/// Runs `wrk` against `url` (`http` or `https`: wrk does not check the server's certificate)
/// with `POST`s of `body` on `conns` connections; with `close`, every request asks for
/// `Connection: close`, so each one is a new connection (and, over TLS, a full handshake).
pub fn run(
    url: &str,
    close: bool,
    body: &[u8],
    conns: usize,
    threads: usize,
    duration: Duration,
) -> io::Result<WrkRun> {
    let script = std::env::temp_dir().join(format!("hub-e2e-wrk-{}.lua", std::process::id()));
    let mut lua = lua_post(body)?;
    if close {
        lua.push_str("wrk.headers[\"Connection\"] = \"close\"\n");
    }
    std::fs::write(&script, lua)?;
    let cpu_before = children_cpu_us();
    let out = Command::new("wrk")
        .arg(format!("-t{}", threads.min(conns)))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()?;
    let cpu_us = children_cpu_us() - cpu_before;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    parse(&text, cpu_us).ok_or_else(|| {
        io::Error::other(format!(
            "unexpected wrk output: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// A script setting the method, body and content type of every request.
fn lua_post(body: &[u8]) -> io::Result<String> {
    let body = std::str::from_utf8(body).map_err(io::Error::other)?;
    // A long bracket whose level the body does not close early.
    let level = (0..)
        .map(|n| "=".repeat(n))
        .find(|eq| !body.contains(&format!("]{eq}]")))
        .unwrap_or_default();
    Ok(format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"text/xml\"\n\
         wrk.body = [{level}[{body}]{level}]\n"
    ))
}

/// Reads the figures out of `wrk --latency`'s report.
fn parse(text: &str, cpu_us: f64) -> Option<WrkRun> {
    let after = |key: &str| -> Option<&str> {
        let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
        Some(line.trim_start()[key.len()..].trim())
    };
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let socket_errors = after("Socket errors:").map_or(0, |s| {
        s.split(',')
            .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    });
    Some(WrkRun {
        requests,
        rps: after("Requests/sec:")?.parse().ok()?,
        p50_ms: duration_ms(after("50%")?)?,
        p99_ms: duration_ms(after("99%")?)?,
        non_2xx: after("Non-2xx or 3xx responses:").map_or(Some(0), |s| s.parse().ok())?,
        socket_errors,
        cpu_us,
    })
}

/// `wrk`'s `83.00us` / `1.53ms` / `2.10s` as milliseconds.
fn duration_ms(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1e3,
        "ms" => n,
        "s" => n * 1e3,
        "m" => n * 60e3,
        _ => return None,
    })
}

/// CPU time of this process's finished, waited-for children (`wrk` runs to its end before
/// `output` returns; the server children are still running and not counted).
fn children_cpu_us() -> f64 {
    // SAFETY: `getrusage` writes only into the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return 0.0;
    }
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(ru.ru_utime) + us(ru.ru_stime)
}
