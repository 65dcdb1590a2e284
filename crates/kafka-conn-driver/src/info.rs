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
    /// The TCP peer: the broker's address, or the proxy's through a
    /// proxy; what a dialer reported ([`Dialed::with_peer_addr`](crate::Dialed::with_peer_addr));
    /// the unspecified `0.0.0.0:0` over a transport without one
    /// ([`connect_over`](crate::connect_over), a dialer that did not say).
    pub address: SocketAddr,
    /// Every address the host resolved to, as the resolver answered
    /// (attempts go in the order of [`ConnectInfo::attempts`]).
    pub resolved: Vec<SocketAddr>,
    /// Every TCP connect attempt of the race (RFC 8305, Happy Eyeballs),
    /// in the order started, the winner included: which address won and
    /// how long the others took.
    pub attempts: Vec<TcpAttempt>,
    /// The attempts that did not win: failed, timed out, or cancelled
    /// because another address connected first (start order).
    pub failed_attempts: Vec<TcpAttempt>,
    /// How long each step took.
    pub timings: Timings,
    /// The proxy's tunnel, when the connection goes through a proxy (then
    /// `address`, `resolved` and `attempts` are about the proxy).
    pub proxy: Option<ProxyInfo>,
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
    /// The TCP step: from the first connect attempt until one connected
    /// (each attempt is timed in [`TcpAttempt::took`]).
    pub tcp: Option<Duration>,
    /// The proxy handshake (method, authentication, `CONNECT`), when
    /// through a proxy.
    pub proxy: Option<Duration>,
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

/// One TCP connect attempt of a dial, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpAttempt {
    /// The address tried.
    pub addr: SocketAddr,
    /// How it ended, in words: "connected", "connection refused", "timed
    /// out after 10s", "cancelled: 192.0.2.7:9092 connected first", ...
    pub reason: String,
    /// How long the attempt took, until it connected, failed or was dropped.
    pub took: Duration,
    /// When it started, counted from the first attempt: the race starts
    /// the next address a delay after the last (see
    /// [`ConnectConfig::with_attempt_delay`](crate::ConnectConfig::with_attempt_delay)),
    /// or at once when every attempt so far failed.
    pub started: Duration,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

/// How a [`TcpAttempt`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// It connected first: the connection uses it.
    Connected,
    /// Nothing listens there (or a firewall rejects): `ECONNREFUSED`.
    Refused,
    /// No answer within the connect timeout.
    TimedOut,
    /// Another error (unreachable network, ...), of this kind.
    Failed(std::io::ErrorKind),
    /// Still pending when another address connected, and dropped.
    Cancelled,
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
    /// Every TCP attempt, in the order started, the winner included
    /// (see [`ConnectInfo::attempts`]).
    pub attempts: Vec<TcpAttempt>,
    /// Every TCP attempt that did not win, in the order started: all of
    /// them when no address could be reached.
    pub failed_attempts: Vec<TcpAttempt>,
    /// The address TCP connected to, once it did.
    pub address: Option<SocketAddr>,
    /// The proxy's tunnel, once it was open.
    pub proxy: Option<ProxyInfo>,
}

/// A tunnel through a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyInfo {
    /// The proxy, as a URL with the password masked
    /// (`socks5h://user:***@host:port`).
    pub proxy: String,
    /// What the proxy was asked to connect to (`host:port`: the broker's
    /// name with remote DNS, else its address).
    pub target: String,
    /// The address the proxy reported for its side of the tunnel (SOCKS5
    /// `BND.ADDR:BND.PORT`), if any.
    pub bound: Option<String>,
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
