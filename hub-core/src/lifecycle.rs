//! What every request goes through, in koji-hub's order:
//!
//! 1. **setup**, once, before the first connection is accepted ([`ServerBuilder::setup`]); if
//!    it fails the server serves offline with "server startup error" until restarted;
//! 2. **POST only** on the RPC paths (`405`, `Allow: POST` otherwise);
//! 3. **offline**: every call answers the `offline` fault;
//! 4. **route by content type**: `application/octet-stream` to the upload handler
//!    ([`crate::upload`]), everything else to XML-RPC;
//! 5. **authenticate** once per request ([`crate::auth`]);
//! 6. per call: look up, **lockout** (admins and `lockout_exempt` only), **permission**, a fresh
//!    [`Context`], eager **resources**; run the handler in the **panic cage**;
//! 7. **commit** the call's resources on success, **roll back** on a fault or a panic;
//! 8. **memory watch** and, with `debug`, the **call log** (the `watch` module);
//! 9. the context is dropped: resources released, nothing reused.
//!
//! [`ServerBuilder::setup`]: crate::ServerBuilder::setup

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use hub_xmlrpc::{Fault, Value};

use crate::auth::{AuthRequest, Authenticator, Caller};
use crate::config::Config;
use crate::context::{Context, ServerParts};
use crate::dispatch::CallError;
use crate::liveness::Doing;
use crate::registry::{BoxFuture, Method, Params, RpcError};
use crate::resource::{BoxError, ResourceDef, Resources};
use crate::server::Shared;
use crate::status::StatusHandle;
use crate::upload::Upload;
use crate::watch::CallWatch;

/// The message of the offline fault after a failed setup (koji's).
pub const STARTUP_ERROR: &str = "server startup error";

/// The one-time setup hook.
pub(crate) type SetupFn = Box<dyn FnOnce(&Config) -> Result<(), BoxError> + Send>;
/// The upload handler.
pub(crate) type UploadFn = dyn Fn(Upload) -> BoxFuture<Result<Value, RpcError>> + Send + Sync;

/// The hooks set on the builder.
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) setup: Option<SetupFn>,
    pub(crate) resources: Vec<ResourceDef>,
    pub(crate) authenticator: Option<AuthHook>,
    pub(crate) upload: Option<Arc<UploadFn>>,
    pub(crate) response_headers: http::HeaderMap,
}

/// The authenticator, and where it runs.
pub(crate) struct AuthHook {
    pub(crate) authenticator: Arc<dyn Authenticator>,
    /// On the worker pool ([`ServerBuilder::blocking_authenticator`]), not on the IO unit.
    ///
    /// [`ServerBuilder::blocking_authenticator`]: crate::ServerBuilder::blocking_authenticator
    pub(crate) on_workers: bool,
}

impl fmt::Debug for AuthHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.on_workers {
            "on the workers"
        } else {
            "on the units"
        })
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("setup", &self.setup.is_some())
            .field("resources", &self.resources)
            .field("authenticator", &self.authenticator)
            .field("upload", &self.upload.is_some())
            .field("response_headers", &self.response_headers)
            .finish()
    }
}

/// The hooks a running server serves with (setup has run). Its resource declarations are
/// with the other parts every context refers to ([`ServerParts`]).
///
/// [`ServerParts`]: crate::context::ServerParts
pub(crate) struct Serving {
    pub(crate) authenticator: Option<AuthHook>,
    pub(crate) upload: Option<Arc<UploadFn>>,
    /// Added to every HTTP response ([`ServerBuilder::response_header`]).
    ///
    /// [`ServerBuilder::response_header`]: crate::ServerBuilder::response_header
    pub(crate) response_headers: http::HeaderMap,
}

impl fmt::Debug for Serving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serving")
            .field("authenticator", &self.authenticator)
            .field("upload", &self.upload.is_some())
            .field("response_headers", &self.response_headers)
            .finish()
    }
}

/// Runs the setup hook (its panic caught); on failure the server goes offline.
pub(crate) fn run_setup(setup: Option<SetupFn>, config: &Config, status: &StatusHandle) {
    let Some(setup) = setup else { return };
    let why = match catch_unwind(AssertUnwindSafe(|| setup(config))) {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(panic) => format!("setup panicked: {}", panic_text(&*panic)),
    };
    tracing::error!(error = %why, "server setup failed: serving offline until restarted");
    status.fail_setup();
}

/// Splits the builder's hooks into the setup hook, the serving ones and the resource
/// declarations.
pub(crate) fn serving(hooks: Hooks, config: &Config) -> (Option<SetupFn>, Serving, Resources) {
    let resources = Resources {
        defs: Arc::from(hooks.resources),
        outage_code: config.faults.offline,
        outage_message: Arc::from(config.resource_outage_message.as_str()),
        internal_error: config.faults.internal_error,
    };
    let serving = Serving {
        authenticator: hooks.authenticator,
        upload: hooks.upload,
        response_headers: hooks.response_headers,
    };
    (hooks.setup, serving, resources)
}

/// The offline fault, if the server is offline now.
pub(crate) fn offline(shared: &Shared) -> Result<(), Fault> {
    if shared.status.is_offline() {
        shared.stats.counters.offline_refusals.add(1);
        return Err(Fault::new(
            shared.config.faults.offline,
            shared.status.message().to_string(),
        ));
    }
    Ok(())
}

/// Runs the authenticator, if any, for one request.
pub(crate) fn authenticate(
    shared: &Shared,
    method: &str,
    headers: &http::HeaderMap,
    peer: Option<std::net::SocketAddr>,
    client_cert: Option<&crate::tls::ClientCert>,
) -> Result<Option<Arc<Caller>>, Fault> {
    let Some(AuthHook { authenticator, .. }) = &shared.hooks.authenticator else {
        return Ok(None);
    };
    // A call by an alias is authenticated as its method (an alias of `login` is a login).
    let method = if shared.aliases.is_empty() {
        method
    } else {
        shared.aliases.get(method).map_or(method, |m| &**m)
    };
    let req = AuthRequest {
        method,
        headers,
        peer,
        client_cert,
    };
    let authenticated = crate::liveness::in_hook(crate::liveness::Hook::Authenticator, || {
        catch_unwind(AssertUnwindSafe(|| authenticator.authenticate(&req)))
    });
    match authenticated {
        Ok(Ok(caller)) => Ok(caller.map(Arc::new)),
        Ok(Err(failure)) => {
            shared.stats.counters.auth_failures.add(1);
            tracing::debug!(method, ?peer, %failure, "authentication refused");
            Err(failure.into_fault(&shared.config.faults))
        }
        Err(panic) => {
            tracing::error!(method, panic = %panic_text(&*panic), "authenticator panicked");
            Err(Fault::new(
                shared.config.faults.internal_error,
                "internal error in authentication",
            ))
        }
    }
}

/// Whether the authenticator runs on the worker pool (see [`authenticate_on_worker`]).
pub(crate) fn authenticates_on_workers(shared: &Shared) -> bool {
    shared
        .hooks
        .authenticator
        .as_ref()
        .is_some_and(|hook| hook.on_workers)
}

/// Runs a blocking authenticator for one request as a job of its own on the worker pool, so
/// the unit serves its other connections while a database lookup takes its time (a blocking
/// method's call is authenticated in its handler's job instead, see `dispatch.rs`). The job
/// is queued like a blocking call: a full queue or QoS refuses the request (`503`), and a
/// job whose request stopped waiting counts as held in the pool's watch. The headers go with
/// the job and come back for the call's context.
pub(crate) async fn authenticate_on_worker(
    shared: &Arc<Shared>,
    method: &str,
    headers: http::HeaderMap,
    peer: Option<std::net::SocketAddr>,
    client_cert: Option<Arc<crate::tls::ClientCert>>,
) -> Result<(Option<Arc<Caller>>, http::HeaderMap), CallError> {
    let job_shared = Arc::clone(shared);
    let method = Box::<str>::from(method);
    let awaited = Arc::new(Awaited::default());
    let _waiting = awaited.abandon_on_drop();
    let answer = shared
        .queue
        .submit(move || {
            let _busy = crate::liveness::busy_with(|| Doing::Authenticating, &awaited);
            let caller = authenticate(&job_shared, &method, &headers, peer, client_cert.as_deref());
            (caller, headers)
        })
        .map_err(CallError::Refused)?;
    match answer.await {
        Ok(Ok((caller, headers))) => Ok((caller?, headers)),
        Ok(Err(refusal)) => Err(CallError::Refused(refusal)),
        // Only a panic outside `authenticate`'s own cage drops the job unanswered.
        Err(_) => Err(Fault::new(
            shared.config.faults.internal_error,
            "internal error in authentication",
        )
        .into()),
    }
}

/// Lockout and permission: may `caller` run `name` (needing `perm`) now?
pub(crate) fn admit(
    shared: &Shared,
    name: &str,
    perm: Option<&str>,
    caller: Option<&Caller>,
) -> Result<(), Fault> {
    let admin = caller.is_some_and(Caller::is_admin);
    if shared.status.is_locked_out()
        && !admin
        && !shared.config.lockout_exempt.iter().any(|m| m == name)
    {
        shared.stats.counters.offline_refusals.add(1);
        return Err(Fault::new(
            shared.config.faults.offline,
            shared.status.message().to_string(),
        ));
    }
    crate::auth::check_perm(perm, caller, &shared.config.faults).inspect_err(|_| {
        shared.stats.counters.permission_denials.add(1);
    })
}

/// A fresh context for one call, referring to `parts` (the unit's copy of the server's).
pub(crate) fn context(
    parts: &Arc<ServerParts>,
    name: Cow<'static, str>,
    params: &Params,
    peer: Option<std::net::SocketAddr>,
    headers: http::HeaderMap,
    caller: Option<Arc<Caller>>,
    client_cert: Option<Arc<crate::tls::ClientCert>>,
) -> Context {
    let params_len = params.positional.len() + params.named.as_ref().map_or(0, |n| n.len());
    Context::serving(
        name,
        (peer, client_cert),
        headers,
        crate::context::next_request_id(),
        params_len,
        caller,
        parts,
    )
}

/// Whether anyone still waits for a blocking call's answer.
///
/// The waiting side abandons the call when it is dropped (the request's time budget ran out,
/// the client went away); the worker claims it just before committing. Exactly one of the two
/// wins, so work whose caller was never told it succeeded is rolled back, not committed. A
/// budget that runs out once the worker has claimed the call waits for its answer instead
/// (`Call::outcome_within`): the commit under way decides it. A client that goes away then
/// is not told either way.
#[derive(Debug, Default)]
pub(crate) struct Awaited(AtomicU8);

const WAITING: u8 = 0;
const ABANDONED: u8 = 1;
const CLAIMED: u8 = 2;

impl Awaited {
    /// The worker's side: `true` if the caller still waits (and now cannot abandon).
    fn claim(&self) -> bool {
        self.0
            .compare_exchange(WAITING, CLAIMED, AcqRel, Acquire)
            .is_ok()
    }

    /// Whether the caller stopped waiting before the worker claimed the call.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.0.load(Acquire) == ABANDONED
    }

    /// A guard for the waiting side: abandons the call when dropped unless it was claimed.
    pub(crate) fn abandon_on_drop(self: &Arc<Self>) -> AbandonOnDrop {
        AbandonOnDrop(Arc::clone(self))
    }

    /// The waiting side gives up: `true` if the call is abandoned now (or was), `false` if a
    /// worker has claimed it and is settling it: its answer is then worth waiting for.
    pub(crate) fn try_abandon(&self) -> bool {
        self.0
            .compare_exchange(WAITING, ABANDONED, AcqRel, Acquire)
            .map_or_else(|now| now == ABANDONED, |_| true)
    }
}

/// Abandons a blocking call when the future waiting for it is dropped first.
#[derive(Debug)]
pub(crate) struct AbandonOnDrop(Arc<Awaited>);

impl AbandonOnDrop {
    /// The call this guard abandons.
    pub(crate) fn awaited(&self) -> Arc<Awaited> {
        Arc::clone(&self.0)
    }
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        // Fails harmlessly when the worker claimed the call first.
        let _ = self.0.try_abandon();
    }
}

/// Runs a blocking method on this (worker) thread: eager resources, the handler in the cage,
/// commit (only if the caller still waits, see [`Awaited`]) or rollback, the watch.
pub(crate) fn run_blocking(
    shared: &Shared,
    method: &Method,
    ctx: &Context,
    params: Params,
    mut watch: CallWatch,
    awaited: &Awaited,
) -> (Result<Value, CallError>, Duration) {
    // Timed from here, on the worker: the wait in the queue is not the handler's time.
    watch.start(std::time::Instant::now());
    let r = match ctx.acquire_eager_resources() {
        Err(fault) => Ok(Err(RpcError::Fault(fault))),
        Ok(()) => catch_unwind(AssertUnwindSafe(|| method.call_blocking(ctx, params))),
    };
    finish(shared, ctx, r, watch, Some(awaited))
}

/// Runs an async method (or an upload handler's future) on this IO unit, the same way.
pub(crate) async fn run_async(
    shared: &Shared,
    ctx: &Arc<Context>,
    start: impl FnOnce() -> BoxFuture<Result<Value, RpcError>>,
    watch: CallWatch,
) -> (Result<Value, CallError>, Duration) {
    let (started, watch) = start_async(ctx, watch, start);
    let r = crate::liveness::Blame::new(started, ctx.method()).await;
    // An async call that is abandoned is dropped before it gets here: nothing to claim.
    finish(shared, ctx, r, watch, None)
}

/// A handler's outcome, or the panic that ended it.
pub(crate) type Caught = Result<Result<Value, RpcError>, Box<dyn Any + Send>>;

/// An async call after [`start_async`]: its handler's future, or already an outcome; either
/// way awaited for the outcome.
pub(crate) enum Started {
    Running(CatchUnwind<Result<Value, RpcError>>),
    Done(std::future::Ready<Caught>),
}

impl Future for Started {
    type Output = Caught;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Caught> {
        match self.get_mut() {
            Started::Running(fut) => Pin::new(fut).poll(cx),
            Started::Done(ready) => Pin::new(ready).poll(cx),
        }
    }
}

/// The part of [`run_async`] before its one await: the watch started, eager resources taken,
/// the handler's future made (each step in the cage). Callers await the future, then
/// [`finish`].
pub(crate) fn start_async(
    ctx: &Context,
    mut watch: CallWatch,
    start: impl FnOnce() -> BoxFuture<Result<Value, RpcError>>,
) -> (Started, CallWatch) {
    // The context was made just now, on this thread: its clock reading serves.
    watch.start(ctx.started());
    let started = match ctx.acquire_eager_resources() {
        Err(fault) => Started::Done(std::future::ready(Ok(Err(RpcError::Fault(fault))))),
        Ok(()) => match catch_unwind(AssertUnwindSafe(start)) {
            Ok(fut) => Started::Running(CatchUnwind(fut)),
            Err(panic) => Started::Done(std::future::ready(Err(panic))),
        },
    };
    (started, watch)
}

/// The span a handler runs in, so that what it logs carries the call's method, request id and
/// caller. At DEBUG, as tower-http's request spans: a server logging at INFO makes none;
/// `RUST_LOG=hub_core=debug` turns them on (see [`call_spans_on`]).
pub(crate) fn call_span(ctx: &Context) -> tracing::Span {
    tracing::debug_span!(
        "call",
        method = ctx.method(),
        id = ctx.request_id(),
        user = ctx.caller().map_or("-", Caller::name)
    )
}

/// Whether [`call_span`]s are on now. Asked once, when a server starts: a server without them
/// pays a flag per call, not tracing's checks.
pub(crate) fn call_spans_on() -> bool {
    tracing::enabled!(tracing::Level::DEBUG)
}

/// The handler's outcome (or its panic) as an answer; the resources committed or rolled back.
pub(crate) fn finish(
    shared: &Shared,
    ctx: &Context,
    r: Caught,
    watch: CallWatch,
    awaited: Option<&Awaited>,
) -> (Result<Value, CallError>, Duration) {
    let mut outcome = settle(shared, ctx.method(), r);
    let commit = outcome.is_ok() && awaited.is_none_or(Awaited::claim);
    if outcome.is_ok() && !commit {
        tracing::warn!(
            method = ctx.method(),
            "call succeeded after its caller stopped waiting: rolled back"
        );
    }
    let committed = ctx.finish_resources(commit);
    match (&outcome, committed) {
        (Ok(_), Err(fault)) => outcome = Err(fault),
        // The session store records the call's number now, as koji does with its commit.
        (Ok(_), Ok(())) if commit => {
            if let Some(caller) = ctx.caller() {
                caller.committed();
            }
        }
        _ => {}
    }
    let outcome = outcome.map_err(CallError::Fault);
    let elapsed = watch.end(&shared.stats, ctx, &outcome);
    (outcome, elapsed)
}

/// Turns a handler's outcome (or its panic) into a value or a fault.
fn settle(
    shared: &Shared,
    method: &str,
    r: Result<Result<Value, RpcError>, Box<dyn Any + Send>>,
) -> Result<Value, Fault> {
    let faults = &shared.config.faults;
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(RpcError::Fault(f))) => Err(f),
        Ok(Err(RpcError::InvalidParams(msg))) => Err(Fault::new(faults.invalid_params, msg)),
        Err(panic) => {
            let what = panic_text(&*panic);
            tracing::error!(method, panic = %what, "handler panicked");
            shared.stats.counters.panics.add(1);
            let text = if shared.switches.debug() {
                format!("internal error in {method}: {what}")
            } else {
                format!("internal error in {method}")
            };
            Err(Fault::new(faults.internal_error, text))
        }
    }
}

/// A panic's message, if it has one.
pub(crate) fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// Polls a boxed future inside `catch_unwind`, turning a panic into an `Err`.
pub(crate) struct CatchUnwind<T>(BoxFuture<T>);

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
