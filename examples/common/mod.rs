//! What every example server shares: the `--listen`/`--config` options, logging, and the
//! `listening on http://ADDR` line (`https://` when the config sets `tls_cert_file`) that
//! newcomers and the tests wait for.

use std::process::ExitCode;

use hub::{Config, Server, ServerBuilder};

/// The options every example server takes.
#[derive(Debug, Default)]
pub struct ServerArgs {
    /// `--listen ADDR`, once per address (default: the config's, `127.0.0.1:8080`).
    pub listen: Vec<String>,
    /// `--config PATH`: the engine's TOML options.
    pub config: Option<String>,
}

impl ServerArgs {
    /// Takes `flag` if it is `--listen` or `--config`, reading its value with `value`;
    /// answers whether it did, so the example can try its own flags next.
    pub fn take(
        &mut self,
        flag: &str,
        value: impl FnOnce() -> Result<String, String>,
    ) -> Result<bool, String> {
        match flag {
            "--listen" => self.listen.push(value()?),
            "--config" => self.config = Some(value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A builder with `config`, which reads the `--config` file again on SIGHUP (for
    /// `offline`, `lockout`, `debug`, `access_log`).
    pub fn builder(&self, config: Config) -> Result<ServerBuilder, String> {
        let builder = Server::builder().config(config);
        match &self.config {
            Some(path) => builder.reload_config_from(path).map_err(|e| e.to_string()),
            None => Ok(builder),
        }
    }

    /// The file's options (or the defaults) with `--listen` applied: its addresses, when
    /// given, replace the file's.
    pub fn config(&self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        if !self.listen.is_empty() {
            let addrs = self
                .listen
                .iter()
                .map(|a| a.parse().map_err(|e| format!("--listen `{a}`: {e}")))
                .collect::<Result<Vec<std::net::SocketAddr>, String>>()?;
            config.listen = hub::core::config::Listen::all(addrs);
        }
        Ok(config)
    }
}

/// Builds and starts the server, prints each address it listens on (the URL scheme says whether the
/// listener speaks TLS, so a client knows which URL to use), and serves until SIGTERM or
/// Ctrl-C has drained it.
pub fn serve(builder: ServerBuilder) -> Result<(), String> {
    let server = builder.build().map_err(|e| e.to_string())?;
    let scheme = if server.config().tls() {
        "https"
    } else {
        "http"
    };
    let server = server.start_with_signals().map_err(|e| e.to_string())?;
    // One line per address, the first first (`listen` can name several).
    for addr in server.local_addrs() {
        println!("listening on {scheme}://{addr}");
    }
    server.wait();
    Ok(())
}

/// Sets up logging (`RUST_LOG`, default `info`, to stderr), runs the example, and turns
/// its error into a message and exit status 2.
pub fn main(name: &str, run: fn() -> Result<(), String>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(2)
        }
    }
}
