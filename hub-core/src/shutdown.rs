//! Graceful shutdown: one trigger (a signal or [`ShutdownHandle::shutdown`]), observed by
//! the acceptor (stop accepting), the units (drain connections), `/healthz` (answer 503).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable handle that starts a graceful shutdown of its server.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    draining: AtomicBool,
    tx: watch::Sender<bool>,
}

impl ShutdownHandle {
    /// A handle not yet triggered.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                draining: AtomicBool::new(false),
                tx,
            }),
        }
    }

    /// Starts the graceful shutdown (idempotent): stop accepting, answer every request
    /// already read, close idle connections, stop within `drain_timeout_ms`.
    pub fn shutdown(&self) {
        if !self.inner.draining.swap(true, Ordering::SeqCst) {
            tracing::info!("shutdown requested: draining");
            self.inner.tx.send_replace(true);
        }
    }

    /// Whether shutdown has started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// Resolves once shutdown has started.
    pub async fn wait(&self) {
        let mut rx = self.inner.tx.subscribe();
        // `wait_for` checks the current value first, so a trigger before the call counts.
        let _ = rx.wait_for(|&d| d).await;
    }
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        Self::new()
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub(crate) async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
