//! Packages: `createPackage`, `getPackage`, `listPackages`.

use hub::serde::Serialize;
use hub::{rpc_method, Context, Fault, Value};
use rusqlite::{Connection, OptionalExtension};

use crate::db::{self, Tx};
use crate::faults;

/// A package as `getPackage` answers it.
#[derive(Debug, Serialize)]
#[serde(crate = "hub::serde")]
pub struct PackageInfo {
    pub id: i64,
    pub name: String,
}

/// A package as `listPackages` answers it (koji's keys when no tag is given).
#[derive(Debug, Serialize)]
#[serde(crate = "hub::serde")]
pub struct PackageEntry {
    package_id: i64,
    package_name: String,
}

/// A package by id or name, `None` if there is none.
pub fn lookup(conn: &Connection, info: &Value) -> Result<Option<PackageInfo>, Fault> {
    let row = |row: &rusqlite::Row<'_>| {
        Ok(PackageInfo {
            id: row.get(0)?,
            name: row.get(1)?,
        })
    };
    let found = match info {
        Value::Int(id) => conn.query_row("SELECT id, name FROM packages WHERE id = ?1", [id], row),
        Value::String(name) => {
            conn.query_row("SELECT id, name FROM packages WHERE name = ?1", [name], row)
        }
        other => {
            return Err(faults::parameter(format!(
                "a package is an id (int) or a name (string), not {other:?}"
            )))
        }
    };
    found.optional().map_err(db::fault)
}

/// Inserts package `name`; answers its id.
pub fn insert(conn: &Connection, name: &str) -> Result<i64, Fault> {
    if !valid_name(name) {
        return Err(faults::parameter(format!("invalid package name: {name:?}")));
    }
    conn.execute("INSERT INTO packages (name) VALUES (?1)", [name])
        .map_err(db::fault)?;
    Ok(conn.last_insert_rowid())
}

/// An RPM name: letters, digits and `._+-`, not starting with `-` or `.`.
fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
}

/// Creates package `name`; answers its id. Needs a login.
#[rpc_method(name = "createPackage")]
fn create_package(ctx: &Context, name: String) -> Result<i64, Fault> {
    ctx.caller().ok_or_else(faults::not_logged_in)?;
    let tx = ctx.resource::<Tx>()?;
    if lookup(&tx, &Value::from(name.as_str()))?.is_some() {
        return Err(faults::generic(format!("package already exists: {name}")));
    }
    insert(&tx, &name)
}

/// The package `info` (an id or a name): `{id, name}`, or nil if there is none (a
/// `GenericError` with `strict`).
#[rpc_method(name = "getPackage")]
fn get_package(
    ctx: &Context,
    info: Value,
    strict: Option<bool>,
) -> Result<Option<PackageInfo>, Fault> {
    let tx = ctx.resource::<Tx>()?;
    let found = lookup(&tx, &info)?;
    if found.is_none() && strict.unwrap_or(false) {
        return Err(faults::generic(format!("No such package: {info:?}")));
    }
    Ok(found)
}

/// Every package (`{package_id, package_name}`), by name; with `prefix`, those whose name
/// starts with it.
#[rpc_method(name = "listPackages")]
fn list_packages(ctx: &Context, prefix: Option<String>) -> Result<Vec<PackageEntry>, Fault> {
    let tx = ctx.resource::<Tx>()?;
    let mut stmt = tx
        .prepare_cached(
            "SELECT id, name FROM packages WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name",
        )
        .map_err(db::fault)?;
    let rows = stmt
        .query_map([prefix.unwrap_or_default()], |row| {
            Ok(PackageEntry {
                package_id: row.get(0)?,
                package_name: row.get(1)?,
            })
        })
        .map_err(db::fault)?;
    rows.collect::<Result<_, _>>().map_err(db::fault)
}
