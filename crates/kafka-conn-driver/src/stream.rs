//! The transport under the core: a conduit (the runtime's TCP stream, or
//! any byte stream a dialer or the caller supplies) in plaintext or under
//! TLS.

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;

/// What a read or write that failed with `ETIMEDOUT` means on a socket
/// with these options: the peer went silent. Shared by the connection's
/// stream, which puts it in front of the OS's error text.
#[derive(Clone)]
pub(crate) struct Silence(Arc<str>);

impl fmt::Debug for Silence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Silence {
    /// `text` explains a time-out.
    pub(crate) fn new(text: String) -> Self {
        Self(text.into())
    }

    /// The error to report for `e`: `e` itself unless it is a time-out.
    pub(crate) fn explain(&self, e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::TimedOut {
            io::Error::new(io::ErrorKind::TimedOut, format!("{}: {e}", self.0))
        } else {
            e
        }
    }
}

/// Any byte stream a Kafka connection can run over: a Unix socket, an
/// in-memory pipe, a tunnel of your own. Implemented for every
/// `AsyncRead + AsyncWrite + Unpin + Send + 'static` type (futures-io's
/// traits; tokio types need a compat wrapper). See
/// [`connect_over`](crate::connect_over) and
/// [`ConnectConfig::with_dialer`](crate::ConnectConfig::with_dialer).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// The byte stream a connection runs over, below TLS.
pub(crate) enum Conduit<T> {
    /// The runtime's TCP stream. `silence`, when keepalive or
    /// `TCP_USER_TIMEOUT` is on, turns its `ETIMEDOUT` into "the peer
    /// went silent", so the connection's close reason says so.
    Tcp { tcp: T, silence: Option<Silence> },
    /// A stream a dialer returned or the caller handed over.
    Other(Box<dyn Transport>),
}

impl<T: fmt::Debug> fmt::Debug for Conduit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conduit::Tcp { tcp, silence } => f
                .debug_struct("Tcp")
                .field("tcp", tcp)
                .field("silence", silence)
                .finish(),
            Conduit::Other(_) => f.write_str("Other(..)"),
        }
    }
}

impl<T> Conduit<T> {
    pub(crate) fn tcp(tcp: T, silence: Option<Silence>) -> Self {
        Conduit::Tcp { tcp, silence }
    }
}

/// Explains a time-out when the socket has silence detection on.
pub(crate) fn explained<V>(
    silence: &Option<Silence>,
    r: Poll<io::Result<V>>,
) -> Poll<io::Result<V>> {
    match (r, silence) {
        (Poll::Ready(Err(e)), Some(s)) => Poll::Ready(Err(s.explain(e))),
        (r, _) => r,
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Conduit<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conduit::Tcp { tcp, silence } => explained(silence, Pin::new(tcp).poll_read(cx, buf)),
            Conduit::Other(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Conduit<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conduit::Tcp { tcp, silence } => explained(silence, Pin::new(tcp).poll_write(cx, buf)),
            Conduit::Other(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conduit::Tcp { tcp, silence } => {
                explained(silence, Pin::new(tcp).poll_write_vectored(cx, bufs))
            }
            Conduit::Other(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conduit::Tcp { tcp, silence } => explained(silence, Pin::new(tcp).poll_flush(cx)),
            Conduit::Other(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conduit::Tcp { tcp, silence } => explained(silence, Pin::new(tcp).poll_close(cx)),
            Conduit::Other(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// The conduit in plaintext, or TLS over it.
#[derive(Debug)]
pub(crate) enum Stream<T> {
    Plain(Conduit<T>),
    // Boxed: the TLS state is large and the plain variant should not pay for it.
    Tls(Box<TlsStream<Conduit<T>>>),
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
