//! [`Value`] to Rust through serde.
//!
//! The mapping is the one of [`to_value`](crate::to_value), read backwards, with two
//! leniencies clients rely on: an `int` is accepted where a `double` is expected, and a
//! `base64` where a sequence of `u8` is. Integers are range-checked against the target
//! type. Errors carry the path to the offending value (see [`DecodeError`]).

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;

use crate::datetime::MARKER;
use crate::error::short;
use crate::{DateTime, DecodeError, MemberName, Struct, Value};

/// Turns a [`Value`] into any `DeserializeOwned` type.
///
/// ```
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Tag { id: i32, name: String, perm: Option<String> }
/// let mut s = hub_xmlrpc::Struct::new();
/// s.insert("id", 3);
/// s.insert("name", "f40");
/// let tag: Tag = hub_xmlrpc::from_value(s.into()).unwrap();
/// assert_eq!(tag, Tag { id: 3, name: "f40".into(), perm: None });
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, DecodeError> {
    T::deserialize(value)
}

/// Decodes an omitted parameter: `Ok(None)` for `Option` types, an error ("missing")
/// for everything else.
///
/// ```
/// assert_eq!(hub_xmlrpc::from_missing::<Option<i32>>().unwrap(), None);
/// assert!(hub_xmlrpc::from_missing::<i32>().is_err());
/// ```
pub fn from_missing<T: DeserializeOwned>() -> Result<T, DecodeError> {
    T::deserialize(Missing)
}

/// A short description of a value for error messages: its type and, for scalars, a
/// short excerpt (`string "abc"`, `int 5`).
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => format!("int {i}"),
        Value::Bool(b) => format!("boolean {b}"),
        Value::String(s) => format!("string {:?}", short(s, 30)),
        Value::Double(d) => format!("double {d}"),
        Value::DateTime(dt) => format!("dateTime.iso8601 {dt}"),
        Value::Base64(b) => format!("base64 ({} bytes)", b.len()),
        Value::Struct(_) => "struct".to_owned(),
        Value::Array(a) => format!("array of {}", a.len()),
        Value::Nil => "nil".to_owned(),
    }
}

/// Describes what serde's visitors report as unexpected, in XML-RPC terms.
pub(crate) fn describe_unexpected(u: &de::Unexpected<'_>) -> String {
    use de::Unexpected as U;
    match u {
        U::Bool(b) => format!("boolean {b}"),
        U::Unsigned(i) => format!("int {i}"),
        U::Signed(i) => format!("int {i}"),
        U::Float(d) => format!("double {d}"),
        U::Char(c) => format!("string {:?}", c.to_string()),
        U::Str(s) => format!("string {:?}", short(s, 30)),
        U::Bytes(b) => format!("base64 ({} bytes)", b.len()),
        U::Unit | U::Option => "nil".to_owned(),
        U::Seq => "array".to_owned(),
        U::Map => "struct".to_owned(),
        other => other.to_string(),
    }
}

fn mismatch(expected: &str, found: &Value) -> DecodeError {
    DecodeError::new(format!("expected {expected}, found {}", describe(found)))
}

macro_rules! de_int {
    ($($method:ident $visit:ident $t:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            match self {
                Value::Int(i) => match <$t>::try_from(i) {
                    Ok(v) => visitor.$visit(v),
                    Err(_) => Err(DecodeError::new(format!(
                        "int {i} does not fit in {}", stringify!($t)
                    ))),
                },
                other => Err(mismatch("int", &other)),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Value {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Int(i) => visitor.visit_i64(i),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::String(s) => visitor.visit_string(s),
            Value::Double(d) => visitor.visit_f64(d),
            Value::DateTime(dt) => visitor.visit_map(DateTimeAccess(Some(dt))),
            Value::Base64(b) => visitor.visit_byte_buf(b),
            Value::Struct(s) => visitor.visit_map(StructAccess::new(s)),
            Value::Array(a) => visit_array(a, visitor, None),
            Value::Nil => visitor.visit_unit(),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Bool(b) => visitor.visit_bool(b),
            other => Err(mismatch("boolean", &other)),
        }
    }

    de_int! {
        deserialize_i8 visit_i8 i8;
        deserialize_i16 visit_i16 i16;
        deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64;
        deserialize_i128 visit_i128 i128;
        deserialize_u8 visit_u8 u8;
        deserialize_u16 visit_u16 u16;
        deserialize_u32 visit_u32 u32;
        deserialize_u64 visit_u64 u64;
        deserialize_u128 visit_u128 u128;
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Double(d) => visitor.visit_f32(d as f32),
            Value::Int(i) => visitor.visit_f32(i as f32),
            other => Err(mismatch("double", &other)),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Double(d) => visitor.visit_f64(d),
            Value::Int(i) => visitor.visit_f64(i as f64),
            other => Err(mismatch("double", &other)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::String(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => visitor.visit_char(c),
                    _ => Err(mismatch("a one-character string", &Value::String(s))),
                }
            }
            other => Err(mismatch("string", &other)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::String(s) => visitor.visit_string(s),
            Value::DateTime(dt) => visitor.visit_string(dt.to_string()),
            other => Err(mismatch("string", &other)),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Base64(b) => visitor.visit_byte_buf(b),
            Value::String(s) => visitor.visit_string(s),
            other => Err(mismatch("base64", &other)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Nil => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Nil => visitor.visit_unit(),
            other => Err(mismatch("nil", &other)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if name == MARKER {
            return match self {
                Value::DateTime(dt) => visitor.visit_string(dt.to_string()),
                Value::String(s) if DateTime::parse(&s).is_ok() => visitor.visit_string(s),
                other => Err(mismatch("dateTime.iso8601", &other)),
            };
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Array(a) => visit_array(a, visitor, None),
            Value::Base64(b) => visitor.visit_seq(de::value::SeqDeserializer::new(b.into_iter())),
            other => Err(mismatch("array", &other)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self {
            Value::Array(a) => visit_array(a, visitor, Some(len)),
            other => Err(mismatch(&format!("array of {len}"), &other)),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self {
            Value::Struct(s) => visitor.visit_map(StructAccess::new(s)),
            other => Err(mismatch("struct", &other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Struct(s) if s.len() == 1 => {
                let mut it = s.into_iter();
                match it.next() {
                    Some((variant, value)) => visitor.visit_enum(VariantAccess {
                        variant: variant.into_owned(),
                        value,
                    }),
                    None => Err(DecodeError::new("empty struct for an enum")),
                }
            }
            other => Err(mismatch(
                "string (enum variant) or struct of one member",
                &other,
            )),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        drop(self);
        visitor.visit_unit()
    }
}

fn visit_array<'de, V: Visitor<'de>>(
    a: Vec<Value>,
    visitor: V,
    exact: Option<usize>,
) -> Result<V::Value, DecodeError> {
    let len = a.len();
    if let Some(n) = exact {
        if n != len {
            return Err(DecodeError::new(format!(
                "expected array of {n}, found array of {len}"
            )));
        }
    }
    let mut access = ArrayAccess {
        iter: a.into_iter(),
        index: 0,
    };
    let out = visitor.visit_seq(&mut access)?;
    if access.iter.len() != 0 {
        return Err(DecodeError::new(format!(
            "expected fewer elements, found array of {len}"
        )));
    }
    Ok(out)
}

struct ArrayAccess {
    iter: std::vec::IntoIter<Value>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for ArrayAccess {
    type Error = DecodeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match self.iter.next() {
            None => Ok(None),
            Some(v) => {
                let i = self.index;
                self.index += 1;
                seed.deserialize(v).map(Some).map_err(|e| e.at(i))
            }
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct StructAccess {
    iter: std::vec::IntoIter<(MemberName, Value)>,
    /// The member whose key was just handed out; its value comes next.
    current: Option<(MemberName, Value)>,
}

impl StructAccess {
    fn new(s: Struct) -> Self {
        StructAccess {
            iter: s.into_vec().into_iter(),
            current: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for StructAccess {
    type Error = DecodeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        match self.iter.next() {
            None => Ok(None),
            Some((k, v)) => {
                let key = seed.deserialize(Key(&k)).map_err(|e| e.at(k.as_ref()))?;
                self.current = Some((k, v));
                Ok(Some(key))
            }
        }
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        match self.current.take() {
            Some((k, v)) => seed.deserialize(v).map_err(|e| e.at(k.into_owned())),
            None => Err(DecodeError::new("struct value asked before its key")),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// A struct member name as a map key: a string, or parsed as a number or boolean when
/// the key type asks for one (`HashMap<u32, _>`).
struct Key<'a>(&'a str);

macro_rules! key_parse {
    ($($method:ident $visit:ident $t:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            match self.0.parse::<$t>() {
                Ok(v) => visitor.$visit(v),
                Err(_) => Err(DecodeError::new(format!(
                    "expected member name as {}, found {:?}", stringify!($t), short(self.0, 30)
                ))),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Key<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_str(self.0)
    }

    key_parse! {
        deserialize_bool visit_bool bool;
        deserialize_i8 visit_i8 i8;
        deserialize_i16 visit_i16 i16;
        deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64;
        deserialize_u8 visit_u8 u8;
        deserialize_u16 visit_u16 u16;
        deserialize_u32 visit_u32 u32;
        deserialize_u64 visit_u64 u64;
        deserialize_char visit_char char;
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i128 u128 f32 f64 str string bytes byte_buf option unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

struct VariantAccess {
    variant: String,
    value: Value,
}

impl<'de> de::EnumAccess<'de> for VariantAccess {
    type Error = DecodeError;
    type Variant = VariantValue;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, VariantValue), DecodeError> {
        let v = seed.deserialize(Key(&self.variant))?;
        Ok((
            v,
            VariantValue {
                variant: self.variant,
                value: self.value,
            },
        ))
    }
}

struct VariantValue {
    variant: String,
    value: Value,
}

impl<'de> de::VariantAccess<'de> for VariantValue {
    type Error = DecodeError;
    fn unit_variant(self) -> Result<(), DecodeError> {
        match self.value {
            Value::Nil => Ok(()),
            other => Err(mismatch("nil", &other).at(self.variant)),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        let variant = self.variant;
        seed.deserialize(self.value).map_err(|e| e.at(variant))
    }
    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let variant = self.variant;
        de::Deserializer::deserialize_tuple(self.value, len, visitor).map_err(|e| e.at(variant))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let variant = self.variant;
        de::Deserializer::deserialize_map(self.value, visitor).map_err(|e| e.at(variant))
    }
}

/// A `dateTime.iso8601` seen through `deserialize_any`: a one-member map whose key is the
/// private marker, so [`Value`]'s own `Deserialize` can tell it from a string.
struct DateTimeAccess(Option<DateTime>);

impl<'de> de::MapAccess<'de> for DateTimeAccess {
    type Error = DecodeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        match self.0 {
            Some(_) => seed.deserialize(Key(MARKER)).map(Some),
            None => Ok(None),
        }
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        match self.0.take() {
            Some(dt) => seed.deserialize(Value::String(dt.to_string())),
            None => Err(DecodeError::new("dateTime value asked twice")),
        }
    }
}

/// The deserializer behind [`from_missing`].
struct Missing;

impl<'de> de::Deserializer<'de> for Missing {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError::new("missing"))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_none()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Struct {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_map(ValueVisitor)? {
            Value::Struct(s) => Ok(s),
            other => Err(de::Error::custom(format_args!(
                "expected struct, found {}",
                describe(&other)
            ))),
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any XML-RPC value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format_args!("integer {v} does not fit in 64 bits")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format_args!("integer {v} does not fit in 64 bits")))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format_args!("integer {v} does not fit in 64 bits")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Base64(v.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Base64(v))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(k) = map.next_key::<String>()? {
            if members.is_empty() && k == MARKER {
                let s: String = map.next_value()?;
                return DateTime::parse(&s)
                    .map(Value::DateTime)
                    .map_err(de::Error::custom);
            }
            let v: Value = map.next_value()?;
            members.push((MemberName::Owned(k), v));
        }
        Ok(Value::Struct(Struct::from_members(members)))
    }
}
