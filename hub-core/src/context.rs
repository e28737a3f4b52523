//! The per-request context handed to every method.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::registry::Registry;

/// What one request carries through its handler: who called, what, when.
///
/// A context is created before dispatch and dropped after the response is
/// written, whatever happened in between; it is never reused.
#[derive(Debug)]
pub struct Context {
    method: String,
    peer: Option<SocketAddr>,
    headers: http::HeaderMap,
    request_id: u64,
    started: Instant,
    registry: Arc<Registry>,
    extensions: http::Extensions,
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
        }
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
