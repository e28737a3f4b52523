//! koji's session sharing: exclusive sessions and subsessions.
//!
//! - `exclusiveSession(force)` makes the caller's session the one its user may work in, as
//!   kojira takes it so that two of it never run at once: while it is held, every other
//!   session of the user is refused with koji's `AuthLockError` (1006), except for
//!   `exclusiveSession` itself (`force=True` closes the holder and takes the lock over, as
//!   kojira's `--force-lock`) and `logout`. `sharedSession` gives it back; so does the
//!   holder's logout. As in koji, a holder that died keeps the lock until it is forced,
//!   expired or not: its client renews it in place and goes on holding it, so no other
//!   session may take it meanwhile.
//! - `subsession` opens another session of the same user under the caller's (kojid opens one
//!   per task): it works under its master's lock, expires with it, and closes with it
//!   (`logout`), or alone (`logoutChild` from the master).

use hub::{rpc_method, Caller, Context, Fault};
use rusqlite::{Connection, OptionalExtension};

use crate::auth::{open_session_under, SessionInfo};
use crate::db::{self, Tx};
use crate::faults;

/// The name of the method a locked-out session may still call to take the lock over.
pub const EXCLUSIVE_SESSION: &str = "exclusiveSession";

/// The session holding its user's exclusive lock, if that is not `session` nor its master:
/// then `session` is locked out. An expired holder counts (koji's "including expired"): it
/// may be renewed, lock and all.
pub fn locked_by(conn: &Connection, session: i64) -> Result<Option<i64>, rusqlite::Error> {
    conn.query_row(
        "SELECT holder.id FROM sessions me JOIN sessions holder
             ON holder.user_id = me.user_id AND holder.exclusive = 1 AND holder.closed = 0
         WHERE me.id = ?1 AND holder.id != me.id AND holder.id IS NOT me.master
         LIMIT 1",
        [session],
        |row| row.get(0),
    )
    .optional()
}

/// The caller's session id and its master's, or koji's `AuthError` without one.
fn own_session(ctx: &Context, tx: &Connection) -> Result<(i64, Option<i64>), Fault> {
    let own = ctx
        .caller()
        .and_then(Caller::session_id)
        .and_then(|id| i64::try_from(id).ok())
        .ok_or_else(|| Fault::new(faults::AUTH, "not logged in: no session"))?;
    let master = tx
        .query_row("SELECT master FROM sessions WHERE id = ?1", [own], |row| {
            row.get(0)
        })
        .map_err(db::fault)?;
    Ok((own, master))
}

/// Makes the caller's session its user's exclusive one. Another holder refuses it with
/// koji's `AuthLockError`, unless `force`: then that session (and its subsessions) is closed
/// and the lock taken over. A subsession cannot hold it; holding it already is no error.
#[rpc_method(name = "exclusiveSession")]
fn exclusive_session(ctx: &Context, force: Option<bool>) -> Result<(), Fault> {
    let tx = ctx.resource::<Tx>()?;
    let (own, master) = own_session(ctx, &tx)?;
    if master.is_some() {
        return Err(faults::generic("subsessions cannot become exclusive"));
    }
    make_exclusive(&tx, own, force == Some(true))
}

/// Gives session `own` (no subsession) its user's exclusive lock: `exclusiveSession`, and a
/// renewal asked to keep it (`exclusive=True`). Another open holder, expired or not, refuses
/// it with `AuthLockError` unless `force`, which closes that one and its subsessions.
pub fn make_exclusive(tx: &Connection, own: i64, force: bool) -> Result<(), Fault> {
    let holder: Option<i64> = tx
        .query_row(
            "SELECT holder.id FROM sessions me JOIN sessions holder
                 ON holder.user_id = me.user_id AND holder.exclusive = 1 AND holder.closed = 0
             WHERE me.id = ?1 AND holder.id != me.id",
            [own],
            |row| row.get(0),
        )
        .optional()
        .map_err(db::fault)?;
    if let Some(holder) = holder {
        if !force {
            return Err(Fault::new(
                faults::AUTH_LOCK,
                format!("Cannot get exclusive session: session {holder} holds it"),
            ));
        }
        tx.execute(
            "UPDATE sessions SET expired = 1, closed = 1, exclusive = 0
             WHERE id = ?1 OR master = ?1",
            [holder],
        )
        .map_err(db::fault)?;
        tracing::info!(
            session = own,
            taken_from = holder,
            "exclusive session forced"
        );
    }
    // Not on a session closed since it was checked (a logout earlier in the same multicall).
    let marked = tx
        .execute(
            "UPDATE sessions SET exclusive = 1 WHERE id = ?1 AND closed = 0",
            [own],
        )
        .map_err(db::fault)?;
    if marked != 1 {
        return Err(Fault::new(faults::AUTH, format!("session {own} is closed")));
    }
    Ok(())
}

/// Gives the caller's exclusive lock back (nothing if it holds none).
#[rpc_method(name = "sharedSession")]
fn shared_session(ctx: &Context) -> Result<(), Fault> {
    let tx = ctx.resource::<Tx>()?;
    let (own, master) = own_session(ctx, &tx)?;
    if master.is_some() {
        return Err(faults::generic("subsessions cannot change sharing"));
    }
    tx.execute("UPDATE sessions SET exclusive = 0 WHERE id = ?1", [own])
        .map_err(db::fault)?;
    Ok(())
}

/// Opens a subsession of the caller's session (of its master, for a subsession): the same
/// user, bound to the same address, expired and closed with its master. Answers its session
/// info.
#[rpc_method]
fn subsession(ctx: &Context) -> Result<SessionInfo, Fault> {
    let tx = ctx.resource::<Tx>()?;
    let (own, master) = own_session(ctx, &tx)?;
    let user = ctx.caller().map(Caller::name).unwrap_or_default();
    open_session_under(
        &tx,
        user,
        "subsession",
        ctx.peer(),
        Some(master.unwrap_or(own)),
    )
}

/// Closes `session_id`, a subsession of the caller's session.
#[rpc_method(name = "logoutChild")]
fn logout_child(ctx: &Context, session_id: i64) -> Result<(), Fault> {
    let tx = ctx.resource::<Tx>()?;
    let (own, _) = own_session(ctx, &tx)?;
    let closed = tx
        .execute(
            "UPDATE sessions SET expired = 1, closed = 1 WHERE id = ?1 AND master = ?2",
            [session_id, own],
        )
        .map_err(db::fault)?;
    if closed != 1 {
        return Err(Fault::new(
            faults::AUTH,
            format!("session {session_id} is not a subsession of this session"),
        ));
    }
    Ok(())
}
