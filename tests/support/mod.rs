//! Helpers for the tests that run the examples as real processes and drive them with real
//! clients (Python's `xmlrpc.client`, the `koji` CLI, xmlrpc-c's `xmlrpc`, the `call`
//! example), and a throwaway PKI ([`Pki`]) for serving them over HTTPS with client
//! certificates.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

mod pki;

#[allow(unused_imports)] // each test binary uses a part
pub use pki::{ClientCerts, Pki, TempDir};

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long a starting example may take to say `listening on` (a loaded 2-core box is slow).
const STARTUP: Duration = Duration::from_secs(60);

/// The path of example `name`, built (once per test binary) with the profile of this test.
///
/// `cargo test` builds the examples too, but not with a target filter such as
/// `--test call_tool`; asking cargo is cheap when they are fresh and is never stale.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let exe = std::env::current_exe().unwrap();
    let release = exe.components().any(|c| c.as_os_str() == "release");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--message-format=json", "-p", "hub"])
        .args(["--example", name]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|msg| {
            msg["reason"] == "compiler-artifact"
                && msg["target"]["name"] == name
                && msg["target"]["kind"][0] == "example"
        })
        .and_then(|msg| msg["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo named no executable for example {name}"));
    built.insert(name.to_owned(), path.clone());
    path
}

/// The `name` member of a user struct (koji's `getLoggedInUser`).
pub fn user_name(who: &hub::Value) -> Option<String> {
    who.as_struct()
        .and_then(|s| s.get("name"))
        .and_then(hub::Value::as_str)
        .map(str::to_owned)
}

/// An example server running as a child process; killed when dropped.
pub struct Served {
    child: Child,
    /// The address it printed in `listening on http://ADDR` (or `https://ADDR`).
    pub addr: SocketAddr,
    /// `http`, or `https` when it serves TLS (its config set `tls_cert_file`).
    pub scheme: &'static str,
    stderr: Arc<Mutex<String>>,
    /// The `listening on` lines after the first.
    more: mpsc::Receiver<(&'static str, String)>,
}

impl Served {
    /// `http://ADDR/RPC2` (`https://` over TLS).
    pub fn url(&self) -> String {
        self.url_at("/RPC2")
    }

    /// The URL of `path` on this server, with the scheme it serves.
    pub fn url_at(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// What the server wrote to stderr so far (its logs).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The address of its next `listening on` line (one per address it listens on), if one
    /// comes within the startup time.
    pub fn next_addr(&self) -> Option<SocketAddr> {
        let (_, addr) = self.more.recv_timeout(STARTUP).ok()?;
        addr.parse().ok()
    }

    /// `true` while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends it `signal` (Unix).
    #[cfg(unix)]
    pub fn signal(&self, signal: libc::c_int) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) with a child's pid and a valid signal touches no memory of ours.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) == 0 };
        assert!(sent, "kill failed");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts example `name` on an ephemeral port (`--listen 127.0.0.1:0`) with `args`, and waits
/// for its `listening on http://ADDR` line (`https://ADDR` when `args` name a TLS config,
/// see [`Pki::server_config`]).
pub fn serve(name: &str, args: &[&str]) -> Served {
    let mut child = Command::new(example(name))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting example {name}: {e}"));
    let stderr = Arc::new(Mutex::new(String::new()));
    {
        let mut pipe = child.stderr.take().unwrap();
        let stderr = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                stderr
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(url) = line.strip_prefix("listening on ") else {
                continue;
            };
            let found = [("https", "https://"), ("http", "http://")]
                .into_iter()
                .find_map(|(scheme, prefix)| Some((scheme, url.strip_prefix(prefix)?)));
            if let Some((scheme, addr)) = found {
                let _ = tx.send((scheme, addr.trim().to_owned()));
            }
        }
    });
    let (scheme, addr) = match rx.recv_timeout(STARTUP) {
        Ok((scheme, addr)) => (scheme, addr.parse().expect("a socket address")),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "example {name} did not print `listening on` within {STARTUP:?}; stderr:\n{}",
                stderr.lock().unwrap()
            );
        }
    };
    Served {
        child,
        addr,
        scheme,
        stderr,
        more: rx,
    }
}

/// The finished output of a client process, with readable assertion helpers.
pub struct Ran {
    pub what: String,
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    fn new(what: String, out: Output) -> Ran {
        Ran {
            what,
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics (showing everything) unless the process exited with `code`.
    #[track_caller]
    pub fn expect_status(&self, code: i32) -> &Ran {
        assert_eq!(self.status, Some(code), "{self}");
        self
    }

    /// Panics unless it exited 0; answers stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        self.expect_status(0);
        &self.stdout
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `program args`, feeding `stdin`, and waits for it.
pub fn run(program: impl AsRef<Path>, args: &[&str], stdin: &str) -> Ran {
    let program = program.as_ref();
    let what = format!(
        "{} {}",
        program.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" ")
    );
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running `{what}`: {e}"));
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut pipe, &input));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    Ran::new(what, out)
}

/// Runs a Python script with `args` (`sys.argv[1:]`); the script asserts and prints.
pub fn python(script: &str, args: &[&str]) -> Ran {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    let mut ran = run("python3", &all, "");
    ran.what = format!("python3 -c <script> {}", args.join(" "));
    ran
}

/// Runs the `koji` CLI against `url` without authentication.
pub fn koji(url: &str, args: &[&str]) -> Ran {
    let mut all = vec!["--server", url, "--noauth"];
    all.extend_from_slice(args);
    koji_cli(&all)
}

/// Runs the `koji` CLI with exactly `args` (its server and authentication from them or from
/// the config file they name).
pub fn koji_cli(args: &[&str]) -> Ran {
    run(installed("koji", "the koji CLI (PyPI)"), args, "")
}

/// Runs xmlrpc-c's `xmlrpc` command-line client: `xmlrpc URL METHOD ARGS...`.
pub fn xmlrpc_c(url: &str, method: &str, args: &[&str]) -> Ran {
    let mut all = vec![url, method];
    all.extend_from_slice(args);
    let what = "xmlrpc-c's `xmlrpc` client (Debian's libxmlrpc-core-c3-dev)";
    run(installed("xmlrpc", what), &all, "")
}

/// Where `program` is on `PATH`; panics saying how CI installs `what` when it is not.
pub fn installed(program: &str, what: &str) -> PathBuf {
    which(program).unwrap_or_else(|| {
        panic!("`{program}` is not on PATH; install {what} as CI does: bash .ci/deps")
    })
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
