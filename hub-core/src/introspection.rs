//! The built-in methods every registry serves: `system.listMethods`,
//! `system.methodHelp`, `system.methodSignature` and koji's `_listapi`.
//!
//! They describe the registry of the call (`ctx.registry()`), so run-time
//! methods are described like declared ones. `system.multicall` (and koji's `multiCall`, its
//! alias) is listed here so that
//! introspection tells the truth, but the engine runs it (it needs the worker pool):
//! calls to it never reach the entry below.
//!
//! `system.methodHelp` answers in koji's style, `name(args)` then
//! `\ndescription: doc` when there is a doc comment, so that tools written for
//! koji keep working. Asking about an unknown method is an invalid-params fault
//! (koji answers an empty string; a fault tells the caller what went wrong).
//!
//! A method's aliases are listed as methods of their own, as koji lists every name its
//! registry holds: `system.listMethods` names them, `_listapi` has an entry for each, and
//! `system.methodHelp` answers with the name asked about.

use hub_xmlrpc::{Struct, Value};

use crate::context::Context;
use crate::params::Args;
use crate::registry::{Method, ParamDef, Params, RpcError};

/// The one parameter of `methodHelp` and `methodSignature`.
static METHOD_NAME: [ParamDef; 1] = [ParamDef {
    name: "method_name",
    rust_type: "String",
    optional: false,
    xmlrpc_type: || "string",
}];

/// The built-in methods, described like declared ones.
pub(crate) fn builtins() -> Vec<Method> {
    vec![
        Method::blocking("system.listMethods", list_methods)
            .with_doc("The names of all methods this server serves, sorted.")
            .with_returns("array"),
        Method::blocking("system.methodHelp", method_help)
            .with_doc(
                "The help text of a method: `name(args)`, then `description: ` and its \
                 documentation when it has some.",
            )
            .with_param("method_name", "string")
            .with_returns("string"),
        Method::blocking("system.methodSignature", method_signature)
            .with_doc(
                "The signatures of a method: one array per accepted number of arguments, \
                 the result's type first, then each parameter's type.",
            )
            .with_param("method_name", "string")
            .with_returns("array"),
        // koji's `multiCall` is the same (the engine answers both names), listed as koji lists it.
        Method::blocking("system.multicall", multicall_outside_engine)
            .with_alias(crate::multicall::KOJI_NAME)
            .with_doc(
                "Runs several calls in one request: each entry is a struct {methodName, params}; \
                 the answer lists each result as a one-element array, or a \
                 {faultCode, faultString} struct for a call that failed.",
            )
            .with_param("calls", "array")
            .with_returns("array"),
        Method::blocking("_listapi", list_api)
            .with_doc(
                "Every method as a struct {name, doc, argdesc, args}; `args` lists required \
                 parameters by name and optional ones as [name, default].",
            )
            .with_returns("array"),
    ]
}

/// The engine answers `system.multicall` before the registry is consulted; this runs only
/// when a registry is used on its own, without a server.
fn multicall_outside_engine(_ctx: &Context, _params: Params) -> Result<Value, RpcError> {
    Err(RpcError::InvalidParams(
        "system.multicall is run by the server's engine, not through the registry alone".to_owned(),
    ))
}

fn list_methods(ctx: &Context, params: Params) -> Result<Value, RpcError> {
    Args::new(params, &[])?;
    let names = ctx.registry().names().map(Value::from).collect();
    Ok(Value::Array(names))
}

fn method_help(ctx: &Context, params: Params) -> Result<Value, RpcError> {
    let (name, method) = named_method(ctx, params)?;
    let mut help = format!("{name}{}", method.argdesc());
    if !method.doc().is_empty() {
        help.push_str("\ndescription: ");
        help.push_str(method.doc());
    }
    Ok(Value::String(help))
}

fn method_signature(ctx: &Context, params: Params) -> Result<Value, RpcError> {
    let (_, method) = named_method(ctx, params)?;
    let signatures = method
        .signatures()
        .into_iter()
        .map(|signature| Value::Array(signature.into_iter().map(Value::from).collect()))
        .collect();
    Ok(Value::Array(signatures))
}

fn list_api(ctx: &Context, params: Params) -> Result<Value, RpcError> {
    Args::new(params, &[])?;
    let registry = ctx.registry();
    let entries = registry
        .names()
        .filter_map(|name| Some(api_entry(name, registry.get(name)?)))
        .collect();
    Ok(Value::Array(entries))
}

/// `{name, doc, argdesc, args}` as koji's `_listapi` gives it, for `method` under `name`.
fn api_entry(name: &str, method: &Method) -> Value {
    let args = method
        .params()
        .iter()
        .map(|param| {
            if param.optional {
                Value::Array(vec![Value::from(&*param.name), Value::Nil])
            } else {
                Value::from(&*param.name)
            }
        })
        .collect();
    let mut entry = Struct::with_capacity(4);
    entry.insert("name", name);
    entry.insert("doc", method.doc());
    entry.insert("argdesc", method.argdesc());
    entry.insert("args", Value::Array(args));
    Value::Struct(entry)
}

/// Decodes the `method_name` parameter and looks it up: the name asked about, and its method.
fn named_method(
    ctx: &Context,
    params: Params,
) -> Result<(String, &std::sync::Arc<Method>), RpcError> {
    let mut args = Args::new(params, &METHOD_NAME)?;
    let name: String = args.take(0)?;
    match ctx.registry().get(&name) {
        Some(method) => Ok((name, method)),
        None => Err(RpcError::InvalidParams(format!("no method named `{name}`"))),
    }
}
