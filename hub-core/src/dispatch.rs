//! The minimal request path of one XML-RPC call: parse → split keyword arguments → look up →
//! make a [`Context`] → run (blocking on the worker pool, async inline on the unit) → answer.
//!
//! Panics are caught here (a blocking handler on its worker, an async one around each poll):
//! they answer the `internal_error` fault and the thread lives on.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use hub_xmlrpc::{parse_call, Fault, Value};

use crate::context::Context;
use crate::queue::Refusal;
use crate::registry::{Params, RpcError};
use crate::server::Shared;
use crate::stats::Stats;

/// What became of one call, short of a value.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// Answered with a fault (HTTP 200).
    Fault(Fault),
    /// Refused by the engine before running (HTTP 503).
    Refused(Refusal),
}

impl From<Fault> for CallError {
    fn from(f: Fault) -> Self {
        CallError::Fault(f)
    }
}

/// Runs the XML-RPC request in `body`, start to finish.
pub(crate) async fn handle_body(
    shared: &Arc<Shared>,
    body: &[u8],
    peer: Option<SocketAddr>,
    headers: http::HeaderMap,
) -> Result<Value, CallError> {
    let faults = &shared.config.faults;
    let mut call = match parse_call(body, &shared.limits) {
        Ok(call) => call,
        Err(e) => {
            let code = if e.is_not_well_formed() {
                faults.not_well_formed
            } else {
                faults.invalid_xmlrpc
            };
            return Err(Fault::new(code, format!("parse error: {e}")).into());
        }
    };
    let named = call.split_kwargs();
    let params = Params {
        positional: call.params,
        named,
    };
    if call.method_name == crate::multicall::NAME {
        // Boxed: keeps the future of every ordinary call (held inline by hyper per
        // connection) from carrying the multicall state.
        return Box::pin(crate::multicall::run(shared, params, peer, &headers)).await;
    }
    call_method(shared, call.method_name, params, peer, headers).await
}

/// Looks `name` up and runs it with a fresh context; counts it in the method's stats.
pub(crate) async fn call_method(
    shared: &Arc<Shared>,
    name: String,
    params: Params,
    peer: Option<SocketAddr>,
    headers: http::HeaderMap,
) -> Result<Value, CallError> {
    let stats = shared.stats.method(&name);
    stats.calls.fetch_add(1, Relaxed);
    let result = run_method(shared, name, params, peer, headers).await;
    match &result {
        Ok((_, elapsed)) => stats.latency.observe(*elapsed),
        Err(CallError::Fault(_)) => {
            stats.faults.fetch_add(1, Relaxed);
        }
        Err(CallError::Refused(_)) => {}
    }
    result.map(|(v, _)| v)
}

async fn run_method(
    shared: &Arc<Shared>,
    name: String,
    params: Params,
    peer: Option<SocketAddr>,
    headers: http::HeaderMap,
) -> Result<(Value, Duration), CallError> {
    let faults = shared.config.faults;
    let Some(method) = shared.registry.get(&name).cloned() else {
        return Err(Fault::new(faults.method_not_found, format!("Invalid method: {name}")).into());
    };
    let id = shared.next_request_id.fetch_add(1, Relaxed);
    let ctx = Context::new(name, peer, headers, id, Arc::clone(&shared.registry));
    if method.is_blocking() {
        let stats = Arc::clone(&shared.stats);
        let rx = shared
            .queue
            .submit(move || {
                let start = Instant::now();
                let r = catch_unwind(AssertUnwindSafe(|| method.call_blocking(&ctx, params)));
                let r = settle(r, ctx.method(), &faults, &stats);
                (r, start.elapsed())
            })
            .map_err(CallError::Refused)?;
        match rx.await {
            Ok(Ok((r, elapsed))) => r.map(|v| (v, elapsed)),
            Ok(Err(refusal)) => Err(CallError::Refused(refusal)),
            // The worker dropped the job without answering: only a panic outside the
            // handler's own cage can do that.
            Err(_) => Err(Fault::new(faults.internal_error, "internal error").into()),
        }
    } else {
        let ctx = Arc::new(ctx);
        let start = Instant::now();
        let fut = catch_unwind(AssertUnwindSafe(|| {
            method.call_async(Arc::clone(&ctx), params)
        }));
        let r = match fut {
            Ok(fut) => CatchUnwind(fut).await,
            Err(panic) => Err(panic),
        };
        let r = settle(r, ctx.method(), &faults, &shared.stats);
        r.map(|v| (v, start.elapsed()))
    }
}

/// Turns a handler's outcome (or its panic) into a value or a fault.
fn settle(
    r: Result<Result<Value, RpcError>, Box<dyn Any + Send>>,
    method: &str,
    faults: &crate::config::FaultCodes,
    stats: &Stats,
) -> Result<Value, CallError> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(RpcError::Fault(f))) => Err(f.into()),
        Ok(Err(RpcError::InvalidParams(msg))) => Err(Fault::new(faults.invalid_params, msg).into()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            tracing::error!(method, panic = %what, "handler panicked");
            stats.counters.panics.fetch_add(1, Relaxed);
            Err(Fault::new(faults.internal_error, format!("internal error in {method}")).into())
        }
    }
}

/// Polls a boxed future inside `catch_unwind`, turning a panic into an `Err`.
struct CatchUnwind<T>(crate::registry::BoxFuture<T>);

impl<T> Future for CatchUnwind<T> {
    type Output = Result<T, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let fut = &mut self.get_mut().0;
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
