//! The buildhub example as a process, driven by the real koji clients: the `koji` CLI
//! (`version`, `call getBuild`, `call listBuilds state=1`, `list-api`) and Python's
//! `koji.ClientSession` (password login, session headers and call numbers, permissions,
//! multicall, uploads, rollback), with the database in a temp dir, across a restart (the
//! data and the sessions outlive it), and past a session's lifetime (the client renews it).

mod support;

use std::path::Path;

use support::{example, koji, koji_cli, python, run, serve, ClientCerts, Pki, Served, TempDir};

/// Starts buildhub on `dir`'s database, with an admin `admin`/`adminpw`.
fn buildhub(dir: &TempDir) -> Served {
    buildhub_with(dir, &[])
}

/// [`buildhub`] with `extra` options.
fn buildhub_with(dir: &TempDir, extra: &[&str]) -> Served {
    let db = dir.path("hub.sqlite3");
    let mut args = vec!["--db", db.as_str(), "--admin", "admin:adminpw"];
    args.extend_from_slice(extra);
    serve("buildhub", &args)
}

fn kojihub(server: &Served) -> String {
    server.url_at("/kojihub")
}

/// A koji config naming the hub, so the CLI needs no system profile.
fn koji_config(dir: &TempDir, server: &Served) -> String {
    let path = dir.path("koji.conf");
    std::fs::write(
        &path,
        format!("[koji]\nserver = {}\nauthtype = noauth\n", kojihub(server)),
    )
    .expect("koji config written");
    path
}

/// Python prelude: `session(user, password)` logs a `koji.ClientSession` in, `fault(code,
/// f, *args)` asserts that a call raises koji's exception with that fault code.
const PRELUDE: &str = r#"
import sys, koji
URL = sys.argv[1]

def session(user=None, password=None):
    s = koji.ClientSession(URL, opts={'user': user, 'password': password, 'max_retries': 0})
    if user:
        assert s.login() is True
    return s

def fault(code, f, *args, **kwargs):
    try:
        f(*args, **kwargs)
    except koji.GenericError as e:
        assert e.faultCode == code, (code, type(e), e)
        return e
    raise AssertionError('no fault %d from %r' % (code, f))
"#;

fn py(server: &Served, body: &str, extra: &[&str]) -> String {
    let script = format!("{PRELUDE}\n{body}");
    let url = kojihub(server);
    let mut args = vec![url.as_str()];
    args.extend_from_slice(extra);
    let ran = python(&script, &args);
    assert_eq!(
        ran.status,
        Some(0),
        "{ran}\n--- server\n{}",
        server.stderr()
    );
    ran.stdout
}

#[test]
fn koji_cli_reads_builds() {
    let dir = TempDir::new("buildhub-cli");
    let server = buildhub(&dir);
    py(
        &server,
        "s = session('admin', 'adminpw')
assert s.createBuild('bash', '5.2.15', '3.fc40') == 1
s.createBuild('bash', '5.2.15', '4.fc41')
s.deleteBuild('bash-5.2.15-4.fc41')",
        &[],
    );
    let conf = koji_config(&dir, &server);
    let url = kojihub(&server);
    let k = |args: &[&str]| {
        let mut all = vec!["-c", conf.as_str()];
        all.extend_from_slice(args);
        koji(&url, &all)
    };

    let ran = k(&["version"]);
    assert!(ran.ok().contains("Hub:    1.35.0"), "{ran}");

    let ran = k(&["call", "getBuild", "bash-5.2.15-3.fc40"]);
    let out = ran.ok();
    for member in [
        "'id': 1",
        "'build_id': 1",
        "'name': 'bash'",
        "'package_name': 'bash'",
        "'version': '5.2.15'",
        "'release': '3.fc40'",
        "'nvr': 'bash-5.2.15-3.fc40'",
        "'epoch': None",
        "'state': 1",
        "'owner_name': 'admin'",
        "'creation_time': '",
    ] {
        assert!(out.contains(member), "no {member} in {ran}");
    }
    let ran = k(&["call", "getBuild", "1"]);
    assert!(ran.ok().contains("'nvr': 'bash-5.2.15-3.fc40'"), "{ran}");
    let ran = k(&["call", "getBuild", "nope-1-1"]);
    assert_eq!(ran.ok().trim(), "None", "{ran}");
    let ran = k(&["call", "getBuild", "nope-1-1", "strict=True"]);
    assert!(ran.stderr.contains("GenericError: No such build"), "{ran}");

    let ran = k(&["call", "--json-output", "listBuilds", "state=1"]);
    let json: serde_json::Value = serde_json::from_str(ran.ok()).expect("JSON output");
    let nvrs: Vec<&str> = json
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|b| b["nvr"].as_str())
        .collect();
    assert_eq!(nvrs, ["bash-5.2.15-3.fc40"], "{ran}");
    let ran = k(&[
        "call",
        "--json-output",
        "listBuilds",
        "state=2",
        "packageID=bash",
    ]);
    let json: serde_json::Value = serde_json::from_str(ran.ok()).expect("JSON output");
    assert_eq!(json[0]["nvr"], "bash-5.2.15-4.fc41", "{ran}");

    // writing needs a login: koji's ActionNotAllowed
    let ran = k(&["call", "createBuild", "zsh", "5.9.0", "1.fc40"]);
    assert!(ran.stderr.contains("ActionNotAllowed"), "{ran}");
    // the CLI's password login: `moshimoshi` greets the user `getLoggedInUser` names, and a
    // logged-in CLI writes
    let as_user = |password: &str, args: &[&str]| {
        let password = format!("--password={password}");
        let mut all = vec!["-c", conf.as_str(), "--authtype=password", "--user=admin"];
        all.push(&password);
        all.extend_from_slice(args);
        koji_cli(&all)
    };
    let ran = as_user("adminpw", &["moshimoshi"]);
    assert!(ran.ok().contains("admin"), "{ran}");
    let ran = as_user(
        "adminpw",
        &["call", "createBuild", "zsh", "5.9.0", "1.fc40"],
    );
    assert_eq!(ran.ok().trim(), "3", "{ran}");
    let ran = as_user("wrong", &["moshimoshi"]);
    assert!(
        ran.status != Some(0) && ran.stderr.contains("invalid username or password"),
        "{ran}"
    );

    let ran = k(&["list-api"]);
    let out = ran.ok();
    for line in [
        "getBuild(buildInfo, strict=None)",
        "listBuilds(packageID=None, userID=None, state=None, prefix=None)",
        "login(user, password, opts=None, renew=None, exclusive=None)",
        "checkUpload(path, name, verify=None, tail=None, volume=None)",
        "getAPIVersion()",
    ] {
        assert!(out.lines().any(|l| l == line), "no line `{line}` in {ran}");
    }
}

#[test]
fn koji_version_header() {
    let dir = TempDir::new("buildhub-header");
    let server = buildhub(&dir);
    let out = py(
        &server,
        "import urllib.request, xmlrpc.client
req = urllib.request.Request(URL, data=xmlrpc.client.dumps((), 'getAPIVersion').encode(),
                             headers={'Content-Type': 'text/xml'})
with urllib.request.urlopen(req) as r:
    print(r.headers['Koji-Version'], xmlrpc.client.loads(r.read())[0][0])",
        &[],
    );
    assert_eq!(out.trim(), "1.35.0 1");
}

#[test]
fn client_session_logs_in_and_works() {
    let dir = TempDir::new("buildhub-session");
    let server = buildhub(&dir);
    let upload = dir.path("bash-5.2.15-3.fc40.src.rpm");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&upload, &content).expect("upload source written");
    let out = py(
        &server,
        r#"
import os, zlib
admin = session('admin', 'adminpw')
assert admin.sinfo['header-auth'] is True and admin.sinfo['session-key']
me = admin.getLoggedInUser()
assert me['name'] == 'admin' and me['id'] == 1, me
assert admin.hasPerm('admin') is True
assert session().getLoggedInUser() is None

# a wrong password: AuthError
fault(1002, session, 'admin', 'wrong')

# users and permissions
alice_id = admin.createUser('alice', 's3cret')
alice = session('alice', 's3cret')
assert alice.getLoggedInUser()['id'] == alice_id
assert alice.hasPerm('tag') is False
e = fault(1004, alice.createUser, 'mallory', 'x')
assert 'admin permission required (logged in as alice)' in str(e), e
fault(1004, alice.grantPermission, 'alice', 'admin')
fault(1004, alice.setOffline, True, 'mine now')
admin.grantPermission('alice', 'tag')
assert alice.hasPerm('tag') is True  # at once, no new login needed
fault(1000, admin.grantPermission, 'alice', 'tag')

# packages and builds; the owner is the session's user
pkg = alice.createPackage('zsh')
assert alice.getPackage('zsh') == {'id': pkg, 'name': 'zsh'}
build_id = alice.createBuild('zsh', '5.9', '4.fc40')
b = alice.getBuild('zsh-5.9-4.fc40')
assert b['id'] == build_id and b['owner_name'] == 'alice' and b['owner_id'] == alice_id, b
assert b['state'] == 1 and b['epoch'] is None and b['package_id'] == pkg, b
fault(1000, alice.createBuild, 'zsh', '5.9', '4.fc40')
fault(1004, alice.deleteBuild, build_id)
fault(1004, session().createBuild, 'x', '1', '1')

# a createBuild that fails half-way (the new package is inserted, then the build is refused)
# leaves nothing behind
fault(1000, alice.createBuild, 'ghost', '1-2', '1')
assert alice.getPackage('ghost') is None
assert alice.listBuilds(packageID='ghost') == []

# multicall: one request, each entry on its own
with alice.multicall() as m:
    who = m.getLoggedInUser()
    mine = m.listBuilds(userID='alice')
    bad = m.createUser('eve', 'x')
    pkgs = m.listPackages()
assert who.result['name'] == 'alice'
assert [x['nvr'] for x in mine.result] == ['zsh-5.9-4.fc40']
try:
    bad.result
    raise AssertionError('no fault')
except koji.ActionNotAllowed:
    pass
assert [p['package_name'] for p in pkgs.result] == ['zsh']

# uploads: koji's fast upload path (octet-stream POSTs), then checkUpload
local = sys.argv[2]
alice.uploadWrapper(local, 'cli-build/1', blocksize=65536)
info = alice.checkUpload('cli-build/1', os.path.basename(local), verify='adler32')
data = open(local, 'rb').read()
assert info['size'] == len(data), info
assert info['hexdigest'] == '%08x' % (zlib.adler32(data) & 0xffffffff), info
assert alice.checkUpload('cli-build/1', 'missing.rpm') is None
r = alice.rawUpload(b'abc', 0, 'cli-build/2', 'x.txt', overwrite=True)
assert r == {'size': 3, 'fileverify': 'adler32', 'offset': 0,
             'hexdigest': '%08x' % zlib.adler32(b'abc')}, r
r = alice.rawUpload(b'de', -1, 'cli-build/2', 'x.txt')
assert r['offset'] == 3 and r['size'] == 2, r
assert alice.checkUpload('cli-build/2', 'x.txt')['size'] == 5
# past the end of the file: refused, the file as it was (no sparse terabyte to checksum)
e = fault(1000, alice.rawUpload, b'x', 1 << 40, 'cli-build/2', 'x.txt')
assert 'past the end' in str(e), e
fault(1000, alice.rawUpload, b'x', 6, 'cli-build/2', 'x.txt')
assert alice.checkUpload('cli-build/2', 'x.txt')['size'] == 5
r = alice.rawUpload(b'f', 5, 'cli-build/2', 'x.txt')
assert r['offset'] == 5, r
for d, n in [('../escape', 'x'), ('/etc', 'x'), ('a/../..', 'x'), ('ok', '.user'), ('ok', '../x')]:
    fault(1000, alice.rawUpload, b'x', 0, d, n, overwrite=True)
fault(1000, admin.rawUpload, b'x', 0, 'cli-build/2', 'y.txt')  # not admin's directory

# a call that faulted was rolled back: sent again with its number (as koji's client resends
# after a 503), it runs again, where one that committed is a replay (RetryError): koji
# records a call number with its call's commit
fault(1000, alice.rawUpload, b'x', 0, '../escape', 'x', overwrite=True)
alice.callnum -= 1
fault(1000, alice.rawUpload, b'x', 0, '../escape', 'x', overwrite=True)
assert alice.getLoggedInUser()['name'] == 'alice'
alice.callnum -= 1
fault(1009, alice.getLoggedInUser)
assert alice.getLoggedInUser()['name'] == 'alice'

# logout ends the session
alice.logout()
assert alice.getLoggedInUser() is None
print('ok')
"#,
        &[&upload],
    );
    assert_eq!(out.trim(), "ok");
    // passwords stay out of the logs (the memory watch logs a call's arguments)
    assert!(!server.stderr().contains("s3cret"), "{}", server.stderr());
    let stored = dir.path("buildhub-work/cli-build/1/bash-5.2.15-3.fc40.src.rpm");
    assert_eq!(std::fs::read(&stored).expect("uploaded file"), content);
    assert!(!Path::new(&dir.path("escape")).exists());
}

#[test]
fn data_and_sessions_survive_a_restart_and_admin_goes_offline() {
    let dir = TempDir::new("buildhub-restart");
    let server = buildhub(&dir);
    let key = py(
        &server,
        "s = session('admin', 'adminpw')
s.createUser('bob', 'pw')
b = session('bob', 'pw')
b.createBuild('bash', '5.2.15', '3.fc40')
print('%s %s %s' % (b.sinfo['session-id'], b.sinfo['session-key'], b.callnum))
# a koji client logs its session out when it is collected: this one ends without (a daemon
# killed, a script interrupted)
b._forget()",
        &[],
    );
    drop(server);

    // no --admin this time: the accounts are in the database
    let server = serve("buildhub", &["--db", &dir.path("hub.sqlite3")]);
    let mut parts = key.split_whitespace();
    let (id, session_key, callnum) = (
        parts.next().expect("id"),
        parts.next().expect("key"),
        parts.next().expect("call number"),
    );
    let out = py(
        &server,
        "b = session('bob', 'pw')
build = b.getBuild('bash-5.2.15-3.fc40')
assert build['owner_name'] == 'bob' and build['id'] == 1, build
assert [u['nvr'] for u in b.listBuilds(userID='bob')] == ['bash-5.2.15-3.fc40']
# sessions live in the database: the old one goes on where it stopped
SINFO = {'session-id': int(sys.argv[2]), 'session-key': sys.argv[3], 'header-auth': True}
def resumed(callnum):
    s = koji.ClientSession(URL, sinfo=SINFO, opts={'max_retries': 0})
    s.callnum = callnum
    return s
def refused(code, callnum):
    s = resumed(callnum)
    fault(code, s.getLoggedInUser)
    s._forget()  # or it logs the session out when collected
N = int(sys.argv[4])  # the call number after the last one used before the restart
refused(1009, N - 1)
old = resumed(N)
assert old.getLoggedInUser()['name'] == 'bob'
assert old.hasPerm('admin') is False
# a replay of the last call number, and an older one, are refused
refused(1009, N + 1)
refused(1008, N)
# a wrong key is refused; a logout ends the session for good
wrong = koji.ClientSession(URL, sinfo=dict(SINFO, **{'session-key': 'x' + SINFO['session-key'][1:]}))
fault(1002, wrong.getLoggedInUser)
wrong._forget()
import sqlite3
# the database keeps a hash of the key, not the key
with sqlite3.connect(sys.argv[5], timeout=10) as db:
    stored = db.execute('SELECT key_hash FROM sessions WHERE id = ?', (SINFO['session-id'],)).fetchone()[0]
assert len(stored) == 128 and SINFO['session-key'] not in stored, stored
# a user disabled in the database is refused at once, sessions and all
def set_status(status):
    with sqlite3.connect(sys.argv[5], timeout=10) as db:
        db.execute('UPDATE users SET status = ? WHERE name = ?', (status, 'bob'))
set_status(1)
e = fault(1002, old.getLoggedInUser)
assert 'logins by bob are not allowed' in str(e), e
set_status(0)
old.logout()
refused(1002, 100)
admin = session('admin', 'adminpw')
admin.setOffline(True, 'down for the upgrade')
e = fault(1014, b.getBuild, 1)
assert 'down for the upgrade' in str(e) and isinstance(e, koji.ServerOffline), e
print('ok')",
        &[id, session_key, callnum, &dir.path("hub.sqlite3")],
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn a_database_with_plain_session_keys_is_migrated_and_those_sessions_ended() {
    let dir = TempDir::new("buildhub-migrate");
    let db = dir.path("hub.sqlite3");
    let server = buildhub(&dir);
    py(
        &server,
        "session('admin', 'adminpw').createUser('bob', 'pw')",
        &[],
    );
    drop(server);
    // Turn the database back into what migration 2 left: keys stored as sent.
    let back = python(
        "import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute('DROP INDEX sessions_exclusive')
db.execute('ALTER TABLE sessions DROP COLUMN master')
db.execute('ALTER TABLE sessions DROP COLUMN exclusive')
db.execute('ALTER TABLE sessions DROP COLUMN renew_ts')
db.execute('ALTER TABLE sessions DROP COLUMN closed')
db.execute('ALTER TABLE sessions DROP COLUMN hostip')
db.execute('ALTER TABLE sessions RENAME COLUMN key_hash TO key')
db.execute(\"INSERT INTO sessions (user_id, key, authtype, start_ts) \
            SELECT id, 'plainkey', 'password', 0 FROM users WHERE name = 'bob'\")
db.execute('PRAGMA user_version = 2')
db.commit()
print(db.execute('SELECT max(id) FROM sessions').fetchone()[0])",
        &[&db],
    );
    assert_eq!(back.status, Some(0), "{back}");
    let old_id = back.stdout.trim().to_owned();
    let server = serve("buildhub", &["--db", &db]);
    let out = py(
        &server,
        "import sqlite3
old = koji.ClientSession(URL, sinfo={'session-id': int(sys.argv[2]), 'session-key': 'plainkey',
                                     'header-auth': True})
fault(1002, old.getLoggedInUser)
old._forget()
b = session('bob', 'pw')
assert b.getLoggedInUser()['name'] == 'bob'
with sqlite3.connect(sys.argv[3]) as db:
    assert db.execute('PRAGMA user_version').fetchone()[0] == 5
    row = db.execute('SELECT key_hash, expired, closed FROM sessions WHERE id = ?', (int(sys.argv[2]),)).fetchone()
assert row == ('', 1, 1), row
print('ok')",
        &[&old_id, &db],
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn an_expired_session_is_renewed_by_koji_s_client() {
    let dir = TempDir::new("buildhub-renew");
    let db = dir.path("hub.sqlite3");
    let server = buildhub_with(&dir, &["--session-lifetime", "2"]);
    let out = py(
        &server,
        "import sqlite3, time
session('admin', 'adminpw').createUser('bob', 'pw')
b = session('bob', 'pw')
sid, key = b.sinfo['session-id'], b.sinfo['session-key']
assert b.getLoggedInUser()['name'] == 'bob'
time.sleep(2.5)
# past its lifetime the session is refused with koji's AuthExpired (sent as is, not renewed)
try:
    b._sendCall(*b._prepCall('getLoggedInUser', ()))
    raise AssertionError('an expired session was accepted')
except koji.Fault as e:
    assert e.faultCode == 1007 and 'has expired' in e.faultString, e
# koji's client renews it by itself: a login with renew that presents the expired session
assert b.getLoggedInUser()['name'] == 'bob'
assert b.sinfo['session-id'] == sid and b.sinfo['session-key'] != key, (sid, b.sinfo)
# its call numbers start again from 0, its permissions are back
b.createBuild('bash', '5.2.15', '3.fc40')
assert b.callnum >= 2 and b.hasPerm('admin') is False
# the old key opens nothing
old = koji.ClientSession(URL, sinfo={'session-id': sid, 'session-key': key, 'header-auth': True},
                         opts={'max_retries': 0})
fault(1002, old.getLoggedInUser)
old._forget()
time.sleep(2.5)
# another user's password does not renew bob's session: it opens that user's own
m = koji.ClientSession(URL, sinfo=dict(b.sinfo), opts={'user': 'admin', 'password': 'adminpw',
                                                     'max_retries': 0})
m.callnum = b.callnum
assert m.login(renew=True) is True
assert m.sinfo['session-id'] != sid and m.getLoggedInUser()['name'] == 'admin'
try:
    b._sendCall(*b._prepCall('getLoggedInUser', ()))
    raise AssertionError('admin renewed the expired session of bob')
except koji.Fault as e:
    assert e.faultCode == 1007, e
# a logout closes the session for good: it cannot even be presented to log in again
assert b.getLoggedInUser()['name'] == 'bob' and b.sinfo['session-id'] == sid
closed = dict(b.sinfo)
b.logout()
c = koji.ClientSession(URL, sinfo=closed, opts={'user': 'bob', 'password': 'pw', 'max_retries': 0})
fault(1002, c.getLoggedInUser)
fault(1002, c.login, renew=True)
c._forget()
with sqlite3.connect(sys.argv[2], timeout=10) as db:
    row = db.execute('SELECT expired, closed FROM sessions WHERE id = ?', (sid,)).fetchone()
assert row == (1, 1), row
print('ok')",
        &[&db],
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn a_session_is_bound_to_the_address_it_logged_in_from() {
    // Calls with bob's session from 127.0.0.1 (where he logged in) and from 127.0.0.2.
    const FROM_TWO_ADDRESSES: &str = "import http.client, xmlrpc.client
class From(xmlrpc.client.Transport):
    def __init__(self, source, headers):
        super().__init__()
        self.source, self.extra = source, headers
    def make_connection(self, host):
        return http.client.HTTPConnection(host, source_address=(self.source, 0))
    def send_headers(self, connection, headers):
        super().send_headers(connection, list(headers) + self.extra)
session('admin', 'adminpw').createUser('bob', 'pw')
b = session('bob', 'pw')
def whoami(source):
    headers = [('Koji-Session-Id', str(b.sinfo['session-id'])),
               ('Koji-Session-Key', b.sinfo['session-key']),
               ('Koji-Session-Callnum', str(b.callnum))]
    b.callnum += 1
    proxy = xmlrpc.client.ServerProxy(URL, transport=From(source, headers), allow_none=True)
    try:
        return proxy.getLoggedInUser()['name']
    except xmlrpc.client.Fault as e:
        return e.faultCode
print(whoami('127.0.0.1'), whoami('127.0.0.2'), whoami('127.0.0.1'))
b._forget()";
    let dir = TempDir::new("buildhub-hostip");
    let server = buildhub(&dir);
    let out = py(&server, FROM_TWO_ADDRESSES, &[]);
    assert_eq!(out.trim(), "bob 1002 bob", "checked (koji's default)");
    assert!(
        server
            .stderr()
            .contains("session sent from another address"),
        "{}",
        server.stderr()
    );
    drop(server);
    let dir = TempDir::new("buildhub-no-hostip");
    let server = buildhub_with(&dir, &["--no-client-ip-check"]);
    let out = py(&server, FROM_TWO_ADDRESSES, &[]);
    assert_eq!(out.trim(), "bob bob bob", "not checked");
}

#[test]
fn the_rust_client_logs_in_and_renews_an_expired_session() {
    use hub::client::{blocking::Client, Error};
    let dir = TempDir::new("buildhub-rust-client");
    let db = dir.path("hub.sqlite3");
    let server = buildhub_with(&dir, &["--session-lifetime", "2"]);
    let url = kojihub(&server);
    let name = |who: hub::Value| support::user_name(&who);
    let admin = Client::new(&url)
        .expect("a client")
        .koji_login("admin", "adminpw")
        .expect("logged in");
    let who = admin.call("getLoggedInUser", ()).expect("a user");
    assert_eq!(name(who).as_deref(), Some("admin"));
    let shown = format!("{admin:?}");
    assert!(
        shown.contains("\"admin\"") && !shown.contains("adminpw"),
        "no password shown: {shown}"
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // Past its lifetime: the hub answers AuthExpired, the client renews the session in place
    // and sends the call again; then it numbers the renewed session's calls from 0.
    let id: i64 = admin
        .call("createBuild", ("bash", "5.2.15", "3.fc40"))
        .expect("a build, after the renewal");
    assert_eq!(id, 1);
    let who = admin.call("getLoggedInUser", ()).expect("a user");
    assert_eq!(name(who).as_deref(), Some("admin"));
    let conn = rusqlite::Connection::open(&db).expect("the database");
    let (sessions, renewed): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(renew_ts) FROM sessions",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("counted");
    assert_eq!((sessions, renewed), (1, 1), "one session, renewed");
    // A logout closes the session on the hub; the client goes on anonymous.
    let closed = || -> i64 {
        conn.query_row("SELECT closed FROM sessions", [], |row| row.get(0))
            .expect("read")
    };
    let anonymous = |c: &Client| c.call::<hub::Value>("getLoggedInUser", ()).expect("a call");
    assert_eq!(closed(), 0);
    let admin = admin.koji_logout().expect("logged out");
    assert_eq!(anonymous(&admin), hub::Value::Nil);
    assert_eq!(closed(), 1, "the hub closed the session");
    let again = admin.koji_logout().expect("nothing to log out");
    assert_eq!(anonymous(&again), hub::Value::Nil);
    match Client::new(&url)
        .expect("a client")
        .koji_login("admin", "wrong")
    {
        Err(Error::Fault(f)) => assert_eq!(f.code, 1002, "{f:?}"),
        other => panic!("expected AuthError, got {other:?}"),
    }
}

#[test]
fn the_rust_client_uploads_as_koji_s_client_does() {
    use hub::client::{blocking::Client, Error, UploadOptions};
    let dir = TempDir::new("buildhub-rust-upload");
    let server = buildhub_with(&dir, &["--session-lifetime", "2"]);
    let url = kojihub(&server);
    let admin = Client::new(&url)
        .expect("a client")
        .koji_login("admin", "adminpw")
        .expect("logged in");
    let stored = |path: &str| std::fs::read(dir.path(&format!("buildhub-work/{path}")));
    // Three chunks of koji's default 1 MiB, the last one short.
    let content: Vec<u8> = (0..2_621_500u32).map(|i| (i * 13 % 251) as u8).collect();
    let local = dir.path("build.log");
    std::fs::write(&local, &content).expect("written");
    let done = admin
        .koji_upload(&local, "rust-build/1", &UploadOptions::new())
        .expect("uploaded");
    assert_eq!(
        (done.path.as_str(), done.name.as_str(), done.size),
        ("rust-build/1", "build.log", content.len() as u64)
    );
    assert_eq!(
        done.hexdigest,
        format!("{:08x}", adler2::adler32_slice(&content))
    );
    assert_eq!(stored("rust-build/1/build.log").expect("stored"), content);

    // The file is there: refused without overwrite, replaced with it (in 64 KiB chunks).
    match admin.koji_upload(&local, "rust-build/1", &UploadOptions::new()) {
        Err(Error::Fault(f)) => assert!(f.message.contains("upload path exists"), "{f:?}"),
        other => panic!("expected the hub's refusal, got {other:?}"),
    }
    let shorter = &content[..100_000];
    std::fs::write(&local, shorter).expect("written");
    let options = UploadOptions::new().overwrite(true).chunk_size(64 * 1024);
    let done = admin
        .koji_upload(&local, "rust-build/1", &options)
        .expect("overwritten");
    assert_eq!(done.size, 100_000);
    assert_eq!(stored("rust-build/1/build.log").expect("stored"), shorter);

    // An empty file exists on the hub after its one empty chunk; a name of its own.
    let empty = dir.path("empty");
    std::fs::write(&empty, b"").expect("written");
    let done = admin
        .koji_upload(
            &empty,
            "rust-build/1",
            &UploadOptions::new().name("empty.txt"),
        )
        .expect("an empty upload");
    assert_eq!((done.size, done.hexdigest.as_str()), (0, "00000001"));
    assert_eq!(stored("rust-build/1/empty.txt").expect("stored"), b"");

    // Past the session's lifetime the first chunk renews it, and the upload goes on.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let done = admin
        .koji_upload(&local, "rust-build/2", &UploadOptions::new())
        .expect("uploaded after the renewal");
    assert_eq!(done.size, 100_000);

    // Anonymous: buildhub's refusal; a file that is not there: the client's own error.
    match Client::new(&url).expect("a client").koji_upload(
        &local,
        "rust-build/3",
        &UploadOptions::new(),
    ) {
        Err(Error::Fault(f)) => assert!(f.message.contains("logged-in"), "{f:?}"),
        other => panic!("expected the hub's refusal, got {other:?}"),
    }
    match admin.koji_upload(dir.path("missing"), "rust-build/3", &UploadOptions::new()) {
        Err(Error::File { path, .. }) => assert!(path.ends_with("missing")),
        other => panic!("expected the file's error, got {other:?}"),
    }
    assert!(stored("rust-build/3/build.log").is_err());
}

#[test]
fn an_expired_session_stays_expired_under_a_longer_lifetime() {
    use hub::client::{blocking::Client, Error};
    let dir = TempDir::new("buildhub-expired-for-good");
    let db = dir.path("hub.sqlite3");
    let who = |client: &Client| match client.call::<hub::Value>("getLoggedInUser", ()) {
        Ok(_) => None,
        Err(Error::Fault(f)) => Some(f.code),
        Err(e) => panic!("a transport error: {e}"),
    };
    let login = |url: &str| -> (i64, String) {
        let info: hub::Value = Client::new(url)
            .expect("a client")
            .call("login", ("admin", "adminpw"))
            .expect("logged in");
        let info = info.as_struct().expect("session info");
        let id = info.get("session-id").and_then(hub::Value::as_i64);
        let key = info.get("session-key").and_then(hub::Value::as_str);
        (id.expect("an id"), key.expect("a key").to_owned())
    };
    let (seen, unseen) = {
        let server = buildhub_with(&dir, &["--session-lifetime", "1"]);
        let url = kojihub(&server);
        let seen = login(&url);
        let unseen = login(&url);
        let client = Client::new(&url)
            .expect("a client")
            .koji_session(seen.0, &seen.1)
            .expect("a session");
        assert_eq!(who(&client), None, "served within its lifetime");
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert_eq!(who(&client), Some(1007), "past its lifetime");
        (seen, unseen)
    };
    // The same database under a lifetime of an hour: the session found expired stays so (koji
    // marks it); one nobody presented while it was past its lifetime is within the new one.
    let server = buildhub_with(&dir, &["--session-lifetime", "3600"]);
    let url = kojihub(&server);
    let client = |(id, key): &(i64, String)| {
        Client::new(&url)
            .expect("a client")
            .koji_session(*id, key)
            .expect("a session")
    };
    assert_eq!(who(&client(&seen)), Some(1007), "{}", server.stderr());
    assert_eq!(who(&client(&unseen)), None);
    let conn = rusqlite::Connection::open(&db).expect("the database");
    let marked: i64 = conn
        .query_row(
            "SELECT expired FROM sessions WHERE id = ?1",
            [seen.0],
            |row| row.get(0),
        )
        .expect("the session's row");
    assert_eq!(marked, 1);
}

#[test]
fn the_call_example_logs_in_with_user() {
    let dir = TempDir::new("buildhub-call");
    let server = buildhub(&dir);
    let url = kojihub(&server);
    let call = |args: &[&str]| {
        let mut all = vec!["--url", url.as_str(), "--timeout", "30"];
        all.extend_from_slice(args);
        run(example("call"), &all, "")
    };
    let ran = call(&[
        "--user",
        "admin",
        "--password",
        "adminpw",
        "getLoggedInUser",
    ]);
    assert!(ran.ok().contains("admin"), "{ran}");
    let as_admin = ["--user", "admin", "--password", "adminpw"];
    let ran = call(
        &[
            &as_admin[..],
            &["createBuild", "bash", "s:5.2.15", "3.fc40"],
        ]
        .concat(),
    );
    assert_eq!(ran.ok().trim(), "1", "{ran}");
    // Anonymous, the same write is refused; a wrong password is koji's AuthError.
    let ran = call(&["createBuild", "bash", "s:5.2.15", "4.fc40"]);
    assert_eq!(ran.status, Some(1), "{ran}");
    assert!(ran.stderr.contains("1004"), "{ran}");
    let ran = call(&["--user", "admin", "--password", "wrong", "getLoggedInUser"]);
    assert_eq!(ran.status, Some(1), "{ran}");
    assert!(ran.stderr.contains("1002"), "{ran}");
    let ran = call(&["--password", "adminpw", "getLoggedInUser"]);
    assert_eq!(ran.status, Some(2), "--password without --user: {ran}");

    // `--upload FILE DIR`: koji's upload, logged in; again only with `--overwrite`.
    let local = dir.path("notes.txt");
    std::fs::write(&local, "built\n").expect("written");
    let upload = |extra: &[&str]| {
        call(
            &[
                &as_admin[..],
                &["--upload", local.as_str(), "call-build"],
                extra,
            ]
            .concat(),
        )
    };
    let ran = upload(&[]);
    assert_eq!(
        ran.ok().trim(),
        format!("uploaded {local} to call-build/notes.txt: 6 bytes, adler32 0875022b"),
        "{ran}"
    );
    let stored = dir.path("buildhub-work/call-build/notes.txt");
    assert_eq!(std::fs::read(&stored).expect("stored"), b"built\n");
    let ran = upload(&[]);
    assert_eq!(ran.status, Some(1), "{ran}");
    assert!(ran.stderr.contains("upload path exists"), "{ran}");
    upload(&["--overwrite"]).ok();
    let ran = call(&["--upload", local.as_str(), "call-build"]);
    assert!(
        ran.status == Some(1) && ran.stderr.contains("logged-in"),
        "{ran}"
    );
    let ran = call(&[&as_admin[..], &["--overwrite", "getLoggedInUser"]].concat());
    assert_eq!(ran.status, Some(2), "--overwrite without --upload: {ran}");
    // Each command's session was closed after it (koji's CLI logs out too), a faulted
    // command's included.
    let db = rusqlite::Connection::open(dir.path("hub.sqlite3")).expect("the database");
    let (sessions, open): (i64, i64) = db
        .query_row(
            "SELECT count(*), count(*) - sum(closed) FROM sessions",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("counted");
    assert_eq!((sessions, open), (5, 0));
}

/// koji's session sharing through `koji.ClientSession`: an exclusive session locks its user's
/// other sessions out (`AuthLockError`) but not its subsessions; another session may force
/// the lock over (the holder and its subsessions closed) or log out; `sharedSession` and
/// `logout` give it back; `subsession()` works as the same user and closes with its master,
/// or alone by `logoutChild`. A holder marked expired still holds it until forced, and keeps
/// it when renewed.
#[test]
fn exclusive_sessions_and_subsessions_as_kojira_and_kojid_use_them() {
    let dir = TempDir::new("buildhub-exclusive");
    let server = buildhub(&dir);
    let out = py(
        &server,
        r#"
admin = session('admin', 'adminpw')
admin.createUser('kojira', 'pw')
admin.createUser('bob', 'pw')
first = session('kojira', 'pw')
second = session('kojira', 'pw')
bob = session('bob', 'pw')

first.exclusiveSession()
first.exclusiveSession()  # held already: no error
assert first.getLoggedInUser()['name'] == 'kojira'
e = fault(1006, second.getLoggedInUser)
assert 'holds an exclusive session' in str(e), e
assert bob.getLoggedInUser()['name'] == 'bob'  # another user is not locked
e = fault(1006, second.exclusiveSession)
assert 'Cannot get exclusive session' in str(e), e

# a subsession works under its master's lock, as the same user
sub = first.subsession()
assert sub.getLoggedInUser()['name'] == 'kojira'
fault(1000, sub.exclusiveSession)

# given back: the other session works again, and can take it
first.sharedSession()
assert second.getLoggedInUser()['name'] == 'kojira'
second.exclusiveSession()
fault(1006, first.getLoggedInUser)

# forced over (kojira --force-lock): the holder and its subsessions are closed
held_sub = second.subsession()
assert held_sub.getLoggedInUser()['name'] == 'kojira'
first.exclusiveSession(force=True)
assert first.getLoggedInUser()['name'] == 'kojira'
fault(1002, second.getLoggedInUser)
fault(1002, held_sub.getLoggedInUser)

# a locked-out session may still log out; the holder's logout frees the lock
third = session('kojira', 'pw')
fault(1006, third.getLoggedInUser)
third.logout()
fourth = session('kojira', 'pw')
first.logout()
assert fourth.getLoggedInUser()['name'] == 'kojira'
fault(1002, sub.getLoggedInUser)  # closed with its master

# logoutChild closes one subsession, and only a subsession of the caller's
child = fourth.subsession()
other = fourth.subsession()
fourth.logoutChild(child.sinfo['session-id'])
fault(1002, child.getLoggedInUser)
assert other.getLoggedInUser()['name'] == 'kojira'
fault(1002, bob.logoutChild, other.sinfo['session-id'])

# a holder marked expired still holds the lock, as in koji (expired holders count): another
# session is locked out and cannot take it without force; the holder renews in place
# (login, renew=True, exclusive=True) and keeps it
import sqlite3
def mark_expired(s):
    with sqlite3.connect(sys.argv[2], timeout=10) as db:
        db.execute('UPDATE sessions SET expired = 1 WHERE id = ?', (s.sinfo['session-id'],))
held = session('bob', 'pw')
held.exclusiveSession()
mark_expired(held)
taker = session('bob', 'pw')
e = fault(1006, taker.exclusiveSession, force=False)
assert 'Cannot get exclusive session' in str(e), e
fault(1006, taker.getLoggedInUser)
held_id = held.sinfo['session-id']
assert held.getLoggedInUser()['name'] == 'bob' and held.sinfo['session-id'] == held_id
fault(1006, taker.exclusiveSession)
# given back and renewed again, it is not the holder any more (no stale flag comes back)
held.sharedSession()
held.exclusive = False  # koji's client keeps it set: its renewal would take the lock again
mark_expired(held)
assert held.getLoggedInUser()['name'] == 'bob'
taker.exclusiveSession()
fault(1006, held.getLoggedInUser)
# forced over while it is expired: the holder is closed
mark_expired(taker)
forcer = session('bob', 'pw')
fault(1006, forcer.exclusiveSession)
forcer.exclusiveSession(force=True)
assert forcer.getLoggedInUser()['name'] == 'bob'
fault(1002, taker.getLoggedInUser)
print('ok')
"#,
        &[&dir.path("hub.sqlite3")],
    );
    assert_eq!(out.trim(), "ok");
}

/// Python helpers for the session tests: `age(s)` puts `s`'s session past the hub's lifetime
/// (a day) in the database, as if nobody had presented it for that long; `orphans()` counts
/// the open sessions under a closed master; `raw(s, method)` calls
/// without the client's renewal and answers the fault code, or `None`.
const SESSION_HELPERS: &str = r#"
import sqlite3
DB = sys.argv[2]

def age(s):
    with sqlite3.connect(DB, timeout=10) as db:
        db.execute('UPDATE sessions SET start_ts = start_ts - 200000, '
                   'renew_ts = renew_ts - 200000 WHERE id = ?', (s.sinfo['session-id'],))

def orphans():
    with sqlite3.connect(DB, timeout=10) as db:
        return db.execute('SELECT count(*) FROM sessions s JOIN sessions m ON m.id = s.master '
                          'WHERE s.closed = 0 AND m.closed = 1').fetchone()[0]

def raw(s, method, *args):
    try:
        s._sendCall(*s._prepCall(method, args))
    except koji.Fault as e:
        return e.faultCode
    return None
"#;

/// Runs `script` (after [`SESSION_HELPERS`]) against a fresh buildhub, which must print `ok`.
fn session_script(tag: &str, script: &str) {
    let dir = TempDir::new(tag);
    let server = buildhub(&dir);
    let out = py(
        &server,
        &format!("{SESSION_HELPERS}{script}"),
        &[&dir.path("hub.sqlite3")],
    );
    assert_eq!(out.trim(), "ok");
}

/// A subsession lives no longer than its master, as koji's do: past the master's lifetime it
/// is expired too (it cannot work, open more subsessions nor be renewed until the master is),
/// the expired master may still log out and so close it; the master renewed in place keeps
/// its subsessions, which renew themselves and close with it.
#[test]
fn an_expired_master_s_subsessions_expire_and_close_with_it() {
    session_script(
        "buildhub-expired-master",
        r#"
session('admin', 'adminpw').createUser('kojid', 'pw')
master = session('kojid', 'pw')
mid = master.sinfo['session-id']
sub = master.subsession()
sid = sub.sinfo['session-id']
assert sub.getLoggedInUser()['name'] == 'kojid'
age(master)
assert raw(sub, 'getLoggedInUser') == 1007
assert raw(sub, 'subsession') == 1007
# koji's client renews the subsession (login, renew=True): refused while its master is expired
# (AuthError: the client would answer an AuthExpired from its login by logging in again)
fault(1002, sub.getLoggedInUser)
# the master renewed in place; its subsession then renews itself, still under it
assert master.getLoggedInUser()['name'] == 'kojid' and master.sinfo['session-id'] == mid
assert sub.getLoggedInUser()['name'] == 'kojid' and sub.sinfo['session-id'] == sid
master.logout()
fault(1002, sub.getLoggedInUser)

# an expired master logs out, and its subsessions (of every generation) with it
master = session('kojid', 'pw')
sub = master.subsession()
grandchild = sub.subsession()
age(master)
assert raw(master, 'logout') is None
for s in (sub, grandchild, master):
    assert raw(s, 'getLoggedInUser') == 1002
assert orphans() == 0
print('ok')
"#,
    );
}

/// `subsession` after its master's `logout`, the two in the order a race between them used to
/// take (the master checked open, closed, then the subsession inserted): in one multicall,
/// each entry in its own transaction, the caller's session checked once before both. The
/// subsession is refused, and no open session is left under a closed master.
#[test]
fn a_subsession_is_not_opened_under_a_master_just_logged_out() {
    session_script(
        "buildhub-subsession-race",
        r#"
session('admin', 'adminpw').createUser('kojid', 'pw')
master = session('kojid', 'pw')
sub = master.subsession()
out, late = master.callMethod('multiCall', [{'methodName': 'logout', 'params': []},
                                            {'methodName': 'subsession', 'params': []}])
assert out == [None], out
assert isinstance(late, dict) and late['faultCode'] == 1002, late
for s in (master, sub):
    assert raw(s, 'getLoggedInUser') == 1002
assert orphans() == 0
master._forget()
print('ok')
"#,
    );
}

/// A certificate login renewed as koji's client renews it (`sslLogin(renew=True, exclusive)`,
/// presenting the expired session) is renewed in place, as a password login is: the same
/// session id, its exclusive lock kept (another certificate login of the user stays locked
/// out and cannot take it without force) and its subsessions still its own, closed with it.
#[test]
fn a_certificate_login_is_renewed_in_place_with_its_lock_and_subsessions() {
    let pki = Pki::new("buildhub-ssl-renew");
    let db = pki.dir.path("hub.sqlite3");
    let config = pki.server_config(ClientCerts::Optional, "");
    let server = serve(
        "buildhub",
        &["--db", &db, "--admin", "admin:adminpw", "--config", &config],
    );
    let body = format!(
        "{SESSION_HELPERS}{}",
        r#"
CA, CERT = sys.argv[3], sys.argv[4]
admin = koji.ClientSession(URL, opts={'user': 'admin', 'password': 'adminpw', 'serverca': CA,
                                      'max_retries': 0})
admin.login()
admin.createUser('kojira', 'pw')

def ssl():
    s = koji.ClientSession(URL, opts={'cert': CERT, 'serverca': CA, 'max_retries': 0})
    s.ssl_login()
    return s

first = ssl()
first.exclusiveSession()
fid = first.sinfo['session-id']
sub = first.subsession()
sid = sub.sinfo['session-id']
age(first)
assert raw(first, 'getLoggedInUser') == 1007
assert first.getLoggedInUser()['name'] == 'kojira'
assert first.sinfo['session-id'] == fid, (fid, first.sinfo)
second = ssl()
fault(1006, second.getLoggedInUser)
fault(1006, second.exclusiveSession)
# the subsession, expired with its master, renews itself in place, still under it
assert sub.getLoggedInUser()['name'] == 'kojira' and sub.sinfo['session-id'] == sid
first.logout()
fault(1002, sub.getLoggedInUser)
assert second.getLoggedInUser()['name'] == 'kojira'
print('ok')
"#
    );
    let out = py(&server, &body, &[&db, &pki.ca(), &pki.client("kojira")]);
    assert_eq!(out.trim(), "ok");
}

/// The Rust client's `koji_subsession`: a client on a subsession of its own, the same user
/// with its own call numbers, served while its master holds the exclusive lock, closed by
/// its master's logout; without a session the hub refuses it.
#[test]
fn the_rust_client_opens_a_subsession() {
    use hub::client::{blocking::Client, Error};
    let dir = TempDir::new("buildhub-rust-subsession");
    let server = buildhub(&dir);
    let url = kojihub(&server);
    // A time limit: a client whose connections no runtime drives would wait for ever.
    let master = Client::new(&url)
        .expect("a client")
        .timeout(std::time::Duration::from_secs(20))
        .koji_login("admin", "adminpw")
        .expect("logged in");
    let sub = master.koji_subsession().expect("a subsession");
    let _: () = master.call("exclusiveSession", ()).expect("locked");
    for _ in 0..3 {
        let who = sub.call("getLoggedInUser", ()).expect("the same user");
        assert_eq!(support::user_name(&who).as_deref(), Some("admin"));
    }
    let other = Client::new(&url)
        .expect("a client")
        .koji_login("admin", "adminpw")
        .expect("logged in");
    match other.call::<hub::Value>("getLoggedInUser", ()) {
        Err(Error::Fault(f)) => assert_eq!(f.code, 1006, "{f:?}"),
        other => panic!("expected AuthLockError, got {other:?}"),
    }
    master.koji_logout().expect("logged out");
    match sub.call::<hub::Value>("getLoggedInUser", ()) {
        Err(Error::Fault(f)) => assert_eq!(f.code, 1002, "closed with its master: {f:?}"),
        other => panic!("expected AuthError, got {other:?}"),
    }
    match Client::new(&url).expect("a client").koji_subsession() {
        Err(Error::Fault(f)) => assert_eq!(f.code, 1002, "{f:?}"),
        other => panic!("expected AuthError, got {other:?}"),
    }
}
