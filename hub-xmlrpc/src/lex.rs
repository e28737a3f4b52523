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

pub(crate) struct Lexer<'a> {
    s: &'a str,
    /// Where the next token starts.
    pub(crate) pos: usize,
    /// Names of the open elements, innermost last.
    open: Vec<&'a str>,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(s: &'a str, pos: usize) -> Self {
        Lexer {
            s,
            pos,
            open: Vec::with_capacity(16),
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
                        let dashes = s
                            .get(body..)
                            .and_then(|t| t.find("--"))
                            .ok_or_else(|| bad(start, "unclosed comment"))?
                            + body;
                        if b.get(dashes + 2) != Some(&b'>') {
                            return Err(bad(dashes, "'--' inside a comment"));
                        }
                        self.pos = dashes + 3;
                        continue;
                    }
                    if rest.starts_with(b"[CDATA[") {
                        let body = start + 9;
                        let close = s[body..]
                            .find("]]>")
                            .ok_or_else(|| bad(start, "unclosed CDATA section"))?
                            + body;
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
                    let close = s[start + 2..]
                        .find("?>")
                        .ok_or_else(|| bad(start, "unclosed processing instruction"))?
                        + start
                        + 2;
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
                        if c == b'>' || c == b'/' || is_ws(c) {
                            break;
                        }
                        if matches!(c, b'<' | b'&' | b'"' | b'\'' | b'=') {
                            return Err(bad(start, "bad character in an element name"));
                        }
                        i += 1;
                    }
                    if i == name_start {
                        return Err(bad(start, "'<' not followed by an element name"));
                    }
                    let name_end = i;
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
                    let name = &s[name_start..name_end];
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
}

#[inline]
fn find_byte(b: &[u8], needle: u8, from: usize) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|&c| c == needle)
        .map(|i| i + from)
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
