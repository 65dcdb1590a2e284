//! # kafka-conn-tokio
//!
//! [kafka-conn](kafka_conn_driver) on tokio: one Kafka broker connection,
//! pipelined and cancellation safe, with TLS. This crate supplies only the
//! runtime pieces (DNS, TCP, clock and timer, spawn, blocking pool); the
//! driver and the whole API are shared with the smol and async-std crates
//! (`kafka_conn_driver::adapter_api!`): switching runtime is one dependency
//! line and one `use`.
//!
//! ```no_run
//! use kafka_conn_tokio::{connect, ConnectConfig, core::{ApiKey, Request}};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = connect("127.0.0.1:9092", ConnectConfig::default()).await?;
//! let v = client.negotiate(ApiKey::METADATA, 1..=1).ok_or("no Metadata v1")?;
//! let response = client.send(Request::new(ApiKey::METADATA, v, vec![0xff; 4])).await?;
//! println!("{} bytes in {:?}", response.body.len(), response.rtt);
//! client.close();
//! client.closed().await;
//! # Ok(()) }
//! ```
//!
//! [`connect`] must be called from within a tokio runtime: the connection's
//! task is spawned on that runtime.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::buf::Limit;
use bytes::BytesMut;
use tokio::io::ReadBuf;

kafka_conn_driver::adapter_api!(
    /// # Panics
    ///
    /// Outside a tokio runtime.
    TokioRuntime = TokioRuntime::current()
);

/// The tokio [`Runtime`]: a handle to the runtime the connection task runs on.
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: tokio::runtime::Handle,
}

impl TokioRuntime {
    /// The runtime this is called from.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn current() -> Self {
        Self::with_handle(tokio::runtime::Handle::current())
    }

    /// A given runtime.
    pub fn with_handle(handle: tokio::runtime::Handle) -> Self {
        Self { handle }
    }
}

/// tokio's `Sleep` as a [`Timer`]. `Sleep` is not `Unpin`, and moving it
/// in place needs it pinned: boxed once per connection (two allocations
/// when the connection first arms its timer, none after), which keeps this
/// crate free of `unsafe` and of a pin-projection dependency.
struct TokioTimer(Pin<Box<tokio::time::Sleep>>);

impl std::future::Future for TokioTimer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().0.as_mut().poll(cx)
    }
}

impl Timer for TokioTimer {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        self.get_mut().0.as_mut().reset(deadline.into());
    }
}

impl Runtime for TokioRuntime {
    type Tcp = TcpStream;

    fn resolve(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }

    fn connect_tcp(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> {
        Box::pin(async move { tokio::net::TcpStream::connect(addr).await.map(TcpStream) })
    }

    fn set_nodelay(&self, tcp: &TcpStream) -> io::Result<()> {
        tcp.0.set_nodelay(true)
    }

    fn os_socket<'a>(&self, tcp: &'a TcpStream) -> Option<BorrowedSocket<'a>> {
        Some(tcp.0.as_os_socket())
    }

    fn reads_spare(&self) -> bool {
        true
    }

    /// tokio reads into uninitialised memory (`ReadBuf`), and tokio-util's
    /// `poll_read_buf` appends what it read to the buffer: no zero-fill,
    /// and the same readiness bookkeeping as `poll_read` (a short read
    /// clears the readiness, so the next read waits without a syscall).
    fn poll_read_spare(
        &self,
        tcp: &mut TcpStream,
        cx: &mut Context<'_>,
        buf: &mut Limit<&mut BytesMut>,
    ) -> Poll<io::Result<usize>> {
        tokio_util::io::poll_read_buf(Pin::new(&mut tcp.0), cx, buf)
    }

    // tokio's clock, which `sleep_until` uses: the same as the system's,
    // except that it stands still under `tokio::time::pause` (test-util).
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    // tokio's `Sleep::reset` moves the timer entry in place: the
    // connection's re-arms (about once a second with the idle
    // receive-buffer release on) allocate nothing.
    fn timer(&self, deadline: Instant) -> BoxTimer {
        Box::pin(TokioTimer(Box::pin(tokio::time::sleep_until(
            deadline.into(),
        ))))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(self.handle.spawn(task));
    }

    fn spawn_blocking<F, T>(&self, f: F) -> BoxFuture<'static, T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let task = self.handle.spawn_blocking(f);
        Box::pin(async move {
            match task.await {
                Ok(value) => value,
                Err(e) => match e.try_into_panic() {
                    Ok(payload) => std::panic::resume_unwind(payload),
                    // Only when the runtime shuts down under the task.
                    Err(e) => panic!("blocking task not run: {e}"),
                },
            }
        })
    }
}

/// A tokio TCP stream seen through futures-io. Written here rather than
/// taken from tokio-util's `compat`, which does not forward vectored
/// writes: the core hands request headers and bodies as separate slices.
#[derive(Debug)]
pub struct TcpStream(pub tokio::net::TcpStream);

impl futures_io::AsyncRead for TcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        match tokio::io::AsyncRead::poll_read(Pin::new(&mut self.0), cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures_io::AsyncWrite for TcpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write_vectored(Pin::new(&mut self.0), cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}
