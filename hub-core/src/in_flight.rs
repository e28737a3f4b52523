//! A method's own limit on its calls at once (`max_in_flight`): past it, a call is refused at
//! once (`503` + `Retry-After`, [`Refusal::MethodBusy`]; in a multicall, that entry's fault)
//! instead of waiting for a worker, so one slow method (a report over every build) cannot hold
//! every worker while the quick ones queue behind it.
//!
//! A call holds its place from when it is admitted until its handler returns: an async one
//! until its future ends or is dropped (over its budget, its client gone), a blocking one until
//! its worker is done with it, even if its caller stopped waiting (the work still runs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::queue::Refusal;

/// The calls of one method running now, and how many may.
#[derive(Debug)]
pub(crate) struct InFlightLimit {
    limit: usize,
    now: AtomicUsize,
}

/// One call's place among its method's calls at once, given back when dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<InFlightLimit>);

impl InFlightLimit {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            now: AtomicUsize::new(0),
        })
    }

    /// The calls holding a place now.
    pub(crate) fn now(&self) -> usize {
        self.now.load(Ordering::Relaxed)
    }

    /// A place for one more call, or [`Refusal::MethodBusy`] if all are taken.
    pub(crate) fn enter(self: &Arc<Self>) -> Result<InFlight, Refusal> {
        if self.now.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.now.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::MethodBusy);
        }
        Ok(InFlight(Arc::clone(self)))
    }
}

/// Appends to `/metrics` the places in use and the limit of each method that has one, so an
/// operator sees a method at its limit before its refusals (`hub_method_limit_refusals_total`)
/// say so. `limited` holds each method once, by its own name.
pub(crate) fn write_prometheus<'a>(
    out: &mut String,
    limited: impl Iterator<Item = (&'a str, &'a InFlightLimit)>,
) {
    use std::fmt::Write as _;
    let mut limited: Vec<_> = limited.collect();
    if limited.is_empty() {
        return;
    }
    limited.sort_unstable_by_key(|(name, _)| *name);
    type Read = fn(&InFlightLimit) -> usize;
    let gauges: [(&str, Read); 2] = [
        ("hub_method_in_flight", InFlightLimit::now),
        ("hub_method_max_in_flight", |limit| limit.limit),
    ];
    for (gauge, value) in gauges {
        let _ = writeln!(out, "# TYPE {gauge} gauge");
        for (name, limit) in &limited {
            let name = crate::stats::escape(name);
            let _ = writeln!(out, "{gauge}{{method=\"{name}\"}} {}", value(limit));
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_up_to_the_limit_and_given_back() {
        let limit = InFlightLimit::new(2);
        let a = limit.enter().expect("first");
        let b = limit.enter().expect("second");
        assert_eq!(limit.enter().err(), Some(Refusal::MethodBusy));
        drop(a);
        let c = limit.enter().expect("a place given back");
        assert_eq!(limit.enter().err(), Some(Refusal::MethodBusy));
        drop((b, c));
        assert_eq!(limit.now.load(Ordering::Relaxed), 0);
    }
}
