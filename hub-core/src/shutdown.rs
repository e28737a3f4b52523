//! Graceful shutdown: one trigger (a signal or [`ShutdownHandle::shutdown`]), observed by
//! the acceptor (stop accepting), the units (drain connections), `/healthz` (answer 503);
//! and a second one ([`ShutdownHandle::shutdown_now`], a second signal) that cuts the drain
//! short.

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
    /// The drain is cut short: connections still open are closed without their answers.
    hurried: AtomicBool,
    hurry: Notify,
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
                hurried: AtomicBool::new(false),
                hurry: Notify::new(),
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

    /// Starts the shutdown if it has not, and cuts its drain short: connections still open
    /// are closed at once, calls in flight go unanswered, and [`RunningServer::wait`]
    /// returns without waiting for handlers still running (what a second Ctrl-C does).
    ///
    /// [`RunningServer::wait`]: crate::RunningServer::wait
    pub fn shutdown_now(&self) {
        if !self.inner.hurried.swap(true, Ordering::SeqCst) {
            tracing::warn!("shutdown now: closing connections without waiting for answers");
            self.inner.hurry.notify_waiters();
        }
        self.shutdown();
    }

    /// Whether [`ShutdownHandle::shutdown_now`] was called.
    pub(crate) fn is_hurried(&self) -> bool {
        self.inner.hurried.load(Ordering::Relaxed)
    }

    /// Resolves once [`ShutdownHandle::shutdown_now`] has been called.
    pub(crate) async fn hurried(&self) {
        let notified = self.inner.hurry.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if !self.is_hurried() {
            notified.await;
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
