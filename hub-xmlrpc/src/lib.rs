//! `hub-xmlrpc`: the XML-RPC codec of `hub`.
#![allow(clippy::todo)]

mod call;
mod datetime;
mod de;
mod error;
mod fault;
mod limits;
mod probe;
mod read;
mod ser;
mod value;
mod write;

pub use call::{MethodCall, MethodResponse, STARSTAR};
pub use datetime::{DateTime, DateTimeError};
pub use de::{from_missing, from_value};
pub use error::{DecodeError, EncodeError, ParseError, ParseErrorKind, PathSegment, EXCERPT_MAX};
pub use fault::Fault;
pub use limits::Limits;
pub use probe::xmlrpc_type_name;
pub use read::{parse_call, parse_response, parse_value};
pub use ser::to_value;
pub use value::{Struct, Value};
pub use write::{write_call, write_fault, write_response, write_value};
