//! Who calls: password hashes (Argon2id, PHC strings), the authenticator (koji's session
//! headers and call numbers, read by the engine's `SessionHeaders` and checked against the
//! `sessions` table, with the caller's permissions read on every request so a grant counts at
//! once), and the `login`/`sslLogin`/`logout` methods.
//!
//! Sessions live in the database, as koji's do: a client logged in before a restart (a
//! builder daemon, a long script) goes on with its session after it. Unlike koji's, the
//! database keeps only a hash of each session's key: reading it hands out no session. The
//! authenticator reads and writes the database for each request, so it is the server's
//! blocking authenticator: it runs on the worker pool, and a slow lookup does not stall the
//! IO unit.
//!
//! A session expires `--session-lifetime` seconds after it was opened or last renewed (koji's
//! `SessionRenewalTimeout`, 24 hours by default): a call with it is then refused with koji's
//! `AuthExpired`, which koji's client answers by logging in again (`login` or `sslLogin`) with
//! `renew`, presenting the expired session. That renews it in place when it is the session of
//! the user logging in: same id (so its exclusive lock and its subsessions stay its own), a
//! new key, its call numbers from the start. A session found expired is marked so, its
//! subsessions with it (as koji does), and a longer lifetime set later does not bring it back.
//! A subsession is expired while its master is. A logout closes a session for good, and its
//! subsessions; an expired session may still log out.
//!
//! A session is bound to the address its client logged in from (koji's `CheckClientIP`): sent
//! from another, it is refused as if its key were wrong (and the mismatch logged), so a key
//! that leaked is of no use elsewhere. `--no-client-ip-check` turns that off.
//!
//! `sslLogin` is koji's certificate login: over HTTPS with `tls_client_ca_file` set, the
//! engine verifies the client's certificate and the authenticator makes the user its subject's
//! `CN` names (koji's `DNUsernameComponent = CN`) the caller of that one method, which opens a
//! session for it (or renews the one it presents). Every other call is authenticated by its
//! session headers alone, as in koji: a certificate is a way to log in, not a session.
//!
//! A certificate whose subject is one of `--proxy-dn` (koji's `ProxyDNs`: a web front end's,
//! which has logged its own user in) may log in as another user, `sslLogin(proxyuser=NAME)`:
//! the session opened is that user's. Any other certificate asking that is refused.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hub::core::auth::{call_record, CallRecord};
use hub::serde::Serialize;
use hub::{
    rpc_method, AuthFailure, AuthRequest, Authenticator, Caller, ClientCert, Context, Fault,
    SessionHeaders, Value,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::db::{self, Tx};
use crate::{faults, State};

/// Hashes `password` with a fresh salt, as a PHC string (`$argon2id$v=19$...`).
pub fn hash_password(password: &str) -> Result<String, Fault> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Fault::new(1, format!("no random salt: {e}")))?;
    let salt =
        SaltString::encode_b64(&bytes).map_err(|e| Fault::new(1, format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Fault::new(1, format!("password hashing failed: {e}")))
}

/// Whether `password` matches the stored PHC string.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// The caller's permissions, by user name.
pub fn perms_of(conn: &Connection, user: &str) -> Result<Vec<String>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT perm FROM user_perms JOIN users ON users.id = user_perms.user_id
         WHERE users.name = ?1 ORDER BY perm",
    )?;
    let perms = stmt.query_map([user], |row| row.get(0))?;
    perms.collect()
}

/// koji's session check against the `sessions` table, then the user's current permissions.
pub struct SessionAuth {
    /// One connection: lookups take turns on it, each a few indexed reads; a call that
    /// commits writes its number on it.
    conn: Arc<Mutex<Connection>>,
    /// The numbers of the calls running now, by session (see [`settle`]).
    running: Running,
    policy: SessionPolicy,
    proxies: ProxyDns,
}

/// Call numbers of calls running now, by session id.
type Running = Arc<Mutex<HashMap<i64, Vec<i64>>>>;

/// Settles call `callnum` of session `session` (see [`call_record`]): written as the
/// session's last if it `committed` (koji records it with the call's commit) unless the
/// session was renewed since `since` (a renewal numbers calls from the start again), then no
/// longer running; forgotten otherwise, so that a call refused before it ran (a `503`) or
/// rolled back may be sent again with its number, as koji's client does.
fn settle(
    conn: &Mutex<Connection>,
    running: &Running,
    (session, callnum, since): (i64, i64, f64),
    committed: bool,
) {
    if committed {
        // Written before the number stops counting as running: at no time is a replay let
        // through.
        let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        let written = conn.execute(
            "UPDATE sessions SET callnum = ?1
             WHERE id = ?2 AND coalesce(renew_ts, start_ts) = ?3
               AND (callnum IS NULL OR callnum < ?1)",
            (callnum, session, since),
        );
        if let Err(e) = written {
            tracing::warn!(session, "could not record call {callnum}: {e}");
        }
    }
    let mut running = running.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(numbers) = running.get_mut(&session) {
        numbers.retain(|&n| n != callnum);
        if numbers.is_empty() {
            running.remove(&session);
        }
    }
}

/// The certificate subjects that may log in as other users (koji's `ProxyDNs`), each
/// written as koji's `hub.conf` lists them (Apache's `SSL_CLIENT_S_DN`, RFC 2253:
/// `CN=kojiweb,O=Example`), as [`ClientCert::subject`] and OpenSSL's one-line form write it
/// (`O=Example, CN=kojiweb`), or in the legacy slashed form (`/O=Example/CN=kojiweb`).
///
/// A certificate matches when its subject has exactly the configured attributes, each value
/// equal to the configured one (RFC 4514 escapes and `\2C`-style hex decoded), in any
/// order: compared as the certificate's decoded attributes
/// ([`ClientCert::subject_attributes`]), never as the text of its subject, in which a value
/// may hold a `,` or a `=` of its own.
#[derive(Debug, Clone, Default)]
pub struct ProxyDns(Vec<Vec<(String, String)>>);

impl ProxyDns {
    /// Adds the subject `dn`, in any of the forms above; one that names no attribute, or
    /// has a part that is no `TYPE=value`, is refused.
    pub fn add(&mut self, dn: &str) -> Result<(), String> {
        let attributes = dn_attributes(dn).map_err(|e| format!("--proxy-dn {dn:?}: {e}"))?;
        self.0.push(attributes);
        Ok(())
    }

    /// Whether `cert` is a proxy's.
    pub fn allow(&self, cert: &ClientCert) -> bool {
        cert.subject_attributes()
            .is_some_and(|attributes| self.matches(attributes))
    }

    fn matches(&self, attributes: &[(String, String)]) -> bool {
        let mut subject: Vec<(String, String)> = attributes
            .iter()
            .map(|(t, v)| (attribute_type(t), v.clone()))
            .collect();
        subject.sort();
        !subject.is_empty() && self.0.contains(&subject)
    }
}

/// An attribute type by one name, whatever name a form gives it: `cn` and `CN`,
/// `emailAddress`, `Email` and `E`, `OID.2.5.4.3` and `2.5.4.3`.
fn attribute_type(name: &str) -> String {
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("OID.").unwrap_or(&name);
    match name {
        "EMAIL" | "E" | "EMAILADDRESS" | "1.2.840.113549.1.9.1" => "EMAILADDRESS".to_owned(),
        "2.5.4.3" => "CN".to_owned(),
        "2.5.4.10" => "O".to_owned(),
        "2.5.4.11" => "OU".to_owned(),
        "2.5.4.6" => "C".to_owned(),
        "USERID" | "0.9.2342.19200300.100.1.1" => "UID".to_owned(),
        "0.9.2342.19200300.100.1.25" => "DC".to_owned(),
        other => other.to_owned(),
    }
}

/// A configured distinguished name's attributes, sorted (the forms name them in opposite
/// orders, RFC 2253 the most specific first), multi-valued RDNs (`+`) flattened.
fn dn_attributes(dn: &str) -> Result<Vec<(String, String)>, String> {
    // Not trimmed at its end: a value may end with an escaped space (`\ `).
    let dn = dn.trim_start();
    let (separators, rest): (&[char], &str) = match dn.strip_prefix('/') {
        Some(rest) => (&['/', '+'], rest),
        None => (&[',', ';', '+'], dn),
    };
    let mut parts: Vec<Vec<Piece>> = vec![Vec::new()];
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        let part = parts.last_mut().expect("never empty");
        if c == '\\' {
            let escaped = chars.next().ok_or("it ends with a lone '\\'")?;
            let low = chars.clone().next();
            match (escaped.to_digit(16), low.and_then(|l| l.to_digit(16))) {
                (Some(high), Some(low)) => {
                    chars.next();
                    part.push(Piece::Byte((high * 16 + low) as u8));
                }
                _ => part.push(Piece::Escaped(escaped)),
            }
        } else if separators.contains(&c) {
            parts.push(Vec::new());
        } else {
            part.push(Piece::Plain(c));
        }
    }
    let mut attributes = Vec::new();
    for part in parts {
        let eq = part
            .iter()
            .position(|p| matches!(p, Piece::Plain('=')))
            .ok_or_else(|| format!("{:?} is no TYPE=value", text(&part)))?;
        let (kind, value) = (text(&part[..eq]), trimmed(&part[eq + 1..])?);
        if kind.trim().is_empty() || value.is_empty() {
            return Err(format!("{:?} is no TYPE=value", text(&part)));
        }
        attributes.push((attribute_type(&kind), value));
    }
    attributes.sort();
    Ok(attributes)
}

/// A character of a configured DN as written: plain, escaped with `\\`, or a byte given
/// in hex (`\\2C`; several make a UTF-8 character).
#[derive(Debug, Clone, Copy)]
enum Piece {
    Plain(char),
    Escaped(char),
    Byte(u8),
}

/// A part as written, for messages.
fn text(part: &[Piece]) -> String {
    part.iter()
        .map(|p| match *p {
            Piece::Plain(c) | Piece::Escaped(c) => c,
            Piece::Byte(b) => char::from(b),
        })
        .collect()
}

/// A value without the unescaped spaces around it, its hex bytes read as UTF-8.
fn trimmed(part: &[Piece]) -> Result<String, String> {
    let kept = |p: &Piece| !matches!(p, Piece::Plain(' '));
    let start = part.iter().position(kept).unwrap_or(part.len());
    let end = part.iter().rposition(kept).map_or(start, |i| i + 1);
    let mut bytes = Vec::new();
    for piece in &part[start..end] {
        match *piece {
            Piece::Plain(c) | Piece::Escaped(c) => {
                bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            Piece::Byte(b) => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| "its hex-escaped bytes are not UTF-8".to_owned())
}

/// How sessions are held to account.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// How long a session lives from its opening or last renewal; `None`: for ever.
    pub lifetime: Option<Duration>,
    /// Whether a session is refused from any address but the one it logged in from.
    pub check_client_ip: bool,
}

impl std::fmt::Debug for SessionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAuth").finish_non_exhaustive()
    }
}

impl SessionAuth {
    /// Checks sessions through `conn`, by `policy`; lets the certificates of `proxies` log
    /// in for other users.
    pub fn new(conn: Connection, policy: SessionPolicy, proxies: ProxyDns) -> Self {
        Self {
            conn: Arc::new(Mutex::new(conn)),
            running: Running::default(),
            policy,
            proxies,
        }
    }

    /// The caller of the session presented, its call number checked (and running until the
    /// call is over: see [`settle`]).
    fn session_user(
        &self,
        presented: &SessionHeaders<'_>,
        method: &str,
        peer: Option<SocketAddr>,
    ) -> Result<Caller, AuthFailure> {
        let id = i64::try_from(presented.id).map_err(|_| presented.unknown())?;
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        // Reads, and rarely a write (marking the session expired, tried again at the next
        // lookup if another connection holds the lock): no write lock taken up front.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(database_error)?;
        // Past the lifetime now, or marked expired by an earlier lookup; the same of its
        // master, for a subsession.
        let lifetime = self.policy.lifetime.map_or(0.0, |l| l.as_secs_f64());
        let found = tx
            .query_row(
                "SELECT s.key_hash, s.callnum, users.name, users.status, s.expired,
                        ?2 > 0 AND unixepoch('subsec') > coalesce(s.renew_ts, s.start_ts) + ?2,
                        s.hostip, s.master, m.closed, m.expired,
                        ?2 > 0 AND unixepoch('subsec') > coalesce(m.renew_ts, m.start_ts) + ?2,
                        coalesce(s.renew_ts, s.start_ts)
                 FROM sessions s JOIN users ON users.id = s.user_id
                 LEFT JOIN sessions m ON m.id = s.master
                 WHERE s.id = ?1 AND s.closed = 0",
                (id, lifetime),
                |row| {
                    let master = match row.get::<_, Option<i64>>(7)? {
                        None => None,
                        Some(id) => Some(Master {
                            id,
                            // No row: its master is gone, as good as closed.
                            closed: row.get::<_, Option<bool>>(8)?.unwrap_or(true),
                            marked: row.get::<_, Option<bool>>(9)?.unwrap_or(true),
                            aged: row.get::<_, Option<bool>>(10)?.unwrap_or(false),
                        }),
                    };
                    Ok(StoredSession {
                        key_hash: row.get(0)?,
                        last: row.get(1)?,
                        name: row.get(2)?,
                        status: row.get(3)?,
                        marked: row.get(4)?,
                        aged: row.get(5)?,
                        hostip: row.get(6)?,
                        master,
                        since: row.get(11)?,
                    })
                },
            )
            .optional()
            .map_err(database_error)?;
        let StoredSession {
            last,
            name,
            status,
            marked,
            aged,
            hostip,
            master,
            since,
            ..
        } = found
            .filter(|s| s.key_hash == key_hash_of(presented.key))
            .ok_or_else(|| presented.unknown())?;
        // The answer does not say which part was wrong; the log does, for the operator.
        if !sent_from_its_address(id, hostip.as_deref(), peer, self.policy.check_client_ip) {
            return Err(presented.unknown());
        }
        if status != 0 {
            return Err(AuthFailure::Invalid(format!(
                "logins by {name} are not allowed (session {id})"
            )));
        }
        // A subsession lives no longer than its master: closed with it (a logout closes
        // both; this is for one left open all the same), expired with it.
        if master.is_some_and(|m| m.closed) {
            return Err(presented.unknown());
        }
        let master_expired = master.is_some_and(|m| m.marked || m.aged);
        let expired = marked || aged || master_expired;
        // Marked for good, with its subsessions, as koji does: a longer `--session-lifetime`
        // set later must not bring it back, and they may not outlive it. If the mark cannot
        // be written now, the next lookup tries again.
        let to_mark = match master {
            Some(m) if m.aged && !m.marked => Some(m.id),
            _ if expired && !marked => Some(id),
            _ => None,
        };
        if let Some(mark) = to_mark {
            let marked = tx.execute(
                "UPDATE sessions SET expired = 1 WHERE id = ?1 OR master = ?1",
                [mark],
            );
            if let Err(e) = marked {
                tracing::warn!(session = mark, "could not mark the session expired: {e}");
            }
        }
        // An expired session may still log in to be renewed, and log out (closing its
        // subsessions, which could not be closed otherwise).
        if expired && method != LOGIN && method != LOGOUT {
            // Committed, so that the mark stays (or tried again at the next lookup).
            if let Err(e) = tx.commit() {
                tracing::warn!(session = id, "could not mark the session expired: {e}");
            }
            return Err(AuthFailure::Expired(match master {
                Some(m) if master_expired => format!(
                    "session {id} has expired with its master session {}: log in again to \
                     renew it once the master is renewed",
                    m.id
                ),
                _ => format!("session {id} has expired: log in again to renew it"),
            }));
        }
        if method != crate::sessions::EXCLUSIVE_SESSION && method != LOGOUT {
            if let Some(holder) = crate::sessions::locked_by(&tx, id).map_err(database_error)? {
                return Err(AuthFailure::Fault(Fault::new(
                    faults::AUTH_LOCK,
                    format!(
                        "session locked: {name} holds an exclusive session ({holder}); \
                         exclusiveSession(force=True) takes it over"
                    ),
                )));
            }
        }
        presented.check_callnum(last, method)?;
        let record = match presented.callnum {
            None => None,
            Some(callnum) => Some(self.begin_call(id, callnum, since, method)?),
        };
        // An expired session reaches only `login`, which may renew it, and `logout`: no
        // permissions.
        let perms = if expired {
            Vec::new()
        } else {
            perms_of(&tx, &name).map_err(database_error)?
        };
        tx.commit().map_err(database_error)?;
        let caller = Caller::new(name)
            .with_perms(perms)
            .with_session(presented.id);
        Ok(match record {
            Some(record) => caller.with_call_record(record),
            None => caller,
        })
    }

    /// Counts call `callnum` of session `id` as running, unless it already is (a resend
    /// while the first attempt runs: koji's `RetryError`).
    fn begin_call(
        &self,
        id: i64,
        callnum: i64,
        since: f64,
        method: &str,
    ) -> Result<Arc<dyn CallRecord>, AuthFailure> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let numbers = running.entry(id).or_default();
        if numbers.contains(&callnum) {
            return Err(AuthFailure::Retry(format!(
                "unable to retry call {callnum} (method {method}) for session {id}: \
                 it is still running"
            )));
        }
        numbers.push(callnum);
        let (conn, running) = (Arc::clone(&self.conn), Arc::clone(&self.running));
        Ok(call_record(move |committed| {
            settle(&conn, &running, (id, callnum, since), committed);
        }))
    }

    /// `sslLogin`'s caller: the active user the verified client certificate's `CN` names.
    /// Anything else refuses the call with koji's `AuthError` and its reason.
    fn certificate_user(&self, cert: Option<&ClientCert>) -> Result<Caller, AuthFailure> {
        let cert = cert.ok_or_else(|| {
            AuthFailure::Invalid(
                "could not verify client: no client certificate (sslLogin needs HTTPS and a \
                 certificate signed by a CA of the hub's tls_client_ca_file)"
                    .into(),
            )
        })?;
        let name = cert.common_name().ok_or_else(|| {
            AuthFailure::Invalid(format!(
                "unable to get user information (CN) from client certificate `{}`",
                cert.subject()
            ))
        })?;
        // A proxy need not be a user: `sslLogin` checks the user it logs in as.
        if self.proxies.allow(cert) {
            return Ok(Caller::new(name));
        }
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let status: Option<i64> = conn
            .query_row("SELECT status FROM users WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()
            .map_err(database_error)?;
        match status {
            None => Err(AuthFailure::Invalid(format!(
                "Unknown user: {name} (the CN of client certificate `{}`)",
                cert.subject()
            ))),
            Some(0) => {
                let perms = perms_of(&conn, name).map_err(database_error)?;
                Ok(Caller::new(name).with_perms(perms))
            }
            Some(_) => Err(AuthFailure::Invalid(format!(
                "logins by {name} are not allowed"
            ))),
        }
    }
}

/// A session's row, as the authenticator reads it.
struct StoredSession {
    key_hash: String,
    /// The number of the last call that committed.
    last: Option<i64>,
    /// Its user's name and status (0: active).
    name: String,
    status: i64,
    /// Marked expired by an earlier lookup (a renewal clears it).
    marked: bool,
    /// Past its lifetime now.
    aged: bool,
    /// The address it logged in from, if it was opened since sessions were bound to one.
    hostip: Option<String>,
    /// Its master, for a subsession.
    master: Option<Master>,
    /// Opened or last renewed (`coalesce(renew_ts, start_ts)`).
    since: f64,
}

/// A subsession's master, as the authenticator reads it.
#[derive(Debug, Clone, Copy)]
struct Master {
    id: i64,
    closed: bool,
    marked: bool,
    aged: bool,
}

/// The client's address as sessions are bound to it: an IPv4 client reached over IPv6 as its
/// IPv4 address; `-` when unknown.
fn host_of(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(
        || "-".to_owned(),
        |p| IpAddr::to_canonical(&p.ip()).to_string(),
    )
}

/// What the database keeps of a session key: its BLAKE2b-512 hash, in hex. The key is 128
/// random bits, so a fast hash is enough (nothing to guess from the hash), and comparing
/// hashes tells a timing observer nothing about the key.
fn key_hash_of(key: &str) -> String {
    use blake2::{Blake2b512, Digest};
    Blake2b512::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A database failure while authenticating: koji's unexpected-error code 1.
fn database_error(e: rusqlite::Error) -> AuthFailure {
    AuthFailure::Fault(Fault::new(1, format!("database error: {e}")))
}

impl Authenticator for SessionAuth {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure> {
        // The certificate is sslLogin's credential, whatever session the client still sends
        // (koji's client sends its old one when it logs in again).
        if req.method == SSL_LOGIN {
            return self.certificate_user(req.client_cert).map(Some);
        }
        match SessionHeaders::read(req)? {
            None => Ok(None),
            Some(presented) => self
                .session_user(&presented, req.method, req.peer)
                .map(Some),
        }
    }
}

/// The name of koji's certificate login, which the authenticator treats apart.
const SSL_LOGIN: &str = "sslLogin";
/// The name of koji's password login, the one call an expired session may make (to renew it).
const LOGIN: &str = "login";
/// The name of koji's logout, which a session locked out by another's exclusive lock may
/// still make.
const LOGOUT: &str = "logout";

/// What `login` answers: koji's session info. `header-auth` tells the client to send the
/// session in headers (`Koji-Session-Id`, `Koji-Session-Key`, `Koji-Session-Callnum`).
#[derive(Debug, Serialize)]
#[serde(crate = "hub::serde")]
pub struct SessionInfo {
    #[serde(rename = "session-id")]
    session_id: i64,
    #[serde(rename = "session-key")]
    session_key: String,
    #[serde(rename = "header-auth")]
    header_auth: bool,
}

/// Logs in with a user name and password; answers the session info (`session-id`,
/// `session-key`, `header-auth`) that `koji.ClientSession.login()` expects.
///
/// With `renew` (koji's client sets it when its session has expired), the session the call
/// presents is renewed in place if it is `user`'s ([`log_in`]). `exclusive` (sent with
/// `renew` by a client that took the exclusive lock) keeps or takes the lock. `opts` is
/// accepted as koji's client sends it and ignored.
/// `sensitive`: the password never reaches the memory watch or the debug call log.
#[rpc_method(sensitive)]
fn login(
    ctx: &Context,
    user: String,
    password: String,
    opts: Option<Value>,
    renew: Option<bool>,
    exclusive: Option<bool>,
) -> Result<SessionInfo, Fault> {
    let _ = opts;
    let tx = ctx.resource::<Tx>()?;
    let stored: Option<String> = tx
        .query_row(
            "SELECT password FROM users WHERE name = ?1 AND status = 0",
            [&user],
            |row| row.get(0),
        )
        .optional()
        .map_err(db::fault)?;
    // The same answer for an unknown user and a wrong password.
    if !stored.is_some_and(|hash| verify_password(&password, &hash)) {
        return Err(Fault::new(faults::AUTH, "invalid username or password"));
    }
    // The authenticator checked the session presented: its key, its address, open.
    let renewing = ctx
        .caller()
        .and_then(Caller::session_id)
        .and_then(|id| i64::try_from(id).ok())
        .filter(|_| renew == Some(true));
    let lifetime = ctx.state::<State>()?.sessions.lifetime;
    log_in(
        &tx,
        &user,
        "password",
        ctx.peer(),
        Renewal {
            session: renewing,
            exclusive: exclusive == Some(true),
            lifetime,
        },
    )
}

/// What a login asks of the session it answers.
#[derive(Debug, Clone, Copy)]
struct Renewal {
    /// The session presented to be renewed in place, if any (checked: its key and address).
    session: Option<i64>,
    /// Keep (or take, without force) its user's exclusive lock.
    exclusive: bool,
    /// `--session-lifetime`, to tell whether a subsession's master has expired.
    lifetime: Option<Duration>,
}

/// A login's session, as koji's `createSession` and `makeExclusive` make it: the session
/// `renewal` presents renewed in place when it is `user`'s and open (the same id, so its
/// lock and its subsessions stay its own), else a new one; then, if asked, made `user`'s
/// exclusive one, which another holder refuses with `AuthLockError` (the whole login with
/// it). A subsession works under its master's lock: `exclusive` leaves it as it is.
fn log_in(
    tx: &Connection,
    user: &str,
    how: &str,
    peer: Option<SocketAddr>,
    renewal: Renewal,
) -> Result<SessionInfo, Fault> {
    let renewed = match renewal.session {
        Some(id) => renew_session(tx, id, user, renewal.lifetime)?,
        None => None,
    };
    let (info, subsession) = match renewed {
        Some(renewed) => renewed,
        None => (open_session(tx, user, how, peer)?, false),
    };
    if renewal.exclusive && !subsession {
        crate::sessions::make_exclusive(tx, info.session_id, false)?;
    }
    Ok(info)
}

/// Renews session `id` in place if it is `user`'s and not closed: a new key, its age from
/// now, its call numbers from the start (koji's client numbers from 0 again); its lock and
/// its subsessions untouched. `None` when there is no such session to renew; with whether it
/// is a subsession otherwise. A subsession is renewed only under an open master that has not
/// expired (else it would outlive it): refused with `AuthError`, not `AuthExpired`, which
/// koji's client would answer by logging in again, and again.
fn renew_session(
    tx: &Connection,
    id: i64,
    user: &str,
    lifetime: Option<Duration>,
) -> Result<Option<(SessionInfo, bool)>, Fault> {
    let lifetime = lifetime.map_or(0.0, |l| l.as_secs_f64());
    let found: Option<(Option<i64>, Option<bool>, Option<bool>)> = tx
        .query_row(
            "SELECT s.master, m.closed,
                    m.expired OR (?3 > 0 AND unixepoch('subsec') >
                                  coalesce(m.renew_ts, m.start_ts) + ?3)
             FROM sessions s JOIN users ON users.id = s.user_id
             LEFT JOIN sessions m ON m.id = s.master
             WHERE s.id = ?1 AND s.closed = 0 AND users.name = ?2",
            (id, user, lifetime),
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(db::fault)?;
    let Some((master, master_closed, master_expired)) = found else {
        return Ok(None);
    };
    if let Some(master) = master {
        if master_closed != Some(false) {
            return Err(Fault::new(
                faults::AUTH,
                format!("session {id} cannot be renewed: its master session {master} is closed"),
            ));
        }
        if master_expired != Some(false) {
            return Err(Fault::new(
                faults::AUTH,
                format!(
                    "session {id} cannot be renewed: its master session {master} has expired \
                     (renew that first)"
                ),
            ));
        }
    }
    let key = hub::core::session::random_key()
        .map_err(|e| Fault::new(1, format!("could not renew the session: {e}")))?;
    let renewed = tx
        .execute(
            "UPDATE sessions SET key_hash = ?2, renew_ts = unixepoch('subsec'), expired = 0,
                                 callnum = NULL
             WHERE id = ?1 AND closed = 0",
            (id, key_hash_of(&key)),
        )
        .map_err(db::fault)?;
    if renewed != 1 {
        return Ok(None);
    }
    tracing::info!(%user, session = id, "session renewed");
    let info = SessionInfo {
        session_id: id,
        session_key: key,
        header_auth: true,
    };
    Ok(Some((info, master.is_some())))
}

/// Opens a session for `user`, who logged in by `how` from `peer` (it exists once the call's
/// transaction commits); answers its session info.
fn open_session(
    tx: &Connection,
    user: &str,
    how: &str,
    peer: Option<SocketAddr>,
) -> Result<SessionInfo, Fault> {
    open_session_under(tx, user, how, peer, None)
}

/// [`open_session`], as a subsession of `master` if set (koji's `subsession`: expired and
/// closed with its master, and not locked out by its master's exclusive lock).
///
/// A subsession is inserted only while its master is open and not expired, checked in the
/// same statement: the caller's session was checked by the authenticator, in another
/// transaction, and a `logout` of the master may have committed since (its subsessions
/// closed with it, but not one inserted after).
pub fn open_session_under(
    tx: &Connection,
    user: &str,
    how: &str,
    peer: Option<SocketAddr>,
    master: Option<i64>,
) -> Result<SessionInfo, Fault> {
    let key = hub::core::session::random_key()
        .map_err(|e| Fault::new(1, format!("could not open a session: {e}")))?;
    let opened = match master {
        None => tx.execute(
            "INSERT INTO sessions (user_id, key_hash, authtype, start_ts, hostip)
             SELECT id, ?2, ?3, unixepoch('subsec'), ?4 FROM users WHERE name = ?1",
            (user, key_hash_of(&key), how, host_of(peer)),
        ),
        Some(master) => tx.execute(
            "INSERT INTO sessions (user_id, key_hash, authtype, start_ts, hostip, master)
             SELECT user_id, ?2, ?3, unixepoch('subsec'), ?4, id FROM sessions
             WHERE id = ?1 AND closed = 0 AND expired = 0",
            (master, key_hash_of(&key), how, host_of(peer)),
        ),
    }
    .map_err(db::fault)?;
    // No row when the user (or the master) went away since it was checked: the last row id
    // is then another's.
    if opened != 1 {
        return Err(match master {
            None => Fault::new(faults::AUTH, format!("Unknown user: {user}")),
            Some(master) => master_gone(tx, master)?,
        });
    }
    let id = tx.last_insert_rowid();
    tracing::info!(%user, session = id, how, ?master, "logged in");
    Ok(SessionInfo {
        session_id: id,
        session_key: key,
        header_auth: true,
    })
}

/// Why no subsession could be opened under `master`: it was logged out (`AuthError`) or found
/// expired (`AuthExpired`: koji's client renews it and asks again) since the caller's session
/// was checked.
fn master_gone(tx: &Connection, master: i64) -> Result<Fault, Fault> {
    let closed: Option<bool> = tx
        .query_row(
            "SELECT closed FROM sessions WHERE id = ?1",
            [master],
            |row| row.get(0),
        )
        .optional()
        .map_err(db::fault)?;
    Ok(if closed == Some(false) {
        Fault::new(
            faults::EXPIRED,
            format!("session {master} has expired: log in again to renew it"),
        )
    } else {
        Fault::new(faults::AUTH, format!("session {master} is closed"))
    })
}

/// The session an `sslLogin` presents in its headers (koji's client sends the expired one to
/// renew), if its key is its own, it is open and (by `check_client_ip`) it comes from the
/// address it is bound to: checked here, as the authenticator took the certificate alone.
/// Anything else is no session to renew: the login opens a new one.
fn presented_session(
    ctx: &Context,
    tx: &Connection,
    check_client_ip: bool,
) -> Result<Option<i64>, Fault> {
    let req = AuthRequest {
        method: ctx.method(),
        headers: ctx.headers(),
        peer: ctx.peer(),
        client_cert: ctx.client_cert(),
    };
    let Ok(Some(presented)) = SessionHeaders::read(&req) else {
        return Ok(None);
    };
    let Ok(id) = i64::try_from(presented.id) else {
        return Ok(None);
    };
    let stored: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT key_hash, hostip FROM sessions WHERE id = ?1 AND closed = 0",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(db::fault)?;
    let Some((key_hash, hostip)) = stored else {
        return Ok(None);
    };
    if key_hash != key_hash_of(presented.key) {
        return Ok(None);
    }
    if !sent_from_its_address(id, hostip.as_deref(), ctx.peer(), check_client_ip) {
        return Ok(None);
    }
    Ok(Some(id))
}

/// Whether session `id`, bound to `hostip` (none for a session from before the binding),
/// comes from there (koji's `CheckClientIP`, when `check` is on); a mismatch is logged.
fn sent_from_its_address(
    id: i64,
    hostip: Option<&str>,
    peer: Option<SocketAddr>,
    check: bool,
) -> bool {
    let from = host_of(peer);
    if check && hostip.is_some_and(|h| h != from) {
        tracing::warn!(session = id, bound_to = ?hostip, %from, "session sent from another address");
        return false;
    }
    true
}

/// Logs in with the client certificate of the connection (HTTPS, `tls_client_ca_file`) as
/// the user its subject's `CN` names; answers the same session info as `login`. koji's
/// client posts it to `/kojihub/ssllogin`, which buildhub serves like `/kojihub`.
///
/// `proxyuser` logs in as that user instead, for a certificate of `--proxy-dn` (koji's
/// `ProxyDNs`) only. `renew` and `exclusive` are `login`'s: koji's client renews an expired
/// session by logging in again with them, presenting it, and the session is renewed in place
/// (its id, its exclusive lock and its subsessions kept) if it is the user's. `proxyauthtype`
/// is accepted as koji's client sends it and ignored.
#[rpc_method(name = "sslLogin")]
fn ssl_login(
    ctx: &Context,
    proxyuser: Option<String>,
    proxyauthtype: Option<i32>,
    renew: Option<bool>,
    exclusive: Option<bool>,
) -> Result<SessionInfo, Fault> {
    let _ = proxyauthtype;
    // Called on its own, the authenticator made the certificate's user the caller, with no
    // session (or refused the call). Any other caller (a session's, or none) means this ran
    // inside a multicall, which is authenticated as a whole by its session headers.
    let user = match ctx.caller() {
        Some(caller) if caller.session_id().is_none() => caller.name(),
        _ => {
            return Err(Fault::new(
                faults::AUTH,
                "sslLogin authenticates by the client certificate: call it on its own, not \
                 in a multicall",
            ))
        }
    };
    let state = ctx.state::<State>()?;
    let proxy = ctx.client_cert().filter(|cert| state.proxies.allow(cert));
    let tx = ctx.resource::<Tx>()?;
    let (user, how) = match (proxyuser, proxy) {
        // koji's words.
        (Some(_), None) => {
            let subject = ctx.client_cert().map_or("-", ClientCert::subject);
            return Err(Fault::new(
                faults::AUTH,
                format!("{subject} is not authorized to login other users"),
            ));
        }
        (Some(proxyuser), Some(cert)) => {
            active_user(&tx, &proxyuser)?;
            (proxyuser, format!("proxied by {}", cert.subject()))
        }
        // A proxy logging in as itself is a user like any other (checked here: the
        // authenticator let it through unchecked).
        (None, Some(_)) => {
            active_user(&tx, user)?;
            (user.to_owned(), "client certificate".to_owned())
        }
        (None, None) => (user.to_owned(), "client certificate".to_owned()),
    };
    let renewing = match renew {
        Some(true) => presented_session(ctx, &tx, state.sessions.check_client_ip)?,
        _ => None,
    };
    log_in(
        &tx,
        &user,
        &how,
        ctx.peer(),
        Renewal {
            session: renewing,
            exclusive: exclusive == Some(true),
            lifetime: state.sessions.lifetime,
        },
    )
}

/// `Ok` if `name` is an active user; else koji's `AuthError`, saying why.
fn active_user(tx: &Connection, name: &str) -> Result<(), Fault> {
    let status: Option<i64> = tx
        .query_row("SELECT status FROM users WHERE name = ?1", [name], |row| {
            row.get(0)
        })
        .optional()
        .map_err(db::fault)?;
    match status {
        Some(0) => Ok(()),
        Some(_) => Err(Fault::new(
            faults::AUTH,
            format!("logins by {name} are not allowed"),
        )),
        None => Err(Fault::new(faults::AUTH, format!("Unknown user: {name}"))),
    }
}

/// Ends the caller's session, and its subsessions; an expired session may too, without
/// being renewed first. `session_id` (koji ≥ 1.31 sends it, usually nil) may only name the
/// caller's own session.
#[rpc_method]
fn logout(ctx: &Context, session_id: Option<i64>) -> Result<(), Fault> {
    let Some(own) = ctx.caller().and_then(Caller::session_id) else {
        return Ok(()); // koji: logging out without a session is a no-op
    };
    if session_id.is_some_and(|id| u64::try_from(id).ok() != Some(own)) {
        return Err(Fault::new(
            faults::NOT_ALLOWED,
            "only the current session can be logged out",
        ));
    }
    let own = i64::try_from(own).map_err(|_| Fault::new(1, "session id out of range"))?;
    ctx.resource::<Tx>()?
        .execute(
            "UPDATE sessions SET expired = 1, closed = 1, exclusive = 0
             WHERE id = ?1 OR master = ?1",
            [own],
        )
        .map_err(db::fault)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{dn_attributes, ProxyDns};

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(t, v)| ((*t).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_subject_matches_in_each_form_koji_s_proxy_dns_are_written() {
        let engine = dn_attributes("O=hub tests, CN=kojiweb").expect("a DN");
        let same = |dn: &str| dn_attributes(dn).expect("a DN");
        assert_eq!(engine, same("CN=kojiweb,O=hub tests"), "RFC 2253");
        assert_eq!(engine, same("/O=hub tests/CN=kojiweb"), "slashes");
        assert_eq!(engine, same(" cn = kojiweb , o=hub tests "), "case, spaces");
        assert_eq!(
            engine,
            same("O = hub tests, CN = kojiweb"),
            "OpenSSL's one line"
        );
        assert_ne!(engine, same("CN=kojiweb,O=other"));
        assert_ne!(engine, same("CN=kojiweb"), "an attribute fewer");
        assert_ne!(engine, same("CN=kojiweb,O=hub tests,OU=x"), "one more");
        assert_eq!(
            same(r"CN=web\, inc,O=x"),
            pairs(&[("CN", "web, inc"), ("O", "x")]),
            "an escaped comma stays in its value"
        );
        assert_eq!(same(r"CN=web\2C inc"), pairs(&[("CN", "web, inc")]), "hex");
        assert_eq!(
            same(r"CN=caf\C3\A9"),
            pairs(&[("CN", "café")]),
            "UTF-8 bytes"
        );
        assert_eq!(
            same(r"CN=\ web\ "),
            pairs(&[("CN", " web ")]),
            "escaped spaces"
        );
        assert_eq!(
            same("/O=x/CN=web/emailAddress=web@example.org"),
            same("E=web@example.org, O=x, CN=web"),
            "emailAddress by any name"
        );
        assert_eq!(same("CN=a+O=b"), same("CN=a + O=b"), "a multi-valued RDN");
        for bad in ["", "kojiweb", "CN=", "=x", "CN=x,", r"CN=x\", r"CN=\FF"] {
            assert!(dn_attributes(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// The certificate's decoded attributes are compared, exactly: a value holding a
    /// separator, a space or a backslash of its own is not the configured subject.
    #[test]
    fn only_the_exact_attributes_are_a_proxy() {
        let mut proxies = ProxyDns::default();
        proxies.add("CN=kojiweb,O=hub tests").expect("a DN");
        assert!(proxies.matches(&pairs(&[("O", "hub tests"), ("CN", "kojiweb")])));
        assert!(proxies.matches(&pairs(&[("CN", "kojiweb"), ("O", "hub tests")])));
        for forged in [
            pairs(&[("CN", "kojiweb, O=hub tests")]),
            pairs(&[("O", "hub tests"), ("CN", "kojiweb ")]),
            pairs(&[("O", "hub tests"), ("CN", r"kojiwe\b")]),
            pairs(&[("O", "hub tests"), ("CN", "KOJIWEB")]),
            pairs(&[("O", "hub tests"), ("CN", "kojiweb"), ("OU", "x")]),
            pairs(&[]),
        ] {
            assert!(!proxies.matches(&forged), "{forged:?}");
        }
        assert!(ProxyDns::default().add("kojiweb").is_err());
        assert!(!ProxyDns::default().matches(&[]), "no proxy, no match");
    }
}
