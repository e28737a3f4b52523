//! `hub`: a framework for XML-RPC hub services, in the manner of koji-hub.
//!
//! A method is a Rust function with an attribute. Its parameters are decoded
//! from the call, its result encoded into the response, its doc comment becomes
//! its help text, and it is registered at link time: there is no registration
//! code to write and no table to keep in sync.
//!
//! # A guided tour
//!
//! ## 1. Declaring methods
//!
//! ```
//! use hub::{rpc_method, Context, Fault};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Build {
//!     pub id: i64,
//!     pub nvr: String,
//! }
//!
//! /// Returns the build with this id.
//! ///
//! /// With `strict`, an unknown id is a fault instead of nil.
//! #[rpc_method(name = "getBuild")]
//! fn get_build(build_id: i64, strict: Option<bool>) -> Result<Option<Build>, Fault> {
//!     if build_id == 1 {
//!         return Ok(Some(Build { id: 1, nvr: "bash-5.2-1".into() }));
//!     }
//!     if strict.unwrap_or(false) {
//!         return Err(Fault::new(1000, format!("no such build: {build_id}")));
//!     }
//!     Ok(None)
//! }
//!
//! /// Who is asking: the first parameter may be the request's context.
//! #[rpc_method(perm = "admin")]
//! async fn whoami(ctx: &Context) -> String {
//!     format!("{:?}", ctx.peer())
//! }
//! # fn main() {}
//! ```
//!
//! The rules, checked at compile time with an error on the offending token:
//! - a free `fn` or `async fn`, not generic (over lifetimes neither), not
//!   `const`/`unsafe`/`extern`;
//! - an optional first parameter `&Context`, recognised by its type name `Context`
//!   (not through a type alias or a `use .. as` rename; a type of your own named
//!   `Context` is decoded if imported under another name);
//! - every other parameter a plain name and an owned type that implements
//!   `serde::Deserialize`, with no `&` anywhere in it (take `String`, not `&str`;
//!   `Option<String>`, not `Option<&str>`; `Cow<'_, str>` is decoded owned) and no
//!   `impl Trait` (name the type). Callers pass parameters
//!   by position or, with koji's `__starstar` convention, by name; trailing
//!   `Option<T>` parameters may be omitted;
//! - no `#[cfg]` or `#[cfg_attr]` on a parameter (write a function per configuration,
//!   or take an `Option<T>`);
//! - a result that implements `serde::Serialize` (`()` and `None` answer nil), or
//!   `Result<T, E>` with `E: Into<Fault>`: the fault keeps its own code; a named type,
//!   with no `impl Trait` in it.
//!
//! See [`rpc_method`] for the attribute's arguments.
//!
//! ## 2. The registry
//!
//! [`Registry::from_inventory`] collects every `#[rpc_method]` linked into the
//! binary, plus the built-in introspection methods, and refuses two methods with
//! one name, naming both source locations. The server does this at startup.
//!
//! ```
//! use hub::{rpc_method, Registry};
//!
//! /// Adds two numbers.
//! #[rpc_method]
//! fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! let registry = Registry::from_inventory()?;
//! let add = registry.get("add").expect("registered at link time");
//! assert_eq!(add.signature(), ["int", "int", "int"]);
//! assert_eq!(add.doc(), "Adds two numbers.");
//! assert!(registry.names().any(|name| name == "system.listMethods"));
//! # Ok::<(), hub::RegistryError>(())
//! ```
//!
//! ## 3. Calling a method
//!
//! The engine calls methods through [`Method::call_blocking`] and
//! [`Method::call_async`]; tests can do the same. Arguments arrive as
//! [`Params`]: positional values and, optionally, keyword values.
//!
//! ```
//! use std::sync::Arc;
//! use hub::{rpc_method, Context, Params, Registry, RpcError, Struct, Value};
//!
//! #[rpc_method]
//! fn greet(name: String, punctuation: Option<String>) -> String {
//!     format!("Hello, {name}{}", punctuation.unwrap_or_else(|| "!".into()))
//! }
//!
//! let registry = Arc::new(Registry::from_inventory()?);
//! let ctx = Context::new("greet", None, Default::default(), 1, registry.clone());
//! let greet = registry.get("greet").expect("registered");
//!
//! let positional = Params { positional: vec![Value::from("koji")], named: None };
//! assert_eq!(greet.call_blocking(&ctx, positional), Ok(Value::from("Hello, koji!")));
//!
//! let mut named = Struct::new();
//! named.insert("punctuation", "?");
//! let keyword = Params { positional: vec![Value::from("koji")], named: Some(named) };
//! assert_eq!(greet.call_blocking(&ctx, keyword), Ok(Value::from("Hello, koji?")));
//!
//! let mistyped = Params { positional: vec![Value::from(7)], named: None };
//! assert_eq!(
//!     greet.call_blocking(&ctx, mistyped),
//!     Err(RpcError::InvalidParams(
//!         "params[0]: expected string, found int 7 (parameter `name`)".into()
//!     )),
//! );
//! # Ok::<(), hub::RegistryError>(())
//! ```
//!
//! ## 4. Registering at run time
//!
//! Plugins and generated APIs register closures through [`Registry::builder`];
//! the same duplicate check applies, and such methods are described by the same
//! introspection.
//!
//! ```
//! use hub::{Method, Registry, Value};
//!
//! let registry = Registry::builder()
//!     .with_inventory()
//!     .method(
//!         Method::blocking("plugin.version", |_ctx, _params| Ok(Value::from(3)))
//!             .with_doc("The plugin's API version.")
//!             .with_returns("int"),
//!     )
//!     .build()?;
//! assert_eq!(registry.get("plugin.version").map(|m| m.signature()), Some(vec!["int"]));
//! # Ok::<(), hub::RegistryError>(())
//! ```
//!
//! ## 5. Introspection
//!
//! Every registry serves `system.listMethods`, `system.methodHelp` (koji's
//! `name(args)` then `description: doc`), `system.methodSignature` (the result
//! type then each parameter's type, one signature per accepted arity) and koji's
//! `_listapi` (`{name, doc, argdesc, args}` per method).
//!
//! ## 6. Shared state and per-request resources
//!
//! A method registered at link time captures nothing. What `main` builds for all of them (a
//! connection pool, the hub's settings) is the server's shared state: set with
//! [`ServerBuilder::state`], read by its type with [`Context::state`]. What each call needs
//! of its own (a database transaction, committed when the call succeeds and rolled back when
//! it faults or panics) is a resource: [`ServerBuilder::resource`], [`Context::resource`].
//!
//! ```
//! use std::path::PathBuf;
//! use hub::{rpc_method, Context, Fault, Registry, Server};
//!
//! /// The hub's settings, shared by every method.
//! struct Settings {
//!     work_dir: PathBuf,
//! }
//!
//! /// Where uploads go.
//! #[rpc_method(name = "getWorkDir")]
//! fn get_work_dir(ctx: &Context) -> Result<String, Fault> {
//!     Ok(ctx.state::<Settings>()?.work_dir.display().to_string())
//! }
//!
//! let builder = Server::builder().state(Settings { work_dir: "/mnt/koji/work".into() });
//! # drop(builder);
//! // A handler is tested on a context given the same state.
//! let registry = std::sync::Arc::new(Registry::builder().build()?);
//! let ctx = Context::new("getWorkDir", None, Default::default(), 1, registry)
//!     .with_state(Settings { work_dir: "/tmp/work".into() });
//! assert_eq!(get_work_dir(&ctx)?, "/tmp/work");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## 7. HTTPS and who is calling
//!
//! With a certificate and its key the listener speaks TLS only (the `tls` feature, on by
//! default); with `tls_client_ca_file` it also asks clients for certificates, as koji's
//! `ssl_login` presents them. The one it verified reaches the [`Authenticator`] on every
//! request of the connection, and each handler through [`Context::client_cert`] (a login on
//! behalf of another user by a trusted front end decides by it); which user it is, and what
//! that user may do, is yours to say.
//! Renewed files are read again on `SIGHUP` (or through [`TlsReloadHandle`]), without a
//! restart, and so are the CAs' revocation lists if given (`tls_client_crl_file`): a revoked
//! certificate is refused.
//!
//! An authenticator runs on the IO unit, so it must be quick (a certificate's name, the
//! in-memory [`SessionStore`], whose sessions can expire and be renewed as koji's are:
//! [`SessionStore::with_lifetime`]). One that looks sessions up in a database is set with
//! [`ServerBuilder::blocking_authenticator`] instead: it runs on the worker pool, as a
//! blocking handler does (`examples/buildhub` keeps koji's sessions in SQLite that way, so
//! they outlive a restart).
//!
//! ```no_run
//! use hub::{AuthFailure, AuthRequest, Authenticator, Caller, Server};
//!
//! /// koji's `DNUsernameComponent = CN`: the certificate's common name is the user.
//! struct ByCertificate;
//!
//! impl Authenticator for ByCertificate {
//!     fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure> {
//!         Ok(req.client_cert.and_then(|cert| cert.common_name()).map(Caller::new))
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! Server::builder()
//!     .tls("/etc/hub/server.pem", "/etc/hub/server.key")
//!     .tls_client_ca_file("/etc/hub/clients-ca.pem")
//!     .tls_client_crl_file("/etc/hub/clients-ca.crl")
//!     .authenticator(ByCertificate)
//!     .build()?
//!     .run()?;
//! # Ok(()) }
//! ```
//!
//! ## 8. Running as a service
//!
//! [`Server::run`] serves until SIGTERM or Ctrl-C, then drains: every call already read is
//! answered within `drain_timeout_ms`, and a second signal stops at once. Under systemd it
//! serves the sockets a socket unit passes (`LISTEN_FDS`), so a restart refuses no call, and
//! tells systemd `READY=1`, `STOPPING=1` and, under `WatchdogSec=`, `WATCHDOG=1` while every
//! IO unit runs and some worker is free of calls nobody waits for. An async handler that
//! blocks its unit's thread is warned about by name after `stall_warn_ms`; a blocking one
//! still running past its caller's `handler_timeout_ms` is warned about, and its worker gets
//! a stand-in.
//!
//! Built from a file ([`ServerBuilder::config_file`]), the server reads it again on SIGHUP
//! (or through [`ConfigReloadHandle`]) and switches `offline`, `lockout`, `debug` and
//! `access_log` without a restart, as koji's admins edit `hub.conf`, and retunes
//! `handler_timeout_ms`, `max_queue_wait_ms`, `memory_warn_threshold_kib` and
//! `gzip_answers_over` for the calls that follow; the keys only a restart applies are named
//! in the log. The same controls are there for a server embedded in a
//! program:
//!
//! ```no_run
//! use hub::Server;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .stall_warn_ms(500)
//!     .max_body_bytes_held(256 << 20)
//!     .build()?
//!     .start_with_signals()?;
//! let stop = server.shutdown_handle();
//! // ... from anywhere: `stop.shutdown()` drains, `stop.shutdown_now()` does not wait.
//! # stop.shutdown();
//! server.wait();
//! # Ok(()) }
//! ```
//!
//! ## 9. Calling a hub
//!
//! [`client::Client`] calls any XML-RPC server, and speaks koji's dialect to a hub: typed
//! calls and keyword arguments, a session opened by [`koji_login`](client::Client::koji_login)
//! (each call numbered, renewed by logging in again when it expires), koji's chunked upload,
//! and retries that cannot run a call twice: a `503` is sent again after its `Retry-After`
//! (the hub did not run it), a call cut off in a session with its own number (the hub refuses
//! a replay), a call to a hub taken offline once it is back. [`client::blocking::Client`] is the same for code that is not async; the
//! `call` example is a command line over it.
//!
//! ```no_run
//! use std::time::Duration;
//! use hub::client::{Client, UploadOptions};
//!
//! # async fn run() -> Result<(), hub::client::Error> {
//! let hub = Client::new("https://koji.example.org/kojihub")?
//!     .timeout(Duration::from_secs(60))
//!     .retry_busy(5, Duration::from_secs(10))
//!     .retry_transport(30, Duration::from_secs(20))
//!     .retry_offline(Duration::from_secs(20), Duration::from_secs(3600))
//!     .koji_login("alice", "secret")
//!     .await?;
//! let build_id: i64 = hub.call("createBuild", ("bash", "5.2.15", "3.fc40")).await?;
//! hub.koji_upload("bash-5.2.15-3.fc40.src.rpm", "cli-build/1", &UploadOptions::new())
//!     .await?;
//! # let _ = build_id;
//! hub.koji_logout().await?;
//! # Ok(()) }
//! ```
//!
//! # Crates
//! `hub` is the crate to depend on. It re-exports the codec ([`xmlrpc`]), the
//! engine ([`core`]) and the attribute, and the code `#[rpc_method]` generates
//! reaches them through `hub` alone.

pub use hub_core as core;
pub use hub_xmlrpc as xmlrpc;

/// The XML-RPC client: typed calls, keyword arguments, multicall, kept-alive connections,
/// timeouts, busy retries, koji's sessions and uploads (async, and [`client::blocking`]).
pub use hub_core::client;

/// Makes a free `fn` or `async fn` an XML-RPC method, registered at link time.
///
/// # Arguments
/// - `name = "getBuild"`: the XML-RPC method name (default: the function's name).
///   Letters, digits, `_`, `.`, `:` and `/` only, in the default name too.
/// - `aliases = ["get_build", "build.get"]`: more names the method answers to, such as an
///   old name kept for old clients ([`Method::aliases`]). A call by an alias runs the method,
///   is authenticated, admitted and counted as the method, and logs its name; introspection
///   lists each alias as a method of its own, as koji does. An alias taken by another
///   method is refused at startup like a duplicate name.
/// - `perm = "admin"`: the permission a caller needs ([`Method::perm`]); the
///   request lifecycle enforces it. Not empty, without leading or trailing whitespace.
/// - `sensitive`: the arguments carry secrets (a password) and are never logged
///   ([`Method::is_sensitive`]).
/// - `timeout_ms = 600000`: the method's own time budget, in place of the server's
///   `handler_timeout_ms` (longer for a call that legitimately runs long); `0`: none
///   ([`Method::with_timeout`]).
///
/// - `max_in_flight = 4`: at most this many of its calls run at once; one more is refused
///   at once (`503` + `Retry-After`; in a multicall, that entry's fault) instead of waiting
///   for a worker, so a slow method cannot hold every worker ([`Method::with_max_in_flight`]).
///
/// Unknown or repeated keys are errors that list the valid keys.
///
/// The doc comment is the method's help text (`system.methodHelp`), `#[doc = include_str!(..)]`
/// and `#[doc = concat!(..)]` included: their text is put in as it expands (a file's final
/// newline too), joined to the other lines by newlines as rustdoc joins them.
///
/// # What is generated
/// The function itself is left as written, so it stays callable and testable.
/// Beside it, in an anonymous `const _: () = { ... };`, the attribute adds a
/// wrapper that decodes the parameters and encodes the result, a static table of
/// the parameters, and an `inventory` submission of a [`MethodDef`] carrying the
/// name and aliases, doc comment, parameter and result types, permission, secrecy, time
/// budget, limit of calls at once, and source location. A `#[cfg]` below the attribute
/// applies to all of it too.
///
/// Methods declared in a library crate are registered only if the binary links
/// that crate: rustc drops an `--extern` crate nothing refers to, and its
/// methods with it. Refer to any item of it, or write `use that_crate as _;`.
///
/// # Example
/// ```
/// use hub::{rpc_method, Context};
///
/// /// Says hello.
/// #[rpc_method(name = "hello")]
/// fn hello(_ctx: &Context) -> &'static str {
///     "Hello World"
/// }
///
/// // Still an ordinary function.
/// # let registry = std::sync::Arc::new(hub::Registry::default());
/// # let ctx = Context::new("hello", None, Default::default(), 0, registry);
/// assert_eq!(hello(&ctx), "Hello World");
/// ```
#[doc(inline)]
pub use hub_macros::rpc_method;

pub use hub_core::params::Args;
pub use hub_core::registry::{
    DuplicateMethod, Handler, Method, MethodDef, Origin, ParamDef, ParamInfo, Params, Registry,
    RegistryBuilder, RegistryError, RpcError,
};
pub use hub_core::Context;
pub use hub_core::{
    AuthFailure, AuthRequest, Authenticator, Caller, ClientAddressHeader, ClientCert, Config,
    ConfigError, ConfigReloadHandle, FaultCodes, RequestResource, ResourceGuard, RunningServer,
    Server, ServerBuilder, ServerError, SessionHeaders, SessionStore, ShutdownHandle, StatusHandle,
    TlsReloadHandle, Upload, UploadBody, UploadError,
};
pub use hub_xmlrpc::{DateTime, Fault, Struct, Value};

/// serde, for `#[derive(Serialize, Deserialize)]` on parameter and result types
/// without a direct dependency (add `#[serde(crate = "hub::serde")]` to such derives).
pub use serde;

/// What `#[rpc_method]` expansions name. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use hub_core::params::{
        require_send, Args, DecodeParam, EncodeReturn, IntoRpcError, ProbeByDeserialize,
        ProbeFallback, TypeProbe,
    };
    pub use hub_core::registry::{BoxFuture, Handler, MethodDef, ParamDef, Params, RpcError};
    pub use hub_core::Context;
    pub use hub_xmlrpc::Value;
    pub use inventory;
    pub use std::sync::Arc;
}
