//! `system.multicall` (also answered as koji's `multiCall`): many calls in one request, each
//! isolated: each entry has its own context and so its own per-request resources, committed
//! or rolled back on their own (a failing entry rolls back only itself). The request is
//! authenticated once; each entry is checked for lockout and permission by its own method.
//!
//! Results come back in order: a success as a one-element array `[value]`, a failure as a
//! struct `{faultCode, faultString}`. A nested `system.multicall` is refused for that entry
//! only. Blocking entries go through the worker pool one after the other (so one batch holds at
//! most one worker at a time and cannot starve other clients); async entries run inline. An
//! entry refused by the queue answers the `system_error` fault; the others still run.
//!
//! Each entry runs within its own method's time budget (its `timeout_ms`, else the server's
//! `handler_timeout_ms`), as it would called alone: a long import in a batch is not cut off
//! by the server's budget, and a quick method does not get the batch's whole time. An entry
//! over its budget answers the budget's fault in its place and the batch stops there: the
//! entries after it answer "not run" (a blocking handler over its budget runs on, holding its
//! worker, and the batch must not take another). The answers of the entries before it are
//! kept.

use std::sync::Arc;

use hub_xmlrpc::{Fault, MethodCall, Struct, Value};

use crate::dispatch::{budget_of, call_method, over_budget, CallError, RequestMeta};
use crate::registry::Params;
use crate::server::Shared;

/// The wire name.
pub const NAME: &str = "system.multicall";
/// koji's name for the same call (`ClientSession.multicall()` sends it); served the same way.
pub const KOJI_NAME: &str = "multiCall";

/// Whether `method` names the multicall (either name).
pub(crate) fn is_multicall(method: &str) -> bool {
    method == NAME || method == KOJI_NAME
}

/// Runs a multicall whose single parameter is the array of calls.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    params: Params,
    meta: &RequestMeta,
) -> Result<Value, CallError> {
    let faults = shared.config.faults;
    let mut positional = params.positional;
    let calls =
        match (positional.pop(), positional.is_empty(), &params.named) {
            (Some(Value::Array(calls)), true, None) => calls,
            _ => return Err(Fault::new(
                faults.invalid_params,
                "system.multicall takes one parameter: an array of {methodName, params} structs",
            )
            .into()),
        };
    let max = shared.config.max_multicall_calls;
    if calls.len() > max {
        return Err(Fault::new(
            faults.invalid_params,
            format!(
                "system.multicall: {} calls, at most {max} allowed",
                calls.len()
            ),
        )
        .into());
    }
    let mut results = Vec::with_capacity(calls.len());
    // The entry that overran its budget, once one has.
    let mut overran: Option<(usize, String)> = None;
    for (i, entry) in calls.into_iter().enumerate() {
        let outcome = match (entry_call(entry, faults.invalid_params), &overran) {
            (_, Some((at, method))) => Err(CallError::Fault(Fault::new(
                faults.system_error,
                format!("not run: entry {at} ({method}) exceeded its time budget"),
            ))),
            (Err(fault), None) => Err(CallError::Fault(fault)),
            (Ok(call), None) if is_multicall(&call.method_name) => Err(CallError::Fault(
                Fault::new(faults.invalid_params, "system.multicall may not be nested"),
            )),
            (Ok(call), None) => {
                let (name, params) = Params::from_call(call);
                let entry = call_method(shared, &name, params, meta, i);
                match budget_of(shared, &name) {
                    None => entry.outcome().await,
                    Some(budget) => match entry.outcome_within(budget).await {
                        Some(outcome) => outcome,
                        None => {
                            tracing::warn!(
                                peer = ?meta.peer,
                                method = %name,
                                entry = i,
                                budget_ms = budget.as_millis() as u64,
                                "multicall entry over its time budget"
                            );
                            overran = Some((i, name));
                            Err(over_budget(shared, budget))
                        }
                    },
                }
            }
        };
        results.push(match outcome {
            Ok(v) => Value::Array(vec![v]),
            Err(CallError::Fault(f)) => fault_struct(f),
            Err(CallError::Refused(r)) => fault_struct(Fault::new(faults.system_error, r.reason())),
        });
    }
    Ok(Value::Array(results))
}

/// Reads one `{methodName, params}` entry.
pub(crate) fn entry_call(entry: Value, code: i32) -> Result<MethodCall, Fault> {
    let Value::Struct(mut s) = entry else {
        return Err(Fault::new(code, "multicall entry must be a struct"));
    };
    let name = match s.remove("methodName") {
        Some(Value::String(n)) => n,
        _ => {
            return Err(Fault::new(
                code,
                "multicall entry needs a string methodName",
            ))
        }
    };
    let params = match s.remove("params") {
        Some(Value::Array(p)) => p,
        None => Vec::new(),
        Some(_) => return Err(Fault::new(code, "multicall entry params must be an array")),
    };
    Ok(MethodCall::new(name, params))
}

/// A fault as a multicall result entry.
fn fault_struct(f: Fault) -> Value {
    let mut s = Struct::new();
    s.insert("faultCode", Value::Int(i64::from(f.code)));
    s.insert("faultString", Value::String(f.message));
    Value::Struct(s)
}
