//! The XML tokenizer under the parser: the subset of XML 1.0 that XML-RPC documents use,
//! over text already validated as UTF-8.
//!
//! It hands out borrowed slices of the input: start, empty and end tags (end tags checked
//! against the innermost open element), character data, CDATA sections and the XML
//! declaration. Comments and processing instructions are skipped (a comment holding `--`
//! is refused). `<!DOCTYPE` is refused outright, as is any other `<!` markup: no DTD,
//! no entity declarations, ever. Attributes are skipped (quotes respected, `<` refused);
//! XML-RPC has none. Text is returned raw: references and forbidden characters are the
//! parser's business.
//!
//! Besides [`Lexer::next_tok`], shortcuts take what the parser expects next when it is
//! written plainly (`<value>`, the innermost end tag, text up to its end tag) without
//! building tokens; when they decline, `next_tok` reads the same input as before.

use crate::swar::{block_has_text_work, block_step, text_ends_plain, text_work_or_lt, WORDS_FIRST};
use crate::ParseErrorKind;

/// One token.
#[derive(Debug)]
pub(crate) enum Tok<'a> {
    /// `<?xml ...?>` (its content, without `<?` and `?>`).
    Decl,
    /// `<name ...>`.
    Start(&'a str),
    /// `<name .../>`.
    Empty(&'a str),
    /// `</name>`, matching the innermost open element.
    End,
    /// Character data, raw (up to the next `<`).
    Text(&'a str),
    /// The content of `<![CDATA[...]]>`.
    CData(&'a str),
    /// The end of the input.
    Eof,
}

/// A tokenizing error: kind, byte offset, detail.
pub(crate) struct LexError {
    pub(crate) kind: ParseErrorKind,
    pub(crate) at: usize,
    pub(crate) detail: &'static str,
}

fn bad(at: usize, detail: &'static str) -> LexError {
    LexError {
        kind: ParseErrorKind::NotWellFormed,
        at,
        detail,
    }
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Byte classes, one table lookup per byte in the scanning loops.
const WS: u8 = 1;
/// Ends an element name: `>`, `/` or whitespace.
const NAME_END: u8 = 2;
/// Refused in an element name.
const NAME_BAD: u8 = 4;
/// Character data the parser has to look at: `&` (a reference) or a control character
/// (`\r` is normalised, the others are refused); see `read::needs_work`.
const TEXT_WORK: u8 = 8;
/// `<`: ends character data.
const LT: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = TEXT_WORK;
        c += 1;
    }
    t[b'\t' as usize] = WS | NAME_END;
    t[b'\n' as usize] = WS | NAME_END;
    t[b'\r' as usize] = WS | NAME_END | TEXT_WORK;
    t[b' ' as usize] = WS | NAME_END;
    t[b'>' as usize] = NAME_END;
    t[b'/' as usize] = NAME_END;
    t[b'<' as usize] = NAME_BAD | LT;
    t[b'&' as usize] = NAME_BAD | TEXT_WORK;
    t[b'"' as usize] = NAME_BAD;
    t[b'\'' as usize] = NAME_BAD;
    t[b'=' as usize] = NAME_BAD;
    t
};

#[inline]
fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

/// How many open elements are kept without a heap allocation: deeper than any ordinary
/// XML-RPC document (a struct of arrays of structs is 14 deep).
const INLINE: usize = 16;

/// The names of the open elements, innermost last: inline up to [`INLINE`] deep, on the
/// heap beyond (so a typical parse allocates nothing for it).
struct Open<'a> {
    inline: [&'a str; INLINE],
    len: usize,
    spill: Vec<&'a str>,
}

impl<'a> Open<'a> {
    #[inline]
    fn push(&mut self, name: &'a str) {
        if self.len < INLINE {
            self.inline[self.len] = name;
        } else {
            self.spill.push(name);
        }
        self.len += 1;
    }

    #[inline]
    fn pop(&mut self) -> Option<&'a str> {
        let top = self.top()?;
        self.len -= 1;
        if self.len >= INLINE {
            self.spill.pop();
        }
        Some(top)
    }

    #[inline]
    fn top(&self) -> Option<&'a str> {
        match self.len {
            0 => None,
            n if n <= INLINE => Some(self.inline[n - 1]),
            _ => self.spill.last().copied(),
        }
    }
}

pub(crate) struct Lexer<'a> {
    s: &'a str,
    /// Where the next token starts.
    pub(crate) pos: usize,
    /// Names of the open elements, innermost last.
    open: Open<'a>,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(s: &'a str, pos: usize) -> Self {
        Lexer {
            s,
            pos,
            open: Open {
                inline: [""; INLINE],
                len: 0,
                spill: Vec::new(),
            },
        }
    }

    /// The next token. Comments and processing instructions are skipped.
    pub(crate) fn next_tok(&mut self) -> Result<Tok<'a>, LexError> {
        let s = self.s;
        let b = s.as_bytes();
        loop {
            let start = self.pos;
            let Some(&first) = b.get(start) else {
                return Ok(Tok::Eof);
            };
            if first != b'<' {
                let end = find_byte(b, b'<', start).unwrap_or(b.len());
                self.pos = end;
                return Ok(Tok::Text(&s[start..end]));
            }
            match b.get(start + 1) {
                Some(b'/') => {
                    let gt = find_byte(b, b'>', start + 2)
                        .ok_or_else(|| bad(start, "unclosed end tag"))?;
                    let raw = &s[start + 2..gt];
                    let name = raw.trim_end_matches([' ', '\t', '\n', '\r']);
                    if name.contains('<') {
                        return Err(bad(start, "'<' inside an end tag"));
                    }
                    return match self.open.pop() {
                        Some(open) if open == name => {
                            self.pos = gt + 1;
                            Ok(Tok::End)
                        }
                        Some(_) => Err(bad(start, "end tag does not match the open element")),
                        None => Err(bad(start, "end tag without a start tag")),
                    };
                }
                Some(b'!') => {
                    let rest = &b[start + 2..];
                    if rest.starts_with(b"--") {
                        let body = start + 4;
                        let dashes = find_pair(b, body, *b"--")
                            .ok_or_else(|| bad(start, "unclosed comment"))?;
                        if b.get(dashes + 2) != Some(&b'>') {
                            return Err(bad(dashes, "'--' inside a comment"));
                        }
                        self.pos = dashes + 3;
                        continue;
                    }
                    if rest.starts_with(b"[CDATA[") {
                        let body = start + 9;
                        let close = find_cdata_end(b, body)
                            .ok_or_else(|| bad(start, "unclosed CDATA section"))?;
                        self.pos = close + 3;
                        return Ok(Tok::CData(&s[body..close]));
                    }
                    if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case(b"DOCTYPE") {
                        return Err(LexError {
                            kind: ParseErrorKind::Doctype,
                            at: start,
                            detail: "",
                        });
                    }
                    return Err(bad(start, "markup declarations are not allowed"));
                }
                Some(b'?') => {
                    let close = find_pair(b, start + 2, *b"?>")
                        .ok_or_else(|| bad(start, "unclosed processing instruction"))?;
                    let body = &b[start + 2..close];
                    let target_len = body.iter().position(|&c| is_ws(c)).unwrap_or(body.len());
                    self.pos = close + 2;
                    match &body[..target_len] {
                        [] => return Err(bad(start, "processing instruction without a target")),
                        t if t.eq_ignore_ascii_case(b"xml") => return Ok(Tok::Decl),
                        _ => continue,
                    }
                }
                _ => {
                    let name_start = start + 1;
                    let mut i = name_start;
                    while let Some(&c) = b.get(i) {
                        let k = class(c);
                        if k & (NAME_END | NAME_BAD) != 0 {
                            if k & NAME_BAD != 0 {
                                return Err(bad(start, "bad character in an element name"));
                            }
                            break;
                        }
                        i += 1;
                    }
                    if i == name_start {
                        return Err(bad(start, "'<' not followed by an element name"));
                    }
                    let name_end = i;
                    let name = &s[name_start..name_end];
                    // The usual case: `>` right after the name.
                    if b.get(i) == Some(&b'>') {
                        self.pos = i + 1;
                        self.open.push(name);
                        return Ok(Tok::Start(name));
                    }
                    // Skip attributes (XML-RPC has none, but they are legal XML), up to '>'.
                    let mut quote = 0u8;
                    loop {
                        let Some(&c) = b.get(i) else {
                            return Err(bad(start, "unclosed tag"));
                        };
                        if c == b'<' {
                            return Err(bad(i, "'<' inside a tag"));
                        }
                        if quote != 0 {
                            if c == quote {
                                quote = 0;
                            }
                        } else if c == b'"' || c == b'\'' {
                            quote = c;
                        } else if c == b'>' {
                            break;
                        }
                        i += 1;
                    }
                    self.pos = i + 1;
                    if b[i - 1] == b'/' && quote == 0 && i > name_end {
                        return Ok(Tok::Empty(name));
                    }
                    self.open.push(name);
                    return Ok(Tok::Start(name));
                }
            }
        }
    }

    // Shortcuts for what the parser expects next. Each consumes input only when it finds
    // exactly the tokens `next_tok` would have returned there (a whitespace-only text
    // token being one the parser skips), so falling back to `next_tok` when they decline
    // changes nothing: same results, same errors, same offsets.

    /// Where the next token starts once whitespace is skipped.
    #[inline]
    fn after_ws(&self) -> usize {
        let b = self.s.as_bytes();
        let mut i = self.pos;
        while i < b.len() && class(b[i]) & WS != 0 {
            i += 1;
        }
        i
    }

    /// Consumes `<name>` (whitespace before it skipped) if that comes next, and returns
    /// where it starts.
    #[inline]
    pub(crate) fn eat_start(&mut self, name: &'static str) -> Option<usize> {
        let at = self.after_ws();
        let n = name.len();
        let tag = self.s.as_bytes().get(at..at + n + 2)?;
        if tag[0] == b'<' && &tag[1..=n] == name.as_bytes() && tag[n + 1] == b'>' {
            self.open.push(name);
            self.pos = at + n + 2;
            Some(at)
        } else {
            None
        }
    }

    /// Consumes the innermost open element's end tag, written `</name>` (whitespace before
    /// it skipped), if that comes next, and returns where it starts.
    #[inline]
    pub(crate) fn eat_end(&mut self) -> Option<usize> {
        let at = self.after_ws();
        self.end_at(at)
    }

    #[inline(always)]
    fn end_at(&mut self, at: usize) -> Option<usize> {
        let top = self.open.top()?.as_bytes();
        let n = top.len();
        let tag = self.s.as_bytes().get(at..at + n + 3)?;
        if tag[0] == b'<' && tag[1] == b'/' && tag[n + 2] == b'>' && same(&tag[2..n + 2], top) {
            self.open.pop();
            self.pos = at + n + 3;
            Some(at)
        } else {
            None
        }
    }

    /// Consumes a start tag written `<name>`, or an empty one written `<name/>`
    /// (whitespace before it skipped), if that comes next, and returns its name, where it
    /// starts and whether it is empty.
    #[inline]
    pub(crate) fn eat_start_any(&mut self) -> Option<(&'a str, usize, bool)> {
        let b = self.s.as_bytes();
        let at = self.after_ws();
        if *b.get(at)? != b'<' || matches!(b.get(at + 1)?, b'!' | b'?') {
            return None;
        }
        let mut i = at + 1;
        while class(*b.get(i)?) & (NAME_END | NAME_BAD) == 0 {
            i += 1;
        }
        if i == at + 1 {
            return None;
        }
        let name = &self.s[at + 1..i];
        match b[i] {
            b'>' => {
                self.open.push(name);
                self.pos = i + 1;
                Some((name, at, false))
            }
            b'/' if b.get(i + 1) == Some(&b'>') => {
                self.pos = i + 2;
                Some((name, at, true))
            }
            _ => None,
        }
    }

    /// Consumes character data and the innermost open element's end tag right after it,
    /// written `</name>`, if that comes next. Returns the raw text, where the end tag
    /// starts, and whether the text is plain (needs no unescaping or checking).
    #[inline(always)]
    pub(crate) fn text_then_end(&mut self) -> Option<(&'a str, usize, bool)> {
        let s = self.s;
        let b = s.as_bytes();
        let start = self.pos;
        let mut i = start;
        let mut seen = 0;
        // Word steps up to here; past it, block steps while the text stays plain. Most text
        // is a short name or value that ends within a word or two: it never pays for a block.
        let mut words_until = start + WORDS_FIRST;
        'scan: loop {
            if let Some(next) = block_step(b, i, &mut words_until, block_has_text_work) {
                i = next;
                continue;
            }
            // Plain text a word at a time. A word in which the text ends plainly (most short
            // text: `hello</s`) ends the scan at its `<`; any other word holding `<`, `&` or a
            // control character (tab and newline included) goes through the exact byte step,
            // the whole word.
            let stop = match crate::swar::word(b, i) {
                Some(x) if !text_work_or_lt(x) => {
                    i += 8;
                    continue;
                }
                Some(x) => match text_ends_plain(x) {
                    Some(n) => {
                        i += n;
                        break 'scan;
                    }
                    None => i + 8,
                },
                None => usize::MAX,
            };
            while i < stop {
                let k = class(*b.get(i)?);
                if k & LT != 0 {
                    break 'scan;
                }
                seen |= k;
                i += 1;
            }
        }
        let at = self.end_at(i)?;
        Some((&s[start..at], at, seen & TEXT_WORK == 0))
    }

    /// Consumes trailing whitespace; `true` if the input ends there.
    #[inline]
    pub(crate) fn eat_ws_to_eof(&mut self) -> bool {
        let at = self.after_ws();
        if at == self.s.len() {
            self.pos = at;
            true
        } else {
            false
        }
    }
}

/// Equality of two names: they are short, and two overlapping word compares beat
/// calling `memcmp`.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=8 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        9..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

#[inline(always)]
fn word4(s: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

#[inline(always)]
fn word8(s: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

#[inline]
fn find_byte(b: &[u8], needle: u8, from: usize) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|&c| c == needle)
        .map(|i| i + from)
}

/// The first occurrence of the two bytes `pair` at or after `from`.
fn find_pair(b: &[u8], mut from: usize, pair: [u8; 2]) -> Option<usize> {
    loop {
        let i = find_byte(b, pair[0], from)?;
        if b.get(i + 1) == Some(&pair[1]) {
            return Some(i);
        }
        from = i + 1;
    }
}

/// The first `]]>` at or after `from`.
fn find_cdata_end(b: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let i = find_pair(b, from, *b"]]")?;
        if b.get(i + 2) == Some(&b'>') {
            return Some(i);
        }
        from = i + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Result<Vec<String>, (ParseErrorKind, usize)> {
        let mut l = Lexer::new(s, 0);
        let mut out = Vec::new();
        loop {
            match l.next_tok() {
                Ok(Tok::Eof) => return Ok(out),
                Ok(t) => out.push(format!("{t:?}")),
                Err(e) => return Err((e.kind, e.at)),
            }
        }
    }

    #[test]
    fn tokens() {
        assert_eq!(
            toks("<?xml version=\"1.0\"?><!-- c --><a x='>' y=\"/\"><b/>t<![CDATA[<&]]></a >")
                .unwrap_or_default(),
            [
                "Decl",
                "Start(\"a\")",
                "Empty(\"b\")",
                "Text(\"t\")",
                "CData(\"<&\")",
                "End"
            ]
        );
        assert_eq!(toks("<?pi x?><a/>").unwrap_or_default(), ["Empty(\"a\")"]);
        assert_eq!(toks("<!---->").unwrap_or_default(), Vec::<String>::new());
    }

    #[test]
    fn text_scan_finds_the_end_and_the_work_at_every_offset() {
        // The block and word steps must stop at `<` and flag `&`/controls wherever they sit.
        for len in (0..20).chain([31, 32, 33, 63, 64, 65, 79, 80, 81, 100, 150, 213]) {
            for at in 0..len {
                for (special, plain) in [
                    ("&", false),
                    ("\r", false),
                    ("\u{1}", false),
                    ("\t", true),
                    ("\n", true),
                    ("é", true),
                ] {
                    let text: String = (0..len)
                        .map(|i| if i == at { special } else { "y" })
                        .collect();
                    let doc = format!("<s>{text}</s>tail");
                    let mut l = Lexer::new(&doc, 0);
                    assert_eq!(l.eat_start("s"), Some(0));
                    let got = l.text_then_end().map(|t| (t.0.to_owned(), t.2));
                    assert_eq!(got, Some((text.clone(), plain)), "{doc:?}");
                    assert_eq!(&doc[l.pos..], "tail", "{doc:?}");
                }
            }
        }
    }

    #[test]
    fn shortcuts_take_only_what_next_tok_would() {
        let mut l = Lexer::new(" \n<value><nil/>t&amp;</value>\n", 0);
        assert_eq!(l.eat_start("param"), None);
        assert_eq!(l.eat_end(), None);
        assert_eq!(l.pos, 0);
        assert_eq!(l.eat_start("value"), Some(2));
        assert_eq!(l.eat_start_any().map(|t| (t.0, t.2)), Some(("nil", true)));
        assert_eq!(
            l.text_then_end().map(|t| (t.0, t.2)),
            Some(("t&amp;", false))
        );
        assert!(l.eat_ws_to_eof());
        // Anything else is left to next_tok, untouched.
        for doc in [
            "<value a='1'>",
            "<value >",
            "<value/>",
            "<!-- c --><value>",
            "<?pi?><value>",
            " x<value>",
            "<valuex>",
        ] {
            let mut l = Lexer::new(doc, 0);
            assert_eq!(l.eat_start("value"), None, "{doc}");
            assert_eq!(l.pos, 0, "{doc}");
        }
        for doc in [
            "<a></a >",
            "<a></b>",
            "<a>x<!-- c --></a>",
            "<a>x",
            "<a><![CDATA[x]]></a>",
        ] {
            let mut l = Lexer::new(doc, 0);
            assert!(matches!(l.next_tok(), Ok(Tok::Start("a"))), "{doc}");
            assert!(l.text_then_end().is_none(), "{doc}");
            assert_eq!(l.pos, 3, "{doc}");
        }
        assert!(same(b"methodName", b"methodName") && !same(b"methodName", b"methodNamf"));
        assert!(same(b"value", b"value") && !same(b"value", b"valuf") && !same(b"i4", b"i8"));
    }

    #[test]
    fn refusals() {
        for (doc, kind) in [
            ("<!DOCTYPE a>", ParseErrorKind::Doctype),
            ("<!doctype a>", ParseErrorKind::Doctype),
            ("<!ENTITY a 'b'>", ParseErrorKind::NotWellFormed),
            ("<a></b>", ParseErrorKind::NotWellFormed),
            ("</a>", ParseErrorKind::NotWellFormed),
            ("<a", ParseErrorKind::NotWellFormed),
            ("<a x='>", ParseErrorKind::NotWellFormed),
            ("<a x='<'>", ParseErrorKind::NotWellFormed),
            ("<>", ParseErrorKind::NotWellFormed),
            ("< a>", ParseErrorKind::NotWellFormed),
            ("<", ParseErrorKind::NotWellFormed),
            ("<a<b>", ParseErrorKind::NotWellFormed),
            ("<!-- a -- b -->", ParseErrorKind::NotWellFormed),
            ("<!-- a --->", ParseErrorKind::NotWellFormed),
            ("<!-- a", ParseErrorKind::NotWellFormed),
            ("<![CDATA[x", ParseErrorKind::NotWellFormed),
            ("<?x", ParseErrorKind::NotWellFormed),
            ("<? x?>", ParseErrorKind::NotWellFormed),
            ("<a></a", ParseErrorKind::NotWellFormed),
        ] {
            assert_eq!(toks(doc).map_err(|e| e.0), Err(kind), "{doc}");
        }
    }
}
