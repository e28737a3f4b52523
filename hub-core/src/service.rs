//! The HTTP face of a unit: routes one hyper request and builds its response.
//!
//! - `POST` with `Content-Type: application/octet-stream` on an RPC path → the upload handler
//!   ([`crate::upload`]: streamed, bounded by `max_upload_length`);
//! - any other `POST` on an RPC path → XML-RPC (body bounded by `max_request_length` → `413`,
//!   and by `socket_timeout_ms` → `408`; a gzip or deflate body decoded within the same
//!   limit, another `Content-Encoding` → `415`; the call by `handler_timeout_ms` →
//!   `system_error` fault);
//! - any other method on an RPC path → `405` with `Allow: POST` and koji's sentence;
//! - `GET /metrics` → Prometheus text; `GET /healthz` → `200`, or `503` while draining or
//!   offline;
//! - anything else → `404`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use std::future::Future;
use std::task::Poll;

use bytes::{Buf, Bytes};
use http::header::{
    HeaderValue, ACCEPT_ENCODING, ALLOW, CONNECTION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
    VARY,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::access::{Access, CallNote};
use crate::body::{read_to_end, BodyError, Held};
use crate::conn::ConnState;
use crate::context::ServerParts;
use crate::dispatch::{over_budget, start_body, CallError};
use crate::encoding::{self, DecodeError};
use crate::payload::Payload;
use crate::queue::Refusal;
use crate::server::Shared;
use crate::tls::ClientCert;

/// The response type of every route.
pub(crate) type Resp = Response<Full<Payload>>;

const NOT_POST: &str = "This is an XML-RPC server. Only POST requests are accepted.\n";

/// Serves one request. Never fails: every outcome is an HTTP answer.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    parts: &Arc<ServerParts>,
    conn: &ConnState,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let _flight = conn.begin();
    let counters = &shared.stats.counters;
    counters.requests_read.add(1);
    let peer = if shared.trusted_proxies.is_empty() {
        peer
    } else {
        shared.trusted_proxies.client(peer, req.headers())
    };
    let mut access = Access::start(shared, peer, &req);
    let path = req.uri().path();
    let mut resp = if shared.config.rpc_paths.iter().any(|p| p == path) {
        // koji's older clients send their session in the query.
        crate::session::headers_from_query(&mut req);
        if let Some(wait) = over_rate(shared, peer, req.method()) {
            // A client waiting for `100 Continue` has not sent its body: none is asked for.
            let discarded = !req.headers().contains_key(hyper::header::EXPECT)
                && crate::body::discard_arrived(
                    req.body_mut(),
                    DISCARD_ON_REFUSAL,
                    DISCARD_PATIENCE,
                )
                .await;
            too_many_requests(wait, discarded)
        } else if req.method() == Method::POST && crate::upload::is_upload(&req) {
            let note = access.as_mut().map(|a| &mut a.call);
            crate::upload::serve(shared, parts, peer, conn.client_cert(), req, note).await
        } else if req.method() == Method::POST {
            let note = access.as_mut().map(|a| &mut a.call);
            let answer = rpc(shared, parts, peer, conn.client_cert(), &mut req, note).await;
            if let (Some(a), Answer::Call(Err(CallError::Fault(f)), _)) = (&mut access, &answer) {
                a.call.fault = Some(f.code);
            }
            answer.into_response()
        } else {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, NOT_POST);
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            r
        }
    } else if path == "/metrics" && req.method() == Method::GET {
        let mut metrics = shared.stats.prometheus();
        crate::in_flight::write_prometheus(&mut metrics, crate::dispatch::limited(&shared.calls));
        let mut r = text(StatusCode::OK, metrics);
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        r
    } else if path == "/healthz" && req.method() == Method::GET {
        if shared.shutdown.is_draining() {
            text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
        } else if shared.status.is_offline() {
            text(StatusCode::SERVICE_UNAVAILABLE, "offline\n")
        } else {
            text(StatusCode::OK, "ok\n")
        }
    } else {
        text(StatusCode::NOT_FOUND, "not found\n")
    };
    for (name, value) in &shared.hooks.response_headers {
        resp.headers_mut().insert(name, value.clone());
    }
    let closes = resp.headers().get(CONNECTION);
    if closes.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close")) {
        conn.close_after_answer();
    }
    counters.responses_written.add(1);
    let bytes = resp.body().size_hint_exact();
    counters.bytes_out.add(bytes);
    if let Some(access) = &mut access {
        access.finish(resp.status().as_u16(), bytes);
    }
    Ok(resp)
}

/// How long a `POST` from `peer` must wait for its client's next token, if it is over its
/// request rate (`max_requests_per_ip_per_sec`); counted.
#[inline]
fn over_rate(shared: &Shared, peer: SocketAddr, method: &Method) -> Option<std::time::Duration> {
    let limit = &shared.rate_limit;
    if !limit.is_on() || method != Method::POST {
        return None;
    }
    let wait = limit.admit(peer.ip(), std::time::Instant::now()).err()?;
    shared.stats.counters.rate_limited.add(1);
    Some(wait)
}

/// The most of a refused request's body that is dropped to keep its connection (a call's
/// body usually comes with its head).
const DISCARD_ON_REFUSAL: usize = 64 << 10;

/// How long a refused request's body may take to arrive whole and keep its connection: time
/// for what was sent with the head, not for a client still writing.
const DISCARD_PATIENCE: std::time::Duration = std::time::Duration::from_millis(50);

/// `429` for a client over its request rate, with the seconds until it may call again. The
/// connection stays open if the body was `discarded` whole (as nginx's `limit_req` keeps it:
/// a client that retries then does not pay, nor make the hub pay, a new connection and TLS
/// handshake each time); otherwise the rest of the body is not read, and it closes.
#[cold]
fn too_many_requests(wait: std::time::Duration, discarded: bool) -> Resp {
    let mut r = text(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests from this client: slow down\n",
    );
    let secs = crate::rate::retry_after_secs(wait);
    r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    if discarded {
        r
    } else {
        closing(r)
    }
}

/// What an XML-RPC request is answered with, before it is a response (a few words: the
/// request's future holds it, where a whole `Response` would be copied at each return).
enum Answer {
    /// A `methodResponse`, or `503` for a refused job; gzipped from this many bytes if set.
    Call(Result<hub_xmlrpc::Value, CallError>, Option<usize>),
    /// The body could not be read within its limits: this status and text, and the
    /// connection closes.
    Unread(StatusCode, &'static str),
    /// The body was read but could not be decoded from its `Content-Encoding`: this status
    /// and text; the connection stays open.
    Undecoded(StatusCode, &'static str),
    /// A `Content-Encoding` the hub does not decode: `415` naming those it does; the body is
    /// not read, so the connection closes.
    UnknownCoding,
    /// Holding the body would pass `max_body_bytes_held`: `503` + `Retry-After`; the
    /// connection closes if the body was not read to its end.
    Busy { unread: bool },
}

impl Answer {
    fn into_response(self) -> Resp {
        match self {
            Answer::Call(outcome, gzip_over) => xml_for(outcome, gzip_over),
            Answer::Unread(status, why) => closing(text(status, why)),
            Answer::Undecoded(status, why) => text(status, why),
            Answer::UnknownCoding => unsupported_coding(
                "unsupported Content-Encoding: send the body as is, gzip or deflate\n",
                encoding::ACCEPTED,
            ),
            Answer::Busy { unread } => {
                let mut r = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server busy: too many request bodies held, retry\n",
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                if unread {
                    closing(r)
                } else {
                    r
                }
            }
        }
    }
}

/// Reads the body within its limits, runs the call.
async fn rpc(
    shared: &Arc<Shared>,
    parts: &Arc<ServerParts>,
    peer: SocketAddr,
    client_cert: Option<&Arc<ClientCert>>,
    req: &mut Request<Incoming>,
    note: Option<&mut CallNote>,
) -> Answer {
    let counters = &shared.stats.counters;
    let max = shared.config.max_request_length;
    // hyper's body knows the declared `Content-Length` (no header lookup).
    if hyper::body::Body::size_hint(req.body()).lower() > max as u64 {
        counters.too_large.add(1);
        return Answer::Unread(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    let Ok(coding) = encoding::coding(req.headers()) else {
        counters.bad_encodings.add(1);
        return Answer::UnknownCoding;
    };
    let gzip_over = match shared.switches.gzip_answers_over() {
        0 => None,
        over => encoding::accepts_gzip(req.headers()).then_some(over),
    };
    // The call's context takes the headers (no copy); the body is read in place.
    let headers = std::mem::take(req.headers_mut());
    // This request's share of the bodies held, given back when its answer is made.
    let mut held = Held::new(&counters.body_bytes_held, shared.config.max_body_bytes_held);
    let read = {
        let mut read = std::pin::pin!(read_to_end(req.body_mut(), max, &mut held));
        // A small body is usually in hyper's buffer already: one poll reads it, and only a
        // body still on the wire gets the `socket_timeout_ms` timer.
        let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
        match first {
            Poll::Ready(r) => Ok(r),
            // `timeout`, not a deadline of our own: it takes a timeout too long for the
            // clock (`u64::MAX` ms) as "never".
            Poll::Pending => tokio::time::timeout(shared.switches.socket_timeout(), read).await,
        }
    };
    let body = match read {
        Err(_) => {
            counters.timeouts.add(1);
            return Answer::Unread(StatusCode::REQUEST_TIMEOUT, "request body timed out\n");
        }
        Ok(Err(BodyError::TooLarge)) => {
            counters.too_large.add(1);
            return Answer::Unread(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
        Ok(Err(BodyError::Unreadable)) => {
            counters.io_failures.add(1);
            return Answer::Unread(StatusCode::BAD_REQUEST, "request body unreadable\n");
        }
        Ok(Err(BodyError::Busy)) => {
            counters.body_budget_refusals.add(1);
            return Answer::Busy { unread: true };
        }
        Ok(Ok(body)) => body,
    };
    counters.bytes_in.add(body.len() as u64);
    let body = match encoding::decode(coding, body, max) {
        Ok(body) => body,
        Err(DecodeError::TooLarge) => {
            counters.too_large.add(1);
            return Answer::Undecoded(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large once decoded\n",
            );
        }
        Err(DecodeError::Corrupt) => {
            counters.bad_encodings.add(1);
            return Answer::Undecoded(
                StatusCode::BAD_REQUEST,
                "request body not valid in its Content-Encoding\n",
            );
        }
    };
    // A decoded body is held at its decoded size (the body as sent is gone by now).
    if coding != encoding::Coding::Identity && held.grow_to(body.len()).is_err() {
        counters.body_budget_refusals.add(1);
        return Answer::Busy { unread: false };
    }
    let (call, budget) = start_body(shared, parts, body, Some(peer), client_cert, headers, note);
    let Some(budget) = budget else {
        return Answer::Call(call.outcome().await, gzip_over);
    };
    // Boxed: keeps the timer out of the future of every request served without a budget.
    match Box::pin(call.outcome_within(budget)).await {
        Some(outcome) => Answer::Call(outcome, gzip_over),
        None => {
            // Dropping the call stops an async handler; a blocking one runs on, and its
            // result is discarded (its waiter is gone).
            tracing::warn!(%peer, budget_ms = budget.as_millis() as u64, "call over its time budget");
            Answer::Call(Err(over_budget(shared, budget)), gzip_over)
        }
    }
}

/// A `methodResponse` (value or fault) or, for a refused job, `503`.
pub(crate) fn xml(outcome: Result<hub_xmlrpc::Value, CallError>) -> Resp {
    xml_for(outcome, None)
}

/// [`xml`], gzipped when it is at least `gzip_over` bytes.
fn xml_for(outcome: Result<hub_xmlrpc::Value, CallError>, gzip_over: Option<usize>) -> Resp {
    let answer = match outcome {
        Ok(v) => Payload::answer(|out| hub_xmlrpc::write_response(&v, out)),
        Err(CallError::Fault(f)) => Payload::answer(|out| hub_xmlrpc::write_fault(&f, out)),
        Err(CallError::Refused(r)) => return refused(r),
    };
    let gzip = gzip_over.is_some_and(|over| answer.remaining() >= over);
    let body = if gzip {
        let buf = encoding::gzip(answer.chunk());
        Payload::Owned { buf, pos: 0 }
    } else {
        answer
    };
    let mut resp = response(body);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    resp
}

/// A `200` answer with `body` and no headers yet, in a header map kept on this thread (the
/// one a finished call's context gave back, usually).
fn response(body: Payload) -> Resp {
    let mut resp = Response::new(Full::new(body));
    *resp.headers_mut() = crate::header_map::take();
    resp
}

/// `503` + `Retry-After` for a refused job.
pub(crate) fn refused(r: Refusal) -> Resp {
    let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, r.reason());
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut resp = response(Payload::Shared(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `415` for a body in a `Content-Encoding` not decoded here, naming those that are
/// (`accepted`, as `Accept-Encoding`: RFC 9110 §12.5.3); the body is left unread, so the
/// connection closes.
pub(crate) fn unsupported_coding(why: &'static str, accepted: &'static str) -> Resp {
    let mut resp = text(StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    resp.headers_mut()
        .insert(ACCEPT_ENCODING, HeaderValue::from_static(accepted));
    closing(resp)
}

/// Marks a response as the last on its connection (the request body was not fully read).
pub(crate) fn closing(mut resp: Resp) -> Resp {
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

trait ExactSize {
    fn size_hint_exact(&self) -> u64;
}

impl ExactSize for Full<Payload> {
    fn size_hint_exact(&self) -> u64 {
        use hyper::body::Body as _;
        self.size_hint().exact().unwrap_or(0)
    }
}
