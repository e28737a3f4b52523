//! The database: SQLite in one file, its schema and migrations, and the per-request
//! transaction ([`Tx`]) that the engine commits when a call succeeds and rolls back when it
//! faults or panics.
//!
//! Connections are pooled ([`Pool`]); each call that asks for a [`Tx`] takes one and starts an
//! `IMMEDIATE` transaction on it (writers queue behind each other through `busy_timeout`
//! instead of failing), and gives it back when the call is settled.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hub::{Fault, RequestResource};
use rusqlite::{Connection, ErrorCode};

/// The schema, one migration per entry; `PRAGMA user_version` counts those applied.
/// Append new steps, never edit a released one.
const MIGRATIONS: &[&str] = &[
    // 1: users, permissions, packages, builds.
    "CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE CHECK (name <> ''),
        password TEXT NOT NULL,
        status INTEGER NOT NULL DEFAULT 0,
        usertype INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE user_perms (
        user_id INTEGER NOT NULL REFERENCES users(id),
        perm TEXT NOT NULL,
        PRIMARY KEY (user_id, perm)
    );
    CREATE TABLE packages (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE CHECK (name <> '')
    );
    CREATE TABLE builds (
        id INTEGER PRIMARY KEY,
        package_id INTEGER NOT NULL REFERENCES packages(id),
        version TEXT NOT NULL CHECK (version <> '' AND instr(version, '-') = 0),
        release TEXT NOT NULL CHECK (release <> '' AND instr(release, '-') = 0),
        epoch INTEGER,
        state INTEGER NOT NULL,
        owner_id INTEGER NOT NULL REFERENCES users(id),
        creation_ts REAL NOT NULL,
        completion_ts REAL,
        UNIQUE (package_id, version, release)
    );
    CREATE INDEX builds_owner ON builds (owner_id);
    CREATE INDEX builds_state ON builds (state);",
    // 2: sessions, in the database (as koji keeps them) so that a restart logs nobody out.
    // A logout marks its session expired; ids are never reused.
    "CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id),
        key TEXT NOT NULL,
        authtype TEXT NOT NULL,
        callnum INTEGER,
        start_ts REAL NOT NULL,
        expired INTEGER NOT NULL DEFAULT 0
    );",
    // 3: a session's key kept as its BLAKE2b hash, so reading the database hands out no
    // session. Those opened before were stored with their keys as sent: they are ended.
    "UPDATE sessions SET expired = 1, key = '';
    ALTER TABLE sessions RENAME COLUMN key TO key_hash;",
    // 4: sessions expire with age and are renewed (koji's `SessionRenewalTimeout`): an
    // expired session can be renewed by logging in again, a closed one (logged out) cannot.
    // Every session expired so far was logged out or ended by migration 3: closed. A session
    // is bound to the address it logged in from (koji's `CheckClientIP`); those opened before
    // have none and are not bound.
    "ALTER TABLE sessions ADD COLUMN renew_ts REAL;
    ALTER TABLE sessions ADD COLUMN closed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN hostip TEXT;
    UPDATE sessions SET closed = expired;",
    // 5: koji's session sharing: a subsession's master (closed with it), and the one
    // exclusive session a user may hold (kojira's lock), indexed for the lookup every
    // authenticated call makes.
    "ALTER TABLE sessions ADD COLUMN master INTEGER REFERENCES sessions(id);
    ALTER TABLE sessions ADD COLUMN exclusive INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX sessions_exclusive ON sessions(user_id) WHERE exclusive = 1;",
];

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

/// Opens `path` (creating it), applies the migrations it lacks, and returns the pool.
pub fn open(path: &Path) -> Result<Arc<Pool>, rusqlite::Error> {
    let pool = Arc::new(Pool {
        path: path.to_owned(),
        idle: Mutex::new(Vec::new()),
    });
    let mut conn = pool.connect()?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    migrate(&mut conn)?;
    Ok(pool)
}

/// Applies every migration past the database's `user_version`, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let done: usize = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database migrated");
    }
    Ok(())
}

/// Connections to one database file.
#[derive(Debug)]
pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    /// A new connection, configured.
    pub fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        Ok(conn)
    }

    /// A pooled connection with a transaction begun: the per-request resource.
    pub fn begin(self: &Arc<Self>) -> Result<Tx, rusqlite::Error> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect()?,
        };
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Tx {
            conn,
            pool: Arc::clone(self),
        })
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// One call's transaction: use it as a [`Connection`] (`ctx.resource::<Tx>()?`).
#[derive(Debug)]
pub struct Tx {
    conn: Connection,
    pool: Arc<Pool>,
}

impl Deref for Tx {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl RequestResource for Tx {
    fn commit(self) -> Result<(), Fault> {
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.pool.give_back(self.conn);
                Ok(())
            }
            // The connection is dropped (closed), which rolls the transaction back.
            Err(e) => Err(Fault::new(1, format!("commit failed: {e}"))),
        }
    }

    fn rollback(self) {
        if self.conn.execute_batch("ROLLBACK").is_ok() {
            self.pool.give_back(self.conn);
        }
    }
}

/// A database error as a fault: a broken constraint is the caller's doing (`GenericError`
/// naming the constraint), anything else the server's (koji's code 1).
pub fn fault(e: rusqlite::Error) -> Fault {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => crate::faults::generic(format!("refused: {e}")),
        _ => {
            tracing::error!(error = %e, "database error");
            Fault::new(1, format!("database error: {e}"))
        }
    }
}
