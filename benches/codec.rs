//! The codec's speed, beside dxr 0.9 doing the same work and a bare quick-xml event
//! scan of the same bytes (the floor no quick-xml based parser can beat).
//!
//! Cases: (a) `echo("hello")`, (b) a ~1 MiB call holding an array of structs, (c) an
//! 8-member struct response. Each is decoded (bytes to values) and encoded (values to
//! bytes). Then what gzipping a ~1 MiB answer costs beside writing it (`gzip_answers_over`).
//! Run: `cargo bench --bench codec` (`cargo bench --bench codec -- gzip` for that part).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hub_xmlrpc::{
    parse_call, parse_response, write_call, write_response, Limits, MethodCall, MethodResponse,
    Struct, Value,
};
use quick_xml::events::Event;

/// One benchmark case: the same document in each codec's own types.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    is_call: bool,
}

fn build(i: i64) -> Value {
    let mut s = Struct::new();
    s.insert("id", Value::Int(i));
    s.insert("name", Value::from(format!("package-{i}")));
    s.insert("nvr", Value::from(format!("package-{i}-1.0-1.fc40")));
    s.insert("owner", Value::from("alice & bob"));
    s.insert("state", Value::Int(i % 4));
    s.insert("size", Value::Int(5_000_000_000 + i));
    s.insert("score", Value::Double(i as f64 / 7.0));
    s.insert("active", Value::Bool(i % 2 == 0));
    s.insert(
        "tags",
        Value::Array(vec![Value::from("f40"), Value::from("f40-updates")]),
    );
    Value::Struct(s)
}

fn cases() -> Vec<Case> {
    let mut echo = Vec::new();
    write_call(
        &MethodCall::new("echo", vec![Value::from("hello")]),
        &mut echo,
    );

    let mut builds = Vec::new();
    let mut big = Vec::new();
    let mut i = 0;
    while big.len() < 1 << 20 {
        builds.extend((i..i + 256).map(build));
        i += 256;
        big.clear();
        write_call(
            &MethodCall::new("importBuilds", vec![Value::Array(builds.clone())]),
            &mut big,
        );
    }

    let mut s = Struct::new();
    s.insert("id", Value::Int(1));
    s.insert("name", Value::from("bash"));
    s.insert("version", Value::from("5.2.26"));
    s.insert("release", Value::from("1.fc40"));
    s.insert("epoch", Value::Nil);
    s.insert("owner_name", Value::from("alice"));
    s.insert("state", Value::Int(1));
    s.insert("size", Value::Int(123_456_789_012));
    let mut resp = Vec::new();
    write_response(&Value::Struct(s), &mut resp);

    vec![
        Case {
            name: "a_echo_call",
            bytes: echo,
            is_call: true,
        },
        Case {
            name: "b_1mib_call",
            bytes: big,
            is_call: true,
        },
        Case {
            name: "c_struct8_response",
            bytes: resp,
            is_call: false,
        },
    ]
}

/// The floor: every quick-xml event of the document, borrowed, nothing else.
fn scan(bytes: &[u8]) -> usize {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut n = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => return n,
            Ok(e) => {
                black_box(&e);
                n += 1;
            }
            Err(_) => return usize::MAX,
        }
    }
}

fn ours_decode(case: &Case) -> usize {
    if case.is_call {
        parse_call(&case.bytes, &Limits::default())
            .map(|c| c.params.len())
            .unwrap_or(0)
    } else {
        match parse_response(&case.bytes, &Limits::default()) {
            Ok(MethodResponse::Success(_)) => 1,
            _ => 0,
        }
    }
}

/// dxr parses from `&str`; a server has to check UTF-8 first, so that is counted.
fn dxr_decode(case: &Case) -> usize {
    let Ok(text) = std::str::from_utf8(&case.bytes) else {
        return 0;
    };
    if case.is_call {
        dxr::MethodCall::from_xml(text)
            .map(|c| c.params.len())
            .unwrap_or(0)
    } else {
        dxr::MethodResponse::from_xml(text).map(|_| 1).unwrap_or(0)
    }
}

fn decode(c: &mut Criterion) {
    for case in cases() {
        assert!(
            ours_decode(&case) > 0 && dxr_decode(&case) > 0,
            "{}",
            case.name
        );
        let mut g = c.benchmark_group(format!("decode/{}", case.name));
        g.throughput(Throughput::Bytes(case.bytes.len() as u64));
        if case.bytes.len() > 100_000 {
            g.sample_size(20);
        }
        g.bench_function(BenchmarkId::from_parameter("hub"), |b| {
            b.iter(|| ours_decode(black_box(&case)))
        });
        g.bench_function(BenchmarkId::from_parameter("dxr"), |b| {
            b.iter(|| dxr_decode(black_box(&case)))
        });
        g.bench_function(BenchmarkId::from_parameter("quick-xml-scan"), |b| {
            b.iter(|| scan(black_box(&case.bytes)))
        });
        g.finish();
    }
}

fn encode(c: &mut Criterion) {
    for case in cases() {
        let mut g = c.benchmark_group(format!("encode/{}", case.name));
        g.throughput(Throughput::Bytes(case.bytes.len() as u64));
        if case.bytes.len() > 100_000 {
            g.sample_size(20);
        }
        // The floor: quick-xml's writer replaying the document's events.
        let mut reader = quick_xml::Reader::from_reader(case.bytes.as_slice());
        let mut events = Vec::new();
        loop {
            match reader.read_event() {
                Ok(Event::Eof) | Err(_) => break,
                Ok(e) => events.push(e.into_owned()),
            }
        }
        if case.is_call {
            let ours = parse_call(&case.bytes, &Limits::UNLIMITED).expect("ours");
            let theirs = dxr::MethodCall::from_xml(std::str::from_utf8(&case.bytes).expect("utf8"))
                .expect("dxr");
            g.bench_function(BenchmarkId::from_parameter("hub"), |b| {
                b.iter(|| {
                    let mut out = Vec::new();
                    write_call(black_box(&ours), &mut out);
                    out
                })
            });
            g.bench_function(BenchmarkId::from_parameter("dxr"), |b| {
                b.iter(|| black_box(&theirs).to_xml().map(String::into_bytes))
            });
        } else {
            let Ok(MethodResponse::Success(ours)) = parse_response(&case.bytes, &Limits::UNLIMITED)
            else {
                panic!("ours")
            };
            let theirs =
                dxr::MethodResponse::from_xml(std::str::from_utf8(&case.bytes).expect("utf8"))
                    .expect("dxr");
            g.bench_function(BenchmarkId::from_parameter("hub"), |b| {
                b.iter(|| {
                    let mut out = Vec::new();
                    write_response(black_box(&ours), &mut out);
                    out
                })
            });
            g.bench_function(BenchmarkId::from_parameter("dxr"), |b| {
                b.iter(|| black_box(&theirs).to_xml().map(String::into_bytes))
            });
        }
        g.bench_function(BenchmarkId::from_parameter("quick-xml-write"), |b| {
            b.iter(|| {
                let mut w = quick_xml::Writer::new(Vec::new());
                for e in black_box(&events) {
                    let _ = w.write_event(e.borrow());
                }
                w.into_inner()
            })
        });
        g.finish();
    }
}

/// What `gzip_answers_over` adds to an answer: the hub writing a ~1 MiB array of builds
/// (the peer), then gzip at the fastest level (what the hub uses) and at the default level.
fn gzip(c: &mut Criterion) {
    use std::io::Write as _;
    let gz = |bytes: &[u8], level: flate2::Compression| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
        e.write_all(bytes).expect("in memory");
        e.finish().expect("in memory")
    };
    let mut builds = Vec::new();
    let mut bytes = Vec::new();
    while bytes.len() < 1 << 20 {
        builds.extend((builds.len() as i64..builds.len() as i64 + 256).map(build));
        bytes.clear();
        write_response(&Value::Array(builds.clone()), &mut bytes);
    }
    let answer = Value::Array(builds);
    for (name, level) in [
        ("fast", flate2::Compression::fast()),
        ("default", flate2::Compression::default()),
    ] {
        let packed = gz(&bytes, level).len();
        println!(
            "gzip/{name}: {} bytes -> {packed} ({:.1}x)",
            bytes.len(),
            bytes.len() as f64 / packed as f64
        );
    }
    let mut g = c.benchmark_group("gzip/1MiB-answer");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(20);
    g.bench_function(BenchmarkId::from_parameter("write"), |b| {
        b.iter(|| {
            let mut out = Vec::new();
            write_response(black_box(&answer), &mut out);
            out
        })
    });
    g.bench_function(BenchmarkId::from_parameter("gzip-fast"), |b| {
        b.iter(|| gz(black_box(&bytes), flate2::Compression::fast()))
    });
    g.bench_function(BenchmarkId::from_parameter("gzip-default"), |b| {
        b.iter(|| gz(black_box(&bytes), flate2::Compression::default()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = decode, encode, gzip
}
criterion_main!(benches);
