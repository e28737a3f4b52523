//! An XML-RPC client: typed calls, koji's keyword arguments, `system.multicall`, kept-alive
//! connections, timeouts, calls refused `503` or cut off sent again ([`Client::retry_busy`],
//! [`Client::retry_transport`]), koji's sessions ([`Client::koji_login`] or
//! [`Client::koji_session`]: each call numbered, as the hub's replay check wants, and an
//! expired session renewed by logging in again, as koji's client does), and koji's file
//! upload ([`Client::koji_upload`]). The `call` example, the tests and the benchmarks use it.
//!
//! [`Client`] is async (hyper 1 over tokio, with a pool of kept-alive HTTP/1.1 connections,
//! so consecutive calls reuse one connection; it takes gzipped answers, decoded within its
//! [`Limits`]). [`blocking::Client`] wraps it for code that
//! is not async. Cloning a [`Client`] is cheap and clones share the pool.
//!
//! # Calling a method
//!
//! Parameters are anything that serializes to a list: a tuple, an array, a `Vec<Value>`, or
//! `()` for none. The result is decoded into any `DeserializeOwned` type, [`Value`] included.
//!
//! ```
//! use hub_core::client::{Client, Error};
//! use hub_core::{registry::Registry, RpcError, Server};
//! use hub_xmlrpc::Value;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let registry = Registry::builder()
//! #     .blocking("add", |_ctx, p| match p.positional.as_slice() {
//! #         [Value::Int(a), Value::Int(b)] => Ok(Value::Int(a + b)),
//! #         _ => Err(RpcError::InvalidParams("add(a: int, b: int)".into())),
//! #     })
//! #     .build()?;
//! # let server = Server::builder().listen("127.0.0.1:0".parse()?).registry(registry).build()?.start()?;
//! # let url = format!("http://{}/RPC2", server.local_addr());
//! // `url` is like "http://127.0.0.1:8080/RPC2"
//! let client = Client::new(&url)?;
//! let sum: i64 = client.call("add", (2, 3)).await?;
//! assert_eq!(sum, 5);
//!
//! // A fault keeps its code and message.
//! match client.call::<i64>("add", ("two", 3)).await {
//!     Err(Error::Fault(fault)) => assert_eq!(fault.code, -32602),
//!     other => panic!("expected a fault, got {other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! # Keyword arguments
//!
//! koji passes keyword arguments as a trailing struct whose `__starstar` member is `true`
//! (a server takes any value Python takes for true, as koji does);
//! [`Client::call_kw`] adds it. The named arguments are anything that serializes to a struct.
//!
//! ```
//! # use hub_core::client::Client;
//! # use hub_core::{registry::Registry, Server};
//! # use hub_xmlrpc::{Struct, Value};
//! use std::collections::BTreeMap;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let registry = Registry::builder()
//! #     .blocking("kw", |_ctx, p| Ok(Value::Struct(p.named.unwrap_or_default())))
//! #     .build()?;
//! # let server = Server::builder().listen("127.0.0.1:0".parse()?).registry(registry).build()?.start()?;
//! # let client = Client::new(format!("http://{}/RPC2", server.local_addr()))?;
//! let named = BTreeMap::from([("state", 1)]);
//! let echoed: Struct = client.call_kw("kw", (), named).await?;
//! assert_eq!(echoed.get("state"), Some(&Value::Int(1)));
//! # Ok(()) }
//! ```
//!
//! # Multicall
//!
//! [`Client::multicall`] sends several calls in one request and answers each one's result
//! or fault, in order.
//!
//! ```
//! # use hub_core::client::Client;
//! # use hub_core::{registry::Registry, RpcError, Server};
//! # use hub_xmlrpc::{Fault, Value};
//! use hub_core::client::Call;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let registry = Registry::builder()
//! #     .blocking("echo", |_ctx, p| Ok(p.positional.into_iter().next().unwrap_or(Value::Nil)))
//! #     .blocking("fail", |_ctx, _p| Err(RpcError::Fault(Fault::new(1005, "x"))))
//! #     .build()?;
//! # let server = Server::builder().listen("127.0.0.1:0".parse()?).registry(registry).build()?.start()?;
//! # let client = Client::new(format!("http://{}/RPC2", server.local_addr()))?;
//! let results = client
//!     .multicall([Call::new("echo", ("hi",))?, Call::new("fail", ())?])
//!     .await?;
//! assert_eq!(results[0], Ok(Value::from("hi")));
//! assert_eq!(results[1], Err(Fault::new(1005, "x")));
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hub_xmlrpc::{Fault, Limits, MethodCall, MethodResponse, Struct, Value, STARSTAR};
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::FaultCodes;
use crate::connector::{connector, Connector, TlsOptions};
use crate::encoding::DecodeError;
use crate::session::{SESSION_CALLNUM, SESSION_ID, SESSION_KEY};

mod upload;
pub use upload::{UploadOptions, Uploaded};

/// Why a call did not produce a result.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The server answered a fault.
    Fault(Fault),
    /// The server answered an HTTP status other than 2xx; `body` is the start of its body.
    Http {
        /// The status code, e.g. `404` or `503`.
        status: u16,
        /// The first bytes of the response body, lossily decoded.
        body: String,
    },
    /// Connecting, sending or receiving failed.
    Transport(Box<dyn std::error::Error + Send + Sync>),
    /// No complete response within the [timeout](Client::timeout).
    Timeout(Duration),
    /// The parameters could not be encoded (e.g. they are not a list).
    Encode(String),
    /// The response was not XML-RPC, or its value does not decode into the requested type.
    Decode(String),
    /// The URL is not an `http://` or `https://` URL.
    Url(String),
    /// A TLS setting could not be used (a CA or certificate file; no trusted CAs on the
    /// system).
    Tls(String),
    /// The file to upload could not be read ([`Client::koji_upload`]).
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The hub's account of an upload disagrees with what was sent: a chunk's length or
    /// checksum, or the whole file's ([`Client::koji_upload`]).
    Upload(String),
}

impl Error {
    /// The fault, if the server answered one.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            Error::Fault(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Fault(fault) => fault.fmt(f),
            Error::Http { status, body } if body.is_empty() => write!(f, "HTTP status {status}"),
            Error::Http { status, body } => write!(f, "HTTP status {status}: {body}"),
            Error::Transport(e) => {
                write!(f, "transport: {e}")?;
                let mut source = e.source();
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
            Error::Timeout(t) => write!(f, "no response within {t:?}"),
            Error::Encode(e) => write!(f, "encoding the call: {e}"),
            Error::Decode(e) => write!(f, "decoding the response: {e}"),
            Error::Url(e) => write!(f, "URL: {e}"),
            Error::Tls(e) => write!(f, "TLS: {e}"),
            Error::File { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Upload(e) => write!(f, "upload: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Fault(f) => Some(f),
            Error::Transport(e) => Some(e.as_ref()),
            Error::File { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Fault> for Error {
    fn from(f: Fault) -> Self {
        Error::Fault(f)
    }
}

/// How much of an error response's body [`Error::Http`] keeps.
const HTTP_BODY_EXCERPT: usize = 512;

/// The content type of a call.
const XML: &str = "text/xml";

/// How long an idle connection is kept for the next call by default: less than the hub's
/// own idle timeout (`socket_timeout_ms`, 30 s by default), so that the client, not the hub,
/// closes it, and a call never goes out on a connection the hub is closing at that moment.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The parameters as a list: a serialized tuple, array or `Vec` becomes the list, `()` none.
fn to_params<P: Serialize + ?Sized>(params: &P) -> Result<Vec<Value>, Error> {
    match hub_xmlrpc::to_value(params) {
        Ok(Value::Array(list)) => Ok(list),
        Ok(Value::Nil) => Ok(Vec::new()),
        Ok(other) => Err(Error::Encode(format!(
            "parameters must serialize to a list (a tuple, array or Vec), not a {}",
            other.type_name()
        ))),
        Err(e) => Err(Error::Encode(e.to_string())),
    }
}

/// The keyword arguments as koji's trailing struct (with `__starstar: true`).
fn to_kwargs<N: Serialize + ?Sized>(named: &N) -> Result<Value, Error> {
    let mut s = match hub_xmlrpc::to_value(named) {
        Ok(Value::Struct(s)) => s,
        Ok(Value::Nil) => Struct::new(),
        Ok(other) => {
            return Err(Error::Encode(format!(
                "keyword arguments must serialize to a struct (a struct or map), not a {}",
                other.type_name()
            )))
        }
        Err(e) => return Err(Error::Encode(e.to_string())),
    };
    s.insert(STARSTAR, true);
    Ok(Value::Struct(s))
}

/// The XML of a call of `method` with `params`.
fn call_body(method: &str, params: Vec<Value>) -> Bytes {
    let mut body = Vec::with_capacity(256);
    hub_xmlrpc::write_call(&MethodCall::new(method, params), &mut body);
    Bytes::from(body)
}

fn decode<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    hub_xmlrpc::from_value(v).map_err(|e| Error::Decode(format!("result: {e}")))
}

/// `true` if hyper gave the request up before writing any of it (a pooled connection found
/// closed): the hub cannot have run it.
fn never_sent(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// `true` if the connection closed (or was reset) before the whole response arrived: before
/// any of it (an idle connection the hub had just closed), or after part of it (the hub ran
/// the call), which hyper does not tell apart.
fn closed_before_response(e: &hyper_util::client::legacy::Error) -> bool {
    if e.is_connect() {
        return false;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        source = s.source();
    }
    false
}

/// One call of a [multicall](Client::multicall).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    method: String,
    params: Vec<Value>,
}

impl Call {
    /// A call of `method` with `params` (anything that serializes to a list, see
    /// [`Client::call`]).
    pub fn new(method: impl Into<String>, params: impl Serialize) -> Result<Call, Error> {
        Ok(Call::from_values(method, to_params(&params)?))
    }

    /// A call of `method` with these parameter values.
    pub fn from_values(method: impl Into<String>, params: Vec<Value>) -> Call {
        Call {
            method: method.into(),
            params,
        }
    }

    /// Adds keyword arguments (anything that serializes to a struct, see [`Client::call_kw`]).
    pub fn kwargs(mut self, named: impl Serialize) -> Result<Call, Error> {
        self.params.push(to_kwargs(&named)?);
        Ok(self)
    }

    /// The method name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The parameters, keyword arguments (if any) last.
    pub fn params(&self) -> &[Value] {
        &self.params
    }

    fn into_entry(self) -> Value {
        let mut s = Struct::with_capacity(2);
        s.insert("methodName", self.method);
        s.insert("params", Value::Array(self.params));
        Value::Struct(s)
    }
}

/// The `{faultCode, faultString}` struct of a multicall entry, as a [`Fault`].
fn entry_fault(s: &Struct) -> Option<Fault> {
    let code = i32::try_from(s.get("faultCode")?.as_i64()?).ok()?;
    let message = s.get("faultString")?.as_str()?;
    Some(Fault::new(code, message))
}

/// An async XML-RPC client for one endpoint URL.
///
/// Connections are kept alive and reused by later calls (and by clones of this client).
/// `https://` URLs (feature `tls`, on by default in `hub`) check the server against the
/// system's trust store, or the CAs of [`tls_ca_file`](Self::tls_ca_file), and present the
/// certificate of [`tls_client_cert`](Self::tls_client_cert) if the server asks for one.
#[derive(Clone, Debug)]
pub struct Client {
    http: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    tls: TlsOptions,
    /// How long a connection is kept idle in the pool ([`Client::idle_timeout`]).
    idle_timeout: Duration,
    uri: Uri,
    headers: HeaderMap,
    /// koji's session, if the calls carry one ([`Client::koji_session`]).
    session: Option<Arc<KojiSession>>,
    timeout: Option<Duration>,
    limits: Limits,
    /// The hub's fault code for an expired session, besides koji's 1007 ([`Client::fault_codes`]).
    expired_code: i32,
    /// How often a call refused `503` is sent again, waiting at most how long before each
    /// ([`Client::retry_busy`]).
    busy_retries: (u32, Duration),
    /// How often a call whose connection failed is sent again, and the wait before each
    /// ([`Client::retry_transport`]).
    transport_retries: (u32, Duration),
    /// The hub's offline fault code, if it is its own, besides koji's 1014
    /// ([`Client::fault_codes`]).
    offline_code: Option<i32>,
    /// How often a call answered with the offline fault is sent again, for how long in all
    /// ([`Client::retry_offline`]).
    offline_retries: (Duration, Duration),
}

/// One exchange that did not give a 2xx answer.
enum Attempt {
    /// `503` or `429`: refused without being run; the wait its `Retry-After` asks for, if it
    /// says.
    Busy(Error, Option<Duration>),
    /// No connection: the request never reached the server.
    Unsent(Error),
    /// The connection failed after the request was sent, before its answer came: the server
    /// may have run it.
    Lost(Error),
    /// Anything else.
    Failed(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Failed(e)
    }
}

/// A koji session's headers, the call number of the next call, and how to renew it.
struct KojiSession {
    /// The session's id and key, replaced when it is renewed.
    headers: std::sync::Mutex<(HeaderValue, HeaderValue)>,
    next_callnum: AtomicI64,
    /// How it logged in, to log in again when it expires.
    credentials: Option<Credentials>,
    /// Counts renewals, so that calls that failed together renew once.
    renewals: AtomicI64,
    /// Held while renewing.
    renewing: tokio::sync::Mutex<()>,
}

impl KojiSession {
    fn new(id: HeaderValue, key: HeaderValue, credentials: Option<Credentials>) -> Self {
        KojiSession {
            headers: std::sync::Mutex::new((id, key)),
            next_callnum: AtomicI64::new(0),
            credentials,
            renewals: AtomicI64::new(0),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    /// The id and key to send.
    fn headers(&self) -> (HeaderValue, HeaderValue) {
        self.headers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

// Written by hand: a client printed with `{:?}` (a log line, a panic message) must not show
// its session's key or the password it logs in with.
impl std::fmt::Debug for KojiSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (id, _key) = self.headers();
        f.debug_struct("KojiSession")
            .field("id", &id)
            .field("key", &"<redacted>")
            .field("next_callnum", &self.next_callnum)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password { user, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Certificate { proxyuser } => f
                .debug_struct("Certificate")
                .field("proxyuser", proxyuser)
                .finish(),
        }
    }
}

/// How a koji session was opened, and is opened again when it expires.
enum Credentials {
    /// koji's `login` with this user name and password ([`Client::koji_login`]).
    Password { user: String, password: String },
    /// koji's `sslLogin` with the client certificate ([`Client::koji_ssl_login`]), on behalf
    /// of `proxyuser` if set ([`Client::koji_ssl_login_as`]).
    Certificate { proxyuser: Option<String> },
}

/// koji's `AuthExpired`: the session must be renewed by logging in again.
const AUTH_EXPIRED: i32 = 1007;

/// koji's `ServerOffline`: the hub refused the call without running it.
const KOJI_OFFLINE: i32 = 1014;

/// The least wait between calls to an offline hub ([`Client::retry_offline`]).
const MIN_OFFLINE_INTERVAL: Duration = Duration::from_millis(50);

/// `codes`' offline code, if no other fault of theirs shares it (a call answered with a
/// shared code may have run).
fn offline_code_of(codes: &FaultCodes) -> Option<i32> {
    // Every field named: a code added to the set is considered here too.
    let FaultCodes {
        not_well_formed,
        invalid_xmlrpc,
        method_not_found,
        invalid_params,
        internal_error,
        application_error,
        system_error,
        offline,
        auth,
        permission,
        sequence,
        retry,
        expired,
    } = *codes;
    let others = [
        not_well_formed,
        invalid_xmlrpc,
        method_not_found,
        invalid_params,
        internal_error,
        application_error,
        system_error,
        auth,
        permission,
        sequence,
        retry,
        expired,
    ];
    (!others.contains(&offline)).then_some(offline)
}

/// Where koji's client sends `sslLogin`: the hub's path + `/ssllogin`.
fn ssl_login_uri(uri: &Uri) -> Result<Uri, Error> {
    let path = uri.path().trim_end_matches('/');
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        format!("{path}/ssllogin")
            .parse()
            .map_err(|e| Error::Url(format!("`{path}/ssllogin`: {e}")))?,
    );
    Uri::from_parts(parts).map_err(|e| Error::Url(e.to_string()))
}

/// Whether a fault says the session expired: koji's code, or this hub's own.
fn is_expired(fault: &Fault, hub_code: i32) -> bool {
    fault.code == AUTH_EXPIRED || fault.code == hub_code
}

/// What koji's `login` answers.
#[derive(serde::Deserialize)]
struct SessionInfo {
    #[serde(rename = "session-id")]
    id: i64,
    #[serde(rename = "session-key")]
    key: String,
}

impl Client {
    /// A client for `url`, like `http://127.0.0.1:8080/RPC2` or
    /// `https://hub.example.org/kojihub` (the path defaults to `/`).
    ///
    /// Needs no runtime to be made, but its calls must run inside a tokio runtime.
    pub fn new(url: impl AsRef<str>) -> Result<Client, Error> {
        let url = url.as_ref();
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::Url(format!("`{url}`: {e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => {
                return Err(Error::Url(format!(
                    "`{url}`: the {other} scheme is not supported (only http and https)"
                )))
            }
            None => {
                return Err(Error::Url(format!(
                    "`{url}`: expected http://HOST[:PORT]/PATH or https://..."
                )))
            }
        }
        if uri.host().is_none() {
            return Err(Error::Url(format!("`{url}`: no host")));
        }
        let tls = TlsOptions::default();
        Ok(Client {
            http: Self::connect(&uri, &tls, IDLE_TIMEOUT)?,
            tls,
            idle_timeout: IDLE_TIMEOUT,
            uri,
            headers: HeaderMap::new(),
            session: None,
            timeout: None,
            limits: Limits {
                max_size: 64 * 1024 * 1024,
                ..Limits::DEFAULT
            },
            expired_code: FaultCodes::default().expired,
            busy_retries: (0, Duration::ZERO),
            transport_retries: (0, Duration::ZERO),
            offline_code: None,
            offline_retries: (Duration::ZERO, Duration::ZERO),
        })
    }

    /// The pooled HTTP client for `uri` with these TLS options.
    fn connect(
        uri: &Uri,
        tls: &TlsOptions,
        idle_timeout: Duration,
    ) -> Result<hyper_util::client::legacy::Client<Connector, Full<Bytes>>, Error> {
        let https = uri.scheme_str() == Some("https");
        let connector = connector(https, tls).map_err(|e| {
            if https && cfg!(not(feature = "tls")) {
                Error::Url(e)
            } else {
                Error::Tls(e)
            }
        })?;
        Ok(
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_idle_timeout(idle_timeout)
                // Without a timer the pool only skips an expired connection when it next
                // looks for one; with it, the connection is closed once idle that long, and
                // stops counting against the hub's connection limits (found in review).
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(connector),
        )
    }

    /// For an `https://` URL: trusts the CA certificates in this PEM file instead of the
    /// system's (koji's `serverca`). A file that cannot be read or holds no certificate is an
    /// [`Error::Tls`].
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Result<Self, Error> {
        self.tls.ca_file = Some(path.into());
        self.http = Self::connect(&self.uri, &self.tls, self.idle_timeout)?;
        Ok(self)
    }

    /// For an `https://` URL: presents this certificate to a server that asks for one (koji's
    /// `cert`: one PEM file holding the certificate chain and its private key). A file that
    /// cannot be used is an [`Error::Tls`].
    pub fn tls_client_cert(mut self, path: impl Into<PathBuf>) -> Result<Self, Error> {
        self.tls.cert_file = Some(path.into());
        self.http = Self::connect(&self.uri, &self.tls, self.idle_timeout)?;
        Ok(self)
    }

    /// Fails a call with [`Error::Timeout`] if its complete response has not arrived within
    /// `timeout` (default: no limit). The connection of a timed-out call is not reused.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends a call the server refused with `503` or `429` again, up to `attempts` more times,
    /// after waiting what its `Retry-After` asks (1 s if it does not say), at most `max_wait`.
    /// A hub answers those only for a call it did not run (its queue full or its wait
    /// predicted too long, a method at its `max_in_flight`, too many connections, the client
    /// over its request rate), so sending it again cannot run it twice; each attempt has a call number of its own, and the
    /// [`timeout`](Self::timeout) of its own. Default: no retries, the `503` is
    /// [`Error::Http`].
    #[must_use]
    pub fn retry_busy(mut self, attempts: u32, max_wait: Duration) -> Self {
        self.busy_retries = (attempts, max_wait);
        self
    }

    /// Closes a pooled connection once it has been idle `idle` (default 20 s); the next call
    /// opens a new one. Set it below the server's own keep-alive timeout (Apache's
    /// `KeepAliveTimeout` is 5 s by default, the hub's `socket_timeout_ms` 30 s): a
    /// connection the server closes just as a call goes out on it fails that call, which is
    /// then sent once more at once if it cannot run twice (hyper had not begun to write it,
    /// or it is a koji session's, which keeps its number) and fails otherwise.
    /// The pool is made anew (an `https://` client's TLS settings read again, as the
    /// `tls_*` settings do), so set it before the first call.
    pub fn idle_timeout(mut self, idle: Duration) -> Result<Self, Error> {
        self.idle_timeout = idle;
        self.http = Self::connect(&self.uri, &self.tls, idle)?;
        Ok(self)
    }

    /// Sends a call again, up to `attempts` more times and `interval` apart, when its
    /// connection failed, as koji's client does (`max_retries`, `retry_interval`), so that a
    /// hub restarting or a network blip costs a wait, not the call.
    ///
    /// A call that never reached the hub (no connection) is always sent again. One whose
    /// connection broke after it was sent may have run, so it is sent again only in a koji
    /// session, and with the same call number: the hub runs it if it had not, and answers
    /// its replay fault (koji's `RetryError`) if it had, so nothing runs twice. An anonymous
    /// call is not sent again then (koji's `anon_retry` is off by default too). A
    /// [timed-out](Self::timeout) call is not sent again. Default: no retries.
    #[must_use]
    pub fn retry_transport(mut self, attempts: u32, interval: Duration) -> Self {
        self.transport_retries = (attempts, interval);
        self
    }

    /// Sends this HTTP header with every call (a koji session's are set with
    /// [`koji_session`](Self::koji_session), which numbers the calls).
    ///
    /// A name or value that is not valid in HTTP is an [`Error::Encode`].
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, Error> {
        let name = HeaderName::try_from(name)
            .map_err(|e| Error::Encode(format!("header name `{name}`: {e}")))?;
        let mut value = HeaderValue::try_from(value)
            .map_err(|e| Error::Encode(format!("header `{name}` value: {e}")))?;
        // It may be a credential (`Authorization`): not shown by the client's `{:?}`.
        value.set_sensitive(true);
        self.headers.insert(name, value);
        Ok(self)
    }

    /// Authenticates every call with koji's session headers (`Koji-Session-Id`,
    /// `Koji-Session-Key`), giving each call the next call number (`Koji-Session-Callnum`,
    /// from 0, shared by this client's clones), as koji's `ClientSession` does after a login.
    /// A hub refuses a call number it has seen (a replay) or one lower than the last; a call
    /// this client sends again, because its connection closed before any of the answer came,
    /// keeps its number, so a hub that did run it refuses the second (koji's `RetryError`)
    /// instead of running it twice.
    ///
    /// Make a session's calls one at a time, as koji's client does: sent at once, they may
    /// reach the hub out of order, and the later number's call then refuses the earlier.
    /// A key that is not valid in an HTTP header is an [`Error::Encode`].
    pub fn koji_session(mut self, id: i64, key: &str) -> Result<Self, Error> {
        let key =
            HeaderValue::try_from(key).map_err(|e| Error::Encode(format!("session key: {e}")))?;
        self.session = Some(Arc::new(KojiSession::new(HeaderValue::from(id), key, None)));
        Ok(self)
    }

    /// The most a response may hold (default: 64 MiB, nesting 64 deep).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The fault codes of the hub this client calls, when it does not use the defaults:
    /// [`koji_login`](Self::koji_login) renews a session answered with their `expired` code
    /// (besides koji's 1007, always understood). A hub with [`FaultCodes::default`] answers
    /// -32005, which is understood without this.
    ///
    /// [`retry_offline`](Self::retry_offline) waits out their `offline` code (besides koji's
    /// 1014), unless another fault shares it: [`FaultCodes::default`]'s is the spec's system
    /// error, which a call over its time budget answers too, and such a call may have run.
    #[must_use]
    pub fn fault_codes(mut self, codes: &FaultCodes) -> Self {
        self.expired_code = codes.expired;
        self.offline_code = offline_code_of(codes);
        self
    }

    /// Sends a call the hub answered with its offline fault again, `interval` apart, for at
    /// most `max_wait` in all, as koji's client does with `offline_retry`: a hub taken offline
    /// for an upgrade (koji's `ServerOffline`) then costs a daemon or a long script a wait,
    /// not its work. An offline hub refuses a call before running it, so sending it again
    /// cannot run it twice. The offline fault is koji's 1014, or the code
    /// [`fault_codes`](Self::fault_codes) names. Once `max_wait` has passed, the fault is
    /// the call's. An `interval` under 50 ms counts as 50 ms. Default: not sent again.
    #[must_use]
    pub fn retry_offline(mut self, interval: Duration, max_wait: Duration) -> Self {
        self.offline_retries = (interval, max_wait);
        self
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        self.uri.to_string()
    }

    /// Calls `method` with `params` and decodes the result as `T`.
    ///
    /// `params` is anything that serializes to a list: a tuple (`(1, "a")`, or `(x,)` for one
    /// parameter), an array, a `Vec<Value>`, or `()` for none.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: impl Serialize,
    ) -> Result<T, Error> {
        let params = to_params(&params)?;
        decode(self.call_values(method, params).await?)
    }

    /// Calls `method` with positional `params` and koji keyword arguments `named` (anything
    /// that serializes to a struct: a `#[derive(Serialize)]` struct, a map, a [`Struct`]).
    pub async fn call_kw<T: DeserializeOwned>(
        &self,
        method: &str,
        params: impl Serialize,
        named: impl Serialize,
    ) -> Result<T, Error> {
        let mut params = to_params(&params)?;
        params.push(to_kwargs(&named)?);
        decode(self.call_values(method, params).await?)
    }

    /// Logs in to a koji hub with a user name and password (koji's `login`), and answers a
    /// client whose calls carry the session it opened, numbered as with
    /// [`koji_session`](Self::koji_session) and shared by its clones.
    ///
    /// When the hub answers a call with koji's `AuthExpired` (1007: the session outlived its
    /// lifetime; or the hub's own code for it, see [`fault_codes`](Self::fault_codes)), the
    /// client logs in again with `renew`, presenting the expired session (koji renews it in
    /// place: a new key, call numbers from 0), takes the session that login answers, and
    /// sends the call once more, as koji's `ClientSession` does. A wrong password is the
    /// hub's fault (koji's `AuthError`, 1002).
    pub async fn koji_login(&self, user: &str, password: &str) -> Result<Client, Error> {
        let credentials = Credentials::Password {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        let info = self.log_in(&credentials, false).await?;
        self.with_session(info, credentials)
    }

    /// Logs in to a koji hub with this client's certificate ([`tls_client_cert`]: koji's
    /// `sslLogin`, sent to the URL's path + `/ssllogin` as koji's client sends it), and
    /// answers a client whose calls carry the session it opened, as
    /// [`koji_login`](Self::koji_login) does. An expired session is renewed by logging in
    /// with the certificate again, presenting it (`renew`, as koji's client does: koji
    /// renews it in place; a hub that does not answers a new one, which the client takes).
    /// Without a certificate the hub refuses it (koji's `AuthError`, 1002).
    ///
    /// [`tls_client_cert`]: Self::tls_client_cert
    pub async fn koji_ssl_login(&self) -> Result<Client, Error> {
        let credentials = Credentials::Certificate { proxyuser: None };
        let info = self.log_in(&credentials, false).await?;
        self.with_session(info, credentials)
    }

    /// [`koji_ssl_login`](Self::koji_ssl_login) on behalf of `user` (koji's
    /// `sslLogin(proxyuser=user)`, as koji's web front end logs its users in, and the CLI's
    /// `--runas`): the session opened is `user`'s. The hub allows it only for a certificate
    /// it trusts to speak for others (koji's `ProxyDNs`); any other is refused
    /// (`AuthError`, 1002). An expired session is replaced by the same login again.
    pub async fn koji_ssl_login_as(&self, user: &str) -> Result<Client, Error> {
        let credentials = Credentials::Certificate {
            proxyuser: Some(user.to_owned()),
        };
        let info = self.log_in(&credentials, false).await?;
        self.with_session(info, credentials)
    }

    /// Logs out of the koji session this client carries (koji's `logout`: the hub closes it)
    /// and answers this client without it; clones still carrying it are refused from now on.
    /// Without a session, answers this client as it is, asking the hub nothing.
    pub async fn koji_logout(&self) -> Result<Client, Error> {
        if self.session.is_none() {
            return Ok(self.clone());
        }
        // Sent without renewal: a session the hub says expired needs no logging out.
        match self.send(call_body("logout", Vec::new())).await {
            Err(Error::Fault(f)) if is_expired(&f, self.expired_code) => {}
            outcome => {
                outcome?;
            }
        }
        let mut anonymous = self.clone();
        anonymous.session = None;
        Ok(anonymous)
    }

    /// Opens a subsession of the koji session this client carries (koji's `subsession`, as
    /// kojid opens one per task) and answers a client carrying it: the same user, its own
    /// call numbers, closed by the hub with its master's logout (or alone, by its own
    /// [`koji_logout`](Self::koji_logout)). It has no credentials of its own: once it
    /// expires, its calls are refused with the hub's expiry fault, and the master opens
    /// another. Without a session, the hub refuses it.
    pub async fn koji_subsession(&self) -> Result<Client, Error> {
        let info: SessionInfo = self.call("subsession", ()).await?;
        self.with_session_of(info, None)
    }

    /// This client, carrying the session `info` names.
    fn with_session(&self, info: SessionInfo, credentials: Credentials) -> Result<Client, Error> {
        self.with_session_of(info, Some(credentials))
    }

    /// This client, carrying the session `info` names, renewed with `credentials` if any.
    fn with_session_of(
        &self,
        info: SessionInfo,
        credentials: Option<Credentials>,
    ) -> Result<Client, Error> {
        let key = HeaderValue::try_from(info.key)
            .map_err(|e| Error::Decode(format!("session key: {e}")))?;
        let mut client = self.clone();
        client.session = Some(Arc::new(KojiSession::new(
            HeaderValue::from(info.id),
            key,
            credentials,
        )));
        Ok(client)
    }

    /// Logs in: koji's `login`, or `sslLogin` (sent to `PATH/ssllogin`); with `renew`, for
    /// the session this client carries, presented in its headers, as koji's client renews it
    /// (a hub such as koji's renews it in place: its id, its exclusive lock, its subsessions).
    async fn log_in(&self, credentials: &Credentials, renew: bool) -> Result<SessionInfo, Error> {
        match credentials {
            Credentials::Password { user, password } => {
                let mut named = Struct::new();
                if renew {
                    named.insert("renew", true);
                }
                let mut params = to_params(&(user, password))?;
                params.push(to_kwargs(&named)?);
                decode(self.send(call_body("login", params)).await?)
            }
            Credentials::Certificate { proxyuser } => {
                let mut ssl = self.clone();
                if !renew {
                    ssl.session = None;
                }
                ssl.uri = ssl_login_uri(&self.uri)?;
                // koji's `sslLogin(proxyuser, renew=True)`.
                let mut params = vec![proxyuser.as_deref().map_or(Value::Nil, Value::from)];
                if renew {
                    let mut named = Struct::new();
                    named.insert("renew", true);
                    params.push(to_kwargs(&named)?);
                }
                decode(ssl.send(call_body("sslLogin", params)).await?)
            }
        }
    }

    /// Calls `method` with these parameter values and answers the result value.
    pub async fn call_values(&self, method: &str, params: Vec<Value>) -> Result<Value, Error> {
        let body = call_body(method, params);
        self.renewing(|| self.send(body.clone())).await
    }

    /// Sends what `send` sends; if it is answered with the session's expiry and this client
    /// logged in, logs in again and sends it once more.
    async fn renewing<F, Fut>(&self, send: F) -> Result<Value, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Value, Error>>,
    {
        let renewable = self
            .session
            .as_ref()
            .filter(|s| s.credentials.is_some())
            .map(|s| s.renewals.load(Ordering::Acquire));
        let Some(seen) = renewable else {
            return send().await;
        };
        match send().await {
            Err(Error::Fault(f)) if is_expired(&f, self.expired_code) => {
                self.renew(seen).await?;
                send().await
            }
            outcome => outcome,
        }
    }

    /// Renews the session this client logged in with, unless another call did since
    /// renewal `seen`.
    async fn renew(&self, seen: i64) -> Result<(), Error> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        let Some(credentials) = &session.credentials else {
            return Ok(());
        };
        let _one_at_a_time = session.renewing.lock().await;
        if session.renewals.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        // The session answered is the one to use from now on: the same one renewed (koji), or
        // a new one from a hub whose login does not renew.
        let info = self.log_in(credentials, true).await?;
        let key = HeaderValue::try_from(info.key)
            .map_err(|e| Error::Decode(format!("session key: {e}")))?;
        *session
            .headers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (HeaderValue::from(info.id), key);
        // The hub numbers a renewed session's calls from the start, as koji's client does.
        session.next_callnum.store(0, Ordering::Relaxed);
        session.renewals.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// POSTs one call's `body` and answers its result, or its fault as it came.
    async fn send(&self, body: Bytes) -> Result<Value, Error> {
        self.send_to(&self.uri, XML, body).await
    }

    /// POSTs `body` of `content_type` to `uri` and answers the `methodResponse`'s result, or
    /// its fault as it came.
    async fn send_to(
        &self,
        uri: &Uri,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Value, Error> {
        let (interval, max_wait) = self.offline_retries;
        // Never back to back: a zero interval would call an offline hub in a tight loop.
        let interval = interval.max(MIN_OFFLINE_INTERVAL);
        let started = tokio::time::Instant::now();
        loop {
            let response = self.post(uri, content_type, body.clone()).await?;
            // Bounded by the time gone, not by the waits' sum (a wait may be cut short).
            let waited = started.elapsed();
            match hub_xmlrpc::parse_response(&response, &self.limits) {
                Ok(MethodResponse::Success(v)) => return Ok(v),
                Ok(MethodResponse::Fault(f)) if self.is_offline(&f) && waited < max_wait => {
                    let wait = interval.min(max_wait - waited);
                    tracing::debug!(
                        code = f.code,
                        wait_ms = wait.as_millis() as u64,
                        "hub offline: calling again"
                    );
                    tokio::time::sleep(wait).await;
                }
                Ok(MethodResponse::Fault(f)) => return Err(Error::Fault(f)),
                Err(e) => return Err(Error::Decode(e.to_string())),
            }
        }
    }

    /// Whether `fault` says the hub is offline: koji's `ServerOffline`, or this hub's own.
    fn is_offline(&self, fault: &Fault) -> bool {
        fault.code == KOJI_OFFLINE || Some(fault.code) == self.offline_code
    }

    /// Sends `calls` as one `system.multicall` and answers each one's result or fault, in
    /// order. The outer `Err` is for the request as a whole (transport, HTTP, a refused batch).
    pub async fn multicall(
        &self,
        calls: impl IntoIterator<Item = Call>,
    ) -> Result<Vec<Result<Value, Fault>>, Error> {
        let entries: Vec<Value> = calls.into_iter().map(Call::into_entry).collect();
        let n = entries.len();
        let items = match self
            .call_values("system.multicall", vec![Value::Array(entries)])
            .await?
        {
            Value::Array(items) => items,
            other => {
                return Err(Error::Decode(format!(
                    "system.multicall answered a {}, not an array",
                    other.type_name()
                )))
            }
        };
        if items.len() != n {
            return Err(Error::Decode(format!(
                "system.multicall answered {} results for {n} calls",
                items.len()
            )));
        }
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Array(mut one) if one.len() == 1 => Ok(Ok(one.remove(0))),
                Value::Struct(s) => entry_fault(&s).map(Err).ok_or_else(|| {
                    Error::Decode(format!(
                        "multicall result {i}: a struct without faultCode and faultString"
                    ))
                }),
                other => Err(Error::Decode(format!(
                    "multicall result {i}: expected a one-element array or a fault struct, \
                     found {}",
                    other.type_name()
                ))),
            })
            .collect()
    }

    /// The POST request to `uri` carrying `body`, with the call number `callnum` if a koji
    /// session is set.
    fn request(
        &self,
        uri: &Uri,
        content_type: &'static str,
        body: Bytes,
        callnum: Option<i64>,
    ) -> Result<Request<Full<Bytes>>, Error> {
        let mut request = Request::post(uri.clone())
            .header(CONTENT_TYPE, content_type)
            .header(USER_AGENT, concat!("hub/", env!("CARGO_PKG_VERSION")))
            // A hub with `gzip_answers_over` set sends big answers gzipped.
            .header(ACCEPT_ENCODING, "gzip")
            .body(Full::new(body))
            .map_err(|e| Error::Encode(e.to_string()))?;
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            headers.insert(name, value.clone());
        }
        if let (Some(session), Some(callnum)) = (&self.session, callnum) {
            let (id, key) = session.headers();
            headers.insert(SESSION_ID, id);
            headers.insert(SESSION_KEY, key);
            headers.insert(SESSION_CALLNUM, HeaderValue::from(callnum));
        }
        Ok(request)
    }

    /// POSTs `body` of `content_type` to `uri` and answers the response body of a 2xx answer.
    ///
    /// Like Python's `xmlrpc.client`, sends the request a second time if the connection
    /// was closed before any of the response arrived: a kept-alive connection the server
    /// closed while idle (its idle timeout) fails that way on first use.
    async fn post(
        &self,
        uri: &Uri,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Bytes, Error> {
        let (mut busy_left, max_wait) = self.busy_retries;
        let (mut lost_left, interval) = self.transport_retries;
        let next_callnum = || {
            self.session
                .as_ref()
                .map(|s| s.next_callnum.fetch_add(1, Ordering::Relaxed))
        };
        let mut callnum = next_callnum();
        loop {
            match self
                .post_once(uri, content_type, body.clone(), callnum)
                .await
            {
                Ok(answer) => return Ok(answer),
                // Not run: a new number, as a new call.
                Err(Attempt::Busy(_, after)) if busy_left > 0 => {
                    busy_left -= 1;
                    let wait = after.unwrap_or(Duration::from_secs(1)).min(max_wait);
                    tokio::time::sleep(wait).await;
                    callnum = next_callnum();
                }
                // Maybe run: the same number, which the hub's replay check knows.
                Err(Attempt::Unsent(_)) if lost_left > 0 => {
                    lost_left -= 1;
                    tokio::time::sleep(interval).await;
                }
                Err(Attempt::Lost(_)) if lost_left > 0 && callnum.is_some() => {
                    lost_left -= 1;
                    tokio::time::sleep(interval).await;
                }
                Err(
                    Attempt::Busy(e, _)
                    | Attempt::Unsent(e)
                    | Attempt::Lost(e)
                    | Attempt::Failed(e),
                ) => return Err(e),
            }
        }
    }

    /// One exchange of [`post`](Self::post)'s, numbered `callnum` in a koji session.
    async fn post_once(
        &self,
        uri: &Uri,
        content_type: &'static str,
        body: Bytes,
        callnum: Option<i64>,
    ) -> Result<Bytes, Attempt> {
        let exchange = async {
            let response = match self
                .http
                .request(self.request(uri, content_type, body.clone(), callnum)?)
                .await
            {
                // Sent again at once if it cannot have run, or if the hub's replay check
                // keeps it from running twice (a session's call keeps its number). An
                // anonymous call whose connection closed after it was sent may have run
                // (the hub may even have begun its answer): not sent again.
                Err(e) if never_sent(&e) || (callnum.is_some() && closed_before_response(&e)) => {
                    let again = self.request(uri, content_type, body, callnum)?;
                    self.http.request(again).await
                }
                other => other,
            }
            .map_err(|e| {
                let unsent = e.is_connect();
                let e = Error::Transport(Box::new(e));
                if unsent {
                    Attempt::Unsent(e)
                } else {
                    Attempt::Lost(e)
                }
            })?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let coding = crate::encoding::coding(response.headers()).map_err(|_| {
                Error::Decode("the response's Content-Encoding is not gzip or deflate".into())
            })?;
            let body = Limited::new(response.into_body(), self.limits.max_size)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        Error::Decode(format!(
                            "the response is larger than {} bytes",
                            self.limits.max_size
                        ))
                    } else {
                        Error::Transport(e)
                    }
                })?
                .to_bytes();
            let body = crate::encoding::decode(coding, body, self.limits.max_size).map_err(
                |e| match e {
                    DecodeError::TooLarge => Error::Decode(format!(
                        "the response is larger than {} bytes once decoded",
                        self.limits.max_size
                    )),
                    DecodeError::Corrupt => {
                        Error::Decode("the response is not valid in its Content-Encoding".into())
                    }
                },
            )?;
            if !status.is_success() {
                let excerpt = &body[..body.len().min(HTTP_BODY_EXCERPT)];
                let error = Error::Http {
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(excerpt).trim().to_owned(),
                };
                let refused = status == http::StatusCode::SERVICE_UNAVAILABLE
                    || status == http::StatusCode::TOO_MANY_REQUESTS;
                return Err(if refused {
                    Attempt::Busy(error, retry_after)
                } else {
                    Attempt::Failed(error)
                });
            }
            Ok(body)
        };
        match self.timeout {
            Some(t) => tokio::time::timeout(t, exchange)
                .await
                .map_err(|_| Attempt::Failed(Error::Timeout(t)))?,
            None => exchange.await,
        }
    }
}

/// A blocking wrapper of [`Client`], for code that is not async.
///
/// ```
/// use hub_core::client::blocking::Client;
/// # use hub_core::{registry::Registry, Server};
/// # use hub_xmlrpc::Value;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let registry = Registry::builder()
/// #     .blocking("echo", |_ctx, p| Ok(p.positional.into_iter().next().unwrap_or(Value::Nil)))
/// #     .build()?;
/// # let server = Server::builder().listen("127.0.0.1:0".parse()?).registry(registry).build()?.start()?;
/// # let url = format!("http://{}/RPC2", server.local_addr());
/// let client = Client::new(&url)?.timeout(std::time::Duration::from_secs(10));
/// let back: Vec<String> = client.call("echo", (["a", "b"],))?;
/// assert_eq!(back, ["a", "b"]);
/// # Ok(()) }
/// ```
pub mod blocking {
    use std::path::PathBuf;
    use std::time::Duration;

    use hub_xmlrpc::{Fault, Limits, Value};
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::{Call, Error};
    use crate::config::FaultCodes;

    /// A client's own single-threaded runtime.
    fn runtime() -> Result<tokio::runtime::Runtime, Error> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Transport(Box::new(e)))
    }

    /// The blocking [`Client`](super::Client): each call runs the async one to completion on
    /// a private single-threaded runtime. Must not be used from inside an async runtime.
    #[derive(Debug)]
    pub struct Client {
        inner: super::Client,
        rt: tokio::runtime::Runtime,
    }

    impl Client {
        /// Runs `call` on the client's runtime, after its pooled connections have seen what
        /// happened to them while it was stopped: between calls nothing runs them, and a
        /// connection the hub closed meanwhile would otherwise carry the call, which then
        /// fails (one yield lets the runtime poll its sockets before the call goes out).
        fn run<F: std::future::Future>(&self, call: F) -> F::Output {
            self.rt.block_on(async {
                tokio::task::yield_now().await;
                call.await
            })
        }

        /// See [`Client::new`](super::Client::new).
        pub fn new(url: impl AsRef<str>) -> Result<Client, Error> {
            let inner = super::Client::new(url)?;
            Ok(Client {
                inner,
                rt: runtime()?,
            })
        }

        /// See [`Client::timeout`](super::Client::timeout).
        #[must_use]
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.inner = self.inner.timeout(timeout);
            self
        }

        /// See [`Client::idle_timeout`](super::Client::idle_timeout).
        pub fn idle_timeout(mut self, idle: Duration) -> Result<Self, Error> {
            self.inner = self.inner.idle_timeout(idle)?;
            Ok(self)
        }

        /// See [`Client::retry_transport`](super::Client::retry_transport).
        #[must_use]
        pub fn retry_transport(mut self, attempts: u32, interval: Duration) -> Self {
            self.inner = self.inner.retry_transport(attempts, interval);
            self
        }

        /// See [`Client::retry_busy`](super::Client::retry_busy).
        #[must_use]
        pub fn retry_busy(mut self, attempts: u32, max_wait: Duration) -> Self {
            self.inner = self.inner.retry_busy(attempts, max_wait);
            self
        }

        /// See [`Client::retry_offline`](super::Client::retry_offline).
        #[must_use]
        pub fn retry_offline(mut self, interval: Duration, max_wait: Duration) -> Self {
            self.inner = self.inner.retry_offline(interval, max_wait);
            self
        }

        /// See [`Client::header`](super::Client::header).
        pub fn header(mut self, name: &str, value: &str) -> Result<Self, Error> {
            self.inner = self.inner.header(name, value)?;
            Ok(self)
        }

        /// See [`Client::limits`](super::Client::limits).
        #[must_use]
        pub fn limits(mut self, limits: Limits) -> Self {
            self.inner = self.inner.limits(limits);
            self
        }

        /// See [`Client::fault_codes`](super::Client::fault_codes).
        #[must_use]
        pub fn fault_codes(mut self, codes: &FaultCodes) -> Self {
            self.inner = self.inner.fault_codes(codes);
            self
        }

        /// See [`Client::koji_session`](super::Client::koji_session).
        pub fn koji_session(mut self, id: i64, key: &str) -> Result<Self, Error> {
            self.inner = self.inner.koji_session(id, key)?;
            Ok(self)
        }

        /// See [`Client::koji_login`](super::Client::koji_login): this client, logged in.
        pub fn koji_login(self, user: &str, password: &str) -> Result<Self, Error> {
            let inner = self.run(self.inner.koji_login(user, password))?;
            Ok(Client { inner, rt: self.rt })
        }

        /// See [`Client::koji_logout`](super::Client::koji_logout): this client, logged out.
        pub fn koji_logout(self) -> Result<Self, Error> {
            let inner = self.run(self.inner.koji_logout())?;
            Ok(Client { inner, rt: self.rt })
        }

        /// See [`Client::koji_ssl_login`](super::Client::koji_ssl_login): this client, logged
        /// in with its certificate.
        pub fn koji_ssl_login(self) -> Result<Self, Error> {
            let inner = self.run(self.inner.koji_ssl_login())?;
            Ok(Client { inner, rt: self.rt })
        }

        /// See [`Client::koji_subsession`](super::Client::koji_subsession). The subsession's
        /// client has a runtime and connections of its own: each blocking client's
        /// connections are driven by its own runtime.
        pub fn koji_subsession(&self) -> Result<Self, Error> {
            let mut inner = self.run(self.inner.koji_subsession())?;
            inner.http = super::Client::connect(&inner.uri, &inner.tls, inner.idle_timeout)?;
            Ok(Client {
                inner,
                rt: runtime()?,
            })
        }

        /// See [`Client::koji_ssl_login_as`](super::Client::koji_ssl_login_as).
        pub fn koji_ssl_login_as(self, user: &str) -> Result<Self, Error> {
            let inner = self.run(self.inner.koji_ssl_login_as(user))?;
            Ok(Client { inner, rt: self.rt })
        }

        /// See [`Client::tls_ca_file`](super::Client::tls_ca_file).
        pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Result<Self, Error> {
            self.inner = self.inner.tls_ca_file(path)?;
            Ok(self)
        }

        /// See [`Client::tls_client_cert`](super::Client::tls_client_cert).
        pub fn tls_client_cert(mut self, path: impl Into<PathBuf>) -> Result<Self, Error> {
            self.inner = self.inner.tls_client_cert(path)?;
            Ok(self)
        }

        /// The endpoint URL.
        pub fn url(&self) -> String {
            self.inner.url()
        }

        /// See [`Client::call`](super::Client::call).
        pub fn call<T: DeserializeOwned>(
            &self,
            method: &str,
            params: impl Serialize,
        ) -> Result<T, Error> {
            self.run(self.inner.call(method, params))
        }

        /// See [`Client::call_kw`](super::Client::call_kw).
        pub fn call_kw<T: DeserializeOwned>(
            &self,
            method: &str,
            params: impl Serialize,
            named: impl Serialize,
        ) -> Result<T, Error> {
            self.run(self.inner.call_kw(method, params, named))
        }

        /// See [`Client::call_values`](super::Client::call_values).
        pub fn call_values(&self, method: &str, params: Vec<Value>) -> Result<Value, Error> {
            self.run(self.inner.call_values(method, params))
        }

        /// See [`Client::multicall`](super::Client::multicall).
        pub fn multicall(
            &self,
            calls: impl IntoIterator<Item = Call>,
        ) -> Result<Vec<Result<Value, Fault>>, Error> {
            self.run(self.inner.multicall(calls))
        }

        /// See [`Client::koji_upload`](super::Client::koji_upload).
        pub fn koji_upload(
            &self,
            local: impl AsRef<std::path::Path>,
            path: &str,
            options: &super::UploadOptions,
        ) -> Result<super::Uploaded, Error> {
            self.rt
                .block_on(self.inner.koji_upload(local, path, options))
        }
    }
}
