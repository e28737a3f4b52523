//! The engine of `hub`. Users reach it through the `hub` facade crate.
//!
//! Layout (one concept per module):
//! - [`registry`]: the table of methods, filled at link time by `#[rpc_method]` and at run time.
//! - [`context`]: what one request carries through its handler.
//! - `acceptor`, `unit`, `queue`, `worker`: the half-sync/half-async engine.
//! - `lifecycle`: what every request goes through, from setup to teardown.

mod acceptor;
pub mod config;
mod conn;
pub mod context;
mod dispatch;
mod introspection;
mod multicall;
pub mod params;
pub mod qos;
pub mod queue;
pub mod registry;
pub mod server;
mod service;
pub mod shutdown;
pub mod stats;
mod unit;
mod worker;

pub use config::{Config, ConfigError, FaultCodes};
pub use context::Context;
pub use registry::{Handler, MethodDef, ParamDef, Params, Registry, RpcError};
pub use server::{RunningServer, Server, ServerBuilder, ServerError};
pub use shutdown::ShutdownHandle;
