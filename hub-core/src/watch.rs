//! What is logged around each call: the memory watch (koji's `MemoryWarnThreshold`) and, with
//! `debug = true`, the call log. Both are off the hot path when disabled: no formatting, no
//! `/proc` read.

use std::fmt::{self, Write as _};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hub_xmlrpc::Value;

use crate::config::Config;
use crate::dispatch::CallError;
use crate::registry::Params;
use crate::stats::Stats;

/// What is logged in place of the arguments of a method marked `sensitive`.
pub const REDACTED: &str = "(redacted: sensitive arguments)";

/// How many characters of the arguments are logged (koji's cut).
pub const ARGS_LOGGED: usize = 120;

/// One call's watch: started on the thread that runs the handler.
#[derive(Debug)]
pub(crate) struct CallWatch {
    args: Option<Summary>,
    threshold_kib: u64,
    debug: bool,
    mem_before: Option<u64>,
    started: Instant,
}

impl CallWatch {
    /// Prepares a watch; the arguments are summarized now (the handler consumes them) only if
    /// something may log them, and never when they are `sensitive` (a password). The summary
    /// is written into an inline buffer: no heap allocation unless something logs.
    pub(crate) fn new(config: &Config, params: &Params, sensitive: bool) -> Self {
        let threshold_kib = config.memory_warn_threshold_kib;
        let args = (config.debug || threshold_kib > 0).then(|| {
            let mut out = Summary::default();
            if sensitive {
                let _ = out.write_str(REDACTED);
            } else {
                let _ = write_args(&mut out, params);
            }
            out
        });
        Self {
            args,
            threshold_kib,
            debug: config.debug,
            mem_before: None,
            started: Instant::now(),
        }
    }

    /// Takes the first memory sample and starts the clock.
    pub(crate) fn start(&mut self) {
        if self.threshold_kib > 0 {
            self.mem_before = crate::memory::resident_unshared_kib();
        }
        self.started = Instant::now();
    }

    /// Takes the second sample, logs what is due, and returns the call's duration.
    pub(crate) fn end(
        self,
        stats: &Stats,
        method: &str,
        outcome: &Result<Value, CallError>,
    ) -> Duration {
        let elapsed = self.started.elapsed();
        let args = self.args.as_ref().map_or("", Summary::as_str);
        if let Some(before) = self.mem_before {
            if let Some(after) = crate::memory::resident_unshared_kib() {
                let growth = after.saturating_sub(before);
                if growth > self.threshold_kib {
                    stats.counters.memory_warnings.fetch_add(1, Relaxed);
                    tracing::warn!(
                        method,
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
            let outcome = match outcome {
                Ok(_) => "ok".to_owned(),
                Err(CallError::Fault(f)) => format!("fault {}: {}", f.code, f.message),
                Err(CallError::Refused(r)) => format!("refused: {}", r.reason()),
            };
            tracing::info!(
                method,
                args,
                elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                outcome,
                "call"
            );
        }
        elapsed
    }
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

/// The bytes [`ARGS_LOGGED`] characters can take in UTF-8.
const SUMMARY_BYTES: usize = ARGS_LOGGED * 4;

/// An inline string that refuses writes past [`ARGS_LOGGED`] characters (cut on a character
/// boundary; room for 120 characters of any width, so the cut is the same as koji's).
struct Summary {
    buf: [u8; SUMMARY_BYTES],
    len: usize,
    chars: usize,
}

impl Default for Summary {
    fn default() -> Self {
        Self {
            buf: [0; SUMMARY_BYTES],
            len: 0,
            chars: 0,
        }
    }
}

impl Summary {
    fn as_str(&self) -> &str {
        // Only whole characters are ever copied in, so this never fails.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Debug for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Write for Summary {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Fast path: the whole of `s` fits within the character budget.
        let room = ARGS_LOGGED - self.chars;
        if s.len() <= room {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
            self.chars += s.chars().count();
            return Ok(());
        }
        for c in s.chars() {
            if self.chars == ARGS_LOGGED {
                return Err(fmt::Error);
            }
            let n = c.len_utf8();
            c.encode_utf8(&mut self.buf[self.len..self.len + n]);
            self.len += n;
            self.chars += 1;
        }
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
