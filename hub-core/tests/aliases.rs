//! A method's aliases over real sockets: served like its name, counted and authenticated as
//! the method, listed by introspection, admitted under lockout as the method is.
#![allow(clippy::unwrap_used)]

mod lifecycle_support;
mod support;

use std::sync::{Arc, Mutex};

use hub_core::auth::{AuthFailure, AuthRequest, Authenticator, Caller};
use hub_core::registry::{Method, Registry};
use hub_core::{Config, FaultCodes, Server};
use hub_xmlrpc::Value;

use lifecycle_support::outcome;
use support::{config, Conn};

/// Records the method name of every call it authenticates; everyone is anonymous.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Authenticator for Recorder {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure> {
        self.0.lock().unwrap().push(req.method.to_owned());
        Ok(None)
    }
}

fn registry() -> Registry {
    Registry::builder()
        .method(
            Method::blocking("getBuild", |ctx, p| {
                let id = p.positional.first().cloned().unwrap_or(Value::Nil);
                Ok(Value::Array(vec![Value::from(ctx.method()), id]))
            })
            .with_alias("get_build")
            .with_alias("build.get")
            .with_doc("A build.")
            .with_param("build_id", "int"),
        )
        .method(
            Method::asynchronous("hello", |ctx, _p| async move {
                Ok(Value::from(format!("hello from {}", ctx.method())))
            })
            .with_alias("sayHello"),
        )
        .method(Method::blocking("login", |_ctx, _p| Ok(Value::from("in"))).with_alias("oldLogin"))
        .build()
        .unwrap()
}

fn start(cfg: Config, recorder: &Arc<Recorder>) -> hub_core::RunningServer {
    Server::builder()
        .config(cfg)
        .registry(registry())
        .authenticator(Arc::clone(recorder))
        .build()
        .unwrap()
        .start()
        .unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_alias_is_served_counted_and_described_as_its_method() {
    let recorder = Arc::new(Recorder::default());
    let server = start(config(), &recorder);
    let mut c = Conn::open(server.local_addr());
    // Every name runs the method; its context names the method.
    for name in ["getBuild", "get_build", "build.get"] {
        let got = outcome(&c.call(name, &["<int>7</int>"]));
        assert_eq!(
            got,
            Ok(Value::Array(vec!["getBuild".into(), Value::Int(7)])),
            "{name}"
        );
    }
    assert_eq!(
        outcome(&c.call("sayHello", &[])),
        Ok(Value::from("hello from hello"))
    );
    // The authenticator was asked about the method, whatever name the call used.
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(seen, ["getBuild", "getBuild", "getBuild", "hello"]);

    // Introspection lists each alias as a method of its own.
    let names = strings(&outcome(&c.call("system.listMethods", &[])).unwrap());
    for name in ["getBuild", "get_build", "build.get", "hello", "sayHello"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let help = outcome(&c.call("system.methodHelp", &["<string>get_build</string>"])).unwrap();
    assert_eq!(
        help.as_str(),
        Some("get_build(build_id)\ndescription: A build.")
    );
    let api = outcome(&c.call("_listapi", &[])).unwrap();
    let listed: Vec<&str> = api
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.as_struct()
                .unwrap()
                .get("name")
                .unwrap()
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(listed.len(), names.len(), "{listed:?}");
    assert!(listed.contains(&"build.get"), "{listed:?}");

    // Counted in the method's own series; an alias has none.
    let metrics = c.request("GET", "/metrics", "").body;
    assert!(
        metrics.contains("hub_method_calls_total{method=\"getBuild\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hub_method_calls_total{method=\"hello\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("method=\"get_build\""), "{metrics}");
    server.shutdown();
}

#[test]
fn an_alias_of_a_lockout_exempt_method_is_exempt() {
    let recorder = Arc::new(Recorder::default());
    let cfg = Config {
        lockout: true,
        offline_message: "locked".into(),
        ..config()
    };
    let server = start(cfg, &recorder);
    let mut c = Conn::open(server.local_addr());
    let offline = FaultCodes::default().offline;
    assert_eq!(
        outcome(&c.call("get_build", &["<int>1</int>"])),
        Err((offline, "locked".into()))
    );
    assert_eq!(outcome(&c.call("oldLogin", &[])), Ok(Value::from("in")));
    assert_eq!(outcome(&c.call("login", &[])), Ok(Value::from("in")));
    server.shutdown();
}
