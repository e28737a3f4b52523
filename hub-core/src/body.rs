//! Reading a request body whole, within a size limit.

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
}

/// Reads `body` to its end, refusing it as soon as it passes `max` bytes.
///
/// A body that arrives in one frame (a small request: hyper hands over the bytes it already
/// buffered) is returned as that frame: no copy, no allocation, and no extra poll once the
/// declared length is reached. Trailers are ignored.
pub(crate) async fn read_to_end<B>(mut body: B, max: usize) -> Result<Bytes, BodyError>
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
        read.push(data, rest);
    }
    Ok(read.finish())
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
    fn push(&mut self, data: Bytes, rest: usize) {
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
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(read_to_end(body, max))
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
        for part in parts {
            rest -= part.len();
            frames.push(Bytes::from_static(part), rest);
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
