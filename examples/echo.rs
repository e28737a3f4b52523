//! The echo server: phxrpc's sample counterpart and the benchmark's target.
//!
//! ```text
//! cargo run --example echo -- [--listen ADDR]... [--config PATH] [--handlers async|blocking]
//! ```
//!
//! Methods: `echo(value)` returns its argument unchanged; `getBuild(id)` returns a fixed
//! koji-like build struct; `sleep(ms)` blocks a worker for `ms` milliseconds; `hog(ms)`
//! blocks an IO unit for as long (a deliberate mistake, for the stall tests); `fail(code,
//! message)` answers that fault; `crash()` panics (the panic cage answers an internal-error
//! fault); `getAPIVersion()` answers 1 (koji's API version, which the `koji` CLI checks
//! first); plus the built-in `system.*` methods. `--handlers` chooses whether `echo` and
//! `getBuild` run as async handlers on the IO units (default) or as blocking handlers on the
//! worker pool; their wire names are the same either way, so they are registered at run time.

mod common;
#[path = "common/echo_methods.rs"]
mod echo_methods;

use std::process::ExitCode;
use std::time::Duration;

use echo_methods::{echo, get_build, method};
use hub::{rpc_method, Fault, Registry};

/// koji's API version: the `koji` CLI asks for it before any other call.
#[rpc_method(name = "getAPIVersion")]
fn get_api_version() -> i32 {
    1
}

/// Blocks a worker thread for `ms` milliseconds, then returns `ms`.
#[rpc_method]
fn sleep(ms: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms.max(0) as u64));
    ms
}

/// Blocks its IO unit's thread for `ms` milliseconds, then returns `ms`: the mistake of
/// blocking work in an async handler, made on purpose so the tests can show what notices it
/// (the stall warning, systemd's watchdog). Real async handlers must not block.
#[rpc_method]
async fn hog(ms: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms.max(0) as u64));
    ms
}

/// Answers the fault `code` with `message`.
#[rpc_method]
fn fail(code: i32, message: String) -> Result<(), Fault> {
    Err(Fault::new(code, message))
}

/// Panics, to show the panic cage.
#[rpc_method]
fn crash() -> Result<(), Fault> {
    panic!("crash() was called")
}

struct Args {
    server: common::ServerArgs,
    blocking: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        server: common::ServerArgs::default(),
        blocking: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        if args.server.take(&flag, &mut value)? {
            continue;
        }
        match flag.as_str() {
            "--handlers" => {
                args.blocking = match value()?.as_str() {
                    "async" => false,
                    "blocking" => true,
                    other => return Err(format!("--handlers: `{other}` is not async|blocking")),
                }
            }
            "-h" | "--help" => {
                return Err(
                    "usage: echo [--listen ADDR] [--config PATH] [--handlers async|blocking]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let registry = Registry::builder()
        .with_inventory()
        .method(method("echo", echo, args.blocking))
        .method(method("getBuild", get_build, args.blocking))
        .build()
        .map_err(|e| e.to_string())?;
    common::serve(
        args.server
            .builder(args.server.config()?)?
            .registry(registry),
    )
}

fn main() -> ExitCode {
    common::main("echo", run)
}
