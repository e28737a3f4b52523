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
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hub_xmlrpc::{parse_call_borrowed, Fault, Value};
use tracing::Instrument as _;

use crate::access::CallerSlot;
use crate::auth::Caller;
use crate::context::{Context, ServerParts};
use crate::in_flight::{InFlight, InFlightLimit};
use crate::lifecycle;
use crate::liveness::{Blame, Doing};
use crate::queue::{JobResult, Refusal};
use crate::registry::{Method, Params, Registry};
use crate::server::Shared;
use crate::stats::{MethodStats, Stats};
use crate::tls::ClientCert;
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
    /// Its calls running now, if it has a `max_in_flight` (shared with its aliases).
    limit: Option<Arc<InFlightLimit>>,
}

impl Callable {
    /// A place among the method's calls at once, if they are limited; a refusal is counted.
    fn enter(&self, shared: &Shared) -> Result<Option<InFlight>, Refusal> {
        let Some(limit) = &self.limit else {
            return Ok(None);
        };
        limit.enter().map(Some).inspect_err(|_| {
            shared.stats.counters.method_limit_refusals.add(1);
        })
    }
}

/// The server's dispatch table: the registry's methods with their stats slots (a fast hash:
/// the keys are fixed, so names from the network cannot flood a bucket).
pub(crate) type CallTable = HashMap<String, Callable, foldhash::fast::RandomState>;

/// Each method with a `max_in_flight`, by its own name (not its aliases'), with its limit.
pub(crate) fn limited(calls: &CallTable) -> impl Iterator<Item = (&str, &InFlightLimit)> {
    calls.iter().filter_map(|(name, callable)| {
        let limit = callable.limit.as_deref()?;
        (name.as_str() == callable.method.name()).then_some((name.as_str(), limit))
    })
}

/// The dispatch table for `registry`, counting into `stats`.
pub(crate) fn call_table(registry: &Registry, stats: &Stats) -> CallTable {
    registry
        .methods()
        .flat_map(|method| {
            // An alias's calls count in the method's own slot and limit.
            let stats = stats.slot(method.name()).unwrap_or_default();
            let limit = method.max_in_flight().map(InFlightLimit::new);
            std::iter::once(method.name())
                .chain(method.aliases())
                .map(move |name| {
                    let callable = Callable {
                        method: Arc::clone(method),
                        stats: Arc::clone(&stats),
                        limit: limit.clone(),
                    };
                    (name.to_owned(), callable)
                })
        })
        .collect()
}

/// What every call of one HTTP request shares.
#[derive(Debug)]
pub(crate) struct RequestMeta {
    /// The serving unit's copy of the server's parts (see `ServerParts`).
    pub(crate) parts: Arc<ServerParts>,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) client_cert: Option<Arc<ClientCert>>,
    pub(crate) headers: http::HeaderMap,
    pub(crate) caller: Option<Arc<Caller>>,
    pub(crate) origin: ArgsOrigin,
}

/// The XML-RPC request in `body` as far as it goes without waiting: parsed, authenticated,
/// looked up, admitted, and its handler started or its job queued (with a blocking
/// authenticator, only as far as its job: the rest follows its answer). Await
/// [`Call::outcome`] for the answer, within the time budget returned beside it: the
/// method's own ([`Method::with_timeout`]) or the server's `handler_timeout_ms`.
pub(crate) fn start_body<'a>(
    shared: &'a Arc<Shared>,
    parts: &'a Arc<ServerParts>,
    body: Bytes,
    peer: Option<SocketAddr>,
    client_cert: Option<&Arc<ClientCert>>,
    headers: http::HeaderMap,
    note: Option<&mut crate::access::CallNote>,
) -> (Call<'a>, Option<Duration>) {
    if let Err(fault) = lifecycle::offline(shared) {
        return (Call::Done(Err(fault.into())), None);
    }
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
            let fault = Fault::new(code, format!("parse error: {e}"));
            return (Call::Done(Err(fault.into())), None);
        }
    };
    let (name, params) = Params::from_borrowed_call(call);
    // The access line's slot for the caller, where it is kept.
    let caller_slot = note.map(|note| {
        note.called(shared, &name);
        Arc::clone(&note.caller)
    });
    let budget = budget_of(shared, &name);
    // Another reference to the body (the name still borrows it), for the watch.
    let origin = ArgsOrigin::call(body.clone());
    let request = ParsedRequest {
        parts,
        peer,
        client_cert: client_cert.cloned(),
        headers,
        origin,
    };
    if lifecycle::authenticates_on_workers(shared) {
        let call = request.start_on_workers(shared, &name, params, caller_slot);
        return (call, budget);
    }
    let cert = client_cert.map(|c| &**c);
    let call = match lifecycle::authenticate(shared, &name, &request.headers, peer, cert) {
        Ok(caller) => {
            crate::access::note_caller(caller_slot.as_ref(), caller.as_deref());
            request.call(shared, &name, params, caller)
        }
        Err(fault) => Call::Done(Err(fault.into())),
    };
    (call, budget)
}

/// The time budget of a call of `name`: its method's own, if it has one, else the
/// server's. A multicall has none of its own: each of its entries runs within its method's
/// (see `multicall`), and a blocking authenticator's lookup for it within the server's.
#[inline]
pub(crate) fn budget_of(shared: &Shared, name: &str) -> Option<Duration> {
    let own = if shared.method_budgets {
        shared.calls.get(name).and_then(|c| c.method.timeout())
    } else {
        None
    };
    match own {
        Some(own) if own.is_zero() => None,
        Some(own) => Some(own),
        None => shared
            .switches
            .handler_timeout()
            .filter(|_| !crate::multicall::is_multicall(name)),
    }
}

/// The `system_error` fault of a call over its time `budget`, counted in `timeouts`.
pub(crate) fn over_budget(shared: &Shared, budget: Duration) -> CallError {
    shared.stats.counters.timeouts.add(1);
    Fault::new(
        shared.config.faults.system_error,
        format!("call exceeded its time budget of {} ms", budget.as_millis()),
    )
    .into()
}

/// One HTTP request's XML-RPC call, parsed, with what its calls are made from.
struct ParsedRequest<'a> {
    parts: &'a Arc<ServerParts>,
    peer: Option<SocketAddr>,
    client_cert: Option<Arc<ClientCert>>,
    headers: http::HeaderMap,
    origin: ArgsOrigin,
}

impl<'a> ParsedRequest<'a> {
    /// Starts the call `name` of `caller`: a multicall's entries, or one method.
    #[inline(always)] // On every request's path: its moves fold into the caller's.
    fn call(
        self,
        shared: &'a Arc<Shared>,
        name: &str,
        params: Params,
        caller: Option<Arc<Caller>>,
    ) -> Call<'a> {
        if crate::multicall::is_multicall(name) {
            let meta = RequestMeta {
                parts: Arc::clone(self.parts),
                peer: self.peer,
                client_cert: self.client_cert,
                headers: self.headers,
                caller,
                origin: self.origin,
            };
            return Call::Multicall(Box::pin(async move {
                crate::multicall::run(shared, params, &meta).await
            }));
        }
        // A single call: its context takes the request's headers (no copy).
        let headers = self.headers;
        let site = CallSite {
            parts: self.parts,
            peer: self.peer,
            client_cert: self.client_cert,
            caller,
            headers: move || headers,
            origin: self.origin,
        };
        start(shared, name, params, site)
    }

    /// Starts the call `name` with a blocking authenticator: a blocking method's call is
    /// authenticated in its own job, on its worker (one trip to the pool, not two); any other
    /// request waits for a lookup job of its own, then goes on as usual.
    #[inline(never)] // Off the path of servers without one.
    fn start_on_workers(
        self,
        shared: &'a Arc<Shared>,
        name: &str,
        params: Params,
        caller_slot: Option<CallerSlot>,
    ) -> Call<'a> {
        let single = !crate::multicall::is_multicall(name);
        if let Some(callable) = shared
            .calls
            .get(name)
            .filter(|c| single && c.method.is_blocking())
        {
            return self.start_authenticating(shared, callable, params, caller_slot);
        }
        let name = name.to_owned();
        Call::Authenticating(Box::pin(async move {
            let lookup = lifecycle::authenticate_on_worker(
                shared,
                &name,
                self.headers,
                self.peer,
                self.client_cert.clone(),
            );
            // A single call's budget holds its lookup; a multicall has none of its own, so
            // its lookup gets the server's.
            let (caller, headers) = match shared.switches.handler_timeout().filter(|_| !single) {
                None => lookup.await?,
                Some(budget) => match tokio::time::timeout(budget, lookup).await {
                    Ok(looked_up) => looked_up?,
                    Err(_) => {
                        tracing::warn!(
                            peer = ?self.peer,
                            budget_ms = budget.as_millis() as u64,
                            "multicall's lookup over its time budget"
                        );
                        return Err(over_budget(shared, budget));
                    }
                },
            };
            crate::access::note_caller(caller_slot.as_ref(), caller.as_deref());
            let request = ParsedRequest { headers, ..self };
            request.call(shared, &name, params, caller).outcome().await
        }))
    }

    /// Queues a blocking method's call whose caller a blocking authenticator has yet to
    /// name: the job authenticates, admits (lockout, permission), makes the context and runs
    /// the handler, all on the worker. A refusal there is the call's fault; as on the unit,
    /// the method's stats count it once the caller is authenticated (a refused permission,
    /// not refused credentials).
    fn start_authenticating(
        self,
        shared: &'a Arc<Shared>,
        callable: &'a Callable,
        params: Params,
        caller_slot: Option<CallerSlot>,
    ) -> Call<'a> {
        let stats = &*callable.stats;
        let job_stats = Arc::clone(&callable.stats);
        let method = Arc::clone(&callable.method);
        let watch = CallWatch::new(shared, &params, method.is_sensitive(), Some(self.origin));
        let (job_shared, parts, peer, headers, client_cert) = (
            Arc::clone(shared),
            Arc::clone(self.parts),
            self.peer,
            self.headers,
            self.client_cert,
        );
        let prepare = move |method: &Method, params: &Params| {
            let name = method.shared_name();
            let caller = match lifecycle::authenticate(
                &job_shared,
                name,
                &headers,
                peer,
                client_cert.as_deref(),
            ) {
                Ok(caller) => caller,
                Err(fault) => return Err(Box::new(Unprepared::refused(fault, headers))),
            };
            crate::access::note_caller(caller_slot.as_ref(), caller.as_deref());
            job_stats.calls.add(1);
            match lifecycle::admit(&job_shared, name, method.perm(), caller.as_deref()) {
                Ok(()) => Ok(lifecycle::context(
                    &parts,
                    name.clone(),
                    params,
                    peer,
                    headers,
                    caller,
                    client_cert,
                )),
                Err(fault) => Err(Box::new(Unprepared {
                    fault,
                    headers,
                    counted: true,
                })),
            }
        };
        // Taken when the job is queued, as a place in the queue is (before authentication).
        let in_flight = match callable.enter(shared) {
            Ok(place) => place,
            Err(refusal) => return Call::Done(Err(CallError::Refused(refusal))),
        };
        match queue_blocking(shared, stats, (method, prepare, in_flight), params, watch) {
            Ok(queued) => Call::Queued(queued),
            Err(refusal) => Call::Done(Err(CallError::Refused(refusal))),
        }
    }
}

/// Looks `name` (entry `entry` of a multicall) up and runs it with a fresh context; counts it
/// in the method's stats.
pub(crate) fn call_method<'a>(
    shared: &'a Arc<Shared>,
    name: &str,
    params: Params,
    meta: &RequestMeta,
    entry: usize,
) -> Call<'a> {
    let site = CallSite {
        parts: &meta.parts,
        peer: meta.peer,
        client_cert: meta.client_cert.clone(),
        caller: meta.caller.clone(),
        headers: || meta.headers.clone(),
        origin: meta.origin.entry(entry),
    };
    start(shared, name, params, site)
}

/// Who made one call, and what of its request the context and the watch are made from.
struct CallSite<'p, H> {
    /// The serving unit's copy of the server's parts, for the context.
    parts: &'p Arc<ServerParts>,
    peer: Option<SocketAddr>,
    client_cert: Option<Arc<ClientCert>>,
    caller: Option<Arc<Caller>>,
    /// Makes the context's copy of the request headers, only once the method is found and
    /// admitted (a multicall entry clones them; a single call hands them over).
    headers: H,
    origin: ArgsOrigin,
}

/// A call after the steps that do not wait (look up, admit, context, start or queue), with
/// what is left to wait for.
///
/// It is small on purpose: the context is already behind its `Arc` (or in the queued job),
/// the handler's future in its box, so the request's future holds only this, and whatever
/// moves it moves a few words (a nested `async fn` would carry every step's state and be
/// copied into its parent on each call).
pub(crate) enum Call<'a> {
    /// Answered without running a handler.
    Done(Result<Value, CallError>),
    /// An async handler running on this unit.
    Async(Running<'a>),
    /// A blocking handler's job in the worker queue.
    Queued(Queued<'a>),
    /// `system.multicall`: its entries run one after the other.
    Multicall(Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send + 'a>>),
    /// Waiting for a blocking authenticator on a worker, then the call itself.
    Authenticating(Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send + 'a>>),
}

/// An async handler started on this unit: its future, and what finishing it needs.
pub(crate) struct Running<'a> {
    shared: &'a Shared,
    stats: &'a MethodStats,
    ctx: Arc<Context>,
    started: lifecycle::Started,
    watch: CallWatch,
    /// Its place among its method's calls at once, until the handler's future is done.
    _in_flight: Option<InFlight>,
}

impl Running<'_> {
    /// The handler and its settlement (commit, call log) in the call's span, as a blocking
    /// call's on its worker.
    async fn traced(self) -> Result<Value, CallError> {
        let span = lifecycle::call_span(&self.ctx);
        let caught = Blame::new(self.started, self.ctx.method())
            .instrument(span.clone())
            .await;
        let (outcome, elapsed) =
            span.in_scope(|| lifecycle::finish(self.shared, &self.ctx, caught, self.watch, None));
        tally(self.stats, outcome, Some(elapsed))
    }
}

/// A blocking handler's job, waiting for a worker's answer.
pub(crate) struct Queued<'a> {
    stats: &'a MethodStats,
    internal_error: i32,
    answer: JobResult<Ran>,
    /// Dropped with the call when the caller stops waiting (budget, departed client): a
    /// handler that finishes after that has its resources rolled back.
    waiting: lifecycle::AbandonOnDrop,
}

/// What a worker sends back for a blocking call.
struct Ran {
    outcome: Result<Value, CallError>,
    /// The handler's own time (not the wait in the queue).
    elapsed: Duration,
    /// The request's header map, for the answer's headers on the unit (see `header_map`).
    headers: http::HeaderMap,
    /// Whether the outcome counts in the method's stats (not for refused credentials).
    counted: bool,
}

/// Why a queued call's job did not run its handler: the fault, the request's header map back,
/// and whether it counts in the method's stats.
struct Unprepared {
    fault: Fault,
    headers: http::HeaderMap,
    counted: bool,
}

impl Unprepared {
    /// Refused credentials: not a call of the method, as on the unit.
    fn refused(fault: Fault, headers: http::HeaderMap) -> Self {
        Unprepared {
            fault,
            headers,
            counted: false,
        }
    }
}

impl Call<'_> {
    /// [`outcome`](Self::outcome) within `budget`: `None` once it is over, unless a worker
    /// has already claimed the call and is settling it (committing its resources): then
    /// its answer is waited for, so that a caller is never told of a failure whose work
    /// was committed (found in review). A call dropped over its budget is rolled back.
    pub(crate) async fn outcome_within(self, budget: Duration) -> Option<Result<Value, CallError>> {
        let Call::Queued(job) = self else {
            // An async handler is settled in the poll that finishes it: the budget cannot
            // end between its commit and its answer.
            return tokio::time::timeout(budget, self.outcome()).await.ok();
        };
        let waiting = job.waiting.awaited();
        let mut outcome = Box::pin(Call::Queued(job).outcome());
        match tokio::time::timeout(budget, &mut outcome).await {
            Ok(answered) => Some(answered),
            Err(_) if waiting.try_abandon() => None,
            Err(_) => Some(outcome.await),
        }
    }

    /// Waits for the call's answer and counts it in the method's stats.
    pub(crate) async fn outcome(self) -> Result<Value, CallError> {
        match self {
            Call::Done(outcome) => outcome,
            Call::Multicall(fut) | Call::Authenticating(fut) => fut.await,
            Call::Async(run) => {
                if run.shared.call_spans {
                    // Boxed: the future of a call without a span stays as small as it was.
                    return Box::pin(run.traced()).await;
                }
                let caught = Blame::new(run.started, run.ctx.method()).await;
                let (outcome, elapsed) =
                    lifecycle::finish(run.shared, &run.ctx, caught, run.watch, None);
                tally(run.stats, outcome, Some(elapsed))
            }
            Call::Queued(job) => match job.answer.await {
                Ok(Ok(ran)) => {
                    crate::header_map::give_back(ran.headers);
                    if !ran.counted {
                        return ran.outcome;
                    }
                    tally(job.stats, ran.outcome, Some(ran.elapsed))
                }
                Ok(Err(refusal)) => Err(CallError::Refused(refusal)),
                // The worker dropped the job without answering: only a panic outside the
                // handler's own cage can do that.
                Err(_) => tally(
                    job.stats,
                    Err(Fault::new(job.internal_error, "internal error").into()),
                    None,
                ),
            },
        }
    }
}

/// Looks `name` up, admits it and starts it: an async handler on this unit, a blocking one
/// as a job for the worker pool.
fn start<'a>(
    shared: &'a Arc<Shared>,
    name: &str,
    params: Params,
    site: CallSite<'_, impl FnOnce() -> http::HeaderMap>,
) -> Call<'a> {
    let faults = shared.config.faults;
    let callable = shared.calls.get(name);
    let stats = callable.map_or(shared.stats.unknown(), |c| &*c.stats);
    stats.calls.add(1);
    let Some(callable) = callable else {
        let fault = Fault::new(faults.method_not_found, format!("Invalid method: {name}"));
        return Call::Done(tally(stats, Err(fault.into()), None));
    };
    let method = &callable.method;
    if let Err(fault) =
        lifecycle::admit(shared, method.name(), method.perm(), site.caller.as_deref())
    {
        return Call::Done(tally(stats, Err(fault.into()), None));
    }
    let in_flight = match callable.enter(shared) {
        Ok(place) => place,
        Err(refusal) => return Call::Done(Err(CallError::Refused(refusal))),
    };
    let watch = CallWatch::new(shared, &params, method.is_sensitive(), Some(site.origin));
    let name = method.shared_name().clone();
    let headers = (site.headers)();
    let ctx = lifecycle::context(
        site.parts,
        name,
        &params,
        site.peer,
        headers,
        site.caller,
        site.client_cert,
    );
    if method.is_blocking() {
        let prepared = move |_: &Method, _: &Params| Ok(ctx);
        let job = (Arc::clone(method), prepared, in_flight);
        return match queue_blocking(shared, stats, job, params, watch) {
            Ok(queued) => Call::Queued(queued),
            Err(refusal) => Call::Done(Err(CallError::Refused(refusal))),
        };
    }
    let ctx = Arc::new(ctx);
    let call_ctx = Arc::clone(&ctx);
    let (started, watch) =
        lifecycle::start_async(&ctx, watch, || method.call_async(call_ctx, params));
    Call::Async(Running {
        shared,
        stats,
        ctx,
        started,
        watch,
        _in_flight: in_flight,
    })
}

/// Queues a blocking method's job. `prepare` makes the call's context on the worker: it
/// hands over one made on the unit, or first authenticates and admits the caller (see
/// [`ParsedRequest::start_authenticating`]); its refusal is the call's fault.
fn queue_blocking<'a, P>(
    shared: &Arc<Shared>,
    stats: &'a MethodStats,
    (method, prepare, in_flight): (Arc<Method>, P, Option<InFlight>),
    params: Params,
    watch: CallWatch,
) -> Result<Queued<'a>, Refusal>
where
    P: FnOnce(&Method, &Params) -> Result<Context, Box<Unprepared>> + Send + 'static,
{
    let job_shared = Arc::clone(shared);
    let awaited = Arc::new(lifecycle::Awaited::default());
    let waiting = awaited.abandon_on_drop();
    let answer = shared.queue.submit(move || {
        // Held until the handler returns, whether or not its caller still waits.
        let _in_flight = in_flight;
        let _busy = crate::liveness::busy_with(|| Doing::Call(Arc::clone(&method)), &awaited);
        let ctx = match prepare(&method, &params) {
            Ok(ctx) => ctx,
            Err(refused) => {
                let Unprepared {
                    fault,
                    headers,
                    counted,
                } = *refused;
                return Ran {
                    outcome: Err(fault.into()),
                    elapsed: Duration::ZERO,
                    headers,
                    counted,
                };
            }
        };
        let run = || lifecycle::run_blocking(&job_shared, &method, &ctx, params, watch, &awaited);
        let (outcome, elapsed) = if job_shared.call_spans {
            lifecycle::call_span(&ctx).in_scope(run)
        } else {
            run()
        };
        Ran {
            outcome,
            elapsed,
            headers: ctx.into_headers(),
            counted: true,
        }
    })?;
    Ok(Queued {
        stats,
        internal_error: shared.config.faults.internal_error,
        answer,
        waiting,
    })
}

/// Counts a call's outcome in its method's stats: its handler time if it ran and succeeded,
/// a fault if it answered one (a refusal by the queue is neither).
fn tally(
    stats: &MethodStats,
    outcome: Result<Value, CallError>,
    ran_for: Option<Duration>,
) -> Result<Value, CallError> {
    match (&outcome, ran_for) {
        (Ok(_), Some(elapsed)) => stats.latency.observe(elapsed),
        (Err(CallError::Fault(_)), _) => stats.faults.add(1),
        _ => {}
    }
    outcome
}
