//! A hub restarted the way systemd restarts a socket-activated service loses no call.
//!
//! This test plays systemd: it holds the listening socket, starts examples/echo with it as
//! fd 3 (`LISTEN_FDS=1`, `LISTEN_PID` its pid) and a `NOTIFY_SOCKET` to hear `READY=1` and
//! `STOPPING=1` on, SIGTERMs it while clients keep calling, waits for it to exit, and only
//! then starts the next one. Between the two no process serves: the calls made then must
//! wait in the socket's backlog and be answered by the second, not refused.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::TempDir;

/// An address no local interface has (TEST-NET-1): an example that binds its `--listen`
/// instead of taking the passed socket fails to start.
const UNBINDABLE: &str = "192.0.2.1:9";

/// The service manager's notification socket, as systemd listens on it.
struct Notices {
    socket: UnixDatagram,
    path: String,
    _dir: TempDir,
}

impl Notices {
    fn new() -> Notices {
        let dir = TempDir::new("notify");
        let path = dir.path("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Notices {
            socket,
            path,
            _dir: dir,
        }
    }

    /// The next notice (`READY=1` and the like), or what went wrong waiting for it.
    fn next(&self) -> String {
        let mut buf = [0u8; 512];
        match self.socket.recv(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).trim().to_owned(),
            Err(e) => format!("no notice: {e}"),
        }
    }
}

/// Starts examples/echo on `listener` as socket activation passes it.
fn start_activated(listener: &TcpListener, notices: &Notices) -> Child {
    let fd = listener.as_raw_fd();
    let mut command = Command::new("sh");
    command
        // `$$` is the shell's pid, which `exec` hands on to the example.
        .args(["-c", r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#])
        .arg(support::example("echo"))
        .args(["--listen", UNBINDABLE])
        .env("NOTIFY_SOCKET", &notices.path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    #[allow(unsafe_code)]
    // SAFETY: between fork and exec the closure calls only dup2 and fcntl, which are
    // async-signal-safe, on descriptors this process owns.
    unsafe {
        command.pre_exec(move || {
            let done = if fd == 3 {
                // Already in place: only its close-on-exec flag must go.
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if done < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().unwrap()
}

fn terminate(child: &Child) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with a child's pid and a valid signal touches no memory of ours.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) == 0 };
    assert!(sent, "kill failed");
}

/// One call on a connection of its own (`Connection: close`): the echoed text, or why not.
fn call(addr: SocketAddr, text: &str) -> Result<(), String> {
    let body = format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>echo</methodName>\
         <params><param><value><string>{text}</string></value></param></params></methodCall>"
    );
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: hub\r\nContent-Type: text/xml\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    if answer.starts_with("HTTP/1.1 200") && answer.contains(&format!("<string>{text}</string>")) {
        Ok(())
    } else {
        Err(format!("answer: {answer:?}"))
    }
}

/// What the callers saw: each call's start and end, and the failures.
#[derive(Default)]
struct Seen {
    calls: Vec<(Instant, Instant)>,
    failures: Vec<String>,
}

#[test]
fn a_socket_activated_hub_restarts_without_refusing_a_call() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let notices = Notices::new();

    let mut first = start_activated(&listener, &notices);
    assert_eq!(notices.next(), "READY=1");

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let callers: Vec<_> = (0..4)
        .map(|caller| {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let result = call(addr, &format!("caller {caller} call {n}"));
                    let mut seen = seen.lock().unwrap();
                    seen.calls.push((started, Instant::now()));
                    if let Err(e) = result {
                        seen.failures.push(format!("caller {caller} call {n}: {e}"));
                    }
                    n += 1;
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(300));
    terminate(&first);
    assert_eq!(notices.next(), "STOPPING=1");
    let status = first.wait().unwrap();
    assert!(status.success(), "the first hub exited with {status}");
    let first_gone = Instant::now();
    // Nobody serves for a while; the callers go on calling.
    std::thread::sleep(Duration::from_millis(300));
    let mut second = start_activated(&listener, &notices);
    assert_eq!(notices.next(), "READY=1");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.join().unwrap();
    }
    terminate(&second);
    assert_eq!(notices.next(), "STOPPING=1");
    assert!(second.wait().unwrap().success());

    let seen = seen.lock().unwrap();
    assert!(
        seen.failures.is_empty(),
        "{} of {} calls failed: {:#?}",
        seen.failures.len(),
        seen.calls.len(),
        &seen.failures[..seen.failures.len().min(10)]
    );
    // The backlog was put to use: calls made while no hub ran were answered after.
    let waited = seen
        .calls
        .iter()
        .filter(|(started, _)| *started > first_gone)
        .filter(|(_, ended)| ended.duration_since(first_gone) >= Duration::from_millis(250))
        .count();
    assert!(
        waited >= 1,
        "no call was made while no hub ran ({} calls)",
        seen.calls.len()
    );
}
