//! One connection on an IO unit: hyper's HTTP/1.1 server driving it, plus what hyper does not
//! do by itself:
//!
//! - **Parking**: hyper keeps about 16 KiB of buffers per connection for as long as it lives.
//!   A connection that stays idle (no request in flight, nothing buffered either way) for
//!   [`PARK_TICKS`] checks (about `socket_timeout_ms / 2`, at most a second) is taken back
//!   from hyper (`into_parts`) and waits for its next byte as a bare socket; hyper is rebuilt
//!   when it arrives. A silent new connection starts parked. A new connection's first
//!   request, and a request that comes after the connection had been quiet for at least a
//!   park window (a daemon polling every few seconds), park it again as soon as they are
//!   answered, rather than a window later; if the client then sends requests back to back,
//!   the next one finds it parked only briefly and it stays with hyper. hyper and the loop
//!   driving it live in their own allocation, made when a request arrives and freed when the
//!   connection parks, so a parked connection's task holds only the socket and a small wait
//!   (the task is as large as its largest state: ~6.3 KiB per connection when hyper was
//!   inline, ~1.5 KiB now, all costs included; 10,000 parked connections: 20 MiB RSS, see
//!   BENCHMARKS.md).
//!   Parks are counted so that a unit can give the freed buffers back to the OS
//!   ([`trim_after_parks`]; glibc otherwise keeps them).
//! - **Idle and header timeouts**: a request head must arrive within `socket_timeout_ms` of
//!   the connection going idle (nothing in flight). `drive` checks it on the park tick (it
//!   fires between the timeout and one tick, `socket_timeout_ms / 8`, later; up to
//!   [`PARK_TICKS`] ticks when the connection went idle just after a request began) instead
//!   of hyper's `header_read_timeout`, which allocates and registers a timer for every
//!   request. A connection serving requests is checked once per park window, not every tick.
//!   A parked connection waits at most what is left of `socket_timeout_ms`.
//! - **Draining**: on shutdown, an idle connection keeps reading for a short linger so that a
//!   request already on the wire is answered (with `Connection: close`), then hyper's graceful
//!   shutdown closes it once its in-flight request is answered.
//! - **Every answer written**: hyper's `pipeline_flush` is off (see [`http_builder`]), or an
//!   answer queued when a connection ends on a refusal would never be written.
//! - **Lingering close**: when hyper is done with a connection (after a `Connection: close`
//!   answer such as a `413` sent while the client is still streaming its body), the socket is
//!   shut down for writing and what the client still sends is read and discarded for up to
//!   [`LINGER_CLOSE`] before it is closed. Closing a socket with unread data makes the kernel
//!   send a reset at once, which can destroy the answer before the client has read it.
//!
//! Per request, the connection's own bookkeeping is a few plain loads and stores (no locked
//! instruction, see [`ConnState`]): the shutdown wait and the tick stay registered with the
//! task's waker and are polled again only when they can have fired (see [`drive`]).

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::server::Shared;
use crate::tls::ClientCert;
use crate::transport::Transport;
use crate::unit::UnitLocal;

/// Per-connection state shared by the connection task, its IO wrapper and its requests.
///
/// All of them run in the connection's one task, on its unit's thread: the atomics are for
/// the `Sync` bound only, so the counts are kept with plain loads and stores (a locked
/// read-modify-write per request, right after the request was moved into its future, was
/// one of the costlier instructions of the request path).
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    in_flight: AtomicUsize,
    requests: AtomicU64,
    started: Notify,
    /// The drain is waiting for a request to start (only then is `started` notified).
    awaiting_start: AtomicBool,
    /// The last read found no data (hyper is waiting for bytes).
    read_pending: AtomicBool,
    /// Bytes were handed to the socket and not yet confirmed by a flush. hyper flushes the
    /// socket only once its own write buffer is empty, so `false` means nothing is pending.
    write_dirty: AtomicBool,
    /// The client has finished sending (a read met the end of its stream): closing cannot
    /// reset an answer it has not read, so there is nothing to linger for.
    client_done: AtomicBool,
    /// hyper shut the write side down (its graceful close): the answer is flushed.
    shut_down: AtomicBool,
    /// An answer said `Connection: close` (its request's body left unread): the connection
    /// ends with it and is never parked, where a fresh hyper would read what is left of that
    /// body as the next request.
    closing: AtomicBool,
    /// The client's verified TLS certificate, set once by the handshake (behind a pointer:
    /// most connections have none, and 10,000 parked ones each hold this state; shared: each
    /// call's context refers to it).
    client_cert: OnceLock<Arc<ClientCert>>,
}

impl ConnState {
    /// Marks a request in flight until the guard drops.
    pub(crate) fn begin(&self) -> InFlight<'_> {
        self.in_flight
            .store(self.in_flight.load(Relaxed) + 1, Relaxed);
        self.requests
            .store(self.requests.load(Relaxed) + 1, Relaxed);
        if self.awaiting_start.load(Relaxed) {
            self.started.notify_one();
        }
        InFlight(self)
    }

    /// The client's verified TLS certificate, if it presented one.
    pub(crate) fn client_cert(&self) -> Option<&Arc<ClientCert>> {
        self.client_cert.get()
    }

    /// Marks the connection as ending with the answer being made.
    pub(crate) fn close_after_answer(&self) {
        self.closing.store(true, Relaxed);
    }

    /// Nothing in flight, nothing unwritten, hyper waiting to read, and more to come.
    fn quiescent(&self) -> bool {
        self.in_flight.load(Relaxed) == 0
            && self.read_pending.load(Relaxed)
            && !self.write_dirty.load(Relaxed)
            && !self.closing.load(Relaxed)
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a ConnState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let n = self.0.in_flight.load(Relaxed);
        self.0.in_flight.store(n.saturating_sub(1), Relaxed);
    }
}

/// A connection the acceptor counted (in `connections_held` and against its peer's
/// `max_connections_per_ip`): uncounted when dropped, however the connection ends, including
/// in a unit's channel or as a task never polled (a unit stopped short at shutdown).
#[derive(Debug)]
pub(crate) struct Held(Arc<Shared>, SocketAddr);

impl Held {
    /// Takes over the counts the acceptor made for a connection from `peer`.
    pub(crate) fn counted(shared: Arc<Shared>, peer: SocketAddr) -> Self {
        Self(shared, peer)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.stats.counters.connections_held.fetch_sub(1, Relaxed);
        self.0.per_ip.release(self.1.ip());
    }
}

/// How long a connection idle at shutdown waits for a request already on the wire.
fn linger(shared: &Shared) -> Duration {
    (shared.config.drain_timeout() / 4).min(Duration::from_millis(100))
}

/// The longest a finished connection keeps reading (and discarding) what its client still
/// sends, so the last answer reaches it (see the module docs); at most `socket_timeout_ms`.
pub(crate) const LINGER_CLOSE: Duration = Duration::from_secs(2);

/// Shuts the write side of a connection hyper has finished with (its answer is flushed;
/// `shut_down`: hyper did it already), then reads and discards until the client closes, an
/// error, or [`LINGER_CLOSE`] passes.
async fn linger_close(mut stream: TcpStream, shut_down: bool, shared: &Shared) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !shut_down && stream.shutdown().await.is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + LINGER_CLOSE.min(shared.switches.socket_timeout());
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
    // At least the timer's resolution: `drive` re-arms the tick in a loop until it is pending.
    (shared.switches.socket_timeout() / 8)
        .clamp(Duration::from_millis(1), Duration::from_millis(250))
}

/// How long a connection is quiet before the tick parks it: [`PARK_TICKS`] ticks. Requests
/// further apart than this mark a client that polls now and then (see [`serve`]).
fn park_window(shared: &Shared) -> Duration {
    park_tick(shared) * PARK_TICKS
}

/// Milliseconds since the first call, wrapping every 49 days (only differences of up to a
/// connection's idle timeout are taken).
fn clock_ms() -> u32 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    millis_u32(ORIGIN.get_or_init(Instant::now).elapsed())
}

/// `d` in milliseconds, modulo 2^32.
fn millis_u32(d: Duration) -> u32 {
    (d.as_millis() & u128::from(u32::MAX)) as u32
}

/// Quiet ticks in a row after which a connection is parked: it has been idle at least
/// `PARK_TICKS` ticks (half of `socket_timeout_ms` at most, so hyper's header timer, armed at
/// the same moment for the whole timeout, never fires first on an idle connection).
const PARK_TICKS: u32 = 4;

/// The socket as hyper sees it: replays bytes hyper had buffered when it was parked, and
/// records whether hyper is waiting to read and whether it has unflushed writes.
struct ParkIo {
    stream: Transport,
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
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.state.read_pending.store(r.is_pending(), Relaxed);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
            this.state.client_done.store(true, Relaxed);
        }
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
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_shutdown(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            this.state.shut_down.store(true, Relaxed);
        }
        r
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
///
/// Written as one `poll_fn` over a single timer (the idle deadline, pulled in to a short linger
/// once shutdown starts) because this future is what 10,000 parked connections each hold.
async fn wait_readable(stream: &TcpStream, shared: &Shared, within: Duration) -> Wake {
    let mut readable = pin!(stream.readable());
    let mut shutdown = pin!(shared.shutdown.wait());
    let mut deadline = pin!(tokio::time::sleep(within));
    let mut draining = false;
    poll_fn(|cx| {
        if let Poll::Ready(r) = readable.as_mut().poll(cx) {
            return Poll::Ready(r.map_or_else(Wake::Failed, |()| Wake::Readable));
        }
        if !draining && shutdown.as_mut().poll(cx).is_ready() {
            // Shutting down: a request already on its way gets a moment to arrive.
            draining = true;
            let until = tokio::time::Instant::now() + linger(shared);
            if until < deadline.deadline() {
                deadline.as_mut().reset(until);
            }
        }
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) if draining => Poll::Ready(Wake::Shutdown),
            Poll::Ready(()) => Poll::Ready(Wake::TimedOut),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Parks since the last `malloc_trim`, process-wide (see [`trim_after_parks`]).
static PARKED_SINCE_TRIM: AtomicUsize = AtomicUsize::new(0);

/// Parks after which a unit gives freed memory back to the OS (`malloc_trim`): each park frees
/// hyper's buffers (~16 KiB), which glibc otherwise keeps. 256 parks free about 4 MiB.
const TRIM_AFTER_PARKS: usize = 256;

/// Whether enough connections parked since the last trim that one is worth it; resets the
/// count for the caller that gets `true` (so one unit trims, not all).
pub(crate) fn trim_after_parks() -> bool {
    let n = PARKED_SINCE_TRIM.load(Relaxed);
    n >= TRIM_AFTER_PARKS
        && PARKED_SINCE_TRIM
            .compare_exchange(n, 0, Relaxed, Relaxed)
            .is_ok()
}

/// Whether and how a finished connection lingers before it closes.
#[derive(Clone, Copy)]
enum Linger {
    /// The client timed out or finished sending: close at once.
    No,
    /// Read and discard what the client still sends; `true` if hyper already shut the
    /// write side down.
    Yes(bool),
}

/// How the hyper part of a connection ended.
enum Phase {
    /// Idle: the socket (and any bytes of a request head hyper had read) comes back, and
    /// whether it parked as soon as it was answered (rather than after a quiet window).
    Park(ParkIo, Bytes, bool),
    /// Done: linger (see [`linger_close`]) if the client may still be sending, then close.
    Close(TcpStream, Linger),
}

/// Serves one accepted connection until it closes.
///
/// The task holds only the socket and the small parked wait; hyper, its buffers and the
/// `drive` loop live in a separate allocation made when a request arrives and freed when the
/// connection parks again (boxing it here is what keeps a parked connection small: a task is
/// as large as its largest state).
pub(crate) async fn serve(stream: std::net::TcpStream, held: Held, unit: Arc<UnitLocal>) {
    let (shared, peer) = (&held.0, held.1);
    // Non-blocking already: tokio's listener accepted it (`unit::Handoff`).
    let stream = match TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, "cannot register connection: {e}");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let counters = &shared.stats.counters;
    let state = Arc::new(ConnState::default());
    let stream = match &shared.tls {
        None => Transport::Tcp(stream),
        Some(acceptor) => {
            // Like a parked connection, a silent one holds no handshake state.
            match wait_readable(&stream, shared, shared.switches.socket_timeout()).await {
                Wake::Readable => {}
                Wake::Shutdown => return,
                Wake::TimedOut => {
                    counters.timeouts.add(1);
                    counters.tls_failures.add(1);
                    return;
                }
                Wake::Failed(_) => {
                    counters.io_failures.add(1);
                    return;
                }
            }
            // Boxed: rustls's handshake is large, and it happens once.
            let Some((tls, cert)) =
                Box::pin(start_tls(acceptor, stream, peer, shared, &unit)).await
            else {
                counters.tls_failures.add(1);
                return;
            };
            if let Some(cert) = cert {
                let _ = state.client_cert.set(Arc::new(cert));
            }
            tls
        }
    };
    let mut io = ParkIo {
        stream,
        replay: Bytes::new(),
        state,
    };
    // `Some`: parked, waiting as a bare socket for the next request, quiet since the
    // `clock_ms` it holds (`None` for a new connection: it starts parked, and with no request
    // yet it counts as quiet for long enough). `None`: straight back to hyper (a replay).
    // Milliseconds in a `u32` rather than an `Instant` and a budget: those made every
    // connection's task 128 bytes larger (tokio rounds a task up to a cache-line pair).
    let mut parked: Option<Option<u32>> = Some(None);
    // After a replay, no parking until this many requests have begun (0: parking allowed).
    let mut park_blocked_until: u64 = 0;
    loop {
        // Whether to park again as soon as the next request is answered (see `drive`).
        let park_when_answered = match parked.take() {
            None => false,
            Some(quiet_since) => {
                // Idle for `socket_timeout_ms` in all, counted from the last answer.
                let quiet = quiet_since.map_or(0, |since| clock_ms().wrapping_sub(since));
                let within = shared
                    .switches
                    .socket_timeout()
                    .saturating_sub(Duration::from_millis(quiet.into()));
                // TLS may hold the next request's bytes already (they came with the last
                // record): then there is nothing to wait for.
                let wake = if io.stream.holds_unread() {
                    Wake::Readable
                } else {
                    wait_readable(io.stream.tcp(), shared, within).await
                };
                match wake {
                    Wake::Readable => {}
                    Wake::Shutdown => return,
                    Wake::TimedOut => {
                        counters.timeouts.add(1);
                        return;
                    }
                    Wake::Failed(e) => {
                        counters.io_failures.add(1);
                        tracing::debug!(%peer, "connection failed while parked: {e}");
                        return;
                    }
                }
                // A client whose requests come more than a park window apart (a build
                // daemon polling every few seconds) would otherwise hold hyper's ~14 KiB for
                // a whole window after each answer, most of its time: 10,000 of them held
                // more than hyper keeps for 10,000 connections that never park
                // (BENCHMARKS.md, pollers). So would each of a storm of new connections.
                // A client that starts a burst pays one extra rebuild: its next request
                // finds the connection parked only briefly, so it stays with hyper again.
                quiet_since.is_none_or(|since| {
                    u128::from(clock_ms().wrapping_sub(since)) >= park_window(shared).as_millis()
                })
            }
        };
        let state = Arc::clone(&io.state);
        let active = active(
            io,
            peer,
            shared,
            &unit,
            park_blocked_until,
            park_when_answered,
        );
        match Box::pin(active).await {
            Phase::Close(stream, linger) => {
                if let Linger::Yes(shut_down) = linger {
                    // Boxed: its 4 KiB sink would otherwise enlarge every connection's task.
                    Box::pin(linger_close(stream, shut_down, shared)).await;
                }
                return;
            }
            Phase::Park(back, buffered, answered) => {
                counters.connections_parked.add(1);
                io = back;
                if buffered.is_empty() {
                    PARKED_SINCE_TRIM.fetch_add(1, Relaxed);
                    park_blocked_until = 0;
                    let quiet = if answered {
                        Duration::ZERO
                    } else {
                        park_window(shared)
                    };
                    parked = Some(Some(clock_ms().wrapping_sub(millis_u32(quiet))));
                } else {
                    // Part of a request head was buffered: give it back to a new hyper at
                    // once, and do not park again before a request completes (so a dribbling
                    // client gains at most one extra header timeout).
                    io.replay = buffered;
                    park_blocked_until = state.requests.load(Relaxed) + 1;
                }
            }
        }
    }
}

/// What a client that speaks plain HTTP to the TLS port is told.
const TLS_ONLY: &str = "This port speaks HTTPS: use an https:// URL.\n";

/// Starts TLS on a new connection whose first bytes have arrived: the stream and the
/// client's certificate, or `None` when the connection is done (already logged).
async fn start_tls(
    acceptor: &crate::tls::Acceptor,
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    unit: &UnitLocal,
) -> Option<(Transport, Option<ClientCert>)> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if !crate::tls::starts_handshake(first[0]) => {
            tracing::debug!(%peer, "plain HTTP on the TLS port: answered 400");
            // hyper reads the request and writes the answer; then the same lingering close
            // as any refusal, so a client still sending its body is not reset under it.
            let svc = service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(crate::service::closing(crate::service::text(
                    http::StatusCode::BAD_REQUEST,
                    TLS_ONLY,
                )))
            });
            let conn = unit
                .http
                .serve_connection(TokioIo::new(stream), svc)
                .without_shutdown();
            if let Ok(Ok(parts)) =
                tokio::time::timeout(shared.switches.socket_timeout(), conn).await
            {
                linger_close(parts.io.into_inner(), false, shared).await;
            }
            return None;
        }
        Ok(1) => {}
        // Closed before a byte, or broken.
        _ => return None,
    }
    let handshake = crate::tls::handshake(acceptor, stream);
    match tokio::time::timeout(shared.switches.socket_timeout(), handshake).await {
        Ok(Ok(established)) => Some(established),
        Ok(Err((e, stream))) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            // The alert saying why is written; closing with the client's next records
            // unread would reset the connection under it (a refused certificate would then
            // look like a network failure to the client).
            linger_close(stream, false, shared).await;
            None
        }
        Err(_) => {
            shared.stats.counters.timeouts.add(1);
            tracing::debug!(%peer, "TLS handshake not done within the socket timeout");
            None
        }
    }
}

/// Serves `io` with hyper until the connection finishes or parks.
async fn active(
    io: ParkIo,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    unit: &UnitLocal,
    park_blocked_until: u64,
    park_when_answered: bool,
) -> Phase {
    let state = Arc::clone(&io.state);
    state.read_pending.store(false, Relaxed);
    state.write_dirty.store(false, Relaxed);
    // The service borrows what the connection's future outlives: no reference counts
    // touched per request (`shared`'s is the same cache line for every unit).
    let svc = {
        let state: &ConnState = &state;
        let parts = &unit.parts;
        service_fn(move |req| crate::service::handle(shared, parts, state, peer, req))
    };
    let mut conn = unit.http.serve_connection(TokioIo::new(io), svc);
    let counters = &shared.stats.counters;
    let early_park = park_when_answered.then(|| state.requests.load(Relaxed));
    match drive(&mut conn, &state, shared, park_blocked_until, early_park).await {
        Stop::Park => {
            let parts = conn.into_parts();
            Phase::Park(parts.io.into_inner(), parts.read_buf, false)
        }
        Stop::ParkAnswered => {
            let parts = conn.into_parts();
            Phase::Park(parts.io.into_inner(), parts.read_buf, true)
        }
        Stop::TimedOut => {
            counters.timeouts.add(1);
            tracing::debug!(%peer, "connection ended: no request head within the socket timeout");
            Phase::Close(
                conn.into_parts().io.into_inner().stream.into_tcp(),
                Linger::No,
            )
        }
        Stop::Finished(r) => {
            if let Err(e) = &r {
                if e.is_timeout() {
                    counters.timeouts.add(1);
                } else {
                    counters.io_failures.add(1);
                }
                tracing::debug!(%peer, "connection ended: {e}");
            }
            // A timed-out client sends nothing more; any other may still be sending (a
            // body refused with 413, a request hyper refused with 400 or 431) unless a read
            // already met the end of what it sends.
            let linger = if r.as_ref().is_err_and(hyper::Error::is_timeout)
                || state.client_done.load(Relaxed)
            {
                Linger::No
            } else {
                Linger::Yes(state.shut_down.load(Relaxed))
            };
            Phase::Close(conn.into_parts().io.into_inner().stream.into_tcp(), linger)
        }
    }
}

/// Builds the hyper settings a unit shares among its connections.
pub(crate) fn http_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        // No `header_read_timeout`: hyper would allocate and register a timer for every
        // request head; `drive` enforces the same bound with the park tick it already has.
        .keep_alive(true)
        // Not `true`: hyper then skips flushing while its read buffer holds bytes, and when the
        // connection ends on a refusal with bytes still buffered (a 413 mid-body, a 431 head, a
        // malformed request after a good one) it shuts the socket down without ever writing
        // the answers waiting in its write buffer. Pipelining clients get one write per answer.
        .pipeline_flush(false);
    builder
}

/// What a check of a connection on its tick found.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// No request head within the header timeout.
    TimedOut,
    /// Quiet long enough: give hyper's buffers back.
    Park,
    /// Check again this many ticks from now.
    Next(u32),
}

/// The park tick's bookkeeping for one hyper connection.
#[derive(Debug)]
struct Ticks {
    /// Requests begun as of the last check.
    seen: u64,
    /// Ticks in a row with no new request and nothing buffered.
    quiet: u32,
    /// Checks in a row with no new request and nothing in flight.
    idle: u32,
    /// Checks after which a request head is overdue.
    header: u32,
    /// Ticks the current wait covers.
    span: u32,
}

impl Ticks {
    fn new(seen: u64, header: u32) -> Self {
        Self {
            seen,
            quiet: 0,
            idle: 0,
            header,
            span: 1,
        }
    }

    /// A check at the end of the current span: `requests` begun so far, whether none is in
    /// flight (`idle`), whether the connection could park (`quiet`: nothing buffered either
    /// way, parking allowed).
    ///
    /// After a check that found a new request the next comes [`PARK_TICKS`] ticks later: the
    /// connection cannot park before then, so a busy connection's timer fires once per park
    /// window rather than every tick (at 4,096 busy connections, 4k timer wake-ups a second
    /// instead of 16k). `idle` counts checks, not ticks: a long span that ends idle may have
    /// begun with a request in flight, so it counts as one, and the head timeout fires late by
    /// less than a park window, never early.
    fn check(&mut self, requests: u64, idle: bool, quiet: bool) -> Check {
        let fresh = requests != self.seen;
        self.idle = if idle && !fresh { self.idle + 1 } else { 0 };
        if self.idle >= self.header {
            return Check::TimedOut;
        }
        if quiet && !fresh {
            // No request began in the whole span: quiet all along.
            self.quiet += self.span;
            if self.quiet >= PARK_TICKS {
                return Check::Park;
            }
        } else {
            self.quiet = 0;
        }
        self.span = if fresh { PARK_TICKS } else { 1 };
        self.seen = requests;
        Check::Next(self.span)
    }
}

/// How a hyper connection stopped.
enum Stop {
    Finished(hyper::Result<()>),
    /// Quiet for a park window.
    Park,
    /// The request it was built for is answered, and it was asked to park then.
    ParkAnswered,
    /// No request head completed within `socket_timeout_ms` (a dribbling or stalled client).
    TimedOut,
}

/// Drives `conn` until it finishes, the server drains it, it has been quiet long enough to
/// park, or no request head has arrived within `socket_timeout_ms`. With `early_park` (the
/// requests begun when it was built), it also parks as soon as a request has begun since and
/// the connection is quiescent again: its answer written, hyper waiting to read.
///
/// Polled on every wake-up of the connection (several per request), so the two futures that
/// rarely fire, the shutdown wait and the tick, are polled again only when they can have
/// changed: the shutdown wait once draining has started, the tick once its timer has fired
/// (both stay registered with the task's waker in between).
async fn drive<C>(
    conn: &mut C,
    state: &ConnState,
    shared: &Shared,
    park_blocked_until: u64,
    early_park: Option<u64>,
) -> Stop
where
    C: GracefulConn,
{
    let tick = park_tick(shared);
    // Checks with nothing in flight and no new request after which the head is overdue (an
    // idle connection is checked every tick): one more than fit in the timeout, so a head
    // gets at least `socket_timeout_ms`.
    // (Saturating: `u64::MAX` ms is a timeout too.)
    let header_ticks = (shared
        .switches
        .socket_timeout()
        .div_duration_f64(tick)
        .ceil() as u32)
        .saturating_add(1);
    let mut clock = pin!(tokio::time::sleep(tick));
    let mut shutdown = pin!(shared.shutdown.wait());
    // The waker both are registered with, once they are.
    let mut armed: Option<Waker> = None;
    let mut ticks = Ticks::new(state.requests.load(Relaxed), header_ticks);
    let stop = poll_fn(|cx| {
        if let Poll::Ready(r) = Pin::new(&mut *conn).poll(cx) {
            return Poll::Ready(Some(Stop::Finished(r)));
        }
        let fresh = !armed.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if (fresh || shared.shutdown.is_draining()) && shutdown.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        // (A replay is never built with `early_park`, so `park_blocked_until` need not be
        // checked: a request begun since it was built is the one the replay waited for.)
        if early_park.is_some_and(|begun| state.requests.load(Relaxed) != begun)
            && state.quiescent()
        {
            return Poll::Ready(Some(Stop::ParkAnswered));
        }
        let ticked = !fresh && clock.is_elapsed();
        if fresh || ticked {
            while clock.as_mut().poll(cx).is_ready() {
                let requests = state.requests.load(Relaxed);
                let quiet = requests >= park_blocked_until && state.quiescent();
                let idle = state.in_flight.load(Relaxed) == 0;
                match ticks.check(requests, idle, quiet) {
                    Check::TimedOut => return Poll::Ready(Some(Stop::TimedOut)),
                    Check::Park => return Poll::Ready(Some(Stop::Park)),
                    Check::Next(span) => {
                        clock
                            .as_mut()
                            .reset(tokio::time::Instant::now() + tick * span);
                    }
                }
            }
        }
        if fresh || ticked {
            // A timer polled without coop budget left is not registered: poll both next time.
            armed = tokio::task::coop::has_budget_remaining().then(|| cx.waker().clone());
        }
        Poll::Pending
    })
    .await;
    if let Some(stop) = stop {
        return stop;
    }
    // Draining. Idle at shutdown: keep serving for a moment so a request already sent is read
    // and answered (with `Connection: close`) rather than cut off.
    let until = tokio::time::Instant::now() + linger(shared);
    state.awaiting_start.store(true, Relaxed);
    while state.in_flight.load(Relaxed) == 0 {
        tokio::select! {
            r = &mut *conn => return Stop::Finished(r),
            () = state.started.notified() => {}
            () = tokio::time::sleep_until(until) => break,
        }
    }
    conn.shutdown_gracefully();
    Stop::Finished(conn.await)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn size_of_future<A, F: Future>(_: &impl FnOnce(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_busy_connection_is_checked_once_per_park_window() {
        let mut t = Ticks::new(0, 100);
        // A new request at every check: checked again a park window later, never parked.
        for requests in 1..10 {
            assert_eq!(t.check(requests, false, false), Check::Next(PARK_TICKS));
        }
        // Requests stop: one quiet window after the last one seen, it parks.
        assert_eq!(t.check(9, true, true), Check::Park);
    }

    #[test]
    fn a_quiet_connection_parks_after_park_ticks_of_single_ticks() {
        let mut t = Ticks::new(5, 100);
        for _ in 1..PARK_TICKS {
            assert_eq!(t.check(5, true, true), Check::Next(1));
        }
        assert_eq!(t.check(5, true, true), Check::Park);
        // Something buffered resets the count.
        let mut t = Ticks::new(5, 100);
        assert_eq!(t.check(5, true, true), Check::Next(1));
        assert_eq!(t.check(5, true, false), Check::Next(1));
        assert_eq!(t.check(5, true, true), Check::Next(1));
    }

    #[test]
    fn the_head_timeout_counts_checks_and_is_never_early() {
        let header = 3;
        let mut t = Ticks::new(0, header);
        // A request, then idle but unparkable (part of a head buffered): the long span that
        // follows the request counts as one check.
        assert_eq!(t.check(1, false, false), Check::Next(PARK_TICKS));
        assert_eq!(t.check(1, true, false), Check::Next(1));
        assert_eq!(t.check(1, true, false), Check::Next(1));
        assert_eq!(t.check(1, true, false), Check::TimedOut);
        // A request in flight holds the timeout off.
        let mut t = Ticks::new(0, header);
        for _ in 0..10 {
            assert_eq!(t.check(0, false, false), Check::Next(1));
        }
    }

    /// One caller gets the trim once enough connections parked, then the count starts over.
    #[test]
    fn trim_once_per_batch_of_parks() {
        PARKED_SINCE_TRIM.fetch_add(TRIM_AFTER_PARKS, Relaxed);
        assert!(trim_after_parks());
        assert!(!trim_after_parks());
    }

    /// A parked connection's task is as large as `serve`'s future: it must stay small (it was
    /// ~6 KiB with hyper inline; each byte here is 10 KB at 10,000 idle connections).
    #[test]
    fn parked_connection_future_is_small() {
        let serve = size_of_future(&|(s, held, h)| serve(s, held, h));
        let wait = size_of_future(&|(s, sh, w): (&'static TcpStream, &'static Shared, _)| {
            wait_readable(s, sh, w)
        });
        let active = size_of_future(&|(io, p, sh, h, b): (
            _,
            _,
            &'static Arc<Shared>,
            &'static UnitLocal,
            _,
        )| { active(io, p, sh, h, b, false) });
        eprintln!(
            "serve {serve} (wait_readable {wait}); boxed while serving: active {active}; \
             Sleep {}, Notified {}",
            std::mem::size_of::<tokio::time::Sleep>(),
            std::mem::size_of::<tokio::sync::futures::Notified<'static>>(),
        );
        assert!(serve <= 1024, "serve future is {serve} bytes");
        assert!(serve < active, "hyper is not boxed: {serve} vs {active}");
    }
}
