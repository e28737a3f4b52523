//! Uploads as koji clients send them: `POST` with `Content-Type: application/octet-stream`
//! and the query parameters `filename`, `filepath`, `offset` (`-1` appends), `overwrite` and
//! `fileverify=adler32`; the body is streamed to `WORK/filepath/filename` and the answer is
//! `{size, fileverify, offset, hexdigest}`. `checkUpload(path, name)` describes what is there.
//!
//! Paths are the client's input: a file name with a slash or a leading dot, and a directory
//! that is absolute or climbs with `..`, are refused. The first user to upload into a
//! directory owns it (koji's `.user` file); others are refused there.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::UNIX_EPOCH;

use hub::{rpc_method, Context, Fault, RpcError, Struct, Upload, Value};

use crate::faults;

/// Files being written now; a second writer of the same file gets koji's `LockError`.
static WRITING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Holds a file in [`WRITING`] until dropped.
struct Writing(PathBuf);

impl Writing {
    fn claim(path: &Path) -> Result<Writing, Fault> {
        let mut writing = WRITING.lock().unwrap_or_else(PoisonError::into_inner);
        if !writing.insert(path.to_owned()) {
            return Err(Fault::new(
                faults::LOCK,
                "the file is being uploaded already",
            ));
        }
        Ok(Writing(path.to_owned()))
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// `root/reldir/name`, refusing anything that could lead outside `root`.
pub fn upload_path(root: &Path, reldir: &str, name: &str) -> Result<PathBuf, Fault> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0'])
        || name.len() > 255
    {
        return Err(faults::generic(format!("Invalid upload filename: {name}")));
    }
    let dir = Path::new(reldir);
    let mut parts = Vec::new();
    for part in dir.components() {
        match part {
            Component::Normal(p) if !p.as_encoded_bytes().contains(&0) => parts.push(p),
            Component::CurDir => {}
            _ => {
                return Err(faults::generic(format!(
                    "Invalid upload directory: {reldir}"
                )))
            }
        }
    }
    if parts.is_empty() {
        return Err(faults::generic(format!(
            "Invalid upload directory: {reldir}"
        )));
    }
    let mut path = root.to_owned();
    path.extend(parts);
    path.push(name);
    Ok(path)
}

/// Creates `dir` and makes `user` its owner, or checks that they are.
fn claim_dir(dir: &Path, user: &str, reldir: &str) -> Result<(), Fault> {
    let io = |e: std::io::Error| faults::generic(format!("upload directory {reldir}: {e}"));
    std::fs::create_dir_all(dir).map_err(io)?;
    let marker = dir.join(".user");
    // Created only if it is missing: of two first uploads at once, one owns it.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(mut file) => return file.write_all(user.as_bytes()).map_err(io),
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(e)),
        Err(_) => {}
    }
    match std::fs::read_to_string(&marker) {
        Ok(owner) if owner == user => Ok(()),
        Ok(_) => Err(faults::generic(format!(
            "Invalid upload directory, not owner: {reldir}"
        ))),
        Err(e) => Err(io(e)),
    }
}

/// koji's adler32 (zlib's checksum) as it sends it: `%08x`.
fn hexdigest(sum: &adler2::Adler32) -> String {
    format!("{:08x}", sum.checksum())
}

/// The upload's query parameters, checked.
struct Query {
    filename: String,
    filepath: String,
    offset: i64,
    overwrite: bool,
    verify: bool,
}

impl Query {
    fn read(upload: &Upload) -> Result<Query, Fault> {
        let get = |name: &str| upload.query(name).unwrap_or("");
        let filename = upload
            .query("filename")
            .ok_or_else(|| faults::parameter("an upload needs the filename parameter"))?;
        let offset = match get("offset") {
            "" => 0,
            n => n
                .parse::<i64>()
                .ok()
                .filter(|&n| n >= -1)
                .ok_or_else(|| faults::parameter(format!("invalid upload offset: {n}")))?,
        };
        let verify = match get("fileverify") {
            "" => false,
            "adler32" => true,
            other => return Err(faults::generic(format!("Unsupported verify type: {other}"))),
        };
        match get("volume") {
            "" | "DEFAULT" => {}
            other => return Err(faults::generic(format!("No such volume: {other}"))),
        }
        Ok(Query {
            filename: filename.to_owned(),
            filepath: get("filepath").to_owned(),
            offset,
            // koji takes any non-empty value as true
            overwrite: !get("overwrite").is_empty(),
            verify,
        })
    }
}

/// Opens the target and places the cursor: at `offset` (truncating there) or at the end
/// for `-1`; answers the offset used.
fn open_at(path: &Path, q: &Query) -> std::io::Result<Result<(File, u64), Fault>> {
    let existed = path.exists();
    if existed && !path.is_file() {
        return Ok(Err(faults::generic(format!(
            "destination not a file: {}/{}",
            q.filepath, q.filename
        ))));
    }
    if existed && q.offset == 0 && !q.overwrite {
        return Ok(Err(faults::generic(format!(
            "upload path exists: {}/{}",
            q.filepath, q.filename
        ))));
    }
    // A chunk starts where the file ends, or within it (koji's client uploads in order):
    // past the end it would make a sparse file of any size, which `checkUpload` then reads
    // whole, a worker held for minutes per terabyte.
    let len = if existed { path.metadata()?.len() } else { 0 };
    if u64::try_from(q.offset).is_ok_and(|offset| offset > len) {
        return Ok(Err(faults::generic(format!(
            "upload offset {} is past the end of {}/{} ({len} bytes)",
            q.offset, q.filepath, q.filename
        ))));
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let offset = match u64::try_from(q.offset) {
        Ok(offset) => {
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?
        }
        Err(_) => file.seek(SeekFrom::End(0))?,
    };
    Ok(Ok((file, offset)))
}

/// The upload handler: streams the body into the work directory.
pub async fn receive(mut upload: Upload) -> Result<Value, RpcError> {
    let user = upload
        .context()
        .caller()
        .map(|c| c.name().to_owned())
        .ok_or_else(|| Fault::new(faults::NOT_ALLOWED, "you must be logged-in to upload"))?;
    let q = Query::read(&upload)?;
    let work_dir = &upload.context().state::<crate::State>()?.work_dir;
    let path = upload_path(work_dir, &q.filepath, &q.filename)?;
    if let Some(dir) = path.parent() {
        claim_dir(dir, &user, &q.filepath)?;
    }
    let _writing = Writing::claim(&path)?;
    let io = |e: std::io::Error| faults::generic(format!("upload {}: {e}", q.filename));
    let (mut file, offset) = open_at(&path, &q).map_err(io)??;
    let mut sum = adler2::Adler32::new();
    let mut size = 0u64;
    while let Some(chunk) = upload.body().chunk().await? {
        file.write_all(&chunk).map_err(io)?;
        sum.write_slice(&chunk);
        size += chunk.len() as u64;
    }
    file.flush().map_err(io)?;
    let mut answer = Struct::new();
    answer.insert("size", int(size)?);
    answer.insert("fileverify", if q.verify { "adler32" } else { "" });
    answer.insert("offset", int(offset)?);
    if q.verify {
        answer.insert("hexdigest", hexdigest(&sum));
    }
    Ok(Value::Struct(answer))
}

fn int(n: u64) -> Result<i64, Fault> {
    i64::try_from(n).map_err(|_| faults::generic("file too large"))
}

/// Describes the uploaded file `path/name`: `{size, mtime}`, plus `{sumlength, hexdigest}`
/// with `verify="adler32"` (over the last `tail` bytes if given). Nil if there is no such
/// file.
#[rpc_method(name = "checkUpload")]
fn check_upload(
    ctx: &Context,
    path: String,
    name: String,
    verify: Option<String>,
    tail: Option<i64>,
    volume: Option<String>,
) -> Result<Option<Struct>, Fault> {
    if volume.as_deref().is_some_and(|v| v != "DEFAULT") {
        return Err(faults::generic(format!("No such volume: {volume:?}")));
    }
    let target = upload_path(&ctx.state::<crate::State>()?.work_dir, &path, &name)?;
    let io = |e: std::io::Error| faults::generic(format!("checkUpload {path}/{name}: {e}"));
    let mut file = match File::open(&target) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(faults::generic(format!(
            "Not a regular file: {path}/{name}"
        )));
    }
    let mut info = Struct::new();
    info.insert("size", int(meta.len())?);
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    info.insert("mtime", mtime);
    match verify.as_deref() {
        None | Some("") => {}
        Some("adler32") => {
            if let Some(tail) = tail {
                let tail = u64::try_from(tail)
                    .map_err(|_| faults::generic(format!("Invalid tail value: {tail}")))?;
                file.seek(SeekFrom::Start(meta.len().saturating_sub(tail)))
                    .map_err(io)?;
            }
            let (mut sum, mut length, mut buf) = (adler2::Adler32::new(), 0u64, vec![0u8; 65536]);
            loop {
                let n = file.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                sum.write_slice(&buf[..n]);
                length += n as u64;
            }
            info.insert("sumlength", int(length)?);
            info.insert("hexdigest", hexdigest(&sum));
        }
        Some(other) => return Err(faults::generic(format!("Unsupported verify type: {other}"))),
    }
    Ok(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_written_as_koji_writes_it() {
        let mut sum = adler2::Adler32::new();
        assert_eq!(hexdigest(&sum), "00000001");
        sum.write_slice(b"Wikipedia");
        assert_eq!(hexdigest(&sum), "11e60398");
    }

    #[test]
    fn paths_stay_inside() {
        let root = Path::new("/w");
        let ok = upload_path(root, "cli-build/1/x", "a.rpm").map_err(|f| f.message);
        assert_eq!(ok, Ok(PathBuf::from("/w/cli-build/1/x/a.rpm")));
        for (dir, name) in [
            ("../etc", "passwd"),
            ("a/../../b", "f"),
            ("/etc", "passwd"),
            ("", "f"),
            (".", "f"),
            ("a", "../f"),
            ("a", ".user"),
            ("a", "b/c"),
            ("a", ""),
        ] {
            assert!(upload_path(root, dir, name).is_err(), "{dir} {name}");
        }
    }

    /// Two users' first uploads into the same new directory at once: exactly one owns it
    /// (both were admitted more than half the time when the owner was read, then written).
    #[test]
    fn one_of_two_first_uploads_at_once_owns_the_directory() {
        let root = std::env::temp_dir().join(format!("buildhub-claim-{}", std::process::id()));
        for i in 0..300 {
            let dir = root.join(i.to_string());
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let claim = |user: &'static str| {
                let (dir, barrier) = (dir.clone(), std::sync::Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    claim_dir(&dir, user, "d").is_ok()
                })
            };
            let (alice, bob) = (claim("alice"), claim("bob"));
            let admitted = [alice, bob].map(|t| t.join().expect("no panic"));
            assert_eq!(
                admitted.iter().filter(|&&ok| ok).count(),
                1,
                "round {i}: {admitted:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
