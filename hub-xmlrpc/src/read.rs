//! The parser: bytes to [`MethodCall`], [`MethodResponse`] or [`Value`].

use crate::{Limits, MethodCall, MethodResponse, ParseError, Value};

/// Parses a `<methodCall>` document.
pub fn parse_call(input: &[u8], limits: &Limits) -> Result<MethodCall, ParseError> {
    let _ = (input, limits);
    todo!()
}

/// Parses a `<methodResponse>` document (success or fault).
pub fn parse_response(input: &[u8], limits: &Limits) -> Result<MethodResponse, ParseError> {
    let _ = (input, limits);
    todo!()
}

/// Parses a document whose root element is a single `<value>`.
pub fn parse_value(input: &[u8], limits: &Limits) -> Result<Value, ParseError> {
    let _ = (input, limits);
    todo!()
}
