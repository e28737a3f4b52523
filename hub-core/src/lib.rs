//! The engine of `hub`. Users reach it through the `hub` facade crate.
//!
//! Layout (one concept per module):
//! - [`registry`]: the table of methods, filled at link time by `#[rpc_method]` and at run time.
//! - [`context`]: what one request carries through its handler.
//! - `acceptor`, `unit`, `queue`, `worker`: the half-sync/half-async engine.
//! - `lifecycle`: what every request goes through, from setup to teardown.

pub mod context;
mod introspection;
pub mod params;
pub mod registry;

pub use context::Context;
pub use registry::{Handler, MethodDef, ParamDef, Params, Registry, RpcError};
