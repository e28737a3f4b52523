//! The per-request context handed to every method.

use std::borrow::Cow;
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use hub_xmlrpc::Fault;

use crate::auth::Caller;
use crate::config::FaultCodes;
use crate::registry::Registry;
use crate::resource::{RequestResource, ResourceGuard, ResourceScope, Resources};
use crate::state::States;
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
    method: Cow<'static, str>,
    peer: Option<SocketAddr>,
    headers: http::HeaderMap,
    request_id: u64,
    started: Instant,
    server: Arc<ServerParts>,
    extensions: http::Extensions,
    params_len: usize,
    caller: Option<Arc<Caller>>,
    client_cert: Option<Arc<crate::tls::ClientCert>>,
    resources: ResourceScope,
}

impl Drop for Context {
    /// The request's header map goes back to this thread's kept maps: the answer's headers
    /// are written into it (see `header_map`).
    fn drop(&mut self) {
        crate::header_map::give_back(std::mem::take(&mut self.headers));
    }
}

/// A request id unique within the process. Threads take ids in blocks from one counter, so
/// a call does not touch a counter shared with the other IO units.
pub(crate) fn next_request_id() -> u64 {
    const BLOCK: u64 = 1024;
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);
    thread_local!(static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) });
    IDS.with(|ids| {
        let (mut next, mut end) = ids.get();
        if next == end {
            // Ids start at 1.
            next = NEXT_BLOCK.fetch_add(1, Relaxed) * BLOCK + 1;
            end = next + BLOCK;
        }
        ids.set((next + 1, end));
        next
    })
}

/// What every context of one server refers to, behind one reference count: a call touches one
/// counter instead of one per part. Each IO unit makes its contexts with its own copy (a clone:
/// the parts' state is shared, only the count is the unit's), so that count's cache line is not
/// passed back and forth between the units on every call.
#[derive(Debug, Clone)]
pub(crate) struct ServerParts {
    pub(crate) registry: Arc<Registry>,
    pub(crate) status: StatusHandle,
    pub(crate) faults: FaultCodes,
    pub(crate) resources: Resources,
    pub(crate) states: States,
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
        let resources = Resources::default();
        Self {
            method: Cow::Owned(method.into()),
            peer,
            headers,
            request_id,
            started: Instant::now(),
            extensions: http::Extensions::new(),
            params_len: 0,
            caller: None,
            client_cert: None,
            resources: ResourceScope::new(&resources),
            server: Arc::new(ServerParts {
                registry,
                status: StatusHandle::default(),
                faults: FaultCodes::default(),
                resources,
                states: States::default(),
            }),
        }
    }

    /// Sets the shared state of type `T` that [`state`](Self::state) reads, as
    /// [`ServerBuilder::state`](crate::ServerBuilder::state) does for a server's contexts
    /// (for testing a handler on a context of its own).
    pub fn with_state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.server).states.insert(value);
        self
    }

    /// Sets the caller (the server does this from its authenticator; tests may too).
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = Some(Arc::new(caller));
        self
    }

    /// A context as the server makes it, with the server's parts (no defaults made and
    /// dropped).
    pub(crate) fn serving(
        method: Cow<'static, str>,
        (peer, client_cert): (Option<SocketAddr>, Option<Arc<crate::tls::ClientCert>>),
        headers: http::HeaderMap,
        request_id: u64,
        params_len: usize,
        caller: Option<Arc<Caller>>,
        server: &Arc<ServerParts>,
    ) -> Self {
        Self {
            method,
            peer,
            headers,
            request_id,
            started: Instant::now(),
            extensions: http::Extensions::new(),
            params_len,
            caller,
            client_cert,
            resources: ResourceScope::new(&server.resources),
            server: Arc::clone(server),
        }
    }

    /// The request's headers, for a context finished on another thread than the one that
    /// answers (see `header_map`).
    pub(crate) fn into_headers(mut self) -> http::HeaderMap {
        std::mem::take(&mut self.headers)
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
        crate::auth::check_perm(Some(perm), self.caller(), &self.server.faults)
    }

    /// The server's availability switch: an admin method can take the server offline or
    /// lock it out (and back) through it.
    pub fn status(&self) -> &StatusHandle {
        &self.server.status
    }

    /// The server's fault code table.
    pub fn fault_codes(&self) -> &FaultCodes {
        &self.server.faults
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
        self.resources.get::<R>(&self.server.resources, self)
    }

    /// The server's shared state of type `T`, set with
    /// [`ServerBuilder::state`](crate::ServerBuilder::state): what a method registered at
    /// link time reaches what `main` built with (a pool, the hub's settings), by type.
    ///
    /// None of that type set is a mistake in the server's code: the call gets the internal
    /// error fault (the type is logged, not told to the client).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use hub_core::{Context, Fault};
    ///
    /// #[derive(Default)]
    /// struct Counters { builds: AtomicU64 }
    ///
    /// fn count_build(ctx: &Context) -> Result<u64, Fault> {
    ///     let counters = ctx.state::<Counters>()?;
    ///     Ok(counters.builds.fetch_add(1, Ordering::Relaxed) + 1)
    /// }
    ///
    /// let builder = hub_core::Server::builder().state(Counters::default());
    /// # drop(builder);
    /// # let ctx = Context::new("count", None, http::HeaderMap::new(), 1,
    /// #     std::sync::Arc::new(hub_core::Registry::builder().build()?)).with_state(Counters::default());
    /// # assert_eq!(count_build(&ctx)?, 1);
    /// # assert_eq!(count_build(&ctx)?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, Fault> {
        self.server.states.get::<T>().ok_or_else(|| {
            let wanted = std::any::type_name::<T>();
            tracing::error!(
                method = %self.method,
                wanted,
                "no shared state of that type: set it with ServerBuilder::state"
            );
            Fault::new(
                self.server.faults.internal_error,
                "internal error: server state missing",
            )
        })
    }

    /// Acquires the eager resources, before the handler runs.
    pub(crate) fn acquire_eager_resources(&self) -> Result<(), Fault> {
        self.resources.acquire_eager(&self.server.resources, self)
    }

    /// Commits (`success`) or rolls back this call's resources.
    pub(crate) fn finish_resources(&self, success: bool) -> Result<(), Fault> {
        self.resources.finish(&self.server.resources, success)
    }

    /// The XML-RPC method name being called.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The client's address, when the call came over a socket.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The TLS client certificate the connection presented, verified against the server's
    /// `tls_client_ca_file` (`None` over plain HTTP, or when the client sent none), as
    /// koji-hub's handlers read `SSL_CLIENT_S_DN`: for a handler that decides by the
    /// certificate itself, such as a login on behalf of another user by a trusted proxy.
    /// Who the caller is remains the [`Authenticator`](crate::auth::Authenticator)'s to say
    /// ([`caller`](Self::caller)).
    pub fn client_cert(&self) -> Option<&crate::tls::ClientCert> {
        self.client_cert.as_deref()
    }

    /// The HTTP request headers.
    pub fn headers(&self) -> &http::HeaderMap {
        &self.headers
    }

    /// A number unique to this request within the process (not in arrival order: each
    /// thread takes them in blocks).
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// When the request entered the lifecycle.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The registry serving this call (introspection uses it).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.server.registry
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit's copy of the parts is the server's: the same registry, the same switch.
    #[test]
    fn a_copy_of_the_parts_shares_their_state() {
        let server = Arc::new(ServerParts {
            registry: Arc::new(Registry::builder().build().expect("an empty registry")),
            status: StatusHandle::default(),
            faults: FaultCodes::default(),
            resources: Resources::default(),
            states: States::default(),
        });
        let unit = Arc::new(ServerParts::clone(&server));
        assert!(!Arc::ptr_eq(&unit, &server), "a count of its own");
        assert!(Arc::ptr_eq(&unit.registry, &server.registry));
        assert!(Arc::ptr_eq(&unit.resources.defs, &server.resources.defs));
        unit.status.go_offline("maintenance");
        assert!(server.status.is_offline());
    }
}
