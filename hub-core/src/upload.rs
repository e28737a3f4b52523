//! Uploads, the second handler class: a `POST` with `Content-Type: application/octet-stream`
//! on an RPC path goes to the upload handler set with
//! [`ServerBuilder::upload`](crate::ServerBuilder::upload), not to XML-RPC.
//!
//! The handler is async and runs on the IO unit that read the request, like an async method:
//! it gets the query parameters and the body as a stream of chunks as they arrive from the
//! socket ([`UploadBody::chunk`]), so an upload is never held whole in memory and other
//! connections of the unit keep being served while it waits for data. Its answer is an
//! XML-RPC value sent as a `methodResponse` (koji answers `{size, fileverify, offset,
//! hexdigest}`). Blocking work per chunk (writing a file) is short; for longer blocking work
//! use `tokio::task::spawn_blocking`.
//!
//! The same lifecycle applies as to a call named `upload`: offline and lockout faults, the
//! authenticator (the caller is in the context), per-request resources committed or rolled
//! back, the panic cage. Limits: `max_upload_length` bytes (a larger declared length is
//! refused before reading, a longer stream is cut off: `413`), `socket_timeout_ms` between
//! two chunks (`408`), and `handler_timeout_ms` for the handler's own time, the waits for
//! chunks not counted (the `system_error` fault). The body is handed over as sent: a
//! `Content-Encoding` other than `identity` is refused with `415`.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hub_xmlrpc::Fault;
use hyper::body::Incoming;
use tracing::Instrument as _;

use crate::access::CallNote;
use crate::context::{Context, ServerParts};
use crate::dispatch::CallError;
use crate::lifecycle;
use crate::registry::{Params, RpcError};
use crate::server::Shared;
use crate::service::{closing, text, unsupported_coding, xml, Resp};
use crate::tls::ClientCert;
use crate::watch::CallWatch;

/// The method name uploads have in the context, the stats, the logs and `lockout_exempt`.
pub const UPLOAD_METHOD: &str = "upload";

/// Whether `req` is an upload (by its content type).
pub(crate) fn is_upload<B>(req: &Request<B>) -> bool {
    const OCTET_STREAM: &[u8] = b"application/octet-stream";
    // Bytes, not `to_str`: this runs on every request, and a value that is not visible ASCII
    // is no octet-stream anyway.
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return false;
    };
    // `text/xml`, the common case, is shorter than the one media type that is an upload.
    if value.len() < OCTET_STREAM.len() {
        return false;
    }
    let media_type = value
        .as_bytes()
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    media_type.trim_ascii().eq_ignore_ascii_case(OCTET_STREAM)
}

/// One upload: its context, query parameters and body.
///
/// ```
/// use hub_core::upload::Upload;
/// use hub_core::{RpcError, Struct, Value};
///
/// /// Counts the bytes; a real hub writes them to `filepath/filename`.
/// async fn receive(mut upload: Upload) -> Result<Value, RpcError> {
///     let name = upload.query("filename").unwrap_or("unnamed").to_owned();
///     let mut size = 0u64;
///     while let Some(chunk) = upload.body().chunk().await? {
///         size += chunk.len() as u64;
///     }
///     let mut answer = Struct::new();
///     answer.insert("filename", name);
///     answer.insert("size", size as i64);
///     Ok(Value::Struct(answer))
/// }
///
/// let builder = hub_core::Server::builder().upload(receive);
/// # drop(builder);
/// ```
#[derive(Debug)]
pub struct Upload {
    ctx: Arc<Context>,
    query: Vec<(String, String)>,
    body: UploadBody,
}

impl Upload {
    /// The request's context: caller, peer, headers, resources.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every query parameter, in order, percent-decoded.
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    /// The body stream.
    pub fn body(&mut self) -> &mut UploadBody {
        &mut self.body
    }

    /// Splits the upload into its parts.
    pub fn into_parts(self) -> (Arc<Context>, Vec<(String, String)>, UploadBody) {
        (self.ctx, self.query, self.body)
    }
}

/// An upload's body, read chunk by chunk as it arrives.
pub struct UploadBody {
    incoming: Incoming,
    declared: Option<u64>,
    read: u64,
    max: u64,
    idle: Duration,
    state: Arc<Mutex<BodyState>>,
}

#[derive(Debug, Default)]
struct BodyState {
    finished: bool,
    error: Option<UploadError>,
    /// Time spent waiting for the client's data (not the handler's: see `within_budget`).
    waited: Duration,
    waiting_since: Option<Instant>,
}

impl BodyState {
    /// All the time spent waiting for the client's data until `now`.
    fn waited_until(&self, now: Instant) -> Duration {
        self.waited
            + self
                .waiting_since
                .map_or(Duration::ZERO, |since| now - since)
    }
}

/// Marks a wait for the client's data in [`BodyState`] for as long as it lives (a chunk's
/// future dropped mid-wait still ends its wait).
struct Waiting<'a>(&'a Mutex<BodyState>);

impl<'a> Waiting<'a> {
    fn start(state: &'a Mutex<BodyState>) -> Self {
        lock(state).waiting_since = Some(Instant::now());
        Waiting(state)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = lock(self.0);
        if let Some(since) = state.waiting_since.take() {
            state.waited += since.elapsed();
        }
    }
}

fn lock(state: &Mutex<BodyState>) -> std::sync::MutexGuard<'_, BodyState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for UploadBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadBody")
            .field("declared", &self.declared)
            .field("read", &self.read)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl UploadBody {
    /// The next chunk, `None` at the end. An error ends the upload: the client gets `413`,
    /// `408` or `400` whatever the handler answers.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, UploadError> {
        if let Some(e) = self.lock().error.clone() {
            return Err(e);
        }
        loop {
            let waiting = Waiting::start(&self.state);
            let frame = tokio::time::timeout(self.idle, self.incoming.frame()).await;
            drop(waiting);
            let frame = match frame {
                Err(_) => return Err(self.fail(UploadError::TimedOut)),
                Ok(None) => {
                    self.lock().finished = true;
                    return Ok(None);
                }
                Ok(Some(Err(e))) => return Err(self.fail(UploadError::Broken(e.to_string()))),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            self.read += data.len() as u64;
            if self.read > self.max {
                return Err(self.fail(UploadError::TooLarge { limit: self.max }));
            }
            return Ok(Some(data));
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The `Content-Length` the client declared, if any (absent for a chunked body).
    pub fn declared_length(&self) -> Option<u64> {
        self.declared
    }

    fn fail(&self, e: UploadError) -> UploadError {
        self.lock().error = Some(e.clone());
        e
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BodyState> {
        lock(&self.state)
    }
}

/// Why an upload's body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadError {
    /// Longer than `max_upload_length` (`413`).
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// No data for `socket_timeout_ms` (`408`).
    TimedOut,
    /// The connection failed or the framing was broken (`400`).
    Broken(String),
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::TooLarge { limit } => write!(f, "upload larger than {limit} bytes"),
            UploadError::TimedOut => f.write_str("upload timed out"),
            UploadError::Broken(e) => write!(f, "upload unreadable: {e}"),
        }
    }
}

impl std::error::Error for UploadError {}

impl From<UploadError> for RpcError {
    /// The handler may return it with `?`; the client gets the HTTP status of the error.
    fn from(e: UploadError) -> Self {
        RpcError::Fault(Fault::new(-32500, e.to_string()))
    }
}

/// Serves one upload request.
pub(crate) async fn serve(
    shared: &Arc<Shared>,
    parts: &Arc<ServerParts>,
    peer: SocketAddr,
    client_cert: Option<&Arc<ClientCert>>,
    req: Request<Incoming>,
    mut note: Option<&mut CallNote>,
) -> Resp {
    let faults = &shared.config.faults;
    shared.stats.counters.uploads.add(1);
    if let Some(note) = note.as_deref_mut() {
        note.method = Some(UPLOAD_METHOD.to_owned());
    }
    let Some(handler) = shared.hooks.upload.clone() else {
        let fault = Fault::new(faults.method_not_found, "uploads are not supported here");
        return refused(&mut note, Err(fault.into()));
    };
    let max = shared.config.max_upload_length;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        shared.stats.counters.too_large.add(1);
        return closing(text(StatusCode::PAYLOAD_TOO_LARGE, "upload too large\n"));
    }
    // The handler gets the bytes as sent; encoded ones would be stored encoded, unnoticed.
    if crate::encoding::coding(req.headers()) != Ok(crate::encoding::Coding::Identity) {
        shared.stats.counters.bad_encodings.add(1);
        return unsupported_coding(
            "uploads are taken as sent: no Content-Encoding\n",
            "identity",
        );
    }
    let (mut head, incoming) = req.into_parts();
    if let Err(fault) = lifecycle::offline(shared) {
        return refused(&mut note, Err(fault.into()));
    }
    // The budget counts the lookup of a blocking authenticator too: it is not data.
    let budget = shared.switches.handler_timeout();
    let started = std::time::Instant::now();
    let caller = if lifecycle::authenticates_on_workers(shared) {
        let headers = std::mem::take(&mut head.headers);
        let lookup = lifecycle::authenticate_on_worker(
            shared,
            UPLOAD_METHOD,
            headers,
            Some(peer),
            client_cert.cloned(),
        );
        let looked_up = match budget {
            None => lookup.await,
            Some(budget) => match tokio::time::timeout(budget, lookup).await {
                Ok(looked_up) => looked_up,
                Err(_) => return over_budget(shared, peer, budget, &mut note),
            },
        };
        looked_up.map(|(caller, headers)| {
            head.headers = headers;
            caller
        })
    } else {
        lifecycle::authenticate(
            shared,
            UPLOAD_METHOD,
            &head.headers,
            Some(peer),
            client_cert.map(|c| &**c),
        )
        .map_err(CallError::Fault)
    };
    let caller = match caller {
        Ok(caller) => caller,
        Err(refusal) => return refused(&mut note, Err(refusal)),
    };
    crate::access::note_caller(note.as_deref().map(|n| &n.caller), caller.as_deref());
    if let Err(fault) = lifecycle::admit(shared, UPLOAD_METHOD, None, caller.as_deref()) {
        return refused(&mut note, Err(fault.into()));
    }
    let params = Params::default();
    let ctx = Arc::new(lifecycle::context(
        parts,
        std::borrow::Cow::Borrowed(UPLOAD_METHOD),
        &params,
        Some(peer),
        head.headers,
        caller,
        client_cert.cloned(),
    ));
    let state = Arc::new(Mutex::new(BodyState::default()));
    let upload = Upload {
        ctx: Arc::clone(&ctx),
        query: parse_query(head.uri.query().unwrap_or("")),
        body: UploadBody {
            incoming,
            declared,
            read: 0,
            max,
            idle: shared.switches.socket_timeout(),
            state: Arc::clone(&state),
        },
    };
    let watch = CallWatch::new(shared, &params, false, None);
    // In the call's span when spans are on, as a method's handler.
    let span = if shared.call_spans {
        lifecycle::call_span(&ctx)
    } else {
        tracing::Span::none()
    };
    let run = lifecycle::run_async(shared, &ctx, || handler(upload), watch).instrument(span);
    let counters = &shared.stats.counters;
    let outcome = match budget {
        None => run.await.0,
        Some(budget) => {
            let left = budget.saturating_sub(started.elapsed());
            match within_budget(run, left, &state).await {
                Some((outcome, _)) => outcome,
                // The handler was dropped: its resources rolled back, its body left unread.
                None => return over_budget(shared, peer, budget, &mut note),
            }
        }
    };
    noted(&mut note, &outcome);
    let state = std::mem::take(&mut *lock(&state));
    match state.error {
        Some(UploadError::TooLarge { .. }) => {
            counters.too_large.add(1);
            closing(text(StatusCode::PAYLOAD_TOO_LARGE, "upload too large\n"))
        }
        Some(UploadError::TimedOut) => {
            counters.timeouts.add(1);
            closing(text(StatusCode::REQUEST_TIMEOUT, "upload timed out\n"))
        }
        Some(UploadError::Broken(_)) => {
            counters.io_failures.add(1);
            closing(text(StatusCode::BAD_REQUEST, "upload unreadable\n"))
        }
        // A body the handler did not read to its end cannot be followed by another request.
        None if !state.finished => closing(xml(outcome)),
        None => xml(outcome),
    }
}

/// Notes an upload's fault, if it answers one, in its access line.
fn noted(note: &mut Option<&mut CallNote>, outcome: &Result<hub_xmlrpc::Value, CallError>) {
    if let (Some(note), Err(CallError::Fault(fault))) = (note, outcome) {
        note.fault = Some(fault.code);
    }
}

/// An upload refused before its handler ran: the answer, noted, and the connection closed
/// (its body is not read).
fn refused(
    note: &mut Option<&mut CallNote>,
    outcome: Result<hub_xmlrpc::Value, CallError>,
) -> Resp {
    noted(note, &outcome);
    closing(xml(outcome))
}

/// The answer to an upload over its time budget: the `system_error` fault, counted in
/// `timeouts` and logged.
fn over_budget(
    shared: &Shared,
    peer: SocketAddr,
    budget: Duration,
    note: &mut Option<&mut CallNote>,
) -> Resp {
    shared.stats.counters.timeouts.add(1);
    tracing::warn!(%peer, budget_ms = budget.as_millis() as u64, "upload over its time budget");
    let fault = Fault::new(
        shared.config.faults.system_error,
        format!(
            "upload exceeded its time budget of {} ms (time waiting for its data not counted)",
            budget.as_millis()
        ),
    );
    refused(note, Err(fault.into()))
}

/// Runs `handler` until it ends or has used `budget` of its own time, `None` then. Time spent
/// waiting for the client's data is not the handler's: `socket_timeout_ms` bounds each such
/// wait, and a big upload over a slow link must not be cut off for being big.
async fn within_budget<F: Future>(
    handler: F,
    budget: Duration,
    state: &Mutex<BodyState>,
) -> Option<F::Output> {
    let started = Instant::now();
    let mut handler = std::pin::pin!(handler);
    loop {
        let now = Instant::now();
        let used = (now - started).saturating_sub(lock(state).waited_until(now));
        let left = budget.checked_sub(used).filter(|left| !left.is_zero())?;
        // Expiring only means it is time to look again: part of it may have been waiting.
        if let Ok(output) = tokio::time::timeout(left, handler.as_mut()).await {
            return Some(output);
        }
    }
}

/// `a=1&b=x%20y` as decoded pairs (`+` is a space; invalid UTF-8 replaced).
fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("filename=a%20b.rpm&filepath=work/x+y&offset=-1&bad=%zz&flag");
        assert_eq!(
            q,
            [
                ("filename", "a b.rpm"),
                ("filepath", "work/x y"),
                ("offset", "-1"),
                ("bad", "%zz"),
                ("flag", "")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }
}
