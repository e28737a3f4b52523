//! Users: async methods, the request context, `Option` results.

use hub::{rpc_method, Context};
use serde::{Deserialize, Serialize};

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: i64,
    pub name: String,
    pub admin: bool,
}

/// Looks a user up by name; nil when there is none.
#[rpc_method(name = "getUser")]
pub async fn get_user(name: String) -> Option<UserInfo> {
    if name != "kojiadmin" {
        return None;
    }
    Some(UserInfo {
        id: 3,
        name,
        admin: true,
    })
}

/// The method name the context carries, to show the context arrives.
#[rpc_method(name = "whatAmI")]
pub async fn what_am_i(ctx: &Context) -> String {
    format!("{} #{}", ctx.method(), ctx.request_id())
}

/// Does `user` have `perm`?
#[rpc_method(name = "hasPerm")]
pub fn has_perm(user: String, perm: String) -> bool {
    user == "kojiadmin" || perm == "anyone"
}
