//! Reading the config file again while serving, for a server built from one
//! ([`ServerBuilder::config_file`]): on SIGHUP (a server started with signals) or
//! [`ConfigReloadHandle::reload`].
//!
//! What an operator switches without a restart, as koji's admins edit `hub.conf` and reload
//! the web server: `offline` and `offline_message`, `lockout`, `debug` and `access_log`, and
//! the per-call limits an overloaded or slow hub is tuned by, `handler_timeout_ms`,
//! `max_queue_wait_ms`, `memory_warn_threshold_kib` and `gzip_answers_over`, each client's
//! request rate, `max_requests_per_ip_per_sec` and `requests_per_ip_burst`, the connection
//! limits, `max_connections` and `max_connections_per_ip`, and `socket_timeout_ms`
//! ([`RELOADED_KEYS`]), each in force for the calls and connections that start after the
//! reload (a connection open past a lowered limit stays open; one already idle may wait out
//! the timeout it went idle with). Every other key is read once, when the server starts
//! (sockets, threads, trusted proxies): a reload that finds one changed in the file says
//! which, and they take effect at the next restart.
//! A file that does not read or validate changes nothing, and the server serves on as before.
//!
//! A reload applies the keys whose value changed in the file since it was last read (a key
//! taken out of the file goes back to its default; the request rate's two keys go together).
//! So a value set in code on the builder, or switched by an admin method through
//! [`StatusHandle`] (taking the hub offline), stays until the file's own line for it changes:
//! a reload for another key, or of an unchanged file, leaves it as it is.
//!
//! [`ServerBuilder::config_file`]: crate::ServerBuilder::config_file

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::per_ip::PerIp;
use crate::queue::JobQueue;
use crate::rate::RateLimit;
use crate::status::StatusHandle;

/// The keys a reload applies while the server runs.
pub const RELOADED_KEYS: &[&str] = &[
    "offline",
    "offline_message",
    "lockout",
    "debug",
    "access_log",
    "handler_timeout_ms",
    "max_queue_wait_ms",
    "memory_warn_threshold_kib",
    "gzip_answers_over",
    "max_requests_per_ip_per_sec",
    "requests_per_ip_burst",
    "max_connections",
    "max_connections_per_ip",
    "socket_timeout_ms",
];

/// The per-call options a reload may switch, and `max_connections` (the status ones are in
/// [`StatusHandle`]; the others in what they limit, [`Limited`]).
#[derive(Debug)]
pub(crate) struct Switches {
    debug: AtomicBool,
    access_log: AtomicBool,
    handler_timeout_ms: AtomicU64,
    memory_warn_threshold_kib: AtomicU64,
    gzip_answers_over: AtomicUsize,
    max_connections: AtomicU64,
    socket_timeout_ms: AtomicU64,
}

impl Switches {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            debug: AtomicBool::new(config.debug),
            access_log: AtomicBool::new(config.access_log),
            handler_timeout_ms: AtomicU64::new(config.handler_timeout_ms),
            memory_warn_threshold_kib: AtomicU64::new(config.memory_warn_threshold_kib),
            gzip_answers_over: AtomicUsize::new(config.gzip_answers_over),
            max_connections: AtomicU64::new(config.max_connections as u64),
            socket_timeout_ms: AtomicU64::new(config.socket_timeout_ms),
        }
    }

    /// `socket_timeout_ms`: the longest wait for a client's next bytes (a request's head or
    /// body, a TLS handshake) and a connection's idle keep-alive.
    #[inline]
    pub(crate) fn socket_timeout(&self) -> Duration {
        Duration::from_millis(self.socket_timeout_ms.load(Relaxed))
    }

    /// `max_connections`: past it the acceptor answers `503`.
    #[inline]
    pub(crate) fn max_connections(&self) -> u64 {
        self.max_connections.load(Relaxed)
    }

    /// `handler_timeout_ms`: a call's time budget, unless its method has its own.
    #[inline]
    pub(crate) fn handler_timeout(&self) -> Option<Duration> {
        match self.handler_timeout_ms.load(Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// `memory_warn_threshold_kib` (0: no memory watch).
    #[inline]
    pub(crate) fn memory_warn_threshold_kib(&self) -> u64 {
        self.memory_warn_threshold_kib.load(Relaxed)
    }

    /// `gzip_answers_over` (0: never).
    #[inline]
    pub(crate) fn gzip_answers_over(&self) -> usize {
        self.gzip_answers_over.load(Relaxed)
    }

    /// `debug`: the call log, and a panic's message in its fault.
    #[inline]
    pub(crate) fn debug(&self) -> bool {
        self.debug.load(Relaxed)
    }

    /// `access_log`: a line per HTTP request.
    #[inline]
    pub(crate) fn access_log(&self) -> bool {
        self.access_log.load(Relaxed)
    }

    /// Stores the keys of `config` that `changed` names.
    fn set(&self, config: &Config, changed: impl Fn(&str) -> bool) {
        let store = |key: &str, atomic: &AtomicU64, value: u64| {
            if changed(key) {
                atomic.store(value, Relaxed);
            }
        };
        if changed("debug") {
            self.debug.store(config.debug, Relaxed);
        }
        if changed("access_log") {
            self.access_log.store(config.access_log, Relaxed);
        }
        if changed("gzip_answers_over") {
            self.gzip_answers_over
                .store(config.gzip_answers_over, Relaxed);
        }
        store(
            "handler_timeout_ms",
            &self.handler_timeout_ms,
            config.handler_timeout_ms,
        );
        store(
            "memory_warn_threshold_kib",
            &self.memory_warn_threshold_kib,
            config.memory_warn_threshold_kib,
        );
        store(
            "socket_timeout_ms",
            &self.socket_timeout_ms,
            config.socket_timeout_ms,
        );
        if changed("max_connections") {
            let before = self
                .max_connections
                .swap(config.max_connections as u64, Relaxed);
            if config.max_connections as u64 > before {
                // More connections want more descriptors (raised at start for the old limit).
                crate::fd_limit::raise_for(config.max_connections);
            }
        }
    }
}

/// The config file a server was built from, and what it said when last read.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    path: PathBuf,
    table: toml::Table,
}

impl ConfigFile {
    /// Reads, parses and validates the file at `path`.
    pub(crate) fn read(path: &Path) -> Result<(Config, ConfigFile), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::other(format!("config {}: {e}", path.display())))?;
        let config = Config::from_toml(&text)?;
        // Parsed as a `Config` already, so it is a table.
        let table = text.parse::<toml::Table>().unwrap_or_default();
        let file = ConfigFile {
            path: path.to_owned(),
            table,
        };
        Ok((config, file))
    }
}

/// Reloads the config file of a running server; clones share it. Get one from
/// [`RunningServer::config_reload_handle`](crate::RunningServer::config_reload_handle).
#[derive(Debug, Clone)]
pub struct ConfigReloadHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: Mutex<ConfigFile>,
    status: StatusHandle,
    switches: Arc<Switches>,
    limited: Limited,
}

/// What keeps the reloaded limits that are not [`Switches`].
#[derive(Debug)]
pub(crate) struct Limited {
    /// For `max_queue_wait_ms`, which the workers read from it.
    pub(crate) queue: Arc<JobQueue>,
    /// For `max_requests_per_ip_per_sec` and `requests_per_ip_burst`.
    pub(crate) rate: Arc<RateLimit>,
    /// For `max_connections_per_ip`.
    pub(crate) per_ip: Arc<PerIp>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigReload {
    /// Keys whose value changed in the file that are read only at start, sorted (`faults`'
    /// as `faults.auth`): in force after a restart.
    pub needs_restart: Vec<String>,
}

impl ConfigReloadHandle {
    pub(crate) fn new(
        file: ConfigFile,
        status: StatusHandle,
        switches: Arc<Switches>,
        limited: Limited,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                file: Mutex::new(file),
                status,
                switches,
                limited,
            }),
        }
    }

    /// Reads the file again and applies [`RELOADED_KEYS`]; a file that does not read or
    /// validate is an error and changes nothing.
    pub fn reload(&self) -> Result<ConfigReload, ConfigError> {
        let mut file = self
            .inner
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (config, fresh) = ConfigFile::read(&file.path)?;
        let (applied, needs_restart): (Vec<String>, Vec<String>) =
            changed_keys(&file.table, &fresh.table)
                .into_iter()
                .partition(|key| RELOADED_KEYS.contains(&key.as_str()));
        let changed = |key: &str| applied.iter().any(|k| k == key);
        let status = &self.inner.status;
        if changed("offline_message") {
            status.set_message(config.offline_message.as_str());
        }
        if changed("offline") {
            if status.setup_failed() && !config.offline {
                tracing::warn!("offline = false ignored: the server's setup failed; restart it");
            }
            status.set_offline(config.offline);
        }
        if changed("lockout") {
            status.set_lockout(config.lockout);
        }
        self.inner.switches.set(&config, changed);
        let limited = &self.inner.limited;
        if changed("max_queue_wait_ms") {
            limited.queue.set_max_wait(config.max_queue_wait());
        }
        if changed("max_requests_per_ip_per_sec") || changed("requests_per_ip_burst") {
            limited.rate.set(&config);
        }
        if changed("max_connections_per_ip") {
            limited.per_ip.set(&config);
        }
        tracing::info!(
            path = %file.path.display(),
            applied = %applied.join(", "),
            "config reloaded"
        );
        if !needs_restart.is_empty() {
            tracing::warn!(
                path = %file.path.display(),
                keys = %needs_restart.join(", "),
                "config changed where only a restart applies it"
            );
        }
        *file = fresh;
        Ok(ConfigReload { needs_restart })
    }
}

/// The keys whose values differ between two readings of a file (a key set in one only
/// included; a nested table's keys as `table.key`), sorted.
fn changed_keys(old: &toml::Table, new: &toml::Table) -> Vec<String> {
    let mut changed = Vec::new();
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        match (old.get(key), new.get(key)) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => changed.extend(
                changed_keys(a, b)
                    .into_iter()
                    .map(|inner| format!("{key}.{inner}")),
            ),
            (a, b) if a != b => changed.push(key.clone()),
            _ => {}
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().expect("TOML")
    }

    #[test]
    fn changed_keys_name_each_difference_once() {
        let old = table("workers = 2\nlisten = \"127.0.0.1:1\"\ndebug = false\n[faults]\nauth = 1002\nretry = 1009");
        let new = table("workers = 3\nlisten = \"127.0.0.1:1\"\noffline = true\n[faults]\nauth = 1\nretry = 1009");
        assert_eq!(
            changed_keys(&old, &new),
            ["debug", "faults.auth", "offline", "workers"]
        );
        assert!(changed_keys(&old, &old).is_empty());
        assert_eq!(
            changed_keys(&table(""), &table("[faults]\nauth = 1")),
            ["faults"]
        );
    }
}
