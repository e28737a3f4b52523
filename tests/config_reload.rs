//! A hub reads its config file again on SIGHUP: `examples/echo` as a process, taken offline
//! and back by editing the file, serving on through a file that does not read.
#![cfg(unix)]

mod support;

use std::time::{Duration, Instant};

use hub::client::{blocking::Client, Error};
use support::{serve, TempDir};

/// What `echo(1)` answers now: `None` when served, else the fault's code and text.
fn echo_fault(client: &Client) -> Option<(i32, String)> {
    match client.call::<i64>("echo", (1,)) {
        Ok(1) => None,
        Ok(other) => panic!("echo answered {other}"),
        Err(Error::Fault(f)) => Some((f.code, f.message)),
        Err(e) => panic!("a transport error: {e}"),
    }
}

/// Waits (up to 10 s) until `echo` answers `want`.
fn until(client: &Client, want: Option<(i32, String)>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = echo_fault(client);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {got:?}, waiting for {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reads_the_config_file_again() {
    let dir = TempDir::new("config-reload");
    let path = dir.path("hub.toml");
    let write = |text: &str| std::fs::write(&path, text).expect("config written");
    write("stat_interval_secs = 0\n");
    let mut hub = serve("echo", &["--config", &path]);
    let client = Client::new(hub.url()).expect("a client");
    assert_eq!(echo_fault(&client), None);

    write(
        "stat_interval_secs = 0\noffline = true\noffline_message = \"maintenance\"\nworkers = 4\n",
    );
    hub.signal(libc::SIGHUP);
    until(&client, Some((-32400, "maintenance".to_owned())));
    let logs = hub.stderr();
    assert!(
        logs.contains("only a restart applies it") && logs.contains("workers"),
        "{logs}"
    );

    // A file that does not read: logged, and nothing changes.
    write("offline = fals");
    hub.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hub.stderr().contains("config not reloaded") {
        assert!(Instant::now() < deadline, "{}", hub.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(hub.alive());
    assert_eq!(
        echo_fault(&client),
        Some((-32400, "maintenance".to_owned()))
    );

    write("stat_interval_secs = 0\n");
    hub.signal(libc::SIGHUP);
    until(&client, None);
    assert!(hub.alive());
}
