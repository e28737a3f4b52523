//! The writer: [`MethodCall`], values and faults to bytes.

use crate::{Fault, MethodCall, Value};

/// Appends a `<methodCall>` document to `out`.
pub fn write_call(call: &MethodCall, out: &mut Vec<u8>) {
    let _ = (call, out);
    todo!()
}

/// Appends a successful `<methodResponse>` carrying `value` to `out`.
pub fn write_response(value: &Value, out: &mut Vec<u8>) {
    let _ = (value, out);
    todo!()
}

/// Appends a fault `<methodResponse>` to `out`.
pub fn write_fault(fault: &Fault, out: &mut Vec<u8>) {
    let _ = (fault, out);
    todo!()
}

/// Appends a document whose root is one `<value>` (the counterpart of [`parse_value`](crate::parse_value)).
pub fn write_value(value: &Value, out: &mut Vec<u8>) {
    let _ = (value, out);
    todo!()
}
