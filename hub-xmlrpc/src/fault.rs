//! [`Fault`]: the error answer of an XML-RPC method.

use std::fmt;

/// An XML-RPC fault: a code and a human-readable message.
///
/// Written as `<fault><value><struct>` with members `faultCode` (int) and
/// `faultString` (string).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fault {
    /// The fault code (`faultCode`).
    pub code: i32,
    /// The fault message (`faultString`).
    pub message: String,
}

impl Fault {
    /// A fault with this code and message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Fault {}
