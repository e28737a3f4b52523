//! Who is calling: the [`Authenticator`] hook, the [`Caller`] it yields, and the permission
//! check made before a guarded method runs.
//!
//! The authenticator runs once per HTTP request (a `system.multicall` is authenticated once,
//! its entries share the caller), before any method runs. Where it runs is the server's
//! choice:
//! - [`ServerBuilder::authenticator`](crate::ServerBuilder::authenticator): on the IO unit,
//!   for a quick one (an in-memory lookup such as
//!   [`SessionStore`](crate::session::SessionStore)). One that blocks stalls every
//!   connection of its unit, which the log names after `stall_warn_ms`
//!   (`inside="the authenticator"`).
//! - [`ServerBuilder::blocking_authenticator`](crate::ServerBuilder::blocking_authenticator):
//!   on the worker pool, for one that blocks (a database lookup per request, as koji checks
//!   its sessions). The unit serves its other connections meanwhile. A blocking method's
//!   call is authenticated in its own job, just before it runs; any other request takes one
//!   more trip to a worker and back, its lookup waiting in the worker queue like a blocking
//!   call (a full queue answers `503`).
//!
//! Its caller is then checked against each method's permission (`#[rpc_method(perm =
//! "...")]` or [`Method::with_perm`](crate::registry::Method::with_perm)): an anonymous
//! caller or one without the permission gets the `permission` fault and the handler never
//! runs. `admin` satisfies every permission.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use hub_xmlrpc::Fault;

use crate::config::FaultCodes;

/// The permission that satisfies every other one.
pub const ADMIN: &str = "admin";

/// An authenticated caller: a name, permissions, and the session it came through, if any.
///
/// ```
/// use hub_core::auth::Caller;
/// let alice = Caller::new("alice").with_perm("build");
/// assert!(alice.has_perm("build") && !alice.has_perm("tag"));
/// let root = Caller::new("root").with_perm("admin");
/// assert!(root.has_perm("tag") && root.is_admin());
/// ```
#[derive(Clone)]
pub struct Caller {
    name: String,
    perms: BTreeSet<String>,
    session_id: Option<u64>,
    /// The session store's note on this call, if it keeps one.
    call: Option<Arc<dyn CallRecord>>,
}

/// A session store's note on one call, carried by the call's [`Caller`]
/// ([`Caller::with_call_record`]): told when the call's work commits, and dropped when the
/// call is over, whatever became of it (run, refused with a `503` before it ran, dropped with
/// a client that went away).
///
/// koji records a session's call number with the call's commit: a call that committed may
/// not be sent again with its number (`RetryError`), and one refused before it ran, or
/// rolled back, may (koji's client resends a call with its number after a `503` or a broken
/// connection). A store that checks call numbers keeps each call's number as running until
/// its record is told [`committed`](Self::committed) (then it is the session's last) or
/// dropped (then it is forgotten). [`SessionStore`](crate::SessionStore) does; [`call_record`]
/// makes a record of a closure.
pub trait CallRecord: Send + Sync + 'static {
    /// The call's work committed (its resources did, or it succeeded without any). Told once
    /// per call, or for each entry of a multicall that commits.
    fn committed(&self);
}

/// A [`CallRecord`] that runs `settle` once: with `true` when the call commits, or with
/// `false` when the call is over without a commit (the record dropped).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use hub_core::auth::{call_record, Caller};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let noted = Arc::clone(&seen);
/// let caller = Caller::new("alice").with_call_record(call_record(move |committed| {
///     noted.lock().unwrap().push(committed);
/// }));
/// drop(caller); // a call refused before it ran
/// assert_eq!(*seen.lock().unwrap(), [false]);
/// ```
pub fn call_record(settle: impl FnOnce(bool) + Send + 'static) -> Arc<dyn CallRecord> {
    Arc::new(Settles(std::sync::Mutex::new(Some(Box::new(settle)))))
}

/// What a [`call_record`] runs when its call is settled.
type Settle = Box<dyn FnOnce(bool) + Send>;

/// [`call_record`]'s record: its `settle`, until it has run.
struct Settles(std::sync::Mutex<Option<Settle>>);

impl Settles {
    fn settle(&self, committed: bool) {
        let settle = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(settle) = settle {
            settle(committed);
        }
    }
}

impl CallRecord for Settles {
    fn committed(&self) {
        self.settle(true);
    }
}

impl Drop for Settles {
    fn drop(&mut self) {
        self.settle(false);
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("name", &self.name)
            .field("perms", &self.perms)
            .field("session_id", &self.session_id)
            .field("call_record", &self.call.is_some())
            .finish()
    }
}

/// Callers are equal by name, permissions and session (not by their call records).
impl PartialEq for Caller {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, &self.perms, self.session_id) == (&other.name, &other.perms, other.session_id)
    }
}

impl Eq for Caller {}

impl Caller {
    /// A caller with no permission.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            perms: BTreeSet::new(),
            session_id: None,
            call: None,
        }
    }

    /// Carries `record`, told when this call commits (see [`CallRecord`]).
    pub fn with_call_record(mut self, record: Arc<dyn CallRecord>) -> Self {
        self.call = Some(record);
        self
    }

    /// Tells the call's record, if it carries one, that the call's work committed.
    pub(crate) fn committed(&self) {
        if let Some(record) = &self.call {
            record.committed();
        }
    }

    /// Grants a permission.
    pub fn with_perm(mut self, perm: impl Into<String>) -> Self {
        self.perms.insert(perm.into());
        self
    }

    /// Grants several permissions.
    pub fn with_perms<I: IntoIterator<Item = S>, S: Into<String>>(mut self, perms: I) -> Self {
        self.perms.extend(perms.into_iter().map(Into::into));
        self
    }

    /// Records the session the caller authenticated with.
    pub fn with_session(mut self, session_id: u64) -> Self {
        self.session_id = Some(session_id);
        self
    }

    /// The caller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The permissions granted, sorted.
    pub fn perms(&self) -> impl Iterator<Item = &str> {
        self.perms.iter().map(String::as_str)
    }

    /// The session the caller authenticated with, if any.
    pub fn session_id(&self) -> Option<u64> {
        self.session_id
    }

    /// Whether the caller holds `perm`, or `admin`.
    pub fn has_perm(&self, perm: &str) -> bool {
        self.perms.contains(perm) || self.is_admin()
    }

    /// Whether the caller holds `admin`.
    pub fn is_admin(&self) -> bool {
        self.perms.contains(ADMIN)
    }
}

/// What an [`Authenticator`] sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The method called (`system.multicall` for a batch; `upload` for an upload).
    pub method: &'a str,
    /// The HTTP request headers.
    pub headers: &'a http::HeaderMap,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The certificate the client presented over TLS and the server verified against
    /// `tls_client_ca_file` (see [`crate::tls`]); `None` over plain HTTP or without one.
    pub client_cert: Option<&'a crate::tls::ClientCert>,
}

/// Why credentials were refused; each kind answers its code of the `[faults]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// Missing pieces, malformed, or no such session (`faults.auth`; koji `AuthError`).
    Invalid(String),
    /// A call number lower than the last one (`faults.sequence`; koji `SequenceError`).
    Sequence(String),
    /// A call number equal to the last one, a replay (`faults.retry`; koji `RetryError`).
    Retry(String),
    /// The session has expired: the client logs in again (`faults.expired`; koji
    /// `AuthExpired`).
    Expired(String),
    /// Any other fault, sent as is.
    Fault(Fault),
}

impl AuthFailure {
    /// The fault the client gets.
    pub fn into_fault(self, codes: &FaultCodes) -> Fault {
        match self {
            AuthFailure::Invalid(m) => Fault::new(codes.auth, m),
            AuthFailure::Sequence(m) => Fault::new(codes.sequence, m),
            AuthFailure::Retry(m) => Fault::new(codes.retry, m),
            AuthFailure::Expired(m) => Fault::new(codes.expired, m),
            AuthFailure::Fault(f) => f,
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::Invalid(m)
            | AuthFailure::Sequence(m)
            | AuthFailure::Retry(m)
            | AuthFailure::Expired(m) => f.write_str(m),
            AuthFailure::Fault(fault) => fault.fmt(f),
        }
    }
}

impl std::error::Error for AuthFailure {}

/// Reads credentials from a request: `Ok(None)` for an anonymous request (no credentials),
/// `Ok(Some(caller))` for valid ones, `Err` to refuse the whole request.
///
/// Set one with [`ServerBuilder::authenticator`](crate::ServerBuilder::authenticator); the
/// ready-made [`SessionStore`](crate::session::SessionStore) speaks koji's session headers.
///
/// ```
/// use hub_core::auth::{AuthFailure, AuthRequest, Authenticator, Caller};
///
/// /// Trusts an `X-User` header set by a fronting proxy.
/// struct ProxyUser;
///
/// impl Authenticator for ProxyUser {
///     fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure> {
///         match req.headers.get("x-user").map(|v| v.to_str()) {
///             None => Ok(None),
///             Some(Ok(name)) => Ok(Some(Caller::new(name))),
///             Some(Err(_)) => Err(AuthFailure::Invalid("X-User is not text".into())),
///         }
///     }
/// }
/// let server = hub_core::Server::builder().authenticator(ProxyUser);
/// # drop(server);
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// Identifies the caller of one request.
    fn authenticate(&self, request: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure>;
}

impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    fn authenticate(&self, request: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure> {
        (**self).authenticate(request)
    }
}

/// The permission check: `Ok` if `caller` may call a method needing `perm`.
pub(crate) fn check_perm(
    perm: Option<&str>,
    caller: Option<&Caller>,
    codes: &FaultCodes,
) -> Result<(), Fault> {
    let Some(perm) = perm else { return Ok(()) };
    match caller {
        Some(c) if c.has_perm(perm) => Ok(()),
        Some(c) => Err(Fault::new(
            codes.permission,
            format!("{perm} permission required (logged in as {})", c.name()),
        )),
        None => Err(Fault::new(
            codes.permission,
            format!("{perm} permission required (user not logged in)"),
        )),
    }
}
