//! What the driver needs from an async runtime, and nothing more.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};

/// A boxed, sendable future: the runtime trait returns these so that it
/// needs no `async fn` in traits and no macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The pieces of an async runtime the driver uses: DNS, TCP, a timer and
/// spawning one task per connection.
///
/// `kafka-conn-tokio`, `kafka-conn-smol` and `kafka-conn-async-std`
/// implement it; implement it yourself to run on another executor.
pub trait Runtime: Clone + Send + Sync + Unpin + 'static {
    /// A connected TCP stream.
    type Tcp: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Resolves `host` (a name or an IP literal) to socket addresses on `port`.
    fn resolve(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;

    /// Opens a TCP connection. The driver bounds it with its own timeout.
    fn connect_tcp(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Tcp>>;

    /// Sets `TCP_NODELAY`: Kafka requests are small and latency-bound, so
    /// Nagle's algorithm only adds delay.
    fn set_nodelay(&self, tcp: &Self::Tcp) -> io::Result<()>;

    /// A future that completes at (or after) `deadline`. The driver checks
    /// the clock itself when it fires, so an early or late wake-up is harmless.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;

    /// Runs `task` in the background until it completes (detached).
    fn spawn(&self, task: BoxFuture<'static, ()>);
}
