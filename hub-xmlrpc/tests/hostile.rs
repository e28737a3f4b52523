//! Hostile input: every refusal is a typed error, nothing panics or overflows the stack,
//! and no message quotes more than a short excerpt of the input.

use hub_xmlrpc::{
    parse_call, parse_response, parse_value, Limits, ParseError, ParseErrorKind, Value,
};

fn call_err(xml: &[u8]) -> ParseError {
    parse_call(xml, &Limits::default()).expect_err("must be refused")
}

fn wrap(value: &str) -> String {
    format!("<methodCall><methodName>m</methodName><params><param>{value}</param></params></methodCall>")
}

/// The message of an error never carries more than a short excerpt of the body.
fn assert_short(e: &ParseError) {
    let msg = e.to_string();
    assert!(msg.len() < 240, "message too long ({}): {msg}", msg.len());
}

#[test]
fn billion_laughs_doctype_is_refused() {
    let xml = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<methodCall><methodName>&lol3;</methodName></methodCall>"#;
    let e = call_err(xml);
    assert_eq!(e.kind(), ParseErrorKind::Doctype);
    assert!(e.is_not_well_formed());
    assert_short(&e);
}

#[test]
fn external_entities_are_refused() {
    let e = call_err(wrap("<value>&xxe;</value>").as_bytes());
    assert_eq!(e.kind(), ParseErrorKind::EntityRefused);
    let e = call_err(b"<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><methodCall/>");
    assert_eq!(e.kind(), ParseErrorKind::Doctype);
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let depth = 10_000;
    let mut xml = String::from("<methodCall><methodName>m</methodName><params><param>");
    for _ in 0..depth {
        xml.push_str("<value><array><data>");
    }
    for _ in 0..depth {
        xml.push_str("</data></array></value>");
    }
    xml.push_str("</param></params></methodCall>");
    let e = call_err(xml.as_bytes());
    assert_eq!(e.kind(), ParseErrorKind::TooDeep);
    assert!(!e.is_not_well_formed());
    assert_short(&e);

    // Even with no depth limit, parsing is iterative: no stack overflow.
    let deep = parse_call(
        xml.as_bytes(),
        &Limits {
            max_depth: usize::MAX,
            ..Limits::default()
        },
    )
    .expect("iterative parser");
    // Dropping 10,000 nested Vecs recurses in Drop; keep it off this thread's stack.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || drop(deep))
        .expect("thread")
        .join()
        .expect("drop");

    // Structs count too.
    let mut xml = String::from("<value>");
    for _ in 0..65 {
        xml.push_str("<struct><member><name>a</name><value>");
    }
    let e = parse_value(xml.as_bytes(), &Limits::default()).expect_err("deep");
    assert_eq!(e.kind(), ParseErrorKind::TooDeep);
}

#[test]
fn depth_limit_is_exact() {
    let nest = |n: usize| {
        let mut xml = String::new();
        for _ in 0..n {
            xml.push_str("<value><array><data>");
        }
        xml.push_str("<value>x</value>");
        for _ in 0..n {
            xml.push_str("</data></array></value>");
        }
        xml
    };
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    assert!(parse_value(nest(3).as_bytes(), &limits).is_ok());
    assert_eq!(
        parse_value(nest(4).as_bytes(), &limits)
            .expect_err("4")
            .kind(),
        ParseErrorKind::TooDeep
    );
}

#[test]
fn oversize_is_refused_before_parsing() {
    let big = wrap(&format!("<value>{}</value>", "a".repeat(5 << 20)));
    let e = call_err(big.as_bytes());
    assert_eq!(e.kind(), ParseErrorKind::TooLarge);
    assert_short(&e);
    let small = Limits {
        max_size: 10,
        ..Limits::default()
    };
    assert_eq!(
        parse_call(
            b"<methodCall><methodName>m</methodName></methodCall>",
            &small
        )
        .expect_err("small")
        .kind(),
        ParseErrorKind::TooLarge
    );
}

#[test]
fn invalid_utf8_is_refused() {
    let mut xml = wrap("<value>caf\u{e9}</value>").into_bytes();
    let i = xml.iter().position(|&b| b == 0xC3).expect("e-acute");
    xml[i + 1] = b'(';
    let e = call_err(&xml);
    assert_eq!(e.kind(), ParseErrorKind::InvalidUtf8);
    assert_eq!(e.fault_code(), -32702);
    assert_short(&e);
    // Overlong encodings and lone continuation bytes too.
    assert_eq!(
        call_err(b"<methodCall>\xC0\xAF</methodCall>").kind(),
        ParseErrorKind::InvalidUtf8
    );
    assert_eq!(call_err(b"\x80").kind(), ParseErrorKind::InvalidUtf8);
    // The offset of the first bad byte, short bodies and long ones (checked 32 bytes a step).
    for pad in [0, 7, 60, 200, 5000] {
        let mut xml = wrap(&format!("<value>{}caf\u{e9}</value>", "x".repeat(pad))).into_bytes();
        let i = xml.iter().position(|&b| b == 0xC3).expect("e-acute");
        xml[i + 1] = b'(';
        let e = call_err(&xml);
        assert_eq!(
            (e.kind(), e.offset()),
            (ParseErrorKind::InvalidUtf8, i),
            "pad {pad}"
        );
    }
}

/// A reference to a character XML forbids is refused as the character itself is; the
/// writer spells those characters U+FFFD, so what it writes any XML parser reads (Python's
/// refused `&#1;`, which this writer used to emit).
#[test]
fn references_to_forbidden_characters_are_refused_and_never_written() {
    for bad in [
        "&#0;", "&#1;", "&#x1F;", "&#11;", "&#xFFFE;", "&#xFFFF;", "&#xD800;",
    ] {
        let e = call_err(wrap(&format!("<value>a{bad}b</value>")).as_bytes());
        assert_eq!(e.kind(), ParseErrorKind::NotWellFormed, "{bad:?}");
    }
    for (good, text) in [
        ("&#9;&#10;&#13;", "\t\n\r"),
        (
            "&#x20;&#xD7FF;&#xE000;&#xFFFD;",
            " \u{D7FF}\u{E000}\u{FFFD}",
        ),
        ("&#x10000;&#x10FFFF;", "\u{10000}\u{10FFFF}"),
    ] {
        let call = parse_call(
            wrap(&format!("<value>{good}</value>")).as_bytes(),
            &Limits::default(),
        )
        .expect(good);
        assert_eq!(call.params, [Value::from(text)], "{good}");
    }
    let mut out = Vec::new();
    let sent = "a\u{0}b\u{1}c\u{1F}d\re\tf\ng\u{FFFE}h\u{FFFF}";
    hub_xmlrpc::write_response(&Value::from(sent), &mut out);
    let text = String::from_utf8(out.clone()).expect("UTF-8");
    assert!(
        !text.contains("&#0;") && !text.contains("&#1;") && !text.contains("&#31;"),
        "{text}"
    );
    match hub_xmlrpc::parse_response(&out, &Limits::default()).expect("reads back") {
        hub_xmlrpc::MethodResponse::Success(v) => assert_eq!(
            v,
            Value::from("a\u{FFFD}b\u{FFFD}c\u{FFFD}d\re\tf\ng\u{FFFD}h\u{FFFD}"),
            "control characters and noncharacters as U+FFFD, tab, newline and CR kept"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn nul_and_control_characters_are_refused() {
    for bad in ["a\0b", "\u{1}", "\u{b}", "\u{1f}"] {
        let e = call_err(wrap(&format!("<value>{bad}</value>")).as_bytes());
        assert_eq!(e.kind(), ParseErrorKind::NotWellFormed, "{bad:?}");
    }
    let e = call_err(b"<methodCall><methodName>m\0</methodName></methodCall>");
    assert_eq!(e.kind(), ParseErrorKind::NotWellFormed);
    let e = call_err(b"<methodCall>\0<methodName>m</methodName></methodCall>");
    assert!(matches!(
        e.kind(),
        ParseErrorKind::InvalidXmlRpc | ParseErrorKind::NotWellFormed
    ));
}

#[test]
fn trailing_garbage_and_second_roots_are_refused() {
    for tail in ["x", "<methodCall/>", "<a>", "]]>"] {
        let xml = format!("<methodCall><methodName>m</methodName></methodCall>{tail}");
        let e = call_err(xml.as_bytes());
        assert!(
            matches!(
                e.kind(),
                ParseErrorKind::InvalidXmlRpc | ParseErrorKind::NotWellFormed
            ),
            "{tail}: {e}"
        );
    }
    assert_eq!(
        call_err(b"<methodCall><methodName>m</methodName></methodCall>junk").kind(),
        ParseErrorKind::InvalidXmlRpc
    );
}

#[test]
fn messages_quote_only_a_short_excerpt() {
    let secret = "S".repeat(100_000);
    for xml in [
        wrap(&format!("<value><int>{secret}</int></value>")),
        wrap(&format!("<value><{secret}/></value>")),
        wrap(&format!("<value><i8>{}</i8></value>", "9".repeat(100_000))),
        format!("<methodCall><methodName>m</methodName></methodCall>{secret}"),
        format!("<methodCall><{secret}>"),
        format!("<methodCall><methodName>m</methodName></{secret}>"),
        format!("<methodCall><methodName>{secret}"),
        wrap(&format!("<value><base64>{secret}!</base64></value>")),
        wrap(&format!("<value>&{secret};</value>")),
    ] {
        let e = call_err(xml.as_bytes());
        assert_short(&e);
    }
}

#[test]
fn truncations_of_every_fixture_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("xml") {
            continue;
        }
        let xml = std::fs::read(&path).expect("read");
        for cut in 0..xml.len() {
            let head = &xml[..cut];
            // A cut document is never accepted as a complete one... unless only
            // trailing whitespace was cut.
            let call = parse_call(head, &Limits::default());
            let resp = parse_response(head, &Limits::default());
            if !xml[cut..].iter().all(u8::is_ascii_whitespace) {
                assert!(
                    call.is_err() && resp.is_err(),
                    "{path:?} cut at {cut} accepted"
                );
            }
            // Flipping a byte neither.
            let mut flipped = xml.clone();
            flipped[cut] ^= 0x55;
            let _ = parse_call(&flipped, &Limits::default());
            let _ = parse_response(&flipped, &Limits::default());
            n += 1;
        }
    }
    assert!(n > 5_000);
}

#[test]
fn many_members_parse_in_linear_time() {
    // A struct of 100,000 members, many repeated names: no quadratic blow-up.
    let mut xml = String::from("<value><struct>");
    for i in 0..100_000 {
        xml.push_str(&format!(
            "<member><name>m{}</name><value><int>{i}</int></value></member>",
            i % 50_000
        ));
    }
    xml.push_str("</struct></value>");
    let start = std::time::Instant::now();
    let v = parse_value(xml.as_bytes(), &Limits::UNLIMITED).expect("parse");
    assert_eq!(v.as_struct().expect("struct").len(), 50_000);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}
