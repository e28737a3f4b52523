//! [`SessionStore`]: koji-style sessions kept in memory, checked by call number.

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
        let header = |name: &str| -> Result<Option<&str>, AuthFailure> {
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
        let id: u64 = id
            .parse()
            .map_err(|_| AuthFailure::Invalid("malformed session id".into()))?;
        let callnum: Option<i64> = match callnum {
            None => None,
            Some(n) => Some(
                n.parse()
                    .map_err(|_| AuthFailure::Invalid("malformed call number".into()))?,
            ),
        };
        let mut sessions = self.lock();
        let session = sessions
            .get_mut(&id)
            .filter(|s| same(s.key.as_bytes(), key.as_bytes()))
            .ok_or_else(|| {
                AuthFailure::Invalid(format!("invalid session or key (session {id})"))
            })?;
        if let (Some(n), Some(last)) = (callnum, session.last_callnum) {
            if n < last {
                return Err(AuthFailure::Sequence(format!(
                    "{last} > {n} (session {id})"
                )));
            }
            if n == last {
                return Err(AuthFailure::Retry(format!(
                    "unable to retry call {n} (method {}) for session {id}",
                    req.method
                )));
            }
        }
        if callnum.is_some() {
            session.last_callnum = callnum;
        }
        Ok(Some(session.caller.clone()))
    }
}

/// Compares two secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_key() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
