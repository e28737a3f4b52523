//! The process's signals, for a server started with them ([`Server::run`],
//! [`Server::start_with_signals`]): SIGTERM or Ctrl-C drains it, a second one stops it now,
//! and SIGHUP reloads the TLS files and the config file (on a server with either, or under a
//! service manager, which hears `RELOADING=1` then `READY=1` around it, as
//! `Type=notify-reload` wants; elsewhere SIGHUP keeps its default).
//!
//! They are listened for on a thread of their own, from before the server says it is
//! listening until it has stopped: the acceptor's runtime ends when the drain starts, and a
//! second Ctrl-C must still be heard after that.
//!
//! [`Server::run`]: crate::Server::run
//! [`Server::start_with_signals`]: crate::Server::start_with_signals

use std::io;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::reload::ConfigReloadHandle;
use crate::shutdown::ShutdownHandle;
use crate::tls::TlsReloadHandle;

/// What SIGHUP reads again.
#[derive(Debug, Default)]
pub(crate) struct Reloads {
    /// The TLS files, on a TLS server.
    pub(crate) tls: Option<TlsReloadHandle>,
    /// The config file, on a server built from one.
    pub(crate) config: Option<ConfigReloadHandle>,
}

impl Reloads {
    fn any(&self) -> bool {
        self.tls.is_some() || self.config.is_some()
    }

    /// Reads each again; what does not read is logged, and served on as before.
    fn reload(&self) {
        if !self.any() {
            tracing::info!("SIGHUP: nothing to reload (no TLS files, no config file)");
        }
        if let Some(Err(e)) = self.tls.as_ref().map(TlsReloadHandle::reload) {
            tracing::error!("SIGHUP: TLS files not reloaded, serving as before: {e}");
        }
        if let Some(Err(e)) = self.config.as_ref().map(ConfigReloadHandle::reload) {
            tracing::error!("SIGHUP: config not reloaded, serving as before: {e}");
        }
    }
}

/// The thread listening for signals; it ends when this is dropped or [`Self::stop`]ped.
#[derive(Debug)]
pub(crate) struct SignalThread {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl SignalThread {
    /// Installs the handlers (they are in force when this returns: a SIGTERM sent the
    /// moment after must drain, not kill) and starts the thread acting on them.
    pub(crate) fn spawn(shutdown: ShutdownHandle, reloads: Reloads) -> io::Result<SignalThread> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let signals = {
            let _runtime = rt.enter();
            Signals::install(reloads.any() || crate::systemd::managed())
        };
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("hub-signals".to_owned())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        () = signals.act(&shutdown, &reloads) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(SignalThread { stop, thread })
    }

    /// Stops listening and waits for the thread (signals then do what the process's
    /// handlers do: tokio's stay installed and ignore them).
    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// The signal streams (each `None` where it could not be listened for).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers, SIGHUP's only for `reload` (elsewhere it keeps its default:
    /// a terminal's hangup ends the process). Must run inside a runtime: its signal driver delivers them.
    fn install(reload: bool) -> Self {
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
                hangup: reload
                    .then(|| listen(SignalKind::hangup(), "SIGHUP"))
                    .flatten(),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = reload;
            Self {}
        }
    }

    /// Acts on signals as they come, for as long as it is polled.
    async fn act(mut self, shutdown: &ShutdownHandle, reloads: &Reloads) {
        loop {
            match self.next().await {
                Received::Stop(name) if shutdown.is_draining() => {
                    tracing::warn!("{name} received while draining: stopping now");
                    shutdown.shutdown_now();
                }
                Received::Stop(name) => {
                    tracing::info!("{name} received: draining (send it again to stop at once)");
                    shutdown.shutdown();
                }
                Received::Reload => {
                    crate::systemd::notify_reloading();
                    reloads.reload();
                    crate::systemd::notify_ready();
                }
            }
        }
    }

    /// The next signal.
    #[cfg(unix)]
    async fn next(&mut self) -> Received {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
            if let Some(s) = signal {
                if s.recv().await.is_some() {
                    return;
                }
            }
            // Not listened for, or its driver gone: never.
            std::future::pending().await
        }
        tokio::select! {
            () = recv(&mut self.term) => Received::Stop("SIGTERM"),
            () = recv(&mut self.interrupt) => Received::Stop("Ctrl-C"),
            () = recv(&mut self.hangup) => Received::Reload,
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Received {
        match tokio::signal::ctrl_c().await {
            Ok(()) => Received::Stop("Ctrl-C"),
            Err(_) => std::future::pending().await,
        }
    }
}

enum Received {
    Stop(&'static str),
    Reload,
}
