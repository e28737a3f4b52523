//! Resident memory as koji measures it: resident minus shared pages from `/proc/self/statm`.
//!
//! Each thread keeps `/proc/self/statm` open and re-reads it with one `pread` at offset 0
//! (procfs regenerates the text), so a sample costs one system call. The page size comes once
//! from the auxiliary vector (`AT_PAGESZ` in `/proc/self/auxv`). Elsewhere than Linux, or if
//! procfs is missing, samples are `None` and the watch stays silent.

use std::cell::RefCell;
use std::fs::File;
use std::sync::OnceLock;

thread_local! {
    static STATM: RefCell<Option<File>> = const { RefCell::new(None) };
}

/// Resident minus shared memory of the process, in KiB.
pub(crate) fn resident_unshared_kib() -> Option<u64> {
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
    fn parses_digits_only() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"123456"), Some(123_456));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"12a"), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
    }
}
