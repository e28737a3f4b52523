//! `http_request` over TLS: any bytes sent as one connection's plaintext to a live
//! in-process server whose listener speaks TLS. The server answers or closes within its
//! socket timeout, never panics, every answer starts with a status line, and no connection
//! is leaked — through the TLS transport, its parking and its close.
#![no_main]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hub_core::registry::Registry;
use hub_core::{RunningServer, Server, Value};
use libfuzzer_sys::fuzz_target;

#[path = "exchange.rs"]
mod exchange;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

struct Fixture {
    server: RunningServer,
    client: Arc<ClientConfig>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hub-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).expect("cert written");
        std::fs::write(&key, certified.key_pair.serialize_pem()).expect("key written");
        let registry = Registry::builder()
            .asynchronous("echo", |_ctx, p| async move {
                Ok(p.positional.into_iter().next().unwrap_or(Value::Nil))
            })
            .blocking("becho", |_ctx, p| {
                Ok(p.positional.into_iter().next().unwrap_or(Value::Nil))
            })
            .build()
            .expect("registry");
        let mut config = exchange::config();
        config.tls_cert_file = Some(cert);
        config.tls_key_file = Some(key);
        let server = Server::builder()
            .config(config)
            .registry(Arc::new(registry))
            .build()
            .expect("server")
            .start()
            .expect("start");
        let mut roots = RootCertStore::empty();
        roots.add(certified.cert.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Fixture {
            server,
            client: Arc::new(client),
        }
    })
}

fn addr() -> SocketAddr {
    fixture().server.local_addr()
}

static RUNS: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let tcp = TcpStream::connect(addr()).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = ClientConnection::new(Arc::clone(&fixture().client), name).expect("client");
    let mut s = StreamOwned::new(tls, tcp);
    // The handshake first: a client's close_notify before it would be the client's fault.
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .expect("the handshake of a good client");
    }
    // The server may answer and close before reading everything (413, 431, 400).
    let _ = s.write_all(data);
    s.conn.send_close_notify();
    let _ = s.flush();
    exchange::read_answer(&mut s);
    drop(s);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    exchange::no_connection_leaked(&fixture().server, run, 500);
    if run % 500 == 499 {
        assert_eq!(
            fixture().server.stats().counters.snapshot().tls_failures,
            0,
            "a handshake from a good client failed"
        );
    }
});
