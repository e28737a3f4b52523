//! Per-request resources (a database connection, a transaction): acquired for one call,
//! committed when it succeeds, rolled back when it faults or panics, always released.
//!
//! A server declares each resource type once, with a factory
//! ([`ServerBuilder::resource`](crate::ServerBuilder::resource) acquires it lazily, the first
//! time a handler asks [`Context::resource`](crate::Context::resource) for it;
//! [`ServerBuilder::eager_resource`](crate::ServerBuilder::eager_resource) before the handler
//! runs). Every call, and every entry of a `system.multicall`, has its own scope: its own
//! acquisitions, its own commit or rollback. Settling happens on the thread that ran the
//! handler (the worker for a blocking method, the IO unit for an async one), after the
//! handler returned; a scope dropped unsettled (the client went away mid-call) rolls back.
//!
//! A factory that fails answers the `offline` fault with `resource_outage_message` (koji:
//! "database outage") and logs why; the worker lives on.

use std::any::{Any, TypeId};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hub_xmlrpc::Fault;

use crate::context::Context;

/// The error type of factories and hooks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A resource that lives for one call and then commits or rolls back.
///
/// ```
/// use hub_core::resource::RequestResource;
/// use hub_core::Fault;
///
/// /// Changes buffered during the call, applied only if it succeeds.
/// struct Pending(Vec<String>);
///
/// impl RequestResource for Pending {
///     fn commit(self) -> Result<(), Fault> {
///         println!("applying {} changes", self.0.len());
///         Ok(())
///     }
///     fn rollback(self) {}
/// }
/// ```
pub trait RequestResource: Send + 'static {
    /// The call succeeded: make its work durable. An error turns the call's answer into this
    /// fault; the resources after this one are then rolled back, but those committed before it
    /// stay committed (there is no two-phase commit: a call that needs all-or-nothing across
    /// stores keeps them in one resource).
    fn commit(self) -> Result<(), Fault>;

    /// The call faulted or panicked (or a commit before this one failed): undo its work.
    fn rollback(self);
}

/// A resource with its type erased.
trait Erased: Send {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn commit(self: Box<Self>) -> Result<(), Fault>;
    fn rollback(self: Box<Self>);
}

impl<R: RequestResource> Erased for R {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn commit(self: Box<Self>) -> Result<(), Fault> {
        RequestResource::commit(*self)
    }
    fn rollback(self: Box<Self>) {
        RequestResource::rollback(*self)
    }
}

type Factory = dyn Fn(&Context) -> Result<Box<dyn Erased>, BoxError> + Send + Sync;

/// One declared resource type.
#[derive(Clone)]
pub(crate) struct ResourceDef {
    type_id: TypeId,
    type_name: &'static str,
    eager: bool,
    factory: Arc<Factory>,
}

impl ResourceDef {
    pub(crate) fn new<R, F>(eager: bool, factory: F) -> Self
    where
        R: RequestResource,
        F: Fn(&Context) -> Result<R, BoxError> + Send + Sync + 'static,
    {
        Self {
            type_id: TypeId::of::<R>(),
            type_name: std::any::type_name::<R>(),
            eager,
            factory: Arc::new(move |ctx| factory(ctx).map(|r| Box::new(r) as Box<dyn Erased>)),
        }
    }

    pub(crate) fn type_id(&self) -> TypeId {
        self.type_id
    }
}

impl fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceDef")
            .field("type", &self.type_name)
            .field("eager", &self.eager)
            .finish_non_exhaustive()
    }
}

/// The declared resources and the fault a failed acquisition answers.
#[derive(Debug, Clone)]
///
/// Cloned for every call: only reference counts (the outage fault is built when it is due).
pub(crate) struct Resources {
    pub(crate) defs: Arc<[ResourceDef]>,
    pub(crate) outage_code: i32,
    pub(crate) outage_message: Arc<str>,
    pub(crate) internal_error: i32,
}

impl Resources {
    /// The fault a failed acquisition answers.
    fn outage(&self) -> Fault {
        Fault::new(self.outage_code, &*self.outage_message)
    }
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            defs: Arc::from(Vec::new()),
            outage_code: -32400,
            outage_message: Arc::from("resource outage"),
            internal_error: -32603,
        }
    }
}

enum Slot {
    Empty,
    Held(Box<dyn Erased>),
    Failed,
}

/// One call's resources (the server's declarations come with each call: [`Resources`]).
pub(crate) struct ResourceScope {
    slots: Mutex<Vec<Slot>>,
    /// No resources declared: nothing to lock, acquire, commit or roll back.
    none: bool,
}

impl fmt::Debug for ResourceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceScope")
            .field("none", &self.none)
            .finish_non_exhaustive()
    }
}

impl ResourceScope {
    pub(crate) fn new(resources: &Resources) -> Self {
        let slots = resources.defs.iter().map(|_| Slot::Empty).collect();
        Self {
            slots: Mutex::new(slots),
            none: resources.defs.is_empty(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Acquires every eager resource, in declaration order.
    pub(crate) fn acquire_eager(&self, resources: &Resources, ctx: &Context) -> Result<(), Fault> {
        for (i, def) in resources.defs.iter().enumerate() {
            if def.eager {
                self.acquire(resources, i, ctx)?;
            }
        }
        Ok(())
    }

    /// Fills slot `i` unless it is already held.
    fn acquire(&self, resources: &Resources, i: usize, ctx: &Context) -> Result<(), Fault> {
        match self.lock().get(i) {
            Some(Slot::Held(_)) => return Ok(()),
            Some(Slot::Failed) | None => return Err(resources.outage()),
            Some(Slot::Empty) => {}
        }
        let def = &resources.defs[i];
        // The lock is released while the factory runs: it may use the context.
        let made = crate::liveness::in_hook(crate::liveness::Hook::ResourceFactory, || {
            catch_unwind(AssertUnwindSafe(|| (def.factory)(ctx)))
        });
        let mut slots = self.lock();
        match made {
            Ok(Ok(r)) => {
                if let Slot::Empty = slots[i] {
                    slots[i] = Slot::Held(r);
                } else {
                    drop(slots);
                    r.rollback();
                }
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::error!(method = ctx.method(), resource = def.type_name, error = %e,
                    "could not acquire a per-request resource");
                slots[i] = Slot::Failed;
                Err(resources.outage())
            }
            Err(_) => {
                tracing::error!(
                    method = ctx.method(),
                    resource = def.type_name,
                    "resource factory panicked"
                );
                slots[i] = Slot::Failed;
                Err(resources.outage())
            }
        }
    }

    /// The resource of type `R`, acquired now if need be.
    pub(crate) fn get<'a, R: RequestResource>(
        &'a self,
        resources: &Resources,
        ctx: &Context,
    ) -> Result<ResourceGuard<'a, R>, Fault> {
        let wanted = TypeId::of::<R>();
        let Some(i) = resources.defs.iter().position(|d| d.type_id == wanted) else {
            return Err(Fault::new(
                resources.internal_error,
                format!(
                    "no resource of type {} is configured",
                    std::any::type_name::<R>()
                ),
            ));
        };
        self.acquire(resources, i, ctx)?;
        Ok(ResourceGuard {
            slots: self.lock(),
            index: i,
            _type: PhantomData,
        })
    }

    /// Commits every held resource if `success`, else rolls them back. A failing (or
    /// panicking) commit rolls back the rest and is returned.
    pub(crate) fn finish(&self, resources: &Resources, success: bool) -> Result<(), Fault> {
        if self.none {
            return Ok(());
        }
        let held = self.take();
        crate::liveness::in_hook(crate::liveness::Hook::ResourceFinish, || {
            let mut outcome = Ok(());
            for r in held {
                if success && outcome.is_ok() {
                    outcome = match catch_unwind(AssertUnwindSafe(|| r.commit())) {
                        Ok(result) => result,
                        Err(_) => {
                            tracing::error!("resource commit panicked");
                            Err(Fault::new(resources.internal_error, "commit failed"))
                        }
                    };
                } else {
                    rollback(r);
                }
            }
            outcome
        })
    }

    fn take(&self) -> Vec<Box<dyn Erased>> {
        if self.none {
            return Vec::new();
        }
        self.lock()
            .iter_mut()
            .filter_map(|slot| match std::mem::replace(slot, Slot::Empty) {
                Slot::Held(r) => Some(r),
                Slot::Empty | Slot::Failed => None,
            })
            .collect()
    }
}

fn rollback(r: Box<dyn Erased>) {
    if catch_unwind(AssertUnwindSafe(|| r.rollback())).is_err() {
        tracing::error!("resource rollback panicked");
    }
}

impl Drop for ResourceScope {
    /// A scope never settled (its call was abandoned) rolls back.
    fn drop(&mut self) {
        for r in self.take() {
            rollback(r);
        }
    }
}

/// Access to one call's resource of type `R` (from
/// [`Context::resource`](crate::Context::resource)). It locks the call's resources: drop it
/// before asking for another resource type, and do not hold it across an `.await` (it is not
/// `Send`, so the compiler refuses that in an async method).
pub struct ResourceGuard<'a, R> {
    slots: MutexGuard<'a, Vec<Slot>>,
    index: usize,
    _type: PhantomData<R>,
}

impl<R> fmt::Debug for ResourceGuard<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceGuard")
            .field("type", &std::any::type_name::<R>())
            .finish_non_exhaustive()
    }
}

const HELD: &str = "a ResourceGuard exists only for a held slot of its type";

impl<R: RequestResource> Deref for ResourceGuard<'_, R> {
    type Target = R;

    fn deref(&self) -> &R {
        match &self.slots[self.index] {
            Slot::Held(r) => r.as_any().downcast_ref::<R>().expect(HELD),
            Slot::Empty | Slot::Failed => unreachable!("{HELD}"),
        }
    }
}

impl<R: RequestResource> DerefMut for ResourceGuard<'_, R> {
    fn deref_mut(&mut self) -> &mut R {
        match &mut self.slots[self.index] {
            Slot::Held(r) => r.as_any_mut().downcast_mut::<R>().expect(HELD),
            Slot::Empty | Slot::Failed => unreachable!("{HELD}"),
        }
    }
}
