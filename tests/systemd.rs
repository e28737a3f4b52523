//! The hub under systemd, with these tests playing systemd's part.
//!
//! - A restart of a socket-activated hub loses no call. The test holds the listening socket,
//!   starts examples/echo with it as fd 3 (`LISTEN_FDS=1`, `LISTEN_PID` its pid) and a
//!   `NOTIFY_SOCKET` to hear `READY=1` and `STOPPING=1` on, SIGTERMs it while clients keep
//!   calling, waits for it to exit, and only then starts the next one. Between the two no
//!   process serves: the calls made then must wait in the socket's backlog and be answered
//!   by the second, not refused.
//! - The watchdog (`WATCHDOG_USEC`) is fed while the IO units run, and not while one is
//!   blocked by an async handler, nor while every worker is held by a blocking call whose
//!   caller stopped waiting.
//! - Every socket passed is served (two `ListenStream=`).
//! - A reload (SIGHUP, as `Type=notify-reload` sends it) is acknowledged with `RELOADING=1`
//!   and `READY=1`, even by a plain HTTP hub, which serves on.
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
    /// A socket of its own for each test (`tag`): tests run side by side.
    fn new(tag: &str) -> Notices {
        let dir = TempDir::new(&format!("notify-{tag}"));
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

/// An example process, killed if the test ends without having stopped it.
struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Hub {
    /// SIGTERM, as systemd stops a service.
    fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    fn signal(&self, signal: libc::c_int) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) with a child's pid and a valid signal touches no memory of ours.
        let sent = unsafe { libc::kill(self.0.id() as libc::pid_t, signal) == 0 };
        assert!(sent, "kill failed");
    }

    /// Waits for it to exit; whether it exited 0.
    fn exited_ok(&mut self) -> bool {
        self.0.wait().unwrap().success()
    }
}

/// What systemd holds for a service: its listening socket and its notification socket.
struct Service {
    listener: TcpListener,
    addr: SocketAddr,
    notices: Notices,
}

impl Service {
    /// A fresh pair for the test `tag` (tests run side by side).
    fn new(tag: &str) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        Service {
            listener,
            addr,
            notices: Notices::new(tag),
        }
    }

    /// Starts examples/echo as socket activation does, with `watchdog` as `WatchdogSec=` if
    /// given, and waits for its `READY=1`.
    fn start(&self, watchdog: Option<Duration>) -> Hub {
        self.start_with(watchdog, &[])
    }

    /// [`Service::start`], passing `args` to the example.
    fn start_with(&self, watchdog: Option<Duration>, args: &[&str]) -> Hub {
        let hub = start_activated(&[&self.listener], &self.notices, watchdog, args);
        assert_eq!(self.notices.next(), "READY=1");
        hub
    }
}

/// Starts examples/echo on `listeners` as socket activation passes them (fds 3, 4, ...),
/// with `watchdog` as `WatchdogSec=` if given, and `args`.
fn start_activated(
    listeners: &[&TcpListener],
    notices: &Notices,
    watchdog: Option<Duration>,
    args: &[&str],
) -> Hub {
    let fds: Vec<i32> = listeners.iter().map(|l| l.as_raw_fd()).collect();
    assert!(fds.len() <= 8, "room for eight");
    let mut command = Command::new("sh");
    command
        // `$$` is the shell's pid, which `exec` hands on to the example.
        .args(["-c", r#"LISTEN_PID=$$ WATCHDOG_PID=$$ exec "$0" "$@""#])
        .arg(support::example("echo"))
        .args(["--listen", UNBINDABLE])
        .args(args)
        .env("LISTEN_FDS", fds.len().to_string())
        .env("NOTIFY_SOCKET", &notices.path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(timeout) = watchdog {
        command.env("WATCHDOG_USEC", timeout.as_micros().to_string());
    }
    #[allow(unsafe_code)]
    // SAFETY: between fork and exec the closure calls only fcntl and dup2, which are
    // async-signal-safe, on descriptors this process owns.
    unsafe {
        command.pre_exec(move || {
            // Each first out of the way (fd 100 and up), so that moving one into place cannot
            // close another still to be moved; then in place, 3 and up, inherited.
            let mut high = [0; 8];
            for (i, &fd) in fds.iter().enumerate() {
                high[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &fd) in high[..fds.len()].iter().enumerate() {
                if libc::dup2(fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Hub(command.spawn().unwrap())
}

/// One call on a connection of its own (`Connection: close`): the echoed text, or why not.
fn call(addr: SocketAddr, text: &str) -> Result<(), String> {
    let body = format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>echo</methodName>\
         <params><param><value><string>{text}</string></value></param></params></methodCall>"
    );
    let answer = post(addr, &body)?;
    if answer.starts_with("HTTP/1.1 200") && answer.contains(&format!("<string>{text}</string>")) {
        Ok(())
    } else {
        Err(format!("answer: {answer:?}"))
    }
}

/// `body` posted on a connection of its own (`Connection: close`): the whole answer.
fn post(addr: SocketAddr, body: &str) -> Result<String, String> {
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
    Ok(answer)
}

/// What the callers saw: each call's start and end, and the failures.
#[derive(Default)]
struct Seen {
    calls: Vec<(Instant, Instant)>,
    failures: Vec<String>,
}

#[test]
fn a_socket_activated_hub_restarts_without_refusing_a_call() {
    let service = Service::new("restart");
    let (addr, notices) = (service.addr, &service.notices);
    let mut first = service.start(None);

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
    first.terminate();
    assert_eq!(notices.next(), "STOPPING=1");
    assert!(first.exited_ok(), "the first hub did not exit 0");
    let first_gone = Instant::now();
    // Nobody serves for a while; the callers go on calling.
    std::thread::sleep(Duration::from_millis(300));
    let mut second = service.start(None);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.join().unwrap();
    }
    second.terminate();
    assert_eq!(notices.next(), "STOPPING=1");
    assert!(second.exited_ok());

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

#[test]
fn the_watchdog_is_fed_while_the_units_run_and_not_while_one_is_blocked() {
    let service = Service::new("watchdog");
    let (addr, notices) = (service.addr, &service.notices);
    // WatchdogSec=1s: a ping every 500 ms; the default stall threshold, 1 s.
    let mut hub = service.start(Some(Duration::from_secs(1)));
    // Pings while all is well: three within their 500 ms period and a margin.
    let mut last = Instant::now();
    for ping in 0..3 {
        assert_eq!(notices.next(), "WATCHDOG=1", "ping {ping}");
        assert!(
            last.elapsed() < Duration::from_millis(900),
            "ping {ping} late"
        );
        last = Instant::now();
    }
    // An async handler blocks one unit for 3 s: the pings stop (systemd would restart the
    // hub) until it is done, then resume.
    let hog = std::thread::spawn(move || {
        let body = "<?xml version=\"1.0\"?><methodCall><methodName>hog</methodName>\
                    <params><param><value><int>3000</int></value></param></params></methodCall>";
        post(addr, body)
    });
    let longest = longest_ping_gap(notices, || hog.is_finished());
    let answer = hog.join().unwrap().unwrap();
    assert!(answer.contains("<int>3000</int>"), "{answer}");
    assert!(
        longest >= Duration::from_millis(1500),
        "pings went on while a unit was blocked (longest gap {longest:?})"
    );
    assert_eq!(notices.next(), "WATCHDOG=1", "pings did not resume");
    stop_watched(&mut hub, notices);
}

/// SIGTERM to a hub under the watchdog: `STOPPING=1` (pings may still come before it), exit 0.
fn stop_watched(hub: &mut Hub, notices: &Notices) {
    hub.terminate();
    let mut notice = notices.next();
    while notice == "WATCHDOG=1" {
        notice = notices.next();
    }
    assert_eq!(notice, "STOPPING=1");
    assert!(hub.exited_ok());
}

/// `sleep(ms)` posted on a connection of its own, in a thread: the whole answer.
fn sleep_call(addr: SocketAddr, ms: u32) -> std::thread::JoinHandle<Result<String, String>> {
    std::thread::spawn(move || {
        let body = format!(
            "<?xml version=\"1.0\"?><methodCall><methodName>sleep</methodName>\
             <params><param><value><int>{ms}</int></value></param></params></methodCall>"
        );
        post(addr, &body)
    })
}

/// The longest gap between the pings that come until `done`.
fn longest_ping_gap(notices: &Notices, done: impl Fn() -> bool) -> Duration {
    let mut longest = Duration::ZERO;
    let mut last = Instant::now();
    while !done() {
        assert_eq!(notices.next(), "WATCHDOG=1");
        longest = longest.max(last.elapsed());
        last = Instant::now();
    }
    longest
}

#[test]
fn the_watchdog_is_not_fed_while_every_worker_is_held_past_its_caller() {
    let service = Service::new("held");
    let dir = TempDir::new("held-config");
    let config = dir.write("hub.toml", "workers = 1\nhandler_timeout_ms = 1000\n");
    // WatchdogSec=1s: a ping every 500 ms, a look at the workers every 250 ms.
    let mut hub = service.start_with(Some(Duration::from_secs(1)), &["--config", &config]);
    let addr = service.addr;
    // The one worker busy on a call its caller waits for: the pings go on.
    let waited = sleep_call(addr, 900);
    let longest = longest_ping_gap(&service.notices, || waited.is_finished());
    let answer = waited.join().unwrap().unwrap();
    assert!(answer.contains("<int>900</int>"), "{answer}");
    assert!(
        longest < Duration::from_millis(900),
        "a ping was late: {longest:?}"
    );
    // A call that runs 4.5 s against a budget of 1 s: its caller is answered at 1 s, and
    // the worker is held by a call nobody waits for; a stand-in takes its place. A second
    // such call, made once the stand-in is there, holds it too from 2.3 s until the first
    // returns at 4.5 s. The pings stop meanwhile (systemd would restart the hub), then
    // resume.
    let started = Instant::now();
    let first = sleep_call(addr, 4500);
    let mut longest = longest_ping_gap(&service.notices, || {
        started.elapsed() > Duration::from_millis(1300)
    });
    assert!(
        longest < Duration::from_millis(900),
        "one worker held, and a ping was late"
    );
    let second = sleep_call(addr, 4000);
    longest = longest_ping_gap(&service.notices, || {
        started.elapsed() > Duration::from_millis(5500)
    });
    for call in [first, second] {
        let answer = call.join().unwrap().unwrap();
        assert!(answer.contains("time budget"), "{answer}");
    }
    assert!(
        longest >= Duration::from_millis(1500),
        "pings went on while the pool was held (longest gap {longest:?})"
    );
    assert_eq!(service.notices.next(), "WATCHDOG=1", "pings did not resume");
    stop_watched(&mut hub, &service.notices);
}

/// A socket unit with two `ListenStream=` passes two sockets: each is served. (Before, only
/// the first was, and a call on the second waited in its backlog for good.)
#[test]
fn every_socket_passed_is_served() {
    let service = Service::new("two-sockets");
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    let second_addr = second.local_addr().unwrap();
    let mut hub = start_activated(&[&service.listener, &second], &service.notices, None, &[]);
    assert_eq!(service.notices.next(), "READY=1");
    for (i, addr) in [service.addr, second_addr, second_addr, service.addr]
        .into_iter()
        .enumerate()
    {
        call(addr, &format!("call{i}")).unwrap_or_else(|e| panic!("{addr}: {e}"));
    }
    hub.terminate();
    assert_eq!(service.notices.next(), "STOPPING=1");
    assert!(hub.exited_ok());
}

#[test]
fn a_reload_is_acknowledged_and_a_plain_hub_serves_on() {
    let service = Service::new("reload");
    let (addr, notices) = (service.addr, &service.notices);
    let mut hub = service.start(None);
    for round in 0..3 {
        hub.signal(libc::SIGHUP);
        let reloading = notices.next();
        assert!(
            reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "round {round}: {reloading:?}"
        );
        assert_eq!(notices.next(), "READY=1", "round {round}");
        assert_eq!(call(addr, &format!("after reload {round}")), Ok(()));
    }
    hub.terminate();
    assert_eq!(notices.next(), "STOPPING=1");
    assert!(hub.exited_ok());
}
