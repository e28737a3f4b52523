//! Reading a request body whole, within a size limit and the server's budget for bodies held
//! at once.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the limit (`413`).
    TooLarge,
    /// The connection failed or the client broke the framing (`400`).
    Unreadable,
    /// Holding it would pass `max_body_bytes_held` (`503`).
    Busy,
}

/// A request's share of the bytes of request bodies held across the server, counted in the
/// `body_bytes_held` gauge against `max_body_bytes_held`; given back when dropped (the
/// request done).
///
/// A body that comes whole with its head is not counted: it sits in hyper's read buffer,
/// which every connection has anyway. One still on the wire holds its declared length (the
/// buffer is sized for it), a chunked one what has arrived.
pub(crate) struct Held<'a> {
    gauge: &'a AtomicU64,
    limit: u64,
    bytes: u64,
}

impl<'a> Held<'a> {
    /// Nothing held yet, against `limit` bytes in all.
    pub(crate) fn new(gauge: &'a AtomicU64, limit: usize) -> Self {
        Self {
            gauge,
            limit: limit as u64,
            bytes: 0,
        }
    }

    /// Holds `total` bytes for this request (no less than before); `Busy`, with nothing
    /// changed, if the server would then hold more than its limit.
    pub(crate) fn grow_to(&mut self, total: usize) -> Result<(), BodyError> {
        let extra = (total as u64).saturating_sub(self.bytes);
        if extra == 0 {
            return Ok(());
        }
        let before = self.gauge.fetch_add(extra, Relaxed);
        if before.saturating_add(extra) > self.limit {
            // Given back at once; a reservation racing this one may see the overshoot and be
            // refused too, which errs on the side of memory.
            self.gauge.fetch_sub(extra, Relaxed);
            return Err(BodyError::Busy);
        }
        self.bytes += extra;
        Ok(())
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.gauge.fetch_sub(self.bytes, Relaxed);
        }
    }
}

/// Reads `body` to its end, refusing it as soon as it passes `max` bytes, or when `held`
/// cannot grow to hold it.
///
/// A body that arrives in one frame (a small request: hyper hands over the bytes it already
/// buffered) is returned as that frame: no copy, no allocation, and no extra poll once the
/// declared length is reached. Trailers are ignored.
pub(crate) async fn read_to_end<B>(
    mut body: B,
    max: usize,
    held: &mut Held<'_>,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut read = Received::default();
    while !body.is_end_stream() {
        let Some(frame) = body.frame().await else {
            break;
        };
        let Ok(data) = frame.map_err(|_| BodyError::Unreadable)?.into_data() else {
            continue;
        };
        let Some(room) = max.checked_sub(read.len.saturating_add(data.len())) else {
            return Err(BodyError::TooLarge);
        };
        // What the body says is still to come (its declared length; 0 when chunked), within
        // the limit.
        let rest = usize::try_from(body.size_hint().lower()).map_or(room, |rest| rest.min(room));
        read.push(data, rest, held)?;
    }
    Ok(read.finish())
}

/// Drops `body` if all of it arrives within `patience`: whether it did (then the connection
/// can serve the client's next request). A body declared longer than `max`, or that passes
/// it, is not read on: `false`. (hyper hands a body over a read at a time, ~8 KiB; the rest
/// of one sent with its head is in the socket already and comes as soon as it is asked for.)
pub(crate) async fn discard_arrived<B>(body: &mut B, max: usize, patience: Duration) -> bool
where
    B: Body<Data = Bytes> + Unpin + ?Sized,
{
    if body.size_hint().lower() > max as u64 {
        return false;
    }
    let mut seen = 0usize;
    let whole = std::future::poll_fn(|cx| loop {
        if body.is_end_stream() {
            return std::task::Poll::Ready(true);
        }
        match std::pin::Pin::new(&mut *body).poll_frame(cx) {
            std::task::Poll::Ready(None) => return std::task::Poll::Ready(true),
            std::task::Poll::Ready(Some(Ok(frame))) => {
                seen = seen.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                if seen > max {
                    return std::task::Poll::Ready(false);
                }
            }
            std::task::Poll::Ready(Some(Err(_))) => return std::task::Poll::Ready(false),
            std::task::Poll::Pending => return std::task::Poll::Pending,
        }
    });
    // Still on the wire after that: not waited for.
    tokio::time::timeout(patience, whole).await.unwrap_or(false)
}

/// The frames read so far: the first as it came, later ones joined in one buffer.
#[derive(Default)]
struct Received {
    first: Option<Bytes>,
    joined: Vec<u8>,
    len: usize,
}

impl Received {
    /// Adds `data`, with `rest` more bytes announced. The buffer is sized for the whole
    /// body when the second frame comes, so a body of declared length is copied once and
    /// never moved by a growing buffer (a 1 MiB body used to be copied again near its end).
    fn push(&mut self, data: Bytes, rest: usize, held: &mut Held<'_>) -> Result<(), BodyError> {
        let whole_at_once = self.len == 0 && rest == 0;
        if !whole_at_once {
            held.grow_to(self.len + data.len() + rest)?;
        }
        self.len += data.len();
        match self.first.take() {
            None if self.joined.is_empty() => self.first = Some(data),
            earlier => {
                if let Some(earlier) = earlier {
                    self.joined.reserve(self.len.saturating_add(rest));
                    self.joined.extend_from_slice(&earlier);
                }
                self.joined.extend_from_slice(&data);
            }
        }
        Ok(())
    }

    fn finish(self) -> Bytes {
        match self.first {
            Some(only) => only,
            None => Bytes::from(self.joined),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use hyper::body::Frame;

    use super::*;

    /// A body handing out the given frames, one per poll.
    struct Frames(VecDeque<Result<Frame<Bytes>, &'static str>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    fn data(chunks: &[&'static str]) -> Frames {
        Frames(
            chunks
                .iter()
                .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
                .collect(),
        )
    }

    fn read(body: Frames, max: usize) -> Result<Bytes, BodyError> {
        read_held(body, max, &mut Held::new(&AtomicU64::new(0), usize::MAX))
    }

    fn read_held(body: Frames, max: usize, held: &mut Held<'_>) -> Result<Bytes, BodyError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(read_to_end(body, max, held))
    }

    /// `chunks` as frames of a body that declares their total length.
    struct Declared(Frames, u64);

    impl Body for Declared {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            let frame = Pin::new(&mut self.0).poll_frame(cx);
            if let Poll::Ready(Some(Ok(f))) = &frame {
                self.1 -= f.data_ref().map_or(0, |d| d.len() as u64);
            }
            frame
        }

        fn size_hint(&self) -> hyper::body::SizeHint {
            hyper::body::SizeHint::with_exact(self.1)
        }
    }

    /// `chunks`, then nothing more yet: the rest of the body still on the wire.
    struct Stalled(Frames);

    impl Body for Stalled {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            // Where the frames end, the body does not: nothing more has come yet.
            match Pin::new(&mut self.0).poll_frame(cx) {
                Poll::Ready(None) => Poll::Pending,
                frame => frame,
            }
        }
    }

    /// `chunks` with a pause before each after the first: the rest of a body on its way.
    struct Paced(Frames, bool);

    impl Body for Paced {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            if std::mem::replace(&mut self.1, true) {
                self.1 = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Pin::new(&mut self.0).poll_frame(cx)
        }
    }

    #[test]
    fn only_a_body_arrived_whole_is_discarded() {
        let discard = |body: &mut (dyn Body<Data = Bytes, Error = &'static str> + Unpin),
                       max: usize| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime")
                .block_on(discard_arrived(body, max, Duration::from_millis(20)))
        };
        assert!(discard(&mut data(&["<?xml", " ...", "</methodCall>"]), 64));
        assert!(discard(&mut data(&[]), 0), "an empty body");
        assert!(
            !discard(&mut Stalled(data(&["<?xml", " ..."])), 64),
            "the rest not arrived"
        );
        assert!(
            discard(
                &mut Paced(data(&["<?xml", " ...", "</methodCall>"]), false),
                64
            ),
            "the rest coming as it is asked for"
        );
        assert!(!discard(&mut data(&["0123456789", "abc"]), 12), "past max");
        assert!(
            !discard(&mut Declared(data(&["0123"]), 100), 64),
            "declared longer than max: not read"
        );
        let mut broken = Frames(VecDeque::from([Err("reset")]));
        assert!(!discard(&mut broken, 64), "a broken body");
    }

    #[test]
    fn bodies_still_coming_hold_their_size_against_the_budget_until_done() {
        let gauge = AtomicU64::new(0);
        let run = |body: Declared, held: &mut Held<'_>| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime")
                .block_on(read_to_end(body, 100, held))
        };
        let declared = |parts: &[&'static str]| {
            let total = parts.iter().map(|p| p.len() as u64).sum();
            Declared(data(parts), total)
        };
        // A body whole in its first frame is not counted.
        let mut first = Held::new(&gauge, 10);
        run(declared(&["0123456789abc"]), &mut first).expect("whole");
        assert_eq!(gauge.load(Relaxed), 0);
        // One in two frames holds its declared length from the first.
        let mut second = Held::new(&gauge, 10);
        assert_eq!(
            run(declared(&["0123", "4567"]), &mut second).expect("held"),
            "01234567"
        );
        assert_eq!(gauge.load(Relaxed), 8);
        // A third that would pass the budget is refused, holding nothing.
        let mut third = Held::new(&gauge, 10);
        assert_eq!(
            run(declared(&["012", "345"]), &mut third),
            Err(BodyError::Busy)
        );
        assert_eq!(gauge.load(Relaxed), 8);
        // Given back when the request is done; then it fits.
        drop(second);
        assert_eq!(gauge.load(Relaxed), 0);
        run(declared(&["012", "345"]), &mut third).expect("room again");
        assert_eq!(gauge.load(Relaxed), 6);
        drop((first, third));
        assert_eq!(gauge.load(Relaxed), 0);
        // A chunked body holds what has arrived, from its second frame on.
        let mut chunked = Held::new(&gauge, 10);
        assert_eq!(
            read_held(data(&["0123", "4567", "89ab"]), 100, &mut chunked),
            Err(BodyError::Busy)
        );
        drop(chunked);
        assert_eq!(gauge.load(Relaxed), 0);
    }

    #[test]
    fn one_frame_is_returned_as_it_is() {
        let frame = Bytes::from_static(b"<methodCall/>");
        let body = Frames(VecDeque::from([Ok(Frame::data(frame.clone()))]));
        let got = read(body, 100).expect("read");
        assert_eq!(got, frame);
        assert_eq!(got.as_ptr(), frame.as_ptr(), "no copy");
    }

    #[test]
    fn frames_are_joined_in_order_and_trailers_skipped() {
        let mut body = data(&["<a>", "bc", "</a>"]);
        body.0
            .insert(1, Ok(Frame::trailers(http::HeaderMap::new())));
        assert_eq!(read(body, 9).expect("read"), "<a>bc</a>");
        assert_eq!(read(data(&[]), 0).expect("empty"), "");
    }

    #[test]
    fn a_body_of_declared_length_is_joined_in_one_buffer_of_its_size() {
        let parts: [&'static [u8]; 3] = [
            b"<methodCall>",
            b"<methodName>x",
            b"</methodName></methodCall>",
        ];
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut frames = Received::default();
        let mut rest = total;
        let gauge = AtomicU64::new(0);
        let mut held = Held::new(&gauge, usize::MAX);
        for part in parts {
            rest -= part.len();
            frames
                .push(Bytes::from_static(part), rest, &mut held)
                .expect("within");
        }
        // Sized when the second frame came, for all three: never grown (a growth copies).
        assert_eq!(frames.joined.capacity(), total);
        assert_eq!(frames.finish(), parts.concat());
    }

    #[test]
    fn the_limit_counts_every_frame() {
        assert_eq!(read(data(&["12345", "6789"]), 8), Err(BodyError::TooLarge));
        assert_eq!(read(data(&["123456789"]), 8), Err(BodyError::TooLarge));
        assert_eq!(
            read(data(&["1234", "5678"]), 8).expect("at the limit"),
            "12345678"
        );
    }

    #[test]
    fn a_failed_frame_is_unreadable() {
        let mut body = data(&["12"]);
        body.0.push_back(Err("reset"));
        assert_eq!(read(body, 8), Err(BodyError::Unreadable));
    }
}
