//! IO units: each an OS thread running a single-threaded tokio runtime that drives its share
//! of the connections with hyper's HTTP/1.1 server (keep-alive, pipelining, chunked bodies,
//! `Expect: 100-continue`, header limits). Async handlers run inline as part of their
//! connection's task; blocking ones are handed to the worker pool, so the unit keeps reading
//! and writing other connections meanwhile.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

use crate::server::Shared;

/// A connection handed from the acceptor to a unit.
pub(crate) type Handoff = (std::net::TcpStream, SocketAddr);

/// The acceptor's end of a unit.
#[derive(Debug)]
pub(crate) struct Unit {
    pub(crate) tx: mpsc::UnboundedSender<Handoff>,
    pub(crate) thread: JoinHandle<()>,
}

/// Starts unit number `i`.
pub(crate) fn spawn(i: usize, shared: &Arc<Shared>) -> std::io::Result<Unit> {
    let (tx, rx) = mpsc::unbounded_channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared = Arc::clone(shared);
    let thread = std::thread::Builder::new()
        .name(format!("hub-unit-{i}"))
        .spawn(move || rt.block_on(run(rx, shared)))?;
    Ok(Unit { tx, thread })
}

/// Serves connections until the acceptor hangs up, then drains them within the drain timeout.
async fn run(mut rx: mpsc::UnboundedReceiver<Handoff>, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            handoff = rx.recv() => match handoff {
                Some((stream, peer)) => {
                    conns.spawn(connection(stream, peer, Arc::clone(&shared)));
                }
                // The acceptor stopped: every accepted connection has been received.
                None => break,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(shared.config.drain_timeout(), drain)
        .await
        .is_err()
    {
        tracing::warn!(
            left = conns.len(),
            "drain timeout: closing connections still busy"
        );
    }
}

/// Per-connection state shared with its requests.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    in_flight: AtomicUsize,
    started: Notify,
}

impl ConnState {
    /// Marks a request in flight until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.started.notify_one();
        InFlight(Arc::clone(self))
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Decrements `connections_held` when the connection ends, however it ends.
struct Held(Arc<Shared>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.stats.counters.connections_held.fetch_sub(1, Relaxed);
    }
}

/// How long a connection idle at shutdown waits for a request already on the wire.
fn linger(shared: &Shared) -> Duration {
    (shared.config.drain_timeout() / 4).min(Duration::from_millis(100))
}

async fn connection(stream: std::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _held = Held(Arc::clone(&shared));
    let stream = match stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(stream))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, "cannot register connection: {e}");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    // Defer hyper, and the ~16 KiB of buffers it allocates per connection, until the client
    // sends its first byte: a connected-but-silent client costs only its task. The wait is
    // bounded by `socket_timeout_ms`, like a dribbled header.
    let first_byte = async {
        tokio::select! {
            r = stream.readable() => r.map(|()| true),
            // Shutting down: a request already on its way gets a moment to arrive.
            () = async {
                shared.shutdown.wait().await;
                tokio::time::sleep(linger(&shared)).await;
            } => Ok(false),
        }
    };
    match tokio::time::timeout(shared.config.socket_timeout(), first_byte).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return,
        Ok(Err(e)) => {
            shared.stats.counters.io_failures.fetch_add(1, Relaxed);
            tracing::debug!(%peer, "connection failed before its first byte: {e}");
            return;
        }
        Err(_) => {
            shared.stats.counters.timeouts.fetch_add(1, Relaxed);
            return;
        }
    }
    let state = Arc::new(ConnState::default());
    let svc = {
        let shared = Arc::clone(&shared);
        let state = Arc::clone(&state);
        service_fn(move |req| {
            crate::service::handle(Arc::clone(&shared), Arc::clone(&state), peer, req)
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        // Bounds both a client dribbling its headers and an idle keep-alive connection:
        // hyper arms this timer whenever it waits for a request head.
        .header_read_timeout(shared.config.socket_timeout())
        .keep_alive(true)
        .pipeline_flush(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shared.shutdown.wait() => {
            // Idle at shutdown: keep serving for a moment so a request already sent is read
            // and answered (with `Connection: close`) rather than cut off.
            let until = tokio::time::Instant::now() + linger(&shared);
            let mut finished = None;
            while state.in_flight.load(Relaxed) == 0 {
                tokio::select! {
                    r = conn.as_mut() => { finished = Some(r); break; }
                    () = state.started.notified() => {}
                    () = tokio::time::sleep_until(until) => break,
                }
            }
            match finished {
                Some(r) => r,
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
    };
    if let Err(e) = result {
        let counters = &shared.stats.counters;
        if e.is_timeout() {
            counters.timeouts.fetch_add(1, Relaxed);
        } else {
            counters.io_failures.fetch_add(1, Relaxed);
        }
        tracing::debug!(%peer, "connection ended: {e}");
    }
}
