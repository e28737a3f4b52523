//! [`Value`] and [`Struct`]: the XML-RPC data model.

use crate::DateTime;
use std::borrow::Cow;

/// One XML-RPC value.
///
/// | variant | XML-RPC element |
/// |---|---|
/// | `Int` | `<int>`, `<i4>`, `<i8>`, `<ex:i8>` (written as `<int>` when it fits in 32 bits, else `<i8>`) |
/// | `Bool` | `<boolean>` |
/// | `String` | `<string>` or a `<value>` without a type element |
/// | `Double` | `<double>` |
/// | `DateTime` | `<dateTime.iso8601>` |
/// | `Base64` | `<base64>` |
/// | `Struct` | `<struct>` |
/// | `Array` | `<array><data>` |
/// | `Nil` | `<nil/>`, `<ex:nil/>` |
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer; XML-RPC's `int`/`i4` and the `i8` extension.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A string.
    String(String),
    /// A double-precision float.
    Double(f64),
    /// A date and time without (or with an optional) zone.
    DateTime(DateTime),
    /// Binary data, base64 on the wire.
    Base64(Vec<u8>),
    /// A struct: named members, in order.
    Struct(Struct),
    /// An array.
    Array(Vec<Value>),
    /// The `nil` extension (Python's `None`).
    Nil,
}

impl Value {
    /// The XML-RPC type name of this value (`"int"`, `"struct"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Bool(_) => "boolean",
            Value::String(_) => "string",
            Value::Double(_) => "double",
            Value::DateTime(_) => "dateTime.iso8601",
            Value::Base64(_) => "base64",
            Value::Struct(_) => "struct",
            Value::Array(_) => "array",
            Value::Nil => "nil",
        }
    }

    /// The integer, if this is an `Int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The string, if this is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The struct, if this is a `Struct`.
    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an `Array`.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// `true` for `Nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<DateTime> for Value {
    fn from(v: DateTime) -> Self {
        Value::DateTime(v)
    }
}
impl From<Struct> for Value {
    fn from(v: Struct) -> Self {
        Value::Struct(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}

/// An XML-RPC struct: members in the order they were inserted or received.
///
/// Names are unique: [`insert`](Struct::insert) replaces an existing member in place,
/// and the parser keeps the last of duplicated names (as Python does) at the position of the first.
///
/// A member name is a [`MemberName`]: a `&'static str` (a literal, a serde field name) is kept as it
/// is, so a struct built in code or serialized from a Rust type allocates nothing for its
/// names; names read from the wire are owned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Struct {
    members: Vec<(MemberName, Value)>,
}

/// A struct member's name: borrowed for the program's lifetime, or owned.
pub type MemberName = Cow<'static, str>;

impl Struct {
    /// An empty struct.
    pub fn new() -> Self {
        Struct::default()
    }

    /// An empty struct with room for `n` members.
    pub fn with_capacity(n: usize) -> Self {
        Struct {
            members: Vec::with_capacity(n),
        }
    }

    /// The member called `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The member called `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.members
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// `true` if a member is called `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets member `name`: replaces the value in place if the name exists (returning the
    /// old value), else appends. `name` is a `&'static str` (kept, not copied) or a `String`.
    pub fn insert(
        &mut self,
        name: impl Into<MemberName>,
        value: impl Into<Value>,
    ) -> Option<Value> {
        let name = name.into();
        let value = value.into();
        match self.members.iter_mut().find(|(k, _)| *k == name) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.members.push((name, value));
                None
            }
        }
    }

    /// Removes member `name`, keeping the order of the others.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.members.iter().position(|(k, _)| k == name)?;
        Some(self.members.remove(i).1)
    }

    /// The members in order.
    pub fn iter(&self) -> std::slice::Iter<'_, (MemberName, Value)> {
        self.members.iter()
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// `true` if there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members as a vector, in order.
    pub fn into_vec(self) -> Vec<(MemberName, Value)> {
        self.members
    }

    /// Builds a struct from members that may repeat a name: the last value wins, at the
    /// position of the first. Linear time (hashing) for large structs.
    pub(crate) fn from_members(mut members: Vec<(MemberName, Value)>) -> Self {
        if members.len() <= 16 {
            let mut dup = false;
            'outer: for i in 1..members.len() {
                for j in 0..i {
                    if members[i].0 == members[j].0 {
                        dup = true;
                        break 'outer;
                    }
                }
            }
            if !dup {
                return Struct { members };
            }
        } else {
            let mut seen = std::collections::HashSet::with_capacity(members.len());
            if members.iter().all(|(k, _)| seen.insert(k.as_ref())) {
                return Struct { members };
            }
        }
        // Slow path: duplicates exist.
        let mut index: std::collections::HashMap<MemberName, usize> =
            std::collections::HashMap::with_capacity(members.len());
        let mut out: Vec<(MemberName, Value)> = Vec::with_capacity(members.len());
        for (k, v) in members.drain(..) {
            match index.get(&k) {
                Some(&i) => out[i].1 = v,
                None => {
                    index.insert(k.clone(), out.len());
                    out.push((k, v));
                }
            }
        }
        Struct { members: out }
    }
}

impl IntoIterator for Struct {
    type Item = (MemberName, Value);
    type IntoIter = std::vec::IntoIter<(MemberName, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.members.into_iter()
    }
}

impl<'a> IntoIterator for &'a Struct {
    type Item = &'a (MemberName, Value);
    type IntoIter = std::slice::Iter<'a, (MemberName, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.members.iter()
    }
}

impl<K: Into<MemberName>> FromIterator<(K, Value)> for Struct {
    /// Collects members; a repeated name keeps the last value at the first position.
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        Struct::from_members(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl<K: Into<MemberName>> Extend<(K, Value)> for Struct {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}
