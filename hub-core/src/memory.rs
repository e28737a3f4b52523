//! Resident memory as koji measures it: resident minus shared pages from `/proc/self/statm`.
//!
//! Each thread keeps `/proc/self/statm` open and re-reads it with one `pread` at offset 0
//! (procfs regenerates the text), so a sample costs one system call — about 0.5–0.8 µs here,
//! as much as the rest of a small call. So the watch does not read it twice per call as koji
//! does; it reads it when a call could have mattered:
//! - **before**: [`recent_kib`] answers the process's last sample if it is under
//!   [`SAMPLE_MAX_AGE`] old, and reads a fresh one otherwise (at most ~1,000 reads a second,
//!   whatever the call rate);
//! - **after**: only for a call that ran at least [`min_growth_time`] — the least time in which
//!   a thread can make that much memory resident. A shorter call cannot have grown the process
//!   by the threshold, so it needs no sample.
//!
//! The page size comes once from the auxiliary vector (`AT_PAGESZ` in `/proc/self/auxv`).
//! Elsewhere than Linux, or if procfs is missing, samples are `None` and the watch stays
//! silent.

use std::cell::RefCell;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

thread_local! {
    static STATM: RefCell<Option<File>> = const { RefCell::new(None) };
}

/// How old the process's last sample may be and still serve as a call's "before".
pub(crate) const SAMPLE_MAX_AGE: Duration = Duration::from_millis(1);

/// Nanoseconds per KiB of the fastest first touch assumed possible: 4 ns/KiB is ~250 GB/s,
/// several times what page-faulting fresh memory reaches on current machines (a few GB/s per
/// thread; zeroing alone is bounded by memory bandwidth).
const FIRST_TOUCH_NS_PER_KIB: u64 = 4;

/// The least time a call needs to make `kib` KiB newly resident (see [`FIRST_TOUCH_NS_PER_KIB`]).
pub(crate) fn min_growth_time(kib: u64) -> Duration {
    Duration::from_nanos(kib.saturating_mul(FIRST_TOUCH_NS_PER_KIB))
}

/// A last sample and when it was taken, shared by the threads of a process.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    /// KiB + 1 (0: none yet).
    kib: AtomicU64,
    at_ns: AtomicU64,
}

/// The process's last sample.
static PROCESS: Recent = Recent {
    kib: AtomicU64::new(0),
    at_ns: AtomicU64::new(0),
};

fn nanos_since_origin(now: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

/// Resident minus shared memory as of at most [`SAMPLE_MAX_AGE`] before `now`.
pub(crate) fn recent_kib(now: Instant) -> Option<u64> {
    PROCESS.recent(now, resident_unshared_kib)
}

/// A fresh sample, also kept as the process's last one.
pub(crate) fn fresh_kib(now: Instant) -> Option<u64> {
    PROCESS.fresh(now, resident_unshared_kib)
}

impl Recent {
    fn recent(&self, now: Instant, sample: impl FnOnce() -> Option<u64>) -> Option<u64> {
        let last = self.kib.load(Relaxed);
        let age = nanos_since_origin(now).saturating_sub(self.at_ns.load(Relaxed));
        if last > 0 && age < SAMPLE_MAX_AGE.as_nanos() as u64 {
            return Some(last - 1);
        }
        self.fresh(now, sample)
    }

    fn fresh(&self, now: Instant, sample: impl FnOnce() -> Option<u64>) -> Option<u64> {
        let kib = sample()?;
        // Two relaxed stores: a reader may pair a new value with an old time (or the
        // reverse), which only makes one "before" slightly older or newer than it says.
        self.kib.store(kib.saturating_add(1), Relaxed);
        self.at_ns.store(nanos_since_origin(now), Relaxed);
        Some(kib)
    }
}

/// Resident minus shared memory of the process, in KiB.
fn resident_unshared_kib() -> Option<u64> {
    let mut buf = [0u8; 128];
    let n = STATM.with(|cell| {
        let mut file = cell.borrow_mut();
        if file.is_none() {
            *file = File::open("/proc/self/statm").ok();
        }
        read_at_start(file.as_ref()?, &mut buf)
    })?;
    // size resident shared text lib data dt, in pages
    let mut fields = buf[..n]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .skip(1);
    let resident = parse_u64(fields.next()?)?;
    let shared = parse_u64(fields.next()?)?;
    Some(resident.saturating_sub(shared) * page_size() / 1024)
}

/// A decimal number of ASCII digits (no sign, no allocation).
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?
    })
}

#[cfg(unix)]
fn read_at_start(file: &File, buf: &mut [u8]) -> Option<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, 0).ok()
}

#[cfg(not(unix))]
fn read_at_start(_file: &File, _buf: &mut [u8]) -> Option<usize> {
    None
}

/// The page size in bytes (4096 if the auxiliary vector cannot be read).
fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        const AT_PAGESZ: u64 = 6;
        let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
        auxv.chunks_exact(16)
            .find_map(|pair| {
                let word = |b: &[u8]| b.try_into().ok().map(u64::from_ne_bytes);
                (word(&pair[..8])? == AT_PAGESZ).then(|| word(&pair[8..]))?
            })
            .filter(|&p| p.is_power_of_two())
            .unwrap_or(4096)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn samples_grow_with_touched_memory() {
        assert!(page_size() >= 4096);
        let before = resident_unshared_kib().expect("procfs");
        let block = vec![1u8; 16 << 20];
        let after = resident_unshared_kib().expect("procfs");
        assert!(after >= before + 8 * 1024, "{before} -> {after}");
        drop(block);
    }

    #[test]
    fn recent_samples_are_reused_only_while_young() {
        let recent = Recent::default();
        nanos_since_origin(Instant::now()); // the origin precedes t0
        let t0 = Instant::now();
        assert_eq!(
            recent.recent(t0, || Some(100)),
            Some(100),
            "none yet: sampled"
        );
        // Within the age limit the last sample answers and nothing is read.
        assert_eq!(recent.recent(t0, || panic!("read")), Some(100));
        let almost = t0 + SAMPLE_MAX_AGE - Duration::from_nanos(1);
        assert_eq!(recent.recent(almost, || panic!("read")), Some(100));
        // Past it, a fresh one is read and kept.
        assert_eq!(recent.recent(t0 + SAMPLE_MAX_AGE, || Some(200)), Some(200));
        assert_eq!(
            recent.recent(t0 + SAMPLE_MAX_AGE, || panic!("read")),
            Some(200)
        );
        // A fresh sample always reads.
        assert_eq!(recent.fresh(t0 + SAMPLE_MAX_AGE, || Some(300)), Some(300));
        // No procfs: nothing kept, the next call tries again.
        let none = Recent::default();
        assert_eq!(none.recent(t0, || None), None);
        assert_eq!(none.recent(t0, || Some(7)), Some(7));
    }

    #[test]
    fn growth_takes_time() {
        // 5000 KiB (koji's default threshold) cannot become resident in under 20 µs.
        assert_eq!(min_growth_time(5000), Duration::from_micros(20));
        assert_eq!(min_growth_time(0), Duration::ZERO);
        assert_eq!(min_growth_time(u64::MAX), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn parses_digits_only() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"123456"), Some(123_456));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"12a"), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
    }
}
