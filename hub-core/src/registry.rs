//! The method registry: filled at link time by `#[rpc_method]` through `inventory`,
//! and at run time through [`Registry::builder`].
//!
//! CONTRACT (shared by hub-macros, the engine and the lifecycle; change only together):
//! the types in this file above the `Registry` section.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hub_xmlrpc::{Fault, MethodCall, Struct, Value};

use crate::context::Context;

/// A boxed, sendable future: what async handlers return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The arguments of one call, after koji's keyword-argument convention was applied:
/// a trailing struct whose `__starstar` is true (as Python sees it) is split off into `named`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    /// Positional arguments, in order.
    pub positional: Vec<Value>,
    /// Keyword arguments (the `__starstar` member removed), if the caller sent any.
    pub named: Option<Struct>,
}

impl Params {
    /// A parsed call's method name and arguments, a trailing `__starstar` struct split off
    /// as the keyword arguments.
    pub fn from_call(call: MethodCall) -> (String, Params) {
        let (name, params) = Self::from_borrowed_call(hub_xmlrpc::BorrowedCall {
            method_name: Cow::Owned(call.method_name),
            params: call.params,
        });
        (name.into_owned(), params)
    }

    /// A call's arguments as [`parse_call_borrowed`] read them, keyword arguments split off.
    ///
    /// [`parse_call_borrowed`]: hub_xmlrpc::parse_call_borrowed
    pub fn from_borrowed_call(mut call: hub_xmlrpc::BorrowedCall<'_>) -> (Cow<'_, str>, Params) {
        let named = call.split_kwargs();
        let params = Params {
            positional: call.params,
            named,
        };
        (call.method_name, params)
    }
}

/// Why a handler did not produce a value. The lifecycle maps each kind to a fault
/// code from the configured fault table; `Fault` keeps its own code.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcError {
    /// The arguments did not fit the method's signature (missing, surplus, unknown
    /// keyword, or mistyped). The message names the parameter and the expected type.
    InvalidParams(String),
    /// An application fault: sent to the client with its own code.
    Fault(Fault),
}

impl From<Fault> for RpcError {
    fn from(fault: Fault) -> Self {
        RpcError::Fault(fault)
    }
}

/// How a method runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// A plain `fn`: runs on the worker pool (thread mode) and may block.
    Blocking(fn(&Context, Params) -> Result<Value, RpcError>),
    /// An `async fn`: runs as a task on an IO unit (coroutine mode) and must not block.
    Async(fn(Arc<Context>, Params) -> BoxFuture<Result<Value, RpcError>>),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handler::Blocking(_) => "Handler::Blocking",
            Handler::Async(_) => "Handler::Async",
        })
    }
}

/// One declared parameter of a method (the context parameter is not listed).
#[derive(Debug, Clone, Copy)]
pub struct ParamDef {
    /// The Rust parameter name; also its keyword-argument name.
    pub name: &'static str,
    /// The parameter's Rust type as written, for help text.
    pub rust_type: &'static str,
    /// `true` for a trailing `Option<T>`: may be omitted.
    pub optional: bool,
    /// The XML-RPC type name (`int`, `struct`, ...) derived from the Rust type.
    pub xmlrpc_type: fn() -> &'static str,
}

/// A method declared with `#[rpc_method]`, submitted to `inventory` at link time.
#[derive(Debug)]
pub struct MethodDef {
    /// The XML-RPC method name.
    pub name: &'static str,
    /// More names the method answers to (`aliases`).
    pub aliases: &'static [&'static str],
    /// The doc comment, used as help text.
    pub doc: &'static str,
    /// The parameters, context excluded.
    pub params: &'static [ParamDef],
    /// The XML-RPC type name of the result.
    pub returns: fn() -> &'static str,
    /// The permission a caller needs, if any (`admin` satisfies every permission).
    pub perm: Option<&'static str>,
    /// `true` when the arguments carry secrets (a password): they are never logged.
    pub sensitive: bool,
    /// The method's own time budget in milliseconds (`timeout_ms`), in place of the server's
    /// `handler_timeout_ms`; `Some(0)`: none.
    pub timeout_ms: Option<u64>,
    /// How many of its calls may run at once (`max_in_flight`, at least 1); `None`: no limit.
    pub max_in_flight: Option<usize>,
    /// The code that decodes the parameters and runs the function.
    pub handler: Handler,
    /// Where the function is declared, for duplicate-name errors.
    pub file: &'static str,
    /// The line of the declaration.
    pub line: u32,
}

inventory::collect!(MethodDef);

// ---- Registry (owned by the registry work; the engine only calls `get`) ----

/// A blocking method registered at run time.
type BlockingFn = dyn Fn(&Context, Params) -> Result<Value, RpcError> + Send + Sync;
/// An async method registered at run time.
type AsyncFn = dyn Fn(Arc<Context>, Params) -> BoxFuture<Result<Value, RpcError>> + Send + Sync;

/// Where a method was declared (`#[rpc_method]`) or registered (run time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The source file.
    pub file: &'static str,
    /// The line in that file.
    pub line: u32,
}

impl Origin {
    /// The location of the caller of a `#[track_caller]` function.
    #[track_caller]
    fn caller() -> Self {
        let location = std::panic::Location::caller();
        Origin {
            file: location.file(),
            line: location.line(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One parameter as introspection describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// The parameter's name, also its keyword-argument name.
    pub name: Cow<'static, str>,
    /// The XML-RPC type (`int`, `struct`, `any`, ...).
    pub xmlrpc_type: Cow<'static, str>,
    /// The Rust type as written (`"Value"` for run-time methods that did not say).
    pub rust_type: Cow<'static, str>,
    /// May be omitted by the caller.
    pub optional: bool,
}

/// How a [`Method`] runs.
#[derive(Clone)]
enum Call {
    /// Declared with `#[rpc_method]`.
    Static(Handler),
    /// A blocking closure registered at run time.
    Blocking(Arc<BlockingFn>),
    /// An async closure registered at run time.
    Async(Arc<AsyncFn>),
}

/// One method of a [`Registry`]: its description and the code that runs it.
///
/// Methods declared with `#[rpc_method]` come from [`MethodDef`]s; run-time ones
/// are built with [`Method::blocking`] or [`Method::asynchronous`] and described
/// with the `with_*` methods.
pub struct Method {
    name: Cow<'static, str>,
    aliases: Vec<Cow<'static, str>>,
    doc: Cow<'static, str>,
    params: Vec<ParamInfo>,
    returns: Cow<'static, str>,
    perm: Option<Cow<'static, str>>,
    sensitive: bool,
    timeout: Option<Duration>,
    max_in_flight: Option<usize>,
    call: Call,
    origin: Origin,
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Method")
            .field("name", &self.name)
            .field("aliases", &self.aliases)
            .field("signature", &self.signature())
            .field("perm", &self.perm)
            .field("sensitive", &self.sensitive)
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("blocking", &self.is_blocking())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Method {
    /// The method an `#[rpc_method]` declared.
    pub fn from_def(def: &'static MethodDef) -> Self {
        Method {
            name: Cow::Borrowed(def.name),
            aliases: def.aliases.iter().map(|a| Cow::Borrowed(*a)).collect(),
            doc: Cow::Borrowed(def.doc),
            params: def
                .params
                .iter()
                .map(|param| ParamInfo {
                    name: Cow::Borrowed(param.name),
                    xmlrpc_type: Cow::Borrowed((param.xmlrpc_type)()),
                    rust_type: Cow::Borrowed(param.rust_type),
                    optional: param.optional,
                })
                .collect(),
            returns: Cow::Borrowed((def.returns)()),
            perm: def.perm.map(Cow::Borrowed),
            sensitive: def.sensitive,
            timeout: def.timeout_ms.map(Duration::from_millis),
            max_in_flight: def.max_in_flight,
            call: Call::Static(def.handler),
            origin: Origin {
                file: def.file,
                line: def.line,
            },
        }
    }

    /// A blocking method running `handler`; it takes the raw [`Params`] (decode
    /// them with [`Args`](crate::params::Args)). Its origin is the caller's location.
    #[track_caller]
    pub fn blocking<F>(name: impl Into<Cow<'static, str>>, handler: F) -> Self
    where
        F: Fn(&Context, Params) -> Result<Value, RpcError> + Send + Sync + 'static,
    {
        Self::new(
            name.into(),
            Call::Blocking(Arc::new(handler)),
            Origin::caller(),
        )
    }

    /// An async method running the future `handler` returns. Its origin is the
    /// caller's location.
    #[track_caller]
    pub fn asynchronous<F, Fut>(name: impl Into<Cow<'static, str>>, handler: F) -> Self
    where
        F: Fn(Arc<Context>, Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let boxed =
            move |ctx: Arc<Context>, params: Params| -> BoxFuture<Result<Value, RpcError>> {
                Box::pin(handler(ctx, params))
            };
        Self::new(name.into(), Call::Async(Arc::new(boxed)), Origin::caller())
    }

    fn new(name: Cow<'static, str>, call: Call, origin: Origin) -> Self {
        Method {
            name,
            aliases: Vec::new(),
            doc: Cow::Borrowed(""),
            params: Vec::new(),
            returns: Cow::Borrowed("any"),
            perm: None,
            sensitive: false,
            timeout: None,
            max_in_flight: None,
            call,
            origin,
        }
    }

    /// Adds another name the method answers to: an old name kept for old clients, say. Calls
    /// by an alias run this method and are counted and logged under its name; introspection
    /// lists the alias as a method of its own.
    pub fn with_alias(mut self, alias: impl Into<Cow<'static, str>>) -> Self {
        self.aliases.push(alias.into());
        self
    }

    /// The other names the method answers to.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.aliases.iter().map(|a| &**a)
    }

    /// Sets the help text.
    pub fn with_doc(mut self, doc: impl Into<Cow<'static, str>>) -> Self {
        self.doc = doc.into();
        self
    }

    /// Appends a required parameter of the given XML-RPC type (for introspection;
    /// the handler decodes what it gets).
    pub fn with_param(
        mut self,
        name: impl Into<Cow<'static, str>>,
        xmlrpc_type: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.push_param(name.into(), xmlrpc_type.into(), false);
        self
    }

    /// Appends an optional parameter (it must come after the required ones).
    pub fn with_optional_param(
        mut self,
        name: impl Into<Cow<'static, str>>,
        xmlrpc_type: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.push_param(name.into(), xmlrpc_type.into(), true);
        self
    }

    fn push_param(
        &mut self,
        name: Cow<'static, str>,
        xmlrpc_type: Cow<'static, str>,
        optional: bool,
    ) {
        self.params.push(ParamInfo {
            name,
            xmlrpc_type,
            rust_type: Cow::Borrowed("Value"),
            optional,
        });
    }

    /// Sets the XML-RPC type of the result (default `"any"`).
    pub fn with_returns(mut self, xmlrpc_type: impl Into<Cow<'static, str>>) -> Self {
        self.returns = xmlrpc_type.into();
        self
    }

    /// Requires a permission of callers.
    pub fn with_perm(mut self, perm: impl Into<Cow<'static, str>>) -> Self {
        self.perm = Some(perm.into());
        self
    }

    /// The XML-RPC method name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as stored: a context takes it from here (for a name given as a `&'static
    /// str`, which every `#[rpc_method]` name is, without copying).
    pub(crate) fn shared_name(&self) -> &Cow<'static, str> {
        &self.name
    }

    /// The help text (possibly empty).
    pub fn doc(&self) -> &str {
        &self.doc
    }

    /// The permission a caller needs, if any.
    pub fn perm(&self) -> Option<&str> {
        self.perm.as_deref()
    }

    /// Marks the arguments as secret (a password): the memory watch and the debug call
    /// log never print them.
    pub fn with_sensitive_args(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// `true` when the arguments must never be logged.
    pub fn is_sensitive(&self) -> bool {
        self.sensitive
    }

    /// Gives the method its own time budget, in place of the server's `handler_timeout_ms`
    /// (longer for a method that legitimately runs long, shorter for one that must not);
    /// `Duration::ZERO`: none. Past it the caller gets the timeout fault, as with the
    /// server's. It holds in a multicall too: each entry runs within its own method's budget.
    pub fn with_timeout(mut self, budget: Duration) -> Self {
        self.timeout = Some(budget);
        self
    }

    /// Lets at most `calls` of this method run at once (at least 1): one more is refused at
    /// once (`503` + `Retry-After`; in a multicall, that entry's fault) instead of waiting
    /// for a worker, so a slow method cannot hold every worker. A call holds its place until
    /// its handler returns.
    pub fn with_max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = Some(calls.max(1));
        self
    }

    /// How many of its calls may run at once, if that is limited.
    pub fn max_in_flight(&self) -> Option<usize> {
        self.max_in_flight
    }

    /// The method's own time budget, if it has one (`Duration::ZERO`: none).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The parameters, the context excluded.
    pub fn params(&self) -> &[ParamInfo] {
        &self.params
    }

    /// The XML-RPC type of the result.
    pub fn returns(&self) -> &str {
        &self.returns
    }

    /// Where the method was declared or registered.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// `true` if the method may block and must run on the worker pool; `false` for
    /// async methods, which run on an IO unit.
    pub fn is_blocking(&self) -> bool {
        match &self.call {
            Call::Static(Handler::Blocking(_)) | Call::Blocking(_) => true,
            Call::Static(Handler::Async(_)) | Call::Async(_) => false,
        }
    }

    /// The full signature: the result type, then every parameter's type.
    pub fn signature(&self) -> Vec<&str> {
        std::iter::once(self.returns())
            .chain(self.params.iter().map(|param| &*param.xmlrpc_type))
            .collect()
    }

    /// One signature per accepted number of arguments, shortest first: optional
    /// parameters may be left off the end.
    pub fn signatures(&self) -> Vec<Vec<&str>> {
        let full = self.signature();
        let required = self
            .params
            .iter()
            .take_while(|param| !param.optional)
            .count();
        (required..=self.params.len())
            .map(|arity| full[..=arity].to_vec())
            .collect()
    }

    /// Koji's argument description: `(build_id, strict=None)`.
    pub fn argdesc(&self) -> String {
        let args: Vec<String> = self
            .params
            .iter()
            .map(|param| {
                if param.optional {
                    format!("{}=None", param.name)
                } else {
                    param.name.to_string()
                }
            })
            .collect();
        format!("({})", args.join(", "))
    }

    /// Runs the method on the calling thread.
    ///
    /// Only blocking methods can run this way: an async method needs an
    /// `Arc<Context>` (use [`call_async`](Self::call_async)), and gets a fault
    /// saying so.
    pub fn call_blocking(&self, ctx: &Context, params: Params) -> Result<Value, RpcError> {
        match &self.call {
            Call::Static(Handler::Blocking(handler)) => handler(ctx, params),
            Call::Blocking(handler) => handler(ctx, params),
            Call::Static(Handler::Async(_)) | Call::Async(_) => Err(RpcError::Fault(Fault::new(
                crate::params::ENCODE_FAULT_CODE,
                format!(
                    "method `{}` is async and cannot run as a blocking call",
                    self.name
                ),
            ))),
        }
    }

    /// Runs the method as a future; a blocking method runs inline when polled.
    pub fn call_async(
        &self,
        ctx: Arc<Context>,
        params: Params,
    ) -> BoxFuture<Result<Value, RpcError>> {
        match &self.call {
            Call::Static(Handler::Async(handler)) => handler(ctx, params),
            Call::Async(handler) => handler(ctx, params),
            Call::Static(Handler::Blocking(handler)) => {
                let handler = *handler;
                Box::pin(async move { handler(&ctx, params) })
            }
            Call::Blocking(handler) => {
                let handler = Arc::clone(handler);
                Box::pin(async move { handler(&ctx, params) })
            }
        }
    }
}

/// The methods a server serves, by name.
///
/// ```
/// # use hub_core::registry::Registry;
/// let registry = Registry::from_inventory().expect("no two methods share a name");
/// assert!(registry.get("system.listMethods").is_some());
/// ```
/// Each alias, and the name of its method.
pub(crate) type AliasMap = HashMap<String, Cow<'static, str>, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub struct Registry {
    /// Each method once, by its name, sorted, for listings.
    methods: BTreeMap<String, Arc<Method>>,
    /// Every name served, aliases included, sorted.
    names: Vec<String>,
    /// Every name, hashed, for the lookup every call makes (a fast hash: the keys are fixed,
    /// so names from the network cannot flood a bucket).
    by_name: HashMap<String, Arc<Method>, foldhash::fast::RandomState>,
}

impl Registry {
    /// Every `#[rpc_method]` linked into the binary, plus the built-in introspection
    /// methods. Two methods with one name are an error naming both locations.
    pub fn from_inventory() -> Result<Registry, RegistryError> {
        Registry::builder().with_inventory().build()
    }

    /// A builder for run-time registration; it starts with the built-in
    /// introspection methods only ([`RegistryBuilder::with_inventory`] adds the
    /// declared ones).
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder {
            methods: crate::introspection::builtins(),
        }
    }

    /// The method called `name`, by its name or one of its aliases.
    pub fn get(&self, name: &str) -> Option<&Arc<Method>> {
        self.by_name.get(name)
    }

    /// Every name served, aliases included, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The methods, each once, sorted by name.
    pub fn methods(&self) -> impl Iterator<Item = &Arc<Method>> {
        self.methods.values()
    }

    /// Each alias, and the name of its method.
    pub(crate) fn alias_map(&self) -> AliasMap {
        self.methods()
            .flat_map(|m| m.aliases().map(|alias| (alias.to_owned(), m.name.clone())))
            .collect()
    }

    /// The number of methods (aliases not counted).
    pub fn len(&self) -> usize {
        self.methods.len()
    }

    /// `true` if there is no method at all.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
    }
}

/// Collects methods, then checks that no name is taken twice.
///
/// ```
/// # use hub_core::registry::{Method, Registry};
/// # use hub_xmlrpc::Value;
/// let registry = Registry::builder()
///     .with_inventory()
///     .method(Method::blocking("plugin.ping", |_ctx, _params| Ok(Value::from("pong"))).with_returns("string"))
///     .build()?;
/// assert_eq!(registry.get("plugin.ping").map(|m| m.signature()), Some(vec!["string"]));
/// # Ok::<(), hub_core::registry::RegistryError>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RegistryBuilder {
    methods: Vec<Method>,
}

impl RegistryBuilder {
    /// Adds every `#[rpc_method]` linked into the binary.
    pub fn with_inventory(mut self) -> Self {
        self.methods.extend(
            inventory::iter::<MethodDef>
                .into_iter()
                .map(Method::from_def),
        );
        self
    }

    /// Adds one method.
    pub fn method(mut self, method: Method) -> Self {
        self.methods.push(method);
        self
    }

    /// Adds a blocking method with no description; shorthand for
    /// `.method(Method::blocking(name, handler))`.
    #[track_caller]
    pub fn blocking<F>(self, name: impl Into<Cow<'static, str>>, handler: F) -> Self
    where
        F: Fn(&Context, Params) -> Result<Value, RpcError> + Send + Sync + 'static,
    {
        let method = Method::blocking(name, handler);
        self.method(method)
    }

    /// Adds an async method with no description; shorthand for
    /// `.method(Method::asynchronous(name, handler))`.
    #[track_caller]
    pub fn asynchronous<F, Fut>(self, name: impl Into<Cow<'static, str>>, handler: F) -> Self
    where
        F: Fn(Arc<Context>, Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let method = Method::asynchronous(name, handler);
        self.method(method)
    }

    /// The registry, or an error listing every name taken more than once with all
    /// the places that take it.
    pub fn build(self) -> Result<Registry, RegistryError> {
        let mut origins: BTreeMap<String, Vec<Origin>> = BTreeMap::new();
        for method in &self.methods {
            for name in std::iter::once(method.name()).chain(method.aliases()) {
                origins
                    .entry(name.to_owned())
                    .or_default()
                    .push(method.origin);
            }
        }
        let duplicates: Vec<DuplicateMethod> = origins
            .into_iter()
            .filter(|(_, origins)| origins.len() > 1)
            .map(|(name, mut origins)| {
                // Link order is not stable: sort so the message is.
                origins.sort();
                DuplicateMethod { name, origins }
            })
            .collect();
        if !duplicates.is_empty() {
            return Err(RegistryError { duplicates });
        }
        let methods: BTreeMap<String, Arc<Method>> = self
            .methods
            .into_iter()
            .map(|method| (method.name.to_string(), Arc::new(method)))
            .collect();
        let by_name: HashMap<String, Arc<Method>, _> = methods
            .values()
            .flat_map(|m| {
                std::iter::once(m.name())
                    .chain(m.aliases())
                    .map(|name| (name.to_owned(), Arc::clone(m)))
            })
            .collect();
        let mut names: Vec<String> = by_name.keys().cloned().collect();
        names.sort_unstable();
        Ok(Registry {
            methods,
            names,
            by_name,
        })
    }
}

/// A method name taken more than once, and everywhere it is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateMethod {
    /// The XML-RPC method name.
    pub name: String,
    /// The declarations or registrations, sorted.
    pub origins: Vec<Origin>,
}

/// Why a registry could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    duplicates: Vec<DuplicateMethod>,
}

impl RegistryError {
    /// The names taken more than once, sorted by name.
    pub fn duplicates(&self) -> &[DuplicateMethod] {
        &self.duplicates
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, duplicate) in self.duplicates.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            let places: Vec<String> = duplicate.origins.iter().map(ToString::to_string).collect();
            write!(
                f,
                "method `{}` is defined {} times: at {}",
                duplicate.name,
                duplicate.origins.len(),
                places.join(" and at ")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {}
