//! Why `connect` failed and why a `send` got no response.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::atomic::{AtomicU8, Ordering};

use kafka_conn_core::{
    ApiKey, CloseReason, ConfigError, Phase, RequestError, SendError, TimeoutKind,
};
use rustls_pki_types::CertificateDer;

use crate::addresses::AddressFamily;
use crate::info::{ConnectInfo, Progress, Timings};
use crate::proxy::{ProxyFailure, ProxyKind, ProxyStep};

/// The peer of a TLS or Kafka failure: its address, or what it is when
/// the transport has none (a dialer's or the caller's stream).
fn at(addr: &SocketAddr) -> String {
    if addr.ip().is_unspecified() && addr.port() == 0 {
        "the broker (over a transport without an IP address)".to_owned()
    } else {
        addr.to_string()
    }
}

/// `a, b and c` for an error message.
fn list(addresses: &[SocketAddr]) -> String {
    let texts: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
    texts.join(", ")
}

/// Why [`crate::connect`] failed. Each cause a user can act on differently
/// has its own variant, and the message says what to do.
///
/// Every failure after the address was parsed carries a [`Progress`]
/// ([`ConnectError::progress`]): the steps that completed with their
/// timings, the addresses the host resolved to and every failed TCP
/// attempt, so a diagnostics tool can show what worked before what failed.
/// Certificate failures carry the chain the broker presented
/// ([`ConnectError::presented_certificates`]).
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
        /// What was done (the time the lookup took is `timings.total`).
        progress: Box<Progress>,
    },
    /// DNS resolution returned nothing.
    #[error("{host} resolved to no addresses")]
    NoAddresses {
        /// The host name.
        host: String,
        /// What was done.
        progress: Box<Progress>,
    },
    /// The host resolved to addresses, but none of the configured
    /// [`AddressFamily`](crate::AddressFamily).
    #[error("{host} resolved to {}, but none is allowed by the address family setting ({family})", list(&progress.resolved))]
    NoAddressOfFamily {
        /// The host name.
        host: String,
        /// The setting that filtered every address out.
        family: AddressFamily,
        /// What was done (`resolved` lists the addresses found).
        progress: Box<Progress>,
    },
    /// Nothing listens on the port (or a firewall rejects the connection).
    #[error("connection refused by {addr}: nothing is listening on that port (is the broker up? is the port right?){}", progress.earlier_attempts())]
    Refused {
        /// The address tried last (every attempt is in `progress.failed_attempts`).
        addr: SocketAddr,
        /// What was done, with every failed attempt.
        progress: Box<Progress>,
    },
    /// The TCP connection did not complete in time (a firewall dropping
    /// packets, or an unreachable host).
    #[error("TCP connect to {addr} timed out after {after:?}{}", progress.earlier_attempts())]
    ConnectTimeout {
        /// The address tried last (every attempt is in `progress.failed_attempts`).
        addr: SocketAddr,
        /// The connect timeout.
        after: Duration,
        /// What was done, with every failed attempt.
        progress: Box<Progress>,
    },
    /// Another TCP-level failure (unreachable network, ...).
    #[error("cannot connect to {addr}: {source}{}", progress.earlier_attempts())]
    Tcp {
        /// The address tried last (every attempt is in `progress.failed_attempts`).
        addr: SocketAddr,
        /// The socket error.
        source: io::Error,
        /// What was done, with every failed attempt.
        progress: Box<Progress>,
    },
    /// The proxy could not be reached, refused, or rejected the
    /// credentials: the step and the proxy's answer say which.
    #[error("{kind} proxy {proxy}, {step}: {failure}")]
    Proxy {
        /// The protocol.
        kind: ProxyKind,
        /// The proxy, as a URL with the password masked.
        proxy: String,
        /// The step that failed.
        step: ProxyStep,
        /// What went wrong: the proxy's reply code and its meaning, or the
        /// I/O error.
        failure: ProxyFailure,
        /// What was done (the TCP attempts are those to the proxy).
        progress: Box<Progress>,
    },
    /// The application's dialer ([`crate::ConnectConfig::with_dialer`])
    /// failed, or did not finish within the setup timeout.
    #[error("the dialer could not open a transport to {target}: {source}")]
    Dial {
        /// `host:port` asked for.
        target: String,
        /// The dialer's error.
        source: io::Error,
        /// What was done.
        progress: Box<Progress>,
    },
    /// The TLS settings cannot be used (unreadable CA file, bad key, ...).
    #[error("invalid TLS configuration: {0}")]
    TlsConfig(String),
    /// The broker's certificate chain does not lead to a trusted CA.
    #[error("TLS: certificate not trusted: check --tls-ca (the broker's certificate at {peer} was not issued by a trusted CA: {detail})", peer = at(addr))]
    CertificateNotTrusted {
        /// The broker.
        addr: SocketAddr,
        /// rustls' verdict.
        detail: String,
        /// The chain the broker presented, end entity first (see
        /// [`ConnectError::presented_certificates`]).
        presented: Vec<CertificateDer<'static>>,
        /// What was done.
        progress: Box<Progress>,
    },
    /// The broker's certificate is not valid for the name we connect to.
    #[error("TLS: the certificate of {peer} is not valid for {server_name:?} ({detail}): connect by the name in the certificate or set the TLS server name", peer = at(addr))]
    NameMismatch {
        /// The broker.
        addr: SocketAddr,
        /// The name checked.
        server_name: String,
        /// rustls' verdict.
        detail: String,
        /// The chain the broker presented, end entity first (see
        /// [`ConnectError::presented_certificates`]).
        presented: Vec<CertificateDer<'static>>,
        /// What was done.
        progress: Box<Progress>,
    },
    /// The broker's certificate was refused for another reason: expired,
    /// not yet valid, revoked, not meant for a server, ...
    #[error("TLS: the certificate of {peer} is not acceptable: {detail}", peer = at(addr))]
    InvalidCertificate {
        /// The broker.
        addr: SocketAddr,
        /// rustls' verdict.
        detail: String,
        /// The chain the broker presented, end entity first (see
        /// [`ConnectError::presented_certificates`]).
        presented: Vec<CertificateDer<'static>>,
        /// What was done.
        progress: Box<Progress>,
    },
    /// A TLS client met a non-TLS peer: it answered with non-TLS bytes or
    /// closed the connection during the handshake.
    #[error("the broker does not speak TLS on this port: use PLAINTEXT ({peer}: {detail})", peer = at(addr))]
    NotTls {
        /// The broker.
        addr: SocketAddr,
        /// What happened.
        detail: String,
        /// What was done.
        progress: Box<Progress>,
    },
    /// The TLS handshake did not complete in time (a non-TLS peer often
    /// just waits for more bytes).
    #[error("TLS handshake with {peer} timed out after {after:?} (does the broker speak TLS on this port? if not, use PLAINTEXT)", peer = at(addr))]
    TlsTimeout {
        /// The broker.
        addr: SocketAddr,
        /// The connect timeout.
        after: Duration,
        /// What was done.
        progress: Box<Progress>,
    },
    /// Another TLS failure (an alert from the broker, e.g. a rejected
    /// client certificate).
    #[error("TLS handshake with {peer} failed: {detail}", peer = at(addr))]
    Tls {
        /// The broker.
        addr: SocketAddr,
        /// What failed.
        detail: String,
        /// What was done.
        progress: Box<Progress>,
    },
    /// A plaintext client met a TLS port.
    #[error(
        "the broker at {peer} speaks TLS on this port: use SSL (or SASL_SSL) and configure TLS",
        peer = at(addr)
    )]
    BrokerSpeaksTls {
        /// The broker.
        addr: SocketAddr,
        /// What was done.
        progress: Box<Progress>,
    },
    /// A [`Cluster`](crate::Cluster)'s setup timeout for the node ran out
    /// before the connection was ready: the attempt was dropped during
    /// `step` (the policy's growing per-node timeout bounds DNS, TCP,
    /// proxy, TLS and the Kafka handshake together; KIP-601's
    /// `socket.connection.setup.timeout.ms`). Told to the observer
    /// ([`Observer::on_connect_error`](crate::Observer::on_connect_error));
    /// the cluster's own error for it is
    /// [`ClusterError::Unreachable`](crate::ClusterError::Unreachable) with
    /// the policy's `Failure::SetupTimeout`.
    #[error("connection setup to {target} timed out after {after:?} during {step}")]
    SetupTimeout {
        /// `host:port` asked for.
        target: String,
        /// The setup timeout that ran out.
        after: Duration,
        /// The step in progress when it ran out.
        step: SetupStep,
        /// What is known: `timings.total` (the time until it ran out);
        /// the attempt's own record of its steps was dropped with it.
        progress: Box<Progress>,
    },
    /// The Kafka handshake (ApiVersions, SASL) failed: the core's close reason.
    #[error("{peer}: the connection closed before it was ready: {reason}", peer = at(addr))]
    Handshake {
        /// The broker.
        addr: SocketAddr,
        /// Why the core closed.
        reason: CloseReason,
        /// What was done (`timings.api_versions` is set when the
        /// failure came after the version negotiation, e.g. in SASL).
        progress: Box<Progress>,
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
            | ConnectError::Dial { .. }
            | ConnectError::SetupTimeout { .. }
            | ConnectError::TlsTimeout { .. } => true,
            ConnectError::Handshake { reason, .. } => reason.is_retriable(),
            ConnectError::Proxy { failure, .. } => failure.is_retriable(),
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

    /// What `connect` got done before it failed: the steps that completed
    /// and their timings, the resolved addresses, every failed TCP attempt.
    /// `None` for failures before any step (an invalid address or
    /// configuration).
    pub fn progress(&self) -> Option<&Progress> {
        match self {
            ConnectError::InvalidAddress { .. }
            | ConnectError::Config(_)
            | ConnectError::TlsConfig(_) => None,
            ConnectError::Resolve { progress, .. }
            | ConnectError::NoAddresses { progress, .. }
            | ConnectError::NoAddressOfFamily { progress, .. }
            | ConnectError::Refused { progress, .. }
            | ConnectError::ConnectTimeout { progress, .. }
            | ConnectError::Tcp { progress, .. }
            | ConnectError::Proxy { progress, .. }
            | ConnectError::Dial { progress, .. }
            | ConnectError::SetupTimeout { progress, .. }
            | ConnectError::CertificateNotTrusted { progress, .. }
            | ConnectError::NameMismatch { progress, .. }
            | ConnectError::InvalidCertificate { progress, .. }
            | ConnectError::NotTls { progress, .. }
            | ConnectError::TlsTimeout { progress, .. }
            | ConnectError::Tls { progress, .. }
            | ConnectError::BrokerSpeaksTls { progress, .. }
            | ConnectError::Handshake { progress, .. } => Some(progress),
        }
    }

    /// The timings of the steps that completed before the failure
    /// (`total` is the time up to the failure); see [`ConnectError::progress`].
    pub fn timings(&self) -> Option<&Timings> {
        self.progress().map(|p| &p.timings)
    }

    /// The certificate chain the broker presented (end entity first) when
    /// the failure is about that certificate; empty otherwise, and also
    /// when the rustls configuration came from [`crate::TlsConfig::from_rustls`]
    /// (its verifier is the application's, so the driver cannot see the
    /// chain of a refused handshake).
    pub fn presented_certificates(&self) -> &[CertificateDer<'static>] {
        match self {
            ConnectError::CertificateNotTrusted { presented, .. }
            | ConnectError::NameMismatch { presented, .. }
            | ConnectError::InvalidCertificate { presented, .. } => presented,
            _ => &[],
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
    /// [`crate::Client::send`] was given a request that gets no response
    /// (Produce `acks=0`): it would wait forever. Nothing was sent; use
    /// [`crate::Client::send_without_response`].
    #[error("this request expects no response (acks=0): use send_without_response")]
    NoResponseExpected,
    /// [`crate::Client::try_send`] found the connection holding as many
    /// requests as it may ([`crate::ConnectConfig::with_max_queued_requests`]):
    /// nothing was queued. Retriable once some of them have finished
    /// (`Client::send` waits for that instead).
    #[error("the connection is overloaded: {max_queued} requests are queued already")]
    Overloaded {
        /// The connection's bound ([`crate::Client::max_queued`]).
        max_queued: usize,
    },
}

impl RequestFailure {
    /// Whether sending again (on a new connection if this one closed) may help.
    pub fn is_retriable(&self) -> bool {
        match self {
            RequestFailure::Refused(SendError::Closed(r)) => r.is_retriable(),
            RequestFailure::Refused(_) => false,
            RequestFailure::Failed(e) => e.is_retriable(),
            RequestFailure::NoResponseExpected => false,
            RequestFailure::Overloaded { .. } => true,
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

/// The setup step of a connection, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SetupStep {
    /// Resolving the host name (and checking the address).
    Resolve,
    /// The TCP connection (every address raced).
    Tcp,
    /// A SOCKS5 or HTTP CONNECT proxy in front of the broker.
    Proxy,
    /// The TLS handshake (and the TLS configuration).
    Tls,
    /// Version negotiation (KIP-511), including a broker that hung up or
    /// failed to answer before it.
    ApiVersions,
    /// SASL authentication.
    Sasl,
}

impl SetupStep {
    /// Every step, in the order a connection goes through them.
    pub const ALL: [SetupStep; 6] = [
        SetupStep::Resolve,
        SetupStep::Tcp,
        SetupStep::Proxy,
        SetupStep::Tls,
        SetupStep::ApiVersions,
        SetupStep::Sasl,
    ];

    /// The label: `resolve`, `tcp`, `proxy`, `tls`, `api_versions`, `sasl`.
    pub fn as_str(self) -> &'static str {
        match self {
            SetupStep::Resolve => "resolve",
            SetupStep::Tcp => "tcp",
            SetupStep::Proxy => "proxy",
            SetupStep::Tls => "tls",
            SetupStep::ApiVersions => "api_versions",
            SetupStep::Sasl => "sasl",
        }
    }

    /// How long `step` took according to `info`'s timings, if it ran.
    pub fn took(self, info: &ConnectInfo) -> Option<Duration> {
        let t = &info.timings;
        match self {
            SetupStep::Resolve => t.resolve,
            SetupStep::Tcp => t.tcp,
            SetupStep::Proxy => t.proxy,
            SetupStep::Tls => t.tls,
            SetupStep::ApiVersions => t.api_versions,
            SetupStep::Sasl => t.sasl,
        }
    }

    /// The step at which `error` failed.
    pub fn of_error(error: &ConnectError) -> SetupStep {
        match error {
            ConnectError::InvalidAddress { .. }
            | ConnectError::Resolve { .. }
            | ConnectError::NoAddresses { .. }
            | ConnectError::NoAddressOfFamily { .. } => SetupStep::Resolve,
            ConnectError::Proxy { .. } => SetupStep::Proxy,
            ConnectError::CertificateNotTrusted { .. }
            | ConnectError::NameMismatch { .. }
            | ConnectError::InvalidCertificate { .. }
            | ConnectError::NotTls { .. }
            | ConnectError::TlsTimeout { .. }
            | ConnectError::Tls { .. }
            | ConnectError::TlsConfig(_)
            | ConnectError::BrokerSpeaksTls { .. } => SetupStep::Tls,
            ConnectError::Handshake { reason, .. } => Self::of_close(reason),
            ConnectError::SetupTimeout { step, .. } => *step,
            _ => SetupStep::Tcp,
        }
    }

    /// The handshake step a connection was in when it closed for `reason`.
    fn of_close(reason: &CloseReason) -> SetupStep {
        let phase = match reason {
            CloseReason::AuthFailed(_) | CloseReason::SessionExpired(_) => return SetupStep::Sasl,
            CloseReason::Broken { during, .. } => *during,
            CloseReason::Timeout(TimeoutKind::Handshake { phase, .. }) => *phase,
            CloseReason::Timeout(TimeoutKind::InternalRequest { api_key, .. }) => {
                return if *api_key == ApiKey::API_VERSIONS {
                    SetupStep::ApiVersions
                } else {
                    SetupStep::Sasl
                };
            }
            _ => Phase::Negotiating,
        };
        match phase {
            Phase::SaslHandshake | Phase::Authenticating | Phase::Reauthenticating => {
                SetupStep::Sasl
            }
            _ => SetupStep::ApiVersions,
        }
    }
}

impl std::fmt::Display for SetupStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SetupStep::Resolve => "DNS resolution",
            SetupStep::Tcp => "the TCP connect",
            SetupStep::Proxy => "the proxy tunnel",
            SetupStep::Tls => "the TLS handshake",
            SetupStep::ApiVersions => "version negotiation (ApiVersions)",
            SetupStep::Sasl => "SASL authentication",
        })
    }
}

/// The step a connection attempt is at, shared with whoever may drop it
/// before it ends (a [`Cluster`](crate::Cluster)'s setup timeout), so that
/// [`ConnectError::SetupTimeout`] can say where it was. Set by the dial
/// (resolve, TCP, proxy), the TLS handshake, and the connection's task
/// (ApiVersions, then SASL).
#[derive(Debug, Default)]
pub(crate) struct SetupMark(AtomicU8);

impl SetupMark {
    /// The attempt is at `step` now.
    pub(crate) fn set(&self, step: SetupStep) {
        let i = SetupStep::ALL.iter().position(|s| *s == step).unwrap_or(0);
        self.0.store(i as u8, Ordering::Relaxed);
    }

    /// The step last set (`Resolve` before any).
    pub(crate) fn get(&self) -> SetupStep {
        SetupStep::ALL
            .get(usize::from(self.0.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or(SetupStep::Resolve)
    }
}
