//! [`MethodCall`] and [`MethodResponse`]: the two messages of XML-RPC.

use std::borrow::Cow;

use crate::{Fault, Struct, Value};

/// The member koji's client adds to a trailing struct to mark it as keyword arguments.
pub const STARSTAR: &str = "__starstar";

/// A `<methodCall>`: a method name and positional parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    /// The `<methodName>`.
    pub method_name: String,
    /// The `<params>`, in order.
    pub params: Vec<Value>,
}

impl MethodCall {
    /// A call of `method_name` with `params`.
    pub fn new(method_name: impl Into<String>, params: Vec<Value>) -> Self {
        MethodCall {
            method_name: method_name.into(),
            params,
        }
    }

    /// Splits off koji's keyword arguments: if the last parameter is a struct whose
    /// `__starstar` member is true (as Python sees it, as koji's `decode_args` asks: `true`,
    /// `1`, a non-empty string...), removes it from `params` and returns its other members.
    ///
    /// ```
    /// use hub_xmlrpc::{MethodCall, Struct, Value};
    /// let mut kw = Struct::new();
    /// kw.insert("owner", "alice");
    /// kw.insert("__starstar", true);
    /// let mut call = MethodCall::new("listBuilds", vec![Value::Int(1), Value::Struct(kw)]);
    /// let named = call.split_kwargs().unwrap();
    /// assert_eq!(call.params, vec![Value::Int(1)]);
    /// assert_eq!(named.get("owner"), Some(&Value::from("alice")));
    /// assert_eq!(named.len(), 1);
    /// ```
    pub fn split_kwargs(&mut self) -> Option<Struct> {
        split_kwargs(&mut self.params)
    }
}

/// A `<methodCall>` as [`parse_call_borrowed`] reads it: the method name stays in the input
/// when it has nothing to decode, so a server that only looks the name up allocates nothing
/// for it.
///
/// [`parse_call_borrowed`]: crate::parse_call_borrowed
#[derive(Debug, Clone, PartialEq)]
pub struct BorrowedCall<'a> {
    /// The `<methodName>`.
    pub method_name: Cow<'a, str>,
    /// The `<params>`, in order.
    pub params: Vec<Value>,
}

impl BorrowedCall<'_> {
    /// The call with its own copy of the method name.
    pub fn into_owned(self) -> MethodCall {
        MethodCall {
            method_name: self.method_name.into_owned(),
            params: self.params,
        }
    }

    /// Splits off koji's keyword arguments, as [`MethodCall::split_kwargs`] does.
    pub fn split_kwargs(&mut self) -> Option<Struct> {
        split_kwargs(&mut self.params)
    }
}

/// The keyword split shared by both call types.
fn split_kwargs(params: &mut Vec<Value>) -> Option<Struct> {
    match params.last() {
        Some(Value::Struct(s)) if s.get(STARSTAR).is_some_and(truthy) => {}
        _ => return None,
    }
    match params.pop() {
        Some(Value::Struct(mut s)) => {
            s.remove(STARSTAR);
            Some(s)
        }
        _ => None,
    }
}

/// Whether Python takes `v` for true, as koji's `decode_args` asks of `__starstar`: a
/// client may send `1` or `"yes"` where koji's own sends `True`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Double(d) => *d != 0.0,
        Value::String(s) => !s.is_empty(),
        Value::Base64(b) => !b.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Struct(s) => !s.is_empty(),
        Value::DateTime(_) => true,
        Value::Nil => false,
    }
}

/// A `<methodResponse>`: one value, or a fault.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodResponse {
    /// `<params><param><value>`.
    Success(Value),
    /// `<fault>`.
    Fault(Fault),
}

impl MethodResponse {
    /// The value, or the fault as an error.
    pub fn into_result(self) -> Result<Value, Fault> {
        match self {
            MethodResponse::Success(v) => Ok(v),
            MethodResponse::Fault(f) => Err(f),
        }
    }
}

impl From<Result<Value, Fault>> for MethodResponse {
    fn from(r: Result<Value, Fault>) -> Self {
        match r {
            Ok(v) => MethodResponse::Success(v),
            Err(f) => MethodResponse::Fault(f),
        }
    }
}
