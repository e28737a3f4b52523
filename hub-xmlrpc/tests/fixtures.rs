//! The fixtures made by Python's `xmlrpc.client` and koji's marshaller (see
//! `tests/fixtures/gen.py`) parse to exactly what the marshallers were given, and survive
//! a write/parse round trip.

use std::path::PathBuf;

use hub_xmlrpc::{
    parse_call, parse_response, write_call, write_fault, write_response, DateTime, Fault, Limits,
    MethodCall, MethodResponse, Struct, Value,
};
use serde_json::Value as Json;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixtures() -> Vec<(String, Vec<u8>, Json)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir()).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("xml") {
            continue;
        }
        let xml = std::fs::read(&path).expect("read xml");
        let json = std::fs::read_to_string(path.with_extension("json")).expect("read json");
        let name = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        out.push((name, xml, serde_json::from_str(&json).expect("json")));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 13, "fixtures missing: {}", out.len());
    out
}

fn typed(j: &Json) -> Value {
    let (tag, v) = j
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("typed value");
    match tag.as_str() {
        "nil" => Value::Nil,
        "boolean" => Value::Bool(v.as_bool().expect("bool")),
        "int" => Value::Int(v.as_i64().expect("i64")),
        "double" => Value::Double(match v {
            Json::String(s) if s == "inf" => f64::INFINITY,
            Json::String(s) if s == "-inf" => f64::NEG_INFINITY,
            other => other.as_f64().expect("f64"),
        }),
        "string" => Value::String(v.as_str().expect("str").to_owned()),
        "dateTime" => Value::DateTime(v.as_str().expect("dt").parse::<DateTime>().expect("dt")),
        "base64" => {
            let hex = v.as_str().expect("hex");
            Value::Base64(
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect(),
            )
        }
        "struct" => Value::Struct(
            v.as_array()
                .expect("members")
                .iter()
                .map(|m| (m[0].as_str().expect("name").to_owned(), typed(&m[1])))
                .collect::<Struct>(),
        ),
        "array" => Value::Array(v.as_array().expect("array").iter().map(typed).collect()),
        other => panic!("unknown tag {other}"),
    }
}

fn expected_call(j: &Json) -> MethodCall {
    MethodCall {
        method_name: j["method"].as_str().expect("method").to_owned(),
        params: j["params"]
            .as_array()
            .expect("params")
            .iter()
            .map(typed)
            .collect(),
    }
}

fn expected_response(j: &Json) -> MethodResponse {
    if let Some(f) = j.get("fault") {
        MethodResponse::Fault(Fault::new(
            i32::try_from(f[0].as_i64().expect("code")).expect("i32"),
            f[1].as_str().expect("msg"),
        ))
    } else {
        MethodResponse::Success(typed(&j["success"]))
    }
}

#[test]
fn every_fixture_parses_to_what_python_marshalled() {
    for (name, xml, json) in fixtures() {
        if json.get("method").is_some() {
            let call =
                parse_call(&xml, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(call, expected_call(&json), "{name}");
        } else {
            let resp =
                parse_response(&xml, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(resp, expected_response(&json), "{name}");
        }
    }
}

#[test]
fn every_fixture_round_trips_through_our_writer() {
    for (name, xml, json) in fixtures() {
        let mut out = Vec::new();
        if json.get("method").is_some() {
            let call = parse_call(&xml, &Limits::default()).expect("parse");
            write_call(&call, &mut out);
            assert_eq!(
                parse_call(&out, &Limits::default()).expect("reparse"),
                call,
                "{name}"
            );
        } else {
            match parse_response(&xml, &Limits::default()).expect("parse") {
                MethodResponse::Success(v) => {
                    write_response(&v, &mut out);
                    assert_eq!(
                        parse_response(&out, &Limits::default()).expect("reparse"),
                        MethodResponse::Success(v),
                        "{name}"
                    );
                }
                MethodResponse::Fault(f) => {
                    write_fault(&f, &mut out);
                    assert_eq!(
                        parse_response(&out, &Limits::default()).expect("reparse"),
                        MethodResponse::Fault(f),
                        "{name}"
                    );
                }
            }
        }
    }
}

#[test]
fn koji_kwargs_fixture_splits() {
    let xml = std::fs::read(dir().join("koji_call_kwargs.xml")).expect("read");
    let mut call = parse_call(&xml, &Limits::default()).expect("parse");
    let kw = call.split_kwargs().expect("kwargs");
    assert_eq!(call.params, vec![Value::Int(1), Value::from("x")]);
    let names: Vec<&str> = kw.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(names, ["owner", "latest", "n"]);
    assert_eq!(kw.get("n"), Some(&Value::Nil));
}

#[test]
fn koji_i8_fixture_uses_i8_beyond_32_bits() {
    let xml = std::fs::read_to_string(dir().join("koji_call_i8.xml")).expect("read");
    assert!(xml.contains("<i8>1099511627776</i8>"));
    assert!(xml.contains("<int>2147483647</int>"));
    // And we write the same way.
    let call = parse_call(xml.as_bytes(), &Limits::default()).expect("parse");
    let mut out = Vec::new();
    write_call(&call, &mut out);
    let out = String::from_utf8(out).expect("utf8");
    assert!(out.contains("<i8>1099511627776</i8>"));
    assert!(out.contains("<int>2147483647</int>"));
    assert!(out.contains("<int>-2147483648</int>"));
    assert!(out.contains("<i8>-2147483649</i8>"));
}
