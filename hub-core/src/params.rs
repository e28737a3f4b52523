//! Turning a call's [`Params`] into typed arguments, and results into values.
//!
//! [`Args`] is what `#[rpc_method]` wrappers use to decode parameters; run-time
//! methods registered with [`Method::blocking`](crate::registry::Method::blocking)
//! may use it too. The traits here exist for the generated code: each is blanket
//! implemented for the serde trait it stands for, and carries a diagnostic that
//! tells the user what to change when their type does not qualify.

use std::future::Future;
use std::marker::PhantomData;

use hub_xmlrpc::{DecodeError, Fault, Struct, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::registry::{ParamDef, Params, RpcError};

/// The fault code of a result that could not be encoded (a bug in the method, not
/// the caller's doing): koji's code for unexpected errors.
pub const ENCODE_FAULT_CODE: i32 = 1;

/// The arguments of one call, checked against a method's parameter table and
/// taken out one by one.
///
/// [`Args::new`] refuses surplus positional arguments, unknown keywords and
/// parameters given both ways; [`Args::take`] decodes one parameter, from its
/// position or its keyword, and reports a missing or mistyped one with the
/// parameter's name, its path (`params[1].owner.name`) and the expected type.
#[derive(Debug)]
pub struct Args<'a> {
    positional: Vec<Option<Value>>,
    named: Struct,
    defs: &'a [ParamDef],
}

impl<'a> Args<'a> {
    /// Checks the call's shape against `defs`.
    pub fn new(params: Params, defs: &'a [ParamDef]) -> Result<Self, RpcError> {
        let mut problems = Vec::new();
        if params.positional.len() > defs.len() {
            problems.push(format!(
                "expected at most {} parameter{} ({}), got {}",
                defs.len(),
                if defs.len() == 1 { "" } else { "s" },
                describe_params(defs),
                params.positional.len()
            ));
        }
        let named = params.named.unwrap_or_default();
        let mut unknown = Vec::new();
        for (keyword, _) in &named {
            match defs.iter().position(|def| def.name == keyword) {
                None => unknown.push(&**keyword),
                // At most one per parameter (a struct's names are unique).
                Some(index) if index < params.positional.len() => problems.push(format!(
                    "parameter `{keyword}` given both by position (params[{index}]) and by keyword"
                )),
                Some(_) => {}
            }
        }
        // Named once, and only the first few: the fault is never much bigger than the call
        // (a problem per unknown keyword, each with the parameter list, made a 2 MB call's
        // fault 10 MB).
        if !unknown.is_empty() {
            problems.push(format!(
                "unknown keyword argument{} {} (parameters: {})",
                if unknown.len() == 1 { "" } else { "s" },
                a_few(&unknown),
                describe_params(defs)
            ));
        }
        if !problems.is_empty() {
            return Err(RpcError::InvalidParams(problems.join("; ")));
        }
        Ok(Args {
            positional: params.positional.into_iter().map(Some).collect(),
            named,
            defs,
        })
    }

    /// Decodes parameter `index` of the table as a `T`.
    pub fn take<T: DecodeParam>(&mut self, index: usize) -> Result<T, RpcError> {
        let Some(def) = self.defs.get(index) else {
            return Err(RpcError::InvalidParams(format!(
                "no parameter number {index} in this method's signature"
            )));
        };
        let (value, by_keyword) = match self.positional.get_mut(index) {
            Some(slot) => (slot.take(), false),
            None => (self.named.remove(def.name), true),
        };
        let locate = |error: DecodeError| {
            let (error, how) = if by_keyword {
                (error.at(def.name), "keyword parameter")
            } else {
                (error.in_param(index), "parameter")
            };
            RpcError::InvalidParams(format!("{error} ({how} `{}`)", def.name))
        };
        match value {
            Some(value) => T::decode_param(value).map_err(locate),
            None if def.optional => T::decode_missing().map_err(locate),
            None => Err(RpcError::InvalidParams(format!(
                "missing parameter `{}` (params[{index}], {})",
                def.name,
                (def.xmlrpc_type)()
            ))),
        }
    }
}

/// Keywords named in a fault: at most this many...
const KEYWORDS_NAMED: usize = 3;
/// ...each cut to this many bytes.
const KEYWORD_SHOWN: usize = 64;

/// "`a`, `b`, `c` and 5 more": the first [`KEYWORDS_NAMED`] of `keywords`, each cut to
/// [`KEYWORD_SHOWN`] bytes.
fn a_few(keywords: &[&str]) -> String {
    let mut text = keywords
        .iter()
        .take(KEYWORDS_NAMED)
        .map(|k| {
            let head = crate::text::head(k, KEYWORD_SHOWN);
            let cut = if head.len() < k.len() { "…" } else { "" };
            format!("`{head}{cut}`")
        })
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(more) = keywords
        .len()
        .checked_sub(KEYWORDS_NAMED)
        .filter(|&n| n > 0)
    {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// `build_id: int, strict: boolean?`
fn describe_params(defs: &[ParamDef]) -> String {
    if defs.is_empty() {
        return "none".to_owned();
    }
    defs.iter()
        .map(|def| {
            let mark = if def.optional { "?" } else { "" };
            format!("{}: {}{mark}", def.name, (def.xmlrpc_type)())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A type a parameter can be decoded into: anything `serde::Deserialize`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be decoded from an XML-RPC parameter",
    label = "this parameter type does not implement `serde::Deserialize`",
    note = "parameters are decoded with serde: add `#[derive(serde::Deserialize)]` to `{Self}`, \
            or use a type that has it (integers, `bool`, `f64`, `String`, `Vec<T>`, \
            `HashMap<String, T>`, `Option<T>`, `hub::Value`)"
)]
pub trait DecodeParam: Sized {
    /// Decodes a value the caller sent.
    fn decode_param(value: Value) -> Result<Self, DecodeError>;
    /// Decodes an omitted optional parameter (`None` for `Option`).
    fn decode_missing() -> Result<Self, DecodeError>;
    /// The XML-RPC type name this type decodes from.
    fn xmlrpc_type() -> &'static str;
}

impl<T: DeserializeOwned> DecodeParam for T {
    fn decode_param(value: Value) -> Result<Self, DecodeError> {
        hub_xmlrpc::from_value(value)
    }

    fn decode_missing() -> Result<Self, DecodeError> {
        hub_xmlrpc::from_missing()
    }

    fn xmlrpc_type() -> &'static str {
        hub_xmlrpc::xmlrpc_type_name::<T>()
    }
}

/// A type a method can return: anything `serde::Serialize` (`()` and `None` become nil).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be encoded as an XML-RPC result",
    label = "this return type does not implement `serde::Serialize`",
    note = "results are encoded with serde: add `#[derive(serde::Serialize)]` to `{Self}`, \
            or return a type that has it",
    note = "to answer with a fault, return `Result<T, E>` (spelled `Result` in the signature) \
            where `E: Into<hub::Fault>`"
)]
pub trait EncodeReturn {
    /// Encodes the result; a failure is a fault with [`ENCODE_FAULT_CODE`].
    fn encode_return(self) -> Result<Value, RpcError>;
}

impl<T: Serialize> EncodeReturn for T {
    fn encode_return(self) -> Result<Value, RpcError> {
        hub_xmlrpc::to_value(&self).map_err(|error| {
            RpcError::Fault(Fault::new(
                ENCODE_FAULT_CODE,
                format!("the method's result cannot be encoded: {error}"),
            ))
        })
    }
}

/// An error type a method can return in `Result<T, E>`: anything `Into<Fault>`
/// (the fault keeps its code), and [`RpcError`] itself.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be turned into an XML-RPC fault",
    label = "this error type has no conversion into `hub::Fault`",
    note = "implement `From<{Self}> for hub::Fault` choosing a fault code and message, \
            or return `hub::Fault` directly"
)]
pub trait IntoRpcError {
    /// Converts the error.
    fn into_rpc_error(self) -> RpcError;
}

impl<E: Into<Fault>> IntoRpcError for E {
    fn into_rpc_error(self) -> RpcError {
        RpcError::Fault(self.into())
    }
}

impl IntoRpcError for RpcError {
    fn into_rpc_error(self) -> RpcError {
        self
    }
}

/// Names the XML-RPC type of a result type. Types that also implement
/// `Deserialize` are probed precisely ([`ProbeByDeserialize`]); the others get
/// `"any"` ([`ProbeFallback`]). Generated code calls
/// `(&TypeProbe::<T>::new()).xmlrpc_type()` with both traits in scope, and method
/// resolution picks the first that applies.
#[derive(Debug)]
pub struct TypeProbe<T: ?Sized>(PhantomData<fn(&T)>);

impl<T: ?Sized> TypeProbe<T> {
    /// A probe for `T`.
    pub const fn new() -> Self {
        TypeProbe(PhantomData)
    }
}

impl<T: ?Sized> Default for TypeProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The precise probe: for types that implement `Deserialize`.
pub trait ProbeByDeserialize {
    /// The XML-RPC type name.
    fn xmlrpc_type(&self) -> &'static str;
}

impl<T: DeserializeOwned> ProbeByDeserialize for TypeProbe<T> {
    fn xmlrpc_type(&self) -> &'static str {
        hub_xmlrpc::xmlrpc_type_name::<T>()
    }
}

/// The fallback probe: for every other type.
pub trait ProbeFallback {
    /// `"any"`.
    fn xmlrpc_type(&self) -> &'static str;
}

impl<T: ?Sized> ProbeFallback for &TypeProbe<T> {
    fn xmlrpc_type(&self) -> &'static str {
        "any"
    }
}

/// Passes an async method's future through, requiring it to be `Send`: async methods
/// run on a multi-threaded runtime. Generated code calls this at the function's name
/// so that rustc explains there which value makes the future not `Send`.
pub fn require_send<F: Future + Send>(future: F) -> F {
    future
}
