//! # kafka-conn-driver
//!
//! Drives a [`kafka_conn_core::Connection`] over a real socket on any async
//! runtime. The runtime supplies only DNS, TCP, a clock and a timer,
//! spawning and a blocking pool (the [`Runtime`] trait); everything else is
//! here, written once, and so is the API of the adapter crates
//! ([`adapter_api!`]):
//!
//! - **One task per connection** owns the socket and the core and runs a
//!   single hand-written poll loop: commands from the handles, reads
//!   straight into the core's buffer, vectored writes, the core's
//!   deadlines (checked against the runtime's clock, not only its timer),
//!   the credential provider, and the core's events drained after every
//!   input.
//! - **[`DirectClient`]** ([`connect_direct`]) runs the same loop in its
//!   caller's task instead: no task, no channel, no second wake-up per
//!   request, for code that owns its connection in one task. It moves only
//!   while one of its async methods is polled.
//! - **[`Client`]** is a cheap `Clone` handle; [`Client::send`] may be
//!   called from many tasks at once and the requests are pipelined on the
//!   one connection. Dropping a `send` future is safe at any point: only
//!   the task writes frames, and a dropped request's response is read and
//!   discarded. Dropping the last handle closes the connection.
//! - **TLS** (SSL, SASL_SSL) through futures-rustls with the `ring`
//!   provider: a CA file or the system roots, a server name override and
//!   client certificates ([`TlsConfig`]).
//! - **Dialing like the network really is** (`docs/dialing.md`): DNS on
//!   every connect (or a [`ConnectConfig::with_dns_cache`]), every address
//!   raced (RFC 8305 Happy Eyeballs, [`AddressFamily`]), keepalive and
//!   `TCP_USER_TIMEOUT` ([`Keepalive`]) so a silent peer fails the
//!   connection, SOCKS5 and HTTP CONNECT [`Proxy`]s, and any transport:
//!   [`connect_over`] a stream you have, or a dialer of your own
//!   ([`ConnectConfig::with_dialer`]).
//! - **One [`CredentialProvider`]** ([`ConnectConfig::with_credential_provider`])
//!   answers every credential request of every SASL mechanism (OAUTHBEARER,
//!   GSSAPI, your own through `CredentialRequest::Custom`), for each
//!   authentication and re-authentication, told the broker's host and
//!   whether it re-authenticates ([`CredentialContext`]).
//! - **[`connect`]** reports each failure a user can fix differently as its
//!   own [`ConnectError`] variant, and returns what a diagnostics tool
//!   needs in [`Client::info`]: address, timings, TLS session, versions, SASL.
//!
//! - **Typed requests** (feature `kafka-protocol`): `Client::send_typed`
//!   takes any request type of the `kafka-protocol` crate, picks the
//!   version, decodes the response and applies its KIP-219 throttle.
//!
//! Most users depend on `kafka-conn-tokio`, `kafka-conn-smol` or
//! `kafka-conn-async-std`, which re-export this crate's API with a
//! `connect(address, config)` bound to their runtime.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod adapter;
mod addresses;
#[cfg(any(feature = "gssapi", feature = "oidc", feature = "aws-msk-iam"))]
mod auth;
mod client;
mod cluster;
mod config;
mod connect;
mod credentials;
mod dial;
mod direct;
mod driver;
mod engine;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzz_support;
mod http_connect;
mod info;
#[cfg(feature = "metrics")]
mod metrics_observer;
#[cfg(test)]
mod module_graph;
mod observe;
mod proxy;
mod queue;
mod race;
mod runtime;
mod socket;
mod socks5;
mod spare_read;
mod stream;
mod tls;
mod transport;
mod tunnel;
#[cfg(feature = "kafka-protocol")]
mod typed;

pub use addresses::AddressFamily;
#[cfg(feature = "aws-msk-iam")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-msk-iam")))]
pub use auth::{AwsCredentials, AwsMskIam, AwsMskIamError};
#[cfg(feature = "oidc")]
#[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
pub use auth::{ClientAuth, OidcError, OidcTokenProvider};
#[cfg(feature = "gssapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "gssapi")))]
pub use auth::{Kerberos, KerberosError, KerberosExchange};
pub use client::Client;
pub use cluster::{
    Cluster, ClusterConfig, ClusterError, ClusterEvents, CurrentRuntime, MetadataTopics, NodeInfo,
    SendTo,
};
pub use config::ConnectConfig;
pub use connect::{connect, connect_direct, connect_direct_over, connect_over};
pub use credentials::{CallbackError, CredentialContext, CredentialProvider};
pub use direct::{Completion, DirectClient};
pub use error::{ConnectError, RequestFailure};
pub use info::{AttemptOutcome, ConnectInfo, Progress, ProxyInfo, TcpAttempt, Timings, TlsInfo};
/// The sans-IO cluster policy [`Cluster`] runs: its node table, states,
/// failures and events, for code that drives it itself.
pub use kafka_conn_cluster as cluster_policy;
/// The policy's settings, part of a [`ClusterConfig`].
pub use kafka_conn_cluster::ClusterConfig as PolicyConfig;
/// What the policy reports, from [`Cluster::events`].
pub use kafka_conn_cluster::Event as ClusterEvent;
pub use kafka_conn_cluster::{DialStep, NodeId, NodeState};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics_observer::{names as metric_names, MetricsObserver};
pub use observe::{
    close_reason_label, request_error_label, ClusterPolicyEvent, ClusterTableEvent,
    ConnectErrorEvent, ConnectEvent, DisconnectEvent, InFlightEvent, Observer, Peer,
    ReauthenticationEvent, RequestFailedEvent, ResponseEvent, SetupStep, ThrottleEvent,
};
pub use proxy::{socks5_reply_meaning, InvalidProxyUrl, Proxy, ProxyFailure, ProxyKind, ProxyStep};
pub use runtime::{timeout, AsOsSocket, BorrowedSocket, BoxFuture, BoxTimer, Runtime, Timer};
/// A DER certificate, as in [`TlsInfo::peer_certificates`] and [`ConnectError::presented_certificates`].
pub use rustls_pki_types::CertificateDer;
pub use socket::Keepalive;
pub use stream::Transport;
pub use tls::TlsConfig;
pub use transport::{DialRequest, Dialed};
#[cfg(feature = "kafka-protocol")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka-protocol")))]
pub use typed::TypedFailure;

/// The sans-IO core this crate drives, re-exported so users need one dependency.
pub use kafka_conn_core as core;

/// The examples of `docs/sasl.md`, compiled and run as doctests so that
/// the guide stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/sasl.md")]
pub struct SaslGuide;
