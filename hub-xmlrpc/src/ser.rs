//! Rust to [`Value`] through serde.

use serde::Serialize;

use crate::{EncodeError, Value};

/// Turns any `Serialize` type into a [`Value`].
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, EncodeError> {
    let _ = value;
    todo!()
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let _ = s;
        todo!()
    }
}
