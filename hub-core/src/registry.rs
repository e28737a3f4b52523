//! The method registry: filled at link time by `#[rpc_method]` through `inventory`,
//! and at run time through [`Registry::builder`].
//!
//! CONTRACT (shared by hub-macros, the engine and the lifecycle; change only together):
//! the types in this file above the `Registry` section.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hub_xmlrpc::{Fault, Struct, Value};

use crate::context::Context;

/// A boxed, sendable future: what async handlers return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The arguments of one call, after koji's keyword-argument convention was applied:
/// a trailing struct with `__starstar = true` is split off into `named`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    /// Positional arguments, in order.
    pub positional: Vec<Value>,
    /// Keyword arguments (the `__starstar` member removed), if the caller sent any.
    pub named: Option<Struct>,
}

/// Why a handler did not produce a value. The lifecycle maps each kind to a fault
/// code from the configured fault table; `Fault` keeps its own code.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcError {
    /// The arguments did not fit the method's signature (missing, surplus, unknown
    /// keyword, or mistyped). The message names the parameter and the expected type.
    InvalidParams(String),
    /// An application fault: sent to the client with its own code.
    Fault(Fault),
}

impl From<Fault> for RpcError {
    fn from(fault: Fault) -> Self {
        RpcError::Fault(fault)
    }
}

/// How a method runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// A plain `fn`: runs on the worker pool (thread mode) and may block.
    Blocking(fn(&Context, Params) -> Result<Value, RpcError>),
    /// An `async fn`: runs as a task on an IO unit (coroutine mode) and must not block.
    Async(fn(Arc<Context>, Params) -> BoxFuture<Result<Value, RpcError>>),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handler::Blocking(_) => "Handler::Blocking",
            Handler::Async(_) => "Handler::Async",
        })
    }
}

/// One declared parameter of a method (the context parameter is not listed).
#[derive(Debug, Clone, Copy)]
pub struct ParamDef {
    /// The Rust parameter name; also its keyword-argument name.
    pub name: &'static str,
    /// The parameter's Rust type as written, for help text.
    pub rust_type: &'static str,
    /// `true` for a trailing `Option<T>`: may be omitted.
    pub optional: bool,
    /// The XML-RPC type name (`int`, `struct`, ...) derived from the Rust type.
    pub xmlrpc_type: fn() -> &'static str,
}

/// A method declared with `#[rpc_method]`, submitted to `inventory` at link time.
#[derive(Debug)]
pub struct MethodDef {
    /// The XML-RPC method name.
    pub name: &'static str,
    /// The doc comment, used as help text.
    pub doc: &'static str,
    /// The parameters, context excluded.
    pub params: &'static [ParamDef],
    /// The XML-RPC type name of the result.
    pub returns: fn() -> &'static str,
    /// The permission a caller needs, if any (`admin` satisfies every permission).
    pub perm: Option<&'static str>,
    /// The code that decodes the parameters and runs the function.
    pub handler: Handler,
    /// Where the function is declared, for duplicate-name errors.
    pub file: &'static str,
    /// The line of the declaration.
    pub line: u32,
}

inventory::collect!(MethodDef);

// ---- Registry (owned by the registry work; the engine only calls `get`) ----

/// The methods a server serves.
#[derive(Debug, Default)]
pub struct Registry {}

// The engine relies on exactly this surface of the registry (the registry work
// provides the bodies and everything else: builder, inventory collection,
// duplicate detection, built-in introspection methods):
//
//   impl Registry {
//       /// Every `#[rpc_method]` in the binary plus the built-ins; errors on duplicates.
//       pub fn from_inventory() -> Result<Registry, RegistryError>;
//       pub fn builder() -> RegistryBuilder;      // run-time registration
//       pub fn get(&self, name: &str) -> Option<&Arc<Method>>;
//       pub fn names(&self) -> impl Iterator<Item = &str>;
//   }
//   impl Method {
//       pub fn name(&self) -> &str;
//       pub fn perm(&self) -> Option<&str>;
//       pub fn is_blocking(&self) -> bool;
//       /// Runs the handler on the calling thread (an async one is driven to completion
//       /// only if it is ready; callers use `call_async` for those).
//       pub fn call_blocking(&self, ctx: &Context, params: Params) -> Result<Value, RpcError>;
//       /// Runs the handler as a future (a blocking one runs inline when polled).
//       pub fn call_async(&self, ctx: Arc<Context>, params: Params) -> BoxFuture<Result<Value, RpcError>>;
//   }
