//! `hub-xmlrpc`: the XML-RPC codec of `hub`, typed by serde. No I/O.
//!
//! # A guided tour
//!
//! **Values.** [`Value`] is one XML-RPC value; [`Struct`] keeps a struct's members in
//! order; [`DateTime`] is `dateTime.iso8601`. Integers are `i64`: written as `<int>` when
//! they fit in 32 bits and `<i8>` otherwise, as koji does.
//!
//! **Messages.** [`parse_call`] and [`parse_response`] read a document into a
//! [`MethodCall`] or a [`MethodResponse`]; [`write_call`], [`write_response`] and
//! [`write_fault`] append one to a `Vec<u8>`. A [`Fault`] is a code and a message.
//! [`MethodCall::split_kwargs`] applies koji's keyword-argument convention (`__starstar`).
//!
//! **Hostile input.** Parsing takes [`Limits`] (size and nesting depth, 4 MiB and 64 by
//! default), refuses `<!DOCTYPE`, unknown entities, invalid UTF-8, NUL and other characters
//! XML forbids, unknown or misplaced elements and trailing content, and never recurses on
//! nesting. A [`ParseError`] has a [`kind`](ParseError::kind), tells a server which fault
//! to answer ([`ParseError::is_not_well_formed`], [`ParseError::fault_code`]), and quotes at
//! most a short excerpt of the input.
//!
//! **serde.** [`to_value`] turns any `Serialize` type into a [`Value`], [`from_value`]
//! any [`Value`] into a `DeserializeOwned` type, with errors that say where
//! ([`DecodeError`]). [`from_missing`] decodes an omitted parameter (`None` for `Option`),
//! and [`xmlrpc_type_name`] tells which XML-RPC type a Rust type expects.
//!
//! ```
//! use hub_xmlrpc::{from_value, parse_call, to_value, write_response, Limits};
//!
//! #[derive(serde::Deserialize)]
//! struct Query { name: String, limit: Option<u32> }
//!
//! #[derive(serde::Serialize)]
//! struct Build { id: i64, nvr: String }
//!
//! let body = br#"<?xml version="1.0"?>
//! <methodCall><methodName>listBuilds</methodName><params>
//!   <param><value><struct>
//!     <member><name>name</name><value><string>bash</string></value></member>
//!   </struct></value></param>
//! </params></methodCall>"#;
//!
//! let mut call = parse_call(body, &Limits::default())?;
//! assert_eq!(call.method_name, "listBuilds");
//! let query: Query = from_value(call.params.remove(0)).map_err(|e| e.in_param(0))?;
//! assert_eq!((query.name.as_str(), query.limit), ("bash", None));
//!
//! let result = to_value(&vec![Build { id: 1, nvr: "bash-5.2-1".into() }])?;
//! let mut out = Vec::new();
//! write_response(&result, &mut out);
//! assert!(out.starts_with(b"<?xml version=\"1.0\"?>"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod call;
mod datetime;
mod de;
mod error;
mod fault;
mod lex;
mod limits;
mod probe;
mod read;
mod ser;
mod swar;
mod value;
mod write;

pub use call::{BorrowedCall, MethodCall, MethodResponse, STARSTAR};
pub use datetime::{DateTime, DateTimeError};
pub use de::{from_missing, from_value};
pub use error::{DecodeError, EncodeError, ParseError, ParseErrorKind, PathSegment, EXCERPT_MAX};
pub use fault::Fault;
pub use limits::Limits;
pub use probe::xmlrpc_type_name;
pub use read::{parse_call, parse_call_borrowed, parse_response, parse_value};
pub use ser::to_value;
pub use value::{MemberName, Struct, Value};
pub use write::{write_call, write_fault, write_response, write_value};
