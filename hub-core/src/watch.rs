//! What is logged around each call: the memory watch (koji's `MemoryWarnThreshold`) and, with
//! `debug = true`, the call log. Both are off the hot path when disabled: no formatting, no
//! `/proc` read. The memory watch alone formats nothing either: a warning (rare) finds the
//! call's arguments again by parsing its request body a second time ([`ArgsOrigin`]).

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hub_xmlrpc::{Limits, Value};

use crate::auth::Caller;
use crate::context::Context;
use crate::dispatch::CallError;
use crate::registry::Params;
use crate::server::Shared;
use crate::stats::Stats;

/// What is logged in place of the arguments of a method marked `sensitive`.
pub const REDACTED: &str = "(redacted: sensitive arguments)";

/// How many characters of the arguments are logged (koji's cut).
pub const ARGS_LOGGED: usize = 120;

/// The request body a call came in (and which entry, in a multicall): where a memory warning
/// finds the call's arguments, so that calls which log nothing never format them. A clone
/// shares the body's bytes.
#[derive(Debug, Clone)]
pub(crate) struct ArgsOrigin {
    body: Bytes,
    entry: Option<usize>,
}

impl ArgsOrigin {
    /// The single call in `body`.
    pub(crate) fn call(body: Bytes) -> Self {
        Self { body, entry: None }
    }

    /// Entry `i` of the multicall in this body.
    pub(crate) fn entry(&self, i: usize) -> Self {
        Self {
            body: self.body.clone(),
            entry: Some(i),
        }
    }

    /// The arguments as the handler got them, summarized; `None` if they cannot be found
    /// (the body already parsed once, so only a bug would get there).
    fn summarize(&self) -> Option<Summary> {
        let mut call = hub_xmlrpc::parse_call(&self.body, &Limits::UNLIMITED).ok()?;
        if let Some(i) = self.entry {
            let Some(Value::Array(entries)) = call.params.pop() else {
                return None;
            };
            let entry = entries.into_iter().nth(i)?;
            call = crate::multicall::entry_call(entry, 0).ok()?;
        }
        let (_, params) = Params::from_call(call);
        let mut out = Summary::default();
        let _ = write_args(&mut out, &params);
        Some(out)
    }
}

/// What a watch logs as the call's arguments.
#[derive(Debug)]
enum Args {
    /// Nothing logs them.
    Unused,
    /// Summarized when the watch was made (only for the call log, or a watch without a
    /// request body to find them in again).
    Now(Summary),
    /// A `sensitive` method's: [`REDACTED`].
    Redacted,
    /// Found again in the request if a warning needs them.
    Later(ArgsOrigin),
}

/// One call's watch: started on the thread that runs the handler.
#[derive(Debug)]
pub(crate) struct CallWatch {
    args: Args,
    threshold_kib: u64,
    debug: bool,
    mem_before: Option<u64>,
    /// Set by [`CallWatch::start`], on the thread that runs the handler.
    started: Option<Instant>,
}

impl CallWatch {
    /// Prepares a watch. The arguments are summarized now (the handler consumes them) for the
    /// call log, or for the memory watch when there is no request body to find them in again
    /// (`origin`); never when they are `sensitive` (a password). Only the call log or a watch
    /// without a request body allocates (one buffer for the summary).
    pub(crate) fn new(
        shared: &Shared,
        params: &Params,
        sensitive: bool,
        origin: Option<ArgsOrigin>,
    ) -> Self {
        let threshold_kib = shared.switches.memory_warn_threshold_kib();
        let debug = shared.switches.debug();
        let args = match origin {
            _ if sensitive => Args::Redacted,
            _ if debug => Args::Now(summary(params)),
            _ if threshold_kib == 0 => Args::Unused,
            Some(origin) => Args::Later(origin),
            None => Args::Now(summary(params)),
        };
        Self {
            args,
            threshold_kib,
            debug,
            mem_before: None,
            started: None,
        }
    }

    /// Starts the clock at `now` and notes the memory before the call (a sample at most
    /// [`SAMPLE_MAX_AGE`](crate::memory::SAMPLE_MAX_AGE) old: see [`crate::memory`]).
    pub(crate) fn start(&mut self, now: Instant) {
        self.started = Some(now);
        if self.threshold_kib > 0 {
            self.mem_before = crate::memory::recent_kib(now);
        }
    }

    /// Takes the second sample, logs what is due, and returns the call's duration.
    pub(crate) fn end(
        self,
        stats: &Stats,
        ctx: &Context,
        outcome: &Result<Value, CallError>,
    ) -> Duration {
        let method = ctx.method();
        let now = Instant::now();
        let elapsed = self
            .started
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        // A call shorter than the time the threshold's growth takes cannot have caused it:
        // no second sample.
        let may_have_grown = elapsed >= crate::memory::min_growth_time(self.threshold_kib);
        if let Some(before) = self.mem_before.filter(|_| may_have_grown) {
            if let Some(after) = crate::memory::fresh_kib(now) {
                let growth = after.saturating_sub(before);
                if growth > self.threshold_kib {
                    stats.counters.memory_warnings.add(1);
                    let found;
                    let args = match &self.args {
                        Args::Now(summary) => summary.as_str(),
                        Args::Redacted => REDACTED,
                        Args::Later(origin) => {
                            found = origin.summarize();
                            found
                                .as_ref()
                                .map_or("(arguments not found)", Summary::as_str)
                        }
                        Args::Unused => "",
                    };
                    tracing::warn!(
                        method,
                        user = user_of(ctx),
                        before_kib = before,
                        after_kib = after,
                        growth_kib = growth,
                        args,
                        "Memory usage of process {} grew from {before} KiB to {after} KiB \
                         (+{growth} KiB) processing request {method} with args {args}",
                        std::process::id()
                    );
                }
            }
        }
        if self.debug {
            let args = match &self.args {
                Args::Now(summary) => summary.as_str(),
                Args::Redacted => REDACTED,
                Args::Later(_) | Args::Unused => "",
            };
            let outcome = match outcome {
                Ok(_) => "ok".to_owned(),
                // A fault's message may quote an argument (a decoding error quotes the value
                // it could not take: a password given in the wrong place).
                Err(CallError::Fault(f)) if matches!(self.args, Args::Redacted) => {
                    format!("fault {}: (message redacted: sensitive arguments)", f.code)
                }
                Err(CallError::Fault(f)) => format!("fault {}: {}", f.code, f.message),
                Err(CallError::Refused(r)) => format!("refused: {}", r.reason()),
            };
            // koji's "Completed method M for session S (#callnum)": who, as well as what.
            let session = ctx
                .caller()
                .and_then(Caller::session_id)
                .map_or_else(|| "-".to_owned(), |id| id.to_string());
            tracing::info!(
                method,
                user = user_of(ctx),
                session,
                args,
                elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                outcome,
                "call"
            );
        }
        elapsed
    }
}

/// The caller's name for a log line; `-` for an anonymous call.
fn user_of(ctx: &Context) -> &str {
    ctx.caller().map_or("-", Caller::name)
}

/// The arguments summarized for a log line (see [`write_args`]).
fn summary(params: &Params) -> Summary {
    let mut out = Summary::default();
    let _ = write_args(&mut out, params);
    out
}

/// The arguments as Python would print them, cut at [`ARGS_LOGGED`] characters; formatting
/// stops there, so a huge argument costs no more than a small one.
#[cfg(test)]
pub(crate) fn summarize(params: &Params) -> String {
    let mut out = Summary::default();
    let _ = write_args(&mut out, params);
    out.as_str().to_owned()
}

fn write_args(out: &mut Summary, params: &Params) -> fmt::Result {
    out.write_char('(')?;
    for (i, v) in params.positional.iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        write_value(out, v)?;
    }
    if let Some(named) = &params.named {
        for (i, (k, v)) in named.iter().enumerate() {
            if i > 0 || !params.positional.is_empty() {
                out.write_str(", ")?;
            }
            write!(out, "{k}=")?;
            write_value(out, v)?;
        }
    }
    out.write_char(')')
}

fn write_value(out: &mut Summary, v: &Value) -> fmt::Result {
    match v {
        Value::Int(n) => write!(out, "{n}"),
        Value::Bool(b) => out.write_str(if *b { "True" } else { "False" }),
        // Most strings need no escaping: copied as they are, not char by char. Only the part
        // that can show is looked at (a huge argument costs no more than a small one).
        Value::String(s) if plain(&s.as_bytes()[..s.len().min(ARGS_LOGGED)]) => {
            let shown = s.len().min(ARGS_LOGGED);
            out.write_char('"')?;
            out.write_str(&s[..shown])?;
            if shown < s.len() {
                return Err(fmt::Error); // past the cut anyway
            }
            out.write_char('"')
        }
        Value::String(s) => write!(out, "{s:?}"),
        Value::Double(d) => write!(out, "{d}"),
        Value::DateTime(d) => write!(out, "{d:?}"),
        Value::Base64(b) => write!(out, "<{} bytes>", b.len()),
        Value::Nil => out.write_str("None"),
        Value::Array(items) => {
            out.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_value(out, item)?;
            }
            out.write_char(']')
        }
        Value::Struct(s) => {
            out.write_char('{')?;
            for (i, (k, item)) in s.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write!(out, "{k:?}: ")?;
                write_value(out, item)?;
            }
            out.write_char('}')
        }
    }
}

/// Printable ASCII that `{:?}` writes as it is.
fn plain(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\'))
}

/// A string that refuses writes past [`ARGS_LOGGED`] characters (cut on a character
/// boundary). Made only when something logs the arguments, so its allocation is no cost to
/// the calls that do not.
#[derive(Default)]
struct Summary {
    text: String,
    chars: usize,
}

impl Summary {
    fn as_str(&self) -> &str {
        &self.text
    }

    /// Appends `s`, which fits within the character budget.
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.chars += s.chars().count();
    }
}

impl fmt::Debug for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Write for Summary {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = ARGS_LOGGED - self.chars;
        // Fast path: fewer bytes than characters left means it fits whatever its width.
        if s.len() <= room {
            self.push(s);
            return Ok(());
        }
        let mut end = 0;
        for (taken, (i, c)) in s.char_indices().enumerate() {
            if taken == room {
                self.push(&s[..i]);
                return Err(fmt::Error);
            }
            end = i + c.len_utf8();
        }
        self.push(&s[..end]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_xmlrpc::Struct;

    #[test]
    fn args_cut_at_120() {
        let mut named = Struct::new();
        named.insert("strict", true);
        let p = Params {
            positional: vec![Value::from(7), Value::from("x")],
            named: Some(named),
        };
        assert_eq!(summarize(&p), "(7, \"x\", strict=True)");
        // Escaped or not, a string reads as Rust's `{:?}` would write it.
        let long = "z".repeat(500);
        for text in ["plain words", "quote \" and \\ and \n", &long] {
            let p = Params {
                positional: vec![Value::from(text)],
                named: None,
            };
            let debug: String = format!("({text:?})").chars().take(ARGS_LOGGED).collect();
            assert_eq!(summarize(&p), debug);
        }
        let p = Params {
            positional: vec![Value::from("y".repeat(10_000))],
            named: None,
        };
        assert_eq!(summarize(&p).chars().count(), ARGS_LOGGED);
        // Wide characters: still 120 characters, cut on a boundary.
        let p = Params {
            positional: vec![Value::from("\u{1F600}é".repeat(200))],
            named: None,
        };
        let s = summarize(&p);
        assert_eq!(s.chars().count(), ARGS_LOGGED);
        assert!(s.starts_with("(\"\u{1F600}é"));
    }
}
