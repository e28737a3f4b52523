//! The engine of `hub`. Users reach it through the `hub` facade crate.
//!
//! Layout (one concept per module):
//! - [`registry`]: the table of methods, filled at link time by `#[rpc_method]` and at run time.
//! - [`context`]: what one request carries through its handler.
//! - `acceptor`, `unit`, `queue`, `worker`: the half-sync/half-async engine.
//! - [`lifecycle`]: what every request goes through, from setup to teardown, with its hooks:
//!   [`auth`] and [`session`] (who calls, permissions), [`resource`] (per-request resources
//!   committed or rolled back), [`upload`] (streamed uploads), [`status`] (offline, lockout),
//!   [`reload`] (the config file read again), `watch` (memory watch and call log), `access`
//!   (the access log), `in_flight` (a method's limit on its calls at once).
//! - [`tls`] (feature `tls`): HTTPS listeners, and the client certificate the authenticator
//!   sees (checked against revocation lists if given); `transport` is the stream under hyper,
//!   TCP or TLS; `forwarded` the client's address behind a trusted proxy; `per_ip` and `rate`
//!   each client's connections and request rate.
//! - [`client`]: the XML-RPC client (koji's sessions, uploads, retries); `connector` how it
//!   connects.

mod acceptor;
mod access;
mod answer;
pub mod auth;
mod body;
pub mod client;
pub mod config;
mod conn;
mod connector;
pub mod context;
mod dispatch;
mod encoding;
mod fd_limit;
mod forwarded;
mod header_map;
mod in_flight;
mod introspection;
pub mod lifecycle;
mod liveness;
mod memory;
mod multicall;
pub mod params;
mod payload;
mod per_ip;
pub mod qos;
pub mod queue;
mod rate;
pub mod registry;
pub mod reload;
pub mod resource;
pub mod server;
mod service;
pub mod session;
pub mod shutdown;
mod signals;
mod state;
pub mod stats;
pub mod status;
mod systemd;
mod text;
pub mod tls;
mod transport;
mod unit;
pub mod upload;
mod watch;
mod worker;

pub use auth::{AuthFailure, AuthRequest, Authenticator, Caller};
pub use config::{ClientAddressHeader, Config, ConfigError, FaultCodes};
pub use context::Context;
pub use hub_xmlrpc::{Fault, Struct, Value};
pub use registry::{Handler, MethodDef, ParamDef, Params, Registry, RpcError};
pub use reload::ConfigReloadHandle;
pub use resource::{RequestResource, ResourceGuard};
pub use server::{RunningServer, Server, ServerBuilder, ServerError};
pub use session::{SessionHeaders, SessionStore};
pub use shutdown::ShutdownHandle;
pub use status::StatusHandle;
pub use tls::{ClientCert, TlsReloadHandle};
pub use upload::{Upload, UploadBody, UploadError};

/// The worker pool without a server, for the end-to-end bench's thread-mode peer; not part of
/// the API.
#[doc(hidden)]
pub use worker::StandalonePool;
