//! Eight bytes at a time: tests on a `u64` word that tell whether any of its bytes is one the
//! text loops must look at, so runs of ordinary text are skipped a word per step instead of a
//! byte per step (escaping and scanning strings was a third of the server's time on 10 KiB
//! strings). Exact in the "any byte" sense; which byte is left to the byte loops.
//!
//! Long text goes a [`BLOCK`] at a time first: the block tests are plain loops over a
//! fixed-size array, which the compiler turns into a few vector compares (SSE2 is part of
//! every x86_64), so a 1 MiB string is scanned in a fraction of the word steps' time without
//! `unsafe` intrinsics.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Bytes per step of the long-text scans.
pub(crate) const BLOCK: usize = 64;

/// Bytes of a text taken in word steps before the scans try blocks.
pub(crate) const WORDS_FIRST: usize = 16;

/// The [`BLOCK`] bytes at `i`, if there are that many.
#[inline(always)]
pub(crate) fn block(b: &[u8], i: usize) -> Option<&[u8; BLOCK]> {
    b.get(i..)?.first_chunk::<BLOCK>()
}

/// The block step of a text loop at `i`: `Some(i + BLOCK)` past a block in which `holds`
/// finds nothing; `None` to take word steps instead — before `words_until`, through a block
/// that holds something (moving `words_until` to its end), and in the tail.
#[inline(always)]
pub(crate) fn block_step(
    b: &[u8],
    i: usize,
    words_until: &mut usize,
    holds: impl Fn(&[u8; BLOCK]) -> bool,
) -> Option<usize> {
    if i < *words_until {
        return None;
    }
    match block(b, i) {
        Some(k) if !holds(k) => Some(i + BLOCK),
        Some(_) => {
            *words_until = i + BLOCK;
            None
        }
        None => {
            *words_until = usize::MAX;
            None
        }
    }
}

/// Whether any byte of `block` is `<`, `&` or a control character (the text scan's stops).
#[inline(always)]
pub(crate) fn block_has_text_work(block: &[u8; BLOCK]) -> bool {
    // `|` and `fold`, not `any`: no early exit, so the loop is one vector expression.
    block.iter().fold(false, |hit, &c| {
        hit | (c == b'<') | (c == b'&') | (c < 0x20)
    })
}

/// Whether any byte of `block` is one `escape` rewrites or looks at (`&`, `<`, `>`, a control,
/// [`NONCHAR_LEAD`]).
#[inline(always)]
pub(crate) fn block_needs_escape(block: &[u8; BLOCK]) -> bool {
    block.iter().fold(false, |hit, &c| {
        hit | (c == b'&') | (c == b'<') | (c == b'>') | (c < 0x20) | (c == NONCHAR_LEAD)
    })
}

/// The first byte of U+FFFE and U+FFFF in UTF-8 (`EF BF BE`, `EF BF BF`), which XML cannot
/// carry either: `escape` looks at every such byte (it also leads U+F000–U+FFFD, rare in text).
pub(crate) const NONCHAR_LEAD: u8 = 0xEF;

/// The eight bytes at `i`, if there are eight.
#[inline(always)]
pub(crate) fn word(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// A word holding every one of the fewer than eight bytes from `i` to the end (some of them
/// twice) and otherwise `pad` (a byte no test looks for), so that a short string or a
/// string's tail is tested in one step too. For the "any byte" tests only: the bytes are not
/// in their places. Built from overlapping loads, not a copy of a variable length (which is a
/// call to `memcpy`, as much as the test itself for a short string).
#[inline(always)]
pub(crate) fn tail_word(b: &[u8], i: usize, pad: u8) -> u64 {
    let rest = b.get(i..).unwrap_or_default();
    let pads = ONES * u64::from(pad);
    let n = rest.len();
    match (rest.first_chunk::<4>(), rest.last_chunk::<4>()) {
        // Four to seven bytes: two overlapping halves.
        (Some(lo), Some(hi)) if n < 8 => {
            u64::from(u32::from_le_bytes(*lo)) | u64::from(u32::from_le_bytes(*hi)) << 32
        }
        // Eight and more: the first eight.
        (Some(_), _) => word(rest, 0).unwrap_or(pads),
        // One to three bytes: the first, the middle and the last hold all of them.
        _ => match (rest.first(), rest.get(n / 2), rest.last()) {
            (Some(&a), Some(&m), Some(&z)) => {
                u64::from(a) | u64::from(m) << 8 | u64::from(z) << 16 | pads << 24
            }
            _ => pads,
        },
    }
}

/// Whether `b` is at most 16 bytes long and holds nothing `escape` rewrites (`&`, `<`, `>`,
/// a control character, [`NONCHAR_LEAD`]; tab and newline count as controls here): its first and last eight
/// bytes (overlapping), or for fewer than eight the [`tail_word`], tested in one expression
/// without branches.
#[inline(always)]
pub(crate) fn short_is_plain(b: &[u8]) -> bool {
    let n = b.len();
    let hits = match (word(b, 0), n.checked_sub(8).and_then(|at| word(b, at))) {
        (Some(lo), Some(hi)) if n <= 16 => escape_hits(lo) | escape_hits(hi),
        (None, _) if n > 0 => escape_hits(tail_word(b, 0, b'a')),
        _ => return n == 0,
    };
    hits == 0
}

/// Whether `x` holds a byte `escape` rewrites or looks at: `&`, `<`, `>`, a control
/// character (tab and newline included) or [`NONCHAR_LEAD`].
#[inline(always)]
pub(crate) fn needs_escape(x: u64) -> bool {
    escape_hits(x) != 0
}

/// The high bit of each byte of `x` that is `&`, `<`, `>`, a control character or
/// [`NONCHAR_LEAD`] (and possibly of bytes above one that is). `<` (0x3C) and `>` (0x3E) are
/// the two bytes that become 0x3E when bit 1 is set, so one test finds both.
#[inline(always)]
fn escape_hits(x: u64) -> u64 {
    byte_hits(x, b'&')
        | byte_hits(x | (ONES * 0x02), b'>')
        | control_hits(x)
        | byte_hits(x, NONCHAR_LEAD)
}

/// The text scan's word test: `Some(n)` when the first byte of `x` that is `<` comes `n`
/// bytes in and no `&` or control character comes before it; `None` when the word has no
/// `<`, or has something to look at before it (the caller takes the word a byte at a time,
/// or skips it whole if [`text_work_or_lt`] finds nothing). The lowest hit of each test is
/// exact (a false hit only ever sits above a true one), which is all this reads.
#[inline(always)]
pub(crate) fn text_ends_plain(x: u64) -> Option<usize> {
    let lt = byte_hits(x, b'<');
    let work = byte_hits(x, b'&') | control_hits(x);
    // The bits below the first `<`'s high bit.
    let before = (lt & lt.wrapping_neg()).wrapping_sub(1);
    (lt != 0 && work & before == 0).then(|| lt.trailing_zeros() as usize / 8)
}

/// Whether `x` holds `<`, `&` or a control character: what ends or interrupts plain text.
#[inline(always)]
pub(crate) fn text_work_or_lt(x: u64) -> bool {
    byte_hits(x, b'<') | byte_hits(x, b'&') | control_hits(x) != 0
}

/// The high bit of each byte of `x` that is `b` (and possibly of bytes above one that is).
#[inline(always)]
fn byte_hits(x: u64, b: u8) -> u64 {
    let y = x ^ (ONES * u64::from(b));
    y.wrapping_sub(ONES) & !y & HIGHS
}

/// The high bit of each byte of `x` below 0x20 (and possibly of bytes above one that is).
#[inline(always)]
fn control_hits(x: u64) -> u64 {
    x.wrapping_sub(ONES * 0x20) & !x & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether any byte of `x` is `b` (the hit masks read as "any").
    fn has_byte(x: u64, b: u8) -> bool {
        byte_hits(x, b) != 0
    }

    /// Whether any byte of `x` is below 0x20.
    fn has_control(x: u64) -> bool {
        control_hits(x) != 0
    }

    #[test]
    fn blocks_find_every_byte_in_every_position() {
        for pos in 0..BLOCK {
            for v in 0..=255u8 {
                let mut bytes = [b'a'; BLOCK];
                bytes[pos] = v;
                let text = v == b'<' || v == b'&' || v < 0x20;
                assert_eq!(block_has_text_work(&bytes), text, "{v} at {pos}");
                assert_eq!(
                    block_needs_escape(&bytes),
                    text || v == b'>' || v == NONCHAR_LEAD,
                    "{v} at {pos}"
                );
            }
        }
        let b = [b'x'; BLOCK + 8];
        assert_eq!(block(&b, 8).map(|k| k.len()), Some(BLOCK));
        assert_eq!(block(&b, 9), None);
        assert_eq!(block(&b, BLOCK + 9), None);
    }

    #[test]
    fn every_byte_in_every_position() {
        for pos in 0..8 {
            for v in 0..=255u8 {
                let mut bytes = [b'a'; 8];
                bytes[pos] = v;
                let x = u64::from_le_bytes(bytes);
                assert_eq!(has_byte(x, b'<'), v == b'<', "{v} at {pos}");
                assert_eq!(has_byte(x, b'&'), v == b'&', "{v} at {pos}");
                assert_eq!(has_control(x), v < 0x20, "{v} at {pos}");
            }
        }
        // Several hits and neighbours that borrow: still exact.
        let x = u64::from_le_bytes([0x00, 0x20, 0x1f, 0x21, b'<', b'=', 0x80, 0xff]);
        assert!(has_control(x) && has_byte(x, b'<') && !has_byte(x, b'&'));
        let x = u64::from_le_bytes([0x20, 0x21, 0x80, 0xff, 0x7f, b'=', b';', b'%']);
        assert!(!has_control(x) && !has_byte(x, b'<') && !has_byte(x, b'&'));
        assert_eq!(word(b"1234567", 0), None);
        assert_eq!(word(b"12345678", 0), Some(u64::from_le_bytes(*b"12345678")));
        assert_eq!(word(b"12345678", usize::MAX), None);
        assert_eq!(tail_word(b"xy", 2, b'a'), u64::from_le_bytes(*b"aaaaaaaa"));
        assert_eq!(tail_word(b"xy", 9, b'a'), u64::from_le_bytes(*b"aaaaaaaa"));
    }

    #[test]
    fn the_text_scan_word_test_matches_the_byte_rule_for_every_pair() {
        // Plain text ends at the first `<`, unless `&` or a control comes first.
        let reference = |w: &[u8; 8]| -> Option<usize> {
            for (k, &c) in w.iter().enumerate() {
                if c == b'<' {
                    return Some(k);
                }
                if c == b'&' || c < 0x20 {
                    return None;
                }
            }
            None
        };
        // Two bytes at every pair of positions: the ones the test looks for and neighbours
        // that borrow or sit one bit away.
        let bytes = [
            b'x', b'<', b'&', b'\n', b'\t', 0x00, 0x1f, 0x20, b'=', b'>', b';', b'%', 0x7f, 0x80,
            0xbc, 0xff,
        ];
        for i in 0..8 {
            for j in 0..8 {
                for &a in &bytes {
                    for &c in &bytes {
                        let mut w = [b'x'; 8];
                        w[i] = a;
                        w[j] = c;
                        let x = u64::from_le_bytes(w);
                        assert_eq!(text_ends_plain(x), reference(&w), "{w:?}");
                        let any = w.iter().any(|&c| c == b'<' || c == b'&' || c < 0x20);
                        assert_eq!(text_work_or_lt(x), any, "{w:?}");
                        let escape = any || w.contains(&b'>');
                        assert_eq!(needs_escape(x), escape, "{w:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_tail_word_holds_every_byte_of_the_tail_and_nothing_else() {
        for n in 0..8 {
            for pos in 0..n {
                for v in 0..=255u8 {
                    let mut bytes = vec![b'q'; n + 3];
                    bytes[3 + pos] = v;
                    let x = tail_word(&bytes, 3, b'a');
                    let tail = &bytes[3..];
                    for probe in [v, b'q', b'a', b'<', 0x00] {
                        // The pad shows only in a word of one to three bytes.
                        let expected = tail.contains(&probe) || (probe == b'a' && n < 4);
                        assert_eq!(has_byte(x, probe), expected, "{v} at {pos} of {n}, {probe}");
                    }
                    assert_eq!(
                        has_control(x),
                        tail.iter().any(|&c| c < 0x20),
                        "{v} at {pos} of {n}"
                    );
                }
            }
        }
        assert_eq!(
            tail_word(b"12345678", 0, b'a'),
            u64::from_le_bytes(*b"12345678")
        );
    }
}
