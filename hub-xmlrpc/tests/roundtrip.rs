//! Property: writing then parsing is the identity, for any value (NaN excluded, since it
//! is not equal to itself) and through every message form.

use hub_xmlrpc::{
    parse_call, parse_response, parse_value, write_call, write_fault, write_response, write_value,
    DateTime, Fault, Limits, MethodCall, MethodResponse, Struct, Value,
};
use proptest::prelude::*;

fn datetime() -> impl Strategy<Value = DateTime> {
    (
        0u16..=9999,
        1u8..=12,
        1u8..=28,
        0u8..=23,
        0u8..=59,
        0u8..=59,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
        prop_oneof![Just(None), (-1439i16..=1439).prop_map(Some)],
    )
        .prop_map(|(y, mo, d, h, mi, s, ns, off)| {
            DateTime::new(y, mo, d, h, mi, s)
                .and_then(|dt| dt.with_nanosecond(ns))
                .and_then(|dt| dt.with_offset(off))
                .expect("valid by construction")
        })
}

/// `s` as XML can carry it: the control characters it has no spelling for (all but tab,
/// newline and CR) as U+FFFD, as the writer writes them. Other strings round-trip exactly.
fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        any::<i32>().prop_map(|i| Value::Int(i.into())),
        any::<bool>().prop_map(Value::Bool),
        any::<String>().prop_map(|s| Value::String(xml_text(&s))),
        "[ a-z&<>\"'\r\n\t]{0,12}".prop_map(Value::String),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |d| !d.is_nan())
            .prop_map(Value::Double),
        datetime().prop_map(Value::DateTime),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Base64),
        Just(Value::Nil),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 128, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((any::<String>().prop_map(|s| xml_text(&s)), inner), 0..8)
                .prop_map(|m| Value::Struct(m.into_iter().collect::<Struct>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn value_round_trips(v in value()) {
        let mut out = Vec::new();
        write_value(&v, &mut out);
        prop_assert_eq!(parse_value(&out, &Limits::default()).expect("parse"), v);
    }

    #[test]
    fn call_round_trips(name in "[A-Za-z_.]{1,20}", params in proptest::collection::vec(value(), 0..4)) {
        let call = MethodCall::new(name, params);
        let mut out = Vec::new();
        write_call(&call, &mut out);
        prop_assert_eq!(parse_call(&out, &Limits::default()).expect("parse"), call);
    }

    #[test]
    fn response_round_trips(v in value()) {
        let mut out = Vec::new();
        write_response(&v, &mut out);
        prop_assert_eq!(parse_response(&out, &Limits::default()).expect("parse"), MethodResponse::Success(v));
    }

    #[test]
    fn fault_round_trips(code in any::<i32>(), message in any::<String>()) {
        let f = Fault::new(code, message);
        let mut out = Vec::new();
        write_fault(&f, &mut out);
        prop_assert_eq!(parse_response(&out, &Limits::default()).expect("parse"), MethodResponse::Fault(f));
    }

    #[test]
    fn serde_round_trips_through_value(v in value()) {
        let back: Value = hub_xmlrpc::from_value(hub_xmlrpc::to_value(&v).expect("encode")).expect("decode");
        prop_assert_eq!(back, v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_call(&bytes, &Limits::default());
        let _ = parse_response(&bytes, &Limits::default());
        let _ = parse_value(&bytes, &Limits::default());
    }
}
