//! [`StatusHandle`]: whether the server serves calls now (online, offline, locked out).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// The server's availability, shared by every request and switchable at run time.
///
/// Get one from [`RunningServer::status`](crate::RunningServer::status) (an operator's
/// switch) or from [`Context::status`](crate::Context::status) (an admin method). Clones share
/// one state.
///
/// - **offline**: every call answers the `offline` fault (HTTP 200) carrying the message, and
///   `/healthz` answers `503`;
/// - **lockout**: only callers holding `admin` get through, and anyone may still call the
///   methods of `lockout_exempt` (`login`, `logout`, `sslLogin` by default).
///
/// A server whose setup hook failed serves offline with `"server startup error"` until it is
/// restarted, as koji-hub does: its handlers' pools were never opened, so neither
/// [`set_offline`](Self::set_offline) nor a config reload brings it online, nor does a new
/// message hide the failure.
///
/// ```
/// let status = hub_core::StatusHandle::new(false, "server is offline", false);
/// status.go_offline("down for the upgrade, back at 14:00");
/// assert!(status.is_offline());
/// assert_eq!(status.offline_message(), "down for the upgrade, back at 14:00");
/// status.set_offline(false);
/// status.set_lockout(true);
/// assert!(!status.is_offline() && status.is_locked_out());
/// ```
#[derive(Debug, Clone)]
pub struct StatusHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    offline: AtomicBool,
    /// The setup hook failed: offline for good, whatever `offline` and `message` say.
    setup_failed: AtomicBool,
    lockout: AtomicBool,
    message: RwLock<Arc<str>>,
}

impl Default for StatusHandle {
    /// Online, not locked out, message `"server is offline"`.
    fn default() -> Self {
        Self::new(false, "server is offline", false)
    }
}

impl StatusHandle {
    /// A state of its own (the server makes its from `offline`, `offline_message`, `lockout`).
    pub fn new(offline: bool, message: impl Into<Arc<str>>, lockout: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                offline: AtomicBool::new(offline),
                setup_failed: AtomicBool::new(false),
                lockout: AtomicBool::new(lockout),
                message: RwLock::new(message.into()),
            }),
        }
    }

    /// Whether every call answers the offline fault.
    pub fn is_offline(&self) -> bool {
        self.inner.offline.load(Ordering::Acquire) || self.setup_failed()
    }

    /// Whether the server's setup hook failed (offline until a restart).
    pub fn setup_failed(&self) -> bool {
        self.inner.setup_failed.load(Ordering::Acquire)
    }

    /// Marks the setup hook failed: offline with [`STARTUP_ERROR`] from now on.
    ///
    /// [`STARTUP_ERROR`]: crate::lifecycle::STARTUP_ERROR
    pub(crate) fn fail_setup(&self) {
        self.inner.setup_failed.store(true, Ordering::Release);
    }

    /// Whether only admins (and the exempt methods) get through.
    pub fn is_locked_out(&self) -> bool {
        self.inner.lockout.load(Ordering::Acquire)
    }

    /// The message the offline fault carries.
    pub fn offline_message(&self) -> String {
        self.message().to_string()
    }

    pub(crate) fn message(&self) -> Arc<str> {
        if self.setup_failed() {
            return Arc::from(crate::lifecycle::STARTUP_ERROR);
        }
        Arc::clone(
            &self
                .inner
                .message
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Takes the server offline (`true`) or back online (`false`, unless its setup failed),
    /// keeping the message.
    pub fn set_offline(&self, offline: bool) {
        self.inner.offline.store(offline, Ordering::Release);
    }

    /// Takes the server offline with this message.
    pub fn go_offline(&self, message: impl Into<Arc<str>>) {
        self.set_message(message);
        self.set_offline(true);
    }

    /// Replaces the offline message (shown once the server is offline for another reason
    /// than a failed setup).
    pub fn set_message(&self, message: impl Into<Arc<str>>) {
        *self
            .inner
            .message
            .write()
            .unwrap_or_else(PoisonError::into_inner) = message.into();
    }

    /// Starts (`true`) or ends (`false`) a lockout.
    pub fn set_lockout(&self, lockout: bool) {
        self.inner.lockout.store(lockout, Ordering::Release);
    }
}
