//! The command-line client: calls one method (or a batch) and prints the result.
//!
//! ```text
//! cargo run --example call -- [--url URL] [--ca FILE] [--cert FILE [--ssl-login]] [--user NAME] [--timeout SECS] [--retries N] [--json] METHOD [ARG ...]
//! cargo run --example call -- [--url URL] --list
//! cargo run --example call -- [--url URL] --help METHOD
//! cargo run --example call -- [--url URL] [--json] --multicall < calls.txt
//! cargo run --example call -- [--url URL] --user NAME --upload FILE DIR [--overwrite]
//! ```
//!
//! An ARG is typed by a prefix, or inferred:
//!
//! | ARG | value |
//! |---|---|
//! | `i:5` | int |
//! | `s:5` | string |
//! | `b:true`, `b:0` | boolean |
//! | `d:1.5` | double |
//! | `dt:19980717T14:08:55` | dateTime.iso8601 |
//! | `b64:aGk=` | base64 |
//! | `nil` | nil |
//! | `[1, "a"]`, `{"a": 1}`, `j:JSON` | JSON: arrays are arrays, objects structs, null nil |
//! | `name=ARG` | a keyword argument (koji's `__starstar`), typed the same way |
//! | anything else | an int if it parses as one, else a double, else `true`/`false`, else a string |
//!
//! For an `https://` URL the server is checked against the system's CAs, or those of `--ca`
//! (koji's `serverca`); `--cert` presents a client certificate (koji's `cert`: one PEM file
//! with the certificate and its key).
//!
//! `--user NAME` logs in to a koji hub first (koji's `login`, the password from `--password`
//! or, better, kept out of the process list, the `HUB_PASSWORD` environment variable), and
//! the call carries that session. `--ssl-login` logs in with the `--cert` certificate instead
//! (koji's `sslLogin`, at the URL's path + `/ssllogin`). Either session is logged out of once
//! the command is done, as koji's CLI does, so that it does not stay open on the hub.
//!
//! `--upload FILE DIR` sends a local file into directory DIR of a koji hub's upload area as
//! koji's client does (in 1 MiB chunks, each checked, then `checkUpload`), logged in with
//! `--user` or `--ssl-login`; `--overwrite` replaces a file already there.
//!
//! `--retries N` sends a call again, up to N times, when the hub refused it without running it
//! (`503`, `429`: after their `Retry-After`) or its connection failed (1 s apart: a hub
//! restarting), as koji's client does with `max_retries`; a call that may have run is sent
//! again only in a session, where the hub refuses a replay.
//!
//! `--multicall` reads one call per line from stdin (`METHOD ARG ...`, with shell-like
//! quoting; blank lines and `#` comments are skipped) and sends them as one
//! `system.multicall`. Exit status: 0 on success, 1 on a fault (its code and message on
//! stderr), 2 on a usage error, 3 on any other error (connection, HTTP status, bad response).

use std::fmt::Write as _;
use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use hub::client::blocking::Client;
use hub::client::{Call, Error};
use hub::{DateTime, Struct, Value};

const USAGE: &str = "\
usage: call [--url URL] [--ca FILE] [--cert FILE [--ssl-login]] [--user NAME]
            [--timeout SECS] [--retries N] [--json] METHOD [ARG ...]
       call [--url URL] --list
       call [--url URL] --help METHOD
       call [--url URL] [--json] --multicall < calls.txt
       call [--url URL] (--user NAME | --ssl-login) [--json] --upload FILE DIR [--overwrite]

ARG: i:5 s:5 b:true d:1.5 dt:19980717T14:08:55 b64:aGk= nil JSON (arrays, structs)
     name=ARG (keyword argument); untyped: int, double, true/false, else string.
https: --ca FILE trusts these CAs (PEM) instead of the system's; --cert FILE presents
       a client certificate (PEM: certificate and key).
koji:  --user NAME logs in first, with --password PASS or $HUB_PASSWORD;
       --ssl-login logs in first with the --cert certificate.
--retries N: send a call again up to N times when the hub was busy or unreachable.
Default URL: http://127.0.0.1:8080/RPC2";

/// What went wrong, and so which exit status.
enum Failure {
    Usage(String),
    Fault(i32, String),
    /// Faults already printed (a multicall's), so only the exit status is left.
    Faulted,
    Other(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Fault(f) => Failure::Fault(f.code, f.message),
            other => Failure::Other(other.to_string()),
        }
    }
}

enum Mode {
    Call(String, Vec<String>),
    List,
    Help(String),
    Multicall,
    /// koji's upload: the local file, the directory on the hub.
    Upload(String, String),
}

struct Args {
    url: String,
    ca: Option<String>,
    cert: Option<String>,
    /// koji's login: the user, and the password if given on the command line.
    user: Option<String>,
    password: Option<String>,
    /// koji's `sslLogin` with `cert`.
    ssl_login: bool,
    timeout: Duration,
    json: bool,
    /// `--upload` replaces a file already there.
    overwrite: bool,
    /// `--retries`: how often a refused or cut-off call is sent again.
    retries: u32,
    mode: Mode,
}

fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Args, Failure> {
    let mut url = "http://127.0.0.1:8080/RPC2".to_owned();
    let (mut ca, mut cert) = (None, None);
    let (mut user, mut password) = (None, None);
    let mut timeout = Duration::from_secs(60);
    let mut retries = 0;
    let (mut json, mut ssl_login, mut overwrite) = (false, false, false);
    let mut mode = None;
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))
        };
        match arg.as_str() {
            "--url" => url = value("--url")?,
            "--ca" => ca = Some(value("--ca")?),
            "--cert" => cert = Some(value("--cert")?),
            "--user" => user = Some(value("--user")?),
            "--password" => password = Some(value("--password")?),
            "--timeout" => {
                let v = value("--timeout")?;
                timeout = v
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        Failure::Usage(format!("--timeout `{v}`: not a number of seconds"))
                    })?;
            }
            "--retries" => {
                let v = value("--retries")?;
                retries = v.parse().map_err(|_| {
                    Failure::Usage(format!("--retries `{v}`: not a count of retries"))
                })?;
            }
            "--json" => json = true,
            "--ssl-login" => ssl_login = true,
            "--list" => mode = Some(Mode::List),
            "--help" => mode = Some(Mode::Help(value("--help")?)),
            "--multicall" => mode = Some(Mode::Multicall),
            "--upload" => {
                let file = value("--upload")?;
                let dir = it
                    .next()
                    .ok_or_else(|| Failure::Usage("--upload needs FILE and DIR".into()))?;
                mode = Some(Mode::Upload(file, dir));
            }
            "--overwrite" => overwrite = true,
            "-h" => return Err(Failure::Usage(String::new())),
            flag if flag.starts_with("--") => {
                return Err(Failure::Usage(format!("unknown option `{flag}`")))
            }
            _ => {
                if mode.is_some() {
                    return Err(Failure::Usage(format!(
                        "unexpected `{arg}`: --list, --help, --multicall and --upload take no \
                         METHOD"
                    )));
                }
                mode = Some(Mode::Call(arg, it.collect()));
                break;
            }
        }
    }
    let mode = mode.ok_or_else(|| Failure::Usage("no METHOD given".into()))?;
    if password.is_some() && user.is_none() {
        return Err(Failure::Usage("--password needs --user".into()));
    }
    if overwrite && !matches!(mode, Mode::Upload(..)) {
        return Err(Failure::Usage("--overwrite goes with --upload".into()));
    }
    if ssl_login && cert.is_none() {
        return Err(Failure::Usage("--ssl-login needs --cert".into()));
    }
    if ssl_login && user.is_some() {
        return Err(Failure::Usage(
            "--ssl-login and --user are two ways to log in: give one".into(),
        ));
    }
    Ok(Args {
        url,
        ca,
        cert,
        user,
        password,
        ssl_login,
        timeout,
        json,
        overwrite,
        retries,
        mode,
    })
}

// ---- arguments -----------------------------------------------------------------------

/// A keyword argument's name: `[A-Za-z_][A-Za-z0-9_]*`.
fn keyword(arg: &str) -> Option<(&str, &str)> {
    let (name, value) = arg.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() || first == '_')
        .then_some(())
        .filter(|()| chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|()| (name, value))
}

/// Parses one ARG (without a `name=`).
fn parse_value(arg: &str) -> Result<Value, String> {
    let typed = |prefix: &str| arg.strip_prefix(prefix);
    if arg == "nil" {
        return Ok(Value::Nil);
    }
    if let Some(v) = typed("i:") {
        return v
            .trim()
            .parse()
            .map(Value::Int)
            .map_err(|_| format!("`{arg}`: not an integer"));
    }
    if let Some(v) = typed("s:") {
        return Ok(Value::from(v));
    }
    if let Some(v) = typed("b:") {
        return match v {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("`{arg}`: a boolean is true, false, 1 or 0")),
        };
    }
    if let Some(v) = typed("d:") {
        return v
            .trim()
            .parse()
            .map(Value::Double)
            .map_err(|_| format!("`{arg}`: not a double"));
    }
    if let Some(v) = typed("dt:") {
        return v
            .parse::<DateTime>()
            .map(Value::DateTime)
            .map_err(|e| format!("`{arg}`: {e}"));
    }
    if let Some(v) = typed("b64:") {
        return base64::engine::general_purpose::STANDARD
            .decode(v)
            .map(Value::Base64)
            .map_err(|e| format!("`{arg}`: {e}"));
    }
    if let Some(v) = typed("j:") {
        return parse_json(v).map_err(|e| format!("`{arg}`: {e}"));
    }
    if arg.starts_with('[') || arg.starts_with('{') {
        return parse_json(arg).map_err(|e| format!("`{arg}`: {e}"));
    }
    if let Ok(i) = arg.parse::<i64>() {
        return Ok(Value::Int(i));
    }
    // Only decimal notation: Rust also parses "inf" and "NaN", which are names here.
    let numeric = arg.bytes().any(|b| b.is_ascii_digit())
        && arg
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if numeric {
        if let Ok(d) = arg.parse::<f64>() {
            return Ok(Value::Double(d));
        }
    }
    match arg {
        "true" => Ok(Value::Bool(true)),
        "false" => Ok(Value::Bool(false)),
        _ => Ok(Value::from(arg)),
    }
}

fn parse_json(text: &str) -> Result<Value, String> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    from_json(json)
}

fn from_json(json: serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match json {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None if n.is_u64() => return Err(format!("{n} is too large for an XML-RPC int")),
            None => Value::Double(n.as_f64().ok_or_else(|| format!("{n}: not a number"))?),
        },
        J::String(s) => Value::String(s),
        J::Array(a) => Value::Array(a.into_iter().map(from_json).collect::<Result<_, _>>()?),
        J::Object(o) => Value::Struct(
            o.into_iter()
                .map(|(k, v)| Ok((k, from_json(v)?)))
                .collect::<Result<Struct, String>>()?,
        ),
    })
}

/// The call's positional parameters, then its keyword arguments (if any) as koji's struct.
fn parse_call(method: String, args: &[String]) -> Result<Call, Failure> {
    let mut positional = Vec::new();
    let mut named = Struct::new();
    for arg in args {
        match keyword(arg) {
            Some((name, value)) => {
                named.insert(name.to_owned(), parse_value(value).map_err(Failure::Usage)?);
            }
            None if !named.is_empty() => {
                return Err(Failure::Usage(format!(
                    "positional `{arg}` after keyword arguments"
                )))
            }
            None => positional.push(parse_value(arg).map_err(Failure::Usage)?),
        }
    }
    let call = Call::from_values(method, positional);
    if named.is_empty() {
        Ok(call)
    } else {
        call.kwargs(named).map_err(Failure::from)
    }
}

/// Splits a line into words: whitespace separates, `'...'` is literal, `"..."` allows `\"`
/// and `\\`, a backslash outside quotes escapes the next character.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("unterminated \"".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                w.extend(chars.next());
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

// ---- output --------------------------------------------------------------------------

/// Writes `v` indented, with its XML-RPC type visible where a bare value would be ambiguous.
fn pretty(v: &Value, indent: usize, out: &mut String) {
    let pad = "  ";
    match v {
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::String(s) => {
            let _ = write!(out, "{s:?}");
        }
        Value::Double(d) => {
            let _ = write!(out, "{d:?}");
        }
        Value::DateTime(dt) => {
            let _ = write!(out, "dateTime({dt})");
        }
        Value::Base64(b) => {
            let _ = write!(
                out,
                "base64({})",
                base64::engine::general_purpose::STANDARD.encode(b)
            );
        }
        Value::Nil => out.push_str("nil"),
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Array(a) => {
            out.push_str("[\n");
            for item in a {
                out.push_str(&pad.repeat(indent + 1));
                pretty(item, indent + 1, out);
                out.push_str(",\n");
            }
            out.push_str(&pad.repeat(indent));
            out.push(']');
        }
        Value::Struct(s) if s.is_empty() => out.push_str("{}"),
        Value::Struct(s) => {
            out.push_str("{\n");
            for (name, item) in s {
                out.push_str(&pad.repeat(indent + 1));
                let plain = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || "_-.".contains(c));
                if plain {
                    out.push_str(name);
                } else {
                    let _ = write!(out, "{name:?}");
                }
                out.push_str(": ");
                pretty(item, indent + 1, out);
                out.push('\n');
            }
            out.push_str(&pad.repeat(indent));
            out.push('}');
        }
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Int(i) => J::from(*i),
        Value::Bool(b) => J::Bool(*b),
        Value::String(s) => J::String(s.clone()),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::DateTime(dt) => J::String(dt.to_string()),
        Value::Base64(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Nil => J::Null,
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Struct(s) => J::Object(s.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
    }
}

fn render(v: &Value, json: bool) -> String {
    if json {
        serde_json::to_string_pretty(&to_json(v)).unwrap_or_else(|e| format!("<{e}>"))
    } else {
        let mut out = String::new();
        pretty(v, 0, &mut out);
        out
    }
}

// ---- modes ---------------------------------------------------------------------------

fn help(client: &Client, method: &str) -> Result<(), Failure> {
    let text: Value = client.call("system.methodHelp", (method,))?;
    let signatures: Value = client.call("system.methodSignature", (method,))?;
    match text {
        Value::String(s) if !s.is_empty() => println!("{s}"),
        Value::String(_) => println!("{method}: no help"),
        other => println!("{}", render(&other, false)),
    }
    match signatures {
        Value::Array(sigs) => {
            for sig in sigs {
                let types: Vec<&str> = sig
                    .as_array()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                if let Some((result, params)) = types.split_first() {
                    println!("signature: {result} {method}({})", params.join(", "));
                }
            }
        }
        other => println!("signature: {}", render(&other, false)),
    }
    Ok(())
}

fn multicall(client: &Client, json: bool) -> Result<(), Failure> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| Failure::Other(format!("reading stdin: {e}")))?;
    let mut calls = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words =
            split_words(line).map_err(|e| Failure::Usage(format!("stdin line {}: {e}", n + 1)))?;
        let mut words = words.into_iter();
        let Some(method) = words.next() else { continue };
        let args: Vec<String> = words.collect();
        calls.push(parse_call(method, &args).map_err(|e| match e {
            Failure::Usage(m) => Failure::Usage(format!("stdin line {}: {m}", n + 1)),
            other => other,
        })?);
    }
    if calls.is_empty() {
        return Err(Failure::Usage("--multicall: no calls on stdin".into()));
    }
    let results = client.multicall(calls)?;
    let mut faulted = false;
    if json {
        let items: Vec<serde_json::Value> = results
            .iter()
            .map(|r| match r {
                Ok(v) => to_json(v),
                Err(f) => serde_json::json!({"faultCode": f.code, "faultString": f.message}),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
    }
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(v) if !json => println!("[{i}] {}", render(&v, false)),
            Ok(_) => {}
            Err(f) => {
                eprintln!("[{i}] fault {}: {}", f.code, f.message);
                faulted = true;
            }
        }
    }
    if faulted {
        Err(Failure::Faulted)
    } else {
        Ok(())
    }
}

fn run() -> Result<(), Failure> {
    let args = parse_args(std::env::args().skip(1))?;
    let mut client = Client::new(&args.url)
        .map_err(|e| Failure::Usage(e.to_string()))?
        .timeout(args.timeout)
        .retry_busy(args.retries, Duration::from_secs(30))
        .retry_transport(args.retries, Duration::from_secs(1));
    if let Some(ca) = &args.ca {
        client = client
            .tls_ca_file(ca)
            .map_err(|e| Failure::Usage(e.to_string()))?;
    }
    if let Some(cert) = &args.cert {
        client = client
            .tls_client_cert(cert)
            .map_err(|e| Failure::Usage(e.to_string()))?;
    }
    if let Some(user) = &args.user {
        let password = match args.password.clone() {
            Some(password) => password,
            None => std::env::var("HUB_PASSWORD")
                .map_err(|_| Failure::Usage("--user needs --password or $HUB_PASSWORD".into()))?,
        };
        client = client.koji_login(user, &password)?;
    }
    if args.ssl_login {
        client = client.koji_ssl_login()?;
    }
    let logged_in = args.user.is_some() || args.ssl_login;
    let done = serve(&client, args.mode, args.json, args.overwrite);
    // As koji's CLI does: a session opened for one command is closed after it, not left
    // open on the hub for its lifetime. A failed logout changes nothing for the command.
    if logged_in {
        if let Err(e) = client.koji_logout() {
            eprintln!("call: logging out: {e}");
        }
    }
    done
}

/// Runs the command `mode` names.
fn serve(client: &Client, mode: Mode, json: bool, overwrite: bool) -> Result<(), Failure> {
    match mode {
        Mode::List => {
            let names: Vec<String> = client.call("system.listMethods", ())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&names).unwrap_or_default()
                );
            } else {
                for name in names {
                    println!("{name}");
                }
            }
            Ok(())
        }
        Mode::Help(method) => help(client, &method),
        Mode::Multicall => multicall(client, json),
        Mode::Upload(file, dir) => {
            let options = hub::client::UploadOptions::new().overwrite(overwrite);
            let done = client.koji_upload(&file, &dir, &options)?;
            if json {
                let json = serde_json::json!({
                    "path": done.path, "name": done.name,
                    "size": done.size, "hexdigest": done.hexdigest,
                });
                println!("{json:#}");
            } else {
                println!(
                    "uploaded {file} to {}/{}: {} bytes, adler32 {}",
                    done.path, done.name, done.size, done.hexdigest
                );
            }
            Ok(())
        }
        Mode::Call(method, rest) => {
            let call = parse_call(method, &rest)?;
            let result = client.call_values(call.method(), call.params().to_vec())?;
            println!("{}", render(&result, json));
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            if !m.is_empty() {
                eprintln!("call: {m}");
            }
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Faulted) => ExitCode::from(1),
        Err(Failure::Fault(code, m)) => {
            eprintln!("fault {code}: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Other(m)) => {
            eprintln!("call: {m}");
            ExitCode::from(3)
        }
    }
}
