//! `xmlrpc_type_name`: the XML-RPC type each Rust type decodes from.

use std::collections::{BTreeMap, HashMap};

use hub_xmlrpc::{xmlrpc_type_name, DateTime, Struct, Value};

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct User {
    name: String,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
enum Mode {
    Fast,
    Slow,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Id(u32);

#[test]
fn names() {
    assert_eq!(xmlrpc_type_name::<i8>(), "int");
    assert_eq!(xmlrpc_type_name::<i64>(), "int");
    assert_eq!(xmlrpc_type_name::<u32>(), "int");
    assert_eq!(xmlrpc_type_name::<bool>(), "boolean");
    assert_eq!(xmlrpc_type_name::<String>(), "string");
    assert_eq!(xmlrpc_type_name::<char>(), "string");
    assert_eq!(xmlrpc_type_name::<f64>(), "double");
    assert_eq!(xmlrpc_type_name::<DateTime>(), "dateTime.iso8601");
    assert_eq!(xmlrpc_type_name::<serde_bytes::ByteBuf>(), "base64");
    assert_eq!(xmlrpc_type_name::<User>(), "struct");
    assert_eq!(xmlrpc_type_name::<HashMap<String, i32>>(), "struct");
    assert_eq!(xmlrpc_type_name::<BTreeMap<String, Value>>(), "struct");
    assert_eq!(xmlrpc_type_name::<Struct>(), "struct");
    assert_eq!(xmlrpc_type_name::<Vec<String>>(), "array");
    assert_eq!(xmlrpc_type_name::<(i32, String)>(), "array");
    assert_eq!(xmlrpc_type_name::<()>(), "nil");
    assert_eq!(xmlrpc_type_name::<Value>(), "any");
    assert_eq!(xmlrpc_type_name::<Mode>(), "string");
    assert_eq!(xmlrpc_type_name::<Id>(), "int");
    assert_eq!(xmlrpc_type_name::<Option<i32>>(), "int");
    assert_eq!(xmlrpc_type_name::<Option<Option<User>>>(), "struct");
    assert_eq!(xmlrpc_type_name::<Box<f32>>(), "double");
}
