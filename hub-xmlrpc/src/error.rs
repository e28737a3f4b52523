//! The errors of the codec: [`ParseError`] (bytes to values), [`EncodeError`]
//! (Rust to values) and [`DecodeError`] (values to Rust).

use std::fmt;

/// What kind of problem a [`ParseError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The document is larger than [`Limits::max_size`](crate::Limits::max_size).
    TooLarge,
    /// Arrays and structs nest deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    TooDeep,
    /// The document has a `<!DOCTYPE`: refused (no DTD processing, ever).
    Doctype,
    /// An entity reference other than the five predefined ones (`&amp;` `&lt;` `&gt;`
    /// `&quot;` `&apos;`) and character references.
    EntityRefused,
    /// The bytes are not UTF-8 (or, in a document declaring `encoding="US-ASCII"`, a byte
    /// is not ASCII).
    InvalidUtf8,
    /// The XML declaration names an encoding other than UTF-8, US-ASCII and ISO-8859-1
    /// (or contradicts a UTF-8 byte-order mark).
    UnsupportedEncoding,
    /// Not well-formed XML: bad syntax, mismatched or unclosed tags, truncation,
    /// characters XML forbids (such as NUL).
    NotWellFormed,
    /// Well-formed XML that is not XML-RPC: unknown or misplaced element, text where
    /// none belongs, missing `methodName`, content after the root element.
    InvalidXmlRpc,
    /// A scalar whose text does not fit its type (`<int>x</int>`, `<boolean>2</boolean>`,
    /// bad base64 or dateTime).
    InvalidValue,
    /// An integer beyond 64 bits; the message names it (cut short).
    IntegerOverflow,
}

impl ParseErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ParseErrorKind::TooLarge => "document too large",
            ParseErrorKind::TooDeep => "nesting too deep",
            ParseErrorKind::Doctype => "DOCTYPE refused",
            ParseErrorKind::EntityRefused => "entity refused",
            ParseErrorKind::InvalidUtf8 => "invalid UTF-8",
            ParseErrorKind::UnsupportedEncoding => "unsupported encoding",
            ParseErrorKind::NotWellFormed => "not well-formed XML",
            ParseErrorKind::InvalidXmlRpc => "invalid XML-RPC",
            ParseErrorKind::InvalidValue => "invalid value",
            ParseErrorKind::IntegerOverflow => "integer overflow",
        }
    }
}

/// Why a document could not be parsed.
///
/// Its `Display` names the kind, the byte offset, a detail, and quotes at most
/// [`EXCERPT_MAX`] characters of the input near the offset — never the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    kind: ParseErrorKind,
    offset: usize,
    detail: String,
    excerpt: String,
}

/// The most characters of the input a [`ParseError`] quotes.
pub const EXCERPT_MAX: usize = 40;

/// Cuts `s` to at most `max` characters, marking the cut with `...`.
pub(crate) fn short(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}...", &s[..i]),
    }
}

impl ParseError {
    pub(crate) fn new(
        kind: ParseErrorKind,
        input: &[u8],
        offset: usize,
        detail: impl Into<String>,
    ) -> Self {
        let offset = offset.min(input.len());
        let end = (offset + EXCERPT_MAX).min(input.len());
        let raw = String::from_utf8_lossy(&input[offset..end]);
        ParseError {
            kind,
            offset,
            detail: detail.into(),
            excerpt: short(&raw, EXCERPT_MAX),
        }
    }

    /// The kind of problem.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// The byte offset in the input where the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// `true` if the bytes are not acceptable XML at all (the server answers fault
    /// -32700, "parse error. not well formed"): syntax errors, DOCTYPE, refused
    /// entities, invalid UTF-8, size limit. `false` if the XML is well-formed but not
    /// valid XML-RPC, including nesting past the depth limit (fault -32600).
    pub fn is_not_well_formed(&self) -> bool {
        matches!(
            self.kind,
            ParseErrorKind::TooLarge
                | ParseErrorKind::Doctype
                | ParseErrorKind::EntityRefused
                | ParseErrorKind::InvalidUtf8
                | ParseErrorKind::UnsupportedEncoding
                | ParseErrorKind::NotWellFormed
        )
    }

    /// The conventional XML-RPC fault code for this error (the "specification for fault
    /// code interoperability"): -32700 not well formed, -32701 unsupported encoding,
    /// -32702 invalid character for encoding, -32600 invalid XML-RPC.
    pub fn fault_code(&self) -> i32 {
        match self.kind {
            ParseErrorKind::UnsupportedEncoding => -32701,
            ParseErrorKind::InvalidUtf8 => -32702,
            _ if self.is_not_well_formed() => -32700,
            _ => -32600,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind.describe(), self.offset)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if !self.excerpt.is_empty() {
            write!(f, " (near {:?})", self.excerpt)?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// Why a Rust value could not become a [`Value`](crate::Value) (e.g. a `u64` above
/// `i64::MAX`, a map with non-string keys), and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    path: Vec<PathSegment>,
    message: String,
}

impl EncodeError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        EncodeError {
            path: Vec::new(),
            message: message.into(),
        }
    }

    /// Prefixes the path with `segment` (a member name or an index).
    pub fn at(mut self, segment: impl Into<PathSegment>) -> Self {
        self.path.insert(0, segment.into());
        self
    }

    /// The message without the path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", path_string(&self.path), self.message)
        }
    }
}

impl std::error::Error for EncodeError {}

impl serde::ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError::new(msg.to_string())
    }
}

fn path_string(path: &[PathSegment]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSegment::Field(name) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(name);
            }
            PathSegment::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

/// One step of a [`DecodeError`]'s path: a struct member or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A struct member (or a root name such as `params`).
    Field(String),
    /// An array element.
    Index(usize),
}

impl From<&str> for PathSegment {
    fn from(s: &str) -> Self {
        PathSegment::Field(s.to_owned())
    }
}
impl From<String> for PathSegment {
    fn from(s: String) -> Self {
        PathSegment::Field(s)
    }
}
impl From<&String> for PathSegment {
    fn from(s: &String) -> Self {
        PathSegment::Field(s.clone())
    }
}
impl From<usize> for PathSegment {
    fn from(i: usize) -> Self {
        PathSegment::Index(i)
    }
}

/// Why a [`Value`](crate::Value) could not become the Rust type asked for, and where.
///
/// ```
/// use hub_xmlrpc::{from_value, Value, Struct};
/// #[derive(Debug, serde::Deserialize)]
/// struct Owner { name: i32 }
/// #[derive(Debug, serde::Deserialize)]
/// struct Pkg { owner: Owner }
/// let v = Value::Struct([("owner".to_string(), Value::Struct(
///     [("name".to_string(), Value::from("x"))].into_iter().collect()))].into_iter().collect());
/// let err = from_value::<Pkg>(v).unwrap_err().in_param(1);
/// assert_eq!(err.to_string(), r#"params[1].owner.name: expected int, found string "x""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Outermost first.
    path: Vec<PathSegment>,
    message: String,
}

impl DecodeError {
    /// An error with this message and an empty path.
    pub fn new(message: impl Into<String>) -> Self {
        DecodeError {
            path: Vec::new(),
            message: message.into(),
        }
    }

    /// Prefixes the path with `segment` (a member name or an index): call it while
    /// unwinding, innermost first.
    pub fn at(mut self, segment: impl Into<PathSegment>) -> Self {
        self.path.insert(0, segment.into());
        self
    }

    /// Prefixes the path with `params[index]`: the error is about the call's parameter `index`.
    pub fn in_param(self, index: usize) -> Self {
        self.at(index).at("params")
    }

    /// The path, outermost first.
    pub fn path(&self) -> &[PathSegment] {
        &self.path
    }

    /// The message without the path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The path as text, like `params[1].owner.name` (empty if none).
    pub fn path_string(&self) -> String {
        path_string(&self.path)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path_string(), self.message)
        }
    }
}

impl std::error::Error for DecodeError {}

impl serde::de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError::new(msg.to_string())
    }

    fn invalid_type(unexp: serde::de::Unexpected<'_>, exp: &dyn serde::de::Expected) -> Self {
        DecodeError::new(format!(
            "expected {exp}, found {}",
            crate::de::describe_unexpected(&unexp)
        ))
    }

    fn invalid_value(unexp: serde::de::Unexpected<'_>, exp: &dyn serde::de::Expected) -> Self {
        DecodeError::new(format!(
            "invalid value {}, expected {exp}",
            crate::de::describe_unexpected(&unexp)
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        DecodeError::new("missing member").at(field)
    }
}
