//! buildhub: a small koji-like build hub on SQLite, the example real koji clients use.
//!
//! ```text
//! cargo run --release --example buildhub -- [--admin NAME:PASSWORD] [--db PATH]
//!     [--listen ADDR] [--config PATH] [--work-dir DIR] [--session-lifetime SECS]
//!     [--no-client-ip-check] [--proxy-dn DN]...
//! ```
//!
//! - `--db PATH`: the database (default `buildhub.sqlite3` in the working directory), created
//!   and migrated on start;
//! - `--admin NAME:PASSWORD`: creates that admin account unless a user `NAME` exists;
//! - `--listen ADDR` (default `127.0.0.1:8080`; given again for each further address),
//!   `--config PATH` (the engine's TOML options;
//!   buildhub always answers koji's fault codes, serves `/kojihub` too, and keeps the memory
//!   watch's threshold at 64 MiB or more, over a password hash's 19 MiB);
//! - `--work-dir DIR`: where uploads go (default `buildhub-work` beside the database);
//! - `--session-lifetime SECS`: how long a login session lives from its opening or last
//!   renewal (default 86400, koji's `SessionRenewalTimeout`; 0: for ever). koji's client
//!   renews an expired session by itself, logging in again. A session found expired stays
//!   so under a longer lifetime set later;
//! - `--no-client-ip-check`: accept a session from any address, not only the one it logged
//!   in from (koji's `CheckClientIP = False`);
//! - `--proxy-dn DN` (given again for each further one): the subject of a client certificate
//!   that may log in as another user, `sslLogin(proxyuser=NAME)` (koji's `ProxyDNs`, for a
//!   web front end), written as koji's `hub.conf` lists them (Apache's RFC 2253 form,
//!   `CN=kojiweb,O=Example`), as the engine and OpenSSL write subjects
//!   (`O=Example, CN=kojiweb`), or with slashes (`/O=Example/CN=kojiweb`); a certificate
//!   matches with exactly those attributes and values (`auth::ProxyDns`).
//!
//! Then `koji --server http://127.0.0.1:8080/kojihub --noauth version`, or a
//! `koji.ClientSession` with `opts={'user': ..., 'password': ...}` and `login()`.
//!
//! HTTPS and koji's certificate login come from the engine's options in `--config`:
//! `tls_cert_file` and `tls_key_file` make the listener speak TLS, and `tls_client_ca_file`
//! has it ask for client certificates, which `sslLogin` (`koji --authtype=ssl`, with the
//! client's `cert` and `serverca`) takes as the user their `CN` names. koji's client posts
//! `sslLogin` to `URL/ssllogin` (for its web server to ask for the certificate there alone),
//! so buildhub serves `P/ssllogin` for every RPC path `P` as it serves `P`.
//!
//! Modules, one job each: `db` (schema, migrations, the per-request transaction), `auth`
//! (passwords, sessions, `login`/`sslLogin`/`logout`), `sessions` (koji's exclusive sessions
//! and subsessions), `users`, `packages`, `builds`,
//! `uploads`, `info` (versions, `hello`, `echo`, `setOffline`), `faults` (koji's codes).

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod builds;
mod db;
mod faults;
mod info;
mod packages;
mod sessions;
mod uploads;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hub::core::Config;
use hub::{FaultCodes, Registry};

/// What methods share beyond their transaction: the server's shared state, which they read
/// with `ctx.state::<State>()`.
#[derive(Debug)]
pub struct State {
    /// The root of uploaded files.
    pub work_dir: PathBuf,
    /// The certificates that may log in as other users (`--proxy-dn`).
    pub proxies: auth::ProxyDns,
    /// How sessions are held to account, for the logins that renew them.
    pub sessions: auth::SessionPolicy,
}

#[derive(Debug)]
struct Args {
    db: PathBuf,
    server: common::ServerArgs,
    admin: Option<(String, String)>,
    work_dir: Option<PathBuf>,
    sessions: auth::SessionPolicy,
    proxies: auth::ProxyDns,
}

const USAGE: &str = "usage: buildhub [--admin NAME:PASSWORD] [--db PATH] [--listen ADDR] \
                     [--config PATH] [--work-dir DIR] [--session-lifetime SECS] \
                     [--no-client-ip-check] [--proxy-dn DN]...";

/// koji's default `SessionRenewalTimeout`: 1440 minutes.
const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        db: PathBuf::from("buildhub.sqlite3"),
        server: common::ServerArgs::default(),
        admin: None,
        work_dir: None,
        sessions: auth::SessionPolicy {
            lifetime: Some(SESSION_LIFETIME),
            check_client_ip: true,
        },
        proxies: auth::ProxyDns::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        if args.server.take(&flag, &mut value)? {
            continue;
        }
        match flag.as_str() {
            "--db" => args.db = PathBuf::from(value()?),
            "--work-dir" => args.work_dir = Some(PathBuf::from(value()?)),
            "--session-lifetime" => {
                let secs: u64 = value()?
                    .parse()
                    .map_err(|e| format!("--session-lifetime takes seconds: {e}"))?;
                args.sessions.lifetime = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "--no-client-ip-check" => args.sessions.check_client_ip = false,
            "--proxy-dn" => args.proxies.add(&value()?)?,
            "--admin" => {
                let v = value()?;
                let (name, password) = v.split_once(':').ok_or("--admin takes NAME:PASSWORD")?;
                args.admin = Some((name.to_owned(), password.to_owned()));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(args)
}

/// The lowest memory-watch threshold buildhub runs with (see [`config`]).
const MIN_MEMORY_WARN_KIB: u64 = 64 * 1024;

/// The engine options: the file's (or the defaults, TLS included), the listen address, koji's
/// fault codes and outage message, and `/kojihub` among the RPC paths, each with its
/// `/ssllogin` twin.
fn config(args: &Args) -> Result<Config, String> {
    let mut config = args.server.config()?;
    config.faults = FaultCodes::koji();
    // A password hash takes 19 MiB (Argon2's recommended cost): above the memory watch's
    // threshold every login would log a warning (its arguments redacted: `login` is
    // `sensitive`). Keep the threshold over it (0 still turns the watch off).
    if config.memory_warn_threshold_kib != 0 {
        config.memory_warn_threshold_kib =
            config.memory_warn_threshold_kib.max(MIN_MEMORY_WARN_KIB);
    }
    config.resource_outage_message = "database outage".to_owned();
    if !config.rpc_paths.iter().any(|p| p == "/kojihub") {
        config.rpc_paths.push("/kojihub".to_owned());
    }
    // koji's client sends `sslLogin` to `URL/ssllogin`, URL being the path it was given.
    let ssl_logins: Vec<String> = config
        .rpc_paths
        .iter()
        .map(|p| format!("{}/ssllogin", p.trim_end_matches('/')))
        .filter(|p| !config.rpc_paths.contains(p))
        .collect();
    config.rpc_paths.extend(ssl_logins);
    Ok(config)
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let config = config(&args)?;
    let db_err = |e: rusqlite::Error| format!("database {}: {e}", args.db.display());
    let pool = db::open(&args.db).map_err(db_err)?;
    if let Some((name, password)) = &args.admin {
        let conn = pool.connect().map_err(db_err)?;
        if users::ensure_admin(&conn, name, password).map_err(|f| f.message)? {
            println!("created admin user {name}");
        }
    }
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => args
            .db
            .parent()
            .unwrap_or_else(|| std::path::Path::new("."))
            .join("buildhub-work"),
    };
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| format!("work dir {}: {e}", work_dir.display()))?;
    let auth = auth::SessionAuth::new(
        pool.connect().map_err(db_err)?,
        args.sessions,
        args.proxies.clone(),
    );

    let mut registry = Registry::builder().with_inventory();
    for method in info::variadic_methods() {
        registry = registry.method(method);
    }
    let registry = registry.build().map_err(|e| e.to_string())?;
    common::serve(
        args.server
            .builder(config)?
            .registry(registry)
            .response_header("Koji-Version", info::KOJI_VERSION)
            .state(State {
                work_dir,
                proxies: args.proxies.clone(),
                sessions: args.sessions,
            })
            // It reads the database for every request: on the workers, not the IO units.
            .blocking_authenticator(auth)
            .resource(move |_ctx| Ok(pool.begin()?))
            .upload(uploads::receive),
    )
}

fn main() -> ExitCode {
    common::main("buildhub", run)
}
