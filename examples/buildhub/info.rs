//! The hub's own methods: `getAPIVersion`, `getKojiVersion`, `hello`, `echo`, and the
//! admin switch `setOffline`.

use hub::{rpc_method, Context, Fault, Method, Value};

/// The koji version buildhub answers to (`getKojiVersion`, the `Koji-Version` header): the
/// koji API level whose calls it serves the way koji does.
pub const KOJI_VERSION: &str = "1.35.0";

/// koji's XML-RPC API version.
#[rpc_method(name = "getAPIVersion")]
fn get_api_version() -> i32 {
    1
}

/// The koji version this hub speaks.
#[rpc_method(name = "getKojiVersion")]
fn get_koji_version() -> &'static str {
    KOJI_VERSION
}

/// Takes the hub offline (`true`; every later call answers koji's `ServerOffline` with
/// `message`) or back online (`false`). Needs `admin`. While offline the hub answers nothing
/// else, this method included: restart it to bring it back.
#[rpc_method(name = "setOffline", perm = "admin")]
fn set_offline(ctx: &Context, offline: bool, message: Option<String>) -> Result<(), Fault> {
    if offline {
        let message = message.unwrap_or_else(|| "server is offline".to_owned());
        tracing::warn!(%message, by = ?ctx.caller().map(|c| c.name()), "going offline");
        ctx.status().go_offline(message);
    } else {
        ctx.status().set_offline(false);
    }
    Ok(())
}

/// koji's `hello(*args)` and `echo(*args)`: variadic, so registered at run time.
pub fn variadic_methods() -> [Method; 2] {
    [
        Method::blocking("hello", |_ctx, _params| Ok(Value::from("Hello World")))
            .with_doc("Answers \"Hello World\", whatever the arguments.")
            .with_returns("string"),
        Method::blocking("echo", |_ctx, params| {
            let mut args = params.positional;
            if let Some(named) = params.named {
                args.push(Value::Struct(named));
            }
            Ok(Value::Array(args))
        })
        .with_doc("Answers its arguments as an array (keyword arguments as a last struct).")
        .with_returns("array"),
    ]
}
