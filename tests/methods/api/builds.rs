//! Builds: struct parameters and results, optional parameters, application faults.

use hub::{rpc_method, Context, Fault};
use serde::{Deserialize, Serialize};

/// A build as the API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub id: i64,
    pub nvr: String,
    pub owner: Owner,
}

/// Who built it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub id: i64,
    pub name: String,
}

/// The application's error type: becomes a fault with koji's GenericError code.
#[derive(Debug)]
pub struct GenericError(pub String);

impl From<GenericError> for Fault {
    fn from(error: GenericError) -> Fault {
        Fault::new(1000, error.0)
    }
}

pub fn sample_build() -> BuildInfo {
    BuildInfo {
        id: 1,
        nvr: "bash-5.2-1".into(),
        owner: Owner {
            id: 3,
            name: "kojiadmin".into(),
        },
    }
}

/// Returns the build with this id.
///
/// With `strict`, an unknown build is a fault instead of nil.
#[rpc_method(name = "getBuild")]
pub fn get_build(build_id: i64, strict: Option<bool>) -> Result<Option<BuildInfo>, GenericError> {
    match (build_id, strict) {
        (1, _) => Ok(Some(sample_build())),
        (_, Some(true)) => Err(GenericError(format!("No such build: {build_id}"))),
        _ => Ok(None),
    }
}

/// Imports a build; the caller must be an admin.
#[rpc_method(name = "importBuild", perm = "admin")]
pub fn import_build(_ctx: &Context, build: BuildInfo) -> i64 {
    build.id + 1000
}

/// Removes a build.
#[rpc_method(name = "deleteBuild", perm = "admin")]
pub fn delete_build(build_id: i64) {
    let _ = build_id;
}

/// Lists the ids of builds of a package.
#[rpc_method(name = "listBuilds")]
pub fn list_builds(package: String, limit: Option<i32>, reverse: Option<bool>) -> Vec<i64> {
    let mut ids: Vec<i64> = (1..=5).collect();
    if reverse.unwrap_or(false) {
        ids.reverse();
    }
    if let Some(limit) = limit {
        ids.truncate(usize::try_from(limit).unwrap_or(0));
    }
    if package.is_empty() {
        ids.clear();
    }
    ids
}
