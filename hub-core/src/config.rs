//! Server configuration: a TOML file (every key optional) or the [`crate::server::ServerBuilder`].
//!
//! Every option has a default, documented on its field; a file holding only `workers = 2` is
//! valid. Unknown keys and bad values are startup errors that name the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Every engine option. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on, `IP:PORT`, or several: `listen = ["10.0.0.5:8080",
    /// "[::1]:8080"]` (each gets its own socket, all served alike). Default
    /// `127.0.0.1:8080`. Not bound when the service manager passes listening sockets
    /// (systemd socket activation, `LISTEN_FDS`): those are served instead, every one.
    pub listen: Listen,
    /// IO threads, each a single-threaded tokio runtime driving its connections.
    /// Default: the number of CPUs, at most 4.
    pub io_units: usize,
    /// Worker threads running blocking handlers. Default 20 (phxrpc's `MaxThreads`).
    pub workers: usize,
    /// Linux: run the workers under the `SCHED_BATCH` policy. A worker woken for a job then
    /// does not preempt the thread running on its CPU (usually the IO unit that queued the
    /// job) but starts when that thread blocks or its time slice ends, so a hand-off costs
    /// fewer preemptions: server CPU per thread-mode request 10–23% lower in BENCHMARKS.md.
    /// Needs no privilege; elsewhere, or if the kernel refuses, the workers keep the default
    /// policy. Threads a blocking handler starts inherit the policy. Set `false` if a
    /// blocking handler must start within microseconds on a CPU that other busy threads
    /// share. Default `true`.
    pub batch_scheduled_workers: bool,
    /// Connections held at once; past it a new connection is answered `503` and closed.
    /// Default 100000. The open-file soft limit is raised toward this at start, and at a
    /// config reload that raises the limit (see `fd_limit.rs`); the log says so if the hard
    /// limit is lower. A reload that lowers it below the connections held closes none: new
    /// ones are refused until enough have closed.
    pub max_connections: usize,
    /// Connections one client address may hold at once; past it its new connection is
    /// answered `503` and closed, as past `max_connections`, and counted in
    /// `per_ip_rejections`. An IPv4 client reached over IPv6 counts as its IPv4 address, an
    /// IPv6 client as its /64 (the block a host picks its addresses from).
    /// Default 0: no limit (behind a reverse proxy every connection comes from the proxy).
    /// Set by a config reload, it counts the connections each client holds already (a
    /// client over it keeps them, and opens no more until it is under it).
    pub max_connections_per_ip: usize,
    /// Reverse proxies (addresses, or networks as `10.0.0.0/8`) whose `X-Forwarded-For` names
    /// the client: for a request from one, the first address of the header that is not a
    /// trusted proxy, read from the right, is the client's everywhere the client's address
    /// is used (the context's `peer`, the authenticator's, the logs). From any other peer the
    /// header is ignored: a client can write any. Connection limits stay per TCP peer.
    /// Default empty: the header is never read.
    pub trusted_proxies: Vec<String>,
    /// Calls and uploads each client may make per second, on average (0: no limit, the
    /// default). Past it a call is answered `429 Too Many Requests` with a `Retry-After`, and
    /// not run. Its body is dropped if it arrives whole within 50 ms (up to 64 KiB: a call's
    /// body usually comes with its head), and the connection kept; one still on the wire
    /// after that is not waited for, nor one whose client waits for `100 Continue`, and the
    /// connection closes. The client is the one
    /// `trusted_proxies` names, else the TCP peer; an IPv6 client counts by its /64.
    /// `/metrics` and `/healthz` are not counted. A config reload applies it.
    pub max_requests_per_ip_per_sec: u32,
    /// With `max_requests_per_ip_per_sec`: how many calls a client may make at once before
    /// the rate applies (a token bucket's size). Default 0: as many as the rate.
    pub requests_per_ip_burst: u32,
    /// The header the trusted proxies name the client in: `"x-forwarded-for"` (the default),
    /// `"forwarded"` (RFC 7239's `for=`) or `"x-real-ip"` (nginx's one address). Only the one
    /// named is read, so set it to the header the proxy writes: one the proxy passes through
    /// untouched is whatever the client wrote.
    pub client_address_header: ClientAddressHeader,
    /// Blocking jobs waiting for a worker (one queue for the whole server); past it a request is
    /// answered `503`. Default 20480 (phxrpc's `MaxQueueLength`).
    pub max_queue_length: usize,
    /// A blocking job that waited longer than this for a worker is answered `503` without being
    /// executed. Default 500.
    pub max_queue_wait_ms: u64,
    /// QoS: the queue wait a blocking job may expect. A job whose predicted wait (jobs ahead ×
    /// recent run time ÷ workers) exceeds it is answered `503` at once (fast reject); an empty
    /// queue always admits. Default 20. See [`crate::qos`].
    pub fast_reject_threshold_ms: u64,
    /// QoS feedback: while the observed average queue wait exceeds the threshold, each
    /// adjustment (every 64 waits or 100 ms) cuts the admitted wait by this many percentage
    /// points of the threshold, and restores as many once it is under (1..=99). Default 5.
    pub fast_reject_adjust_rate: u32,
    /// Bounds reading one request (headers, then body), a TLS handshake, and idle
    /// keep-alive. Default 30000. A config reload applies it to the waits that start after
    /// it (lowered while slow clients hold the connections, say).
    pub socket_timeout_ms: u64,
    /// Time budget of one XML-RPC request, from its body read to its answer (queue wait
    /// included); 0 means none. A request over budget is
    /// answered with the `system_error` fault at once. An async handler is stopped (its future
    /// is dropped: its resources roll back). A blocking handler cannot be stopped: its worker
    /// stays busy until the handler returns, its late result is discarded, and its resources
    /// are rolled back even if it succeeds (the caller was told it failed). A budget that runs
    /// out once the handler has returned and its commit is under way waits for the commit,
    /// and the caller is answered what was committed. An upload
    /// has the same budget for its lookup (a blocking authenticator's) and its handler, less
    /// the time the handler spends waiting for the client's data
    /// (each such wait is bounded by `socket_timeout_ms`), so a big upload over a slow link
    /// is not cut off for its size. Counted in the `timeouts` counter. A method can have its
    /// own budget in place of this one (`#[rpc_method(timeout_ms = ...)]`,
    /// [`Method::with_timeout`](crate::registry::Method::with_timeout)). A multicall has no
    /// budget of its own: each entry runs within its method's, the batch stopping at the
    /// first entry over it (see `multicall`), and a blocking authenticator's lookup for it
    /// within this one. Default 0: koji has long legitimate calls, so a hub sets its own budget.
    pub handler_timeout_ms: u64,
    /// Largest request body in bytes, as sent and once decoded from gzip or deflate; larger
    /// ones are answered `413`. Default 4 MiB.
    pub max_request_length: usize,
    /// An IO unit that has not run its tasks for this long is warned about (an async
    /// handler or hook blocking its thread: its connections all wait), once per stall,
    /// and counted in `unit_stalls`. So is a worker pool whose every worker has been on its
    /// call this long (counted in `pool_saturations`, with what they run), and each
    /// blocking call still running after its caller stopped waiting; its worker gets a
    /// stand-in thread, at most `workers` of them (the pool is watched only while this or
    /// the watchdog is on). Under systemd's
    /// `WatchdogSec=` the watchdog is fed only while no unit is stalled and some worker is
    /// not held by a call nobody waits for. 0 turns the warnings off. Default 1000.
    pub stall_warn_ms: u64,
    /// Bytes of XML-RPC request bodies the server holds at once, across all connections (a
    /// body still arriving holds its declared length, a decoded one its decoded size, until
    /// its answer is made; one that comes whole with its head sits in the connection's read
    /// buffer and is not counted). A request that would pass it is answered `503` +
    /// `Retry-After` before the rest of its body is read; held now: the `body_bytes_held`
    /// gauge. At least `max_request_length`. Default 512 MiB: without it, 100,000
    /// connections each sending 4 MiB slowly could make the server hold 400 GB.
    pub max_body_bytes_held: usize,
    /// Answers of at least this many bytes are gzipped for clients that accept it
    /// (`Accept-Encoding: gzip`, as Python's `xmlrpc.client` and koji's `requests` send);
    /// 0 means never. Compression, at the fastest level, runs on the IO unit that writes the
    /// answer and pauses its other connections meanwhile: measured on the development VM,
    /// 8 MB of koji-like build listings took 7.8 ms and came out 18x smaller (the default
    /// level: 53 ms, 29x). Default 0: a proxy in front often does it.
    pub gzip_answers_over: usize,
    /// HTTPS: the server's certificate chain, PEM (its own certificate first). Set together
    /// with `tls_key_file`; the listener then speaks TLS only (1.2 and 1.3, ALPN
    /// `http/1.1`), and a plain HTTP request sent to it is answered `400` in plain text.
    /// Needs the `tls` cargo feature (on by default in `hub`). Default none: plain HTTP.
    /// The TLS files are read again on `SIGHUP` or
    /// [`TlsReloadHandle::reload`](crate::TlsReloadHandle::reload), to renew them.
    pub tls_cert_file: Option<PathBuf>,
    /// HTTPS: the private key of `tls_cert_file`, PEM (PKCS #8, PKCS #1 or SEC1).
    pub tls_key_file: Option<PathBuf>,
    /// HTTPS: CA certificates, PEM, that client certificates are checked against (koji's
    /// `ssl_login`). When set, the server asks every client for a certificate; a valid one
    /// reaches the [`Authenticator`](crate::Authenticator) as
    /// [`AuthRequest::client_cert`](crate::AuthRequest::client_cert), an invalid one ends the
    /// handshake. Default none: no client certificates are asked for.
    pub tls_client_ca_file: Option<PathBuf>,
    /// HTTPS with `tls_client_ca_file`: certificate revocation lists, PEM (`X509 CRL`), from
    /// those CAs. A client certificate they revoke ends the handshake (`certificate_revoked`),
    /// and so does one whose CA has no list here: with this set, every client certificate's
    /// status must be known (Apache's `SSLCARevocationFile`, checked for the client's own
    /// certificate, as `SSLCARevocationCheck leaf`). A list past its next update is still
    /// used, with a warning when it is read. Read again with the other TLS files (`SIGHUP`):
    /// revoking takes effect for new connections, not for those already open. Default none.
    pub tls_client_crl_file: Option<PathBuf>,
    /// HTTPS with `tls_client_ca_file`: refuse clients that present no certificate at all
    /// (by default they are let in, and authenticate some other way: a password login, a
    /// session). Default `false`.
    pub tls_require_client_cert: bool,
    /// Paths that accept XML-RPC `POST`s. Default `["/", "/RPC2"]`.
    pub rpc_paths: Vec<String>,
    /// Seconds between `[SERVER_STAT]` log lines (only logged when there was traffic);
    /// 0 disables them. Default 10.
    pub stat_interval_secs: u64,
    /// How long a graceful shutdown waits for in-flight requests. Default 10000. A second
    /// SIGTERM or Ctrl-C (or [`ShutdownHandle::shutdown_now`](crate::ShutdownHandle::shutdown_now))
    /// cuts it short.
    pub drain_timeout_ms: u64,
    /// Most calls in one `system.multicall`. Default 1000.
    pub max_multicall_calls: usize,
    /// Start offline: every call answers the `offline` fault (HTTP 200) carrying
    /// `offline_message`; `/healthz` answers `503`. Switchable at run time through
    /// [`crate::StatusHandle`]. Default `false`.
    pub offline: bool,
    /// The message of the `offline` fault. Default `"server is offline"`.
    pub offline_message: String,
    /// Lock the server out for maintenance: only callers holding `admin` get through; everyone
    /// else gets the `offline` fault, except for the methods in `lockout_exempt`. Switchable at
    /// run time. Default `false`.
    pub lockout: bool,
    /// Methods anyone may call during a lockout (so admins can log in).
    /// Default `["login", "logout", "sslLogin"]`.
    pub lockout_exempt: Vec<String>,
    /// Log every call (method, caller and session, arguments cut to 120 characters, duration,
    /// outcome) at INFO, and
    /// put a panic's message into the internal-error fault text. Default `false`.
    pub debug: bool,
    /// Log every HTTP request once its answer is ready, at INFO on the `hub::access` target:
    /// the client's address, method and URI, status, answer bytes, time taken in µs, and for
    /// an XML-RPC call its method (only a registered name) and fault code. No header or body
    /// is logged. Default `false` (as tower-http's trace layer, it is asked for).
    pub access_log: bool,
    /// Log a warning when the resident memory (resident minus shared, from `/proc/self/statm`)
    /// grew by more than this many KiB during one call; 0 disables the watch. Default 5000
    /// (koji's `MemoryWarnThreshold`). Unlike koji, the process is not sampled twice per call:
    /// "before" may be a sample up to 1 ms old, and "after" is read only for calls long
    /// enough to grow that much (4 ns per KiB: 20 µs for 5000 KiB); see `memory.rs`.
    pub memory_warn_threshold_kib: u64,
    /// Largest upload body (`Content-Type: application/octet-stream`) in bytes; larger ones are
    /// answered `413`. Uploads are streamed, never held whole. Default 1 GiB.
    pub max_upload_length: u64,
    /// The message of the `offline` fault answered when a per-request resource cannot be
    /// acquired (koji: `"database outage"`). Default `"resource outage"`.
    pub resource_outage_message: String,
    /// Fault codes for the engine's own faults.
    pub faults: FaultCodes,
}

/// Where to listen ([`Config::listen`]): one address or several, in the order given (the
/// first is [`RunningServer::local_addr`](crate::RunningServer::local_addr)).
///
/// ```
/// use hub_core::config::{Config, Listen};
///
/// let one: Listen = "127.0.0.1:8080".parse()?;
/// let c = Config::from_toml(r#"listen = ["127.0.0.1:8080", "[::1]:8080"]"#)?;
/// assert_eq!(c.listen.addrs().len(), 2);
/// assert_eq!(c.listen.addrs()[0], one.addrs()[0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen(Vec<SocketAddr>);

/// Where a trusted proxy names the client (`client_address_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAddressHeader {
    /// `X-Forwarded-For: client, proxy1`, read from the right past the trusted proxies.
    #[default]
    XForwardedFor,
    /// RFC 7239's `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"`, its `for=`
    /// parameters read from the right past the trusted proxies.
    Forwarded,
    /// nginx's `X-Real-IP: client`, one address set by the trusted proxy in front of the hub.
    XRealIp,
}

impl Listen {
    /// Several addresses (an empty list is refused when the configuration is checked).
    pub fn all(addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self(addrs.into_iter().collect())
    }

    /// The addresses, in the order given.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.0
    }
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Self {
        Self(vec![addr])
    }
}

/// One address, `IP:PORT`.
impl std::str::FromStr for Listen {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(|addr: SocketAddr| Self::from(addr))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, addr) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            addr.fmt(f)?;
        }
        Ok(())
    }
}

/// A string (one address) or an array of them.
impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Addrs;

        impl<'de> serde::de::Visitor<'de> for Addrs {
            type Value = Listen;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address `IP:PORT` or an array of them")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Listen, E> {
                s.parse().map_err(E::custom)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Listen, A::Error> {
                let mut addrs = Vec::new();
                while let Some(addr) = seq.next_element::<SocketAddr>()? {
                    addrs.push(addr);
                }
                Ok(Listen(addrs))
            }
        }

        deserializer.deserialize_any(Addrs)
    }
}

/// The `[faults]` table: codes of the faults the server itself raises. Defaults follow the
/// XML-RPC fault-code interoperability spec; a koji-compatible hub sets koji's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultCodes {
    /// The request is not well-formed XML. Default -32700.
    pub not_well_formed: i32,
    /// Well-formed XML, but not a valid XML-RPC call. Default -32600.
    pub invalid_xmlrpc: i32,
    /// No such method. Default -32601.
    pub method_not_found: i32,
    /// The arguments do not fit the method. Default -32602.
    pub invalid_params: i32,
    /// The handler panicked or the server failed. Default -32603.
    pub internal_error: i32,
    /// An application error without a code of its own. Default -32500.
    pub application_error: i32,
    /// A system-level refusal inside a call (e.g. a multicall entry refused). Default -32400.
    pub system_error: i32,
    /// The server is offline, locked out, failed its setup, or could not acquire a per-request
    /// resource. Default -32400 (the spec's system error); koji: 1014 (`ServerOffline`).
    pub offline: i32,
    /// The credentials are missing pieces, malformed, or name no live session.
    /// Default -32001 (the spec's implementation-defined server range); koji: 1002 (`AuthError`).
    pub auth: i32,
    /// The caller lacks the method's permission (or is anonymous). Default -32002;
    /// koji: 1004 (`ActionNotAllowed`).
    pub permission: i32,
    /// A call number lower than the session's last one. Default -32003; koji: 1008
    /// (`SequenceError`).
    pub sequence: i32,
    /// A call number equal to the session's last one: a replay. Default -32004; koji: 1009
    /// (`RetryError`).
    pub retry: i32,
    /// The session has expired and must be renewed by logging in again. Default -32005;
    /// koji: 1007 (`AuthExpired`, which koji's client answers by logging in again).
    pub expired: i32,
}

impl FaultCodes {
    /// koji-hub's codes: 1000 for a generic error (unknown method, bad XML, application
    /// error), 1019 `ParameterError`, 1 for unexpected errors, 1014 `ServerOffline`, 1002
    /// `AuthError`, 1004 `ActionNotAllowed`, 1008 `SequenceError`, 1009 `RetryError`, 1007
    /// `AuthExpired`.
    ///
    /// In a config file, set the same numbers in the `[faults]` table.
    ///
    /// ```
    /// let codes = hub_core::FaultCodes::koji();
    /// assert_eq!((codes.offline, codes.permission, codes.retry), (1014, 1004, 1009));
    /// ```
    pub fn koji() -> Self {
        Self {
            not_well_formed: 1000,
            invalid_xmlrpc: 1000,
            method_not_found: 1000,
            invalid_params: 1019,
            internal_error: 1,
            application_error: 1000,
            system_error: 1000,
            offline: 1014,
            auth: 1002,
            permission: 1004,
            sequence: 1008,
            retry: 1009,
            expired: 1007,
        }
    }
}

impl Default for FaultCodes {
    fn default() -> Self {
        Self {
            not_well_formed: -32700,
            invalid_xmlrpc: -32600,
            method_not_found: -32601,
            invalid_params: -32602,
            internal_error: -32603,
            application_error: -32500,
            system_error: -32400,
            offline: -32400,
            auth: -32001,
            permission: -32002,
            sequence: -32003,
            retry: -32004,
            expired: -32005,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            listen: Listen::from(SocketAddr::from(([127, 0, 0, 1], 8080))),
            io_units: cpus.clamp(1, 4),
            workers: 20,
            batch_scheduled_workers: true,
            max_connections: 100_000,
            max_connections_per_ip: 0,
            trusted_proxies: Vec::new(),
            client_address_header: ClientAddressHeader::default(),
            max_requests_per_ip_per_sec: 0,
            requests_per_ip_burst: 0,
            max_queue_length: 20_480,
            max_queue_wait_ms: 500,
            fast_reject_threshold_ms: 20,
            fast_reject_adjust_rate: 5,
            socket_timeout_ms: 30_000,
            handler_timeout_ms: 0,
            max_request_length: 4 * 1024 * 1024,
            max_body_bytes_held: 512 * 1024 * 1024,
            stall_warn_ms: 1000,
            gzip_answers_over: 0,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_client_crl_file: None,
            tls_require_client_cert: false,
            rpc_paths: vec!["/".to_owned(), "/RPC2".to_owned()],
            stat_interval_secs: 10,
            drain_timeout_ms: 10_000,
            max_multicall_calls: 1000,
            offline: false,
            offline_message: "server is offline".to_owned(),
            lockout: false,
            lockout_exempt: ["login", "logout", "sslLogin"].map(str::to_owned).to_vec(),
            debug: false,
            access_log: false,
            memory_warn_threshold_kib: 5000,
            max_upload_length: 1 << 30,
            resource_outage_message: "resource outage".to_owned(),
            faults: FaultCodes::default(),
        }
    }
}

/// A configuration that could not be used; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// An error about one key.
    pub fn key(key: &str, problem: impl fmt::Display) -> Self {
        Self {
            message: format!("config key `{key}`: {problem}"),
        }
    }

    pub(crate) fn other(message: String) -> Self {
        Self { message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        // toml's messages name the offending key (`unknown field `x``, `... for key `workers``).
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::other(format!("config: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::other(format!("config {}: {e}", path.display())))?;
        Self::from_toml(&text)
    }

    /// Checks values serde cannot: ranges and non-empty lists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn at_least(key: &str, value: u64, min: u64) -> Result<(), ConfigError> {
            if value < min {
                return Err(ConfigError::key(
                    key,
                    format!("must be at least {min}, got {value}"),
                ));
            }
            Ok(())
        }
        at_least("listen", self.listen.addrs().len() as u64, 1)?;
        at_least("io_units", self.io_units as u64, 1)?;
        at_least("workers", self.workers as u64, 1)?;
        at_least("max_connections", self.max_connections as u64, 1)?;
        at_least("max_queue_length", self.max_queue_length as u64, 1)?;
        at_least("max_queue_wait_ms", self.max_queue_wait_ms, 1)?;
        at_least("socket_timeout_ms", self.socket_timeout_ms, 1)?;
        at_least("max_request_length", self.max_request_length as u64, 1)?;
        // Less would refuse the biggest bodies allowed even on an idle server.
        at_least(
            "max_body_bytes_held",
            self.max_body_bytes_held as u64,
            self.max_request_length as u64,
        )?;
        at_least("max_multicall_calls", self.max_multicall_calls as u64, 1)?;
        at_least("max_upload_length", self.max_upload_length, 1)?;
        for (key, text) in [
            ("offline_message", &self.offline_message),
            ("resource_outage_message", &self.resource_outage_message),
        ] {
            if text.trim().is_empty() {
                return Err(ConfigError::key(key, "must not be empty"));
            }
        }
        if !(1..=99).contains(&self.fast_reject_adjust_rate) {
            return Err(ConfigError::key(
                "fast_reject_adjust_rate",
                format!("must be 1..=99, got {}", self.fast_reject_adjust_rate),
            ));
        }
        if self.rpc_paths.is_empty() {
            return Err(ConfigError::key("rpc_paths", "must hold at least one path"));
        }
        crate::forwarded::TrustedProxies::parse(&self.trusted_proxies, self.client_address_header)?;
        if let Some(bad) = self.rpc_paths.iter().find(|p| !p.starts_with('/')) {
            return Err(ConfigError::key(
                "rpc_paths",
                format!("`{bad}` must start with `/`"),
            ));
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => {
                return Err(ConfigError::key(
                    "tls_key_file",
                    "must be set with `tls_cert_file`",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::key(
                    "tls_cert_file",
                    "must be set with `tls_key_file`",
                ))
            }
            _ => {}
        }
        if self.tls_cert_file.is_none() && self.tls_client_ca_file.is_some() {
            return Err(ConfigError::key(
                "tls_client_ca_file",
                "needs `tls_cert_file` and `tls_key_file`: client certificates come with TLS",
            ));
        }
        if self.tls_require_client_cert && self.tls_client_ca_file.is_none() {
            return Err(ConfigError::key(
                "tls_require_client_cert",
                "needs `tls_client_ca_file` to check the certificates against",
            ));
        }
        if self.requests_per_ip_burst > 0 && self.max_requests_per_ip_per_sec == 0 {
            return Err(ConfigError::key(
                "requests_per_ip_burst",
                "needs `max_requests_per_ip_per_sec`: a burst of a rate that is not set",
            ));
        }
        if self.tls_client_crl_file.is_some() && self.tls_client_ca_file.is_none() {
            return Err(ConfigError::key(
                "tls_client_crl_file",
                "needs `tls_client_ca_file`: the lists revoke client certificates of those CAs",
            ));
        }
        if self.io_units > 1024 || self.workers > 65_536 {
            return Err(ConfigError::key(
                if self.io_units > 1024 {
                    "io_units"
                } else {
                    "workers"
                },
                "unreasonably large",
            ));
        }
        Ok(())
    }

    /// `socket_timeout_ms` as a duration.
    pub fn socket_timeout(&self) -> Duration {
        Duration::from_millis(self.socket_timeout_ms)
    }

    /// Whether the listener speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls_cert_file.is_some()
    }

    /// `handler_timeout_ms` as a duration, `None` when 0 (no budget).
    pub fn handler_timeout(&self) -> Option<Duration> {
        (self.handler_timeout_ms > 0).then(|| Duration::from_millis(self.handler_timeout_ms))
    }

    /// `max_queue_wait_ms` as a duration.
    pub fn max_queue_wait(&self) -> Duration {
        Duration::from_millis(self.max_queue_wait_ms)
    }

    /// `drain_timeout_ms` as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_burst_needs_a_rate() {
        let e = Config::from_toml("requests_per_ip_burst = 5").expect_err("no rate");
        assert!(e.to_string().contains("requests_per_ip_burst"), "{e}");
        let c = Config::from_toml("max_requests_per_ip_per_sec = 10\nrequests_per_ip_burst = 50")
            .expect("valid");
        assert_eq!(
            (c.max_requests_per_ip_per_sec, c.requests_per_ip_burst),
            (10, 50)
        );
    }

    /// The README's configuration block is a valid configuration: its keys and values stay
    /// true as the config changes.
    #[test]
    fn the_readme_s_example_config_reads() {
        let readme = include_str!("../../README.md");
        let (_, rest) = readme.split_once("```toml\n").expect("a toml block");
        let (block, _) = rest.split_once("```").expect("its end");
        let c = Config::from_toml(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        assert_eq!(c.client_address_header, ClientAddressHeader::XForwardedFor);
        assert_eq!(c.faults.method_not_found, 1000);
    }

    #[test]
    fn only_workers_is_valid() {
        let c = Config::from_toml("workers = 2").expect("valid");
        assert_eq!(c.workers, 2);
        assert_eq!(c.max_queue_wait_ms, 500);
        assert_eq!(c.rpc_paths, vec!["/", "/RPC2"]);
        assert_eq!(c.faults.method_not_found, -32601);
        assert_eq!(c.handler_timeout(), None);
        let c = Config::from_toml("handler_timeout_ms = 250").expect("valid");
        assert_eq!(c.handler_timeout(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("wrokers = 2").expect_err("unknown");
        assert!(e.to_string().contains("wrokers"), "{e}");
        let e = Config::from_toml("[faults]\nnope = 1").expect_err("unknown");
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (toml, key) in [
            ("workers = \"many\"", "workers"),
            ("workers = 0", "workers"),
            ("listen = \"nowhere\"", "listen"),
            ("listen = [\"127.0.0.1:1\", \"nowhere\"]", "listen"),
            ("listen = []", "listen"),
            ("listen = 8080", "listen"),
            ("fast_reject_adjust_rate = 100", "fast_reject_adjust_rate"),
        ] {
            let e = Config::from_toml(toml).expect_err(toml);
            assert!(e.to_string().contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn faults_table() {
        let c = Config::from_toml("[faults]\nmethod_not_found = 1000\ninvalid_params = 1019")
            .expect("valid");
        assert_eq!(c.faults.method_not_found, 1000);
        assert_eq!(c.faults.invalid_params, 1019);
        assert_eq!(c.faults.not_well_formed, -32700);
    }

    #[test]
    fn lifecycle_keys() {
        let c = Config::default();
        assert!(!c.offline && !c.lockout && !c.debug && !c.access_log);
        assert_eq!(c.memory_warn_threshold_kib, 5000);
        assert_eq!(c.lockout_exempt, ["login", "logout", "sslLogin"]);
        assert_eq!(c.faults.offline, -32400);
        let c = Config::from_toml(
            "offline = true\noffline_message = \"down\"\nlockout = true\ndebug = true\n\
             access_log = true\n\
             memory_warn_threshold_kib = 0\nmax_upload_length = 10\n\
             [faults]\noffline = 1014\nauth = 1002\npermission = 1004\nsequence = 1008\nretry = 1009\n\
             expired = 1007",
        )
        .expect("valid");
        assert!(c.offline && c.lockout && c.debug && c.access_log);
        assert_eq!(c.offline_message, "down");
        assert_eq!(c.max_upload_length, 10);
        assert_eq!(c.faults.offline, 1014);
        assert_eq!(c.faults.retry, FaultCodes::koji().retry);
        assert_eq!(c.faults.expired, FaultCodes::koji().expired);
        assert_eq!(Config::default().faults.expired, -32005);
        let e = Config::from_toml("max_upload_length = 0").expect_err("range");
        assert!(e.to_string().contains("max_upload_length"), "{e}");
        let e = Config::from_toml("offline_message = \" \"").expect_err("empty");
        assert!(e.to_string().contains("offline_message"), "{e}");
        let e = Config::from_toml("ofline = true").expect_err("unknown");
        assert!(e.to_string().contains("ofline"), "{e}");
    }

    #[test]
    fn tls_keys_come_in_the_pairs_they_need() {
        let c = Config::from_toml("tls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"")
            .expect("valid");
        assert!(c.tls() && !c.tls_require_client_cert);
        for (text, names) in [
            ("tls_cert_file = \"c.pem\"", "tls_key_file"),
            ("tls_key_file = \"k.pem\"", "tls_cert_file"),
            ("tls_client_ca_file = \"ca.pem\"", "tls_client_ca_file"),
            (
                "tls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\ntls_require_client_cert = true",
                "tls_require_client_cert",
            ),
        ] {
            let e = Config::from_toml(text).expect_err(text);
            assert!(e.to_string().contains(names), "{text}: {e}");
        }
    }
}
