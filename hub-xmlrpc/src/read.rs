//! The parser: bytes to [`MethodCall`], [`MethodResponse`] or [`Value`].
//!
//! Built on quick-xml's borrowed events (no DTD processing, no entity expansion), driven
//! by a small state machine with an explicit stack for arrays and structs, so nesting is
//! bounded by [`Limits::max_depth`] before anything is pushed and never touches the call
//! stack. Text is borrowed from the input and only copied when it becomes a `String`;
//! it is unescaped only when it contains `&` (or `\r`, which XML normalises to `\n`).

use std::borrow::Cow;

use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::short;
use crate::{
    DateTime, Fault, Limits, MethodCall, MethodResponse, ParseError, ParseErrorKind, Struct, Value,
};

use ParseErrorKind as K;

/// Parses a `<methodCall>` document.
///
/// ```
/// use hub_xmlrpc::{parse_call, Limits, Value};
/// let call = parse_call(
///     b"<?xml version=\"1.0\"?><methodCall><methodName>echo</methodName>\
///       <params><param><value>hello</value></param></params></methodCall>",
///     &Limits::default(),
/// ).unwrap();
/// assert_eq!(call.method_name, "echo");
/// assert_eq!(call.params, vec![Value::from("hello")]);
/// ```
pub fn parse_call(input: &[u8], limits: &Limits) -> Result<MethodCall, ParseError> {
    let mut p = Parser::new(input, limits)?;
    p.root(b"methodCall")?;
    let method_name = match p.tag()? {
        Tag::Start(b"methodName") => p.text()?.into_owned(),
        Tag::Empty(b"methodName") => String::new(),
        _ => return Err(p.err(K::InvalidXmlRpc, "missing <methodName>")),
    };
    if method_name.is_empty() {
        return Err(p.err(K::InvalidXmlRpc, "empty <methodName>"));
    }
    let mut params = Vec::new();
    match p.tag()? {
        Tag::Start(b"params") => {
            loop {
                match p.tag()? {
                    Tag::Start(b"param") => {
                        params.push(p.param_value()?);
                        p.end()?;
                    }
                    Tag::End => break,
                    _ => return Err(p.err(K::InvalidXmlRpc, "expected <param> or </params>")),
                }
            }
            p.end()?;
        }
        Tag::Empty(b"params") => p.end()?,
        Tag::End => {}
        _ => return Err(p.err(K::InvalidXmlRpc, "expected <params> or </methodCall>")),
    }
    p.epilogue()?;
    Ok(MethodCall {
        method_name,
        params,
    })
}

/// Parses a `<methodResponse>` document (success or fault).
///
/// ```
/// use hub_xmlrpc::{parse_response, Limits, MethodResponse, Value};
/// let r = parse_response(
///     b"<methodResponse><params><param><value><i4>7</i4></value></param></params></methodResponse>",
///     &Limits::default(),
/// ).unwrap();
/// assert_eq!(r, MethodResponse::Success(Value::Int(7)));
/// ```
pub fn parse_response(input: &[u8], limits: &Limits) -> Result<MethodResponse, ParseError> {
    let mut p = Parser::new(input, limits)?;
    p.root(b"methodResponse")?;
    let response = match p.tag()? {
        Tag::Start(b"params") => {
            match p.tag()? {
                Tag::Start(b"param") => {}
                _ => return Err(p.err(K::InvalidXmlRpc, "expected <param> with the result")),
            }
            let v = p.param_value()?;
            p.end()?; // </param>
            match p.tag()? {
                Tag::End => {}
                _ => return Err(p.err(K::InvalidXmlRpc, "a response has exactly one <param>")),
            }
            MethodResponse::Success(v)
        }
        Tag::Start(b"fault") => {
            let at = p.pos;
            let v = p.param_value()?;
            p.end()?; // </fault>
            MethodResponse::Fault(fault_of(v).map_err(|d| p.err_at(K::InvalidXmlRpc, at, d))?)
        }
        _ => return Err(p.err(K::InvalidXmlRpc, "expected <params> or <fault>")),
    };
    p.end()?; // </methodResponse>
    p.epilogue()?;
    Ok(response)
}

/// Parses a document whose root element is a single `<value>`.
pub fn parse_value(input: &[u8], limits: &Limits) -> Result<Value, ParseError> {
    let mut p = Parser::new(input, limits)?;
    let v = match p.prolog()? {
        Tag::Start(b"value") => p.value()?,
        Tag::Empty(b"value") => Value::String(String::new()),
        _ => return Err(p.err(K::InvalidXmlRpc, "expected <value> as the root element")),
    };
    p.epilogue()?;
    Ok(v)
}

fn fault_of(v: Value) -> Result<Fault, &'static str> {
    let Value::Struct(s) = v else {
        return Err("<fault> must hold a struct");
    };
    let mut code = None;
    let mut message = None;
    for (k, v) in s {
        match (k.as_str(), v) {
            ("faultCode", Value::Int(c)) => {
                code = Some(i32::try_from(c).map_err(|_| "faultCode beyond 32 bits")?)
            }
            ("faultString", Value::String(m)) => message = Some(m),
            ("faultCode" | "faultString", _) => {
                return Err("faultCode must be int, faultString string")
            }
            _ => {}
        }
    }
    match (code, message) {
        (Some(code), Some(message)) => Ok(Fault { code, message }),
        _ => Err("<fault> struct needs faultCode and faultString"),
    }
}

/// A structural tag, whitespace and comments skipped.
#[derive(Debug)]
enum Tag<'a> {
    Start(&'a [u8]),
    Empty(&'a [u8]),
    /// An end tag: quick-xml has checked it closes the innermost open element.
    End,
}

/// An open array or struct.
enum Frame {
    Array(Vec<Value>),
    /// Members so far, and the name of the member whose value is being read.
    Struct(Vec<(String, Value)>, String),
}

/// What to do next inside [`Parser::value`].
enum Step {
    /// A `<value>` start tag was just read.
    Open,
    /// A value was read completely, its `</value>` included.
    Done(Value),
}

/// What a `<value>` turned out to hold.
enum Opened {
    Scalar(Value),
    Array,
    Struct,
}

/// The scalar types, by element name.
#[derive(Clone, Copy)]
enum Scalar {
    Int,
    Bool,
    Str,
    Double,
    DateTime,
    Base64,
    Nil,
}

struct Parser<'a> {
    /// The whole input (offsets in errors are into this).
    input: &'a [u8],
    /// The same, validated as UTF-8.
    text: &'a str,
    reader: Reader<&'a [u8]>,
    /// Where the reader's slice starts in `input` (after a byte-order mark).
    base: usize,
    /// Start offset of the event last read.
    pos: usize,
    max_depth: usize,
}

fn is_xml_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Parser<'a> {
    fn new(input: &'a [u8], limits: &Limits) -> Result<Self, ParseError> {
        if input.len() > limits.max_size {
            return Err(ParseError::new(
                K::TooLarge,
                input,
                limits.max_size,
                format!("{} bytes, limit {}", input.len(), limits.max_size),
            ));
        }
        let text = std::str::from_utf8(input)
            .map_err(|e| ParseError::new(K::InvalidUtf8, input, e.valid_up_to(), ""))?;
        let base = if input.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        let mut reader = Reader::from_reader(&input[base..]);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
        Ok(Parser {
            input,
            text,
            reader,
            base,
            pos: base,
            max_depth: limits.max_depth,
        })
    }

    fn err(&self, kind: ParseErrorKind, detail: impl Into<String>) -> ParseError {
        ParseError::new(kind, self.input, self.pos, detail)
    }

    fn err_at(&self, kind: ParseErrorKind, at: usize, detail: impl Into<String>) -> ParseError {
        ParseError::new(kind, self.input, at, detail)
    }

    /// The next raw event, comments and processing instructions skipped, DOCTYPE and
    /// late XML declarations refused.
    fn event(&mut self) -> Result<Event<'a>, ParseError> {
        loop {
            self.pos = self.base + self.reader.buffer_position() as usize;
            let ev = self.reader.read_event().map_err(|e| {
                let at = self.base + self.reader.error_position() as usize;
                ParseError::new(K::NotWellFormed, self.input, at, short(&e.to_string(), 60))
            })?;
            match ev {
                Event::Comment(_) | Event::PI(_) => continue,
                Event::DocType(_) => return Err(self.err(K::Doctype, "")),
                Event::Decl(_) => {
                    return Err(self.err(
                        K::NotWellFormed,
                        "XML declaration not at the start of the document",
                    ))
                }
                ev => return Ok(ev),
            }
        }
    }

    /// The next structural tag; whitespace skipped, other text refused.
    fn tag(&mut self) -> Result<Tag<'a>, ParseError> {
        loop {
            match self.event()? {
                Event::Start(e) => return Ok(Tag::Start(self.name(e.name().into_inner()))),
                Event::Empty(e) => return Ok(Tag::Empty(self.name(e.name().into_inner()))),
                Event::End(_) => return Ok(Tag::End),
                Event::Text(t) if t.iter().all(|&b| is_xml_ws(b)) => continue,
                Event::Text(_) | Event::CData(_) => {
                    return Err(self.err(K::InvalidXmlRpc, "unexpected text"))
                }
                Event::Eof => return Err(self.err(K::NotWellFormed, "unexpected end of document")),
                _ => return Err(self.err(K::NotWellFormed, "unexpected markup")),
            }
        }
    }

    /// Names borrowed from the input keep the input's lifetime.
    fn name(&self, n: &[u8]) -> &'a [u8] {
        self.borrow(n).unwrap_or(b"?")
    }

    /// Re-borrows a slice of the input with the input's lifetime.
    fn borrow(&self, s: &[u8]) -> Option<&'a [u8]> {
        let start = (s.as_ptr() as usize).checked_sub(self.input.as_ptr() as usize)?;
        self.input.get(start..start.checked_add(s.len())?)
    }

    /// Reads the prolog and returns the root tag.
    fn prolog(&mut self) -> Result<Tag<'a>, ParseError> {
        let mut first = true;
        loop {
            self.pos = self.base + self.reader.buffer_position() as usize;
            let ev = self.reader.read_event().map_err(|e| {
                let at = self.base + self.reader.error_position() as usize;
                ParseError::new(K::NotWellFormed, self.input, at, short(&e.to_string(), 60))
            })?;
            match ev {
                Event::Decl(_) if first => {}
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if t.iter().all(|&b| is_xml_ws(b)) => {}
                Event::DocType(_) => return Err(self.err(K::Doctype, "")),
                Event::Start(e) => return Ok(Tag::Start(self.name(e.name().into_inner()))),
                Event::Empty(e) => return Ok(Tag::Empty(self.name(e.name().into_inner()))),
                Event::Eof if first => return Err(self.err(K::NotWellFormed, "empty document")),
                Event::Eof => return Err(self.err(K::NotWellFormed, "no root element")),
                _ => return Err(self.err(K::NotWellFormed, "content before the root element")),
            }
            first = false;
        }
    }

    fn root(&mut self, name: &[u8]) -> Result<(), ParseError> {
        match self.prolog()? {
            Tag::Start(n) if n == name => Ok(()),
            _ => Err(self.err(
                K::InvalidXmlRpc,
                format!(
                    "expected <{}> as the root element",
                    String::from_utf8_lossy(name)
                ),
            )),
        }
    }

    /// After the root element: only whitespace, comments and processing instructions.
    fn epilogue(&mut self) -> Result<(), ParseError> {
        loop {
            match self.event()? {
                Event::Eof => return Ok(()),
                Event::Text(t) if t.iter().all(|&b| is_xml_ws(b)) => {}
                _ => {
                    return Err(
                        self.err(K::InvalidXmlRpc, "trailing content after the root element")
                    )
                }
            }
        }
    }

    /// Expects the end tag of the innermost open element.
    fn end(&mut self) -> Result<(), ParseError> {
        match self.tag()? {
            Tag::End => Ok(()),
            Tag::Start(n) | Tag::Empty(n) => Err(self.err(
                K::InvalidXmlRpc,
                format!("unexpected <{}>", short(&String::from_utf8_lossy(n), 20)),
            )),
        }
    }

    /// Inside `<param>` (or `<fault>`): one `<value>`.
    fn param_value(&mut self) -> Result<Value, ParseError> {
        match self.tag()? {
            Tag::Start(b"value") => self.value(),
            Tag::Empty(b"value") => Ok(Value::String(String::new())),
            _ => Err(self.err(K::InvalidXmlRpc, "expected <value>")),
        }
    }

    /// The text content of a scalar element, up to and including its end tag.
    fn text(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let mut acc: Option<Cow<'a, str>> = None;
        loop {
            let piece = match self.event()? {
                Event::Text(t) => self.unescape(&t.into_inner(), true)?,
                Event::CData(t) => self.unescape(&t.into_inner(), false)?,
                Event::End(_) => return Ok(acc.unwrap_or(Cow::Borrowed(""))),
                Event::Start(_) | Event::Empty(_) => {
                    return Err(self.err(K::InvalidXmlRpc, "element inside a scalar value"))
                }
                Event::Eof => return Err(self.err(K::NotWellFormed, "unexpected end of document")),
                _ => return Err(self.err(K::NotWellFormed, "unexpected markup")),
            };
            acc = Some(match acc {
                None => piece,
                Some(prev) => Cow::Owned(prev.into_owned() + &piece),
            });
        }
    }

    /// Checks and unescapes character data. `entities` is false for CDATA sections.
    fn unescape(&self, raw: &[u8], entities: bool) -> Result<Cow<'a, str>, ParseError> {
        let Some(borrowed) = self.borrow(raw) else {
            // quick-xml only hands out slices of the input for a slice reader; be safe anyway.
            let s = std::str::from_utf8(raw).map_err(|_| self.err(K::InvalidUtf8, ""))?;
            return Ok(Cow::Owned(
                self.unescape_str(s, self.pos, entities)?.into_owned(),
            ));
        };
        let at = borrowed.as_ptr() as usize - self.input.as_ptr() as usize;
        let s: &'a str = self
            .text
            .get(at..at + raw.len())
            .ok_or_else(|| self.err(K::InvalidUtf8, ""))?;
        self.unescape_str(s, at, entities)
    }

    fn unescape_str<'s>(
        &self,
        s: &'s str,
        at: usize,
        entities: bool,
    ) -> Result<Cow<'s, str>, ParseError> {
        if !needs_work(s.as_bytes(), entities) {
            return Ok(Cow::Borrowed(s));
        }
        let mut out = String::with_capacity(s.len());
        let b = s.as_bytes();
        let mut i = 0;
        let mut run = 0; // start of the pending run to copy verbatim
        while i < b.len() {
            let c = b[i];
            if c == b'&' && entities {
                out.push_str(&s[run..i]);
                let rest = &b[i + 1..];
                let semi = rest
                    .iter()
                    .take(12)
                    .position(|&x| x == b';')
                    .ok_or_else(|| {
                        self.err_at(K::NotWellFormed, at + i, "'&' not followed by a reference")
                    })?;
                let name = &rest[..semi];
                let ch = match name {
                    b"amp" => '&',
                    b"lt" => '<',
                    b"gt" => '>',
                    b"quot" => '"',
                    b"apos" => '\'',
                    [b'#', b'x', hex @ ..] => char_ref(hex, 16).ok_or_else(|| {
                        self.err_at(K::NotWellFormed, at + i, "bad character reference")
                    })?,
                    [b'#', dec @ ..] => char_ref(dec, 10).ok_or_else(|| {
                        self.err_at(K::NotWellFormed, at + i, "bad character reference")
                    })?,
                    _ => return Err(self.err_at(
                        K::EntityRefused,
                        at + i,
                        "only &amp; &lt; &gt; &quot; &apos; and character references are allowed",
                    )),
                };
                out.push(ch);
                i += semi + 2;
                run = i;
            } else if c == b'\r' {
                out.push_str(&s[run..i]);
                out.push('\n');
                i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                run = i;
            } else if c < 0x20 && c != b'\t' && c != b'\n' {
                return Err(self.err_at(
                    K::NotWellFormed,
                    at + i,
                    format!("control character U+{c:04X} is not allowed in XML"),
                ));
            } else {
                i += 1;
            }
        }
        out.push_str(&s[run..]);
        Ok(Cow::Owned(out))
    }

    /// Reads a value after its `<value>` start tag, through its `</value>`.
    fn value(&mut self) -> Result<Value, ParseError> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut step = Step::Open;
        loop {
            step = match step {
                Step::Open => match self.open_value()? {
                    Opened::Scalar(v) => Step::Done(v),
                    Opened::Array => {
                        self.push(&mut stack, Frame::Array(Vec::new()))?;
                        self.array_next(&mut stack)?
                    }
                    Opened::Struct => {
                        self.push(&mut stack, Frame::Struct(Vec::new(), String::new()))?;
                        self.struct_next(&mut stack)?
                    }
                },
                Step::Done(v) => match stack.last_mut() {
                    None => return Ok(v),
                    Some(Frame::Array(items)) => {
                        items.push(v);
                        self.array_next(&mut stack)?
                    }
                    Some(Frame::Struct(members, name)) => {
                        members.push((std::mem::take(name), v));
                        self.end()?; // </member>
                        self.struct_next(&mut stack)?
                    }
                },
            };
        }
    }

    fn push(&self, stack: &mut Vec<Frame>, frame: Frame) -> Result<(), ParseError> {
        if stack.len() >= self.max_depth {
            return Err(self.err(
                K::TooDeep,
                format!("arrays and structs nest deeper than {}", self.max_depth),
            ));
        }
        stack.push(frame);
        Ok(())
    }

    /// Inside `<data>`: the next element's `<value>`, or the end of the array.
    fn array_next(&mut self, stack: &mut Vec<Frame>) -> Result<Step, ParseError> {
        match self.tag()? {
            Tag::Start(b"value") => Ok(Step::Open),
            Tag::Empty(b"value") => Ok(Step::Done(Value::String(String::new()))),
            Tag::End => {
                self.end()?; // </array>
                self.end()?; // </value>
                match stack.pop() {
                    Some(Frame::Array(items)) => Ok(Step::Done(Value::Array(items))),
                    _ => Err(self.err(K::InvalidXmlRpc, "internal: array frame expected")),
                }
            }
            _ => Err(self.err(K::InvalidXmlRpc, "expected <value> or </data>")),
        }
    }

    /// Inside `<struct>`: the next member up to its `<value>`, or the end of the struct.
    fn struct_next(&mut self, stack: &mut Vec<Frame>) -> Result<Step, ParseError> {
        match self.tag()? {
            Tag::Start(b"member") => {}
            Tag::End => {
                self.end()?; // </value>
                return match stack.pop() {
                    Some(Frame::Struct(members, _)) => {
                        Ok(Step::Done(Value::Struct(Struct::from_members(members))))
                    }
                    _ => Err(self.err(K::InvalidXmlRpc, "internal: struct frame expected")),
                };
            }
            _ => return Err(self.err(K::InvalidXmlRpc, "expected <member> or </struct>")),
        }
        let name = match self.tag()? {
            Tag::Start(b"name") => self.text()?.into_owned(),
            Tag::Empty(b"name") => String::new(),
            _ => return Err(self.err(K::InvalidXmlRpc, "expected <name> in <member>")),
        };
        if let Some(Frame::Struct(_, pending)) = stack.last_mut() {
            *pending = name;
        }
        match self.tag()? {
            Tag::Start(b"value") => Ok(Step::Open),
            Tag::Empty(b"value") => Ok(Step::Done(Value::String(String::new()))),
            _ => Err(self.err(K::InvalidXmlRpc, "expected <value> in <member>")),
        }
    }

    /// After `<value>`: a scalar (read through `</value>`), or the opening of an array
    /// (through `<data>`) or a struct.
    fn open_value(&mut self) -> Result<Opened, ParseError> {
        let mut untyped: Option<Cow<'a, str>> = None;
        loop {
            let (name, empty) = match self.event()? {
                Event::Text(t) => {
                    let piece = self.unescape(&t.into_inner(), true)?;
                    untyped = Some(match untyped {
                        None => piece,
                        Some(prev) => Cow::Owned(prev.into_owned() + &piece),
                    });
                    continue;
                }
                Event::CData(t) => {
                    let piece = self.unescape(&t.into_inner(), false)?;
                    untyped = Some(match untyped {
                        None => piece,
                        Some(prev) => Cow::Owned(prev.into_owned() + &piece),
                    });
                    continue;
                }
                Event::End(_) => {
                    // `<value>text</value>`: a string.
                    return Ok(Opened::Scalar(Value::String(
                        untyped.map(Cow::into_owned).unwrap_or_default(),
                    )));
                }
                Event::Start(e) => (self.name(e.name().into_inner()), false),
                Event::Empty(e) => (self.name(e.name().into_inner()), true),
                Event::Eof => return Err(self.err(K::NotWellFormed, "unexpected end of document")),
                _ => return Err(self.err(K::NotWellFormed, "unexpected markup")),
            };
            if untyped
                .as_deref()
                .is_some_and(|s| !s.bytes().all(is_xml_ws))
            {
                return Err(self.err(K::InvalidXmlRpc, "text beside a type element in <value>"));
            }
            let scalar = match name {
                b"int" | b"i4" | b"i8" | b"ex:i8" | b"ex:i4" | b"ex:i2" | b"ex:i1" => Scalar::Int,
                b"boolean" => Scalar::Bool,
                b"string" => Scalar::Str,
                b"double" | b"ex:float" => Scalar::Double,
                b"dateTime.iso8601" | b"ex:dateTime" => Scalar::DateTime,
                b"base64" => Scalar::Base64,
                b"nil" | b"ex:nil" => Scalar::Nil,
                b"struct" if !empty => return Ok(Opened::Struct),
                b"array" if !empty => {
                    match self.tag()? {
                        Tag::Start(b"data") => return Ok(Opened::Array),
                        Tag::Empty(b"data") => self.end()?, // </array>
                        Tag::End => {}                      // `<array></array>`
                        _ => return Err(self.err(K::InvalidXmlRpc, "expected <data> in <array>")),
                    }
                    self.end()?; // </value>
                    return Ok(Opened::Scalar(Value::Array(Vec::new())));
                }
                b"struct" => {
                    self.end()?;
                    return Ok(Opened::Scalar(Value::Struct(Struct::new())));
                }
                b"array" => {
                    self.end()?;
                    return Ok(Opened::Scalar(Value::Array(Vec::new())));
                }
                other => {
                    return Err(self.err(
                        K::InvalidXmlRpc,
                        format!(
                            "unknown type element <{}>",
                            short(&String::from_utf8_lossy(other), 20)
                        ),
                    ))
                }
            };
            let at = self.pos;
            let text = if empty {
                Cow::Borrowed("")
            } else {
                self.text()?
            };
            let v = self.scalar(scalar, text, at)?;
            self.end()?; // </value>
            return Ok(Opened::Scalar(v));
        }
    }

    fn scalar(&self, kind: Scalar, text: Cow<'a, str>, at: usize) -> Result<Value, ParseError> {
        let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        let bad = |what: &str| {
            self.err_at(
                K::InvalidValue,
                at,
                format!("invalid {what}: {:?}", short(trimmed, 30)),
            )
        };
        Ok(match kind {
            Scalar::Str => Value::String(text.into_owned()),
            Scalar::Int => Value::Int(parse_int(trimmed).map_err(|overflow| {
                if overflow {
                    self.err_at(
                        K::IntegerOverflow,
                        at,
                        format!("integer {} does not fit in 64 bits", short(trimmed, 30)),
                    )
                } else {
                    bad("int")
                }
            })?),
            Scalar::Bool => Value::Bool(match trimmed {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => return Err(bad("boolean")),
            }),
            Scalar::Double => Value::Double(match trimmed.parse::<f64>() {
                Ok(d) if !trimmed.is_empty() => d,
                _ => return Err(bad("double")),
            }),
            Scalar::DateTime => {
                Value::DateTime(DateTime::parse(trimmed).map_err(|_| bad("dateTime.iso8601"))?)
            }
            Scalar::Base64 => Value::Base64(decode_base64(trimmed).ok_or_else(|| bad("base64"))?),
            Scalar::Nil => {
                if !trimmed.is_empty() {
                    return Err(bad("nil (must be empty)"));
                }
                Value::Nil
            }
        })
    }
}

/// `true` if the text has `&` (when `entities`), `\r`, or a control character.
fn needs_work(b: &[u8], entities: bool) -> bool {
    let amp = if entities { b'&' } else { 0 };
    b.chunks(16).any(|chunk| {
        chunk.iter().fold(false, |acc, &c| {
            acc | (c == amp) | ((c < 0x20) & (c != b'\t') & (c != b'\n'))
        })
    })
}

fn char_ref(digits: &[u8], radix: u32) -> Option<char> {
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let s = std::str::from_utf8(digits).ok()?;
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(s, radix).ok()?)
}

/// Parses an optionally signed decimal integer; `Err(true)` on overflow, `Err(false)` if
/// it is not an integer.
fn parse_int(s: &str) -> Result<i64, bool> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(false);
    }
    let mut v: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        v = v
            .checked_mul(10)
            .and_then(|v| {
                if neg {
                    v.checked_sub(d)
                } else {
                    v.checked_add(d)
                }
            })
            .ok_or(true)?;
    }
    Ok(v)
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{
        general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig,
    };
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    if s.bytes().any(is_xml_ws) {
        let compact: Vec<u8> = s.bytes().filter(|&b| !is_xml_ws(b)).collect();
        ENGINE.decode(compact).ok()
    } else {
        ENGINE.decode(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_int("9223372036854775808"), Err(true));
        assert_eq!(parse_int("+5"), Ok(5));
        assert_eq!(parse_int("5x"), Err(false));
        assert_eq!(parse_int(""), Err(false));
        assert_eq!(parse_int("-"), Err(false));
    }
}
