//! The access log (`access_log = true`): one INFO line per HTTP request once its answer is
//! ready, on the `hub::access` target, so a subscriber can send it elsewhere than the rest.
//!
//! It says who asked for what and how it went: the client's address (behind a trusted proxy,
//! the one the proxy names), the request line, the status, the answer's bytes, the time
//! taken, and for an XML-RPC call (or an upload, `upload`) the method and the fault code, if
//! it answered one. Nothing the client sent beyond the request line is logged: no header, no
//! body, and a method name only when the registry knows it (`(unknown)` otherwise); of the
//! request line, the HTTP method and the path cut to [`MAX_PATH`] bytes, and of a query only
//! its parameters' names (old koji clients send `session-key` there), cut to [`MAX_QUERY`].
//! So a client cannot put a secret, or its own text by the kilobyte, into the log. Who called is the name
//! the authenticator gave (`user`, `-` for an anonymous call or one refused before it was
//! known).
//!
//! A request whose client went away before its answer was ready (hyper drops its future) is
//! logged then, with status `499`, nginx's "client closed request", and no bytes: an operator
//! looking for calls that outlived their clients' patience finds them, with their method.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::{Method, Uri};

use crate::server::Shared;

/// A request's line in the making (boxed, so that a server without the log carries one
/// pointer in each request's future, not the URI).
pub(crate) struct Access {
    peer: SocketAddr,
    started: Instant,
    method: Method,
    uri: Uri,
    /// Filled in by the XML-RPC call, if the request is one.
    pub(crate) call: CallNote,
    /// Logged: by `finish`, or on drop for a request whose client went away.
    logged: bool,
}

/// The status logged for a request whose client went away before its answer (nginx's).
const CLIENT_GONE: u16 = 499;

/// What an XML-RPC call adds to its request's line.
#[derive(Debug, Default)]
pub(crate) struct CallNote {
    /// The method as called (an alias stays an alias), or `(unknown)`.
    pub(crate) method: Option<String>,
    /// The code of the fault it answered.
    pub(crate) fault: Option<i32>,
    /// Who the authenticator said called, once it has: on this unit, or on a worker with a
    /// blocking authenticator (hence shared).
    pub(crate) caller: CallerSlot,
}

/// Where a call's authenticated caller's name is put, wherever that happens.
pub(crate) type CallerSlot = Arc<OnceLock<Box<str>>>;

impl CallNote {
    /// Notes the method `name` a call asked for.
    pub(crate) fn called(&mut self, shared: &Shared, name: &str) {
        let known = shared.calls.contains_key(name);
        self.method = Some(if known { name } else { "(unknown)" }.to_owned());
    }
}

/// Notes `caller` in `slot`, if the request keeps an access line: the test inlined into
/// every call's path, the noting (off by default) kept out of it.
#[inline(always)]
pub(crate) fn note_caller(slot: Option<&CallerSlot>, caller: Option<&crate::auth::Caller>) {
    #[cold]
    #[inline(never)]
    fn note(slot: &CallerSlot, caller: &crate::auth::Caller) {
        let _ = slot.set(caller.name().into());
    }
    if let (Some(slot), Some(caller)) = (slot, caller) {
        note(slot, caller);
    }
}

impl Access {
    /// The start of a request's line, if the server keeps an access log.
    #[inline]
    pub(crate) fn start<B>(
        shared: &Shared,
        peer: SocketAddr,
        req: &http::Request<B>,
    ) -> Option<Box<Access>> {
        shared.switches.access_log().then(|| {
            Box::new(Access {
                peer,
                started: Instant::now(),
                method: req.method().clone(),
                uri: req.uri().clone(),
                call: CallNote::default(),
                logged: false,
            })
        })
    }

    /// Logs the line of a request answered `status` with `bytes` of body.
    pub(crate) fn finish(&mut self, status: u16, bytes: u64) {
        self.logged = true;
        let call = &self.call;
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let called = call.method.as_deref().unwrap_or("-");
        let fault = call
            .fault
            .map_or_else(|| "-".to_owned(), |code| code.to_string());
        let user = call.caller.get().map_or("-", |name| name);
        tracing::info!(
            target: "hub::access",
            peer = %self.peer,
            http_method = %capped(self.method.as_str(), MAX_METHOD),
            uri = %logged_uri(&self.uri),
            status,
            bytes,
            micros,
            call = called,
            fault = %fault,
            user,
            "request"
        );
    }
}

/// The most of a request's path logged, in bytes.
pub const MAX_PATH: usize = 256;
/// The most of a query's parameter names logged, in bytes.
pub const MAX_QUERY: usize = 128;
/// The most of an HTTP method logged (hyper takes any token), in bytes.
const MAX_METHOD: usize = 16;

/// The URI as logged: the path cut to [`MAX_PATH`], and of the query the names of its
/// parameters only (`?session-id=…&session-key=…` is logged `?session-id&session-key`), cut
/// to [`MAX_QUERY`].
fn logged_uri(uri: &Uri) -> String {
    let mut line = capped(uri.path(), MAX_PATH);
    if let Some(query) = uri.query() {
        let names: Vec<&str> = query
            .split('&')
            .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
            .collect();
        line.push('?');
        line.push_str(&capped(&names.join("&"), MAX_QUERY));
    }
    line
}

/// `text` whole if it is at most `max` bytes, else its first `max` bytes (to a character
/// boundary) and how many were left out.
fn capped(text: &str, max: usize) -> String {
    let head = crate::text::head(text, max);
    if head.len() == text.len() {
        return text.to_owned();
    }
    format!("{head}…(+{} bytes)", text.len() - head.len())
}

impl Drop for Access {
    fn drop(&mut self) {
        if !self.logged {
            self.finish(CLIENT_GONE, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_is_logged_without_query_values_and_cut_to_size() {
        let uri = |s: &str| s.parse::<Uri>().expect("a URI");
        assert_eq!(logged_uri(&uri("/RPC2")), "/RPC2");
        assert_eq!(
            logged_uri(&uri("/kojihub?session-id=7&session-key=7-secret&callnum=3")),
            "/kojihub?session-id&session-key&callnum"
        );
        assert_eq!(logged_uri(&uri("/x?flag&a=&=b")), "/x?flag&a&");
        let long = format!("/{}", "p".repeat(1000));
        let line = logged_uri(&uri(&format!("{long}?{}=1", "q".repeat(1000))));
        assert_eq!(
            line,
            format!(
                "/{}…(+745 bytes)?{}…(+872 bytes)",
                "p".repeat(MAX_PATH - 1),
                "q".repeat(MAX_QUERY)
            )
        );
        assert_eq!(
            capped("ééé", 3),
            "é…(+4 bytes)",
            "cut at a character boundary"
        );
    }
}
