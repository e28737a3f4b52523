//! IO units: each an OS thread running a single-threaded tokio runtime that drives its share
//! of the connections with hyper's HTTP/1.1 server (keep-alive, pipelining, chunked bodies,
//! `Expect: 100-continue`, header limits). Async handlers run inline as part of their
//! connection's task; blocking ones are handed to the worker pool, so the unit keeps reading
//! and writing other connections meanwhile.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;
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
                    conns.spawn(crate::conn::serve(stream, peer, Arc::clone(&shared)));
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
