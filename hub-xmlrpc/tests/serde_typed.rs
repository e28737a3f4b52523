//! serde: user types to and from `Value`, and the errors that say where.

use std::collections::{BTreeMap, HashMap};

use hub_xmlrpc::{from_missing, from_value, to_value, DateTime, Struct, Value};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Owner {
    id: i32,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Building,
    Complete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Build {
    id: u32,
    nvr: String,
    owner: Owner,
    state: State,
    tags: Vec<String>,
    task: Option<i64>,
    score: f64,
    #[serde(with = "serde_bytes")]
    log: Vec<u8>,
    created: DateTime,
    extra: BTreeMap<String, i32>,
    pair: (i32, String),
    ok: bool,
    initial: char,
}

fn sample() -> Build {
    Build {
        id: 7,
        nvr: "bash-5.2-1".into(),
        owner: Owner {
            id: 1,
            name: "alice".into(),
        },
        state: State::Complete,
        tags: vec!["f40".into(), "f41".into()],
        task: None,
        score: 0.5,
        log: b"\x00\xffbin".to_vec(),
        created: DateTime::new(2024, 2, 29, 23, 59, 59).expect("dt"),
        extra: [("a".to_owned(), 1)].into_iter().collect(),
        pair: (3, "three".into()),
        ok: true,
        initial: 'b',
    }
}

#[test]
fn a_user_struct_maps_to_the_expected_value() {
    let v = to_value(&sample()).expect("encode");
    let s = v.as_struct().expect("struct");
    let names: Vec<&str> = s.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(
        names,
        [
            "id", "nvr", "owner", "state", "tags", "task", "score", "log", "created", "extra",
            "pair", "ok", "initial"
        ]
    );
    // Field names are the type's own `&'static str`s: no copy per member.
    assert!(s
        .iter()
        .all(|(k, _)| matches!(k, std::borrow::Cow::Borrowed(_))));
    // A map's keys are data: owned.
    let Some(Value::Struct(extra)) = s.get("extra") else {
        panic!("extra is a struct");
    };
    assert!(matches!(extra.iter().next(), Some((std::borrow::Cow::Owned(k), _)) if k == "a"));
    assert_eq!(s.get("id"), Some(&Value::Int(7)));
    assert_eq!(s.get("state"), Some(&Value::from("complete")));
    assert_eq!(s.get("task"), Some(&Value::Nil));
    assert_eq!(s.get("log"), Some(&Value::Base64(b"\x00\xffbin".to_vec())));
    assert!(matches!(s.get("created"), Some(Value::DateTime(_))));
    assert_eq!(
        s.get("pair"),
        Some(&Value::Array(vec![Value::Int(3), Value::from("three")]))
    );
    assert_eq!(s.get("initial"), Some(&Value::from("b")));
    assert!(matches!(s.get("extra"), Some(Value::Struct(_))));
}

#[test]
fn user_types_round_trip() {
    let b = sample();
    let back: Build = from_value(to_value(&b).expect("encode")).expect("decode");
    assert_eq!(back, b);
}

#[test]
fn absent_option_member_is_none() {
    let mut v = to_value(&sample()).expect("encode");
    if let Value::Struct(s) = &mut v {
        s.remove("task");
    }
    let b: Build = from_value(v).expect("decode");
    assert_eq!(b.task, None);
}

#[test]
fn errors_name_the_path_and_quote_short() {
    let mut v = to_value(&sample()).expect("encode");
    if let Value::Struct(s) = &mut v {
        if let Some(Value::Struct(owner)) = s.get_mut("owner") {
            owner.insert("name", 5);
            owner.insert("id", "x");
        }
    }
    let e = from_value::<Build>(v).expect_err("mistyped").in_param(1);
    assert_eq!(
        e.to_string(),
        r#"params[1].owner.id: expected int, found string "x""#
    );

    let e = from_value::<Vec<Owner>>(Value::Array(vec![
        to_value(&Owner {
            id: 1,
            name: "a".into(),
        })
        .expect("encode"),
        Value::Struct(Struct::new()),
    ]))
    .expect_err("missing");
    assert_eq!(e.to_string(), "[1].id: missing member");

    let long = "y".repeat(10_000);
    let e = from_value::<i32>(Value::from(long.as_str())).expect_err("long");
    assert!(e.to_string().len() < 80, "{e}");
}

#[test]
fn integers_are_range_checked() {
    assert_eq!(from_value::<i32>(Value::Int(5)).expect("fits"), 5);
    let e = from_value::<i32>(Value::Int(5_000_000_000)).expect_err("i32");
    assert_eq!(e.to_string(), "int 5000000000 does not fit in i32");
    assert!(from_value::<u8>(Value::Int(256)).is_err());
    assert!(from_value::<u64>(Value::Int(-1)).is_err());
    assert_eq!(
        from_value::<u64>(Value::Int(i64::MAX)).expect("u64"),
        i64::MAX as u64
    );

    let e = to_value(&u64::MAX).expect_err("u64 max");
    assert!(e.to_string().contains("18446744073709551615"), "{e}");
    assert_eq!(
        to_value(&(i64::MAX as u64)).expect("fits"),
        Value::Int(i64::MAX)
    );
    let e = to_value(&vec![0u64, u64::MAX]).expect_err("nested");
    assert!(e.to_string().starts_with("[1]: "), "{e}");
}

#[test]
fn doubles_accept_ints() {
    assert_eq!(from_value::<f64>(Value::Int(3)).expect("int"), 3.0);
    assert_eq!(from_value::<f32>(Value::Double(0.5)).expect("f32"), 0.5);
    assert!(from_value::<f64>(Value::from("1.0")).is_err());
}

#[test]
fn options_and_missing() {
    assert_eq!(from_value::<Option<i32>>(Value::Nil).expect("nil"), None);
    assert_eq!(
        from_value::<Option<i32>>(Value::Int(1)).expect("some"),
        Some(1)
    );
    assert_eq!(from_missing::<Option<String>>().expect("none"), None);
    assert_eq!(
        from_missing::<i32>().expect_err("required").to_string(),
        "missing"
    );
    assert_eq!(to_value(&None::<i32>).expect("none"), Value::Nil);
    assert_eq!(to_value(&()).expect("unit"), Value::Nil);
}

#[test]
fn maps_with_string_and_number_keys() {
    let mut m = HashMap::new();
    m.insert("x".to_owned(), vec![1, 2]);
    let v = to_value(&m).expect("encode");
    assert_eq!(
        from_value::<HashMap<String, Vec<i32>>>(v).expect("decode"),
        m
    );

    let mut by_id = BTreeMap::new();
    by_id.insert(10u32, "ten".to_owned());
    let v = to_value(&by_id).expect("encode");
    assert_eq!(
        v.as_struct().expect("struct").get("10"),
        Some(&Value::from("ten"))
    );
    assert_eq!(
        from_value::<BTreeMap<u32, String>>(v).expect("decode"),
        by_id
    );

    let mut bad = BTreeMap::new();
    bad.insert(vec![1], 1);
    assert!(to_value(&bad).is_err());
}

#[test]
fn enums() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: i32, h: i32 },
        Pair(i32, i32),
    }
    for s in [
        Shape::Dot,
        Shape::Circle(1.5),
        Shape::Rect { w: 1, h: 2 },
        Shape::Pair(3, 4),
    ] {
        let v = to_value(&s).expect("encode");
        assert_eq!(from_value::<Shape>(v).expect("decode"), s);
    }
    assert_eq!(to_value(&Shape::Dot).expect("unit"), Value::from("Dot"));
    let e = from_value::<Shape>(Value::from("Square")).expect_err("unknown");
    assert!(e.to_string().contains("Square"), "{e}");
}

#[test]
fn bytes_and_strings() {
    let v = to_value(serde_bytes::Bytes::new(b"abc")).expect("bytes");
    assert_eq!(v, Value::Base64(b"abc".to_vec()));
    let b: serde_bytes::ByteBuf = from_value(v.clone()).expect("bytebuf");
    assert_eq!(b.as_ref(), b"abc");
    // A plain Vec<u8> also decodes from base64.
    assert_eq!(from_value::<Vec<u8>>(v).expect("vec"), b"abc");
    assert_eq!(from_value::<char>(Value::from("x")).expect("char"), 'x');
    assert!(from_value::<char>(Value::from("xy")).is_err());
}

#[test]
fn tuples_check_their_length() {
    let v = Value::Array(vec![Value::Int(1), Value::Int(2), Value::Int(3)]);
    assert!(from_value::<(i32, i32)>(v.clone()).is_err());
    assert_eq!(from_value::<(i32, i32, i32)>(v).expect("3"), (1, 2, 3));
}

#[test]
fn value_is_any_type() {
    let v = to_value(&sample()).expect("encode");
    let same: Value = from_value(v.clone()).expect("value");
    assert_eq!(same, v);
    let again = to_value(&same).expect("value encodes");
    assert_eq!(again, v);
    let s: Struct = from_value(v.clone()).expect("struct");
    assert_eq!(Value::Struct(s), v);
    assert!(from_value::<Struct>(Value::Int(1)).is_err());
}

#[test]
fn datetime_through_serde() {
    let dt: DateTime = "20240229T23:59:59".parse().expect("dt");
    assert_eq!(to_value(&dt).expect("encode"), Value::DateTime(dt));
    assert_eq!(
        from_value::<DateTime>(Value::DateTime(dt)).expect("decode"),
        dt
    );
    // A string in one of the accepted forms too.
    assert_eq!(
        from_value::<DateTime>(Value::from("2024-02-29T23:59:59")).expect("str"),
        dt
    );
    assert!(from_value::<DateTime>(Value::Int(1)).is_err());
    // And through a self-describing format such as JSON: a plain string.
    assert_eq!(
        serde_json::to_string(&dt).expect("json"),
        "\"20240229T23:59:59\""
    );
    assert_eq!(
        serde_json::from_str::<DateTime>("\"20240229T23:59:59\"").expect("json"),
        dt
    );
    // A DateTime read as a String gives its wire form.
    assert_eq!(
        from_value::<String>(Value::DateTime(dt)).expect("string"),
        "20240229T23:59:59"
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Stamped {
    when: DateTime,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Flattened {
    #[serde(flatten)]
    stamped: Stamped,
    extra: u8,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Tagged {
    A { when: DateTime },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    D(DateTime),
}

/// serde buffers a flattened struct's fields, and a tagged or untagged enum's content,
/// through `deserialize_any`, where a `DateTime` is its marker map: read back as a
/// `DateTime` (it was refused: "expected dateTime.iso8601, found struct").
#[test]
fn a_datetime_survives_serde_s_buffered_content() {
    let when: DateTime = "19980717T14:08:55".parse().expect("a dateTime");
    let flat = Flattened {
        stamped: Stamped { when },
        extra: 1,
    };
    let value = to_value(&flat).expect("encoded");
    assert_eq!(from_value::<Flattened>(value).expect("flattened"), flat);
    let tagged = Tagged::A { when };
    let value = to_value(&tagged).expect("encoded");
    assert_eq!(from_value::<Tagged>(value).expect("tagged"), tagged);
    let value = to_value(&Untagged::D(when)).expect("encoded");
    assert_eq!(
        from_value::<Untagged>(value).expect("untagged"),
        Untagged::D(when)
    );
    // A plain string in the dateTime's form is still one, and other text is not.
    assert_eq!(
        from_value::<Stamped>(to_value(&Stamped { when }).expect("encoded")).expect("plain"),
        Stamped { when }
    );
    let other = Value::Struct(Struct::from_iter([(
        "when".to_owned(),
        Value::from("soon"),
    )]));
    assert!(from_value::<Stamped>(other).is_err());
}
