//! The log lines of a test process, captured from a global subscriber (the server logs from its
//! own threads), and ways to find the ones a test expects.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

/// Every formatted log line of the process (the server logs from its own threads, so the
/// subscriber is global).
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    /// Captures every line at `level` and above, for the whole process.
    pub fn install(level: tracing::Level) -> Capture {
        let capture = Capture::default();
        tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_ansi(false)
            .with_max_level(level)
            .init();
        capture
    }

    /// The lines logged since the last call.
    pub fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// What is logged from now until a line contains `what`, or for 5 s.
pub fn logs_until(logs: &Capture, what: &str) -> String {
    let mut text = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !text.contains(what) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        text.push_str(&logs.take());
    }
    text
}

/// The first line of `text` that `wanted` accepts, or a panic showing them all.
pub fn line_where(text: &str, wanted: impl Fn(&str) -> bool) -> String {
    text.lines()
        .find(|l| wanted(l))
        .unwrap_or_else(|| panic!("no such line in {text}"))
        .to_owned()
}
