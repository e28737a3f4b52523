//! koji-style sessions checked by call number: [`SessionStore`] keeps them in memory (a
//! restart logs everyone out); [`SessionHeaders`] reads and checks what a request presents,
//! for a store that keeps them elsewhere (a database, so they outlive a restart).

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::auth::{call_record, AuthFailure, AuthRequest, Authenticator, Caller};

/// The header carrying the session id.
pub const SESSION_ID: &str = "koji-session-id";
/// The header carrying the session key.
pub const SESSION_KEY: &str = "koji-session-key";
/// The header carrying the call number, which must grow with every request of a session.
pub const SESSION_CALLNUM: &str = "koji-session-callnum";

/// Sessions in memory, authenticated by koji's headers `Koji-Session-Id`, `Koji-Session-Key`
/// and `Koji-Session-Callnum` (or, from older koji clients, the URL's `session-id`,
/// `session-key` and `callnum`, which the server turns into those headers when they are
/// absent, as koji's hub reads them).
///
/// A login method [`create`](Self::create)s a session and hands the client its id and key;
/// the client sends them with every later request, with a call number that grows by at least
/// one each time. A call number is the session's last once its call has committed (as koji
/// records it with the call's commit): a lower one is then refused as a `SequenceError` (out
/// of order), an equal one as a `RetryError` (a replay: the first attempt changed data). A
/// number whose call is still running is refused as a `RetryError` too; one whose call was
/// refused before it ran (a `503`, a client gone) or rolled back may be sent again, as koji's
/// client does. A request without a call number is accepted, as koji does. A request without
/// any session header is anonymous.
///
/// Sessions live until [`destroy`](Self::destroy)ed, or, [`with_lifetime`](Self::with_lifetime),
/// until that long after they were opened or last [`renew`](Self::renew)ed. An expired session
/// is refused with koji's `AuthExpired` ([`AuthFailure::Expired`]), which koji's client answers
/// by logging in again with `renew` and the expired session's headers: a login method
/// (koji's `login` and `sslLogin`, or [`with_login_methods`](Self::with_login_methods)) gets
/// that session's caller, without permissions, and renews it. An expired session is dropped
/// once it has been expired for another lifetime, so the store holds at most about two
/// lifetimes' worth of logins; presented after that, it is still refused as expired (a login
/// method lets it through as anonymous, to open a new session), as koji, which keeps its
/// expired sessions, would.
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
/// // While its call runs, its number is taken.
/// assert!(matches!(store.authenticate(&req), Err(AuthFailure::Retry(_))));
///
/// // The same store is the server's authenticator (clone the Arc for the login method).
/// let builder = hub_core::Server::builder().authenticator(Arc::clone(&store));
/// # drop(builder);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SessionStore {
    /// Shared with the calls' records, which settle their numbers when they are over.
    sessions: Arc<Mutex<Sessions>>,
    next_id: AtomicU64,
    lifetime: Option<Duration>,
    login_methods: Vec<String>,
}

#[derive(Debug, Default)]
struct Sessions {
    open: HashMap<u64, Session>,
    /// Past this many sessions, the next `create` drops those expired for a lifetime.
    sweep_at: usize,
}

#[derive(Debug)]
struct Session {
    key: String,
    caller: Caller,
    /// The number of the last call that committed.
    last_callnum: Option<i64>,
    /// The numbers of calls running now (one, for koji's client, which waits for each).
    running: Vec<i64>,
    /// Renewals so far: a call's record from before a renewal (which numbers calls from the
    /// start again) settles nothing.
    renewals: u64,
    /// Opened or last renewed.
    since: Instant,
}

/// The fewest sessions at which `create` sweeps out the long expired.
const SWEEP_FLOOR: usize = 1024;

impl Default for SessionStore {
    fn default() -> Self {
        Self {
            sessions: Arc::default(),
            next_id: AtomicU64::new(0),
            lifetime: None,
            login_methods: vec!["login".to_owned(), "sslLogin".to_owned()],
        }
    }
}

impl SessionStore {
    /// An empty store whose sessions live until destroyed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sessions expire `lifetime` after they were opened or last renewed (koji's
    /// `SessionRenewalTimeout`, a day by default there).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// The methods an expired session may still call, to renew it: koji's `login` and
    /// `sslLogin` unless set here.
    pub fn with_login_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.login_methods = methods.into_iter().map(Into::into).collect();
        self
    }

    /// Renews session `id` (a login method does, when the client asks to `renew` the
    /// expired session it presents): a new key, answered here, its lifetime and call numbers
    /// from the start (koji's client numbers from 0 again). `Ok(None)` if there is no such
    /// session.
    pub fn renew(&self, id: u64) -> io::Result<Option<String>> {
        let key = random_key()?;
        let mut sessions = self.lock();
        let Some(session) = sessions.open.get_mut(&id) else {
            return Ok(None);
        };
        session.key.clone_from(&key);
        session.last_callnum = None;
        session.running.clear();
        session.renewals += 1;
        session.since = Instant::now();
        Ok(Some(key))
    }

    /// Whether a session opened or renewed at `since` has expired.
    fn expired(&self, since: Instant) -> bool {
        self.lifetime.is_some_and(|l| since.elapsed() > l)
    }

    /// Whether it has been expired for another lifetime, and can go.
    fn stale(&self, since: Instant) -> bool {
        self.lifetime
            .is_some_and(|l| since.elapsed() > l.saturating_mul(2))
    }

    /// Opens a session for `caller`; returns its id and its secret key (32 hex digits from the
    /// system's random source).
    pub fn create(&self, caller: Caller) -> io::Result<(u64, String)> {
        let key = random_key()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let caller = caller.with_session(id);
        let mut sessions = self.lock();
        if self.lifetime.is_some() && sessions.open.len() >= sessions.sweep_at {
            sessions.open.retain(|_, s| !self.stale(s.since));
            sessions.sweep_at = (sessions.open.len() * 2).max(SWEEP_FLOOR);
        }
        sessions.open.insert(
            id,
            Session {
                key: key.clone(),
                caller,
                last_callnum: None,
                running: Vec::new(),
                renewals: 0,
                since: Instant::now(),
            },
        );
        Ok((id, key))
    }

    /// Closes a session (logout); `false` if there was none.
    pub fn destroy(&self, id: u64) -> bool {
        self.lock().open.remove(&id).is_some()
    }

    /// Sessions held now, the expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The answer for a session id this store issued but no longer holds: swept out after
    /// being expired for a lifetime, or closed. With a lifetime, expired is what a client
    /// must be told, so that koji's client logs in again (its `renew` login, presenting the
    /// gone session, is let through as anonymous and opens a new one) rather than giving up
    /// on an `AuthError`; the key cannot be checked any more, and an id says nothing a
    /// guesser could not count. Without a lifetime nothing is swept: a gone session was
    /// closed, and so is unknown.
    fn forgotten(
        &self,
        presented: &SessionHeaders<'_>,
        is_login: bool,
    ) -> Result<Option<Caller>, AuthFailure> {
        let issued = (1..=self.next_id.load(Ordering::Relaxed)).contains(&presented.id);
        match (self.lifetime.is_some() && issued, is_login) {
            (false, _) => Err(presented.unknown()),
            (true, true) => Ok(None),
            (true, false) => Err(AuthFailure::Expired(format!(
                "session {} has expired: log in again",
                presented.id
            ))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Authenticator for SessionStore {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure> {
        let Some(presented) = SessionHeaders::read(req)? else {
            return Ok(None);
        };
        let is_login = self.login_methods.iter().any(|m| m == req.method);
        let mut sessions = self.lock();
        let Some(session) = sessions.open.get_mut(&presented.id) else {
            return self.forgotten(&presented, is_login);
        };
        if !presented.key_is(&session.key) {
            return Err(presented.unknown());
        }
        let expired = self.expired(session.since);
        if expired && !is_login {
            return Err(AuthFailure::Expired(format!(
                "session {} has expired: log in again to renew it",
                presented.id
            )));
        }
        presented.check_callnum(session.last_callnum, req.method)?;
        let caller = if expired {
            // Only a login method gets here, which may renew it: no permissions.
            Caller::new(session.caller.name()).with_session(presented.id)
        } else {
            session.caller.clone()
        };
        let Some(callnum) = presented.callnum else {
            return Ok(Some(caller));
        };
        if session.running.contains(&callnum) {
            return Err(AuthFailure::Retry(format!(
                "unable to retry call {callnum} (method {}) for session {}: it is still running",
                req.method, presented.id
            )));
        }
        session.running.push(callnum);
        let (sessions, id, renewals) = (
            Arc::downgrade(&self.sessions),
            presented.id,
            session.renewals,
        );
        let record = call_record(move |committed| {
            settle(&sessions, id, renewals, callnum, committed);
        });
        Ok(Some(caller.with_call_record(record)))
    }
}

/// Settles call `callnum` of session `id` (see [`call_record`]): no longer running, and the
/// session's last if it `committed`; nothing if the session was renewed since (`renewals`).
fn settle(sessions: &Weak<Mutex<Sessions>>, id: u64, renewals: u64, callnum: i64, committed: bool) {
    let Some(sessions) = sessions.upgrade() else {
        return;
    };
    let mut sessions = sessions.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(session) = sessions.open.get_mut(&id) else {
        return;
    };
    if session.renewals != renewals {
        return;
    }
    if let Some(at) = session.running.iter().position(|&n| n == callnum) {
        session.running.swap_remove(at);
    }
    if committed {
        session.last_callnum = session.last_callnum.max(Some(callnum));
    }
}

/// The query parameters older koji clients send their session in (`?session-id=..&
/// session-key=..&callnum=..`), which koji's hub still reads when the headers are absent.
const QUERY_SESSION: [(&str, &str); 3] = [
    ("session-id", SESSION_ID),
    ("session-key", SESSION_KEY),
    ("callnum", SESSION_CALLNUM),
];

/// An older koji client's session, sent in the URL's query, made the headers newer clients
/// send (`Koji-Session-Id`, ...), so that every authenticator reading them
/// ([`SessionHeaders`], [`SessionStore`], a store of its own) sees it; only when the request
/// carries no `Koji-Session-Id` header. Values that cannot be header values are left out
/// (the request is then refused as a malformed session, or is anonymous).
#[inline]
pub(crate) fn headers_from_query<B>(req: &mut http::Request<B>) {
    if req.uri().query().is_some_and(|q| q.contains("session-")) {
        from_query(req);
    }
}

#[cold]
fn from_query<B>(req: &mut http::Request<B>) {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let headers = req.headers_mut();
    if headers.contains_key(SESSION_ID) {
        return;
    }
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let Some(&(_, header)) = QUERY_SESSION.iter().find(|(q, _)| *q == name) else {
            continue;
        };
        if let Ok(mut value) = http::HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            headers.insert(header, value);
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const LIFETIME: Duration = Duration::from_secs(1);

    /// `method` called with session `id`, `key` and call number `callnum`.
    fn call(
        store: &SessionStore,
        method: &str,
        id: u64,
        key: &str,
        callnum: i64,
    ) -> Result<Option<Caller>, AuthFailure> {
        let mut headers = http::HeaderMap::new();
        headers.insert(SESSION_ID, id.to_string().parse().unwrap());
        headers.insert(SESSION_KEY, key.parse().unwrap());
        headers.insert(SESSION_CALLNUM, callnum.to_string().parse().unwrap());
        store.authenticate(&AuthRequest {
            method,
            headers: &headers,
            peer: None,
            client_cert: None,
        })
    }

    /// Makes session `id` look opened `by` earlier.
    fn age(store: &SessionStore, id: u64, by: Duration) {
        let mut sessions = store.lock();
        let session = sessions.open.get_mut(&id).unwrap();
        session.since = session.since.checked_sub(by).unwrap();
    }

    #[test]
    fn a_session_expires_after_its_lifetime_and_a_login_renews_it() {
        let store = SessionStore::new().with_lifetime(LIFETIME);
        let (id, key) = store
            .create(Caller::new("alice").with_perm("build"))
            .unwrap();
        let caller = call(&store, "getBuild", id, &key, 1).unwrap().unwrap();
        assert!(caller.has_perm("build"));
        age(&store, id, LIFETIME + Duration::from_millis(500));
        let refused = call(&store, "getBuild", id, &key, 2).unwrap_err();
        assert!(
            matches!(&refused, AuthFailure::Expired(m) if m.contains("has expired")),
            "{refused:?}"
        );
        // A login method gets the session's caller, without its permissions, to renew it.
        let caller = call(&store, "login", id, &key, 3).unwrap().unwrap();
        assert_eq!((caller.name(), caller.session_id()), ("alice", Some(id)));
        assert!(!caller.has_perm("build"));
        let renewed = store.renew(id).unwrap().unwrap();
        assert_ne!(renewed, key);
        assert!(matches!(
            call(&store, "getBuild", id, &key, 4),
            Err(AuthFailure::Invalid(_))
        ));
        // Call numbers start again (koji's client numbers from 0 after a login).
        let caller = call(&store, "getBuild", id, &renewed, 0).unwrap().unwrap();
        assert!(caller.has_perm("build"));
        assert_eq!(store.renew(id + 1).unwrap(), None);
    }

    #[test]
    fn the_login_methods_can_be_named() {
        let store = SessionStore::new()
            .with_lifetime(LIFETIME)
            .with_login_methods(["auth.login"]);
        let (id, key) = store.create(Caller::new("alice")).unwrap();
        age(&store, id, LIFETIME * 2);
        assert!(matches!(
            call(&store, "login", id, &key, 1),
            Err(AuthFailure::Expired(_))
        ));
        assert!(call(&store, "auth.login", id, &key, 2).unwrap().is_some());
    }

    #[test]
    fn sessions_expired_for_another_lifetime_are_dropped() {
        let store = SessionStore::new().with_lifetime(LIFETIME);
        let (stale, stale_key) = store.create(Caller::new("gone")).unwrap();
        let (expired, expired_key) = store.create(Caller::new("away")).unwrap();
        age(&store, stale, LIFETIME * 2 + Duration::from_millis(500));
        age(&store, expired, LIFETIME + Duration::from_millis(500));
        while store.len() < SWEEP_FLOOR {
            store.create(Caller::new("busy")).unwrap();
        }
        assert!(call(&store, "getBuild", stale, &stale_key, 1).is_err());
        assert!(
            matches!(call(&store, "login", stale, &stale_key, 2), Ok(Some(_))),
            "held until a sweep"
        );
        store.create(Caller::new("one more")).unwrap();
        assert_eq!(store.len(), SWEEP_FLOOR, "the stale session swept out");
        // Gone, but issued here: expired, so koji's client logs in again, and its login
        // (presenting the gone session) is let through as anonymous, to open a new one.
        assert!(matches!(
            call(&store, "getBuild", stale, &stale_key, 3),
            Err(AuthFailure::Expired(_))
        ));
        assert!(matches!(
            call(&store, "login", stale, &stale_key, 4),
            Ok(None)
        ));
        // An id never issued is unknown, login or not.
        let never = store.next_id.load(Ordering::Relaxed) + 1;
        for method in ["getBuild", "login"] {
            assert!(matches!(
                call(&store, method, never, &stale_key, 1),
                Err(AuthFailure::Invalid(_))
            ));
        }
        assert!(matches!(
            call(&store, "getBuild", expired, &expired_key, 1),
            Err(AuthFailure::Expired(_))
        ));
        // Without a lifetime nothing expires and nothing is swept.
        let store = SessionStore::new();
        let (id, key) = store.create(Caller::new("alice")).unwrap();
        age(&store, id, LIFETIME * 3);
        assert!(call(&store, "getBuild", id, &key, 1).unwrap().is_some());
        // And a closed session is unknown.
        assert!(store.destroy(id));
        assert!(matches!(
            call(&store, "getBuild", id, &key, 2),
            Err(AuthFailure::Invalid(_))
        ));
    }
}
