//! The echo example, run as a process, driven by Python's `xmlrpc.client`: every value type
//! round trips, faults keep their codes, a panic is caged, MultiCall and introspection work,
//! gzipped requests are decoded and gzipped answers read, with `echo`/`getBuild` as async
//! handlers and as blocking ones. Over HTTPS (a throwaway PKI, `support::Pki`): Python
//! verifies the server's certificate against the test CA and no other, a plain `http://`
//! request to the TLS port gets `400`, and a server that requires client certificates lets
//! in only clients that present one from its CA.

mod support;

use support::{python, serve, ClientCerts, Pki};

/// Asserts with Python's own client; prints `ok` when every check passed.
const SCRIPT: &str = r#"
import datetime, http.client, sys, urllib.parse
import xmlrpc.client as x

url = sys.argv[1]
p = x.ServerProxy(url, allow_none=True, use_builtin_types=True)

def same(got, want, what):
    assert got == want and type(got) is type(want), f"{what}: sent {want!r}, got {got!r}"

# scalars, each with its Python type back
for v in [0, 1, -1, 2**31 - 1, -2**31, True, False, "", "plain",
          "entities <&> ' \" ]]> &amp;", "unicode: héllo ✓ 🦀 \u00a0 tab\tnewline\n",
          0.0, 0.1, -1.5e300, 5e-324, 1e16,
          datetime.datetime(1998, 7, 17, 14, 8, 55), datetime.datetime(2024, 2, 29, 0, 0, 0),
          b"", b"\x00\xff binary \x01", bytes(range(256)),
          None, [], {}, [[]], {"e": {}}]:
    same(p.echo(v), v, "echo")

# U+FFFE and U+FFFF: Python sends them raw and the server reads them, but no XML parser
# reads them back (expat: "not well-formed"), so the answer carries U+FFFD for each
same(p.echo("b\ufffec\uffffd"), "b\ufffdc\ufffdd", "echo of noncharacters")

# containers, nested and mixed; member order kept
s = {"name": "bash", "id": 7, "tags": ["a", 1, 2.5, None, True],
     "nested": {"deeper": {"list": [[1, 2], [3]]}, "when": datetime.datetime(2000, 1, 1, 0, 0, 0)},
     "blob": b"\x00\x01", "ünï": "cödé"}
got = p.echo(s)
same(got, s, "echo struct")
assert list(got) == list(s), f"member order: {list(got)}"
arr = [1, "two", 3.0, [4, [5]], {"six": 6}, None, b"7", False]
same(p.echo(arr), arr, "echo array")

# an i8-sized int: Python refuses to send one, so send it raw; it parses the answer
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
for n in [2**31, -2**31 - 1, 2**63 - 1, -2**63]:
    body = ("<?xml version='1.0'?><methodCall><methodName>echo</methodName><params>"
            f"<param><value><i8>{n}</i8></value></param></params></methodCall>")
    conn.request("POST", u.path, body, {"Content-Type": "text/xml"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    (got,), _ = x.loads(resp.read(), use_builtin_types=True)
    same(got, n, "echo i8")
conn.close()

# getBuild: the exact struct
want = {"id": 7, "name": "bash", "version": "5.2.15", "release": "3.fc40", "state": 1,
        "owner_name": "builder", "volume_id_set": True, "score": 0.5}
got = p.getBuild(7)
same(got, want, "getBuild(7)")
assert list(got) == list(want), f"getBuild member order: {list(got)}"
same(p.getBuild(-3)["id"], -3, "getBuild(-3)")

# faults keep their codes and messages
try:
    p.fail(1005, "x")
    raise AssertionError("fail() answered no fault")
except x.Fault as f:
    assert (f.faultCode, f.faultString) == (1005, "x"), f
try:
    p.getBuild("seven")
    raise AssertionError("getBuild('seven') answered no fault")
except x.Fault as f:
    assert f.faultCode == -32602, f
try:
    p.no_such_method()
    raise AssertionError("no fault")
except x.Fault as f:
    assert f.faultCode == -32601, f

# koji's keyword arguments: the trailing struct's __starstar may be any value Python takes
# for true (koji's decode_args asks no more); false leaves it a positional struct
try:
    p.fail(1006, {"message": "by keyword", "__starstar": 1})
    raise AssertionError("fail() by keyword answered no fault")
except x.Fault as f:
    assert (f.faultCode, f.faultString) == (1006, "by keyword"), f
try:
    p.fail(1006, {"message": "positional", "__starstar": 0})
    raise AssertionError("fail() with a struct answered no fault")
except x.Fault as f:
    assert f.faultCode == -32602, f

# a panic answers an internal-error fault, its text does not leak, the server keeps serving
for _ in range(5):
    try:
        p.crash()
        raise AssertionError("crash() answered no fault")
    except x.Fault as f:
        assert f.faultCode == -32603, f
        assert "crash() was called" not in f.faultString, f
    same(p.echo("alive"), "alive", "after crash")
same(p.sleep(5), 5, "sleep")

# MultiCall: results in order, a fault raised at its own position only
m = x.MultiCall(p)
m.echo(1)
m.getBuild(7)
m.fail(1005, "in a batch")
m.echo([None, b"z"])
m.crash()
m.sleep(1)
r = m()
same(r[0], 1, "multicall echo")
same(r[1], want, "multicall getBuild")
try:
    r[2]
    raise AssertionError("multicall fail answered no fault")
except x.Fault as f:
    assert (f.faultCode, f.faultString) == (1005, "in a batch"), f
same(r[3], [None, b"z"], "multicall echo 2")
try:
    r[4]
    raise AssertionError("multicall crash answered no fault")
except x.Fault as f:
    assert f.faultCode == -32603, f
same(r[5], 1, "multicall sleep")

# gzip: a transport with encode_threshold set compresses every request body past it
# (Content-Encoding: gzip), as Python's own server decodes
class GzipTransport(x.Transport):
    encode_threshold = 0
gz = x.ServerProxy(url, transport=GzipTransport(), allow_none=True, use_builtin_types=True)
for v in ["hello", s, arr, "x" * 200_000]:
    same(gz.echo(v), v, "gzip echo")
same(gz.getBuild(7), want, "gzip getBuild")
m = x.MultiCall(gz)
m.echo(1)
m.getBuild(7)
same(list(m()), [1, want], "gzip multicall")
try:
    gz.getBuild("seven")
    raise AssertionError("gzip getBuild('seven') answered no fault")
except x.Fault as f:
    assert f.faultCode == -32602, f

# the answer's own encoding, as the server chose it (gzip when the run asks for it)
class Seen(x.Transport):
    def parse_response(self, response):
        self.coding = response.getheader("Content-Encoding")
        return super().parse_response(response)
seen = Seen()
same(x.ServerProxy(url, transport=seen).echo("peek"), "peek", "echo through Seen")
want_coding = "gzip" if sys.argv[2:] == ["gzip"] else None
assert seen.coding == want_coding, f"answer Content-Encoding {seen.coding!r}, want {want_coding!r}"

# introspection
names = p.system.listMethods()
for n in ["echo", "getBuild", "sleep", "fail", "crash", "getAPIVersion", "_listapi",
          "system.listMethods", "system.methodHelp", "system.methodSignature",
          "system.multicall"]:
    assert n in names, f"{n} not in {names}"
assert names == sorted(names), names
assert "Returns its one argument unchanged" in p.system.methodHelp("echo"), p.system.methodHelp("echo")
assert "Answers the fault" in p.system.methodHelp("fail"), p.system.methodHelp("fail")
same(p.system.methodSignature("getBuild"), [["struct", "int"]], "getBuild signature")
sig = p.system.methodSignature("fail")
assert sig == [["nil", "int", "string"]], sig
sig = p.system.methodSignature("sleep")
assert sig == [["int", "int"]], sig
print("ok")
"#;

fn drive(handlers: &str) {
    drive_with(&["--handlers", handlers], "plain");
}

/// Runs the script against the echo example started with `args`; `answers` is how the
/// script expects them encoded (`gzip` or `plain`).
fn drive_with(args: &[&str], answers: &str) {
    let server = support::serve("echo", args);
    let ran = support::python(SCRIPT, &[&server.url(), answers]);
    assert_eq!(
        ran.ok().trim(),
        "ok",
        "{ran}\n--- server stderr\n{}",
        server.stderr()
    );
}

#[test]
fn python_drives_echo_with_async_handlers() {
    drive("async");
}

#[test]
fn python_drives_echo_with_blocking_handlers() {
    drive("blocking");
}

/// Every answer gzipped (`gzip_answers_over = 1`): Python asks for gzip and decodes it.
#[test]
fn python_drives_echo_with_gzipped_answers() {
    let conf = std::env::temp_dir().join(format!("hub-echo-gzip-{}.toml", std::process::id()));
    std::fs::write(&conf, "gzip_answers_over = 1\n").expect("temp config written");
    drive_with(
        &["--config", conf.to_str().expect("a UTF-8 temp path")],
        "gzip",
    );
    let _ = std::fs::remove_file(conf);
}

/// Python over HTTPS: `argv` is the `https://` URL, then the CA file. Prints `ok`.
const HTTPS_SCRIPT: &str = r#"
import http.client, ssl, sys, urllib.parse
import xmlrpc.client as x

url, ca = sys.argv[1:3]
p = x.ServerProxy(url, allow_none=True, use_builtin_types=True,
                  context=ssl.create_default_context(cafile=ca))
# several calls on one kept-alive connection, one answer spanning many TLS records
for v in ["over tls", 7, {"nested": [1, None, b"\x00\xff"]}, "x" * 300_000]:
    got = p.echo(v)
    assert got == v, (got if len(repr(got)) < 200 else len(got), v if len(repr(v)) < 200 else len(v))
m = x.MultiCall(p)
m.echo(1)
m.getBuild(7)
r = list(m())
assert r[0] == 1 and r[1]["name"] == "bash", r
try:
    p.fail(1005, "faults too")
    raise AssertionError("fail() answered no fault")
except x.Fault as f:
    assert (f.faultCode, f.faultString) == (1005, "faults too"), f

# Python's default context trusts the system's CAs, not the test CA: the server really
# serves the generated certificate, and Python really checks it
try:
    x.ServerProxy(url).echo(1)
    raise AssertionError("a certificate from an untrusted CA was accepted")
except ssl.SSLCertVerificationError as e:
    assert "certificate verify failed" in str(e), e

# plain HTTP to the TLS port: 400, and a body that says what to do
u = urllib.parse.urlsplit(url)
plain = "http://%s/RPC2" % u.netloc
try:
    x.ServerProxy(plain).echo(1)
    raise AssertionError("plain HTTP to the TLS port was answered")
except x.ProtocolError as e:
    assert e.errcode == 400, (e.errcode, e.errmsg)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
conn.request("POST", "/RPC2", x.dumps((1,), "echo"), {"Content-Type": "text/xml"})
resp = conn.getresponse()
body = resp.read().decode()
assert resp.status == 400 and "use an https:// URL" in body, (resp.status, body)
print("ok")
"#;

/// The echo example over HTTPS: Python's client verifies the test CA's server certificate
/// and round trips values, refuses the server under its default (system) CAs with a
/// certificate-verify error, and a plain `http://` request to the port gets `400`.
#[test]
fn python_calls_echo_over_https() {
    let pki = Pki::new("echo-https");
    let server = serve(
        "echo",
        &["--config", &pki.server_config(ClientCerts::NotAsked, "")],
    );
    assert_eq!(server.scheme, "https");
    let ran = python(HTTPS_SCRIPT, &[&server.url(), &pki.ca()]);
    assert_eq!(
        ran.ok().trim(),
        "ok",
        "{ran}\n--- server stderr\n{}",
        server.stderr()
    );
}

/// Python with a client certificate: `argv` is the URL, the CA file, then the certificate
/// file that works (`good`) and the ones that must not (`bad`, or `none` for none at all).
/// Prints one line per client: `accepted` or the refusal's SSL reason.
const CLIENT_CERT_SCRIPT: &str = r#"
import ssl, sys
import xmlrpc.client as x

url, ca = sys.argv[1:3]
for cert in sys.argv[3:]:
    ctx = ssl.create_default_context(cafile=ca)
    if cert != "none":
        ctx.load_cert_chain(cert)
    p = x.ServerProxy(url, context=ctx)
    try:
        assert p.echo("with " + cert) == "with " + cert
        print("accepted")
    except x.Fault as f:
        raise AssertionError("a refused client got as far as a fault: %r" % f)
    except ssl.SSLError as e:
        # OpenSSL's reason: the alert the server sent
        print("refused:", e.reason)
    except OSError as e:
        # the server closed the connection before the client read its alert
        print("refused:", type(e).__name__)
"#;

/// `tls_require_client_cert`: a client without a certificate, and one whose certificate
/// comes from another CA, are refused in the handshake; one with a certificate from
/// `tls_client_ca_file` calls as usual.
#[test]
fn python_needs_a_client_certificate_when_required() {
    let pki = Pki::new("echo-client-cert");
    let server = serve(
        "echo",
        &["--config", &pki.server_config(ClientCerts::Required, "")],
    );
    let alice = pki.client("alice");
    let stranger = pki.foreign_client("alice");
    let ran = python(
        CLIENT_CERT_SCRIPT,
        &[&server.url(), &pki.ca(), "none", &alice, &stranger],
    );
    let lines: Vec<&str> = ran.ok().lines().collect();
    let [none, alice, stranger] = lines[..] else {
        panic!("one line per client expected: {ran}");
    };
    // The server's alerts reach the client (it lingers after a failed handshake instead of
    // resetting the connection under them): each refusal says why.
    assert_eq!(
        none, "refused: TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "no certificate: {ran}"
    );
    assert_eq!(
        alice,
        "accepted",
        "{ran}\n--- server stderr\n{}",
        server.stderr()
    );
    assert_eq!(
        stranger, "refused: TLSV1_ALERT_UNKNOWN_CA",
        "another CA's certificate: {ran}"
    );
}

/// `--listen` given twice: the example listens on both addresses (one `listening on` line
/// each), and Python is answered on each.
#[test]
fn python_is_answered_on_every_listen_address() {
    let server = support::serve("echo", &["--listen", "127.0.0.2:0"]);
    let second = server.next_addr().expect("a second `listening on` line");
    assert_eq!(second.ip(), std::net::Ipv4Addr::new(127, 0, 0, 2));
    for addr in [server.addr, second] {
        let ran = python(
            "import sys, xmlrpc.client\nprint(xmlrpc.client.ServerProxy(sys.argv[1]).echo('hi'))",
            &[&format!("http://{addr}/RPC2")],
        );
        assert_eq!(ran.ok().trim(), "hi", "{addr}");
    }
}
