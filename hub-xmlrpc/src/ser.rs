//! Rust to [`Value`] through serde.
//!
//! | Rust | XML-RPC |
//! |---|---|
//! | integers (range-checked into `i64`) | `int` / `i8` |
//! | `f32`, `f64` | `double` |
//! | `bool` | `boolean` |
//! | `char`, `&str`, `String`, unit enum variants | `string` |
//! | bytes (`serde_bytes`, `serialize_bytes`) | `base64` |
//! | [`DateTime`](crate::DateTime) | `dateTime.iso8601` |
//! | `None`, `()`, unit structs | `nil` |
//! | `Vec`, slices, tuples, tuple structs | `array` |
//! | structs, maps with string keys | `struct` |
//! | enum variants with data | a struct of one member named after the variant |

use serde::ser::{self, Serialize};

use crate::datetime::MARKER;
use crate::{DateTime, EncodeError, MemberName, Struct, Value};

/// Turns any `Serialize` type into a [`Value`].
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Build { id: u32, nvr: String, tags: Vec<String>, task: Option<i64> }
/// let v = hub_xmlrpc::to_value(&Build { id: 1, nvr: "a-1-1".into(), tags: vec![], task: None }).unwrap();
/// let s = v.as_struct().unwrap();
/// assert_eq!(s.get("id"), Some(&hub_xmlrpc::Value::Int(1)));
/// assert_eq!(s.get("task"), Some(&hub_xmlrpc::Value::Nil));
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, EncodeError> {
    value.serialize(ValueSerializer)
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Int(i) => s.serialize_i64(*i),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::String(v) => s.serialize_str(v),
            Value::Double(d) => s.serialize_f64(*d),
            Value::DateTime(dt) => dt.serialize(s),
            Value::Base64(b) => s.serialize_bytes(b),
            Value::Struct(st) => {
                let mut m = s.serialize_map(Some(st.len()))?;
                for (k, v) in st {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Value::Array(a) => {
                let mut q = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    q.serialize_element(v)?;
                }
                q.end()
            }
            Value::Nil => s.serialize_unit(),
        }
    }
}

impl Serialize for Struct {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

fn int<T: TryInto<i64> + Copy + std::fmt::Display>(v: T) -> Result<Value, EncodeError> {
    v.try_into()
        .map(Value::Int)
        .map_err(|_| EncodeError::new(format!("integer {v} does not fit in XML-RPC's 64 bits")))
}

/// The serializer behind [`to_value`].
struct ValueSerializer;

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = EncodeError;
    type SerializeSeq = SerializeVec;
    type SerializeTuple = SerializeVec;
    type SerializeTupleStruct = SerializeVec;
    type SerializeTupleVariant = SerializeVariant<SerializeVec>;
    type SerializeMap = SerializeStruct;
    type SerializeStruct = SerializeStruct;
    type SerializeStructVariant = SerializeVariant<SerializeStruct>;

    fn serialize_bool(self, v: bool) -> Result<Value, EncodeError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, EncodeError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, EncodeError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, EncodeError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, EncodeError> {
        Ok(Value::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, EncodeError> {
        int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Value, EncodeError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, EncodeError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, EncodeError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, EncodeError> {
        int(v)
    }
    fn serialize_u128(self, v: u128) -> Result<Value, EncodeError> {
        int(v)
    }
    fn serialize_f32(self, v: f32) -> Result<Value, EncodeError> {
        Ok(Value::Double(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, EncodeError> {
        Ok(Value::Double(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, EncodeError> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, EncodeError> {
        Ok(Value::String(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, EncodeError> {
        Ok(Value::Base64(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, EncodeError> {
        Ok(Value::Nil)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, EncodeError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, EncodeError> {
        Ok(Value::Nil)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, EncodeError> {
        Ok(Value::Nil)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Value, EncodeError> {
        Ok(Value::String(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<Value, EncodeError> {
        if name == MARKER {
            return match v.serialize(self)? {
                Value::String(s) => DateTime::parse(&s)
                    .map(Value::DateTime)
                    .map_err(|e| EncodeError::new(e.to_string())),
                _ => Err(EncodeError::new("a DateTime must serialize as a string")),
            };
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Value, EncodeError> {
        let mut s = Struct::with_capacity(1);
        s.insert(variant, to_value(v)?);
        Ok(Value::Struct(s))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SerializeVec, EncodeError> {
        Ok(SerializeVec(Vec::with_capacity(len.unwrap_or(0).min(4096))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SerializeVec, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<SerializeVec, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeVariant<SerializeVec>, EncodeError> {
        Ok(SerializeVariant(variant, self.serialize_seq(Some(len))?))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<SerializeStruct, EncodeError> {
        Ok(SerializeStruct {
            members: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<SerializeStruct, EncodeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeVariant<SerializeStruct>, EncodeError> {
        Ok(SerializeVariant(variant, self.serialize_map(Some(len))?))
    }
}

/// Collects an array.
struct SerializeVec(Vec<Value>);

impl ser::SerializeSeq for SerializeVec {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        let index = self.0.len();
        self.0.push(to_value(v).map_err(|e| e.at(index))?);
        Ok(())
    }
    fn end(self) -> Result<Value, EncodeError> {
        Ok(Value::Array(self.0))
    }
}

impl ser::SerializeTuple for SerializeVec {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, EncodeError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SerializeVec {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, EncodeError> {
        ser::SerializeSeq::end(self)
    }
}

/// Collects a struct (from a Rust struct or a map with string keys).
struct SerializeStruct {
    members: Vec<(MemberName, Value)>,
    key: Option<String>,
}

impl ser::SerializeMap for SerializeStruct {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        self.key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| EncodeError::new("map value without a key"))?;
        let v = to_value(v).map_err(|e| e.at(&key))?;
        self.members.push((MemberName::Owned(key), v));
        Ok(())
    }
    fn end(self) -> Result<Value, EncodeError> {
        Ok(Value::Struct(Struct::from_members(self.members)))
    }
}

impl ser::SerializeStruct for SerializeStruct {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), EncodeError> {
        let v = to_value(v).map_err(|e| e.at(key))?;
        // A field name is `'static`: kept as it is, no copy.
        self.members.push((MemberName::Borrowed(key), v));
        Ok(())
    }
    fn end(self) -> Result<Value, EncodeError> {
        Ok(Value::Struct(Struct::from_members(self.members)))
    }
}

/// An enum variant with data: `{variant: data}`.
struct SerializeVariant<S>(&'static str, S);

impl ser::SerializeTupleVariant for SerializeVariant<SerializeVec> {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        ser::SerializeSeq::serialize_element(&mut self.1, v)
    }
    fn end(self) -> Result<Value, EncodeError> {
        let mut s = Struct::with_capacity(1);
        s.insert(self.0, ser::SerializeSeq::end(self.1)?);
        Ok(Value::Struct(s))
    }
}

impl ser::SerializeStructVariant for SerializeVariant<SerializeStruct> {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), EncodeError> {
        ser::SerializeStruct::serialize_field(&mut self.1, key, v)
    }
    fn end(self) -> Result<Value, EncodeError> {
        let mut s = Struct::with_capacity(1);
        s.insert(self.0, ser::SerializeStruct::end(self.1)?);
        Ok(Value::Struct(s))
    }
}

/// Map keys: strings, chars, and (as their decimal text) integers and booleans.
struct KeySerializer;

fn key_err() -> EncodeError {
    EncodeError::new("struct member names must be strings (map key is not a string)")
}

impl ser::Serializer for KeySerializer {
    type Ok = String;
    type Error = EncodeError;
    type SerializeSeq = ser::Impossible<String, EncodeError>;
    type SerializeTuple = ser::Impossible<String, EncodeError>;
    type SerializeTupleStruct = ser::Impossible<String, EncodeError>;
    type SerializeTupleVariant = ser::Impossible<String, EncodeError>;
    type SerializeMap = ser::Impossible<String, EncodeError>;
    type SerializeStruct = ser::Impossible<String, EncodeError>;
    type SerializeStructVariant = ser::Impossible<String, EncodeError>;

    fn serialize_bool(self, v: bool) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, _: f32) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_f64(self, _: f64) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_char(self, v: char) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<String, EncodeError> {
        Ok(v.to_owned())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_none(self) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_unit(self) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, EncodeError> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<String, EncodeError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        Err(key_err())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, EncodeError> {
        Err(key_err())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, EncodeError> {
        Err(key_err())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(key_err())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        Err(key_err())
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, EncodeError> {
        Err(key_err())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(key_err())
    }
}
