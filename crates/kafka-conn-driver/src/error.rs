//! Why `connect` failed and why a `send` got no response.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use kafka_conn_core::{CloseReason, ConfigError, RequestError, SendError};

/// Why [`crate::connect`] failed. Each cause a user can act on differently
/// has its own variant, and the message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The address is not `host:port`.
    #[error("invalid broker address {address:?}: {why}")]
    InvalidAddress {
        /// What was given.
        address: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The core refused the configuration.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// DNS resolution failed.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// DNS resolution returned nothing.
    #[error("{host} resolved to no addresses")]
    NoAddresses {
        /// The host name.
        host: String,
    },
    /// Nothing listens on the port (or a firewall rejects the connection).
    #[error("connection refused by {addr}: nothing is listening on that port (is the broker up? is the port right?)")]
    Refused {
        /// The address tried last.
        addr: SocketAddr,
    },
    /// The TCP connection did not complete in time (a firewall dropping
    /// packets, or an unreachable host).
    #[error("TCP connect to {addr} timed out after {after:?}")]
    ConnectTimeout {
        /// The address tried last.
        addr: SocketAddr,
        /// The connect timeout.
        after: Duration,
    },
    /// Another TCP-level failure (unreachable network, ...).
    #[error("cannot connect to {addr}: {source}")]
    Tcp {
        /// The address tried last.
        addr: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
    /// The TLS settings cannot be used (unreadable CA file, bad key, ...).
    #[error("invalid TLS configuration: {0}")]
    TlsConfig(String),
    /// The broker's certificate chain does not lead to a trusted CA.
    #[error("TLS: certificate not trusted: check --tls-ca (the broker's certificate at {addr} was not issued by a trusted CA: {detail})")]
    CertificateNotTrusted {
        /// The broker.
        addr: SocketAddr,
        /// rustls' verdict.
        detail: String,
    },
    /// The broker's certificate is not valid for the name we connect to.
    #[error("TLS: the certificate of {addr} is not valid for {server_name:?} ({detail}): connect by the name in the certificate or set the TLS server name")]
    NameMismatch {
        /// The broker.
        addr: SocketAddr,
        /// The name checked.
        server_name: String,
        /// rustls' verdict.
        detail: String,
    },
    /// A TLS client met a non-TLS peer: it answered with non-TLS bytes or
    /// closed the connection during the handshake.
    #[error("the broker does not speak TLS on this port: use PLAINTEXT ({addr}: {detail})")]
    NotTls {
        /// The broker.
        addr: SocketAddr,
        /// What happened.
        detail: String,
    },
    /// The TLS handshake did not complete in time (a non-TLS peer often
    /// just waits for more bytes).
    #[error("TLS handshake with {addr} timed out after {after:?} (does the broker speak TLS on this port? if not, use PLAINTEXT)")]
    TlsTimeout {
        /// The broker.
        addr: SocketAddr,
        /// The connect timeout.
        after: Duration,
    },
    /// Another TLS failure (an alert from the broker, e.g. a rejected
    /// client certificate).
    #[error("TLS handshake with {addr} failed: {detail}")]
    Tls {
        /// The broker.
        addr: SocketAddr,
        /// What failed.
        detail: String,
    },
    /// A plaintext client met a TLS port.
    #[error(
        "the broker at {addr} speaks TLS on this port: use SSL (or SASL_SSL) and configure TLS"
    )]
    BrokerSpeaksTls {
        /// The broker.
        addr: SocketAddr,
    },
    /// The Kafka handshake (ApiVersions, SASL) failed: the core's close reason.
    #[error("{addr}: the connection closed before it was ready: {reason}")]
    Handshake {
        /// The broker.
        addr: SocketAddr,
        /// Why the core closed.
        reason: CloseReason,
    },
}

impl ConnectError {
    /// Whether trying again later with the same settings may help.
    pub fn is_retriable(&self) -> bool {
        match self {
            ConnectError::Resolve { .. }
            | ConnectError::NoAddresses { .. }
            | ConnectError::Refused { .. }
            | ConnectError::ConnectTimeout { .. }
            | ConnectError::Tcp { .. }
            | ConnectError::TlsTimeout { .. } => true,
            ConnectError::Handshake { reason, .. } => reason.is_retriable(),
            _ => false,
        }
    }

    /// The core's close reason, for failures of the Kafka handshake.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match self {
            ConnectError::Handshake { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// Why [`crate::Client::send`] returned no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestFailure {
    /// The connection refused the request; nothing was sent (an
    /// unsupported version, or the connection is closed).
    #[error(transparent)]
    Refused(SendError),
    /// The request was accepted but got no response (timed out, or the
    /// connection closed).
    #[error(transparent)]
    Failed(RequestError),
}

impl RequestFailure {
    /// Whether sending again (on a new connection if this one closed) may help.
    pub fn is_retriable(&self) -> bool {
        match self {
            RequestFailure::Refused(SendError::Closed(r)) => r.is_retriable(),
            RequestFailure::Refused(_) => false,
            RequestFailure::Failed(e) => e.is_retriable(),
        }
    }

    /// The connection's close reason, when the failure is that it closed.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match self {
            RequestFailure::Refused(SendError::Closed(r))
            | RequestFailure::Failed(RequestError::ConnectionClosed(r)) => Some(r),
            _ => None,
        }
    }
}
