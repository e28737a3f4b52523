//! Users and permissions: `createUser`, `getLoggedInUser`, `grantPermission`, `hasPerm`, and
//! the `--admin` account made on first start.

use hub::serde::Serialize;
use hub::{rpc_method, Context, Fault, Value};
use rusqlite::{params, Connection, OptionalExtension};

use crate::auth::hash_password;
use crate::db::{self, Tx};
use crate::faults;

/// A user as koji describes one.
#[derive(Debug, Serialize)]
#[serde(crate = "hub::serde")]
pub struct UserInfo {
    id: i64,
    name: String,
    status: i64,
    usertype: i64,
    krb_principal: Option<String>,
    krb_principals: Vec<String>,
}

/// A user by id or name, `None` if there is none.
pub fn lookup(conn: &Connection, who: &Value) -> Result<Option<UserInfo>, Fault> {
    let sql = "SELECT id, name, status, usertype FROM users WHERE ";
    let row = |row: &rusqlite::Row<'_>| {
        Ok(UserInfo {
            id: row.get(0)?,
            name: row.get(1)?,
            status: row.get(2)?,
            usertype: row.get(3)?,
            krb_principal: None,
            krb_principals: Vec::new(),
        })
    };
    let found = match who {
        Value::Int(id) => conn.query_row(&format!("{sql}id = ?1"), [id], row),
        Value::String(name) => conn.query_row(&format!("{sql}name = ?1"), [name], row),
        other => {
            return Err(faults::parameter(format!(
                "a user is an id (int) or a name (string), not {other:?}"
            )))
        }
    };
    found.optional().map_err(db::fault)
}

/// The id of the logged-in caller's account.
pub fn caller_id(ctx: &Context, conn: &Connection) -> Result<i64, Fault> {
    let caller = ctx.caller().ok_or_else(faults::not_logged_in)?;
    lookup(conn, &Value::from(caller.name()))?
        .map(|u| u.id)
        .ok_or_else(|| faults::generic(format!("no such user: {}", caller.name())))
}

/// Inserts a user; `GenericError` if the name is taken.
fn insert_user(conn: &Connection, name: &str, password: &str) -> Result<i64, Fault> {
    if !valid_name(name) {
        return Err(faults::parameter(format!("invalid user name: {name:?}")));
    }
    if password.is_empty() {
        return Err(faults::parameter("the password may not be empty"));
    }
    if lookup(conn, &Value::from(name))?.is_some() {
        return Err(faults::generic(format!("user already exists: {name}")));
    }
    conn.execute(
        "INSERT INTO users (name, password) VALUES (?1, ?2)",
        params![name, hash_password(password)?],
    )
    .map_err(db::fault)?;
    Ok(conn.last_insert_rowid())
}

/// Grants `perm` to user `user_id`; `GenericError` if it is held already.
fn insert_perm(conn: &Connection, user_id: i64, name: &str, perm: &str) -> Result<(), Fault> {
    if !valid_name(perm) {
        return Err(faults::parameter(format!(
            "invalid permission name: {perm:?}"
        )));
    }
    let added = conn
        .execute(
            "INSERT OR IGNORE INTO user_perms (user_id, perm) VALUES (?1, ?2)",
            params![user_id, perm],
        )
        .map_err(db::fault)?;
    if added == 0 {
        return Err(faults::generic(format!(
            "user {name} already has permission: {perm}"
        )));
    }
    Ok(())
}

/// Letters, digits and `._+-@`, 1 to 255 of them.
fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-@".contains(c))
}

/// Creates the admin account `name` with `password` unless a user `name` exists: the
/// `--admin` option, run before the server starts.
pub fn ensure_admin(conn: &Connection, name: &str, password: &str) -> Result<bool, Fault> {
    if lookup(conn, &Value::from(name))?.is_some() {
        return Ok(false);
    }
    let id = insert_user(conn, name, password)?;
    insert_perm(conn, id, name, "admin")?;
    Ok(true)
}

/// Creates a user who logs in with `password`; answers the new user's id. Needs `admin`.
#[rpc_method(name = "createUser", perm = "admin", sensitive)]
fn create_user(ctx: &Context, username: String, password: String) -> Result<i64, Fault> {
    let tx = ctx.resource::<Tx>()?;
    insert_user(&tx, &username, &password)
}

/// The logged-in user (`id`, `name`, `status`, `usertype`, ...), or nil when anonymous.
#[rpc_method(name = "getLoggedInUser")]
fn get_logged_in_user(ctx: &Context) -> Result<Option<UserInfo>, Fault> {
    let Some(caller) = ctx.caller() else {
        return Ok(None);
    };
    let tx = ctx.resource::<Tx>()?;
    lookup(&tx, &Value::from(caller.name()))
}

/// Grants `permission` to `userinfo` (an id or a name). Needs `admin`. `create` is accepted
/// as koji's client sends it: any well-formed permission name may be granted.
#[rpc_method(name = "grantPermission", perm = "admin")]
fn grant_permission(
    ctx: &Context,
    userinfo: Value,
    permission: String,
    create: Option<bool>,
) -> Result<(), Fault> {
    let _ = create;
    let tx = ctx.resource::<Tx>()?;
    let user = lookup(&tx, &userinfo)?
        .ok_or_else(|| faults::generic(format!("no such user: {userinfo:?}")))?;
    insert_perm(&tx, user.id, &user.name, &permission)
}

/// Whether the caller holds `perm` (or `admin`). With `strict`, an anonymous call is
/// refused instead of answering false.
#[rpc_method(name = "hasPerm")]
fn has_perm(ctx: &Context, perm: String, strict: Option<bool>) -> Result<bool, Fault> {
    match ctx.caller() {
        Some(caller) => Ok(caller.has_perm(&perm)),
        None if strict.unwrap_or(false) => Err(faults::not_logged_in()),
        None => Ok(false),
    }
}
