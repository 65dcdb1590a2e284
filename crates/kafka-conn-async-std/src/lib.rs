//! # kafka-conn-async-std
//!
//! [kafka-conn](kafka_conn_driver) on async-std: one Kafka broker
//! connection, pipelined and cancellation safe, with TLS. This crate
//! supplies only the runtime pieces (DNS, TCP, clock and timer, spawn,
//! blocking pool); the driver and the whole API are shared with the tokio
//! and smol crates (`kafka_conn_driver::adapter_api!`).
//!
//! **async-std is discontinued upstream** (its maintainers recommend smol).
//! This crate keeps working and is tested like the others, but new code
//! should use `kafka-conn-smol`: the API is the same, so switching is one
//! dependency line and one `use`.
//!
//! ```no_run
//! use kafka_conn_async_std::{connect, ConnectConfig, core::{ApiKey, Request}};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! async_std::task::block_on(async {
//!     let client = connect("127.0.0.1:9092", ConnectConfig::default()).await?;
//!     let v = client.negotiate(ApiKey::METADATA, 1..=1).ok_or("no Metadata v1")?;
//!     let response = client.send(Request::new(ApiKey::METADATA, v, vec![0xff; 4])).await?;
//!     println!("{} bytes in {:?}", response.body.len(), response.rtt);
//!     Ok(())
//! })
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use async_std::net::ToSocketAddrs;

kafka_conn_driver::adapter_api!(AsyncStdRuntime = AsyncStdRuntime);

/// The async-std [`Runtime`] (its sockets implement futures-io natively).
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdRuntime;

kafka_conn_driver::async_io_timer!(
    /// async-io's `Timer` (the one under async-std's sleeps) as a [`Timer`]:
    /// it is `Unpin`, and `set_at` re-arms it in place.
    AsyncIoTimer = async_io::Timer
);

impl Runtime for AsyncStdRuntime {
    type Tcp = async_std::net::TcpStream;

    fn resolve(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok((host.as_str(), port).to_socket_addrs().await?.collect()) })
    }

    fn connect_tcp(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Tcp>> {
        Box::pin(async_std::net::TcpStream::connect(addr))
    }

    fn set_nodelay(&self, tcp: &Self::Tcp) -> io::Result<()> {
        tcp.set_nodelay(true)
    }

    fn os_socket<'a>(&self, tcp: &'a Self::Tcp) -> Option<BorrowedSocket<'a>> {
        Some(tcp.as_os_socket())
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        // async-std has no sleep-until; the driver re-checks the clock anyway.
        Box::pin(async_std::task::sleep(
            deadline.saturating_duration_since(Instant::now()),
        ))
    }

    // async-std sleeps on async-io's `Timer` (its `task::sleep` is one),
    // whose `set_at` re-arms it in place: the connection's re-arms
    // allocate nothing here.
    fn timer(&self, deadline: Instant) -> BoxTimer {
        Box::pin(AsyncIoTimer(async_io::Timer::at(deadline)))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(async_std::task::spawn(task));
    }

    fn spawn_blocking<F, T>(&self, f: F) -> BoxFuture<'static, T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Box::pin(async_std::task::spawn_blocking(f))
    }
}
