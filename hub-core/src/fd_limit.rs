//! The open-file limit. Every connection is a descriptor, and the usual soft limit is 1024,
//! so a server configured for `max_connections = 100_000` would fail `accept` long before
//! that. At start the soft limit is raised toward the hard limit, as far as the configuration
//! can use (Go's runtime raises it for every program); if even the hard limit is short, the
//! log says so (at `info`: the default `max_connections` is above many machines' hard limit,
//! and that is no fault of the configuration). The limit is never lowered.

/// Descriptors beyond the connections: the listener, each unit's epoll and wake-up
/// descriptors, `/proc/self/statm` per thread, files the handlers open.
const SPARE: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` toward `max_connections` plus spares; returns the soft
/// limit in force afterwards (`None` where there is no such limit or it cannot be read).
#[cfg(unix)]
#[allow(unsafe_code)]
#[allow(clippy::unnecessary_cast)] // `rlim_t` is `u64` on Linux, not on every unix
pub(crate) fn raise_for(max_connections: usize) -> Option<u64> {
    let wanted = (max_connections as u64).saturating_add(SPARE);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let before = lim.rlim_cur as u64;
    if before < wanted && lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: (wanted as libc::rlim_t).min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the valid struct it is given; raising the soft limit up to
        // the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    let now = lim.rlim_cur as u64;
    if now != before {
        tracing::info!(from = before, to = now, "raised the open-file soft limit");
    }
    if now < wanted {
        tracing::info!(
            limit = now,
            max_connections,
            "the open-file limit is below max_connections: accepts fail (and are retried) \
             past about that many connections"
        );
    }
    Some(now)
}

#[cfg(not(unix))]
pub(crate) fn raise_for(_max_connections: usize) -> Option<u64> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code, clippy::unnecessary_cast)]
    fn raises_the_soft_limit_as_far_as_allowed_and_never_lowers_it() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let (soft, hard) = (lim.rlim_cur as u64, lim.rlim_max as u64);
        // A tiny configuration needs nothing: the limit stays.
        assert_eq!(raise_for(1), Some(soft.max((1 + SPARE).min(hard))));
        // A huge one gets the hard limit.
        assert_eq!(raise_for(usize::MAX), Some(hard));
        // And a small one afterwards does not lower it.
        assert_eq!(raise_for(1), Some(hard));
    }
}
