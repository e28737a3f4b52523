//! The per-request context handed to every method.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hub_xmlrpc::Fault;

use crate::auth::Caller;
use crate::config::FaultCodes;
use crate::registry::Registry;
use crate::resource::{RequestResource, ResourceGuard, ResourceScope, Resources};
use crate::status::StatusHandle;

/// What one request carries through its handler: who called, what, when, and the
/// per-request resources.
///
/// A context is created before dispatch and torn down after the call, whatever happened in
/// between: its resources are committed or rolled back, then released. It is never reused;
/// each entry of a `system.multicall` has its own.
///
/// ```
/// use hub_core::{Context, Fault, RpcError};
///
/// /// An admin method that takes the server offline, as koji's config switch would.
/// fn go_offline(ctx: &Context, message: String) -> Result<(), RpcError> {
///     ctx.require_perm("admin")?;
///     ctx.status().go_offline(message);
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Context {
    method: String,
    peer: Option<SocketAddr>,
    headers: http::HeaderMap,
    request_id: u64,
    started: Instant,
    registry: Arc<Registry>,
    extensions: http::Extensions,
    params_len: usize,
    caller: Option<Arc<Caller>>,
    status: StatusHandle,
    faults: FaultCodes,
    resources: ResourceScope,
}

impl Context {
    /// Creates a context for one call of `method`.
    pub fn new(
        method: impl Into<String>,
        peer: Option<SocketAddr>,
        headers: http::HeaderMap,
        request_id: u64,
        registry: Arc<Registry>,
    ) -> Self {
        Self {
            method: method.into(),
            peer,
            headers,
            request_id,
            started: Instant::now(),
            registry,
            extensions: http::Extensions::new(),
            params_len: 0,
            caller: None,
            status: StatusHandle::default(),
            faults: FaultCodes::default(),
            resources: ResourceScope::new(Resources::default()),
        }
    }

    /// Sets the caller (the server does this from its authenticator; tests may too).
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = Some(Arc::new(caller));
        self
    }

    /// A context as the server makes it, built once with the server's status handle, fault
    /// codes and resources (no defaults made and dropped).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn serving(
        method: String,
        peer: Option<SocketAddr>,
        headers: http::HeaderMap,
        request_id: u64,
        registry: Arc<Registry>,
        params_len: usize,
        caller: Option<Arc<Caller>>,
        status: StatusHandle,
        faults: FaultCodes,
        resources: Resources,
    ) -> Self {
        Self {
            method,
            peer,
            headers,
            request_id,
            started: Instant::now(),
            registry,
            extensions: http::Extensions::new(),
            params_len,
            caller,
            status,
            faults,
            resources: ResourceScope::new(resources),
        }
    }

    /// The number of arguments (positional, plus one per keyword argument).
    pub fn params_len(&self) -> usize {
        self.params_len
    }

    /// Who is calling, as the server's [`Authenticator`](crate::auth::Authenticator) said;
    /// `None` for an anonymous call.
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_deref()
    }

    /// `Ok` if the caller holds `perm` (or `admin`); else the `permission` fault, which a
    /// handler returns with `?`. For checks that depend on the arguments; a method's own
    /// permission is enforced before it runs.
    pub fn require_perm(&self, perm: &str) -> Result<(), Fault> {
        crate::auth::check_perm(Some(perm), self.caller(), &self.faults)
    }

    /// The server's availability switch: an admin method can take the server offline or
    /// lock it out (and back) through it.
    pub fn status(&self) -> &StatusHandle {
        &self.status
    }

    /// The server's fault code table.
    pub fn fault_codes(&self) -> &FaultCodes {
        &self.faults
    }

    /// This call's resource of type `R` (see [`crate::resource`]), acquired now if it was
    /// declared lazy and not yet acquired. It is committed if the call succeeds and rolled back
    /// if it faults or panics. A failed acquisition is the `offline` fault (koji's "database
    /// outage"): return it with `?`.
    ///
    /// ```
    /// use hub_core::resource::RequestResource;
    /// use hub_core::{Context, Fault, RpcError};
    ///
    /// struct Tx(Vec<&'static str>);
    /// impl RequestResource for Tx {
    ///     fn commit(self) -> Result<(), Fault> { Ok(()) }
    ///     fn rollback(self) {}
    /// }
    ///
    /// fn tag_build(ctx: &Context) -> Result<(), RpcError> {
    ///     let mut tx = ctx.resource::<Tx>()?;
    ///     tx.0.push("INSERT INTO tag_listing ...");
    ///     Ok(())
    /// }
    ///
    /// let builder = hub_core::Server::builder().resource(|_ctx| Ok(Tx(Vec::new())));
    /// # drop(builder);
    /// ```
    pub fn resource<R: RequestResource>(&self) -> Result<ResourceGuard<'_, R>, Fault> {
        self.resources.get::<R>(self)
    }

    pub(crate) fn resource_scope(&self) -> &ResourceScope {
        &self.resources
    }

    /// The XML-RPC method name being called.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The client's address, when the call came over a socket.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The HTTP request headers.
    pub fn headers(&self) -> &http::HeaderMap {
        &self.headers
    }

    /// A number unique to this request within the process.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// When the request entered the lifecycle.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The registry serving this call (introspection uses it).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Typed per-request values set by hooks (a database connection, the caller's identity).
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    /// Mutable access to the typed per-request values.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.extensions
    }
}
