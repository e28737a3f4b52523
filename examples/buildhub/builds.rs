//! Builds: `createBuild`, `getBuild` (by id or NVR), `listBuilds`, `deleteBuild`, answering
//! koji's build dicts.

use std::time::{SystemTime, UNIX_EPOCH};

use hub::serde::Serialize;
use hub::{rpc_method, Context, Fault, Value};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::db::{self, Tx};
use crate::{faults, packages, users};

/// koji's `BUILD_STATES`.
pub mod state {
    /// In progress.
    pub const BUILDING: i64 = 0;
    /// Done; the state `createBuild` gives.
    pub const COMPLETE: i64 = 1;
    /// Deleted by `deleteBuild` (the row stays, as in koji).
    pub const DELETED: i64 = 2;
    /// Failed.
    pub const FAILED: i64 = 3;
    /// Canceled.
    pub const CANCELED: i64 = 4;

    /// The name koji gives state `n`.
    pub fn name(n: i64) -> &'static str {
        match n {
            BUILDING => "BUILDING",
            COMPLETE => "COMPLETE",
            DELETED => "DELETED",
            FAILED => "FAILED",
            CANCELED => "CANCELED",
            _ => "UNKNOWN",
        }
    }
}

/// A build as koji's `getBuild` answers it.
#[derive(Debug, Serialize)]
#[serde(crate = "hub::serde")]
pub struct BuildInfo {
    id: i64,
    build_id: i64,
    package_id: i64,
    package_name: String,
    name: String,
    version: String,
    release: String,
    nvr: String,
    epoch: Option<i64>,
    state: i64,
    owner_id: i64,
    owner_name: String,
    creation_time: String,
    creation_ts: f64,
    completion_time: Option<String>,
    completion_ts: Option<f64>,
    task_id: Option<i64>,
    volume_id: i64,
    volume_name: &'static str,
    draft: bool,
}

const SELECT: &str = "SELECT b.id, b.package_id, p.name, b.version, b.release, b.epoch,
        b.state, b.owner_id, u.name, b.creation_ts, b.completion_ts,
        strftime('%Y-%m-%d %H:%M:%f+00:00', b.creation_ts, 'unixepoch'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', b.completion_ts, 'unixepoch')
    FROM builds b JOIN packages p ON p.id = b.package_id JOIN users u ON u.id = b.owner_id";

fn build_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BuildInfo> {
    let id: i64 = row.get(0)?;
    let name: String = row.get(2)?;
    let version: String = row.get(3)?;
    let release: String = row.get(4)?;
    Ok(BuildInfo {
        id,
        build_id: id,
        package_id: row.get(1)?,
        package_name: name.clone(),
        nvr: format!("{name}-{version}-{release}"),
        name,
        version,
        release,
        epoch: row.get(5)?,
        state: row.get(6)?,
        owner_id: row.get(7)?,
        owner_name: row.get(8)?,
        creation_ts: row.get(9)?,
        completion_ts: row.get(10)?,
        creation_time: row.get(11)?,
        completion_time: row.get(12)?,
        task_id: None,
        volume_id: 0,
        volume_name: "DEFAULT",
        draft: false,
    })
}

/// Splits `name-version-release` (the name may hold dashes, version and release may not).
pub fn parse_nvr(nvr: &str) -> Option<(&str, &str, &str)> {
    let (rest, release) = nvr.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    [name, version, release]
        .iter()
        .all(|part| !part.is_empty())
        .then_some((name, version, release))
}

/// A build by id (int) or NVR (string), `None` if there is none.
fn lookup(conn: &Connection, info: &Value) -> Result<Option<BuildInfo>, Fault> {
    let found = match info {
        Value::Int(id) => conn.query_row(&format!("{SELECT} WHERE b.id = ?1"), [id], build_row),
        Value::String(nvr) => {
            let (name, version, release) =
                parse_nvr(nvr).ok_or_else(|| faults::generic(format!("invalid format: {nvr}")))?;
            conn.query_row(
                &format!("{SELECT} WHERE p.name = ?1 AND b.version = ?2 AND b.release = ?3"),
                params![name, version, release],
                build_row,
            )
        }
        other => {
            return Err(faults::parameter(format!(
                "a build is an id (int) or an NVR (string), not {other:?}"
            )))
        }
    };
    found.optional().map_err(db::fault)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Records the build `name-version-release` (with `epoch`, default nil), owned by the caller,
/// in state COMPLETE; answers its id. The package is created if it is new (in the same
/// transaction: a build refused afterwards leaves no package behind). Needs a login.
#[rpc_method(name = "createBuild")]
fn create_build(
    ctx: &Context,
    name: String,
    version: String,
    release: String,
    epoch: Option<i64>,
) -> Result<i64, Fault> {
    let tx = ctx.resource::<Tx>()?;
    let owner = users::caller_id(ctx, &tx)?;
    let package_id = match packages::lookup(&tx, &Value::from(name.as_str()))? {
        Some(package) => package.id,
        None => packages::insert(&tx, &name)?,
    };
    let nvr = format!("{name}-{version}-{release}");
    if let Some(old) = lookup(&tx, &Value::from(nvr.as_str()))? {
        return Err(faults::generic(format!(
            "Build already exists (id={}, state={}): {nvr}",
            old.id,
            state::name(old.state)
        )));
    }
    // Version and release are checked by the table: a dash in either is refused here, after
    // a new package was inserted above, and the rollback takes that package back.
    let ts = now();
    tx.execute(
        "INSERT INTO builds (package_id, version, release, epoch, state, owner_id,
                             creation_ts, completion_ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            package_id,
            version,
            release,
            epoch,
            state::COMPLETE,
            owner,
            ts
        ],
    )
    .map_err(db::fault)?;
    Ok(tx.last_insert_rowid())
}

/// The build `buildInfo`: an id, or an NVR string such as `bash-5.2.15-3.fc40`. Nil if
/// there is none (a `GenericError` with `strict`).
#[allow(non_snake_case)]
#[rpc_method(name = "getBuild")]
fn get_build(
    ctx: &Context,
    buildInfo: Value,
    strict: Option<bool>,
) -> Result<Option<BuildInfo>, Fault> {
    let tx = ctx.resource::<Tx>()?;
    let found = lookup(&tx, &buildInfo)?;
    if found.is_none() && strict.unwrap_or(false) {
        return Err(faults::generic(format!("No such build: {buildInfo:?}")));
    }
    Ok(found)
}

/// Builds, oldest first, filtered by any of: `packageID` (a package id or name), `userID`
/// (the owner's id or name), `state` (koji's `BUILD_STATES`: 0 building, 1 complete,
/// 2 deleted, 3 failed, 4 canceled), `prefix` (of the package name).
#[allow(non_snake_case)]
#[rpc_method(name = "listBuilds")]
fn list_builds(
    ctx: &Context,
    packageID: Option<Value>,
    userID: Option<Value>,
    state: Option<i64>,
    prefix: Option<String>,
) -> Result<Vec<BuildInfo>, Fault> {
    let mut conditions = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    let mut filter = |by_id: &str, by_name: &str, what: &str, v: Value| -> Result<(), Fault> {
        let (column, arg) = match v {
            Value::Int(id) => (by_id, SqlValue::Integer(id)),
            Value::String(name) => (by_name, SqlValue::Text(name)),
            other => {
                return Err(faults::parameter(format!(
                    "{what} is an id (int) or a name (string), not {other:?}"
                )))
            }
        };
        args.push(arg);
        conditions.push(format!("{column} = ?{}", args.len()));
        Ok(())
    };
    if let Some(v) = packageID {
        filter("b.package_id", "p.name", "packageID", v)?;
    }
    if let Some(v) = userID {
        filter("b.owner_id", "u.name", "userID", v)?;
    }
    if let Some(state) = state {
        args.push(SqlValue::Integer(state));
        conditions.push(format!("b.state = ?{}", args.len()));
    }
    if let Some(prefix) = prefix {
        args.push(SqlValue::Text(prefix));
        let n = args.len();
        conditions.push(format!("substr(p.name, 1, length(?{n})) = ?{n}"));
    }
    let mut sql = SELECT.to_owned();
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY b.id");
    let tx = ctx.resource::<Tx>()?;
    let mut stmt = tx.prepare(&sql).map_err(db::fault)?;
    let rows = stmt
        .query_map(params_from_iter(args), build_row)
        .map_err(db::fault)?;
    rows.collect::<Result<_, _>>().map_err(db::fault)
}

/// Marks the build `build` (an id or NVR) deleted, as koji does (the row stays, in state
/// DELETED). Answers true, or false for an unknown build (a `GenericError` with `strict`,
/// the default). Needs `admin`.
#[rpc_method(name = "deleteBuild", perm = "admin")]
fn delete_build(ctx: &Context, build: Value, strict: Option<bool>) -> Result<bool, Fault> {
    let tx = ctx.resource::<Tx>()?;
    let Some(found) = lookup(&tx, &build)? else {
        if strict.unwrap_or(true) {
            return Err(faults::generic(format!("No such build: {build:?}")));
        }
        return Ok(false);
    };
    tx.execute(
        "UPDATE builds SET state = ?1 WHERE id = ?2",
        params![state::DELETED, found.id],
    )
    .map_err(db::fault)?;
    Ok(true)
}
