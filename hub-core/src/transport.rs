//! The byte stream under hyper: a TCP socket, or TLS over one (the `tls` feature).
//!
//! A connection's parked wait (`conn.rs`) watches the TCP socket itself, whichever it is;
//! [`Transport::holds_unread`] says when that would miss bytes already taken off the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// One connection's stream.
pub(crate) enum Transport {
    Tcp(TcpStream),
    /// Boxed: rustls's state is a few hundred bytes, and a parked connection's task is as
    /// large as its largest state.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Forwards one `AsyncRead`/`AsyncWrite` call to whichever stream it is.
macro_rules! each {
    ($self:expr, $s:ident => $call:expr) => {
        match $self.get_mut() {
            Transport::Tcp($s) => $call,
            #[cfg(feature = "tls")]
            Transport::Tls($s) => $call,
        }
    };
}

impl Transport {
    /// The TCP socket underneath.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Tcp(s) => s,
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s.get_ref().0,
        }
    }

    /// The TCP socket underneath, for a lingering close (a TLS connection's `close_notify`
    /// was sent by hyper's shutdown).
    pub(crate) fn into_tcp(self) -> TcpStream {
        match self {
            Transport::Tcp(s) => s,
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s.into_inner().0,
        }
    }

    /// Whether bytes already read off the socket wait inside, decrypted and not yet taken: a
    /// wait for the socket to become readable would not see them.
    pub(crate) fn holds_unread(&mut self) -> bool {
        match self {
            Transport::Tcp(_) => false,
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s
                .get_mut()
                .1
                .process_new_packets()
                // A broken session: let hyper read, and meet the error.
                .map_or(true, |state| state.plaintext_bytes_to_read() > 0),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Tcp(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
