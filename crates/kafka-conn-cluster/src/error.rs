//! Why a node cannot be used, why a dial failed, what is wrong with the input.
//!
//! Every error names the node and its address, says what step failed, and
//! (through [`Failure`]) carries the typed cause: the core's
//! [`CloseReason`] for a connection that closed, the driver's description for
//! a dial that failed, or the policy's own setup timeout.

use std::fmt;
use std::time::Duration;

use kafka_conn_core::wire::DecodeError;
use kafka_conn_core::CloseReason;

use crate::ids::{Address, NodeId};

/// A bootstrap list the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// No address at all.
    #[error("the bootstrap list is empty: give at least one host:port")]
    Empty,
    /// One address cannot be used.
    #[error("bootstrap address {address:?}: {why}")]
    Invalid {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// A configuration the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A maximum below its initial value.
    #[error("{max_name} ({max:?}) is below {name} ({initial:?})")]
    MaxBelowInitial {
        /// The initial value's name.
        name: &'static str,
        /// The initial value.
        initial: Duration,
        /// The maximum's name.
        max_name: &'static str,
        /// The maximum.
        max: Duration,
    },
    /// A value that must not be zero.
    #[error("{0} must not be zero")]
    Zero(&'static str),
    /// Jitter above 100 %.
    #[error("jitter of {0} per mille is above 1000 (100 %)")]
    Jitter(u16),
}

/// The step of setting up a connection that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DialStep {
    /// Resolving the host name (DNS).
    Resolve,
    /// The TCP connection (every resolved address was tried).
    Connect,
    /// A proxy in front of the broker.
    Proxy,
    /// The TLS handshake.
    Tls,
    /// The Kafka handshake on the new connection: ApiVersions and SASL (the
    /// core closed it before it was ready).
    Handshake,
}

impl fmt::Display for DialStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DialStep::Resolve => "resolving the host name",
            DialStep::Connect => "the TCP connection",
            DialStep::Proxy => "the proxy",
            DialStep::Tls => "the TLS handshake",
            DialStep::Handshake => "the Kafka handshake (ApiVersions, SASL)",
        })
    }
}

/// A dial that failed before the connection existed, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialFailure {
    /// The step that failed.
    pub step: DialStep,
    /// The I/O error's kind, if it was one.
    pub kind: Option<std::io::ErrorKind>,
    /// What happened, for people ("connection refused (127.0.0.1:9092)").
    pub message: String,
}

impl DialFailure {
    /// A failure at `step` described by `message`.
    pub fn new(step: DialStep, message: impl Into<String>) -> Self {
        Self {
            step,
            kind: None,
            message: message.into(),
        }
    }

    /// A failure at `step` from an I/O error.
    pub fn io(step: DialStep, error: &std::io::Error) -> Self {
        Self {
            step,
            kind: Some(error.kind()),
            message: error.to_string(),
        }
    }
}

impl fmt::Display for DialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.step, self.message)
    }
}

/// Why the last attempt to use a node failed: what a request for a node in
/// backoff or with an open circuit is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The dial failed (DNS, TCP, proxy, TLS).
    Dial(DialFailure),
    /// The connection was not ready within the policy's setup timeout.
    SetupTimeout {
        /// The timeout of that attempt.
        after: Duration,
    },
    /// The connection closed, before it was ready ([`DialStep::Handshake`])
    /// or after; the core's reason says what happened.
    Closed {
        /// Whether the connection had been ready.
        was_ready: bool,
        /// The core's typed reason (boxed: it is large, and errors that
        /// carry it travel through every caller's `Result`).
        reason: Box<CloseReason>,
    },
}

impl Failure {
    /// The step in which it happened; `None` for a ready connection that closed.
    pub fn step(&self) -> Option<DialStep> {
        match self {
            Failure::Dial(d) => Some(d.step),
            Failure::SetupTimeout { .. } => None,
            Failure::Closed {
                was_ready: false, ..
            } => Some(DialStep::Handshake),
            Failure::Closed {
                was_ready: true, ..
            } => None,
        }
    }

    /// Whether dialing again may help. A refused authentication, a TLS or
    /// protocol mismatch or an incompatible broker fails the same way every
    /// time: the policy opens the circuit at once for those.
    pub fn is_retriable(&self) -> bool {
        match self {
            Failure::Dial(_) | Failure::SetupTimeout { .. } => true,
            Failure::Closed { reason, .. } => reason.is_retriable(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Dial(d) => d.fmt(f),
            Failure::SetupTimeout { after } => {
                write!(
                    f,
                    "the connection was not ready within the setup timeout of {after:?}"
                )
            }
            Failure::Closed {
                was_ready: false,
                reason,
            } => write!(f, "closed during {}: {reason}", DialStep::Handshake),
            Failure::Closed {
                was_ready: true,
                reason,
            } => write!(f, "the connection closed: {reason}"),
        }
    }
}

/// Why a request cannot be routed to a node now. Never a wait: the caller
/// gets this at once and decides (fail, or retry after `retry_in`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The node is not in the table (never was, or Metadata dropped it).
    #[error("{0} is not in the cluster's metadata")]
    UnknownNode(NodeId),
    /// The node's last dial failed and its reconnect backoff runs.
    #[error("{node} ({address}) is backing off for {retry_in:?} after: {last}")]
    BackingOff {
        /// The node.
        node: NodeId,
        /// Its address.
        address: Address,
        /// Time until the next dial is allowed.
        retry_in: Duration,
        /// The failure that started the backoff.
        last: Failure,
    },
    /// The node's circuit breaker is open (or half-open with its one probe
    /// under way).
    #[error("{node} ({address}): circuit open after {failures} consecutive failures{}; last: {last}",
        match .retry_in { Some(d) => format!(", next probe in {d:?}"), None => ", a probe is under way".to_owned() })]
    CircuitOpen {
        /// The node.
        node: NodeId,
        /// Its address.
        address: Address,
        /// Consecutive failures so far.
        failures: u32,
        /// Time until a probe is let through; `None` while the probe runs.
        retry_in: Option<Duration>,
        /// The last failure.
        last: Failure,
    },
    /// The dial this request waited on failed.
    #[error("{node} ({address}): {failure}")]
    DialFailed {
        /// The node.
        node: NodeId,
        /// Its address.
        address: Address,
        /// Why.
        failure: Failure,
    },
    /// No node can take a request now: each one is backing off or has an open
    /// circuit (or the table is being replaced).
    #[error("no node of {nodes} is usable now{}{}",
        match .retry_in { Some(d) => format!(" (the first backoff ends in {d:?})"), None => String::new() },
        match .last { Some((n, f)) => format!("; last failure at {n}: {f}"), None => String::new() })]
    NoNodeAvailable {
        /// How many nodes the table has.
        nodes: usize,
        /// Time until the first backoff ends, if any will.
        retry_in: Option<Duration>,
        /// The most recent failure of any node.
        last: Option<(NodeId, Failure)>,
    },
    /// Opening one more connection would exceed `max_connections` and every
    /// open connection is busy.
    #[error("{node}: all {max} allowed connections are open and busy (max_connections)")]
    ConnectionLimit {
        /// The node that needed a connection.
        node: NodeId,
        /// The configured maximum.
        max: usize,
    },
    /// The node left the table (Metadata no longer lists it, or a rebootstrap
    /// replaced the table) while the request waited for its dial.
    #[error("{0} was removed from the cluster's metadata while connecting")]
    NodeRemoved(NodeId),
    /// The policy was closed.
    #[error("the cluster is closed")]
    Closed,
}

impl RouteError {
    /// Whether asking again later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            RouteError::DialFailed { failure, .. } => failure.is_retriable(),
            RouteError::CircuitOpen { .. }
            | RouteError::BackingOff { .. }
            | RouteError::NoNodeAvailable { .. }
            | RouteError::ConnectionLimit { .. }
            | RouteError::NodeRemoved(_)
            | RouteError::UnknownNode(_) => true,
            RouteError::Closed => false,
        }
    }
}

/// A Metadata response the policy refused. The node table is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The version is not one this decoder knows (v0 to v13).
    #[error("Metadata v{0} is not supported (v0 to v13 are)")]
    UnsupportedVersion(i16),
    /// The body does not decode.
    #[error("cannot decode the Metadata v{version} response: {error}")]
    Decode {
        /// The response version.
        version: i16,
        /// What was wrong.
        error: DecodeError,
    },
    /// The response lists no broker.
    #[error("the Metadata response lists no broker")]
    NoBrokers,
    /// Two brokers with the same node id.
    #[error("the Metadata response lists node {0} twice")]
    DuplicateNode(i32),
    /// A broker with a negative node id (those are the bootstrap entries').
    #[error("the Metadata response lists a broker with the negative node id {0}")]
    NegativeNodeId(i32),
    /// A broker with an unusable port.
    #[error("the Metadata response gives node {node} the port {port} (1 to 65535 expected)")]
    BadPort {
        /// The node.
        node: i32,
        /// The port as sent.
        port: i32,
    },
    /// A broker with an unusable host.
    #[error("the Metadata response gives node {node} the host {host:?}: {why}")]
    BadHost {
        /// The node.
        node: i32,
        /// The host as sent.
        host: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The response's top-level error code (v13+) is not 0.
    #[error("the Metadata response carries error {code} {}", crate::metadata::error_name(*.code))]
    TopLevelError {
        /// The Kafka error code.
        code: i16,
    },
    /// The response comes from another cluster than the table's: it was not
    /// merged (see [`crate::Event::ClusterIdChanged`]).
    #[error("the Metadata response is from cluster {got:?}, not {expected:?}: not merged")]
    ClusterIdMismatch {
        /// The cluster id the table has.
        expected: Option<String>,
        /// The cluster id in the response.
        got: Option<String>,
    },
    /// The policy was closed.
    #[error("the cluster is closed")]
    Closed,
}
