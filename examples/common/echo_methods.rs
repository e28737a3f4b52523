//! `echo` and `getBuild` as the echo example serves them, registered at run time so that one
//! wire name can be either an async or a blocking handler. Shared with `benches/e2e.rs`, which
//! measures exactly these.

use std::sync::Arc;

use hub::{Context, Method, Params, RpcError, Struct, Value};

/// `echo(value)`: the one argument, whatever its type.
pub fn echo(params: Params) -> Result<Value, RpcError> {
    let mut args = params.positional.into_iter();
    match (args.next(), args.next(), params.named) {
        (Some(v), None, None) => Ok(v),
        _ => Err(RpcError::InvalidParams(
            "echo takes exactly one argument: value".into(),
        )),
    }
}

/// `getBuild(id: int)`: a fixed build carrying `id`.
pub fn get_build(params: Params) -> Result<Value, RpcError> {
    let id = match (params.positional.as_slice(), &params.named) {
        ([Value::Int(id)], None) => *id,
        _ => {
            return Err(RpcError::InvalidParams(
                "getBuild takes exactly one argument: id (int)".into(),
            ))
        }
    };
    let mut s = Struct::new();
    s.insert("id", id);
    s.insert("name", "bash");
    s.insert("version", "5.2.15");
    s.insert("release", "3.fc40");
    s.insert("state", 1);
    s.insert("owner_name", "builder");
    s.insert("volume_id_set", true);
    s.insert("score", 0.5);
    Ok(Value::Struct(s))
}

/// `f` as an async or a blocking method named `name`, described for introspection.
pub fn method(
    name: &'static str,
    f: fn(Params) -> Result<Value, RpcError>,
    blocking: bool,
) -> Method {
    let m = if blocking {
        Method::blocking(name, move |_ctx: &Context, p| f(p))
    } else {
        Method::asynchronous(name, move |_ctx: Arc<Context>, p| async move { f(p) })
    };
    match name {
        "echo" => m
            .with_doc("Returns its one argument unchanged, whatever its XML-RPC type.")
            .with_param("value", "any"),
        _ => m
            .with_doc("Returns a fixed build struct carrying the given id.")
            .with_param("id", "int")
            .with_returns("struct"),
    }
}
