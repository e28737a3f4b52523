//! [`Server`]: builds the engine from a [`Config`] and a [`Registry`], starts its threads
//! (acceptor, IO units, workers) and drains them on shutdown.
//!
//! A request's path: the acceptor thread accepts (or answers `503` over `max_connections`)
//! and hands the socket round robin to an IO unit; the unit's hyper connection reads the
//! head (`socket_timeout_ms`), `service` routes it and reads the body (`max_request_length`,
//! `socket_timeout_ms`); `dispatch` parses the call, splits keyword arguments, looks the method
//! up and makes its `Context`; an async method runs right there on the unit, a blocking one is
//! queued (QoS fast reject, `max_queue_length`) for a worker thread, which skips it if the
//! client left, answers `503` if it waited past `max_queue_wait_ms`, else runs it under
//! `catch_unwind` and sends the result back to its unit (`answer`); the unit encodes the
//! value or fault and hyper writes it.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = hub_core::Server::builder().workers(4).listen("127.0.0.1:0".parse()?).build()?;
//! server.run()?; // until SIGTERM or Ctrl-C, then drains
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hub_xmlrpc::{Limits, Value};

use crate::auth::Authenticator;
use crate::config::{Config, ConfigError, FaultCodes};
use crate::context::{Context, ServerParts};
use crate::lifecycle::{AuthHook, Hooks, Serving};
use crate::queue::JobQueue;
use crate::registry::{Registry, RpcError};
use crate::reload::{ConfigFile, ConfigReloadHandle, Switches};
use crate::resource::{BoxError, RequestResource, ResourceDef};
use crate::shutdown::ShutdownHandle;
use crate::signals::{Reloads, SignalThread};
use crate::stats::{StatLine, Stats};
use crate::status::StatusHandle;
use crate::tls::TlsReloadHandle;
use crate::upload::Upload;

/// What every part of a running server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) limits: Limits,
    /// The registry's methods with their stats slots, looked up once per call (the registry
    /// itself is in `parts`).
    pub(crate) calls: crate::dispatch::CallTable,
    /// Whether some method has its own time budget (`Method::with_timeout`): only then does a
    /// call look its budget up.
    pub(crate) method_budgets: bool,
    /// Whether handlers run in a span of their call (`lifecycle::call_span`): decided when
    /// the server starts, from the subscriber in place then, so a server without them tests
    /// one flag per call.
    pub(crate) call_spans: bool,
    /// Each client's request rate, if limited (`max_requests_per_ip_per_sec`).
    pub(crate) rate_limit: Arc<crate::rate::RateLimit>,
    /// The proxies whose header names the client (`trusted_proxies`,
    /// `client_address_header`).
    pub(crate) trusted_proxies: crate::forwarded::TrustedProxies,
    /// Each alias's method name: calls by an alias are authenticated as the method's own
    /// (empty when no method has one: one emptiness check per call).
    pub(crate) aliases: crate::registry::AliasMap,
    /// `debug`, `access_log` and the per-call limits a config reload may change.
    pub(crate) switches: Arc<Switches>,
    /// Reads the config file again, if the server was built from one.
    pub(crate) config_reload: Option<ConfigReloadHandle>,
    pub(crate) queue: Arc<JobQueue>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) shutdown: ShutdownHandle,
    pub(crate) status: StatusHandle,
    pub(crate) hooks: Serving,
    /// What every call's context refers to: each IO unit makes its contexts with its own copy
    /// of these (see `unit::UnitLocal`).
    pub(crate) parts: Arc<ServerParts>,
    /// The TLS handshake every connection starts with, if the listener speaks TLS.
    pub(crate) tls: Option<crate::tls::Acceptor>,
    /// The units' beats, when stall warnings or systemd's watchdog want them.
    pub(crate) liveness: Option<Arc<crate::liveness::Liveness>>,
    /// Connections held per client address, against `max_connections_per_ip`.
    pub(crate) per_ip: Arc<crate::per_ip::PerIp>,
}

/// Why a server could not be built or started.
#[derive(Debug)]
pub enum ServerError {
    /// A bad configuration; the message names the key.
    Config(ConfigError),
    /// The registry could not be built (e.g. duplicate method names).
    Registry(String),
    /// Binding the listener or starting a thread failed.
    Io(io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(e) => e.fmt(f),
            ServerError::Registry(e) => write!(f, "registry: {e}"),
            ServerError::Io(e) => write!(f, "io: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<ConfigError> for ServerError {
    fn from(e: ConfigError) -> Self {
        ServerError::Config(e)
    }
}

impl From<io::Error> for ServerError {
    fn from(e: io::Error) -> Self {
        ServerError::Io(e)
    }
}

/// Sets every [`Config`] option in code (starting from the defaults, or a file), and the
/// lifecycle hooks: [`setup`](Self::setup), [`resource`](Self::resource),
/// [`authenticator`](Self::authenticator), [`upload`](Self::upload).
///
/// ```no_run
/// use std::sync::Arc;
/// use hub_core::{Server, SessionStore};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sessions = Arc::new(SessionStore::new());
/// let server = Server::builder()
///     .config_file("/etc/hub/hub.toml")?
///     .setup(|config| {
///         // Open pools, check the schema: an error leaves the server up but offline.
///         tracing::info!(listen = %config.listen, "setting up");
///         Ok(())
///     })
///     .authenticator(Arc::clone(&sessions))
///     .build()?;
/// server.run()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct ServerBuilder {
    config: Config,
    /// The file `config` was read from, if it was: a reload reads it again.
    config_file: Option<ConfigFile>,
    registry: Option<Arc<Registry>>,
    hooks: Hooks,
    response_headers: Vec<(String, String)>,
    states: crate::state::States,
}

macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty ),* $(,)?) => {
        $( $(#[$doc])* pub fn $name(mut self, value: $ty) -> Self { self.config.$name = value; self } )*
    };
}

impl ServerBuilder {
    /// Replaces every option with `config`.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Loads every option from a TOML file, and reads it again while serving (as
    /// [`reload_config_from`](Self::reload_config_from)).
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let (config, file) = ConfigFile::read(path.as_ref())?;
        self.config = config;
        self.config_file = Some(file);
        Ok(self)
    }

    /// The TOML file the running server reads again, on SIGHUP (started with signals) or
    /// with [`RunningServer::config_reload_handle`], to switch `offline`, `lockout`, `debug`
    /// and `access_log` without a restart (see [`crate::reload`]). For options read from
    /// that file and adjusted in code before [`config`](Self::config): the adjustments stay,
    /// and a reload applies only those keys of the file. The file is read (and validated)
    /// now, so that a reload can tell which of its keys changed.
    pub fn reload_config_from(mut self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let (_, file) = ConfigFile::read(path.as_ref())?;
        self.config_file = Some(file);
        Ok(self)
    }

    /// The methods to serve (default: [`Registry::from_inventory`]).
    pub fn registry(mut self, registry: impl Into<Arc<Registry>>) -> Self {
        self.registry = Some(registry.into());
        self
    }

    /// Listens on `addr` (see [`Config::listen`]).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr.into();
        self
    }

    /// Listens on each of `addrs`, every one served alike (see [`Config::listen`]).
    pub fn listen_on(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.config.listen = crate::config::Listen::all(addrs);
        self
    }

    setters! {
        /// See [`Config::io_units`].
        io_units: usize,
        /// See [`Config::workers`].
        workers: usize,
        /// See [`Config::batch_scheduled_workers`].
        batch_scheduled_workers: bool,
        /// See [`Config::max_connections`].
        max_connections: usize,
        /// See [`Config::max_connections_per_ip`].
        max_connections_per_ip: usize,
        /// See [`Config::trusted_proxies`].
        trusted_proxies: Vec<String>,
        /// See [`Config::client_address_header`].
        client_address_header: crate::config::ClientAddressHeader,
        /// See [`Config::max_requests_per_ip_per_sec`].
        max_requests_per_ip_per_sec: u32,
        /// See [`Config::requests_per_ip_burst`].
        requests_per_ip_burst: u32,
        /// See [`Config::max_queue_length`].
        max_queue_length: usize,
        /// See [`Config::max_queue_wait_ms`].
        max_queue_wait_ms: u64,
        /// See [`Config::fast_reject_threshold_ms`].
        fast_reject_threshold_ms: u64,
        /// See [`Config::fast_reject_adjust_rate`].
        fast_reject_adjust_rate: u32,
        /// See [`Config::socket_timeout_ms`].
        socket_timeout_ms: u64,
        /// See [`Config::handler_timeout_ms`].
        handler_timeout_ms: u64,
        /// See [`Config::max_request_length`].
        max_request_length: usize,
        /// See [`Config::max_body_bytes_held`].
        max_body_bytes_held: usize,
        /// See [`Config::stall_warn_ms`].
        stall_warn_ms: u64,
        /// See [`Config::gzip_answers_over`].
        gzip_answers_over: usize,
        /// See [`Config::rpc_paths`].
        rpc_paths: Vec<String>,
        /// See [`Config::stat_interval_secs`].
        stat_interval_secs: u64,
        /// See [`Config::drain_timeout_ms`].
        drain_timeout_ms: u64,
        /// See [`Config::max_multicall_calls`].
        max_multicall_calls: usize,
        /// See [`Config::faults`].
        faults: FaultCodes,
    }

    setters! {
        /// See [`Config::offline`].
        offline: bool,
        /// See [`Config::offline_message`].
        offline_message: String,
        /// See [`Config::lockout`].
        lockout: bool,
        /// See [`Config::lockout_exempt`].
        lockout_exempt: Vec<String>,
        /// See [`Config::debug`].
        debug: bool,
        /// See [`Config::access_log`].
        access_log: bool,
        /// See [`Config::memory_warn_threshold_kib`].
        memory_warn_threshold_kib: u64,
        /// See [`Config::max_upload_length`].
        max_upload_length: u64,
        /// See [`Config::resource_outage_message`].
        resource_outage_message: String,
    }

    /// Serves HTTPS only, with this certificate chain and private key (PEM files); see
    /// [`Config::tls_cert_file`].
    pub fn tls(mut self, cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        self.config.tls_cert_file = Some(cert_file.into());
        self.config.tls_key_file = Some(key_file.into());
        self
    }

    /// Asks clients for certificates signed by these CAs (a PEM file); see
    /// [`Config::tls_client_ca_file`].
    pub fn tls_client_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.tls_client_ca_file = Some(path.into());
        self
    }

    /// Refuses client certificates these CAs revoked (a PEM file of revocation lists); see
    /// [`Config::tls_client_crl_file`].
    pub fn tls_client_crl_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.tls_client_crl_file = Some(path.into());
        self
    }

    setters! {
        /// See [`Config::tls_require_client_cert`].
        tls_require_client_cert: bool,
    }

    /// Runs `setup` once, when the server starts, before the first connection is accepted
    /// (koji's first-call setup: open pools, load plugins, check the schema). If it fails
    /// (or panics), the server starts all the same but offline: every call answers the
    /// `offline` fault "server startup error", and the reason is logged. It stays offline
    /// until it is restarted (koji's rule): neither [`StatusHandle::set_offline`](crate::StatusHandle::set_offline) nor a
    /// config reload brings online handlers whose setup never ran. Setting it again
    /// replaces it.
    ///
    /// ```
    /// let builder = hub_core::Server::builder().setup(|config| {
    ///     if config.workers < 2 {
    ///         return Err("this hub needs two workers".into());
    ///     }
    ///     Ok(())
    /// });
    /// # drop(builder);
    /// ```
    pub fn setup<F>(mut self, setup: F) -> Self
    where
        F: FnOnce(&Config) -> Result<(), BoxError> + Send + 'static,
    {
        self.hooks.setup = Some(Box::new(setup));
        self
    }

    /// Declares a per-request resource `R`, made by `factory` the first time a handler asks
    /// for it with [`Context::resource`], committed when the call succeeds and rolled back
    /// when it faults or panics (see [`crate::resource`]). A factory error answers the
    /// `offline` fault with `resource_outage_message` and is logged. Declaring `R` again
    /// replaces its factory.
    ///
    /// ```
    /// use hub_core::{Fault, RequestResource};
    ///
    /// struct Conn { id: u32 }
    /// impl RequestResource for Conn {
    ///     fn commit(self) -> Result<(), Fault> { Ok(()) }
    ///     fn rollback(self) {}
    /// }
    ///
    /// let builder = hub_core::Server::builder().resource(|ctx| {
    ///     Ok(Conn { id: ctx.request_id() as u32 })
    /// });
    /// # drop(builder);
    /// ```
    pub fn resource<R, F>(self, factory: F) -> Self
    where
        R: RequestResource,
        F: Fn(&Context) -> Result<R, BoxError> + Send + Sync + 'static,
    {
        self.declare(ResourceDef::new(false, factory))
    }

    /// Like [`resource`](Self::resource), but acquired before the handler runs (koji opens
    /// its database connection for every call): a failure answers the outage fault and the
    /// handler does not run.
    pub fn eager_resource<R, F>(self, factory: F) -> Self
    where
        R: RequestResource,
        F: Fn(&Context) -> Result<R, BoxError> + Send + Sync + 'static,
    {
        self.declare(ResourceDef::new(true, factory))
    }

    /// Shares `value` with every handler, which reads it with
    /// [`Context::state::<T>()`](Context::state), by its type: a connection pool, the hub's
    /// settings, a cache. Methods registered at link time (`#[rpc_method]`) cannot capture
    /// anything; this is how they reach what `main` built. One value per type: setting a
    /// type again replaces it. Shared, not per request (a per-request value is a
    /// [`resource`](Self::resource)), so a value that changes needs its own locking or atomics.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    fn declare(mut self, def: ResourceDef) -> Self {
        self.hooks
            .resources
            .retain(|d| d.type_id() != def.type_id());
        self.hooks.resources.push(def);
        self
    }

    /// Identifies callers (see [`crate::auth`]); without one every call is anonymous, and
    /// methods that need a permission are refused.
    pub fn authenticator(self, authenticator: impl Authenticator) -> Self {
        self.authenticate_with(authenticator, false)
    }

    /// Like [`authenticator`](Self::authenticator), for one that blocks (a database lookup
    /// per request, as koji checks its sessions): it runs on the worker pool, not on the IO
    /// unit, so the unit serves its other connections meanwhile.
    ///
    /// A call of a blocking method is authenticated in its own job, on its worker, just
    /// before it runs: it costs no extra trip. Any other request (an async method, a
    /// multicall, an upload) takes one more trip to a worker and back for its lookup (~7 µs
    /// of CPU on the benchmark host, `BENCHMARKS.md`), waiting in the worker queue like a
    /// blocking call: when the queue refuses it, the request is answered `503`.
    pub fn blocking_authenticator(self, authenticator: impl Authenticator) -> Self {
        self.authenticate_with(authenticator, true)
    }

    fn authenticate_with(mut self, authenticator: impl Authenticator, on_workers: bool) -> Self {
        self.hooks.authenticator = Some(AuthHook {
            authenticator: Arc::new(authenticator),
            on_workers,
        });
        self
    }

    /// Handles uploads (`POST` with `Content-Type: application/octet-stream`; see
    /// [`crate::upload`]). Without one, uploads answer a fault.
    pub fn upload<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Upload) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        self.hooks.upload = Some(Arc::new(move |upload| Box::pin(handler(upload))));
        self
    }

    /// Adds the header `name: value` to every response of a request that was read (XML-RPC
    /// answers, uploads, `503` refusals, `/metrics`, `/healthz`, `404`; not the acceptor's
    /// `503` over `max_connections`), e.g. koji's `Koji-Version`, which koji clients read. Setting a
    /// name again replaces its value; [`build`](Self::build) refuses a name or value that is
    /// not valid HTTP.
    ///
    /// ```
    /// let builder = hub_core::Server::builder().response_header("Koji-Version", "1.35.0");
    /// assert!(builder.build().is_ok());
    /// let bad = hub_core::Server::builder().response_header("Koji Version", "1.35.0");
    /// assert!(bad.build().is_err());
    /// ```
    pub fn response_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.response_headers.push((name.into(), value.into()));
        self
    }

    /// Validates the options and builds the server (nothing is bound yet).
    pub fn build(mut self) -> Result<Server, ServerError> {
        self.config.validate()?;
        for (name, value) in std::mem::take(&mut self.response_headers) {
            let name = http::HeaderName::try_from(name.as_str())
                .map_err(|e| ConfigError::key("response_header", format!("`{name}`: {e}")))?;
            let value = http::HeaderValue::try_from(value.as_str())
                .map_err(|e| ConfigError::key("response_header", format!("`{name}`: {e}")))?;
            self.hooks.response_headers.insert(name, value);
        }
        let registry = match self.registry {
            Some(r) => r,
            None => Arc::new(
                Registry::from_inventory().map_err(|e| ServerError::Registry(e.to_string()))?,
            ),
        };
        // Certificate files are read now, so a bad one stops the build, not the first client.
        let tls = crate::tls::acceptor(&self.config)?;
        Ok(Server {
            config: self.config,
            config_file: self.config_file,
            registry,
            hooks: self.hooks,
            tls,
            states: self.states,
        })
    }
}

/// A configured server, not yet started.
#[derive(Debug)]
pub struct Server {
    config: Config,
    config_file: Option<ConfigFile>,
    registry: Arc<Registry>,
    hooks: Hooks,
    tls: Option<crate::tls::Acceptor>,
    states: crate::state::States,
}

impl Server {
    /// A builder starting from the defaults.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The options in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts serving and blocks until SIGTERM or Ctrl-C, then drains and returns.
    pub fn run(self) -> Result<(), ServerError> {
        self.start_inner(true)?.wait();
        Ok(())
    }

    /// Starts serving in background threads (no signal handling: stop it with
    /// [`RunningServer::shutdown`]). The listener is bound when this returns.
    pub fn start(self) -> Result<RunningServer, ServerError> {
        self.start_inner(false)
    }

    /// Like [`Server::run`] but returns at once, with SIGTERM/Ctrl-C handling installed.
    pub fn start_with_signals(self) -> Result<RunningServer, ServerError> {
        self.start_inner(true)
    }

    fn start_inner(self, signals: bool) -> Result<RunningServer, ServerError> {
        let config = self.config;
        crate::fd_limit::raise_for(config.max_connections);
        let mut listeners = crate::systemd::inherited_listeners()?;
        if listeners.is_empty() {
            for addr in config.listen.addrs() {
                listeners.push(crate::acceptor::bind(*addr)?);
            }
        } else {
            tracing::info!(
                sockets = listeners.len(),
                "serving the sockets the service manager passed (LISTEN_FDS), not `listen`"
            );
        }
        let local_addrs = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<io::Result<Vec<_>>>()?;
        let names: Vec<&str> = self.registry.methods().map(|m| m.name()).collect();
        let stats = Arc::new(Stats::new(names));
        let queue = Arc::new(JobQueue::configured(&config, Arc::clone(&stats)));
        let shutdown = ShutdownHandle::new();
        let limits = Limits {
            max_size: config.max_request_length,
            ..Limits::DEFAULT
        };
        let status = StatusHandle::new(
            config.offline,
            config.offline_message.as_str(),
            config.lockout,
        );
        let (setup, hooks, resources) = crate::lifecycle::serving(self.hooks, &config);
        crate::lifecycle::run_setup(setup, &config, &status);
        let calls = crate::dispatch::call_table(&self.registry, &stats);
        let method_budgets = self.registry.methods().any(|m| m.timeout().is_some());
        let aliases = self.registry.alias_map();
        let switches = Arc::new(Switches::new(&config));
        let rate_limit = Arc::new(crate::rate::RateLimit::configured(&config));
        let per_ip = Arc::new(crate::per_ip::PerIp::configured(&config));
        let config_reload = self.config_file.map(|file| {
            let (status, switches) = (status.clone(), Arc::clone(&switches));
            let limits = crate::reload::Limited {
                queue: Arc::clone(&queue),
                rate: Arc::clone(&rate_limit),
                per_ip: Arc::clone(&per_ip),
            };
            ConfigReloadHandle::new(file, status, switches, limits)
        });
        let parts = Arc::new(ServerParts {
            registry: self.registry,
            status: status.clone(),
            faults: config.faults,
            resources,
            states: self.states,
        });
        let liveness = crate::liveness::Liveness::configured(&config).map(Arc::new);
        // Checked by `Config::validate` when the server was built.
        let trusted_proxies = crate::forwarded::TrustedProxies::parse(
            &config.trusted_proxies,
            config.client_address_header,
        )
        .unwrap_or_default();
        let shared = Arc::new(Shared {
            config,
            limits,
            calls,
            method_budgets,
            call_spans: crate::lifecycle::call_spans_on(),
            trusted_proxies,
            rate_limit,
            aliases,
            switches,
            config_reload,
            queue: Arc::clone(&queue),
            stats,
            shutdown: shutdown.clone(),
            status,
            hooks,
            parts,
            tls: self.tls,
            liveness,
            per_ip,
        });
        let workers = crate::worker::spawn(&shared.config, &queue, shared.liveness.as_ref())?;
        let units = (0..shared.config.io_units)
            .map(|i| crate::unit::spawn(i, &shared))
            .collect::<io::Result<Vec<_>>>()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Installed before this returns (and before the caller says it is listening): a
        // SIGTERM sent the moment after must drain, not kill.
        let signals = signals
            .then(|| {
                let reloads = Reloads {
                    tls: tls_reload_handle(&shared),
                    config: shared.config_reload.clone(),
                };
                SignalThread::spawn(shutdown.clone(), reloads)
            })
            .transpose()?;
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("hub-acceptor".to_owned())
                .spawn(move || {
                    rt.block_on(async move {
                        tokio::spawn(stat_lines(Arc::clone(&shared)));
                        if let Some(liveness) = &shared.liveness {
                            tokio::spawn(crate::liveness::monitor(
                                Arc::clone(&shared),
                                Arc::clone(liveness),
                            ));
                        }
                        crate::acceptor::run(listeners, units, shared).await
                    })
                })?
        };
        for addr in &local_addrs {
            tracing::info!(local_addr = %addr, "listening");
        }
        crate::systemd::notify_ready();
        Ok(RunningServer {
            local_addrs,
            shared,
            acceptor: Some(acceptor),
            workers,
            signals,
        })
    }
}

fn tls_reload_handle(shared: &Shared) -> Option<TlsReloadHandle> {
    shared.tls.clone().map(TlsReloadHandle::new)
}

/// Logs a `[SERVER_STAT]` line every `stat_interval_secs` while there is traffic.
async fn stat_lines(shared: Arc<Shared>) {
    let secs = shared.config.stat_interval_secs;
    if secs == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut line = StatLine::default();
    loop {
        tick.tick().await;
        if let Some(l) = line.next(&shared.stats) {
            tracing::info!("{l}");
        }
    }
}

/// A server running in background threads. Dropping it starts a graceful shutdown, which
/// a thread of its own finishes (the drain, then the workers); call [`RunningServer::wait`]
/// to wait for it.
#[derive(Debug)]
pub struct RunningServer {
    /// Every address served; the first is the one [`RunningServer::local_addr`] gives.
    local_addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<Vec<JoinHandle<()>>>>,
    workers: Vec<JoinHandle<()>>,
    /// Listening for signals, when started with them; until [`RunningServer::wait`] is done.
    signals: Option<SignalThread>,
}

impl RunningServer {
    /// The address actually bound (useful with port 0); under socket activation, the first
    /// socket's.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// Every address served: `listen`, or each socket the service manager passed.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// A handle that starts the graceful shutdown from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shared.shutdown.clone()
    }

    /// Reloads the TLS files while serving (`None` for a plain HTTP server). A server
    /// started with signals also reloads them on `SIGHUP`.
    pub fn tls_reload_handle(&self) -> Option<TlsReloadHandle> {
        tls_reload_handle(&self.shared)
    }

    /// Reads the config file again while serving (`None` for a server not built with
    /// [`ServerBuilder::config_file`]). A server started with signals also does on `SIGHUP`.
    pub fn config_reload_handle(&self) -> Option<ConfigReloadHandle> {
        self.shared.config_reload.clone()
    }

    /// The availability switch: take the server offline, or lock it out, at run time.
    pub fn status(&self) -> StatusHandle {
        self.shared.status.clone()
    }

    /// The live statistics.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Starts the graceful shutdown and waits for it to finish.
    pub fn shutdown(self) {
        self.shared.shutdown.shutdown();
        self.wait();
    }

    /// Waits until the server has shut down (after a signal or a [`ShutdownHandle`]):
    /// the acceptor stops, units drain their connections within `drain_timeout_ms`, then
    /// the workers finish the jobs already queued (answered or skipped) and stop.
    pub fn wait(mut self) {
        if let Some(threads) = self.take_threads() {
            threads.finish();
        }
    }

    fn take_threads(&mut self) -> Option<Threads> {
        Some(Threads {
            shared: Arc::clone(&self.shared),
            acceptor: self.acceptor.take()?,
            workers: std::mem::take(&mut self.workers),
            signals: self.signals.take(),
        })
    }
}

/// What a running server's shutdown waits for.
struct Threads {
    shared: Arc<Shared>,
    acceptor: JoinHandle<Vec<JoinHandle<()>>>,
    workers: Vec<JoinHandle<()>>,
    signals: Option<SignalThread>,
}

impl Threads {
    /// Joins the acceptor, then the units within the drain deadline, then stops the workers.
    fn finish(self) {
        let units = self.acceptor.join().unwrap_or_default();
        // The units' drain deadline starts when they see the acceptor hang up.
        let now = Instant::now();
        // A drain too long for the clock (`u64::MAX` ms, where `Instant` counts nanoseconds in
        // a `u64`) is a century.
        let deadline = now
            .checked_add(self.shared.config.drain_timeout() + Duration::from_millis(200))
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        let shutdown = &self.shared.shutdown;
        let hurried = || shutdown.is_hurried();
        for unit in units {
            crate::worker::join_until(unit, deadline, &hurried);
        }
        let mut workers = self.workers;
        // The monitor that starts stand-ins ended with the acceptor: none starts after this.
        if let Some(liveness) = &self.shared.liveness {
            workers.extend(liveness.take_stand_ins());
        }
        crate::worker::stop(&self.shared.queue, workers, deadline, &hurried);
        if let Some(signals) = self.signals {
            signals.stop();
        }
        tracing::info!("server stopped");
    }
}

impl Drop for RunningServer {
    /// Starts the graceful shutdown and leaves a thread to finish it: the workers only stop
    /// when told, after the drain (without it, each dropped server kept them for good).
    fn drop(&mut self) {
        let Some(threads) = self.take_threads() else {
            return;
        };
        self.shared.shutdown.shutdown();
        let spawned = std::thread::Builder::new()
            .name("hub-shutdown".into())
            .spawn(move || threads.finish());
        if let Err(err) = spawned {
            tracing::warn!(%err, "no thread to finish the shutdown: the workers stay");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::ClientAddressHeader;

    #[test]
    fn the_builder_s_setters_reach_the_config() {
        let server = Server::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .trusted_proxies(vec!["10.0.0.0/8".to_owned()])
            .client_address_header(ClientAddressHeader::Forwarded)
            .access_log(true)
            .handler_timeout_ms(250)
            .build()
            .unwrap();
        let c = server.config();
        assert_eq!(c.trusted_proxies, ["10.0.0.0/8"]);
        assert_eq!(c.client_address_header, ClientAddressHeader::Forwarded);
        assert!(c.access_log);
        assert_eq!(c.handler_timeout_ms, 250);
        // Checked as a file's would be: a revocation list needs the CAs it revokes for.
        let e = Server::builder()
            .tls("server.pem", "server.key")
            .tls_client_crl_file("ca.crl")
            .build()
            .err()
            .unwrap();
        assert!(e.to_string().contains("tls_client_crl_file"), "{e}");
    }
}
