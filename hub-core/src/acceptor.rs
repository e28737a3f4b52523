//! The acceptor: owns the listeners (`listen`, bound with SO_REUSEADDR and a backlog of 1024,
//! or every socket systemd passed), deals accepted connections round robin to the units, and
//! refuses connections past `max_connections` (or past `max_connections_per_ip` from one
//! address) with a `503` (a TLS alert on a TLS listener).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::Shared;
use crate::unit::Unit;

/// Binds `addr` with address reuse on and a backlog of 1024.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Accepts from every listener until shutdown, then drops them and hangs up on the units
/// (which then drain). Runs on the acceptor thread's runtime.
pub(crate) async fn run(
    listeners: Vec<TcpListener>,
    units: Vec<Unit>,
    shared: Arc<Shared>,
) -> Vec<JoinHandle<()>> {
    let listeners = match listeners
        .into_iter()
        .map(tokio::net::TcpListener::from_std)
        .collect::<io::Result<Vec<_>>>()
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot register listener: {e}");
            shared.shutdown.shutdown();
            return hang_up(units);
        }
    };
    // The listener looked at first, turn by turn, so a busy one cannot starve the others.
    let mut first = 0;
    let counters = &shared.stats.counters;
    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.wait() => break,
            r = std::future::poll_fn(|cx| accept_any(&listeners, &mut first, cx)) => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                counters.accept_failures.add(1);
                tracing::warn!("accept failed: {e}");
                // Out of descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let held = counters.connections_held.fetch_add(1, Relaxed) + 1;
        if held > shared.switches.max_connections() {
            counters.connections_held.fetch_sub(1, Relaxed);
            counters.connections_rejected.add(1);
            tokio::spawn(refuse(stream, shared.tls.is_some()));
            continue;
        }
        // Counted here, uncounted when the connection ends (`conn::Held`).
        if !shared.per_ip.admit(peer.ip()) {
            counters.connections_held.fetch_sub(1, Relaxed);
            counters.per_ip_rejections.add(1);
            tokio::spawn(refuse(stream, shared.tls.is_some()));
            continue;
        }
        counters.connections_accepted.add(1);
        // From here the counts go with the connection: dropped anywhere, it releases them.
        let held = crate::conn::Held::counted(Arc::clone(&shared), peer);
        match stream.into_std() {
            Ok(stream) => {
                // A unit gone (its thread ended) drops the hand-off, counts and all.
                let _ = units[next].tx.send((stream, held));
            }
            Err(e) => tracing::warn!(%peer, "cannot hand off connection: {e}"),
        }
        next = (next + 1) % units.len();
    }
    // A listener passed by the service manager stays open there: connections that arrive
    // from now on wait in its backlog for the next process.
    drop(listeners);
    crate::systemd::notify_stopping();
    hang_up(units)
}

/// The first connection ready on any of `listeners`, looking from `first` on (then from the
/// next one, the call after).
fn accept_any(
    listeners: &[tokio::net::TcpListener],
    first: &mut usize,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<io::Result<(tokio::net::TcpStream, SocketAddr)>> {
    let n = listeners.len();
    for k in 0..n {
        let i = (*first + k) % n;
        if let std::task::Poll::Ready(accepted) = listeners[i].poll_accept(cx) {
            *first = (i + 1) % n;
            return std::task::Poll::Ready(accepted);
        }
    }
    std::task::Poll::Pending
}

/// Closes the hand-off channels (each unit then drains) and keeps the threads to join.
fn hang_up(units: Vec<Unit>) -> Vec<JoinHandle<()>> {
    units.into_iter().map(|u| u.thread).collect()
}

/// The whole answer to a connection over `max_connections`.
const CANNED: &str = "HTTP/1.1 503 Service Unavailable\r\n\
    Retry-After: 1\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 33\r\n\
    Connection: close\r\n\
    \r\n\
    server busy: too many connections";

/// What a TLS client over `max_connections` gets instead: a fatal `internal_error` alert
/// record (TLS has no "busy"), sent before any handshake — plain HTTP bytes would read as a
/// protocol error, and a handshake is the CPU an overloaded server must not spend.
const TLS_REFUSAL: [u8; 7] = [
    21, // content type: alert
    3, 3, // TLS 1.2 record version (what a 1.3 record carries too)
    0, 2,  // length
    2,  // level: fatal
    80, // internal_error
];

/// Answers a connection over `max_connections` with `503` (`tls`: the alert) and closes it.
///
/// This is the one place that writes HTTP by hand: the connection is refused before it ever
/// reaches hyper (handing it to a unit is exactly what over-capacity must avoid), so a fixed
/// canned response is written on the raw socket. What the client already sent is read and
/// discarded briefly after our half-close, so closing does not reset the connection before the
/// client reads the answer.
async fn refuse(mut stream: tokio::net::TcpStream, tls: bool) {
    let work = async {
        let answer = if tls {
            &TLS_REFUSAL[..]
        } else {
            CANNED.as_bytes()
        };
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0usize;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), work).await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn canned_length_matches() {
        let (head, body) = super::CANNED.split_once("\r\n\r\n").expect("head");
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{head}"
        );
    }
}
