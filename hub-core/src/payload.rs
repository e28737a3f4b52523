//! The body of every response: a shared text (`/metrics`, a status page) or an encoded answer
//! in the buffer it was written into.
//!
//! Answer buffers are reused on the thread that wrote them: hyper drops a response's body on
//! the unit that serves its connection once it is written, which puts the buffer back for the
//! next answer there, so a call's answer costs no allocation and no free (a kept buffer is
//! emptied first; one grown past [`KEEP_MAX`] by a big answer is freed instead).

use std::cell::RefCell;

use bytes::{Buf, Bytes};

/// The size an answer buffer starts at: room for a small struct answer (a koji build is ~700
/// bytes) without growing, each growth being an allocation and a copy.
const START: usize = 1024;

/// Buffers larger than this are not kept.
const KEEP_MAX: usize = 16 * 1024;

/// Buffers kept per thread at most (one per answer being written at once; a unit writes one
/// at a time per connection).
const KEEP: usize = 16;

thread_local! {
    static KEPT: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// The bytes of a response body. (`Bytes::from` a `Vec` whose capacity exceeds its length
/// allocates a shared header: an answer keeps its `Vec`.)
#[derive(Debug)]
pub(crate) enum Payload {
    Shared(Bytes),
    Owned { buf: Vec<u8>, pos: usize },
}

impl Payload {
    /// An answer written by `write` into a buffer kept on this thread (or a new one).
    pub(crate) fn answer(write: impl FnOnce(&mut Vec<u8>)) -> Self {
        let mut buf = KEPT
            .try_with(|kept| kept.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| Vec::with_capacity(START));
        write(&mut buf);
        Payload::Owned { buf, pos: 0 }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        let Payload::Owned { buf, .. } = self else {
            return;
        };
        if buf.capacity() == 0 || buf.capacity() > KEEP_MAX {
            return;
        }
        let mut buf = std::mem::take(buf);
        buf.clear();
        // A thread being torn down has no place to keep it: it is freed.
        let _ = KEPT.try_with(|kept| {
            let mut kept = kept.borrow_mut();
            if kept.len() < KEEP {
                kept.push(buf);
            }
        });
    }
}

impl Buf for Payload {
    fn remaining(&self) -> usize {
        match self {
            Payload::Shared(b) => b.len(),
            Payload::Owned { buf, pos } => buf.len().saturating_sub(*pos),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            Payload::Shared(b) => b,
            Payload::Owned { buf, pos } => buf.get(*pos..).unwrap_or_default(),
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Payload::Shared(b) => b.advance(n),
            Payload::Owned { buf, pos } => *pos = pos.saturating_add(n).min(buf.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_reads_out_whole() {
        for mut p in [
            Payload::Shared(Bytes::from_static(b"hello")),
            Payload::answer(|out| out.extend_from_slice(b"hello")),
        ] {
            assert_eq!(p.remaining(), 5);
            assert_eq!(p.chunk(), b"hello");
            p.advance(2);
            assert_eq!((p.remaining(), p.chunk()), (3, &b"llo"[..]));
            p.advance(3);
            assert_eq!((p.remaining(), p.chunk()), (0, &b""[..]));
        }
    }

    #[test]
    fn answer_buffers_are_reused_empty_and_big_ones_freed() {
        std::thread::spawn(|| {
            let first = Payload::answer(|out| out.extend_from_slice(b"first answer"));
            let Payload::Owned { buf, .. } = &first else {
                panic!("an answer owns its buffer")
            };
            let at = buf.as_ptr();
            drop(first);
            // The same allocation comes back, empty.
            let second = Payload::answer(|out| {
                assert!(out.is_empty());
                out.extend_from_slice(b"2nd");
            });
            match &second {
                Payload::Owned { buf, .. } => {
                    assert_eq!((buf.as_ptr(), &buf[..]), (at, &b"2nd"[..]));
                }
                Payload::Shared(_) => panic!("an answer owns its buffer"),
            }
            drop(second);
            assert_eq!(KEPT.with(|k| k.borrow().len()), 1);
            // An answer that grew past the limit (in the kept buffer it took) is not kept.
            let big = Payload::answer(|out| out.resize(KEEP_MAX + 1, b'x'));
            drop(big);
            assert_eq!(KEPT.with(|k| k.borrow().len()), 0, "a big buffer is freed");
            // At most KEEP are kept, however many answers are dropped at once.
            let many: Vec<_> = (0..KEEP + 5).map(|_| Payload::answer(|_| {})).collect();
            drop(many);
            assert_eq!(KEPT.with(|k| k.borrow().len()), KEEP);
        })
        .join()
        .expect("test thread");
    }
}
