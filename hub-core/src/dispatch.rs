//! The request path of one XML-RPC call: offline check → parse → split keyword arguments →
//! authenticate → look up → lockout and permission → make a [`Context`] → run (blocking on
//! the worker pool, async inline on the unit) → commit or roll back → answer.
//!
//! The steps shared with uploads (admission, the panic cage, resources, the watch) live in
//! [`crate::lifecycle`]. Panics are caught there (a blocking handler on its worker, an async
//! one around each poll): they answer the `internal_error` fault and the thread lives on.
//!
//! [`Context`]: crate::context::Context

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hub_xmlrpc::{parse_call_borrowed, Fault, Value};

use crate::auth::Caller;
use crate::context::Context;
use crate::lifecycle;
use crate::queue::Refusal;
use crate::registry::{Method, Params, Registry};
use crate::server::Shared;
use crate::stats::{MethodStats, Stats};
use crate::watch::{ArgsOrigin, CallWatch};

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

/// A registered method and its stats slot: what a call looks up by name, once.
#[derive(Debug)]
pub(crate) struct Callable {
    method: Arc<Method>,
    stats: Arc<MethodStats>,
}

/// The server's dispatch table: the registry's methods with their stats slots (a fast hash:
/// the keys are fixed, so names from the network cannot flood a bucket).
pub(crate) type CallTable = HashMap<String, Callable, foldhash::fast::RandomState>;

/// The dispatch table for `registry`, counting into `stats`.
pub(crate) fn call_table(registry: &Registry, stats: &Stats) -> CallTable {
    registry
        .methods()
        .map(|method| {
            let name = method.name().to_owned();
            let stats = stats.slot(&name).unwrap_or_default();
            let method = Arc::clone(method);
            (name, Callable { method, stats })
        })
        .collect()
}

/// What every call of one HTTP request shares.
#[derive(Debug)]
pub(crate) struct RequestMeta {
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) headers: http::HeaderMap,
    pub(crate) caller: Option<Arc<Caller>>,
    pub(crate) origin: ArgsOrigin,
}

/// Runs the XML-RPC request in `body`, start to finish.
pub(crate) async fn handle_body(
    shared: &Arc<Shared>,
    body: Bytes,
    peer: Option<SocketAddr>,
    headers: http::HeaderMap,
) -> Result<Value, CallError> {
    lifecycle::offline(shared)?;
    let faults = &shared.config.faults;
    // The method name stays in the body: the context takes the registry's copy.
    let call = match parse_call_borrowed(&body, &shared.limits) {
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
    let caller = lifecycle::authenticate(shared, &call.method_name, &headers, peer)?;
    let (name, params) = Params::from_borrowed_call(call);
    // Another reference to the body (the name still borrows it), for the watch.
    let origin = ArgsOrigin::call(body.clone());
    if crate::multicall::is_multicall(&name) {
        let meta = RequestMeta {
            peer,
            headers,
            caller,
            origin,
        };
        // Boxed: keeps the future of every ordinary call (held inline by hyper per
        // connection) from carrying the multicall state.
        return Box::pin(crate::multicall::run(shared, params, &meta)).await;
    }
    // A single call: its context takes the request's headers (no copy).
    let site = CallSite {
        peer,
        caller,
        headers: move || headers,
        origin,
    };
    counted(shared, &name, params, site).await
}

/// Looks `name` (entry `entry` of a multicall) up and runs it with a fresh context; counts it
/// in the method's stats.
pub(crate) async fn call_method(
    shared: &Arc<Shared>,
    name: &str,
    params: Params,
    meta: &RequestMeta,
    entry: usize,
) -> Result<Value, CallError> {
    let site = CallSite {
        peer: meta.peer,
        caller: meta.caller.clone(),
        headers: || meta.headers.clone(),
        origin: meta.origin.entry(entry),
    };
    counted(shared, name, params, site).await
}

/// Who made one call, and what of its request the context and the watch are made from.
struct CallSite<H> {
    peer: Option<SocketAddr>,
    caller: Option<Arc<Caller>>,
    /// Makes the context's copy of the request headers, only once the method is found and
    /// admitted (a multicall entry clones them; a single call hands them over).
    headers: H,
    origin: ArgsOrigin,
}

/// [`call_method`]'s body.
///
/// One flat `async fn` for the whole call (look up, admit, context, run, commit, count):
/// every nested future would be built and then moved into its parent on each call.
async fn counted(
    shared: &Arc<Shared>,
    name: &str,
    params: Params,
    site: CallSite<impl FnOnce() -> http::HeaderMap>,
) -> Result<Value, CallError> {
    let faults = shared.config.faults;
    let callable = shared.calls.get(name);
    let stats = callable.map_or(shared.stats.unknown(), |c| &*c.stats);
    stats.calls.add(1);
    let result = match callable.map(|c| &c.method) {
        None => Err(Fault::new(faults.method_not_found, format!("Invalid method: {name}")).into()),
        Some(method) => match lifecycle::admit(shared, name, method.perm(), site.caller.as_deref())
        {
            Err(fault) => Err(fault.into()),
            Ok(()) => {
                let sensitive = method.is_sensitive();
                let watch = CallWatch::new(&shared.config, &params, sensitive, Some(site.origin));
                let name = method.shared_name().clone();
                let (peer, headers) = (site.peer, (site.headers)());
                let ctx = lifecycle::context(shared, name, &params, peer, headers, site.caller);
                if method.is_blocking() {
                    run_blocking(shared, Arc::clone(method), ctx, params, watch).await
                } else {
                    let ctx = Arc::new(ctx);
                    let call_ctx = Arc::clone(&ctx);
                    let (outcome, watch) =
                        lifecycle::start_async(&ctx, watch, || method.call_async(call_ctx, params));
                    let outcome = match outcome {
                        lifecycle::Started::Running(fut) => fut.await,
                        lifecycle::Started::Done(r) => r,
                    };
                    Ok(lifecycle::finish(shared, &ctx, outcome, watch, None))
                }
            }
        },
    };
    // Refused before running, or run (with its duration).
    let (outcome, ran_for) = match result {
        Ok((outcome, elapsed)) => (outcome, Some(elapsed)),
        Err(e) => (Err(e), None),
    };
    match (&outcome, ran_for) {
        (Ok(_), Some(elapsed)) => stats.latency.observe(elapsed),
        (Err(CallError::Fault(_)), _) => {
            stats.faults.add(1);
        }
        _ => {}
    }
    outcome
}

/// Runs a blocking method on the worker pool and waits for its answer.
async fn run_blocking(
    shared: &Arc<Shared>,
    method: Arc<Method>,
    ctx: Context,
    params: Params,
    watch: CallWatch,
) -> Result<(Result<Value, CallError>, Duration), CallError> {
    let faults = shared.config.faults;
    let job_shared = Arc::clone(shared);
    let awaited = Arc::new(lifecycle::Awaited::default());
    // Dropped with this future when the caller stops waiting (budget, departed client): a
    // handler that finishes after that has its resources rolled back.
    let _waiting = awaited.abandon_on_drop();
    let rx = shared
        .queue
        .submit(move || {
            lifecycle::run_blocking(&job_shared, &method, &ctx, params, watch, &awaited)
        })
        .map_err(CallError::Refused)?;
    match rx.await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(refusal)) => Err(CallError::Refused(refusal)),
        // The worker dropped the job without answering: only a panic outside the handler's
        // own cage can do that.
        Err(_) => Err(Fault::new(faults.internal_error, "internal error").into()),
    }
}
