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
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut len = 0usize;
    while !body.is_end_stream() {
        let Some(frame) = body.frame().await else {
            break;
        };
        let Ok(data) = frame.map_err(|_| BodyError::Unreadable)?.into_data() else {
            continue;
        };
        len = len.saturating_add(data.len());
        if len > max {
            return Err(BodyError::TooLarge);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            earlier => {
                if let Some(earlier) = earlier {
                    joined.reserve(body.size_hint().lower().try_into().unwrap_or(0));
                    joined.extend_from_slice(&earlier);
                }
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(match first {
        Some(only) => only,
        None => Bytes::from(joined),
    })
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
