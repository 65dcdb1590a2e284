//! # kafka-conn-smol
//!
//! [kafka-conn](kafka_conn_driver) on smol: one Kafka broker connection,
//! pipelined and cancellation safe, with TLS. This crate supplies only the
//! runtime pieces (DNS, TCP, timer, spawn); the driver is shared with the
//! tokio and async-std crates, whose API is the same: switching runtime is
//! one dependency line and one `use`.
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
    kafka_conn_driver::connect(SmolRuntime, address, config.into()).await
}

/// A connection driven by the task that holds it, with no background task
/// (see [`kafka_conn_driver::DirectClient`]).
pub type DirectClient = kafka_conn_driver::DirectClient<SmolRuntime>;

/// Connects to the broker at `address` (`host:port`) and returns a
/// [`DirectClient`], which runs the connection in the caller's task. See
/// [`kafka_conn_driver::connect_direct`].
pub async fn connect_direct(
    address: &str,
    config: impl Into<ConnectConfig>,
) -> Result<DirectClient, ConnectError> {
    kafka_conn_driver::connect_direct(SmolRuntime, address, config.into()).await
}

/// The smol [`Runtime`]: async-net sockets, async-io timers, the global executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolRuntime;

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

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            smol::Timer::at(deadline).await;
        })
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        smol::spawn(task).detach();
    }
}
