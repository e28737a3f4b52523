//! koji-style sessions checked by call number: [`SessionStore`] keeps them in memory (a
//! restart logs everyone out); [`SessionHeaders`] reads and checks what a request presents,
//! for a store that keeps them elsewhere (a database, so they outlive a restart).

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::auth::{AuthFailure, AuthRequest, Authenticator, Caller};

/// The header carrying the session id.
pub const SESSION_ID: &str = "koji-session-id";
/// The header carrying the session key.
pub const SESSION_KEY: &str = "koji-session-key";
/// The header carrying the call number, which must grow with every request of a session.
pub const SESSION_CALLNUM: &str = "koji-session-callnum";

/// Sessions in memory, authenticated by koji's headers `Koji-Session-Id`, `Koji-Session-Key`
/// and `Koji-Session-Callnum`.
///
/// A login method [`create`](Self::create)s a session and hands the client its id and key;
/// the client sends them with every later request, with a call number that grows by at least
/// one each time. A lower call number than the last accepted one is refused as a
/// `SequenceError` (out of order), an equal one as a `RetryError` (a replay: the first attempt
/// may already have changed data). A request without a call number is accepted, as koji does.
/// A request without any session header is anonymous.
///
/// ```
/// use std::sync::Arc;
/// use hub_core::auth::{AuthFailure, AuthRequest, Authenticator, Caller};
/// use hub_core::session::SessionStore;
///
/// let store = Arc::new(SessionStore::new());
/// let (id, key) = store.create(Caller::new("alice").with_perm("build"))?;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("koji-session-id", id.to_string().parse()?);
/// headers.insert("koji-session-key", key.parse()?);
/// headers.insert("koji-session-callnum", "1".parse()?);
/// let req = AuthRequest { method: "getBuild", headers: &headers, peer: None, client_cert: None };
/// let caller = store.authenticate(&req)?.expect("a session");
/// assert_eq!(caller.name(), "alice");
/// assert!(matches!(store.authenticate(&req), Err(AuthFailure::Retry(_))));
///
/// // The same store is the server's authenticator (clone the Arc for the login method).
/// let builder = hub_core::Server::builder().authenticator(Arc::clone(&store));
/// # drop(builder);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<u64, Session>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Session {
    key: String,
    caller: Caller,
    last_callnum: Option<i64>,
}

impl SessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a session for `caller`; returns its id and its secret key (32 hex digits from the
    /// system's random source).
    pub fn create(&self, caller: Caller) -> io::Result<(u64, String)> {
        let key = random_key()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let caller = caller.with_session(id);
        self.lock().insert(
            id,
            Session {
                key: key.clone(),
                caller,
                last_callnum: None,
            },
        );
        Ok((id, key))
    }

    /// Closes a session (logout); `false` if there was none.
    pub fn destroy(&self, id: u64) -> bool {
        self.lock().remove(&id).is_some()
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Authenticator for SessionStore {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure> {
        let Some(presented) = SessionHeaders::read(req)? else {
            return Ok(None);
        };
        let mut sessions = self.lock();
        let session = sessions
            .get_mut(&presented.id)
            .filter(|s| presented.key_is(&s.key))
            .ok_or_else(|| presented.unknown())?;
        presented.check_callnum(session.last_callnum, req.method)?;
        if presented.callnum.is_some() {
            session.last_callnum = presented.callnum;
        }
        Ok(Some(session.caller.clone()))
    }
}

/// koji's session headers of one request, read and checked for form: what a session store
/// that keeps its sessions elsewhere (a database, so they outlive a restart) checks against
/// its own records, as [`SessionStore`] does against its map.
///
/// ```
/// use hub_core::auth::{AuthFailure, AuthRequest};
/// use hub_core::session::SessionHeaders;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("koji-session-id", "7".parse()?);
/// headers.insert("koji-session-key", "secret".parse()?);
/// headers.insert("koji-session-callnum", "3".parse()?);
/// let req = AuthRequest { method: "getBuild", headers: &headers, peer: None, client_cert: None };
/// let presented = SessionHeaders::read(&req)?.expect("session headers");
/// assert_eq!((presented.id, presented.callnum), (7, Some(3)));
/// assert!(presented.key_is("secret") && !presented.key_is("guess"));
/// // The session's last accepted call number decides: 2 before it is fine, 3 a replay.
/// assert!(presented.check_callnum(Some(2), req.method).is_ok());
/// assert!(matches!(presented.check_callnum(Some(3), req.method), Err(AuthFailure::Retry(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionHeaders<'a> {
    /// `Koji-Session-Id`.
    pub id: u64,
    /// `Koji-Session-Key`, as sent (compare it with [`key_is`](Self::key_is)).
    pub key: &'a str,
    /// `Koji-Session-Callnum`, if sent (koji accepts a request without one).
    pub callnum: Option<i64>,
}

impl<'a> SessionHeaders<'a> {
    /// The request's session headers: `Ok(None)` without any (an anonymous request); an
    /// `AuthError` for an id without a key or the other way round, or one not a number.
    pub fn read(req: &AuthRequest<'a>) -> Result<Option<Self>, AuthFailure> {
        let header = |name: &str| -> Result<Option<&'a str>, AuthFailure> {
            match req.headers.get(name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.trim()))
                    .map_err(|_| AuthFailure::Invalid(format!("{name} is not text"))),
            }
        };
        let (id, key, callnum) = (
            header(SESSION_ID)?,
            header(SESSION_KEY)?,
            header(SESSION_CALLNUM)?,
        );
        let (id, key) = match (id, key) {
            (None, None) => return Ok(None),
            (Some(id), Some(key)) => (id, key),
            _ => {
                return Err(AuthFailure::Invalid(
                    "session id and key must be sent together".into(),
                ))
            }
        };
        let id = id
            .parse()
            .map_err(|_| AuthFailure::Invalid("malformed session id".into()))?;
        let callnum = match callnum {
            None => None,
            Some(n) => Some(
                n.parse()
                    .map_err(|_| AuthFailure::Invalid("malformed call number".into()))?,
            ),
        };
        Ok(Some(Self { id, key, callnum }))
    }

    /// Whether the key sent is `key`, compared in time independent of where they differ.
    pub fn key_is(&self, key: &str) -> bool {
        same(self.key.as_bytes(), key.as_bytes())
    }

    /// The refusal for a session id that is not open, or a key that is not its own (one
    /// message for both: it does not tell a guesser which).
    pub fn unknown(&self) -> AuthFailure {
        AuthFailure::Invalid(format!("invalid session or key (session {})", self.id))
    }

    /// Checks the call number sent against `last`, the last one accepted for the session:
    /// lower is koji's `SequenceError` (out of order), equal its `RetryError` (a replay: the
    /// first attempt may already have changed data). Without either number, anything goes.
    /// Record [`callnum`](Self::callnum) as the new last one when it is `Some`.
    pub fn check_callnum(&self, last: Option<i64>, method: &str) -> Result<(), AuthFailure> {
        let (Some(n), Some(last)) = (self.callnum, last) else {
            return Ok(());
        };
        if n < last {
            return Err(AuthFailure::Sequence(format!(
                "{last} > {n} (session {})",
                self.id
            )));
        }
        if n == last {
            return Err(AuthFailure::Retry(format!(
                "unable to retry call {n} (method {method}) for session {}",
                self.id
            )));
        }
        Ok(())
    }
}

/// Compares two secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh session key: 32 hex digits from the system's random source.
pub fn random_key() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
