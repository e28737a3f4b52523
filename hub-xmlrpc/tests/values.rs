//! Every value type and the spellings clients use for it.

use hub_xmlrpc::{parse_value, write_value, DateTime, Limits, ParseErrorKind, Struct, Value};

fn v(xml: &str) -> Value {
    parse_value(xml.as_bytes(), &Limits::default()).unwrap_or_else(|e| panic!("{xml}: {e}"))
}

fn kind(xml: &str) -> ParseErrorKind {
    parse_value(xml.as_bytes(), &Limits::default())
        .expect_err(xml)
        .kind()
}

#[test]
fn integers_in_every_spelling() {
    for tag in ["int", "i4", "i8", "ex:i8", "ex:i4", "ex:i2", "ex:i1"] {
        assert_eq!(
            v(&format!("<value><{tag}>-42</{tag}></value>")),
            Value::Int(-42),
            "{tag}"
        );
    }
    assert_eq!(v("<value><int> +7 </int></value>"), Value::Int(7));
    assert_eq!(
        v("<value><i8>9223372036854775807</i8></value>"),
        Value::Int(i64::MAX)
    );
    assert_eq!(
        v("<value><i8>-9223372036854775808</i8></value>"),
        Value::Int(i64::MIN)
    );
}

#[test]
fn integer_overflow_names_the_value() {
    let e = parse_value(
        b"<value><i8>9223372036854775808</i8></value>",
        &Limits::default(),
    )
    .expect_err("overflow");
    assert_eq!(e.kind(), ParseErrorKind::IntegerOverflow);
    assert!(e.to_string().contains("9223372036854775808"), "{e}");
    assert_eq!(
        kind("<value><int>12x</int></value>"),
        ParseErrorKind::InvalidValue
    );
    assert_eq!(
        kind("<value><int></int></value>"),
        ParseErrorKind::InvalidValue
    );
    assert_eq!(kind("<value><int/></value>"), ParseErrorKind::InvalidValue);
    assert_eq!(
        kind("<value><int>1.5</int></value>"),
        ParseErrorKind::InvalidValue
    );
}

#[test]
fn booleans() {
    assert_eq!(v("<value><boolean>1</boolean></value>"), Value::Bool(true));
    assert_eq!(v("<value><boolean>0</boolean></value>"), Value::Bool(false));
    assert_eq!(
        v("<value><boolean> true </boolean></value>"),
        Value::Bool(true)
    );
    assert_eq!(
        kind("<value><boolean>2</boolean></value>"),
        ParseErrorKind::InvalidValue
    );
}

#[test]
fn strings_typed_untyped_and_empty() {
    assert_eq!(v("<value><string>a b</string></value>"), Value::from("a b"));
    assert_eq!(v("<value>untyped</value>"), Value::from("untyped"));
    assert_eq!(v("<value>  spaced  </value>"), Value::from("  spaced  "));
    assert_eq!(
        v("<value><string>  kept  </string></value>"),
        Value::from("  kept  ")
    );
    assert_eq!(v("<value></value>"), Value::from(""));
    assert_eq!(v("<value/>"), Value::from(""));
    assert_eq!(v("<value><string></string></value>"), Value::from(""));
    assert_eq!(v("<value><string/></value>"), Value::from(""));
    assert_eq!(
        v("<value>\n  <string>x</string>\n</value>"),
        Value::from("x")
    );
}

#[test]
fn entities_char_refs_and_cdata() {
    assert_eq!(
        v("<value><string>&amp;&lt;&gt;&quot;&apos;</string></value>"),
        Value::from("&<>\"'")
    );
    assert_eq!(
        v("<value>&#65;&#x42;&#x1F600;</value>"),
        Value::from("AB\u{1F600}")
    );
    assert_eq!(
        v("<value><string><![CDATA[<raw> & stuff]]></string></value>"),
        Value::from("<raw> & stuff")
    );
    assert_eq!(
        v("<value><string>a<![CDATA[<b>]]>c&amp;</string></value>"),
        Value::from("a<b>c&")
    );
    assert_eq!(
        v("<value><string>a<!-- note -->b</string></value>"),
        Value::from("ab")
    );
    assert_eq!(
        v("<value><string>caf\u{e9} \u{2603}</string></value>"),
        Value::from("caf\u{e9} \u{2603}")
    );
    // XML line-end normalisation.
    assert_eq!(v("<value>a\r\nb\rc</value>"), Value::from("a\nb\nc"));
    assert_eq!(v("<value>&#13;</value>"), Value::from("\r"));
    assert_eq!(kind("<value>&nbsp;</value>"), ParseErrorKind::EntityRefused);
    assert_eq!(
        kind("<value>&#xD800;</value>"),
        ParseErrorKind::NotWellFormed
    );
    assert_eq!(kind("<value>a & b</value>"), ParseErrorKind::NotWellFormed);
}

#[test]
fn doubles() {
    assert_eq!(v("<value><double>1.5</double></value>"), Value::Double(1.5));
    assert_eq!(
        v("<value><double>-0.25</double></value>"),
        Value::Double(-0.25)
    );
    assert_eq!(v("<value><double>3</double></value>"), Value::Double(3.0));
    assert_eq!(
        v("<value><double>1e+100</double></value>"),
        Value::Double(1e100)
    );
    assert_eq!(
        v("<value><ex:float>2.5</ex:float></value>"),
        Value::Double(2.5)
    );
    assert_eq!(
        v("<value><double>inf</double></value>"),
        Value::Double(f64::INFINITY)
    );
    assert_eq!(
        kind("<value><double>abc</double></value>"),
        ParseErrorKind::InvalidValue
    );
    assert_eq!(
        kind("<value><double></double></value>"),
        ParseErrorKind::InvalidValue
    );
}

#[test]
fn date_times() {
    let dt = DateTime::new(1998, 7, 17, 14, 8, 55).expect("valid");
    for s in [
        "19980717T14:08:55",
        "1998-07-17T14:08:55",
        " 19980717T140855 ",
    ] {
        assert_eq!(
            v(&format!(
                "<value><dateTime.iso8601>{s}</dateTime.iso8601></value>"
            )),
            Value::DateTime(dt),
            "{s}"
        );
    }
    let z = v("<value><dateTime.iso8601>19980717T14:08:55Z</dateTime.iso8601></value>");
    assert_eq!(z, Value::DateTime(dt.with_offset(Some(0)).expect("z")));
    assert_eq!(
        kind("<value><dateTime.iso8601>1998-13-01T00:00:00</dateTime.iso8601></value>"),
        ParseErrorKind::InvalidValue
    );
}

#[test]
fn base64_with_line_breaks() {
    assert_eq!(
        v("<value><base64>aGVsbG8=</base64></value>"),
        Value::Base64(b"hello".to_vec())
    );
    assert_eq!(
        v("<value><base64>\naGVs\r\n  bG8=\n</base64></value>"),
        Value::Base64(b"hello".to_vec())
    );
    assert_eq!(
        v("<value><base64>aGVsbG8</base64></value>"),
        Value::Base64(b"hello".to_vec())
    );
    assert_eq!(v("<value><base64/></value>"), Value::Base64(vec![]));
    assert_eq!(v("<value><base64></base64></value>"), Value::Base64(vec![]));
    assert_eq!(
        kind("<value><base64>!!!</base64></value>"),
        ParseErrorKind::InvalidValue
    );
}

#[test]
fn nil_in_both_spellings() {
    assert_eq!(v("<value><nil/></value>"), Value::Nil);
    assert_eq!(v("<value><nil></nil></value>"), Value::Nil);
    assert_eq!(v("<value><ex:nil/></value>"), Value::Nil);
    assert_eq!(
        kind("<value><nil>x</nil></value>"),
        ParseErrorKind::InvalidValue
    );
}

#[test]
fn structs() {
    let got = v("<value><struct>
        <member><name>a</name><value><int>1</int></value></member>
        <member><name>b</name><value>two</value></member>
        <member><name></name><value/></member>
    </struct></value>");
    let want: Struct = [
        ("a".to_owned(), Value::Int(1)),
        ("b".to_owned(), Value::from("two")),
        (String::new(), Value::from("")),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, Value::Struct(want));
    assert_eq!(
        v("<value><struct></struct></value>"),
        Value::Struct(Struct::new())
    );
    assert_eq!(v("<value><struct/></value>"), Value::Struct(Struct::new()));
}

#[test]
fn duplicate_members_keep_the_last_value_at_the_first_place() {
    let got = v("<value><struct>
        <member><name>a</name><value><int>1</int></value></member>
        <member><name>b</name><value><int>2</int></value></member>
        <member><name>a</name><value><int>3</int></value></member>
    </struct></value>");
    let s = got.as_struct().expect("struct");
    assert_eq!(s.len(), 2);
    assert_eq!(s.iter().next(), Some(&("a".into(), Value::Int(3))));
}

#[test]
fn arrays() {
    assert_eq!(
        v("<value><array><data><value><i4>1</i4></value><value>x</value><value/></data></array></value>"),
        Value::Array(vec![Value::Int(1), Value::from("x"), Value::from("")])
    );
    assert_eq!(
        v("<value><array><data></data></array></value>"),
        Value::Array(vec![])
    );
    assert_eq!(
        v("<value><array><data/></array></value>"),
        Value::Array(vec![])
    );
    assert_eq!(v("<value><array/></value>"), Value::Array(vec![]));
    assert_eq!(
        v("<value><array><data><value><array><data><value><struct/></value></data></array></value></data></array></value>"),
        Value::Array(vec![Value::Array(vec![Value::Struct(Struct::new())])])
    );
}

#[test]
fn misplaced_and_unknown_elements() {
    for xml in [
        "<value><integer>1</integer></value>",
        "<value><int><b>1</b></int></value>",
        "<value><struct><name>a</name></struct></value>",
        "<value><struct><member><value>1</value></member></struct></value>",
        "<value><array><value>1</value></array></value>",
        "<value><array><data>text</data></array></value>",
        "<value>text<int>1</int></value>",
        "<value><value>1</value></value>",
        "<params/>",
    ] {
        assert_eq!(kind(xml), ParseErrorKind::InvalidXmlRpc, "{xml}");
    }
}

#[test]
fn writer_spells_each_type() {
    let mut s = Struct::new();
    s.insert("k", Value::Nil);
    let value = Value::Array(vec![
        Value::Int(1),
        Value::Int(1 << 40),
        Value::Bool(true),
        Value::from("a<&>\r"),
        Value::Double(1.0),
        Value::Double(0.1),
        Value::DateTime(DateTime::new(1998, 7, 17, 14, 8, 55).expect("dt")),
        Value::Base64(b"hello".to_vec()),
        Value::Struct(s),
        Value::Array(vec![]),
        Value::Struct(Struct::new()),
        Value::Nil,
    ]);
    let mut out = Vec::new();
    write_value(&value, &mut out);
    let out = String::from_utf8(out).expect("utf8");
    assert_eq!(
        out,
        "<?xml version=\"1.0\"?>\n<value><array><data>\
<value><int>1</int></value>\
<value><i8>1099511627776</i8></value>\
<value><boolean>1</boolean></value>\
<value><string>a&lt;&amp;&gt;&#13;</string></value>\
<value><double>1.0</double></value>\
<value><double>0.1</double></value>\
<value><dateTime.iso8601>19980717T14:08:55</dateTime.iso8601></value>\
<value><base64>aGVsbG8=</base64></value>\
<value><struct><member><name>k</name><value><nil/></value></member></struct></value>\
<value><array><data></data></array></value>\
<value><struct></struct></value>\
<value><nil/></value>\
</data></array></value>"
    );
    assert_eq!(
        parse_value(out.as_bytes(), &Limits::default()).expect("reparse"),
        value
    );
}
