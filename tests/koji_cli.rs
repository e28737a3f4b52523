//! The real `koji` CLI against the echo example: `call` with positional and keyword
//! arguments, a fault mapped to koji's exception, `list-api` (koji's `_listapi`), and all of
//! it again with every answer gzipped. Then against buildhub over HTTPS, koji's certificate
//! login (`--authtype=ssl`, `sslLogin`): a certificate from the hub's CA logs its `CN`'s user
//! in, one from another CA is refused in the handshake, and the hub's refusals (a `CN` that
//! names no user, no certificate, a proxy login by a certificate not trusted to make one)
//! reach the user as koji's `AuthError`; a certificate of `--proxy-dn` logs in as another
//! user (`--runas`, koji's `ProxyDNs`).

mod support;

use std::path::PathBuf;

use support::{koji, koji_cli, python, serve, ClientCerts, Pki, Ran, Served};

/// A koji config naming `url`, so the CLI needs no system profile.
fn koji_config(server: &Served, tag: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("hub-koji-test-{}-{tag}.conf", std::process::id()));
    std::fs::write(
        &path,
        format!("[koji]\nserver = {}\nauthtype = noauth\n", server.url()),
    )
    .expect("temp config written");
    path
}

#[test]
fn koji_cli_calls_echo() {
    let server = serve("echo", &[]);
    let conf = koji_config(&server, "calls");
    let conf = conf.to_str().expect("a UTF-8 temp path");
    let url = server.url();
    let k = |args: &[&str]| {
        let mut all = vec!["-c", conf];
        all.extend_from_slice(args);
        koji(&url, &all)
    };

    let ran = k(&["call", "echo", "5"]);
    assert_eq!(ran.ok().trim(), "5", "{ran}");

    let ran = k(&["call", "--python", "echo", "['a', {'b': None}, 2.5]"]);
    assert_eq!(ran.ok().trim(), "['a', {'b': None}, 2.5]", "{ran}");

    let ran = k(&["call", "getBuild", "7"]);
    let out = ran.ok();
    for member in [
        "'id': 7",
        "'name': 'bash'",
        "'version': '5.2.15'",
        "'release': '3.fc40'",
        "'state': 1",
        "'owner_name': 'builder'",
        "'volume_id_set': True",
        "'score': 0.5",
    ] {
        assert!(out.contains(member), "no {member} in {ran}");
    }

    let ran = k(&["call", "--json-output", "getBuild", "7"]);
    let json: serde_json::Value = serde_json::from_str(ran.ok()).expect("JSON output");
    assert_eq!(json["owner_name"], "builder", "{ran}");
    assert_eq!(json["volume_id_set"], true, "{ran}");

    // keyword arguments travel as koji's __starstar struct and bind by name;
    // koji maps fault 1005 to its BuildError
    let ran = k(&["call", "fail", "code=1005", "message=kw args"]);
    assert_eq!(ran.status, Some(1), "{ran}");
    assert!(ran.stderr.contains("BuildError: kw args"), "{ran}");
    let ran = k(&["call", "fail", "message=x", "code=1000"]);
    assert!(ran.stderr.contains("GenericError: x"), "{ran}");

    let ran = k(&["call", "sleep", "ms=3"]);
    assert_eq!(ran.ok().trim(), "3", "{ran}");

    // a panic is a fault like any other, and the server keeps serving
    let ran = k(&["call", "crash"]);
    assert_eq!(ran.status, Some(1), "{ran}");
    assert!(ran.stderr.contains("-32603"), "{ran}");
    let ran = k(&["call", "echo", "alive"]);
    assert_eq!(ran.ok().trim(), "'alive'", "{ran}");
    let _ = std::fs::remove_file(conf);
}

#[test]
fn koji_cli_lists_the_api() {
    let server = serve("echo", &["--handlers", "blocking"]);
    let conf = koji_config(&server, "list");
    let ran = koji(
        &server.url(),
        &["-c", conf.to_str().expect("a UTF-8 temp path"), "list-api"],
    );
    let _ = std::fs::remove_file(&conf);
    let out = ran.ok();
    for line in [
        "echo(value)",
        "getBuild(id)",
        "fail(code, message)",
        "sleep(ms)",
        "crash()",
        "getAPIVersion()",
        "system.methodHelp(method_name)",
        "  description: Returns its one argument unchanged, whatever its XML-RPC type.",
        "  description: Answers the fault `code` with `message`.",
    ] {
        assert!(out.lines().any(|l| l == line), "no line `{line}` in {ran}");
    }
}

/// `getBuild(7)` posted with `requests` (koji's transport), which must have come gzipped.
const REQUESTS_GETBUILD: &str = r#"
import sys, requests, xmlrpc.client as x
r = requests.post(sys.argv[1], data=x.dumps((7,), "getBuild"), headers={"Content-Type": "text/xml"})
assert r.headers.get("Content-Encoding") == "gzip", r.headers
(build,), _ = x.loads(r.content)
print(build["name"])
"#;

/// koji's client (`requests`) asks for gzip: with every answer gzipped, its calls and
/// `list-api` read them as before, and `requests` is seen getting them gzipped.
#[test]
fn koji_cli_reads_gzipped_answers() {
    let hub_conf = std::env::temp_dir().join(format!("hub-koji-gzip-{}.toml", std::process::id()));
    std::fs::write(&hub_conf, "gzip_answers_over = 1\n").expect("temp config written");
    let server = serve(
        "echo",
        &["--config", hub_conf.to_str().expect("a UTF-8 temp path")],
    );
    let conf = koji_config(&server, "gzip");
    let conf = conf.to_str().expect("a UTF-8 temp path");
    let url = server.url();
    let ran = koji(
        &url,
        &["-c", conf, "call", "--json-output", "getBuild", "7"],
    );
    let json: serde_json::Value = serde_json::from_str(ran.ok()).expect("JSON output");
    assert_eq!(json["release"], "3.fc40", "{ran}");
    let ran = koji(&url, &["-c", conf, "list-api"]);
    assert!(ran.ok().lines().any(|l| l == "getBuild(id)"), "{ran}");
    let ran = koji(
        &url,
        &["-c", conf, "call", "fail", "code=1005", "message=zipped"],
    );
    assert!(ran.stderr.contains("BuildError: zipped"), "{ran}");
    // What koji's transport was sent: requests' own Accept-Encoding got a gzipped answer.
    let ran = support::python(REQUESTS_GETBUILD, &[&url]);
    assert_eq!(ran.ok().trim(), "bash", "{ran}");
    let _ = (std::fs::remove_file(conf), std::fs::remove_file(&hub_conf));
}

/// buildhub over HTTPS asking for client certificates (`tls_client_ca_file`), with an
/// admin `admin` whose database lives in the PKI's temp dir.
fn buildhub_tls(pki: &Pki) -> Served {
    buildhub_tls_with(pki, &[])
}

/// [`buildhub_tls`] with more options.
fn buildhub_tls_with(pki: &Pki, extra: &[&str]) -> Served {
    let db = pki.dir.path("hub.sqlite3");
    let config = pki.server_config(ClientCerts::Optional, "");
    let mut args = vec!["--db", &db, "--admin", "admin:adminpw", "--config", &config];
    args.extend_from_slice(extra);
    let server = serve("buildhub", &args);
    assert_eq!(server.scheme, "https", "buildhub serves TLS");
    server
}

/// The Rust client's certificate login: `koji_ssl_login` names the certificate's user, its
/// session is renewed in place by a certificate login once it expires (`sslLogin` with
/// `renew`, presenting it, as koji's client does) and the call goes through; without a
/// certificate the hub refuses it.
#[test]
fn the_rust_client_logs_in_with_a_client_certificate() {
    use hub::client::{blocking::Client, Error};
    let pki = Pki::new("rust-ssl-login");
    let server = buildhub_tls_with(&pki, &["--session-lifetime", "2"]);
    let url = server.url_at("/kojihub");
    let client = |cert: Option<&str>| {
        let c = Client::new(&url)
            .expect("a client")
            .tls_ca_file(pki.ca())
            .expect("the CA");
        match cert {
            Some(cert) => c.tls_client_cert(cert).expect("the certificate"),
            None => c,
        }
    };
    let name = |who: hub::Value| support::user_name(&who);
    let admin = client(Some(&pki.client("admin")))
        .koji_ssl_login()
        .expect("logged in with the certificate");
    let who = admin.call("getLoggedInUser", ()).expect("a user");
    assert_eq!(name(who).as_deref(), Some("admin"));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let id: i64 = admin
        .call("createBuild", ("bash", "5.2.15", "3.fc40"))
        .expect("a build, after logging in again");
    assert_eq!(id, 1);
    let conn = rusqlite::Connection::open(pki.dir.path("hub.sqlite3")).expect("the database");
    let (sessions, renewed): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(renew_ts) FROM sessions",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("counted");
    assert_eq!((sessions, renewed), (1, 1), "one session, renewed in place");
    match client(None).koji_ssl_login() {
        Err(Error::Fault(f)) => assert_eq!(f.code, 1002, "{f:?}"),
        other => panic!("expected AuthError, got {other:?}"),
    }

    // The `call` example's `--ssl-login`.
    let ca = pki.ca();
    let call = |args: &[&str]| {
        let mut all = vec![
            "--url",
            url.as_str(),
            "--ca",
            ca.as_str(),
            "--timeout",
            "30",
        ];
        all.extend_from_slice(args);
        support::run(support::example("call"), &all, "")
    };
    let alice = pki.client("alice");
    let ran = call(&["--cert", &alice, "--ssl-login", "getLoggedInUser"]);
    assert_eq!(ran.status, Some(1), "alice is no user yet: {ran}");
    assert!(ran.stderr.contains("1002"), "{ran}");
    let admin_cert = pki.client("admin");
    let ran = call(&[
        "--cert",
        &admin_cert,
        "--ssl-login",
        "createUser",
        "alice",
        "pw",
    ]);
    assert!(ran.ok().trim().parse::<i64>().is_ok(), "{ran}");
    let ran = call(&["--cert", &alice, "--ssl-login", "getLoggedInUser"]);
    assert!(ran.ok().contains("alice"), "{ran}");
    let ran = call(&["--cert", &alice, "getLoggedInUser"]);
    assert_eq!(
        ran.ok().trim(),
        "nil",
        "no login without --ssl-login: {ran}"
    );
    let ran = call(&["--ssl-login", "getLoggedInUser"]);
    assert_eq!(ran.status, Some(2), "--ssl-login without --cert: {ran}");
}

/// Runs `koji --authtype=ssl` with a config naming the hub, the test CA (`serverca`) and the
/// client's certificate file `cert` (certificate and key in one PEM, koji's `cert`), then
/// `args`. `max_retries = 0`: koji retries a failed `sslLogin` handshake (an `unknown ca`
/// alert is not among the certificate errors it gives up on) 30 times, 20 s apart.
fn koji_ssl(pki: &Pki, server: &Served, cert: &str, args: &[&str]) -> Ran {
    let conf = pki.dir.write(
        "koji.conf",
        &format!(
            "[koji]\nserver = {}\ncert = {cert}\nserverca = {}\nmax_retries = 0\n",
            server.url_at("/kojihub"),
            pki.ca(),
        ),
    );
    let mut all = vec!["-c", conf.as_str(), "--authtype=ssl"];
    all.extend_from_slice(args);
    koji_cli(&all)
}

/// The admin's certificate creates the user `alice` (password `pw`) through the koji CLI.
fn create_alice(pki: &Pki, server: &Served, admin: &str) {
    let ran = koji_ssl(pki, server, admin, &["call", "createUser", "alice", "pw"]);
    assert!(ran.ok().trim().parse::<i64>().is_ok(), "a user id: {ran}");
}

/// koji's certificate login against buildhub: the admin's certificate logs in as `admin`
/// (`sslLogin` at `/kojihub/ssllogin`) and creates `alice`; alice's certificate then logs in
/// as alice, whom `moshimoshi` greets (it needs a login and calls `getLoggedInUser`) and
/// `getLoggedInUser` names, with no admin permission.
#[test]
fn koji_cli_logs_in_with_a_client_certificate() {
    let pki = Pki::new("koji-ssl-login");
    let server = buildhub_tls(&pki);
    let (admin, alice) = (pki.client("admin"), pki.client("alice"));

    create_alice(&pki, &server, &admin);

    let ran = koji_ssl(&pki, &server, &alice, &["moshimoshi"]);
    let out = ran.ok();
    assert!(out.contains(", alice!"), "greets alice: {ran}");
    assert!(
        out.contains(&format!("Authenticated via client certificate {alice}")),
        "{ran}"
    );
    let ran = koji_ssl(&pki, &server, &alice, &["call", "getLoggedInUser"]);
    assert!(ran.ok().contains("'name': 'alice'"), "{ran}");
    let ran = koji_ssl(&pki, &server, &alice, &["call", "hasPerm", "admin"]);
    assert_eq!(ran.ok().trim(), "False", "{ran}");
    let ran = koji_ssl(&pki, &server, &admin, &["call", "hasPerm", "admin"]);
    assert_eq!(ran.ok().trim(), "True", "{ran}");
}

/// A certificate for `admin`, a real user, signed by a CA the hub does not trust: the
/// handshake fails, so koji gets no session (the hub's own CA's certificate for the same
/// `CN` logs in, so the CA is what was refused).
#[test]
fn koji_cli_refuses_a_certificate_of_another_ca() {
    let pki = Pki::new("koji-ssl-foreign");
    let server = buildhub_tls(&pki);
    let stranger = pki.foreign_client("admin");
    let ran = koji_ssl(&pki, &server, &stranger, &["call", "getLoggedInUser"]);
    assert_ne!(ran.status, Some(0), "{ran}");
    // The handshake's failure, as requests reports it: the server's `unknown ca` alert.
    assert!(
        ran.stderr
            .contains("unable to obtain a session (ssl auth failed: requests.exceptions.SSLError"),
        "{ran}"
    );
    assert!(ran.stderr.contains("TLSV1_ALERT_UNKNOWN_CA"), "{ran}");
    let ran = koji_ssl(
        &pki,
        &server,
        &pki.client("admin"),
        &["call", "getLoggedInUser"],
    );
    assert!(ran.ok().contains("'name': 'admin'"), "{ran}");
}

/// `sslLogin` called over HTTPS without a client certificate; prints the fault.
const SSL_LOGIN_WITHOUT_CERT: &str = r#"
import ssl, sys
import xmlrpc.client as x
p = x.ServerProxy(sys.argv[1], allow_none=True,
                  context=ssl.create_default_context(cafile=sys.argv[2]))
try:
    p.sslLogin()
    raise AssertionError("sslLogin without a certificate answered a session")
except x.Fault as f:
    print(f.faultCode, f.faultString)
"#;

/// The hub's refusals, as koji's `AuthError` (fault 1002) with their reason: a trusted
/// certificate whose `CN` names no user, a proxy login (`--runas`), and (from Python, as
/// koji's client will not try) `sslLogin` without a certificate.
#[test]
fn koji_cli_ssl_login_faults_name_the_reason() {
    let pki = Pki::new("koji-ssl-faults");
    let server = buildhub_tls(&pki);

    let ran = koji_ssl(&pki, &server, &pki.client("mallory"), &["moshimoshi"]);
    assert_ne!(ran.status, Some(0), "{ran}");
    assert!(
        ran.stderr.contains("AuthError: Unknown user: mallory"),
        "{ran}\n--- server\n{}",
        server.stderr()
    );

    let admin = pki.client("admin");
    let ran = koji_ssl(&pki, &server, &admin, &["--runas=alice", "moshimoshi"]);
    assert_ne!(ran.status, Some(0), "{ran}");
    assert!(
        ran.stderr
            .contains("O=hub tests, CN=admin is not authorized to login other users"),
        "{ran}"
    );

    let ran = python(
        SSL_LOGIN_WITHOUT_CERT,
        &[&server.url_at("/kojihub/ssllogin"), &pki.ca()],
    );
    let out = ran.ok();
    assert!(
        out.starts_with("1002 could not verify client: no client certificate"),
        "{ran}"
    );
}

/// koji's `ProxyDNs`: buildhub with `--proxy-dn` for a front end's certificate (`kojiweb`,
/// no user of its own) logs in as the user it names (`koji --runas`, `sslLogin(proxyuser)`),
/// and as nobody else: not as itself, not as a user that does not exist. The Rust client's
/// `koji_ssl_login_as` does the same, and its session is the user's.
#[test]
fn a_proxy_certificate_logs_in_as_another_user() {
    let pki = Pki::new("koji-proxy-login");
    // Written as koji's hub.conf has it, Apache's RFC 2253 form (the engine writes
    // `O=hub tests, CN=kojiweb`).
    let server = buildhub_tls_with(&pki, &["--proxy-dn", "CN=kojiweb,O=hub tests"]);
    let (admin, web) = (pki.client("admin"), pki.client("kojiweb"));
    create_alice(&pki, &server, &admin);

    let ran = koji_ssl(
        &pki,
        &server,
        &web,
        &["--runas=alice", "call", "getLoggedInUser"],
    );
    assert!(ran.ok().contains("'name': 'alice'"), "{ran}");
    let ran = koji_ssl(
        &pki,
        &server,
        &web,
        &["--runas=alice", "call", "hasPerm", "admin"],
    );
    assert_eq!(
        ran.ok().trim(),
        "False",
        "alice's permissions, not a proxy's: {ran}"
    );
    let ran = koji_ssl(&pki, &server, &web, &["--runas=nobody", "moshimoshi"]);
    assert!(
        ran.stderr.contains("AuthError: Unknown user: nobody"),
        "{ran}"
    );
    let ran = koji_ssl(&pki, &server, &web, &["moshimoshi"]);
    assert!(
        ran.stderr.contains("AuthError: Unknown user: kojiweb"),
        "a proxy is no user by itself: {ran}"
    );

    use hub::client::{blocking::Client, Error};
    let client = |cert: &str| {
        Client::new(server.url_at("/kojihub"))
            .expect("a client")
            .tls_ca_file(pki.ca())
            .expect("the CA")
            .tls_client_cert(cert)
            .expect("the certificate")
    };
    let as_alice = client(&web)
        .koji_ssl_login_as("alice")
        .expect("logged in as alice");
    let who = as_alice.call("getLoggedInUser", ()).expect("a user");
    assert_eq!(support::user_name(&who).as_deref(), Some("alice"));
    match client(&admin).koji_ssl_login_as("alice") {
        Err(Error::Fault(f)) => {
            assert_eq!(f.code, 1002, "{f:?}");
            assert!(
                f.message.contains("not authorized to login other users"),
                "{f:?}"
            );
        }
        other => panic!("expected AuthError, got {other:?}"),
    }
    // Certificates whose subject only reads like the proxy's: a name holding the proxy's
    // whole subject, or with a space or a backslash more (once matched as text).
    for forged in ["kojiweb, O=hub tests", "kojiweb ", r"kojiwe\b"] {
        match client(&pki.client(forged)).koji_ssl_login_as("alice") {
            // Not a proxy: refused as any user is who asks for another (or who is none).
            Err(Error::Fault(f)) => assert_eq!(f.code, 1002, "{forged:?}: {f:?}"),
            other => panic!("{forged:?} as alice: {other:?}"),
        }
    }
    let conn = rusqlite::Connection::open(pki.dir.path("hub.sqlite3")).expect("the database");
    let how: String = conn
        .query_row(
            "SELECT authtype FROM sessions JOIN users ON users.id = user_id \
             WHERE users.name = 'alice' ORDER BY sessions.id DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("alice's last session");
    assert_eq!(how, "proxied by O=hub tests, CN=kojiweb");
}
