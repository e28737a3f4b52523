//! Header maps reused on the thread that frees them.
//!
//! hyper parses each request head into the header map of the connection's previous answer,
//! and a call's context takes that map. When the context is dropped (on the unit, for an
//! async call, just before the answer is built) it gives the map back here, emptied, and the
//! answer's headers are written into it: a unit's steady state allocates and frees no header
//! map per call. A map grown past [`KEEP_MAX`] headers is freed instead.

use std::cell::RefCell;

use http::HeaderMap;

/// Maps holding room for more headers than this are not kept.
const KEEP_MAX: usize = 64;

/// Maps kept per thread at most (a unit builds one answer at a time per connection; a worker
/// sends a blocking call's map back to its unit, and keeps only those of jobs dropped unrun).
const KEEP: usize = 16;

thread_local! {
    static KEPT: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty header map: one kept on this thread, or a new one (which allocates only when
/// the first header goes in).
pub(crate) fn take() -> HeaderMap {
    KEPT.try_with(|kept| kept.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps `map`, emptied, for the next [`take`] on this thread.
pub(crate) fn give_back(mut map: HeaderMap) {
    // A map that never held a header has nothing worth keeping.
    if map.capacity() == 0 || map.capacity() > KEEP_MAX {
        return;
    }
    map.clear();
    // A thread being torn down has no place to keep it: it is freed.
    let _ = KEPT.try_with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.len() < KEEP {
            kept.push(map);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};

    fn kept() -> usize {
        KEPT.with(|k| k.borrow().len())
    }

    #[test]
    fn a_given_back_map_comes_back_empty_with_its_room() {
        std::thread::spawn(|| {
            let mut request = HeaderMap::new();
            request.insert(USER_AGENT, HeaderValue::from_static("koji/1.35"));
            let room = request.capacity();
            give_back(request);
            assert_eq!(kept(), 1);
            let answer = take();
            assert!(answer.is_empty(), "kept maps are emptied");
            assert_eq!(answer.capacity(), room, "the same map, its room kept");
            assert_eq!(kept(), 0);
            // Nothing kept: a new, empty map.
            assert!(take().is_empty());
        })
        .join()
        .expect("test thread");
    }

    #[test]
    fn empty_big_and_surplus_maps_are_freed() {
        std::thread::spawn(|| {
            give_back(HeaderMap::new());
            assert_eq!(kept(), 0, "a map with no room is not kept");
            let mut big = HeaderMap::with_capacity(KEEP_MAX + 1);
            big.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
            give_back(big);
            assert_eq!(kept(), 0, "a map grown past KEEP_MAX is freed");
            for _ in 0..KEEP + 5 {
                let mut map = HeaderMap::new();
                map.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
                give_back(map);
            }
            assert_eq!(kept(), KEEP);
        })
        .join()
        .expect("test thread");
    }
}
