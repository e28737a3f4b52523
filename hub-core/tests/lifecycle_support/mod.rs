//! Helpers for the lifecycle tests: requests with extra headers, multicall bodies, session
//! headers, fault parsing.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;

use hub_xmlrpc::{parse_response, Limits, MethodResponse, Value};

use crate::support::{call_xml, Conn, Resp};

/// POSTs an XML-RPC call with extra headers on `conn`.
pub fn call_with(
    conn: &mut Conn,
    method: &str,
    params: &[&str],
    headers: &[(&str, String)],
) -> Resp {
    post(conn, &call_xml(method, params), headers)
}

/// POSTs `body` to `/RPC2` with extra headers.
pub fn post(conn: &mut Conn, body: &str, headers: &[(&str, String)]) -> Resp {
    send(conn, body, headers);
    conn.read_response().expect("a response")
}

/// Writes a POST of `body` to `/RPC2` with extra headers, without waiting for its answer.
pub fn send(conn: &mut Conn, body: &str, headers: &[(&str, String)]) {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: test\r\nContent-Type: text/xml\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.stream.write_all(req.as_bytes()).unwrap();
}

/// koji's session headers.
pub fn session(id: i64, key: &str, callnum: i64) -> Vec<(&'static str, String)> {
    vec![
        ("Koji-Session-Id", id.to_string()),
        ("Koji-Session-Key", key.to_owned()),
        ("Koji-Session-Callnum", callnum.to_string()),
    ]
}

/// A multicall's answer decoded entry by entry: `Ok(value)` for `[value]`, `Err((code,
/// message))` for a fault struct.
pub fn entries(r: &Resp) -> Vec<Result<Value, (i32, String)>> {
    let answer = outcome(r).expect("a multicall answers its entries");
    let entries = answer.as_array().expect("an array of entries");
    entries
        .iter()
        .map(|entry| match entry {
            Value::Array(one) if one.len() == 1 => Ok(one[0].clone()),
            Value::Struct(fault) => {
                let code = fault.get("faultCode").and_then(Value::as_i64).unwrap();
                let message = fault.get("faultString").and_then(Value::as_str).unwrap();
                Err((i32::try_from(code).unwrap(), message.to_owned()))
            }
            other => panic!("not a multicall entry: {other:?}"),
        })
        .collect()
}

/// The response decoded: `Ok(value)` or `Err((code, message))`.
pub fn outcome(r: &Resp) -> Result<Value, (i32, String)> {
    assert_eq!(r.status, 200, "{r:?}");
    match parse_response(r.body.as_bytes(), &Limits::DEFAULT).unwrap() {
        MethodResponse::Success(v) => Ok(v),
        MethodResponse::Fault(f) => Err((f.code, f.message)),
    }
}

/// The fault code of a response (panics on a success).
pub fn fault_code(r: &Resp) -> i32 {
    outcome(r).expect_err("a fault").0
}

/// A `system.multicall` body for `(method, [param xml])` entries.
pub fn multicall_xml(entries: &[(&str, &[&str])]) -> String {
    let values: String = entries
        .iter()
        .map(|(m, ps)| {
            let params: String = ps.iter().map(|p| format!("<value>{p}</value>")).collect();
            format!(
                "<value><struct><member><name>methodName</name><value><string>{m}</string></value></member>\
                 <member><name>params</name><value><array><data>{params}</data></array></value></member></struct></value>"
            )
        })
        .collect();
    call_xml(
        "system.multicall",
        &[&format!("<array><data>{values}</data></array>")],
    )
}

/// Names the caller the `X-User` header says, in session 42 (anonymous without it).
pub struct ByHeader;

impl hub_core::auth::Authenticator for ByHeader {
    fn authenticate(
        &self,
        req: &hub_core::auth::AuthRequest<'_>,
    ) -> Result<Option<hub_core::auth::Caller>, hub_core::auth::AuthFailure> {
        let user = req.headers.get("x-user").and_then(|v| v.to_str().ok());
        Ok(user.map(|name| hub_core::auth::Caller::new(name).with_session(42)))
    }
}
