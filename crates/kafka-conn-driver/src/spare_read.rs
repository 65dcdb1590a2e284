//! Reading into the core's receive buffer without zero-filling it, where
//! the transport can (issue 20): the runtime's plain TCP stream, on a
//! runtime that reads into memory not yet initialised.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::buf::Limit;
use bytes::BytesMut;
use futures_io::AsyncRead;

use crate::runtime::{read_zero_filled, Runtime};
use crate::stream::{explained, Conduit, Stream};

/// How the engine reads into the core's receive buffer: into its spare
/// capacity, without zero-filling it, where the transport is the
/// runtime's plain TCP stream and the runtime can
/// ([`Runtime::reads_spare`]); through `AsyncRead::poll_read` otherwise
/// (TLS decrypts into initialised memory; a dialer's or caller's stream
/// is a futures-io `AsyncRead`).
pub(crate) trait SpareRead<R: Runtime>: AsyncRead + Unpin {
    /// Whether [`SpareRead::poll_read_spare`] reads without zero-filling.
    fn reads_spare(&self, rt: &R) -> bool;

    /// Reads into the spare capacity of `buf`, at most its limit: the
    /// bytes appended, as `poll_read` counts them.
    fn poll_read_spare(
        &mut self,
        rt: &R,
        cx: &mut Context<'_>,
        buf: &mut Limit<&mut BytesMut>,
    ) -> Poll<io::Result<usize>>;
}

impl<R: Runtime> SpareRead<R> for Stream<R::Tcp> {
    fn reads_spare(&self, rt: &R) -> bool {
        rt.reads_spare() && matches!(self, Stream::Plain(Conduit::Tcp { .. }))
    }

    fn poll_read_spare(
        &mut self,
        rt: &R,
        cx: &mut Context<'_>,
        buf: &mut Limit<&mut BytesMut>,
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Plain(Conduit::Tcp { tcp, silence }) => {
                explained(silence, rt.poll_read_spare(tcp, cx, buf))
            }
            other => read_zero_filled(Pin::new(other), cx, buf),
        }
    }
}
