//! Malformed and hostile XML-RPC bodies over real sockets: each is answered with the right
//! fault (HTTP 200) or status, nothing is read from disk or the network, no entity is
//! expanded, and the server serves normally afterwards.
#![allow(clippy::unwrap_used)]

mod hostile_support;
mod lifecycle_support;
mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use hostile_support::{post_bytes, start};
use hub_xmlrpc::Value;
use lifecycle_support::outcome;
use support::{call_xml, config, Conn};

const NOT_WELL_FORMED: i32 = -32700;
const INVALID: i32 = -32600;

/// Either parse fault: the split between "not XML" and "not XML-RPC" is the codec's call.
const PARSE: i32 = 0;

fn check(addr: std::net::SocketAddr, what: &str, body: &[u8], want: i32, secrets: &[&str]) {
    let t = Instant::now();
    let r = post_bytes(addr, body).unwrap_or_else(|| panic!("{what}: no answer"));
    let elapsed = t.elapsed();
    let code = outcome(&r)
        .map(|v| panic!("{what}: accepted as {v:?}"))
        .unwrap_err()
        .0;
    match want {
        PARSE => assert!(
            code == NOT_WELL_FORMED || code == INVALID,
            "{what}: fault {code}"
        ),
        want => assert_eq!(code, want, "{what}: {}", r.body),
    }
    for s in secrets {
        assert!(!r.body.contains(s), "{what}: the answer leaks {s:?}");
    }
    assert!(
        r.body.len() < 4096,
        "{what}: a {} byte answer",
        r.body.len()
    );
    assert!(elapsed < Duration::from_secs(5), "{what}: took {elapsed:?}");
}

#[test]
fn malformed_calls_get_the_right_fault() {
    let server = start(config());
    let addr = server.local_addr();
    let good = call_xml("echo", &["<string>fine</string>"]);
    let cases: Vec<(&str, Vec<u8>, i32)> = vec![
        (
            "not XML",
            b"hello, is this the server?".to_vec(),
            NOT_WELL_FORMED,
        ),
        ("empty", Vec::new(), PARSE),
        (
            "truncated",
            good.as_bytes()[..good.len() / 2].to_vec(),
            NOT_WELL_FORMED,
        ),
        (
            "wrong root",
            b"<?xml version=\"1.0\"?><methodResponse><params/></methodResponse>".to_vec(),
            INVALID,
        ),
        (
            "missing methodName",
            b"<methodCall><params><param><value><int>1</int></value></param></params></methodCall>"
                .to_vec(),
            INVALID,
        ),
        (
            "unknown value type",
            call_xml("echo", &["<bignum>12345678901234567890</bignum>"]).into_bytes(),
            INVALID,
        ),
        (
            "int out of range",
            call_xml("echo", &["<int>99999999999999999999</int>"]).into_bytes(),
            INVALID,
        ),
        (
            "mismatched tags",
            b"<methodCall><methodName>echo</methodCall></methodName>".to_vec(),
            NOT_WELL_FORMED,
        ),
        (
            "invalid UTF-8",
            [
                &b"<methodCall><methodName>echo</methodName><params><param><value><string>"[..],
                &[0xff, 0xfe, 0xc3, 0x28],
                b"</string></value></param></params></methodCall>",
            ]
            .concat(),
            NOT_WELL_FORMED,
        ),
        (
            "NUL bytes",
            call_xml("echo", &["<string>a\0b</string>"]).into_bytes(),
            NOT_WELL_FORMED,
        ),
        (
            "NUL in the method name",
            b"<methodCall><methodName>ec\0ho</methodName></methodCall>".to_vec(),
            NOT_WELL_FORMED,
        ),
        (
            "10,000-deep nesting",
            {
                let mut s =
                    String::from("<methodCall><methodName>echo</methodName><params><param>");
                s.push_str(&"<value><array><data>".repeat(10_000));
                s.push_str(&"</data></array></value>".repeat(10_000));
                s.push_str("</param></params></methodCall>");
                s.into_bytes()
            },
            PARSE,
        ),
        (
            "10,000 unclosed elements",
            format!("<methodCall>{}", "<a>".repeat(10_000)).into_bytes(),
            PARSE,
        ),
    ];
    for (what, body, want) in &cases {
        check(addr, what, body, *want, &[]);
    }
    let r = Conn::open(addr).call("echo", &["<string>still here</string>"]);
    assert_eq!(outcome(&r), Ok(Value::from("still here")));
    assert_eq!(server.stats().counters.snapshot().panics, 0);
    server.shutdown();
}

#[test]
fn entities_are_never_expanded_nor_fetched() {
    let server = start(config());
    let addr = server.local_addr();
    // a file whose content must never appear in an answer
    let secret = format!("SECRET-CONTENT-{}", fastrand_token());
    let path = std::env::temp_dir().join(format!(
        "hub-hostile-{}-{}.txt",
        std::process::id(),
        fastrand_token()
    ));
    std::fs::write(&path, &secret).unwrap();
    // a web server that must never be asked
    let web = TcpListener::bind("127.0.0.1:0").unwrap();
    web.set_nonblocking(true).unwrap();
    let web_url = format!("http://{}/evil.dtd", web.local_addr().unwrap());

    let wrap = |dtd: &str, value: &str| {
        format!(
            "<?xml version=\"1.0\"?>{dtd}<methodCall><methodName>echo</methodName><params><param><value><string>{value}</string></value></param></params></methodCall>"
        )
        .into_bytes()
    };
    let mut laughs = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        laughs.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&{prev};").repeat(10)
        ));
    }
    laughs.push_str("]>");
    let file_url = format!("file://{}", path.display());
    let cases = [
        ("billion laughs", wrap(&laughs, "&lol9;")),
        (
            "internal entity",
            wrap("<!DOCTYPE x [<!ENTITY e \"expanded\">]>", "&e;"),
        ),
        (
            "file:// external entity",
            wrap(
                &format!("<!DOCTYPE x [<!ENTITY xxe SYSTEM \"{file_url}\">]>"),
                "&xxe;",
            ),
        ),
        (
            "http:// external entity",
            wrap(
                &format!("<!DOCTYPE x [<!ENTITY xxe SYSTEM \"{web_url}\">]>"),
                "&xxe;",
            ),
        ),
        (
            "external parameter entity",
            wrap(
                &format!("<!DOCTYPE x [<!ENTITY % p SYSTEM \"{web_url}\"> %p;]>"),
                "x",
            ),
        ),
        (
            "external DTD",
            wrap(&format!("<!DOCTYPE x SYSTEM \"{file_url}\">"), "x"),
        ),
        ("undeclared entity", wrap("", "&xxe;")),
    ];
    for (what, body) in &cases {
        // A parse fault quotes at most 40 characters of the client's own request near the
        // error (so "expanded" may be quoted from the DTD itself); never an expansion.
        check(addr, what, body, PARSE, &[&secret, "lollol"]);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        web.accept().is_err(),
        "the server fetched an external entity"
    );
    std::fs::remove_file(&path).unwrap();
    let r = Conn::open(addr).call("echo", &["<string>&amp;&lt;ok&gt;</string>"]);
    assert_eq!(outcome(&r), Ok(Value::from("&<ok>")));
    server.shutdown();
}

fn fastrand_token() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Big but within the limit: a 3 MiB string and a million-element array are parsed and served.
#[test]
fn large_values_within_the_limit_are_served() {
    let mut cfg = config();
    cfg.max_request_length = 24 << 20;
    let server = start(cfg);
    let addr = server.local_addr();

    let big = "x".repeat(3 << 20);
    let t = Instant::now();
    let r = post_bytes(
        addr,
        call_xml("echo", &[&format!("<string>{big}</string>")]).as_bytes(),
    )
    .unwrap();
    let v = outcome(&r).unwrap();
    assert_eq!(v.as_str().map(str::len), Some(3 << 20));
    eprintln!("3 MiB string echoed in {:?}", t.elapsed());

    let items = "<value><i4>1</i4></value>".repeat(1_000_000);
    let body = call_xml("len", &[&format!("<array><data>{items}</data></array>")]);
    assert!(body.len() < 24 << 20);
    let t = Instant::now();
    let r = post_bytes(addr, body.as_bytes()).unwrap();
    assert_eq!(outcome(&r), Ok(Value::Int(1_000_000)));
    eprintln!(
        "a million-element array ({} MiB) counted in {:?}",
        body.len() >> 20,
        t.elapsed()
    );

    // one byte over the limit: 413, not parsed
    let mut cfg = config();
    cfg.max_request_length = 1 << 20;
    let small = start(cfg);
    let body = call_xml(
        "echo",
        &[&format!("<string>{}</string>", "y".repeat(1 << 20))],
    );
    let r = post_bytes(small.local_addr(), body.as_bytes()).unwrap();
    assert_eq!(r.status, 413);
    small.shutdown();

    let r = Conn::open(addr).call("echo", &["<int>5</int>"]);
    assert_eq!(outcome(&r), Ok(Value::Int(5)));
    server.shutdown();
}
