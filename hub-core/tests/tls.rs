//! HTTPS: calls over TLS (kept across parking), client certificates reaching the
//! authenticator, and what the TLS port does with clients that cannot speak it: plain HTTP
//! answered `400`, an unknown CA's certificate or a missing required one refused, a stalled
//! handshake closed, bad certificate files refused when the server is built.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use hub_core::{AuthFailure, AuthRequest, Authenticator, Caller, Config, Server, Value};
#[path = "../../tests/support/pki.rs"]
mod pki;
use pki::Pki;
use support::{config, parks, registry_builder, wait_until, Conn};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const LONG: Duration = Duration::from_secs(20);

/// `config()` serving TLS with `pki`'s server certificate.
fn tls_config(pki: &Pki) -> Config {
    Config {
        tls_cert_file: Some(pki.dir.path("server.pem").into()),
        tls_key_file: Some(pki.dir.path("server.key").into()),
        ..config()
    }
}

/// The same, asking clients for certificates signed by `pki`'s CA.
fn tls_config_with_client_ca(pki: &Pki) -> Config {
    Config {
        tls_client_ca_file: Some(pki.ca().into()),
        ..tls_config(pki)
    }
}

/// A client trusting `pki`'s CA, presenting the certificate in `cert_file` (certificate and
/// key, one PEM) if given.
fn client(pki: &Pki, cert_file: Option<&str>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(pki.ca()).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert_file {
        None => builder.with_no_client_auth(),
        Some(file) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(file)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(file).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

type TlsConn = Conn<StreamOwned<ClientConnection, TcpStream>>;

/// A keep-alive HTTPS connection to `addr` (the handshake happens with the first request).
fn open(addr: SocketAddr, client: &Arc<ClientConfig>) -> TlsConn {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(LONG)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = ClientConnection::new(Arc::clone(client), name).unwrap();
    Conn::over(StreamOwned::new(tls, tcp))
}

/// Names the caller after its certificate: `CN|subject`, or nobody without one.
struct ByCertificate;

impl Authenticator for ByCertificate {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<Caller>, AuthFailure> {
        Ok(req.client_cert.map(|cert| {
            Caller::new(format!(
                "{}|{}",
                cert.common_name().unwrap_or("-"),
                cert.subject()
            ))
        }))
    }
}

/// A server with the test registry, `whoami` (the caller's name), `certof` and `bcertof`
/// (the subject of the context's client certificate, async and blocking) and
/// [`ByCertificate`].
fn start(config: Config) -> hub_core::RunningServer {
    start_with(config, false)
}

/// [`start`], with [`ByCertificate`] as a blocking authenticator if `on_workers`.
fn start_with(config: Config, on_workers: bool) -> hub_core::RunningServer {
    fn cert_subject(ctx: &hub_core::Context) -> Value {
        Value::from(ctx.client_cert().map_or("none", |c| c.subject()).to_owned())
    }
    let registry = registry_builder()
        .asynchronous("whoami", |ctx, _p| async move {
            Ok(Value::from(
                ctx.caller().map_or("nobody", Caller::name).to_owned(),
            ))
        })
        .asynchronous("certof", |ctx, _p| async move { Ok(cert_subject(&ctx)) })
        .blocking("bcertof", |ctx, _p| Ok(cert_subject(ctx)))
        .build()
        .unwrap();
    let builder = Server::builder()
        .config(config)
        .registry(Arc::new(registry));
    let builder = if on_workers {
        builder.blocking_authenticator(ByCertificate)
    } else {
        builder.authenticator(ByCertificate)
    };
    builder.build().unwrap().start().unwrap()
}

/// A handler reads the connection's verified client certificate from its context: async and
/// blocking, alone and in a multicall, with the authenticator on the unit or on the workers;
/// `None` without one.
#[test]
fn a_handler_reads_the_client_certificate() {
    let pki = Pki::new("ctxcert");
    let alice = pki.client("alice");
    for on_workers in [false, true] {
        let server = start_with(tls_config_with_client_ca(&pki), on_workers);
        let addr = server.local_addr();
        let mut conn = open(addr, &client(&pki, Some(&alice)));
        for method in ["certof", "bcertof"] {
            let r = conn.call(method, &[]);
            assert!(
                r.body.contains("CN=alice") && r.body.contains("O=hub tests"),
                "{method}, on workers {on_workers}: {}",
                r.body
            );
        }
        let entry = |m: &str| {
            format!("<value><struct><member><name>methodName</name><value><string>{m}</string></value></member><member><name>params</name><value><array><data/></array></value></member></struct></value>")
        };
        let batch = format!(
            "<array><data>{}{}</data></array>",
            entry("certof"),
            entry("bcertof")
        );
        let r = conn.call("system.multicall", &[&batch]);
        assert_eq!(r.body.matches("CN=alice").count(), 2, "{}", r.body);
        let mut anonymous = open(addr, &client(&pki, None));
        for method in ["certof", "bcertof"] {
            let r = anonymous.call(method, &[]);
            assert!(r.body.contains("<string>none</string>"), "{}", r.body);
        }
        server.shutdown();
    }
}

fn tls_failures(server: &hub_core::RunningServer) -> u64 {
    server.stats().counters.snapshot().tls_failures
}

#[test]
fn calls_are_served_over_tls_and_a_parked_connection_keeps_its_session() {
    let pki = Pki::new("parked");
    let mut cfg = tls_config(&pki);
    // Ticks of 100 ms: a connection parks within a second of going quiet.
    cfg.socket_timeout_ms = 800;
    let server = start(cfg);
    let mut conn = open(server.local_addr(), &client(&pki, None));
    // Each answer is followed by a park (at once or after a quiet window); each next call
    // finds the connection parked, its TLS session kept.
    for round in 0..3 {
        let before = parks(&server);
        let r = conn.call("becho", &[&format!("<string>round {round}</string>")]);
        assert_eq!(r.status, 200, "round {round}: {}", r.body);
        assert!(r.body.contains(&format!(">round {round}<")), "{}", r.body);
        assert!(
            wait_until(LONG, || parks(&server) > before),
            "round {round}: the connection never parked"
        );
    }
    assert_eq!(conn.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(tls_failures(&server), 0);
}

#[test]
fn a_request_that_comes_with_the_handshake_is_answered() {
    let pki = Pki::new("early");
    let server = start(tls_config(&pki));
    let tcp = TcpStream::connect(server.local_addr()).unwrap();
    tcp.set_read_timeout(Some(LONG)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = ClientConnection::new(client(&pki, None), name).unwrap();
    // Written before the handshake: rustls sends it right behind its last handshake
    // message, so the server's handshake reads it off the socket too, and the socket has
    // nothing more to say (a wait for it to become readable would wait forever).
    let body = support::call_xml("echo", &["<string>early</string>"]);
    let request = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: test\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.writer().write_all(request.as_bytes()).unwrap();
    let mut conn = Conn::over(StreamOwned::new(tls, tcp));
    let r = conn.read_response().expect("an answer");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<string>early</string>"), "{}", r.body);
}

#[test]
fn plain_http_on_the_tls_port_is_told_to_use_https() {
    let pki = Pki::new("plain");
    let server = start(tls_config(&pki));
    let mut plain = Conn::open(server.local_addr());
    let r = plain.call("echo", &["<int>1</int>"]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("https://"), "{}", r.body);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(plain.closed_within(LONG));
    assert!(wait_until(LONG, || tls_failures(&server) == 1));
    // A client that writes a whole 1 MiB body before it reads still gets its 400: the
    // server reads and discards what it sends after the answer instead of resetting it.
    let mut writer = Conn::open(server.local_addr());
    let body = "x".repeat(1 << 20);
    writer.send("POST", "/RPC2", &body);
    let r = writer.read_response().expect("the 400, not a reset");
    assert_eq!(r.status, 400, "{}", r.body);
    // The port still speaks TLS to those who do.
    let r = open(server.local_addr(), &client(&pki, None)).call("echo", &["<int>2</int>"]);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_client_certificate_names_the_caller_and_an_unknown_one_is_refused() {
    let pki = Pki::new("client");
    let server = start(tls_config_with_client_ca(&pki));
    let addr = server.local_addr();

    let alice = pki.client("alice");
    let r = open(addr, &client(&pki, Some(&alice))).call("whoami", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let name = r.body.split("<string>").nth(1).unwrap_or_default();
    let name = name.split("</string>").next().unwrap_or_default();
    let (cn, subject) = name.split_once('|').unwrap_or_default();
    assert_eq!(cn, "alice", "{name}");
    assert!(
        subject.contains("CN=alice") && subject.contains("O=hub tests"),
        "{subject}"
    );

    // A certificate is asked for, not required: without one the caller is anonymous.
    let r = open(addr, &client(&pki, None)).call("whoami", &[]);
    assert!(r.body.contains("<string>nobody</string>"), "{}", r.body);

    // A certificate from another CA ends the handshake, and the client is told why (the
    // alert is not lost to a reset: the server lingers before it closes). No answer; counted.
    let mallory = pki.foreign_client("alice");
    let foreign = client(&pki, Some(&mallory));
    const ROUNDS: u64 = 40;
    for round in 0..ROUNDS {
        let mut conn = open(addr, &foreign);
        conn.send("POST", "/RPC2", &support::call_xml("whoami", &[]));
        // A client that goes on writing (a body) before it reads: closing under its
        // writes would reset the connection, and the alert with it.
        let _ = std::io::Write::write_all(&mut conn.stream, &[b'x'; 256 * 1024]);
        let mut byte = [0u8; 1];
        let err = std::io::Read::read(&mut conn.stream, &mut byte)
            .expect_err("answered a foreign certificate");
        let told = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<tokio_rustls::rustls::Error>())
            .is_some_and(|e| matches!(e, tokio_rustls::rustls::Error::AlertReceived(_)));
        assert!(told, "round {round}: not told why: {err:?}");
    }
    assert!(wait_until(LONG, || tls_failures(&server) == ROUNDS));
}

#[test]
fn a_required_client_certificate_is_required() {
    let pki = Pki::new("required");
    let server = start(Config {
        tls_require_client_cert: true,
        ..tls_config_with_client_ca(&pki)
    });
    let addr = server.local_addr();
    let mut conn = open(addr, &client(&pki, None));
    conn.send("POST", "/RPC2", &support::call_xml("whoami", &[]));
    assert!(
        conn.read_response().is_none(),
        "answered a client without a certificate"
    );
    assert!(wait_until(LONG, || tls_failures(&server) == 1));

    let bob = pki.client("bob");
    let r = open(addr, &client(&pki, Some(&bob))).call("whoami", &[]);
    assert!(r.body.contains("<string>bob|"), "{}", r.body);
}

#[test]
fn a_stalled_or_broken_handshake_is_closed_and_counted() {
    let pki = Pki::new("stalled");
    let server = start(Config {
        socket_timeout_ms: 300,
        ..tls_config(&pki)
    });
    let addr = server.local_addr();
    // The start of a handshake record, then nothing.
    let mut stalled = Conn::open(addr);
    stalled.stream.write_all(&[22, 3, 1]).unwrap();
    // A handshake record holding garbage.
    let mut broken = Conn::open(addr);
    broken
        .stream
        .write_all(&[22, 3, 3, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])
        .unwrap();
    assert!(broken.closed_within(LONG));
    assert!(stalled.closed_within(LONG));
    assert!(wait_until(LONG, || tls_failures(&server) == 2));
    let r = open(addr, &client(&pki, None)).call("echo", &["<int>3</int>"]);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn unusable_certificate_files_stop_the_build_naming_the_key() {
    let pki = Pki::new("files");
    let build = |config: Config| {
        Server::builder()
            .config(config)
            .registry(support::registry())
            .build()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let missing = build(Config {
        tls_key_file: Some(pki.dir.path("nowhere.key").into()),
        ..tls_config(&pki)
    });
    assert!(
        missing.contains("tls_key_file") && missing.contains("nowhere.key"),
        "{missing}"
    );
    pki.dir.write("empty.pem", "not a certificate\n");
    let empty = build(Config {
        tls_cert_file: Some(pki.dir.path("empty.pem").into()),
        ..tls_config(&pki)
    });
    assert!(
        empty.contains("tls_cert_file") && empty.contains("no certificate"),
        "{empty}"
    );
    // The key of another certificate (the file holds it, after that certificate).
    let stranger = pki.client("stranger");
    let mismatched = build(Config {
        tls_key_file: Some(stranger.into()),
        ..tls_config(&pki)
    });
    assert!(mismatched.contains("tls_key_file"), "{mismatched}");
    let no_ca = build(Config {
        tls_client_ca_file: Some(pki.dir.path("server.key").into()),
        ..tls_config(&pki)
    });
    assert!(no_ca.contains("tls_client_ca_file"), "{no_ca}");
}

#[test]
fn the_client_speaks_https_with_a_ca_file_and_a_client_certificate() {
    use hub_core::client::{blocking::Client, Error};
    let pki = Pki::new("client-lib");
    let server = start(tls_config_with_client_ca(&pki));
    let url = format!("https://127.0.0.1:{}/RPC2", server.local_addr().port());
    // koji's `cert`: the certificate and its key in one file.
    let alice_pem = pki.client("alice");
    let client = Client::new(&url)
        .unwrap()
        .tls_ca_file(pki.ca())
        .unwrap()
        .tls_client_cert(&alice_pem)
        .unwrap();
    let who: String = client.call("whoami", ()).unwrap();
    assert!(
        who.starts_with("alice|") && who.ends_with("CN=alice"),
        "{who}"
    );
    // Kept alive: a second call reuses the connection (one handshake, one connection).
    let again: String = client.call("whoami", ()).unwrap();
    assert_eq!(again, who);

    // Without the test CA the server's certificate is trusted by nobody: the system's store
    // does not know it (or there is no store, which is refused when the client is made).
    let refused = Client::new(&url)
        .and_then(|c| c.call::<String>("whoami", ()))
        .expect_err("an unknown CA's server certificate was accepted");
    let text = refused.to_string();
    assert!(
        text.contains("certificate") || text.contains("CA"),
        "{text}"
    );
    // Files that cannot be used are refused when set, naming the file.
    let missing = Client::new(&url)
        .unwrap()
        .tls_ca_file(pki.dir.path("nowhere.pem"))
        .expect_err("a missing CA file");
    assert!(
        matches!(&missing, Error::Tls(e) if e.contains("nowhere.pem")),
        "{missing}"
    );
    let keyless = Client::new(&url)
        .unwrap()
        .tls_client_cert(pki.ca())
        .expect_err("a certificate file without a key");
    assert!(matches!(keyless, Error::Tls(_)), "{keyless}");
}

#[test]
fn a_tls_client_over_max_connections_is_told_by_an_alert() {
    let pki = Pki::new("over-max");
    let server = start(Config {
        max_connections: 1,
        ..tls_config(&pki)
    });
    let addr = server.local_addr();
    let tls = client(&pki, None);
    let mut held = open(addr, &tls);
    assert_eq!(held.call("echo", &["<int>1</int>"]).status, 200);
    // Plain HTTP's `503` would read as garbage to a TLS client: it gets a fatal alert.
    // (The client meets it in the handshake its first write drives.)
    let mut refused = open(addr, &tls);
    let err = std::io::Write::write_all(&mut refused.stream, b"POST / HTTP/1.1\r\n\r\n")
        .and_then(|()| std::io::Read::read(&mut refused.stream, &mut [0u8; 1]).map(drop))
        .expect_err("refused");
    let alert = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<tokio_rustls::rustls::Error>())
        .cloned();
    assert_eq!(
        alert,
        Some(tokio_rustls::rustls::Error::AlertReceived(
            tokio_rustls::rustls::AlertDescription::InternalError
        )),
        "{err:?}"
    );
    assert_eq!(server.stats().counters.snapshot().connections_rejected, 1);
    assert_eq!(held.call("echo", &["<int>3</int>"]).status, 200);
}

#[test]
fn a_drain_answers_tls_calls_in_flight_and_closes_parked_tls_connections() {
    let pki = Pki::new("drain");
    let server = start(tls_config(&pki));
    let addr = server.local_addr();
    let tls = client(&pki, None);
    // A parked TLS connection: answered once, then idle.
    let mut idle = open(addr, &tls);
    assert_eq!(idle.call("echo", &["<int>1</int>"]).status, 200);
    // A slow blocking call in flight over TLS when the drain starts.
    let mut busy = open(addr, &tls);
    assert_eq!(busy.call("echo", &["<int>2</int>"]).status, 200);
    busy.send(
        "POST",
        "/RPC2",
        &support::call_xml("sleep", &["<int>700</int>"]),
    );
    std::thread::sleep(Duration::from_millis(200));
    let handle = server.shutdown_handle();
    let draining = std::thread::spawn(move || server.wait());
    handle.shutdown();
    let r = busy
        .read_response()
        .expect("the call in flight is answered");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<int>700</int>"), "{}", r.body);
    // The parked one is closed (a read ends, cleanly or not, long before the client's
    // 20 s read timeout), and the drain finishes.
    let waited = std::time::Instant::now();
    assert!(idle.read_response().is_none(), "an answer nobody asked for");
    assert!(
        waited.elapsed() < Duration::from_secs(10),
        "the parked connection stayed open through the drain"
    );
    draining.join().unwrap();
}

/// The name in a `whoami` answer (`CN|subject`), up to the `|`.
fn caller_cn(r: &support::Resp) -> &str {
    let name = r.body.split("<string>").nth(1).unwrap_or_default();
    name.split(['|', '<']).next().unwrap_or_default()
}

/// Whether the handshake on `conn` fails with a rustls error `is_it` recognizes (the
/// client's own verdict, or the server's alert).
fn handshake_fails(conn: TlsConn, is_it: impl Fn(&tokio_rustls::rustls::Error) -> bool) -> bool {
    let StreamOwned { mut conn, mut sock } = conn.stream;
    // A client with a certificate learns of its refusal only when it next reads.
    let result = conn.complete_io(&mut sock).and_then(|_| {
        let mut byte = [0u8; 1];
        std::io::Read::read(&mut StreamOwned::new(conn, sock), &mut byte)
    });
    result
        .err()
        .and_then(|e| {
            e.get_ref()
                .and_then(|e| e.downcast_ref::<tokio_rustls::rustls::Error>())
                .map(&is_it)
        })
        .unwrap_or(false)
}

#[test]
fn a_reload_serves_new_files_to_new_connections_and_keeps_open_ones() {
    use tokio_rustls::rustls::{AlertDescription, CertificateError, Error as TlsError};
    let (old, new) = (Pki::new("reload-old"), Pki::new("reload-new"));
    // The files the server is configured with, renewed in place as an operator would.
    let live = pki::TempDir::new("reload-live");
    let install = |pki: &Pki| {
        for file in ["server.pem", "server.key", "ca.pem"] {
            std::fs::copy(pki.dir.path(file), live.path(file)).unwrap();
        }
    };
    install(&old);
    let server = start(Config {
        tls_cert_file: Some(live.path("server.pem").into()),
        tls_key_file: Some(live.path("server.key").into()),
        tls_client_ca_file: Some(live.path("ca.pem").into()),
        ..config()
    });
    let addr = server.local_addr();
    let reload = server.tls_reload_handle().expect("a TLS server has one");
    let mut kept = open(addr, &client(&old, Some(&old.client("alice"))));
    assert_eq!(caller_cn(&kept.call("whoami", &[])), "alice");

    install(&new);
    reload.reload().unwrap();
    // New connections get the new certificate, and client certificates are checked
    // against the new CA.
    let bob = open(addr, &client(&new, Some(&new.client("bob")))).call("whoami", &[]);
    assert_eq!(caller_cn(&bob), "bob", "{}", bob.body);
    let not_old_ca = |e: &TlsError| {
        matches!(
            e,
            TlsError::InvalidCertificate(CertificateError::UnknownIssuer)
        )
    };
    assert!(
        handshake_fails(open(addr, &client(&old, None)), not_old_ca),
        "the old certificate is still served"
    );
    let unknown_ca =
        |e: &TlsError| matches!(e, TlsError::AlertReceived(AlertDescription::UnknownCA));
    assert!(
        handshake_fails(
            open(addr, &client(&new, Some(&old.client("carol")))),
            unknown_ca
        ),
        "a client certificate from the old CA is still accepted"
    );
    // The connection opened before keeps its session, and its caller.
    assert_eq!(caller_cn(&kept.call("whoami", &[])), "alice");

    // Files that do not make a configuration (a key that is not the certificate's, as
    // while a renewal is half copied) are refused, and the server serves what it had.
    std::fs::copy(old.dir.path("server.key"), live.path("server.key")).unwrap();
    let refused = reload
        .reload()
        .expect_err("a mismatched key reloaded")
        .to_string();
    assert!(refused.contains("tls_key_file"), "{refused}");
    std::fs::write(live.path("server.pem"), "half written\n").unwrap();
    let refused = reload
        .reload()
        .expect_err("an empty certificate reloaded")
        .to_string();
    assert!(
        refused.contains("tls_cert_file") && refused.contains("server.pem"),
        "{refused}"
    );
    let r = open(addr, &client(&new, Some(&new.client("dave")))).call("whoami", &[]);
    assert_eq!(caller_cn(&r), "dave", "{}", r.body);
}

#[test]
fn a_revoked_client_certificate_is_refused() {
    use tokio_rustls::rustls::{AlertDescription, Error as TlsError};
    let pki = Pki::new("crl");
    let (alice, bob) = (pki.client("alice"), pki.client("bob"));
    let live = pki::TempDir::new("crl-live");
    let crl = live.path("crl.pem");
    let install = |revoked: &[&str], until: i32| {
        std::fs::copy(pki.crl("crl.pem", revoked, until), &crl).unwrap();
    };
    install(&["bob"], 2100);
    let server = start(Config {
        tls_client_crl_file: Some(crl.clone().into()),
        ..tls_config_with_client_ca(&pki)
    });
    let addr = server.local_addr();
    let revoked = |e: &TlsError| {
        matches!(
            e,
            TlsError::AlertReceived(AlertDescription::CertificateRevoked)
        )
    };
    let whoami = |cert: &str| {
        caller_cn(&open(addr, &client(&pki, Some(cert))).call("whoami", &[])).to_owned()
    };

    assert_eq!(whoami(&alice), "alice");
    assert!(handshake_fails(
        open(addr, &client(&pki, Some(&bob))),
        revoked
    ));
    // Without a certificate (not required here), a client is let in as nobody.
    let r = open(addr, &client(&pki, None)).call("whoami", &[]);
    assert!(r.body.contains("<string>nobody</string>"), "{}", r.body);

    // Read again with the TLS files: bob reinstated, alice revoked, for new connections;
    // a list past its next update still revokes.
    let reload = server.tls_reload_handle().expect("a TLS server has one");
    let mut kept = open(addr, &client(&pki, Some(&alice)));
    assert_eq!(caller_cn(&kept.call("whoami", &[])), "alice");
    install(&["alice"], 2025);
    reload.reload().unwrap();
    assert_eq!(whoami(&bob), "bob");
    assert!(handshake_fails(
        open(addr, &client(&pki, Some(&alice))),
        revoked
    ));
    assert_eq!(
        caller_cn(&kept.call("whoami", &[])),
        "alice",
        "open connections keep theirs"
    );

    // A file with no list in it is refused, and the lists in force stay.
    std::fs::copy(pki.ca(), &crl).unwrap();
    let refused = reload
        .reload()
        .expect_err("a CA file as the CRL")
        .to_string();
    assert!(refused.contains("tls_client_crl_file"), "{refused}");
    assert!(handshake_fails(
        open(addr, &client(&pki, Some(&alice))),
        revoked
    ));

    // A certificate from a CA the lists do not cover has no known status: refused. A list
    // without the CA to check against is a config error.
    let other = Pki::new("crl-other");
    let both_cas = live.write(
        "cas.pem",
        &(std::fs::read_to_string(pki.ca()).unwrap()
            + &std::fs::read_to_string(other.ca()).unwrap()),
    );
    install(&[], 2100);
    let with_both_cas = |crl_file: Option<&str>| {
        start(Config {
            tls_client_ca_file: Some(both_cas.clone().into()),
            tls_client_crl_file: crl_file.map(Into::into),
            ..tls_config(&pki)
        })
    };
    let carol = other.client("carol");
    let without = with_both_cas(None);
    let r = open(without.local_addr(), &client(&pki, Some(&carol))).call("whoami", &[]);
    assert_eq!(caller_cn(&r), "carol", "{}", r.body);
    let with = with_both_cas(Some(&crl));
    let unknown_status =
        |e: &TlsError| matches!(e, TlsError::AlertReceived(AlertDescription::UnknownCA));
    assert!(handshake_fails(
        open(with.local_addr(), &client(&pki, Some(&carol))),
        unknown_status
    ));
    let r = open(with.local_addr(), &client(&pki, Some(&alice))).call("whoami", &[]);
    assert_eq!(caller_cn(&r), "alice", "{}", r.body);
    let e = Server::builder()
        .config(Config {
            tls_client_crl_file: Some(crl.into()),
            ..tls_config(&pki)
        })
        .registry(support::registry())
        .build()
        .expect_err("a CRL without client CAs");
    assert!(e.to_string().contains("tls_client_crl_file"), "{e}");
}

#[test]
fn a_plain_server_has_no_tls_to_reload() {
    let server = support::start(config());
    assert!(server.tls_reload_handle().is_none());
}

/// A server started with signals reloads its TLS files on SIGHUP (sent to this process;
/// only servers started with signals listen for it, and this is the one test here that
/// starts one).
#[cfg(unix)]
#[test]
fn sighup_reloads_the_tls_files() {
    let (old, new) = (Pki::new("hup-old"), Pki::new("hup-new"));
    let live = pki::TempDir::new("hup-live");
    let install = |pki: &Pki| {
        for file in ["server.pem", "server.key"] {
            std::fs::copy(pki.dir.path(file), live.path(file)).unwrap();
        }
    };
    install(&old);
    let server = Server::builder()
        .config(Config {
            tls_cert_file: Some(live.path("server.pem").into()),
            tls_key_file: Some(live.path("server.key").into()),
            ..config()
        })
        .registry(support::registry())
        .build()
        .unwrap()
        .start_with_signals()
        .unwrap();
    let addr = server.local_addr();
    let handshakes = |pki: &Pki| {
        let TlsConn { stream, .. } = open(addr, &client(pki, None));
        let StreamOwned { mut conn, mut sock } = stream;
        conn.complete_io(&mut sock).is_ok()
    };
    assert!(handshakes(&old) && !handshakes(&new));

    install(&new);
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own pid with a valid signal number touches no memory of ours.
    let sent = unsafe { libc::kill(libc::getpid(), libc::SIGHUP) == 0 };
    assert!(sent, "kill failed");
    assert!(
        wait_until(LONG, || handshakes(&new)),
        "SIGHUP did not reload the certificate"
    );
    assert!(!handshakes(&old));
    server.shutdown();
}

/// A version 1 revocation list (what `openssl ca -gencrl` writes for a CA without a
/// `crlnumber` file), which the verifier cannot use, is refused against its own key and
/// file, saying why: the verifier's error used to be reported against `tls_client_ca_file`,
/// a file that was fine (found in review). Made with the `openssl` tool.
#[test]
fn a_version_1_revocation_list_is_refused_against_its_own_key() {
    let dir = pki::TempDir::new("crl-v1");
    let openssl = |args: &str| {
        let out = std::process::Command::new("openssl")
            .args(args.split(' '))
            .current_dir(dir.path(""))
            .output()
            .expect("the openssl tool");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
         -out ca.pem -subj /CN=v1-ca -days 30",
    );
    dir.write(
        "ca.cnf",
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ndefault_md = sha256\n\
         default_crl_days = 30\n",
    );
    dir.write("index.txt", "");
    openssl("ca -config ca.cnf -gencrl -keyfile ca.key -cert ca.pem -out crl.pem");
    let pki = Pki::new("crl-v1-server");
    let e = Server::builder()
        .config(Config {
            tls_client_ca_file: Some(dir.path("ca.pem").into()),
            tls_client_crl_file: Some(dir.path("crl.pem").into()),
            ..tls_config(&pki)
        })
        .registry(support::registry())
        .build()
        .expect_err("a version 1 list")
        .to_string();
    assert!(
        e.contains("tls_client_crl_file") && e.contains("crl.pem") && e.contains("version 1"),
        "{e}"
    );
}
