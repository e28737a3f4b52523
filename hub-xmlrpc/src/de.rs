//! [`Value`] to Rust through serde.

use serde::de::DeserializeOwned;

use crate::{DecodeError, Value};

/// Turns a [`Value`] into any `DeserializeOwned` type.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, DecodeError> {
    let _ = value;
    todo!()
}

/// Decodes an omitted parameter: `Ok(None)` for `Option` types, an error ("missing") for
/// everything else.
pub fn from_missing<T: DeserializeOwned>() -> Result<T, DecodeError> {
    todo!()
}

pub(crate) fn describe_unexpected(u: &serde::de::Unexpected<'_>) -> String {
    u.to_string()
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _ = d;
        todo!()
    }
}
