//! `encoding=` in the XML declaration: UTF-8 (the default), US-ASCII and ISO-8859-1
//! are read; anything else is refused with a typed error.

use hub_xmlrpc::{parse_call, parse_response, Limits, MethodResponse, ParseErrorKind, Value};

fn call(doc: &[u8]) -> Result<Value, hub_xmlrpc::ParseError> {
    parse_call(doc, &Limits::default()).map(|mut c| c.params.remove(0))
}

fn doc(decl: &str, body: &[u8]) -> Vec<u8> {
    let mut d = format!("<?xml version=\"1.0\" {decl}?>\n<methodCall><methodName>m</methodName><params><param><value>").into_bytes();
    d.extend_from_slice(body);
    d.extend_from_slice(b"</value></param></params></methodCall>");
    d
}

#[test]
fn latin1_is_transcoded() {
    for decl in [
        "encoding=\"ISO-8859-1\"",
        "encoding='iso-8859-1'",
        "encoding = \"latin-1\"",
        "encoding=\"latin1\"",
        "encoding=\"ISO_8859-1\"",
    ] {
        let d = doc(decl, b"caf\xE9 \xA9 <string>x</string>");
        assert!(call(&d).is_err(), "text beside a type element: {decl}");
        let d = doc(decl, b"<string>caf\xE9 \xA9 \xFF&amp;</string>");
        assert_eq!(
            call(&d).expect(decl),
            Value::from("caf\u{e9} \u{a9} \u{ff}&")
        );
    }
    // A latin-1 response, names included.
    let r = parse_response(
        b"<?xml version='1.0' encoding='ISO-8859-1'?><methodResponse><params><param><value><struct><member><name>n\xE4me</name><value>J\xFCrgen</value></member></struct></value></param></params></methodResponse>",
        &Limits::default(),
    )
    .expect("latin-1 response");
    let MethodResponse::Success(Value::Struct(s)) = r else {
        panic!("struct expected")
    };
    assert_eq!(s.get("n\u{e4}me"), Some(&Value::from("J\u{fc}rgen")));
}

#[test]
fn ascii_is_checked() {
    for decl in ["encoding=\"US-ASCII\"", "encoding='ascii'"] {
        assert_eq!(
            call(&doc(decl, b"plain")).expect(decl),
            Value::from("plain")
        );
        let e = call(&doc(decl, b"caf\xC3\xA9")).expect_err(decl);
        assert_eq!(e.kind(), ParseErrorKind::InvalidUtf8);
        assert_eq!(e.fault_code(), -32702);
        assert!(e.to_string().contains("US-ASCII"), "{e}");
    }
}

#[test]
fn utf8_stays_the_default() {
    for decl in [
        "",
        "encoding=\"UTF-8\"",
        "encoding='utf8'",
        "standalone=\"yes\"",
    ] {
        let d = doc(decl, "caf\u{e9}".as_bytes());
        assert_eq!(call(&d).expect(decl), Value::from("caf\u{e9}"));
        // Latin-1 bytes are not UTF-8 unless the declaration says so.
        let e = call(&doc(decl, b"caf\xE9")).expect_err(decl);
        assert_eq!(e.kind(), ParseErrorKind::InvalidUtf8);
    }
    // `encoding` must be a pseudo-attribute of the declaration at the very start.
    let d = b"<methodCall><methodName>m</methodName><params><param><value>encoding=\"latin-1\" caf\xE9</value></param></params></methodCall>";
    assert_eq!(
        call(d).expect_err("not UTF-8").kind(),
        ParseErrorKind::InvalidUtf8
    );
}

#[test]
fn other_encodings_are_refused() {
    for decl in [
        "encoding=\"UTF-16\"",
        "encoding=\"windows-1252\"",
        "encoding=\"EBCDIC-US\"",
        "encoding=\"\"",
    ] {
        let e = call(&doc(decl, b"x")).expect_err(decl);
        assert_eq!(e.kind(), ParseErrorKind::UnsupportedEncoding, "{decl}");
        assert!(e.is_not_well_formed());
        assert_eq!(e.fault_code(), -32701);
    }
    let long = format!("encoding=\"{}\"", "x".repeat(10_000));
    let e = call(&doc(&long, b"x")).expect_err("long name");
    assert!(e.to_string().len() < 300, "{e}");
    // A UTF-8 byte-order mark contradicting the declaration.
    let mut d = b"\xEF\xBB\xBF".to_vec();
    d.extend(doc("encoding=\"ISO-8859-1\"", b"x"));
    assert_eq!(
        call(&d).expect_err("BOM").kind(),
        ParseErrorKind::UnsupportedEncoding
    );
}

#[test]
fn limits_and_refusals_still_hold_after_transcoding() {
    let d = doc("encoding=\"ISO-8859-1\"", b"&xxe;");
    assert_eq!(
        call(&d).expect_err("entity").kind(),
        ParseErrorKind::EntityRefused
    );
    let d = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><!DOCTYPE x [<!ENTITY x \"\xE9\">]><methodCall/>";
    assert_eq!(
        call(d).expect_err("doctype").kind(),
        ParseErrorKind::Doctype
    );
    let d = doc("encoding=\"ISO-8859-1\"", b"a\x01b");
    assert_eq!(
        call(&d).expect_err("control").kind(),
        ParseErrorKind::NotWellFormed
    );
    // The size limit applies to the bytes received, before transcoding.
    let d = doc("encoding=\"ISO-8859-1\"", &[0xE9; 1000]);
    let limits = Limits {
        max_size: 500,
        ..Limits::default()
    };
    assert_eq!(
        parse_call(&d, &limits).expect_err("size").kind(),
        ParseErrorKind::TooLarge
    );
}
