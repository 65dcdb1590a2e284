//! # kafka-conn-smol
//!
//! [kafka-conn](kafka_conn_driver) on smol: one Kafka broker connection,
//! pipelined and cancellation safe, with TLS. This crate supplies only the
//! runtime pieces (DNS, TCP, clock and timer, spawn, blocking pool); the
//! driver and the whole API are shared with the tokio and async-std crates
//! (`kafka_conn_driver::adapter_api!`): switching runtime is one dependency
//! line and one `use`.
//!
//! ```no_run
//! use kafka_conn_smol::{connect, ConnectConfig, core::{ApiKey, Request}};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let client = connect("127.0.0.1:9092", ConnectConfig::default()).await?;
//!     let v = client.negotiate(ApiKey::METADATA, 1..=1).ok_or("no Metadata v1")?;
//!     let response = client.send(Request::new(ApiKey::METADATA, v, vec![0xff; 4])).await?;
//!     println!("{} bytes in {:?}", response.body.len(), response.rtt);
//!     Ok(())
//! })
//! # }
//! ```
//!
//! The connection's task runs on smol's global executor (`smol::spawn`),
//! which runs on its own threads (`SMOL_THREADS`, default 1), whatever
//! `block_on` the caller uses.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

kafka_conn_driver::adapter_api!(SmolRuntime = SmolRuntime);

/// The smol [`Runtime`]: async-net sockets, async-io timers, the global executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolRuntime;

kafka_conn_driver::async_io_timer!(
    /// smol's (async-io's) `Timer` as a [`Timer`]: it is `Unpin`, and
    /// `set_at` re-arms it in place.
    SmolTimer = smol::Timer
);

impl Runtime for SmolRuntime {
    type Tcp = smol::net::TcpStream;

    fn resolve(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { smol::net::resolve((host.as_str(), port)).await })
    }

    fn connect_tcp(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Self::Tcp>> {
        Box::pin(smol::net::TcpStream::connect(addr))
    }

    fn set_nodelay(&self, tcp: &Self::Tcp) -> io::Result<()> {
        tcp.set_nodelay(true)
    }

    fn os_socket<'a>(&self, tcp: &'a Self::Tcp) -> Option<BorrowedSocket<'a>> {
        Some(tcp.as_os_socket())
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            smol::Timer::at(deadline).await;
        })
    }

    // async-io's `Timer::set_at` moves the timer in place: the
    // connection's re-arms allocate nothing here.
    fn timer(&self, deadline: Instant) -> BoxTimer {
        Box::pin(SmolTimer(smol::Timer::at(deadline)))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        smol::spawn(task).detach();
    }

    // smol's blocking pool (the `blocking` crate), which resumes a panic of
    // `f` in the awaiting task.
    fn spawn_blocking<F, T>(&self, f: F) -> BoxFuture<'static, T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Box::pin(smol::unblock(f))
    }
}
