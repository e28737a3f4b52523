//! IO units: each an OS thread running a single-threaded tokio runtime that drives its share
//! of the connections with hyper's HTTP/1.1 server (keep-alive, pipelining, chunked bodies,
//! `Expect: 100-continue`, header limits). Async handlers run inline as part of their
//! connection's task; blocking ones are handed to the worker pool, so the unit keeps reading
//! and writing other connections meanwhile.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::conn::Held;
use crate::context::ServerParts;
use crate::server::Shared;

/// A connection handed from the acceptor to a unit: non-blocking, as tokio's listener
/// accepts it (the unit registers it with its own runtime as it is), with its counts.
pub(crate) type Handoff = (std::net::TcpStream, Held);

/// The acceptor's end of a unit.
#[derive(Debug)]
pub(crate) struct Unit {
    pub(crate) tx: mpsc::UnboundedSender<Handoff>,
    pub(crate) thread: JoinHandle<()>,
}

/// What one unit's connections share that no other unit touches.
#[derive(Debug)]
pub(crate) struct UnitLocal {
    /// hyper's HTTP/1.1 settings.
    pub(crate) http: hyper::server::conn::http1::Builder,
    /// This unit's copy of the server's parts, which its calls' contexts refer to (see
    /// [`ServerParts`]).
    pub(crate) parts: Arc<ServerParts>,
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
        .spawn(move || rt.block_on(run(i, rx, shared)))?;
    Ok(Unit { tx, thread })
}

/// Serves connections until the acceptor hangs up, then drains them within the drain timeout.
async fn run(i: usize, mut rx: mpsc::UnboundedReceiver<Handoff>, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    // Delivers the worker pool's answers in batches (see `answer`); dropped with the runtime.
    tokio::spawn(crate::answer::companion());
    if let Some(liveness) = &shared.liveness {
        tokio::spawn(crate::liveness::beat(Arc::clone(liveness), i));
    }
    let local = Arc::new(UnitLocal {
        http: crate::conn::http_builder(),
        parts: Arc::new(ServerParts::clone(&shared.parts)),
    });
    // Checks whether parked connections freed enough to give back (see `trim`).
    let mut trim_check = tokio::time::interval(TRIM_CHECK);
    trim_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            handoff = rx.recv() => match handoff {
                Some((stream, held)) => {
                    let conn = crate::conn::serve(stream, held, Arc::clone(&local));
                    conns.spawn(conn);
                }
                // The acceptor stopped: every accepted connection has been received.
                None => break,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = trim_check.tick() => {
                if crate::conn::trim_after_parks() {
                    trim();
                }
            }
        }
    }
    let drain = async { while conns.join_next().await.is_some() {} };
    let cut = tokio::select! {
        () = drain => None,
        () = tokio::time::sleep(shared.config.drain_timeout()) => Some("drain timeout"),
        () = shared.shutdown.hurried() => Some("shutdown now"),
    };
    if let Some(why) = cut {
        // Dropping the set aborts them: their sockets close, their calls unanswered.
        tracing::warn!(left = conns.len(), "{why}: closing connections still busy");
    }
}

/// How often a unit checks whether parked connections freed enough memory to trim.
const TRIM_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Gives the heap's free pages back to the OS. A parked connection frees hyper's buffers, but
/// glibc keeps freed memory between live allocations for reuse: after 10,000 connections each
/// sent a request and parked, the process held ~120 MiB more than it used.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: `malloc_trim` has no preconditions; it only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory by their own rules.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    /// Trimming only releases free memory: what is allocated stays intact.
    #[test]
    fn trim_keeps_live_memory() {
        let keep: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 16 << 10]).collect();
        let freed: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 16 << 10]).collect();
        drop(freed);
        super::trim();
        for (i, v) in keep.iter().enumerate() {
            assert!(v.iter().all(|&b| usize::from(b) == i));
        }
    }
}
