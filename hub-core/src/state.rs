//! Shared state: values the server is built with ([`ServerBuilder::state`]) that every
//! handler reads through its context ([`Context::state`]), one value per type: a database
//! pool, the hub's own settings, a cache. `#[rpc_method]` functions are registered at link
//! time and cannot capture anything from `main`; this is how they reach what it built,
//! without globals.
//!
//! [`ServerBuilder::state`]: crate::ServerBuilder::state
//! [`Context::state`]: crate::Context::state

use std::sync::Arc;

/// The values set, by type. Cloned into each IO unit's copy of the server's parts: a clone
/// is one reference count.
#[derive(Debug, Clone, Default)]
pub(crate) struct States(Arc<http::Extensions>);

impl States {
    /// Sets the value of type `T`, replacing one set before.
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.0).insert(Arc::new(value));
    }

    /// The value of type `T`, if one was set.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.get::<Arc<T>>().map(|value| &**value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type_the_last_one_set() {
        let mut states = States::default();
        assert_eq!(states.get::<u32>(), None);
        states.insert(7u32);
        states.insert(String::from("hub"));
        let copy = states.clone();
        states.insert(8u32);
        assert_eq!(states.get::<u32>(), Some(&8));
        assert_eq!(states.get::<String>().map(String::as_str), Some("hub"));
        // A copy made before keeps what it had (the builder's, not a running server's).
        assert_eq!(copy.get::<u32>(), Some(&7));
        assert_eq!(states.get::<u64>(), None, "by type, not by conversion");
    }
}
