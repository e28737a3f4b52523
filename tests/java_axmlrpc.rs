//! The echo example driven by a Java client: aXMLRPC 1.13 (Debian's `libaxmlrpc-java`), in
//! its plain mode and its Apache ws-xmlrpc compatibility mode (`FLAGS_APACHE_WS`). It sends
//! its XML with a line break between every element. `tests/java/EchoCheck.java` does the
//! checking: every scalar Java maps (`Integer`, `Long` as `i8`, `Boolean`, `Double`,
//! `String` with markup and non-ASCII, `null`, `byte[]`, `Date`), nested arrays, a struct,
//! `getBuild`, two faults with their codes, `system.listMethods`.

mod support;

use std::path::PathBuf;

use support::{installed, run, serve};

/// The aXMLRPC jar: `HUB_AXMLRPC_JAR`, or where Debian puts it.
fn jar() -> PathBuf {
    let jar = std::env::var_os("HUB_AXMLRPC_JAR").map_or_else(
        || PathBuf::from("/usr/share/java/axmlrpc.jar"),
        PathBuf::from,
    );
    assert!(
        jar.is_file(),
        "no aXMLRPC jar at {}; install it as CI does: bash .ci/deps (Debian's libaxmlrpc-java)",
        jar.display()
    );
    jar
}

/// `EchoCheck` compiled into `dir`; the classpath to run it with.
fn compiled(dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir).expect("a temp dir");
    let jar = jar();
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/java/EchoCheck.java");
    let (dir, jar, source) = (
        dir.to_str().expect("UTF-8 temp path"),
        jar.to_str().expect("UTF-8 jar path"),
        source.to_str().expect("UTF-8 source path"),
    );
    let javac = installed("javac", "a JDK");
    run(javac, &["-cp", jar, "-d", dir, source], "").ok();
    format!("{dir}:{jar}")
}

fn drive(handlers: &str) {
    let dir = std::env::temp_dir().join(format!("hub-java-{}-{handlers}", std::process::id()));
    let classpath = compiled(&dir);
    let server = serve("echo", &["--handlers", handlers]);
    for mode in ["plain", "apache"] {
        let ran = run(
            "java",
            &[
                "-Duser.timezone=UTC",
                "-cp",
                &classpath,
                "EchoCheck",
                &server.url(),
                mode,
            ],
            "",
        );
        assert_eq!(
            ran.ok().trim(),
            "ok",
            "{mode}: {ran}\n--- server stderr\n{}",
            server.stderr()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn java_axmlrpc_drives_echo_with_async_handlers() {
    drive("async");
}

#[test]
fn java_axmlrpc_drives_echo_with_blocking_handlers() {
    drive("blocking");
}
