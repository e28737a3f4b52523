//! One connection on an IO unit: hyper's HTTP/1.1 server driving it, plus three things
//! hyper does not do by itself:
//!
//! - **Parking**: hyper keeps about 16 KiB of buffers per connection for as long as it lives.
//!   A connection that stays idle (no request in flight, nothing buffered either way) for
//!   [`PARK_TICKS`] checks (about `socket_timeout_ms / 2`, at most a second) is taken back
//!   from hyper (`into_parts`) and waits for its next byte as a bare socket; hyper is rebuilt
//!   when it arrives. A silent new connection starts parked. Parked connections cost about
//!   2.5 KiB each (10,000 silent connections: 26 MB RSS) instead of ~14 KiB inside hyper.
//! - **Idle and header timeouts**: hyper's `header_read_timeout` (armed whenever hyper waits for
//!   a request head) bounds a dribbling client and an idle hyper connection; a parked one
//!   waits at most what is left of `socket_timeout_ms`.
//! - **Draining**: on shutdown, an idle connection keeps reading for a short linger so that a
//!   request already on the wire is answered (with `Connection: close`), then hyper's graceful
//!   shutdown closes it once its in-flight request is answered.
//! - **Every answer written**: hyper's `pipeline_flush` is off (see `serve`), or an answer
//!   queued when a connection ends on a refusal would never be written.
//! - **Lingering close**: when hyper is done with a connection (after a `Connection: close`
//!   answer such as a `413` sent while the client is still streaming its body), the socket is
//!   shut down for writing and what the client still sends is read and discarded for up to
//!   [`LINGER_CLOSE`] before it is closed. Closing a socket with unread data makes the kernel
//!   send a reset at once, which can destroy the answer before the client has read it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::server::Shared;

/// Per-connection state shared by the connection task, its IO wrapper and its requests.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    in_flight: AtomicUsize,
    requests: AtomicU64,
    started: Notify,
    /// The last read found no data (hyper is waiting for bytes).
    read_pending: AtomicBool,
    /// Bytes were handed to the socket and not yet confirmed by a flush. hyper flushes the
    /// socket only once its own write buffer is empty, so `false` means nothing is pending.
    write_dirty: AtomicBool,
}

impl ConnState {
    /// Marks a request in flight until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        self.started.notify_one();
        InFlight(Arc::clone(self))
    }

    /// Nothing in flight, nothing unwritten, hyper waiting to read.
    fn quiescent(&self) -> bool {
        self.in_flight.load(Relaxed) == 0
            && self.read_pending.load(Relaxed)
            && !self.write_dirty.load(Relaxed)
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

/// The longest a finished connection keeps reading (and discarding) what its client still
/// sends, so the last answer reaches it (see the module docs); at most `socket_timeout_ms`.
pub(crate) const LINGER_CLOSE: Duration = Duration::from_secs(2);

/// Shuts the write side of a connection hyper has finished with (its answer is flushed), then
/// reads and discards until the client closes, an error, or [`LINGER_CLOSE`] passes.
async fn linger_close(mut stream: TcpStream, shared: &Shared) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + LINGER_CLOSE.min(shared.config.socket_timeout());
    let mut sink = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => {}
            // EOF, an error or the deadline: close now.
            _ => return,
        }
    }
}

/// How often a hyper connection checks whether it has gone quiet.
fn park_tick(shared: &Shared) -> Duration {
    (shared.config.socket_timeout() / 8).min(Duration::from_millis(250))
}

/// Quiet ticks in a row after which a connection is parked: it has been idle at least
/// `PARK_TICKS` ticks (half of `socket_timeout_ms` at most, so hyper's header timer, armed at
/// the same moment for the whole timeout, never fires first on an idle connection).
const PARK_TICKS: u32 = 4;

/// The socket as hyper sees it: replays bytes hyper had buffered when it was parked, and
/// records whether hyper is waiting to read and whether it has unflushed writes.
struct ParkIo {
    stream: TcpStream,
    replay: Bytes,
    state: Arc<ConnState>,
}

impl AsyncRead for ParkIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            this.state.read_pending.store(false, Relaxed);
            return Poll::Ready(Ok(()));
        }
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.state.read_pending.store(r.is_pending(), Relaxed);
        r
    }
}

impl AsyncWrite for ParkIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.state.write_dirty.store(true, Relaxed);
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.state.write_dirty.store(true, Relaxed);
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            this.state.write_dirty.store(false, Relaxed);
        }
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// What a parked connection's wait for its next byte ended with.
enum Wake {
    Readable,
    Shutdown,
    TimedOut,
    Failed(io::Error),
}

/// Waits up to `within` for the next byte of a parked connection.
async fn wait_readable(stream: &TcpStream, shared: &Shared, within: Duration) -> Wake {
    let wait = async {
        tokio::select! {
            r = stream.readable() => r.map_or_else(Wake::Failed, |()| Wake::Readable),
            // Shutting down: a request already on its way gets a moment to arrive.
            () = async {
                shared.shutdown.wait().await;
                tokio::time::sleep(linger(shared)).await;
            } => Wake::Shutdown,
        }
    };
    tokio::time::timeout(within, wait)
        .await
        .unwrap_or(Wake::TimedOut)
}

/// How a hyper connection stopped.
enum Stop {
    Finished(hyper::Result<()>),
    Park,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve(stream: std::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _held = Held(Arc::clone(&shared));
    let stream = match stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(stream))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, "cannot register connection: {e}");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState::default());
    let mut svc = {
        let shared = Arc::clone(&shared);
        let state = Arc::clone(&state);
        service_fn(move |req| {
            crate::service::handle(Arc::clone(&shared), Arc::clone(&state), peer, req)
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Bounds both a client dribbling its headers and an idle hyper connection: hyper arms
        // this timer whenever it waits for a request head.
        .header_read_timeout(shared.config.socket_timeout())
        .keep_alive(true)
        // Not `true`: hyper then skips flushing while its read buffer holds bytes, and when the
        // connection ends on a refusal with bytes still buffered (a 413 mid-body, a 431 head, a
        // malformed request after a good one) it shuts the socket down without ever writing
        // the answers waiting in its write buffer. Pipelining clients get one write per answer.
        .pipeline_flush(false);
    let counters = &shared.stats.counters;
    let mut io = ParkIo {
        stream,
        replay: Bytes::new(),
        state: Arc::clone(&state),
    };
    // A new connection starts parked: hyper is built when its first byte arrives.
    let mut parked_budget = Some(shared.config.socket_timeout());
    // After a replay, no parking until this many requests have begun.
    let mut park_blocked_until: Option<u64> = None;
    loop {
        if let Some(within) = parked_budget.take() {
            match wait_readable(&io.stream, &shared, within).await {
                Wake::Readable => {}
                Wake::Shutdown => return,
                Wake::TimedOut => {
                    counters.timeouts.fetch_add(1, Relaxed);
                    return;
                }
                Wake::Failed(e) => {
                    counters.io_failures.fetch_add(1, Relaxed);
                    tracing::debug!(%peer, "connection failed while parked: {e}");
                    return;
                }
            }
        }
        state.read_pending.store(false, Relaxed);
        state.write_dirty.store(false, Relaxed);
        let mut conn = builder.serve_connection(TokioIo::new(io), svc);
        match drive(&mut conn, &state, &shared, park_blocked_until).await {
            Stop::Finished(r) => {
                if let Err(e) = &r {
                    if e.is_timeout() {
                        counters.timeouts.fetch_add(1, Relaxed);
                    } else {
                        counters.io_failures.fetch_add(1, Relaxed);
                    }
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                // A timed-out client sends nothing more; any other may still be sending (a
                // body refused with 413, a request hyper refused with 400 or 431).
                if !r.as_ref().is_err_and(hyper::Error::is_timeout) {
                    linger_close(conn.into_parts().io.into_inner().stream, &shared).await;
                }
                return;
            }
            Stop::Park => {
                counters.connections_parked.fetch_add(1, Relaxed);
                let parts = conn.into_parts();
                io = parts.io.into_inner();
                svc = parts.service;
                if parts.read_buf.is_empty() {
                    park_blocked_until = None;
                    let idle_left = shared
                        .config
                        .socket_timeout()
                        .saturating_sub(park_tick(&shared) * PARK_TICKS);
                    parked_budget = Some(idle_left);
                } else {
                    // Part of a request head was buffered: give it back to a new hyper at
                    // once, and do not park again before a request completes (so a dribbling
                    // client gains at most one extra header timeout).
                    io.replay = parts.read_buf;
                    park_blocked_until = Some(state.requests.load(Relaxed) + 1);
                }
            }
        }
    }
}

/// Drives `conn` until it finishes, the server drains it, or it has been quiet long enough to
/// park.
async fn drive<C>(
    conn: &mut C,
    state: &ConnState,
    shared: &Shared,
    park_blocked_until: Option<u64>,
) -> Stop
where
    C: GracefulConn,
{
    let mut seen = state.requests.load(Relaxed);
    let mut quiet_ticks = 0;
    let mut tick = tokio::time::interval(park_tick(shared));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    loop {
        tokio::select! {
            biased;
            r = &mut *conn => return Stop::Finished(r),
            () = shared.shutdown.wait() => {
                // Idle at shutdown: keep serving for a moment so a request already sent is read
                // and answered (with `Connection: close`) rather than cut off.
                let until = tokio::time::Instant::now() + linger(shared);
                while state.in_flight.load(Relaxed) == 0 {
                    tokio::select! {
                        r = &mut *conn => return Stop::Finished(r),
                        () = state.started.notified() => {}
                        () = tokio::time::sleep_until(until) => break,
                    }
                }
                conn.shutdown_gracefully();
                return Stop::Finished(conn.await);
            }
            _ = tick.tick() => {
                let now = state.requests.load(Relaxed);
                let allowed = park_blocked_until.is_none_or(|until| now >= until);
                if now == seen && allowed && state.quiescent() {
                    quiet_ticks += 1;
                    if quiet_ticks >= PARK_TICKS {
                        return Stop::Park;
                    }
                } else {
                    quiet_ticks = 0;
                }
                seen = now;
            }
        }
    }
}

/// The one hyper call `drive` needs besides polling, so it can be written generically.
trait GracefulConn: std::future::Future<Output = hyper::Result<()>> + Unpin {
    fn shutdown_gracefully(&mut self);
}

impl<I, S> GracefulConn for http1::Connection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    Self: Unpin,
{
    fn shutdown_gracefully(&mut self) {
        Pin::new(self).graceful_shutdown();
    }
}
