//! The writer: [`MethodCall`], values and faults to bytes.
//!
//! Compact output (no indentation), `<string>` always spelled out, integers as `<int>`
//! when they fit in 32 bits and `<i8>` otherwise (koji's rule), `<nil/>` for `Nil`.
//! Text escapes `&`, `<`, `>` and writes `\r` as a character reference, so it survives a
//! round trip. The other control characters (but tab and newline) and the noncharacters
//! U+FFFE and U+FFFF have no spelling in XML 1.0, raw or as a reference, and every other
//! parser (Python's, koji's) refuses the document that holds one: they are written as
//! U+FFFD, the replacement character. Nesting
//! is walked with an explicit stack, so a deep value cannot overflow the call stack.

use base64::Engine as _;

use crate::{Fault, MethodCall, Value};

const DECL: &[u8] = b"<?xml version=\"1.0\"?>\n";

/// Room for the end tags after a scalar (a fault's are the longest: 68 bytes).
const END_TAGS: usize = 128;

/// Makes room for a scalar of `n` bytes. When that takes a new buffer, the buffer also has
/// room for the end tags after it: otherwise a document ending in a big scalar would be
/// moved to a buffer twice its size by its last few bytes, copying it all again.
fn reserve_scalar(out: &mut Vec<u8>, n: usize) {
    if out.capacity() - out.len() < n {
        out.reserve(n.saturating_add(END_TAGS));
    }
}

/// Appends a `<methodCall>` document to `out`.
///
/// ```
/// use hub_xmlrpc::{write_call, MethodCall, Value};
/// let mut out = Vec::new();
/// write_call(&MethodCall::new("echo", vec![Value::from("hello")]), &mut out);
/// assert!(out.ends_with(b"<methodName>echo</methodName><params><param><value><string>hello</string></value></param></params></methodCall>"));
/// ```
pub fn write_call(call: &MethodCall, out: &mut Vec<u8>) {
    out.reserve(DECL.len() + 64 + call.method_name.len() + 48 * call.params.len());
    out.extend_from_slice(DECL);
    out.extend_from_slice(b"<methodCall><methodName>");
    escape(&call.method_name, out);
    out.extend_from_slice(b"</methodName><params>");
    for p in &call.params {
        out.extend_from_slice(b"<param>");
        value(p, out);
        out.extend_from_slice(b"</param>");
    }
    out.extend_from_slice(b"</params></methodCall>");
}

/// Appends a successful `<methodResponse>` carrying `value` to `out`.
pub fn write_response(v: &Value, out: &mut Vec<u8>) {
    out.reserve(DECL.len() + 96);
    out.extend_from_slice(DECL);
    out.extend_from_slice(b"<methodResponse><params><param>");
    value(v, out);
    out.extend_from_slice(b"</param></params></methodResponse>");
}

/// Appends a fault `<methodResponse>` to `out`.
pub fn write_fault(fault: &Fault, out: &mut Vec<u8>) {
    // The head (under 192 bytes), the message and the end tags (68 bytes, within
    // `END_TAGS`): all of it fits, so no escape of the message has to grow the buffer.
    out.reserve(DECL.len() + 192 + fault.message.len() + END_TAGS);
    out.extend_from_slice(DECL);
    out.extend_from_slice(
        b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>",
    );
    out.extend_from_slice(itoa::Buffer::new().format(fault.code).as_bytes());
    out.extend_from_slice(
        b"</int></value></member><member><name>faultString</name><value><string>",
    );
    escape(&fault.message, out);
    out.extend_from_slice(b"</string></value></member></struct></value></fault></methodResponse>");
}

/// Appends a document whose root is one `<value>` (the counterpart of
/// [`parse_value`](crate::parse_value)).
pub fn write_value(v: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(DECL);
    value(v, out);
}

/// One open container while writing.
enum Open<'a> {
    Array(std::slice::Iter<'a, Value>),
    Struct(std::slice::Iter<'a, (crate::MemberName, Value)>),
}

/// Writes `<value>...</value>` for `v`, walking nested containers without recursion.
pub(crate) fn value(v: &Value, out: &mut Vec<u8>) {
    let mut stack: Vec<Open<'_>> = Vec::new();
    let mut cur = v;
    loop {
        match cur {
            Value::Array(items) => {
                out.extend_from_slice(b"<value><array><data>");
                stack.push(Open::Array(items.iter()));
            }
            Value::Struct(s) => {
                out.extend_from_slice(b"<value><struct>");
                stack.push(Open::Struct(s.iter()));
            }
            scalar => {
                out.extend_from_slice(b"<value>");
                write_scalar(scalar, out);
                out.extend_from_slice(b"</value>");
                if let Some(Open::Struct(_)) = stack.last() {
                    out.extend_from_slice(b"</member>");
                }
            }
        }
        // Find the next value to write, closing the containers that are done.
        loop {
            let Some(top) = stack.last_mut() else { return };
            match top {
                Open::Array(it) => {
                    if let Some(v) = it.next() {
                        cur = v;
                        break;
                    }
                }
                Open::Struct(it) => {
                    if let Some((name, v)) = it.next() {
                        out.extend_from_slice(b"<member><name>");
                        escape(name, out);
                        out.extend_from_slice(b"</name>");
                        cur = v;
                        break;
                    }
                }
            }
            match stack.pop() {
                Some(Open::Array(_)) => out.extend_from_slice(b"</data></array></value>"),
                _ => out.extend_from_slice(b"</struct></value>"),
            }
            if let Some(Open::Struct(_)) = stack.last() {
                out.extend_from_slice(b"</member>");
            }
        }
    }
}

fn write_scalar(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Int(i) => {
            let mut buf = itoa::Buffer::new();
            if i32::try_from(*i).is_ok() {
                out.extend_from_slice(b"<int>");
                out.extend_from_slice(buf.format(*i).as_bytes());
                out.extend_from_slice(b"</int>");
            } else {
                out.extend_from_slice(b"<i8>");
                out.extend_from_slice(buf.format(*i).as_bytes());
                out.extend_from_slice(b"</i8>");
            }
        }
        Value::Bool(b) => out.extend_from_slice(if *b {
            b"<boolean>1</boolean>"
        } else {
            b"<boolean>0</boolean>"
        }),
        Value::String(s) => {
            out.extend_from_slice(b"<string>");
            escape(s, out);
            out.extend_from_slice(b"</string>");
        }
        Value::Double(d) => {
            out.extend_from_slice(b"<double>");
            write_double(*d, out);
            out.extend_from_slice(b"</double>");
        }
        Value::DateTime(dt) => {
            let mut buf = [0u8; 40];
            let n = dt.write_to(&mut buf);
            out.extend_from_slice(b"<dateTime.iso8601>");
            out.extend_from_slice(&buf[..n]);
            out.extend_from_slice(b"</dateTime.iso8601>");
        }
        Value::Base64(bytes) => {
            out.extend_from_slice(b"<base64>");
            let start = out.len();
            let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
            reserve_scalar(out, len);
            out.resize(start + len, 0);
            let n = base64::engine::general_purpose::STANDARD
                .encode_slice(bytes, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + n);
            out.extend_from_slice(b"</base64>");
        }
        Value::Nil => out.extend_from_slice(b"<nil/>"),
        Value::Array(_) | Value::Struct(_) => {}
    }
}

fn write_double(d: f64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    if d.is_finite() && d.fract() == 0.0 && d.abs() < 1e15 {
        // Integral: `1.0`, as Python's repr writes it.
        let _ = write!(out, "{d:.1}");
    } else {
        // Shortest representation that reads back to the same bits.
        let _ = write!(out, "{d}");
    }
}

/// Escapes text content: `&`, `<`, `>`, `\r` (as a character reference), and the control
/// characters and noncharacters XML cannot carry (as U+FFFD: see the module docs).
#[inline]
pub(crate) fn escape(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    // Most strings of an answer are short names and values with nothing to escape: one or two
    // overlapping words say so, and the string is copied in fixed-size moves. The rest is out
    // of line, so this part is cheap to inline.
    if crate::swar::short_is_plain(bytes) {
        push_short(bytes, out);
    } else {
        escape_long(bytes, out);
    }
}

/// Appends `b` (at most 16 bytes) with fixed-size copies, first and last bytes overlapping:
/// a copy of a variable length is a call to `memcpy`, as much as the rest of a short string.
#[inline(always)]
fn push_short(b: &[u8], out: &mut Vec<u8>) {
    let (at, n) = (out.len(), b.len());
    debug_assert!(n <= 16, "push_short takes at most 16 bytes");
    out.extend_from_slice(&[0; 16]);
    let dst = out.get_mut(at..at + n).unwrap_or_default();
    match (b.first_chunk::<8>(), b.last_chunk::<8>()) {
        (Some(first), Some(last)) => copy_ends(dst, first, last),
        _ => match (b.first_chunk::<4>(), b.last_chunk::<4>()) {
            (Some(first), Some(last)) => copy_ends(dst, first, last),
            _ => {
                for (d, s) in dst.iter_mut().zip(b) {
                    *d = *s;
                }
            }
        },
    }
    out.truncate(at + n);
}

/// Writes `first` at the start of `dst` and `last` at its end (they overlap when `dst` is
/// shorter than both together).
#[inline(always)]
fn copy_ends<const K: usize>(dst: &mut [u8], first: &[u8; K], last: &[u8; K]) {
    if let Some(d) = dst.first_chunk_mut::<K>() {
        *d = *first;
    }
    if let Some(d) = dst.last_chunk_mut::<K>() {
        *d = *last;
    }
}

/// [`escape`] for text longer than 16 bytes or with something to escape.
#[inline(never)]
fn escape_long(bytes: &[u8], out: &mut Vec<u8>) {
    use crate::swar::{
        block_needs_escape, block_step, needs_escape, tail_word, word, NONCHAR_LEAD, WORDS_FIRST,
    };
    reserve_scalar(out, bytes.len());
    let mut start = 0;
    let mut i = 0;
    // Word steps up to here; past it, block steps while there is nothing to escape (short
    // strings, most of an answer's, never pay for a block).
    let mut words_until = WORDS_FIRST;
    while i < bytes.len() {
        if let Some(next) = block_step(bytes, i, &mut words_until, block_needs_escape) {
            i = next;
            continue;
        }
        // A word with nothing to escape is skipped whole; any other goes through the byte
        // step, the whole word (tab and newline count as controls here and are let through).
        // The last few bytes are tested as one word too, padded with a plain letter: most
        // strings in an answer are short names and values.
        let x = word(bytes, i).unwrap_or_else(|| tail_word(bytes, i, b'a'));
        let stop = (i + 8).min(bytes.len());
        if !needs_escape(x) {
            i = stop;
            continue;
        }
        while i < stop {
            let b = bytes[i];
            let (rep, len): (&[u8], usize) = match b {
                b'&' => (b"&amp;", 1),
                b'<' => (b"&lt;", 1),
                b'>' => (b"&gt;", 1),
                b'\t' | b'\n' => {
                    i += 1;
                    continue;
                }
                b'\r' => (b"&#13;", 1),
                0..=0x1f => ("\u{FFFD}".as_bytes(), 1),
                NONCHAR_LEAD if matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])) => {
                    ("\u{FFFD}".as_bytes(), 3)
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(rep);
            i += len;
            start = i;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::escape;

    /// The byte-at-a-time rule `escape` must match.
    fn reference(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for c in s.chars() {
            match c {
                '&' => out.extend_from_slice(b"&amp;"),
                '<' => out.extend_from_slice(b"&lt;"),
                '>' => out.extend_from_slice(b"&gt;"),
                '\t' | '\n' => out.push(c as u8),
                '\r' => out.extend_from_slice(b"&#13;"),
                '\0'..='\u{1f}' | '\u{FFFE}' | '\u{FFFF}' => {
                    out.extend_from_slice("\u{FFFD}".as_bytes());
                }
                _ => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        out
    }

    #[test]
    fn a_document_ending_in_a_big_scalar_is_not_moved_by_its_end_tags() {
        use crate::{write_fault, write_response, Fault, Value};
        let big = "x".repeat(1 << 20);
        for what in ["string", "base64", "fault"] {
            let mut out = Vec::new();
            match what {
                "string" => write_response(&Value::from(big.as_str()), &mut out),
                "base64" => write_response(&Value::Base64(big.clone().into_bytes()), &mut out),
                _ => write_fault(&Fault::new(1, big.clone()), &mut out),
            }
            // Grown once for the scalar and what follows it; a growth for the end tags would
            // have doubled the buffer (and copied the whole document).
            let (cap, len) = (out.capacity(), out.len());
            assert!(cap < len + 256, "{what}: capacity {cap} for {len} bytes");
        }
    }

    #[test]
    fn members_and_items_are_spelled_out_exactly() {
        use crate::{Struct, Value};
        let mut inner = Struct::new();
        inner.insert("n", Value::Nil);
        inner.insert("b", Value::Base64(b"hi".to_vec()));
        let mut s = Struct::new();
        s.insert("i", 7);
        s.insert("big", Value::Int(1 << 40));
        s.insert("t", true);
        s.insert("x", "a<b");
        s.insert("d", 0.5);
        s.insert(
            "list",
            Value::Array(vec![Value::Nil, Value::from("e"), Value::Array(vec![])]),
        );
        s.insert("inner", Value::Struct(inner));
        s.insert("empty", Value::Struct(Struct::new()));
        let mut out = Vec::new();
        super::value(
            &Value::Array(vec![Value::Struct(s), Value::Int(-1)]),
            &mut out,
        );
        let member = |name: &str, value: &str| {
            format!("<member><name>{name}</name><value>{value}</value></member>")
        };
        let expected = format!(
            "<value><array><data><value><struct>{}{}{}{}{}{}{}{}</struct></value><value><int>-1</int></value></data></array></value>",
            member("i", "<int>7</int>"),
            member("big", "<i8>1099511627776</i8>"),
            member("t", "<boolean>1</boolean>"),
            member("x", "<string>a&lt;b</string>"),
            member("d", "<double>0.5</double>"),
            member(
                "list",
                "<array><data><value><nil/></value><value><string>e</string></value><value><array><data></data></array></value></data></array>"
            ),
            member(
                "inner",
                &format!("<struct>{}{}</struct>", member("n", "<nil/>"), member("b", "<base64>aGk=</base64>"))
            ),
            member("empty", "<struct></struct>"),
        );
        assert_eq!(String::from_utf8_lossy(&out), expected);
    }

    #[test]
    fn short_strings_escape_every_byte_at_every_position() {
        // The short path (up to 16 bytes: overlapping words, fixed-size copies), appended after
        // text already in the buffer, against the byte rule; 17 bytes takes the long path.
        for len in 1..=17 {
            for at in 0..len {
                for b in 0u8..=0x7f {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = b;
                    let s = std::str::from_utf8(&bytes).expect("ASCII");
                    let mut out = b"<string>".to_vec();
                    escape(s, &mut out);
                    let mut expected = b"<string>".to_vec();
                    expected.extend(reference(s));
                    assert_eq!(out, expected, "{s:?}");
                }
            }
        }
        for s in [
            "",
            "é",
            "ééééé",
            "日本語のテキスト",
            "\u{1F600}x",
            "\u{FFFF}",
            "a\u{FFFE}b",
            "\u{FFFD}\u{FEFF}\u{F8FF}",
            "xxxxxxxxxxxxx\u{FFFF}",
        ] {
            let mut out = b"<".to_vec();
            escape(s, &mut out);
            assert_eq!(out[1..], reference(s)[..], "{s:?}");
        }
    }

    #[test]
    fn word_steps_escape_as_the_byte_rule_does() {
        // Every special byte at every offset of strings around the word size, and runs.
        let specials = [
            "&",
            "<",
            ">",
            "\t",
            "\n",
            "\r",
            "\u{1}",
            "é",
            "\u{1F600}",
            "\u{FFFE}",
            "\u{FFFF}",
            "\u{FFFD}",
            "\u{F000}",
            "\u{FEFF}",
        ];
        for len in (0..24).chain([31, 32, 33, 40, 63, 64, 65, 79, 80, 81, 97, 150, 213]) {
            for at in 0..len {
                for sp in specials {
                    let s: String = (0..len)
                        .map(|i| {
                            if i == at {
                                sp.to_owned()
                            } else {
                                "x".to_owned()
                            }
                        })
                        .collect();
                    let mut out = Vec::new();
                    escape(&s, &mut out);
                    assert_eq!(out, reference(&s), "{s:?}");
                }
            }
        }
        let long = "plain text, then <b>&amp;</b>\r\n\u{7}é and more plain text ".repeat(50);
        let mut out = Vec::new();
        escape(&long, &mut out);
        assert_eq!(out, reference(&long));
    }
}
