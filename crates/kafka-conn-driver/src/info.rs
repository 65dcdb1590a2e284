//! What `connect` learnt: the result types of the connection procedure
//! ([`ConnectInfo`] on success, [`Progress`] in a failure) and the TLS
//! session ([`TlsInfo`]). Plain data, no procedure: a leaf module that
//! `connect`, the errors, the TLS code and the clients all read.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_conn_core::{ApiVersions, SaslSession};
use rustls_pki_types::CertificateDer;

/// How a connection was made: what a diagnostics tool shows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectInfo {
    /// The address connected to.
    pub address: SocketAddr,
    /// Every address the host resolved to, in the order tried.
    pub resolved: Vec<SocketAddr>,
    /// Addresses tried before `address`, with why each failed.
    pub failed_attempts: Vec<TcpAttempt>,
    /// How long each step took.
    pub timings: Timings,
    /// The TLS session, when TLS is on, with the broker's certificate
    /// chain (DER; the driver carries no X.509 parser to decode it).
    pub tls: Option<TlsInfo>,
    /// What the broker supports (see [`ApiVersions::fell_back`] for
    /// whether a KIP-511 fallback happened).
    pub api_versions: Arc<ApiVersions>,
    /// The SASL session, when the connection authenticated.
    pub sasl: Option<SaslSession>,
}

/// How long each step of [`connect`](crate::connect) took. A step is
/// `None` when it was not needed or, in a
/// [`ConnectError`](crate::ConnectError)'s [`Progress`], did not complete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// DNS resolution (`None` for an IP literal: no lookup).
    pub resolve: Option<Duration>,
    /// The TCP connect that succeeded (failed attempts are timed in
    /// [`TcpAttempt::took`]).
    pub tcp: Option<Duration>,
    /// The TLS handshake.
    pub tls: Option<Duration>,
    /// ApiVersions: from the transport being up until the broker's
    /// versions are known, including any KIP-511 fallback (`None` with a
    /// version hint, which skips the exchange).
    pub api_versions: Option<Duration>,
    /// SASL: from the versions being known until authenticated.
    pub sasl: Option<Duration>,
    /// Everything: until ready, or until the failure.
    pub total: Duration,
}

/// One TCP connect attempt that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpAttempt {
    /// The address tried.
    pub addr: SocketAddr,
    /// Why it failed, e.g. "connection refused" or "timed out after 10s".
    pub reason: String,
    /// How long the attempt took.
    pub took: Duration,
}

impl fmt::Display for TcpAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.addr, self.reason)
    }
}

/// What [`connect`](crate::connect) got done before it failed (see
/// [`ConnectError::progress`](crate::ConnectError::progress)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The steps that completed, with their times; `total` is the time
    /// until the failure.
    pub timings: Timings,
    /// Every address the host resolved to (empty if resolution failed).
    pub resolved: Vec<SocketAddr>,
    /// Every TCP attempt that failed, in order: all of them when no
    /// address could be reached.
    pub failed_attempts: Vec<TcpAttempt>,
    /// The address TCP connected to, once it did.
    pub address: Option<SocketAddr>,
}

impl Progress {
    /// The failed attempts before the last, for an error message that
    /// names the last address itself ("" when there was only one).
    pub(crate) fn earlier_attempts(&self) -> String {
        match self.failed_attempts.split_last() {
            Some((_, earlier)) if !earlier.is_empty() => {
                let list: Vec<String> = earlier.iter().map(ToString::to_string).collect();
                format!(" (every address failed; also tried {})", list.join(", "))
            }
            _ => String::new(),
        }
    }

    /// A boxed copy for an error, with `total` the time from `start` to `now`.
    pub(crate) fn at_failure(&self, start: Instant, now: Instant) -> Box<Progress> {
        let mut p = self.clone();
        p.timings.total = now.saturating_duration_since(start);
        Box::new(p)
    }
}

/// What the TLS handshake settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The protocol version, e.g. `TLSv1_3`.
    pub protocol_version: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The name the certificate was verified against.
    pub server_name: String,
    /// The certificate chain the broker presented, end entity first, in
    /// DER (decode it with an X.509 parser to show subject and expiry).
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

impl TlsInfo {
    pub(crate) fn from_connection(c: &rustls::ClientConnection, server_name: String) -> Self {
        Self {
            protocol_version: c
                .protocol_version()
                .map_or_else(|| "unknown".to_owned(), |v| format!("{v:?}")),
            cipher_suite: c
                .negotiated_cipher_suite()
                .map_or_else(|| "unknown".to_owned(), |s| format!("{:?}", s.suite())),
            server_name,
            peer_certificates: c
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
        }
    }
}
