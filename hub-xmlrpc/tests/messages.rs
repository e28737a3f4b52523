//! Calls, responses and faults: every form, parsed and written.

use hub_xmlrpc::{
    parse_call, parse_response, write_call, write_fault, write_response, Fault, Limits, MethodCall,
    MethodResponse, ParseErrorKind, Struct, Value,
};

fn call(xml: &str) -> MethodCall {
    parse_call(xml.as_bytes(), &Limits::default()).unwrap_or_else(|e| panic!("{xml}: {e}"))
}

fn call_err(xml: &str) -> ParseErrorKind {
    parse_call(xml.as_bytes(), &Limits::default())
        .expect_err(xml)
        .kind()
}

#[test]
fn call_forms() {
    let echo = MethodCall::new("echo", vec![Value::from("hello")]);
    assert_eq!(
        call("<methodCall><methodName>echo</methodName><params><param><value>hello</value></param></params></methodCall>"),
        echo
    );
    // Declaration, whitespace, comments, a processing instruction, a BOM.
    assert_eq!(
        call("\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c -->\n<methodCall>\n <methodName>echo</methodName>\n <params>\n  <param>\n   <value><string>hello</string></value>\n  </param>\n </params>\n</methodCall>\n<?pi x?>\n"),
        echo
    );
    let none = MethodCall::new("system.listMethods", vec![]);
    assert_eq!(
        call("<methodCall><methodName>system.listMethods</methodName><params/></methodCall>"),
        none
    );
    assert_eq!(
        call(
            "<methodCall><methodName>system.listMethods</methodName><params></params></methodCall>"
        ),
        none
    );
    assert_eq!(
        call("<methodCall><methodName>system.listMethods</methodName></methodCall>"),
        none
    );
    // Apache ws-xmlrpc: namespace declaration and ex: types.
    assert_eq!(
        call("<methodCall xmlns:ex=\"http://ws.apache.org/xmlrpc/namespaces/extensions\"><methodName>m</methodName><params><param><value><ex:nil/></value></param><param><value><ex:i8>5000000000</ex:i8></value></param></params></methodCall>"),
        MethodCall::new("m", vec![Value::Nil, Value::Int(5_000_000_000)])
    );
}

#[test]
fn malformed_calls() {
    assert_eq!(
        call_err("<methodCall><params/></methodCall>"),
        ParseErrorKind::InvalidXmlRpc
    );
    assert_eq!(
        call_err("<methodCall></methodCall>"),
        ParseErrorKind::InvalidXmlRpc
    );
    assert_eq!(call_err("<methodCall/>"), ParseErrorKind::InvalidXmlRpc);
    assert_eq!(
        call_err("<methodCall><methodName></methodName></methodCall>"),
        ParseErrorKind::InvalidXmlRpc
    );
    assert_eq!(
        call_err("<methodResponse><params/></methodResponse>"),
        ParseErrorKind::InvalidXmlRpc
    );
    assert_eq!(
        call_err(
            "<methodCall><methodName>m</methodName><params><param></param></params></methodCall>"
        ),
        ParseErrorKind::InvalidXmlRpc
    );
    assert_eq!(
        call_err(
            "<methodCall><methodName>m</methodName><params><value>1</value></params></methodCall>"
        ),
        ParseErrorKind::InvalidXmlRpc
    );
    assert_eq!(
        call_err("<methodCall><methodName>m</methodName><extra/></methodCall>"),
        ParseErrorKind::InvalidXmlRpc
    );
    assert_eq!(
        call_err("<methodCall><methodName>m</methodName></methodCall><methodCall/>"),
        ParseErrorKind::InvalidXmlRpc
    );
    assert_eq!(
        call_err("<methodCall><methodName>m</methodName></methodCall>junk"),
        ParseErrorKind::InvalidXmlRpc
    );
    assert_eq!(
        call_err("<methodCall><methodName>m</methodName></methodCall"),
        ParseErrorKind::NotWellFormed
    );
    assert_eq!(
        call_err("<methodCall><methodName>m</methodName></methodcall>"),
        ParseErrorKind::NotWellFormed
    );
    assert_eq!(call_err(""), ParseErrorKind::NotWellFormed);
    assert_eq!(call_err("hello"), ParseErrorKind::NotWellFormed);
}

#[test]
fn not_well_formed_and_invalid_are_told_apart() {
    let e = parse_call(
        b"<methodCall><methodName>m</methodName>",
        &Limits::default(),
    )
    .expect_err("x");
    assert!(e.is_not_well_formed());
    assert_eq!(e.fault_code(), -32700);
    let e = parse_call(b"<methodCall><params/></methodCall>", &Limits::default()).expect_err("x");
    assert!(!e.is_not_well_formed());
    assert_eq!(e.fault_code(), -32600);
}

#[test]
fn responses_and_faults() {
    let ok = parse_response(
        b"<?xml version=\"1.0\"?><methodResponse><params><param><value><struct><member><name>a</name><value><i4>1</i4></value></member></struct></value></param></params></methodResponse>",
        &Limits::default(),
    )
    .expect("ok");
    let mut s = Struct::new();
    s.insert("a", 1);
    assert_eq!(ok, MethodResponse::Success(Value::Struct(s)));

    let fault = parse_response(
        b"<methodResponse><fault><value><struct><member><name>faultString</name><value>boom</value></member><member><name>faultCode</name><value><int>4</int></value></member></struct></value></fault></methodResponse>",
        &Limits::default(),
    )
    .expect("fault");
    assert_eq!(fault, MethodResponse::Fault(Fault::new(4, "boom")));
    assert_eq!(fault.into_result(), Err(Fault::new(4, "boom")));

    for bad in [
        "<methodResponse><params/></methodResponse>",
        "<methodResponse><params><param><value>1</value></param><param><value>2</value></param></params></methodResponse>",
        "<methodResponse><fault><value><int>1</int></value></fault></methodResponse>",
        "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1</int></value></member></struct></value></fault></methodResponse>",
        "<methodResponse></methodResponse>",
    ] {
        let e = parse_response(bad.as_bytes(), &Limits::default()).expect_err(bad);
        assert_eq!(e.kind(), ParseErrorKind::InvalidXmlRpc, "{bad}");
    }
    let e = parse_response(
        b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><i8>5000000000</i8></value></member><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>",
        &Limits::default(),
    )
    .expect_err("code beyond i32");
    assert_eq!(e.kind(), ParseErrorKind::InvalidXmlRpc);
}

#[test]
fn written_messages_are_exact() {
    let mut out = Vec::new();
    write_call(
        &MethodCall::new("echo", vec![Value::from("hello")]),
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        "<?xml version=\"1.0\"?>\n<methodCall><methodName>echo</methodName><params><param><value><string>hello</string></value></param></params></methodCall>"
    );

    let mut out = Vec::new();
    write_response(&Value::Int(7), &mut out);
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        "<?xml version=\"1.0\"?>\n<methodResponse><params><param><value><int>7</int></value></param></params></methodResponse>"
    );

    let mut out = Vec::new();
    write_fault(&Fault::new(1019, "bad <arg>"), &mut out);
    let out = String::from_utf8(out).expect("utf8");
    assert_eq!(
        out,
        "<?xml version=\"1.0\"?>\n<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1019</int></value></member><member><name>faultString</name><value><string>bad &lt;arg&gt;</string></value></member></struct></value></fault></methodResponse>"
    );
    assert_eq!(
        parse_response(out.as_bytes(), &Limits::default()).expect("reparse"),
        MethodResponse::Fault(Fault::new(1019, "bad <arg>"))
    );
}

#[test]
fn writers_append() {
    let mut out = b"prefix".to_vec();
    write_response(&Value::Nil, &mut out);
    assert!(out.starts_with(b"prefix<?xml"));
}

#[test]
fn kwargs_split_only_with_starstar_true_as_python_sees_it() {
    let mut kw = Struct::new();
    kw.insert("a", 1);
    kw.insert("__starstar", true);
    let mut c = MethodCall::new("m", vec![Value::Int(0), Value::Struct(kw)]);
    let named = c.split_kwargs().expect("kwargs");
    assert_eq!(c.params, vec![Value::Int(0)]);
    assert_eq!(named.len(), 1);
    assert_eq!(named.get("a"), Some(&Value::Int(1)));

    let mut plain = Struct::new();
    plain.insert("a", 1);
    let mut c = MethodCall::new("m", vec![Value::Struct(plain.clone())]);
    assert_eq!(c.split_kwargs(), None);
    assert_eq!(c.params.len(), 1);

    // koji takes any value Python takes for true (`last.get('__starstar', False)`).
    for falsy in [
        Value::Bool(false),
        Value::Int(0),
        Value::Double(0.0),
        Value::from(""),
        Value::Nil,
        Value::Array(vec![]),
        Value::Base64(vec![]),
    ] {
        plain.insert("__starstar", falsy.clone());
        let mut c = MethodCall::new("m", vec![Value::Struct(plain.clone())]);
        assert_eq!(c.split_kwargs(), None, "{falsy:?}");
    }
    for truthy in [
        Value::Int(1),
        Value::Int(-1),
        Value::from("yes"),
        Value::Double(0.5),
    ] {
        plain.insert("__starstar", truthy.clone());
        let mut c = MethodCall::new("m", vec![Value::Struct(plain.clone())]);
        let named = c.split_kwargs().expect("kwargs");
        assert_eq!(named.get("a"), Some(&Value::Int(1)), "{truthy:?}");
        assert!(c.params.is_empty());
    }

    let mut c = MethodCall::new("m", vec![]);
    assert_eq!(c.split_kwargs(), None);

    // Not the last parameter: left alone.
    let mut kw = Struct::new();
    kw.insert("__starstar", true);
    let mut c = MethodCall::new("m", vec![Value::Struct(kw), Value::Int(1)]);
    assert_eq!(c.split_kwargs(), None);
}
