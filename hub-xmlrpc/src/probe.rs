//! [`xmlrpc_type_name`]: which XML-RPC type a Rust type decodes from.
//!
//! A probing deserializer records the first `deserialize_*` call the type's
//! `Deserialize` impl makes, then stops it with an error. No value is built.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};

use crate::datetime::MARKER;

/// The XML-RPC type name `T` decodes from: `"int"`, `"boolean"`, `"string"`, `"double"`,
/// `"dateTime.iso8601"`, `"base64"`, `"struct"`, `"array"`, `"nil"`, or `"any"` for types
/// that take whatever comes (like [`Value`](crate::Value)). `Option<T>` reports `T`'s name.
///
/// ```
/// use hub_xmlrpc::{xmlrpc_type_name, DateTime, Value};
/// assert_eq!(xmlrpc_type_name::<i32>(), "int");
/// assert_eq!(xmlrpc_type_name::<Option<String>>(), "string");
/// assert_eq!(xmlrpc_type_name::<Vec<u8>>(), "array");
/// assert_eq!(xmlrpc_type_name::<DateTime>(), "dateTime.iso8601");
/// assert_eq!(xmlrpc_type_name::<std::collections::HashMap<String, i32>>(), "struct");
/// assert_eq!(xmlrpc_type_name::<Value>(), "any");
/// ```
pub fn xmlrpc_type_name<T: DeserializeOwned>() -> &'static str {
    let seen = Cell::new(None);
    let _ = T::deserialize(Probe { seen: &seen });
    seen.get().unwrap_or("any")
}

struct Probe<'a> {
    seen: &'a Cell<Option<&'static str>>,
}

/// Stops the type's `Deserialize` once the probe has seen what it needed.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl Probe<'_> {
    fn record<T>(&self, name: &'static str) -> Result<T, Stop> {
        if self.seen.get().is_none() {
            self.seen.set(Some(name));
        }
        Err(Stop)
    }
}

macro_rules! probe {
    ($($method:ident => $name:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            self.record($name)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    probe! {
        deserialize_any => "any";
        deserialize_bool => "boolean";
        deserialize_i8 => "int";
        deserialize_i16 => "int";
        deserialize_i32 => "int";
        deserialize_i64 => "int";
        deserialize_i128 => "int";
        deserialize_u8 => "int";
        deserialize_u16 => "int";
        deserialize_u32 => "int";
        deserialize_u64 => "int";
        deserialize_u128 => "int";
        deserialize_f32 => "double";
        deserialize_f64 => "double";
        deserialize_char => "string";
        deserialize_str => "string";
        deserialize_string => "string";
        deserialize_bytes => "base64";
        deserialize_byte_buf => "base64";
        deserialize_unit => "nil";
        deserialize_seq => "array";
        deserialize_map => "struct";
        deserialize_identifier => "string";
        deserialize_ignored_any => "any";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record("nil")
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if name == MARKER {
            return self.record("dateTime.iso8601");
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Stop> {
        self.record("array")
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record("array")
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record("struct")
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record("string")
    }
}
