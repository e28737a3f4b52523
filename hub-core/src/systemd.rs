//! systemd's side of a restart: the listening socket it passes (socket activation), and the
//! notices it waits for (`Type=notify`).
//!
//! Under socket activation the listening socket belongs to systemd and outlives the hub: while
//! one process drains and the next starts, connections wait in its backlog instead of being
//! refused. A hub started with `LISTEN_FDS` for its pid serves every socket passed (its
//! `listen` address is then not bound), and says `READY=1` once it serves and `STOPPING=1`
//! when it stops accepting. Under `WatchdogSec=` it also sends `WATCHDOG=1` while its IO
//! units run (see `liveness`). Elsewhere these do nothing.

use std::io;
use std::net::TcpListener;

/// The listening TCP sockets passed by the service manager (one per `ListenStream=` of the
/// socket unit), if this process was given any; taken once per process (a second server in
/// it binds its own address). Every one is served: a socket passed and not accepted from
/// would leave its clients waiting in its backlog for good.
#[cfg(unix)]
#[allow(unsafe_code)]
pub(crate) fn inherited_listeners() -> io::Result<Vec<TcpListener>> {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicBool, Ordering};

    static TAKEN: AtomicBool = AtomicBool::new(false);
    // Not `listen_fds()`: it unsets the variables, and changing the environment of a
    // process whose other threads may read it at the same time is not safe.
    let passed: Vec<_> = sd_notify::listen_fds_with_names(false)?.collect();
    if passed.is_empty() || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    // SAFETY: LISTEN_PID names this process, so the service manager passed these
    // descriptors to it, open; nothing else here owns them (`TAKEN` lets only the first
    // caller take them). All are owned before any is checked, so a refusal closes them all.
    let sockets: Vec<_> = passed
        .into_iter()
        .map(|(fd, name)| {
            (
                socket2::Socket::from(unsafe { OwnedFd::from_raw_fd(fd) }),
                fd,
                name,
            )
        })
        .collect();
    sockets
        .into_iter()
        .map(|(socket, fd, name)| {
            let is_tcp_listener = socket.r#type()? == socket2::Type::STREAM
                && socket.is_listener()?
                && socket.local_addr()?.as_socket().is_some();
            if !is_tcp_listener {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the socket passed by the service manager (fd {fd}, {name:?}) is not \
                         a listening TCP socket"
                    ),
                ));
            }
            socket.set_nonblocking(true)?;
            Ok(socket.into())
        })
        .collect()
}

#[cfg(not(unix))]
pub(crate) fn inherited_listeners() -> io::Result<Vec<TcpListener>> {
    Ok(Vec::new())
}

/// Tells the service manager the hub is serving (`READY=1`).
pub(crate) fn notify_ready() {
    #[cfg(unix)]
    notify(&[sd_notify::NotifyState::Ready]);
}

/// Tells the service manager the hub has stopped accepting and is draining (`STOPPING=1`).
pub(crate) fn notify_stopping() {
    #[cfg(unix)]
    notify(&[sd_notify::NotifyState::Stopping]);
}

/// Whether a service manager listens for this process's notices (`NOTIFY_SOCKET`): then
/// SIGHUP means "reload" (`Type=notify-reload` sends it), not a terminal's hangup.
pub(crate) fn managed() -> bool {
    cfg!(unix) && std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Tells the service manager a reload has begun (`RELOADING=1` with the monotonic clock, as
/// `Type=notify-reload` requires); `notify_ready` says it is done.
pub(crate) fn notify_reloading() {
    #[cfg(unix)]
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[sd_notify::NotifyState::Reloading, now]),
        Err(e) => tracing::warn!("cannot read the monotonic clock: {e}"),
    }
}

/// How often systemd's watchdog wants `WATCHDOG=1` (half its timeout, as `sd_watchdog_enabled`
/// advises), if it watches this process.
pub(crate) fn watchdog_interval() -> Option<std::time::Duration> {
    #[cfg(unix)]
    {
        let mut usec = 0;
        // Not unsetting the variables, for the reason `inherited_listeners` gives.
        (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0).then(|| feed_interval(usec))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// How often to feed a watchdog of `usec`: half of it (systemd's advice), but at least a
/// millisecond: the timers it sets panic at zero (`WATCHDOG_USEC=1`; found in review).
#[cfg_attr(not(unix), allow(dead_code))]
fn feed_interval(usec: u64) -> std::time::Duration {
    std::time::Duration::from_micros(usec / 2).max(std::time::Duration::from_millis(1))
}

/// Feeds systemd's watchdog (`WATCHDOG=1`).
pub(crate) fn notify_watchdog() {
    #[cfg(unix)]
    notify(&[sd_notify::NotifyState::Watchdog]);
}

#[cfg(unix)]
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Without NOTIFY_SOCKET this sends nothing and succeeds.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_watchdog_is_fed_at_half_its_timeout_and_never_at_zero() {
        use std::time::Duration;
        assert_eq!(super::feed_interval(30_000_000), Duration::from_secs(15));
        for tiny in [1, 2, 1_999] {
            assert_eq!(
                super::feed_interval(tiny),
                Duration::from_millis(1),
                "{tiny}"
            );
        }
    }
}
