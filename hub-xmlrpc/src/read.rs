//! The parser: bytes to [`MethodCall`], [`MethodResponse`] or [`Value`].
//!
//! The input is checked as UTF-8 once, up front (or transcoded, when its XML declaration
//! names ISO-8859-1; US-ASCII is checked), then tokenized by [`crate::lex`] (no DTD
//! processing, no entity expansion) and driven by a small state machine with an explicit
//! stack for arrays and structs, so nesting is bounded by [`Limits::max_depth`] before
//! anything is pushed and never touches the call stack. Elements of open arrays and
//! structs collect on two stacks shared by the whole parse; each finished array or struct
//! takes exactly its own, in one allocation of the right size. Text is borrowed from the
//! input and only copied when it becomes a `String`; it is unescaped only when it contains
//! `&` (or `\r`, which XML normalises to `\n`). The parser asks the lexer for the tag it
//! expects first and takes the general path only when that declines, so the usual
//! document costs a few dozen instructions per tag.

use std::borrow::Cow;

use crate::error::short;
use crate::lex::{Lexer, Tok};
use crate::{
    BorrowedCall, DateTime, Fault, Limits, MemberName, MethodCall, MethodResponse, ParseError,
    ParseErrorKind, Struct, Value,
};
use base64::Engine as _;

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
    let (method_name, params) = parse_call_with(input, limits, |_, name| name.into_owned())?;
    Ok(MethodCall {
        method_name,
        params,
    })
}

/// Parses a `<methodCall>` document as [`parse_call`] does, leaving the method name in
/// `input` unless it had an entity or character reference to decode (or the document was not
/// UTF-8 to begin with).
///
/// ```
/// use std::borrow::Cow;
/// use hub_xmlrpc::{parse_call_borrowed, Limits};
/// let body = b"<methodCall><methodName>echo</methodName><params/></methodCall>";
/// let call = parse_call_borrowed(body, &Limits::default()).unwrap();
/// assert!(matches!(call.method_name, Cow::Borrowed("echo")));
/// ```
pub fn parse_call_borrowed<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Result<BorrowedCall<'a>, ParseError> {
    let (method_name, params) = parse_call_with(input, limits, Source::rebind)?;
    Ok(BorrowedCall {
        method_name,
        params,
    })
}

/// Both call parsers: `name` makes the method name what the caller keeps (an owned copy, or
/// a borrow of the input) while the source is still there.
#[inline(always)]
fn parse_call_with<'a, N>(
    input: &'a [u8],
    limits: &Limits,
    name: impl FnOnce(&Source<'a>, Cow<'_, str>) -> N,
) -> Result<(N, Vec<Value>), ParseError> {
    let src = Source::new(input, limits)?;
    let mut p = Parser::new(&src, limits);
    p.root("methodCall")?;
    let method_name = p.text_element("methodName", "missing <methodName>")?;
    if method_name.is_empty() {
        return Err(p.err(K::InvalidXmlRpc, "empty <methodName>"));
    }
    // A single parameter, the common case, ends up in a Vec of exactly one.
    let mut first = None;
    let mut params = Vec::new();
    let has_params = p.start("params")
        || match p.tag()? {
            Tag::Start("params") => true,
            Tag::Empty("params") => {
                p.end()?;
                false
            }
            Tag::End => false,
            _ => return Err(p.err(K::InvalidXmlRpc, "expected <params> or </methodCall>")),
        };
    if has_params {
        loop {
            if !p.start("param") {
                if p.at_end() {
                    break;
                }
                match p.tag()? {
                    Tag::Start("param") => {}
                    Tag::End => break,
                    _ => return Err(p.err(K::InvalidXmlRpc, "expected <param> or </params>")),
                }
            }
            let v = p.param_value()?;
            match first.take() {
                None if params.is_empty() => first = Some(v),
                prev => {
                    params.extend(prev);
                    params.push(v);
                }
            }
            p.end()?;
        }
        p.end()?;
    }
    p.epilogue()?;
    let params = match first {
        Some(v) => vec![v],
        None => params,
    };
    Ok((name(&src, method_name), params))
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
    let src = Source::new(input, limits)?;
    let mut p = Parser::new(&src, limits);
    p.root("methodResponse")?;
    let tag = if p.start("params") {
        Tag::Start("params")
    } else {
        p.tag()?
    };
    let response = match tag {
        Tag::Start("params") => {
            if !p.start("param") {
                match p.tag()? {
                    Tag::Start("param") => {}
                    _ => return Err(p.err(K::InvalidXmlRpc, "expected <param> with the result")),
                }
            }
            let v = p.param_value()?;
            p.end()?; // </param>
            if !p.at_end() {
                match p.tag()? {
                    Tag::End => {}
                    _ => return Err(p.err(K::InvalidXmlRpc, "a response has exactly one <param>")),
                }
            }
            MethodResponse::Success(v)
        }
        Tag::Start("fault") => {
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
    let src = Source::new(input, limits)?;
    let mut p = Parser::new(&src, limits);
    let v = match p.prolog()? {
        Tag::Start("value") => p.value()?,
        Tag::Empty("value") => Value::String(String::new()),
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
        match (k.as_ref(), v) {
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
    Start(&'a str),
    Empty(&'a str),
    /// An end tag: the lexer has checked it closes the innermost open element.
    End,
}

/// An open array or struct; its elements so far are on the parser's shared stacks from
/// the index it holds.
enum Frame {
    Array(usize),
    /// Where its members start, and the name of the member whose value is being read.
    Struct(usize, String),
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

/// The document as text: the input itself when it is UTF-8 (or declared US-ASCII), else
/// transcoded from the encoding its XML declaration names.
struct Source<'a> {
    text: Cow<'a, str>,
    /// Where parsing starts (after a UTF-8 byte-order mark).
    base: usize,
    /// Where an XML declaration `<?xml ...?>` at `base` ends, when `text` is the input
    /// itself (offsets into the input are offsets into the text); else 0.
    decl_end: usize,
}

impl<'a> Source<'a> {
    /// `part` of this source's text as a borrow of the input itself when it is one (the text
    /// is the input unless it had to be transcoded), else as an owned copy.
    fn rebind(&self, part: Cow<'_, str>) -> Cow<'a, str> {
        if let (Cow::Borrowed(all), Cow::Borrowed(sub)) = (&self.text, &part) {
            // Where `sub` sits in `all`, from the two addresses; `get` checks the range.
            let start = (sub.as_ptr() as usize).wrapping_sub(all.as_ptr() as usize);
            if let Some(inside) = start
                .checked_add(sub.len())
                .and_then(|end| all.get(start..end))
            {
                return Cow::Borrowed(inside);
            }
        }
        Cow::Owned(part.into_owned())
    }

    fn new(input: &'a [u8], limits: &Limits) -> Result<Self, ParseError> {
        if input.len() > limits.max_size {
            return Err(ParseError::new(
                K::TooLarge,
                input,
                limits.max_size,
                format!("{} bytes, limit {}", input.len(), limits.max_size),
            ));
        }
        let bom = input.starts_with(b"\xEF\xBB\xBF");
        let base = if bom { 3 } else { 0 };
        // simdutf8 checks 32 bytes per step (a third of std's instructions on a 10 KiB
        // body); only a body that fails is checked again by std, which says where.
        let utf8 = |input: &'a [u8]| {
            simdutf8::basic::from_utf8(input).map_err(|_| {
                let at = std::str::from_utf8(input).map_or_else(|e| e.valid_up_to(), |_| 0);
                ParseError::new(K::InvalidUtf8, input, at, "")
            })
        };
        let decl = xml_decl(&input[base..]);
        let text = match decl.and_then(|(_, encoding)| encoding) {
            None => Cow::Borrowed(utf8(input)?),
            Some(name) => match Encoding::of(name) {
                Some(Encoding::Utf8) => Cow::Borrowed(utf8(input)?),
                Some(_) if bom => {
                    return Err(ParseError::new(
                        K::UnsupportedEncoding,
                        input,
                        0,
                        "a UTF-8 byte-order mark contradicts the declared encoding",
                    ))
                }
                Some(Encoding::Ascii) => match input.iter().position(|&b| !b.is_ascii()) {
                    None => Cow::Borrowed(utf8(input)?),
                    Some(at) => {
                        return Err(ParseError::new(
                            K::InvalidUtf8,
                            input,
                            at,
                            format!("byte 0x{:02X} in a US-ASCII document", input[at]),
                        ))
                    }
                },
                Some(Encoding::Latin1) if input.is_ascii() => Cow::Borrowed(utf8(input)?),
                Some(Encoding::Latin1) => {
                    Cow::Owned(input.iter().map(|&b| char::from(b)).collect())
                }
                None => {
                    return Err(ParseError::new(
                        K::UnsupportedEncoding,
                        input,
                        0,
                        format!(
                            "encoding {:?} (UTF-8, US-ASCII and ISO-8859-1 are supported)",
                            short(&String::from_utf8_lossy(name), 20)
                        ),
                    ))
                }
            },
        };
        let decl_end = match (&text, decl) {
            (Cow::Borrowed(_), Some((end, _))) => base + end,
            _ => 0,
        };
        Ok(Source {
            text,
            base,
            decl_end,
        })
    }
}

/// The encodings a document may declare.
#[derive(Clone, Copy)]
enum Encoding {
    Utf8,
    Ascii,
    Latin1,
}

impl Encoding {
    /// By IANA name or alias, case-insensitively.
    fn of(name: &[u8]) -> Option<Self> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("utf-8") || is("utf8") {
            Some(Encoding::Utf8)
        } else if ["us-ascii", "ascii", "iso646-us", "ansi_x3.4-1968"]
            .into_iter()
            .any(is)
        {
            Some(Encoding::Ascii)
        } else if [
            "iso-8859-1",
            "iso8859-1",
            "iso_8859-1",
            "latin-1",
            "latin1",
            "l1",
            "cp819",
            "ibm819",
            "iso-ir-100",
        ]
        .into_iter()
        .any(is)
        {
            Some(Encoding::Latin1)
        } else {
            None
        }
    }
}

/// An XML declaration `<?xml ...?>` at the very start of `input`: where it ends (after
/// `?>`) and the value of its `encoding=`, if any.
fn xml_decl(input: &[u8]) -> Option<(usize, Option<&[u8]>)> {
    // What most clients write (Python's xmlrpc.client, ours), compared in one go.
    const SHORT: usize = b"<?xml version='1.0'?>".len();
    if let Some(head) = input.get(..SHORT) {
        if head == b"<?xml version='1.0'?>" || head == b"<?xml version=\"1.0\"?>" {
            return Some((SHORT, None));
        }
    }
    let rest = input.strip_prefix(b"<?xml")?;
    if !rest.first().copied().is_some_and(is_xml_ws) {
        return None;
    }
    let mut end = 0;
    let decl = loop {
        end += rest.get(end..)?.iter().position(|&b| b == b'?')?;
        if rest.get(end + 1) == Some(&b'>') {
            break &rest[..end];
        }
        end += 1;
    };
    Some((5 + end + 2, encoding_of(decl)))
}

/// The value of `encoding=` in the body of an XML declaration.
fn encoding_of(decl: &[u8]) -> Option<&[u8]> {
    // The first "encoding" preceded by whitespace.
    let mut at = 1;
    let after = loop {
        at += decl.get(at..)?.iter().position(|&b| b == b'e')?;
        if decl[at..].starts_with(b"encoding") && is_xml_ws(decl[at - 1]) {
            break &decl[at + 8..];
        }
        at += 1;
    };
    let after = after.trim_ascii_start().strip_prefix(b"=")?;
    let after = after.trim_ascii_start();
    let quote = *after.first().filter(|&&q| q == b'"' || q == b'\'')?;
    let value = &after[1..];
    Some(&value[..value.iter().position(|&b| b == quote)?])
}

struct Parser<'a> {
    /// The whole document (offsets in errors are into this).
    text: &'a str,
    lex: Lexer<'a>,
    /// Start offset of the token last read.
    pos: usize,
    max_depth: usize,
    /// Where the document starts, and where its XML declaration ends (see [`Source`]).
    base: usize,
    decl_end: usize,
    /// Open arrays and structs, innermost last.
    frames: Vec<Frame>,
    /// Elements of the open arrays, outermost first.
    items: Vec<Value>,
    /// Members of the open structs, outermost first.
    members: Vec<(MemberName, Value)>,
}

fn is_xml_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Parser<'a> {
    fn new(src: &'a Source<'_>, limits: &Limits) -> Self {
        Parser {
            text: &src.text,
            lex: Lexer::new(&src.text, src.base),
            pos: src.base,
            max_depth: limits.max_depth,
            base: src.base,
            decl_end: src.decl_end,
            frames: Vec::new(),
            items: Vec::new(),
            members: Vec::new(),
        }
    }

    /// The text of the element `name` (`<name>…</name>`, or empty as `<name/>`), which must
    /// come next; `missing` is the error otherwise.
    #[inline]
    fn text_element(
        &mut self,
        name: &'static str,
        missing: &'static str,
    ) -> Result<Cow<'a, str>, ParseError> {
        if self.start(name) {
            return self.text();
        }
        match self.tag()? {
            Tag::Start(n) if n == name => self.text(),
            Tag::Empty(n) if n == name => Ok(Cow::Borrowed("")),
            _ => Err(self.err(K::InvalidXmlRpc, missing)),
        }
    }

    /// Consumes `<name>` if it comes next (whitespace skipped): the shortcut for
    /// `tag()` returning `Tag::Start(name)`; when it declines, `tag()` reads on as usual.
    #[inline]
    fn start(&mut self, name: &'static str) -> bool {
        match self.lex.eat_start(name) {
            Some(at) => {
                self.pos = at;
                true
            }
            None => false,
        }
    }

    /// Consumes the innermost element's end tag if it comes next, written plainly
    /// (whitespace skipped): the shortcut for `tag()` returning `Tag::End`.
    #[inline]
    fn at_end(&mut self) -> bool {
        match self.lex.eat_end() {
            Some(at) => {
                self.pos = at;
                true
            }
            None => false,
        }
    }

    fn err(&self, kind: ParseErrorKind, detail: impl Into<String>) -> ParseError {
        ParseError::new(kind, self.text.as_bytes(), self.pos, detail)
    }

    fn err_at(&self, kind: ParseErrorKind, at: usize, detail: impl Into<String>) -> ParseError {
        ParseError::new(kind, self.text.as_bytes(), at, detail)
    }

    /// The next token, late XML declarations refused.
    #[inline]
    fn event(&mut self) -> Result<Tok<'a>, ParseError> {
        self.pos = self.lex.pos;
        match self.lex.next_tok() {
            Ok(Tok::Decl) => Err(self.err(
                K::NotWellFormed,
                "XML declaration not at the start of the document",
            )),
            Ok(t) => Ok(t),
            Err(e) => Err(self.err_at(e.kind, e.at, e.detail)),
        }
    }

    /// The next structural tag; whitespace skipped, other text refused.
    fn tag(&mut self) -> Result<Tag<'a>, ParseError> {
        loop {
            match self.event()? {
                Tok::Start(n) => return Ok(Tag::Start(n)),
                Tok::Empty(n) => return Ok(Tag::Empty(n)),
                Tok::End => return Ok(Tag::End),
                Tok::Text(t) if t.bytes().all(is_xml_ws) => continue,
                Tok::Text(_) | Tok::CData(_) => {
                    return Err(self.err(K::InvalidXmlRpc, "unexpected text"))
                }
                Tok::Eof => return Err(self.err(K::NotWellFormed, "unexpected end of document")),
                Tok::Decl => return Err(self.err(K::NotWellFormed, "unexpected markup")),
            }
        }
    }

    /// Consumes the XML declaration at the start of the document, which [`Source`] has
    /// found already (the token `next_tok` would return there): `true` if there is one.
    fn skip_decl(&mut self) -> bool {
        if self.decl_end != 0 && self.lex.pos == self.base {
            self.pos = self.base;
            self.lex.pos = self.decl_end;
            true
        } else {
            false
        }
    }

    /// Reads the prolog and returns the root tag.
    fn prolog(&mut self) -> Result<Tag<'a>, ParseError> {
        let first = !self.skip_decl();
        self.prolog_from(first)
    }

    /// The general case of [`Parser::prolog`]; `first` if nothing has been read yet.
    fn prolog_from(&mut self, mut first: bool) -> Result<Tag<'a>, ParseError> {
        loop {
            self.pos = self.lex.pos;
            let tok = self
                .lex
                .next_tok()
                .map_err(|e| self.err_at(e.kind, e.at, e.detail))?;
            match tok {
                Tok::Decl if first => {}
                Tok::Decl => {
                    return Err(self.err(
                        K::NotWellFormed,
                        "XML declaration not at the start of the document",
                    ))
                }
                Tok::Text(t) if t.bytes().all(is_xml_ws) => {}
                Tok::Start(n) => return Ok(Tag::Start(n)),
                Tok::Empty(n) => return Ok(Tag::Empty(n)),
                Tok::Eof if first => return Err(self.err(K::NotWellFormed, "empty document")),
                Tok::Eof => return Err(self.err(K::NotWellFormed, "no root element")),
                _ => return Err(self.err(K::NotWellFormed, "content before the root element")),
            }
            first = false;
        }
    }

    fn root(&mut self, name: &'static str) -> Result<(), ParseError> {
        let first = !self.skip_decl();
        if self.start(name) {
            return Ok(());
        }
        match self.prolog_from(first)? {
            Tag::Start(n) if n == name => Ok(()),
            _ => Err(self.err(
                K::InvalidXmlRpc,
                format!("expected <{name}> as the root element"),
            )),
        }
    }

    /// After the root element: only whitespace, comments and processing instructions.
    fn epilogue(&mut self) -> Result<(), ParseError> {
        if self.lex.eat_ws_to_eof() {
            return Ok(());
        }
        loop {
            match self.event()? {
                Tok::Eof => return Ok(()),
                Tok::Text(t) if t.bytes().all(is_xml_ws) => {}
                _ => {
                    return Err(
                        self.err(K::InvalidXmlRpc, "trailing content after the root element")
                    )
                }
            }
        }
    }

    /// Expects the end tag of the innermost open element.
    #[inline(always)]
    fn end(&mut self) -> Result<(), ParseError> {
        if self.at_end() {
            return Ok(());
        }
        self.end_slow()
    }

    // The general paths are kept out of line, so that the shortcuts inlined into their
    // callers stay small.
    #[inline(never)]
    fn end_slow(&mut self) -> Result<(), ParseError> {
        match self.tag()? {
            Tag::End => Ok(()),
            Tag::Start(n) | Tag::Empty(n) => {
                Err(self.err(K::InvalidXmlRpc, format!("unexpected <{}>", short(n, 20))))
            }
        }
    }

    /// Inside `<param>` (or `<fault>`): one `<value>`.
    fn param_value(&mut self) -> Result<Value, ParseError> {
        if self.start("value") {
            return self.value();
        }
        match self.tag()? {
            Tag::Start("value") => self.value(),
            Tag::Empty("value") => Ok(Value::String(String::new())),
            _ => Err(self.err(K::InvalidXmlRpc, "expected <value>")),
        }
    }

    /// The text content of a scalar element, up to and including its end tag.
    #[inline(always)]
    fn text(&mut self) -> Result<Cow<'a, str>, ParseError> {
        if let Some((raw, at, plain)) = self.lex.text_then_end() {
            self.pos = at;
            return if plain {
                Ok(Cow::Borrowed(raw))
            } else {
                self.unescape(raw, true)
            };
        }
        self.text_slow()
    }

    #[inline(never)]
    fn text_slow(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let mut acc: Option<Cow<'a, str>> = None;
        loop {
            let piece = match self.event()? {
                Tok::Text(t) => self.unescape(t, true)?,
                Tok::CData(t) => self.unescape(t, false)?,
                Tok::End => return Ok(acc.unwrap_or(Cow::Borrowed(""))),
                Tok::Start(_) | Tok::Empty(_) => {
                    return Err(self.err(K::InvalidXmlRpc, "element inside a scalar value"))
                }
                Tok::Eof => return Err(self.err(K::NotWellFormed, "unexpected end of document")),
                Tok::Decl => return Err(self.err(K::NotWellFormed, "unexpected markup")),
            };
            acc = Some(match acc {
                None => piece,
                Some(prev) => Cow::Owned(prev.into_owned() + &piece),
            });
        }
    }

    /// Checks and unescapes character data (a slice of the document). `entities` is
    /// false for CDATA sections.
    #[inline]
    fn unescape(&self, raw: &'a str, entities: bool) -> Result<Cow<'a, str>, ParseError> {
        let at = (raw.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize);
        self.unescape_str(raw, at, entities)
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
        let bottom = self.frames.len();
        let mut step = match self.open_value()? {
            // A scalar, the usual case: no nesting to track.
            Opened::Scalar(v) => return Ok(v),
            opened => self.enter(opened)?,
        };
        loop {
            step = match step {
                Step::Open => {
                    let opened = self.open_value()?;
                    self.enter(opened)?
                }
                Step::Done(v) => {
                    if self.frames.len() == bottom {
                        return Ok(v);
                    }
                    match self.frames.last_mut() {
                        Some(Frame::Struct(_, name)) => {
                            self.members
                                .push((MemberName::Owned(std::mem::take(name)), v));
                            self.end()?; // </member>
                            self.struct_next()?
                        }
                        _ => {
                            self.items.push(v);
                            self.array_next()?
                        }
                    }
                }
            };
        }
    }

    /// After [`Parser::open_value`]: a scalar is done; an array or a struct is entered.
    fn enter(&mut self, opened: Opened) -> Result<Step, ParseError> {
        match opened {
            Opened::Scalar(v) => Ok(Step::Done(v)),
            Opened::Array => {
                self.push(Frame::Array(self.items.len()))?;
                self.array_next()
            }
            Opened::Struct => {
                self.push(Frame::Struct(self.members.len(), String::new()))?;
                self.struct_next()
            }
        }
    }

    fn push(&mut self, frame: Frame) -> Result<(), ParseError> {
        if self.frames.len() >= self.max_depth {
            return Err(self.err(
                K::TooDeep,
                format!("arrays and structs nest deeper than {}", self.max_depth),
            ));
        }
        self.frames.push(frame);
        Ok(())
    }

    /// Inside `<data>`: the next element's `<value>`, or the end of the array.
    fn array_next(&mut self) -> Result<Step, ParseError> {
        if self.start("value") {
            return Ok(Step::Open);
        }
        let end = self.at_end();
        match if end { Tag::End } else { self.tag()? } {
            Tag::Start("value") => Ok(Step::Open),
            Tag::Empty("value") => Ok(Step::Done(Value::String(String::new()))),
            Tag::End => {
                self.end()?; // </array>
                self.end()?; // </value>
                match self.frames.pop() {
                    Some(Frame::Array(from)) => {
                        Ok(Step::Done(Value::Array(self.items.drain(from..).collect())))
                    }
                    _ => Err(self.err(K::InvalidXmlRpc, "internal: array frame expected")),
                }
            }
            _ => Err(self.err(K::InvalidXmlRpc, "expected <value> or </data>")),
        }
    }

    /// Inside `<struct>`: the next member up to its `<value>`, or the end of the struct.
    fn struct_next(&mut self) -> Result<Step, ParseError> {
        let tag = if self.start("member") {
            Tag::Start("member")
        } else if self.at_end() {
            Tag::End
        } else {
            self.tag()?
        };
        match tag {
            Tag::Start("member") => {}
            Tag::End => {
                self.end()?; // </value>
                return match self.frames.pop() {
                    Some(Frame::Struct(from, _)) => Ok(Step::Done(Value::Struct(
                        Struct::from_members(self.members.drain(from..).collect()),
                    ))),
                    _ => Err(self.err(K::InvalidXmlRpc, "internal: struct frame expected")),
                };
            }
            _ => return Err(self.err(K::InvalidXmlRpc, "expected <member> or </struct>")),
        }
        let name = self.text_element("name", "expected <name> in <member>")?;
        if let Some(Frame::Struct(_, pending)) = self.frames.last_mut() {
            *pending = name.into_owned();
        }
        if self.start("value") {
            return Ok(Step::Open);
        }
        match self.tag()? {
            Tag::Start("value") => Ok(Step::Open),
            Tag::Empty("value") => Ok(Step::Done(Value::String(String::new()))),
            _ => Err(self.err(K::InvalidXmlRpc, "expected <value> in <member>")),
        }
    }

    /// After `<value>`: a scalar (read through `</value>`), or the opening of an array
    /// (through `<data>`) or a struct.
    fn open_value(&mut self) -> Result<Opened, ParseError> {
        // `<type>`, whitespace before it skipped (it would be dropped below).
        let (name, empty) = match self.lex.eat_start_any() {
            Some((name, at, empty)) => {
                self.pos = at;
                (name, empty)
            }
            // `<value>text</value>`: a string, in one step.
            None => match self.lex.text_then_end() {
                Some((raw, at, plain)) => {
                    self.pos = at;
                    return Ok(Opened::Scalar(Value::String(if plain {
                        raw.to_owned()
                    } else {
                        self.unescape(raw, true)?.into_owned()
                    })));
                }
                None => match self.type_tag()? {
                    Ok(tag) => tag,
                    Err(untyped) => return Ok(Opened::Scalar(Value::String(untyped))),
                },
            },
        };
        let scalar = match name {
            "int" | "i4" | "i8" | "ex:i8" | "ex:i4" | "ex:i2" | "ex:i1" => Scalar::Int,
            "boolean" => Scalar::Bool,
            "string" => Scalar::Str,
            "double" | "ex:float" => Scalar::Double,
            "dateTime.iso8601" | "ex:dateTime" => Scalar::DateTime,
            "base64" => Scalar::Base64,
            "nil" | "ex:nil" => Scalar::Nil,
            "struct" if !empty => return Ok(Opened::Struct),
            "array" if !empty => {
                if self.start("data") {
                    return Ok(Opened::Array);
                }
                match self.tag()? {
                    Tag::Start("data") => return Ok(Opened::Array),
                    Tag::Empty("data") => self.end()?, // </array>
                    Tag::End => {}                     // `<array></array>`
                    _ => return Err(self.err(K::InvalidXmlRpc, "expected <data> in <array>")),
                }
                self.end()?; // </value>
                return Ok(Opened::Scalar(Value::Array(Vec::new())));
            }
            "struct" => {
                self.end()?;
                return Ok(Opened::Scalar(Value::Struct(Struct::new())));
            }
            "array" => {
                self.end()?;
                return Ok(Opened::Scalar(Value::Array(Vec::new())));
            }
            other => {
                return Err(self.err(
                    K::InvalidXmlRpc,
                    format!("unknown type element <{}>", short(other, 20)),
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
        Ok(Opened::Scalar(v))
    }

    /// The general case of [`Parser::open_value`]: text, CDATA and comments up to the
    /// type element, returned with whether it is empty; or, when `</value>` comes first,
    /// `Err` with the text: the value is an untyped string.
    #[allow(clippy::type_complexity)]
    fn type_tag(&mut self) -> Result<Result<(&'a str, bool), String>, ParseError> {
        let mut untyped: Option<Cow<'a, str>> = None;
        loop {
            let (name, empty) = match self.event()? {
                Tok::Text(t) => {
                    let piece = self.unescape(t, true)?;
                    untyped = Some(match untyped {
                        None => piece,
                        Some(prev) => Cow::Owned(prev.into_owned() + &piece),
                    });
                    continue;
                }
                Tok::CData(t) => {
                    let piece = self.unescape(t, false)?;
                    untyped = Some(match untyped {
                        None => piece,
                        Some(prev) => Cow::Owned(prev.into_owned() + &piece),
                    });
                    continue;
                }
                Tok::End => {
                    // `<value>text</value>`: a string.
                    return Ok(Err(untyped.map(Cow::into_owned).unwrap_or_default()));
                }
                Tok::Start(n) => (n, false),
                Tok::Empty(n) => (n, true),
                Tok::Eof => return Err(self.err(K::NotWellFormed, "unexpected end of document")),
                Tok::Decl => return Err(self.err(K::NotWellFormed, "unexpected markup")),
            };
            if untyped
                .as_deref()
                .is_some_and(|s| !s.bytes().all(is_xml_ws))
            {
                return Err(self.err(K::InvalidXmlRpc, "text beside a type element in <value>"));
            }
            return Ok(Ok((name, empty)));
        }
    }

    fn scalar(&self, kind: Scalar, text: Cow<'a, str>, at: usize) -> Result<Value, ParseError> {
        if let Scalar::Str = kind {
            return Ok(Value::String(text.into_owned()));
        }
        let trimmed = trim_xml_ws(&text);
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

/// `s` without XML whitespace at either end.
fn trim_xml_ws(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
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
    // Only the characters XML allows, as written raw (Char in XML 1.0 §2.2): a reference
    // to `\u{1}` or `\u{FFFE}` is as ill-formed as the character itself.
    char::from_u32(u32::from_str_radix(s, radix).ok()?).filter(|&c| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}'
    })
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
    fn the_method_name_is_borrowed_only_when_it_is_the_input() {
        let limits = Limits::default();
        fn name(doc: &[u8]) -> Result<Cow<'_, str>, ParseError> {
            parse_call_borrowed(doc, &Limits::default()).map(|c| c.method_name)
        }
        let plain =
            b"<?xml version='1.0'?>\n<methodCall><methodName>sys.x</methodName></methodCall>";
        match name(plain) {
            Ok(Cow::Borrowed(n)) => {
                assert_eq!(n, "sys.x");
                // A slice of the input itself, where the name is.
                let at = n.as_ptr() as usize - plain.as_ptr() as usize;
                assert_eq!(&plain[at..at + n.len()], b"sys.x");
            }
            other => panic!("{other:?}"),
        }
        // Decoded: an entity, a character reference.
        for doc in [
            &b"<methodCall><methodName>a&amp;b</methodName></methodCall>"[..],
            b"<methodCall><methodName>a&#38;b</methodName></methodCall>",
        ] {
            assert!(matches!(name(doc), Ok(Cow::Owned(n)) if n == "a&b"));
        }
        // Transcoded from ISO-8859-1: the text is not the input.
        let latin = b"<?xml version='1.0' encoding='ISO-8859-1'?><methodCall><methodName>caf\xe9</methodName></methodCall>";
        assert!(matches!(name(latin), Ok(Cow::Owned(n)) if n == "caf\u{e9}"));
        // The owned form is what `parse_call` returns, params and all.
        let doc = b"<methodCall><methodName>m</methodName><params><param><value>v</value></param></params></methodCall>";
        let borrowed = parse_call_borrowed(doc, &limits).map(BorrowedCall::into_owned);
        assert_eq!(borrowed, parse_call(doc, &limits));
    }

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
