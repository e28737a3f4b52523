//! Graceful shutdown: one trigger (a signal or [`ShutdownHandle::shutdown`]), observed by
//! the acceptor (stop accepting), the units (drain connections), `/healthz` (answer 503).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// A cloneable handle that starts a graceful shutdown of its server.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    draining: AtomicBool,
    /// Wakes every pending [`ShutdownHandle::wait`] once. A `Notify` rather than a `watch`:
    /// its wait is one intrusive list entry, which every parked connection holds.
    notify: Notify,
}

impl ShutdownHandle {
    /// A handle not yet triggered.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                draining: AtomicBool::new(false),
                notify: Notify::new(),
            }),
        }
    }

    /// Starts the graceful shutdown (idempotent): stop accepting, answer every request
    /// already read, close idle connections, stop within `drain_timeout_ms`.
    pub fn shutdown(&self) {
        if !self.inner.draining.swap(true, Ordering::SeqCst) {
            tracing::info!("shutdown requested: draining");
            self.inner.notify.notify_waiters();
        }
    }

    /// Whether shutdown has started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// Resolves once shutdown has started (at once if it already has).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + '_ {
        let notified = self.inner.notify.notified();
        async move {
            let mut notified = std::pin::pin!(notified);
            // Listed as a waiter before the flag is read, so a trigger in between is not lost.
            notified.as_mut().enable();
            if !self.is_draining() {
                notified.await;
            }
        }
    }
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        Self::new()
    }
}

/// SIGTERM and Ctrl-C (SIGINT), listened for from the moment [`Signals::install`] returns
/// (tokio installs the process's handlers then, not when first awaited).
pub(crate) struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers; must run inside a runtime (its signal driver delivers them).
    pub(crate) fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind: SignalKind, name: &str| {
                signal(kind)
                    .map_err(|e| tracing::warn!("cannot listen for {name}: {e}"))
                    .ok()
            };
            Self {
                term: listen(SignalKind::terminate(), "SIGTERM"),
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves when either signal arrives (never, if neither could be listened for).
    pub(crate) async fn received(self) {
        #[cfg(unix)]
        {
            async fn next(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(self.term) => tracing::info!("SIGTERM received"),
                _ = next(self.interrupt) => tracing::info!("Ctrl-C received"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
