//! # kafka-conn-async-std
//!
//! [kafka-conn](kafka_conn_driver) on async-std: one Kafka broker
//! connection, pipelined and cancellation safe, with TLS.
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
/// Why [`Client::send_typed`] returned no typed response (feature `kafka-protocol`).
#[cfg(feature = "kafka-protocol")]
pub use kafka_conn_driver::TypedFailure;
pub use kafka_conn_driver::{
    core, BoxFuture, CallbackError, CertificateDer, Client, Completion, ConnectConfig,
    ConnectError, ConnectInfo, Progress, RequestFailure, Runtime, TcpAttempt, Timings, TlsConfig,
    TlsInfo,
};
/// Amazon MSK's IAM mechanism (feature `aws-msk-iam`): see [`kafka_conn_driver::AwsMskIam`].
#[cfg(feature = "aws-msk-iam")]
pub use kafka_conn_driver::{AwsCredentials, AwsMskIam, AwsMskIamError};
/// OIDC client credentials for OAUTHBEARER (feature `oidc`): see [`kafka_conn_driver::OidcTokenProvider`].
#[cfg(feature = "oidc")]
pub use kafka_conn_driver::{ClientAuth, OidcError, OidcTokenProvider};
/// Kerberos for SASL GSSAPI (feature `gssapi`): see [`kafka_conn_driver::Kerberos`].
#[cfg(feature = "gssapi")]
pub use kafka_conn_driver::{Kerberos, KerberosError, KerberosExchange};

/// Connects to the broker at `address` (`host:port`). See
/// [`kafka_conn_driver::connect`].
pub async fn connect(
    address: &str,
    config: impl Into<ConnectConfig>,
) -> Result<Client, ConnectError> {
    kafka_conn_driver::connect(AsyncStdRuntime, address, config.into()).await
}

/// A connection driven by the task that holds it, with no background task
/// (see [`kafka_conn_driver::DirectClient`]).
pub type DirectClient = kafka_conn_driver::DirectClient<AsyncStdRuntime>;

/// Connects to the broker at `address` (`host:port`) and returns a
/// [`DirectClient`], which runs the connection in the caller's task. See
/// [`kafka_conn_driver::connect_direct`].
pub async fn connect_direct(
    address: &str,
    config: impl Into<ConnectConfig>,
) -> Result<DirectClient, ConnectError> {
    kafka_conn_driver::connect_direct(AsyncStdRuntime, address, config.into()).await
}

/// The async-std [`Runtime`] (its sockets implement futures-io natively).
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdRuntime;

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

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        // async-std has no sleep-until; the driver re-checks the clock anyway.
        Box::pin(async_std::task::sleep(
            deadline.saturating_duration_since(Instant::now()),
        ))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(async_std::task::spawn(task));
    }
}
