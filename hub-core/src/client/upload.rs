//! koji's upload from the client's side (its `ClientSession.fastUpload`): a local file sent
//! in chunks, each an `application/octet-stream` POST to the hub's URL with the file's place
//! in the query (`filename`, `filepath`, `offset`, `fileverify=adler32`, `overwrite`), then
//! `checkUpload(path, name, verify="adler32")` to compare what the hub holds with what was
//! sent. Each chunk's answer is checked as it comes, so a chunk lost or changed on the way
//! stops the upload there.
//!
//! A hub built with this crate takes such uploads with an upload handler
//! ([`ServerBuilder::upload`](crate::ServerBuilder::upload)); the `buildhub` example's writes
//! them under its work directory, as koji's does.

use std::path::Path;

use bytes::Bytes;
use http::Uri;
use hub_xmlrpc::{Struct, Value};
use tokio::io::AsyncReadExt as _;

use super::{Client, Error};

/// The content type that makes a POST an upload.
const OCTET_STREAM: &str = "application/octet-stream";

/// How [`Client::koji_upload`] sends a file.
///
/// ```
/// use hub_core::client::UploadOptions;
/// let options = UploadOptions::new().name("build.log").overwrite(true).chunk_size(64 * 1024);
/// # drop(options);
/// ```
#[derive(Debug, Clone)]
pub struct UploadOptions {
    name: Option<String>,
    chunk_size: usize,
    overwrite: bool,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            name: None,
            // koji's client's default block size.
            chunk_size: 1024 * 1024,
            overwrite: false,
        }
    }
}

impl UploadOptions {
    /// The local file's name, 1 MiB chunks, and no overwriting (a file already there is
    /// the hub's fault).
    pub fn new() -> Self {
        Self::default()
    }

    /// The file's name on the hub, instead of the local file's.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Bytes sent per request (at least 1; koji's default is 1 MiB). A hub refuses a chunk
    /// longer than its `max_upload_length`.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }

    /// Replace a file of the same name already on the hub (koji's `overwrite`).
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// A file the hub holds after [`Client::koji_upload`], as its `checkUpload` described it and
/// as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The directory it went to, relative to the hub's upload area.
    pub path: String,
    /// Its name there.
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// Its adler32 checksum as koji writes it (`%08x`).
    pub hexdigest: String,
}

impl Client {
    /// Uploads the file at `local` into directory `path` of the hub's upload area, as
    /// koji's client does (`fastUpload`), and checks it arrived whole: each chunk's answer
    /// must give back its length and checksum, and the hub's `checkUpload` the file's.
    ///
    /// Calls carry this client's koji session, if it has one; an expired one is renewed as
    /// for any call (koji's hubs take uploads only from a logged-in user). A disagreement
    /// between what was sent and what the hub says it holds is [`Error::Upload`]; a file
    /// that cannot be read, [`Error::File`]; the hub's refusal (a file already there
    /// without [`overwrite`](UploadOptions::overwrite), a path it does not allow), its fault.
    ///
    /// ```no_run
    /// use hub_core::client::{Client, UploadOptions};
    /// # async fn upload() -> Result<(), hub_core::client::Error> {
    /// let hub = Client::new("https://koji.example.org/kojihub")?
    ///     .koji_login("alice", "secret")
    ///     .await?;
    /// let done = hub
    ///     .koji_upload("build.log", "cli-build/1", &UploadOptions::new())
    ///     .await?;
    /// println!("{} bytes, adler32 {}", done.size, done.hexdigest);
    /// # Ok(()) }
    /// ```
    pub async fn koji_upload(
        &self,
        local: impl AsRef<Path>,
        path: &str,
        options: &UploadOptions,
    ) -> Result<Uploaded, Error> {
        let local = local.as_ref();
        let file_error = |source| Error::File {
            path: local.to_owned(),
            source,
        };
        let name = match &options.name {
            Some(name) => name.clone(),
            None => local
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Error::Upload(format!("{}: no file name", local.display())))?
                .to_owned(),
        };
        let mut file = tokio::fs::File::open(local).await.map_err(file_error)?;
        let mut buf = vec![0; options.chunk_size];
        let mut whole = adler2::Adler32::new();
        let mut offset = 0u64;
        loop {
            let n = read_chunk(&mut file, &mut buf).await.map_err(file_error)?;
            // An empty file is sent as one empty chunk, so that it exists on the hub.
            if n == 0 && offset > 0 {
                break;
            }
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            whole.write_slice(&chunk);
            let uri = chunk_uri(&self.uri, path, &name, offset, options.overwrite)?;
            let answer = self
                .renewing(|| self.send_to(&uri, OCTET_STREAM, chunk.clone()))
                .await?;
            check_chunk(&answer, &chunk, offset)?;
            offset += n as u64;
            if n < buf.len() {
                break;
            }
        }
        let sent = hexdigest(whole.checksum());
        let verify = Struct::from_iter([("verify".to_owned(), Value::from("adler32"))]);
        let held: Option<Struct> = self.call_kw("checkUpload", (path, &name), verify).await?;
        let held = held.ok_or_else(|| {
            Error::Upload(format!("the hub has no {path}/{name} after the upload"))
        })?;
        let size = held.get("size").and_then(int_of);
        let digest = held.get("hexdigest").and_then(Value::as_str);
        if size != Some(offset) || digest != Some(sent.as_str()) {
            return Err(Error::Upload(format!(
                "the hub holds {path}/{name} as {size:?} bytes with adler32 {digest:?}; \
                 sent {offset} bytes with {sent}"
            )));
        }
        Ok(Uploaded {
            path: path.to_owned(),
            name,
            size: offset,
            hexdigest: sent,
        })
    }
}

/// Reads until `buf` is full or the file ends; answers the bytes read.
async fn read_chunk(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The hub's URL with one chunk's query, as koji's client writes it.
fn chunk_uri(
    hub: &Uri,
    path: &str,
    name: &str,
    offset: u64,
    overwrite: bool,
) -> Result<Uri, Error> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("filename", name)
        .append_pair("filepath", path)
        .append_pair("offset", &offset.to_string())
        .append_pair("fileverify", "adler32");
    if overwrite {
        query.append_pair("overwrite", "1");
    }
    let query = query.finish();
    let mut parts = hub.clone().into_parts();
    let base = hub.path();
    parts.path_and_query = Some(
        format!("{base}?{query}")
            .parse()
            .map_err(|e| Error::Url(format!("upload of {path}/{name}: {e}")))?,
    );
    Uri::from_parts(parts).map_err(|e| Error::Url(e.to_string()))
}

/// Checks a chunk's answer (`{size, hexdigest, offset, fileverify}`) against the chunk.
fn check_chunk(answer: &Value, chunk: &[u8], offset: u64) -> Result<(), Error> {
    let answer = answer.as_struct().ok_or_else(|| {
        Error::Upload(format!(
            "the hub answered a {} for the chunk at {offset}, not a struct",
            answer.type_name()
        ))
    })?;
    let size = answer.get("size").and_then(int_of);
    if size != Some(chunk.len() as u64) {
        return Err(Error::Upload(format!(
            "the hub took {size:?} bytes of the chunk at {offset}, sent {}",
            chunk.len()
        )));
    }
    let sent = hexdigest(adler2::adler32_slice(chunk));
    let digest = answer.get("hexdigest").and_then(Value::as_str);
    if digest != Some(sent.as_str()) {
        return Err(Error::Upload(format!(
            "the chunk at {offset} arrived with adler32 {digest:?}, sent {sent}"
        )));
    }
    Ok(())
}

/// A size as koji sends it: an int, or a string of digits past 32 bits.
fn int_of(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        other => other.as_i64().and_then(|n| u64::try_from(n).ok()),
    }
}

fn hexdigest(sum: u32) -> String {
    format!("{sum:08x}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_chunk_s_query_is_koji_s() {
        let hub: Uri = "https://hub.example/kojihub".parse().unwrap();
        let uri = chunk_uri(&hub, "cli-build/1 x", "a&b.log", 1_048_576, true).unwrap();
        assert_eq!(
            uri.to_string(),
            "https://hub.example/kojihub?filename=a%26b.log&filepath=cli-build%2F1+x\
             &offset=1048576&fileverify=adler32&overwrite=1"
        );
        let uri = chunk_uri(&hub, "p", "n", 0, false).unwrap();
        assert_eq!(
            uri.query(),
            Some("filename=n&filepath=p&offset=0&fileverify=adler32")
        );
    }

    #[test]
    fn a_chunk_s_answer_must_give_back_its_length_and_checksum() {
        let answer = |size: Value, digest: &str| {
            Value::Struct(Struct::from_iter([
                ("size".to_owned(), size),
                ("hexdigest".to_owned(), Value::from(digest)),
            ]))
        };
        let chunk = b"Wikipedia";
        assert!(check_chunk(&answer(Value::Int(9), "11e60398"), chunk, 0).is_ok());
        // koji writes sizes past 32 bits as strings.
        assert!(check_chunk(&answer(Value::from("9"), "11e60398"), chunk, 0).is_ok());
        for wrong in [
            answer(Value::Int(8), "11e60398"),
            answer(Value::Int(9), "11e60399"),
            Value::Nil,
        ] {
            let e = check_chunk(&wrong, chunk, 0).unwrap_err();
            assert!(matches!(e, Error::Upload(_)), "{e}");
        }
    }
}
