//! [`DateTime`]: XML-RPC's `dateTime.iso8601`.

use std::fmt;
use std::str::FromStr;

/// The newtype-struct name that marks a [`DateTime`] inside serde, so that
/// [`to_value`](crate::to_value) and [`from_value`](crate::from_value) map it to and from
/// `Value::DateTime` instead of a plain string (the trick `toml` uses for its datetimes).
pub(crate) const MARKER: &str = "$__hub_xmlrpc_private_DateTime";

/// A date and time as XML-RPC carries it: no zone unless the sender gave one.
///
/// Parses the forms clients send: `19980717T14:08:55` (the spec's), `1998-07-17T14:08:55`,
/// `19980717T140855`, with fractional seconds (`.123456`) and a zone suffix (`Z`, `+02:00`,
/// `-0500`). Formats as the spec's basic form, adding the fraction and the zone only if present:
///
/// ```
/// use hub_xmlrpc::DateTime;
/// let dt: DateTime = "1998-07-17T14:08:55.5+02:00".parse().unwrap();
/// assert_eq!(dt.to_string(), "19980717T14:08:55.5+02:00");
/// assert_eq!(DateTime::new(1998, 7, 17, 14, 8, 55).unwrap().to_string(), "19980717T14:08:55");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    nanosecond: u32,
    offset_minutes: Option<i16>,
}

/// Why a string is not a `dateTime.iso8601`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateTimeError(());

impl fmt::Display for DateTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid dateTime.iso8601 (expected like 19980717T14:08:55)")
    }
}

impl std::error::Error for DateTimeError {}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

impl DateTime {
    /// A date and time without zone; `None` if a field is out of range
    /// (`second` may be 60 for a leap second).
    pub fn new(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<Self> {
        if year > 9999
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        Some(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanosecond: 0,
            offset_minutes: None,
        })
    }

    /// The same instant label with a fraction of a second; `None` if `nanosecond` >= 10^9.
    pub fn with_nanosecond(self, nanosecond: u32) -> Option<Self> {
        (nanosecond < 1_000_000_000).then_some(DateTime { nanosecond, ..self })
    }

    /// The same with a zone offset east of UTC in minutes (`Some(0)` is `Z`), or none;
    /// `None` if the offset is 24 hours or more.
    pub fn with_offset(self, offset_minutes: Option<i16>) -> Option<Self> {
        match offset_minutes {
            Some(m) if m.unsigned_abs() >= 24 * 60 => None,
            _ => Some(DateTime {
                offset_minutes,
                ..self
            }),
        }
    }

    /// The year (0..=9999).
    pub fn year(&self) -> u16 {
        self.year
    }
    /// The month (1..=12).
    pub fn month(&self) -> u8 {
        self.month
    }
    /// The day of the month (1..=31).
    pub fn day(&self) -> u8 {
        self.day
    }
    /// The hour (0..=23).
    pub fn hour(&self) -> u8 {
        self.hour
    }
    /// The minute (0..=59).
    pub fn minute(&self) -> u8 {
        self.minute
    }
    /// The second (0..=60).
    pub fn second(&self) -> u8 {
        self.second
    }
    /// The fraction of the second in nanoseconds (0 unless the sender gave one).
    pub fn nanosecond(&self) -> u32 {
        self.nanosecond
    }
    /// The zone offset east of UTC in minutes, if the sender gave a zone.
    pub fn offset_minutes(&self) -> Option<i16> {
        self.offset_minutes
    }

    /// Parses any of the accepted forms (surrounding whitespace allowed).
    pub fn parse(s: &str) -> Result<Self, DateTimeError> {
        parse(s.trim().as_bytes()).ok_or(DateTimeError(()))
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in s {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
}

fn parse(b: &[u8]) -> Option<DateTime> {
    let mut c = Cursor { b, i: 0 };
    let year = c.digits(4)?;
    let dashed = c.eat(b'-');
    let month = c.digits(2)?;
    if dashed && !c.eat(b'-') {
        return None;
    }
    let day = c.digits(2)?;
    if !c.eat(b'T') && !c.eat(b't') && !c.eat(b' ') {
        return None;
    }
    let hour = c.digits(2)?;
    let colon = c.eat(b':');
    let minute = c.digits(2)?;
    if colon && !c.eat(b':') {
        return None;
    }
    let second = c.digits(2)?;
    let mut nanosecond = 0u32;
    if c.eat(b'.') || c.eat(b',') {
        let start = c.i;
        let mut scale = 100_000_000u32;
        while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
            nanosecond += u32::from(d - b'0') * scale;
            scale /= 10;
            c.i += 1;
        }
        if c.i == start {
            return None;
        }
    }
    let offset = match c.peek() {
        None => None,
        Some(b'Z' | b'z') => {
            c.i += 1;
            Some(0i16)
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let h = c.digits(2)?;
            c.eat(b':');
            let m = if c.peek().is_some() { c.digits(2)? } else { 0 };
            if h > 23 || m > 59 {
                return None;
            }
            let total = i16::try_from(h * 60 + m).ok()?;
            Some(if sign == b'-' { -total } else { total })
        }
        Some(_) => return None,
    };
    if c.i != b.len() {
        return None;
    }
    let narrow = |v: u32| u8::try_from(v).ok();
    DateTime::new(
        u16::try_from(year).ok()?,
        narrow(month)?,
        narrow(day)?,
        narrow(hour)?,
        narrow(minute)?,
        narrow(second)?,
    )?
    .with_nanosecond(nanosecond)?
    .with_offset(offset)
}

impl FromStr for DateTime {
    type Err = DateTimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse(s)
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 40];
        let n = self.write_to(&mut buf);
        // The buffer holds ASCII only.
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

impl DateTime {
    /// Writes the wire form into `buf` (at most 33 bytes), returning its length.
    pub(crate) fn write_to(&self, buf: &mut [u8; 40]) -> usize {
        fn put(buf: &mut [u8; 40], at: &mut usize, v: u32, width: u32) {
            let mut div = 10u32.pow(width - 1);
            for _ in 0..width {
                buf[*at] = b'0' + ((v / div) % 10) as u8;
                *at += 1;
                div /= 10;
            }
        }
        let mut at = 0;
        put(buf, &mut at, u32::from(self.year), 4);
        put(buf, &mut at, u32::from(self.month), 2);
        put(buf, &mut at, u32::from(self.day), 2);
        buf[at] = b'T';
        at += 1;
        put(buf, &mut at, u32::from(self.hour), 2);
        buf[at] = b':';
        at += 1;
        put(buf, &mut at, u32::from(self.minute), 2);
        buf[at] = b':';
        at += 1;
        put(buf, &mut at, u32::from(self.second), 2);
        if self.nanosecond != 0 {
            buf[at] = b'.';
            at += 1;
            let mut n = self.nanosecond;
            let mut width = 9;
            while n % 10 == 0 {
                n /= 10;
                width -= 1;
            }
            put(buf, &mut at, n, width);
        }
        match self.offset_minutes {
            None => {}
            Some(0) => {
                buf[at] = b'Z';
                at += 1;
            }
            Some(m) => {
                buf[at] = if m < 0 { b'-' } else { b'+' };
                at += 1;
                let m = u32::from(m.unsigned_abs());
                put(buf, &mut at, m / 60, 2);
                buf[at] = b':';
                at += 1;
                put(buf, &mut at, m % 60, 2);
            }
        }
        at
    }
}

impl serde::Serialize for DateTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(MARKER, &self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for DateTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(MARKER, DateTimeVisitor)
    }
}

struct DateTimeVisitor;

impl<'de> serde::de::Visitor<'de> for DateTimeVisitor {
    type Value = DateTime;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dateTime.iso8601")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DateTime, E> {
        DateTime::parse(v).map_err(E::custom)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<DateTime, D::Error> {
        // `any`: serde's buffered content (a flattened struct's, a tagged or untagged enum's)
        // holds a `Value::DateTime` as the marker map it gave `deserialize_any`. A binary
        // format (bincode) has no `any`, and a `DateTime` there is its text.
        if d.is_human_readable() {
            d.deserialize_any(self)
        } else {
            d.deserialize_str(self)
        }
    }
    /// The marker map: `{MARKER: "19980717T14:08:55"}`.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<DateTime, A::Error> {
        use serde::de::Error;
        if map.next_key::<String>()?.as_deref() != Some(MARKER) {
            return Err(A::Error::invalid_type(serde::de::Unexpected::Map, &self));
        }
        let text: String = map.next_value()?;
        if map.next_key::<String>()?.is_some() {
            return Err(A::Error::invalid_type(serde::de::Unexpected::Map, &self));
        }
        DateTime::parse(&text).map_err(A::Error::custom)
    }
}
