//! Restart: `examples/echo` as a real process under load gets SIGTERM; every request it had
//! accepted is answered, it exits 0, and a new process binds the same port at once.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{call_xml, Conn};

/// Builds `examples/echo` (of the `hub` package) with this test's profile; returns its path.
fn echo_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let release = exe.components().any(|c| c.as_os_str() == "release");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--message-format=json", "-p", "hub"])
        .args(["--example", "echo"]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "cargo build --example echo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| {
            l.contains("\"reason\":\"compiler-artifact\"")
                && l.contains("\"kind\":[\"example\"]")
                && l.contains("\"name\":\"echo\"")
        })
        .expect("cargo names the echo example");
    let key = "\"executable\":\"";
    let at = line.find(key).expect("an executable") + key.len();
    let end = line[at..].find('"').unwrap();
    PathBuf::from(&line[at..at + end])
}

/// Starts echo on `listen`; returns the child and the address it printed.
fn spawn(bin: &PathBuf, listen: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(bin)
        .args(["--listen", listen, "--handlers", "blocking"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(addr) = line.strip_prefix("listening on http://") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("echo did not start on {listen}: {:?}", child.wait())
        });
    (child, addr.parse().unwrap())
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the server did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_under_load_answers_accepted_requests_exits_0_and_the_port_is_reusable() {
    let bin = echo_binary();
    let (mut child, addr) = spawn(&bin, "127.0.0.1:0");

    // background load: keep-alive clients calling without pause; after the signal a request
    // may find the door closed (refused, or closed before any answer), never a wrong answer
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..8)
        .map(|i| {
            let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let Ok(s) = TcpStream::connect(addr) else {
                        return;
                    };
                    let mut c = Conn::from_stream(s);
                    loop {
                        n += 1;
                        let token = format!("load-{i}-{n}");
                        let body = call_xml("echo", &[&format!("<string>{token}</string>")]);
                        let req = format!(
                            "POST /RPC2 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if c.stream.write_all(req.as_bytes()).is_err() {
                            break;
                        }
                        let Some(r) = c.read_response() else { break };
                        if r.status == 503 {
                            break; // draining
                        }
                        assert_eq!(r.status, 200, "{r:?}");
                        assert!(r.body.contains(&token), "{token}: {}", r.body);
                        ok.fetch_add(1, Ordering::SeqCst);
                        if r.header("connection").as_deref() == Some("close") {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    // slow calls certainly accepted (sent and running) when the signal arrives
    let slow: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                let t = Instant::now();
                let r = c.call("sleep", &["<int>700</int>"]);
                (i, r.status, r.body, t.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = ok.load(Ordering::SeqCst);
    sigterm(&child);
    let t = Instant::now();
    for s in slow {
        let (i, status, body, _) = s.join().unwrap();
        assert_eq!(status, 200, "slow call {i}: {body}");
        assert!(body.contains("700"), "slow call {i}: {body}");
    }
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let drained_in = t.elapsed();
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.join().unwrap();
    }
    assert!(status.success(), "exit status {status:?}");
    eprintln!(
        "SIGTERM under load: {before} calls answered before it, {} in all; exited 0 after {drained_in:?}",
        ok.load(Ordering::SeqCst)
    );
    assert!(before > 0);

    // the same port, at once
    let t = Instant::now();
    let (mut again, addr2) = spawn(&bin, &addr.to_string());
    assert_eq!(addr2, addr);
    let r = Conn::open(addr).call("echo", &["<string>back</string>"]);
    assert!(r.body.contains("back"), "{r:?}");
    eprintln!("restarted on {addr} in {:?}", t.elapsed());
    sigterm(&again);
    assert!(wait_exit(&mut again, Duration::from_secs(20)).success());
}
