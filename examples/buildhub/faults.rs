//! koji's fault codes for the faults buildhub's own methods raise (the engine raises the rest
//! with `FaultCodes::koji()`), so that koji clients map them to their exception classes.

use hub::Fault;

/// `koji.GenericError`.
pub const GENERIC: i32 = 1000;
/// `koji.LockError`.
pub const LOCK: i32 = 1001;
/// `koji.AuthError`.
pub const AUTH: i32 = 1002;
/// `koji.AuthLockError`: another session of the user holds the exclusive lock.
pub const AUTH_LOCK: i32 = 1006;
/// `koji.AuthExpired`: the session must be renewed by logging in again.
pub const EXPIRED: i32 = 1007;
/// `koji.ActionNotAllowed`.
pub const NOT_ALLOWED: i32 = 1004;
/// `koji.ParameterError`.
pub const PARAMETER: i32 = 1019;

/// `koji.GenericError`: the request cannot be done (no such thing, already exists, ...).
pub fn generic(message: impl Into<String>) -> Fault {
    Fault::new(GENERIC, message)
}

/// `koji.ParameterError`: an argument is not of the accepted form.
pub fn parameter(message: impl Into<String>) -> Fault {
    Fault::new(PARAMETER, message)
}

/// `koji.ActionNotAllowed` for an anonymous caller (koji's `assertLogin`).
pub fn not_logged_in() -> Fault {
    Fault::new(NOT_ALLOWED, "you must be logged in for this operation")
}
