//! [`ClusterError`]: why a cluster call failed, naming the node, its
//! address and the step, with the typed cause.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kafka_conn_cluster::{
    Address, BootstrapError, DialFailure, DialStep, Failure, MetadataError, NodeId, RouteError,
};
use kafka_conn_core::CloseReason;

use crate::error::{ConnectError, RequestFailure, SetupStep};

/// Why a [`Cluster`](super::Cluster) call failed. Every failure about a
/// node names it and the address it was tried at; a failed dial also says
/// the step (DNS, TCP, TLS, the Kafka handshake) and keeps the
/// [`ConnectError`] with its progress (timings, every TCP attempt, the
/// certificates presented), shared by every caller that waited on that
/// dial. Cheap to clone.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The bootstrap list cannot be used (empty, no port, …): the error
    /// names the address.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// The configuration cannot be used.
    #[error("invalid cluster configuration: {0}")]
    Config(String),
    /// Connecting to the node failed: DNS, TCP, TLS, the Kafka handshake,
    /// or the setup timeout.
    #[error("{}", Unreachable::new(.node, .address, .step, .failure))]
    Unreachable {
        /// The node.
        node: NodeId,
        /// The address dialed: from the bootstrap list for a bootstrap
        /// node (negative id), else as the broker advertises it in Metadata.
        address: Address,
        /// The step that failed (`None`: the setup timeout ran out).
        step: Option<DialStep>,
        /// What happened.
        failure: Failure,
        /// The connect error itself, with its progress and the certificates
        /// presented (`None` for a setup timeout).
        connect_error: Option<Arc<ConnectError>>,
    },
    /// The node's last attempt failed and its reconnect backoff runs:
    /// nothing was dialed. Try again after `retry_in`.
    #[error("{}", backing_off(.node, .address, .retry_in, .last))]
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
    /// The node's circuit breaker is open after consecutive failures (or
    /// one no retry can fix): requests fail at once until a probe succeeds.
    #[error("{}", circuit_open(.node, .address, .failures, .retry_in, .last))]
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
    /// The cluster's Metadata lists no such node.
    #[error("{0} is not in the cluster's metadata")]
    UnknownNode(NodeId),
    /// No node can take a request now: each is backing off or has an open circuit.
    #[error("{}", no_node_available(.nodes, .retry_in, .last))]
    NoNodeAvailable {
        /// How many nodes the table has.
        nodes: usize,
        /// Time until the first backoff ends, if any will.
        retry_in: Option<Duration>,
        /// The most recent failure of any node.
        last: Option<(NodeId, Failure)>,
    },
    /// A new connection would exceed `max_connections` and every open one
    /// is busy.
    #[error("{node}: all {max} allowed connections are open and busy (max_connections)")]
    ConnectionLimit {
        /// The node that needed a connection.
        node: NodeId,
        /// The configured maximum.
        max: usize,
    },
    /// The node left the cluster's Metadata (or the cluster rebootstrapped)
    /// while the call waited for its connection.
    #[error("{0} was removed from the cluster's metadata while connecting")]
    NodeRemoved(NodeId),
    /// The request was sent on the node's connection and got no response:
    /// it timed out, or the connection closed (see
    /// [`ClusterError::close_reason`]).
    #[error("{node} ({address}): {failure}")]
    Request {
        /// The node.
        node: NodeId,
        /// Its address.
        address: Address,
        /// Why: the connection's error.
        failure: RequestFailure,
    },
    /// A Metadata response was refused: malformed, another cluster's, or
    /// carrying a top-level error (REBOOTSTRAP_REQUIRED rebootstraps). The
    /// node table is unchanged.
    #[error("Metadata from {node}: {error}")]
    Metadata {
        /// The node that answered.
        node: NodeId,
        /// What was wrong.
        error: MetadataError,
    },
    /// The node does not support a Metadata version the cluster can read
    /// (v1 to v13: every broker since Kafka 0.10 has v1).
    #[error("{node} ({address}) supports no Metadata version from v1 to v13")]
    MetadataUnsupported {
        /// The node.
        node: NodeId,
        /// Its address.
        address: Address,
    },
    /// [`Cluster::connect`](super::Cluster::connect) got no Metadata: every
    /// bootstrap address failed, each for the reason listed.
    #[error("no bootstrap address answered Metadata: {}", list(.failures))]
    BootstrapFailed {
        /// One failure per bootstrap address (the last of each).
        failures: Vec<ClusterError>,
    },
    /// [`Cluster::connect`](super::Cluster::connect) got no Metadata within
    /// the bootstrap timeout.
    #[error("no Metadata within the bootstrap timeout of {after:?}{}",
        if .failures.is_empty() { String::new() } else { format!("; failures: {}", list(.failures)) })]
    BootstrapTimeout {
        /// The bootstrap timeout.
        after: Duration,
        /// The failures seen until then.
        failures: Vec<ClusterError>,
    },
    /// The policy refused in a way this driver does not know yet.
    #[error(transparent)]
    Route(RouteError),
    /// The cluster was closed.
    #[error("the cluster is closed")]
    Closed,
}

impl ClusterError {
    /// Whether trying again later may succeed: a node backing off, a
    /// refused dial that a retry can fix, a request whose connection
    /// broke, … but not a refused authentication, a TLS or protocol
    /// mismatch, a bad configuration or a closed cluster.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClusterError::Unreachable {
                failure,
                connect_error,
                ..
            } => connect_error
                .as_ref()
                .map_or_else(|| failure.is_retriable(), |e| e.is_retriable()),
            ClusterError::BackingOff { .. }
            | ClusterError::CircuitOpen { .. }
            | ClusterError::UnknownNode(_)
            | ClusterError::NoNodeAvailable { .. }
            | ClusterError::ConnectionLimit { .. }
            | ClusterError::NodeRemoved(_) => true,
            ClusterError::Request { failure, .. } => failure.is_retriable(),
            ClusterError::Metadata { error, .. } => matches!(
                error,
                MetadataError::TopLevelError { .. } | MetadataError::NoBrokers
            ),
            ClusterError::BootstrapFailed { failures }
            | ClusterError::BootstrapTimeout { failures, .. } => {
                failures.is_empty() || failures.iter().any(ClusterError::is_retriable)
            }
            ClusterError::Route(e) => e.is_retriable(),
            ClusterError::Bootstrap(_)
            | ClusterError::Config(_)
            | ClusterError::MetadataUnsupported { .. }
            | ClusterError::Closed => false,
        }
    }

    /// The node the failure is about, if it is about one.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            ClusterError::Unreachable { node, .. }
            | ClusterError::BackingOff { node, .. }
            | ClusterError::CircuitOpen { node, .. }
            | ClusterError::ConnectionLimit { node, .. }
            | ClusterError::Request { node, .. }
            | ClusterError::Metadata { node, .. }
            | ClusterError::MetadataUnsupported { node, .. } => Some(*node),
            ClusterError::UnknownNode(node) | ClusterError::NodeRemoved(node) => Some(*node),
            _ => None,
        }
    }

    /// The connection's close reason, when the failure is that it closed
    /// (during its handshake or with the request in flight).
    pub fn close_reason(&self) -> Option<&CloseReason> {
        let failure = match self {
            ClusterError::Request { failure, .. } => return failure.close_reason(),
            ClusterError::Unreachable { failure, .. } => failure,
            ClusterError::BackingOff { last, .. } | ClusterError::CircuitOpen { last, .. } => last,
            _ => return None,
        };
        match failure {
            Failure::Closed { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The error of the failed connect, with its progress (timings, every
    /// TCP attempt) and the certificates the broker presented.
    pub fn connect_error(&self) -> Option<&ConnectError> {
        match self {
            ClusterError::Unreachable { connect_error, .. } => connect_error.as_deref(),
            _ => None,
        }
    }

    /// The error for a policy's refusal; `connect_error` is the node's last
    /// failed connect, if the refusal is that dial's failure.
    pub(crate) fn from_route(
        error: RouteError,
        connect_error: impl FnOnce(NodeId) -> Option<Arc<ConnectError>>,
    ) -> Self {
        match error {
            RouteError::DialFailed {
                node,
                address,
                failure,
            } => ClusterError::Unreachable {
                node,
                address,
                step: failure.step(),
                connect_error: match failure {
                    Failure::SetupTimeout { .. } => None,
                    _ => connect_error(node),
                },
                failure,
            },
            RouteError::BackingOff {
                node,
                address,
                retry_in,
                last,
            } => ClusterError::BackingOff {
                node,
                address,
                retry_in,
                last,
            },
            RouteError::CircuitOpen {
                node,
                address,
                failures,
                retry_in,
                last,
            } => ClusterError::CircuitOpen {
                node,
                address,
                failures,
                retry_in,
                last,
            },
            RouteError::UnknownNode(node) => ClusterError::UnknownNode(node),
            RouteError::NoNodeAvailable {
                nodes,
                retry_in,
                last,
            } => ClusterError::NoNodeAvailable {
                nodes,
                retry_in,
                last,
            },
            RouteError::ConnectionLimit { node, max } => {
                ClusterError::ConnectionLimit { node, max }
            }
            RouteError::NodeRemoved(node) => ClusterError::NodeRemoved(node),
            RouteError::Closed => ClusterError::Closed,
            other => ClusterError::Route(other),
        }
    }
}

/// How the policy is told about a failed connect: the step it failed at and
/// a message for people, or (for the Kafka handshake) the core's reason.
pub(crate) enum Reported {
    /// Before the connection existed: DNS, TCP, TLS.
    Dial(DialFailure),
    /// The core closed it during the Kafka handshake.
    Handshake(CloseReason),
}

impl Reported {
    pub(crate) fn of(error: &ConnectError) -> Self {
        if let ConnectError::Handshake { reason, .. } = error {
            return Reported::Handshake(reason.clone());
        }
        // One classification of the steps serves the observers
        // (`SetupStep::of_error`) and the policy: a proxy that refused, an
        // address family with no address or a setup timeout during TLS are
        // told as what they are, not as a TCP failure.
        let step = match SetupStep::of_error(error) {
            SetupStep::Resolve => DialStep::Resolve,
            SetupStep::Tcp => DialStep::Connect,
            SetupStep::Proxy => DialStep::Proxy,
            SetupStep::Tls => DialStep::Tls,
            SetupStep::ApiVersions | SetupStep::Sasl => DialStep::Handshake,
        };
        let kind = match error {
            ConnectError::Resolve { source, .. } | ConnectError::Tcp { source, .. } => {
                Some(source.kind())
            }
            ConnectError::Refused { .. } => Some(std::io::ErrorKind::ConnectionRefused),
            ConnectError::ConnectTimeout { .. } | ConnectError::SetupTimeout { .. } => {
                Some(std::io::ErrorKind::TimedOut)
            }
            _ => None,
        };
        Reported::Dial(DialFailure {
            step,
            kind,
            message: error.to_string(),
        })
    }
}

/// The text of [`ClusterError::Unreachable`].
struct Unreachable<'a> {
    node: &'a NodeId,
    address: &'a Address,
    step: &'a Option<DialStep>,
    failure: &'a Failure,
}

impl<'a> Unreachable<'a> {
    fn new(
        node: &'a NodeId,
        address: &'a Address,
        step: &'a Option<DialStep>,
        failure: &'a Failure,
    ) -> Self {
        Self {
            node,
            address,
            step,
            failure,
        }
    }
}

impl fmt::Display for Unreachable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot connect to {} at {}: {}",
            self.node, self.address, self.failure
        )?;
        // The most common Kafka connection problem: the bootstrap address
        // works, the address a broker advertises does not (a container's
        // or a private network's name, a port only open inside).
        let advertised_unreachable = matches!(
            self.step,
            Some(DialStep::Resolve | DialStep::Connect | DialStep::Tls)
        ) || self.step.is_none();
        if !self.node.is_bootstrap() && advertised_unreachable {
            write!(
                f,
                " (this is the address the broker advertises in Metadata: check its advertised.listeners and that {} is reachable from here)",
                self.address
            )?;
        }
        Ok(())
    }
}

// The texts of the refusals [`ClusterError`] mirrors are the policy's own
// (one wording, in `kafka-conn-cluster`).

fn backing_off(node: &NodeId, address: &Address, retry_in: &Duration, last: &Failure) -> String {
    RouteError::BackingOff {
        node: *node,
        address: address.clone(),
        retry_in: *retry_in,
        last: last.clone(),
    }
    .to_string()
}

fn circuit_open(
    node: &NodeId,
    address: &Address,
    failures: &u32,
    retry_in: &Option<Duration>,
    last: &Failure,
) -> String {
    RouteError::CircuitOpen {
        node: *node,
        address: address.clone(),
        failures: *failures,
        retry_in: *retry_in,
        last: last.clone(),
    }
    .to_string()
}

fn no_node_available(
    nodes: &usize,
    retry_in: &Option<Duration>,
    last: &Option<(NodeId, Failure)>,
) -> String {
    RouteError::NoNodeAvailable {
        nodes: *nodes,
        retry_in: *retry_in,
        last: last.clone(),
    }
    .to_string()
}

fn list(errors: &[ClusterError]) -> String {
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

#[cfg(test)]
mod tests {
    use kafka_conn_core::{BrokenCause, Phase};

    use super::*;

    fn address(port: u16) -> Address {
        Address {
            host: "127.0.0.1".to_owned(),
            port,
        }
    }

    /// The step the policy is told: the same classification as the
    /// observers' (`SetupStep::of_error`), so that a proxy's refusal, a
    /// family with no address and a setup timeout in TLS are not reported
    /// as failures of the TCP connection.
    #[test]
    fn failed_connects_are_reported_at_the_step_they_failed() {
        let step = |error: ConnectError| match Reported::of(&error) {
            Reported::Dial(failure) => (failure.step, failure.kind),
            Reported::Handshake(reason) => panic!("{error}: handshake {reason}"),
        };
        let proxy = ConnectError::Proxy {
            kind: crate::ProxyKind::Socks5,
            proxy: "socks5://127.0.0.1:1080".to_owned(),
            step: crate::ProxyStep::Connect,
            failure: crate::ProxyFailure::Io("connection refused".to_owned()),
            progress: Box::default(),
        };
        assert_eq!(step(proxy), (DialStep::Proxy, None));
        let family = ConnectError::NoAddressOfFamily {
            host: "broker".to_owned(),
            family: crate::AddressFamily::V6Only,
            progress: Box::default(),
        };
        assert_eq!(step(family), (DialStep::Resolve, None));
        for (during, expected) in [
            (SetupStep::Tcp, DialStep::Connect),
            (SetupStep::Tls, DialStep::Tls),
            (SetupStep::Sasl, DialStep::Handshake),
        ] {
            let timeout = ConnectError::SetupTimeout {
                target: "broker:9092".to_owned(),
                after: Duration::from_secs(10),
                step: during,
                progress: Box::default(),
            };
            assert_eq!(
                step(timeout),
                (expected, Some(std::io::ErrorKind::TimedOut)),
                "{during:?}"
            );
        }
        let eof = CloseReason::Broken {
            cause: BrokenCause::Eof,
            during: Phase::Negotiating,
        };
        let handshake = ConnectError::Handshake {
            addr: "127.0.0.1:9092".parse().unwrap(),
            reason: eof.clone(),
            progress: Box::default(),
        };
        assert!(matches!(Reported::of(&handshake), Reported::Handshake(r) if r == eof));
    }

    #[test]
    fn texts_name_node_address_and_step_and_point_at_advertised_listeners() {
        let refused = Failure::Dial(DialFailure::new(
            DialStep::Connect,
            "connection refused by 127.0.0.1:1",
        ));
        let advertised = ClusterError::from_route(
            RouteError::DialFailed {
                node: NodeId(2),
                address: address(1),
                failure: refused.clone(),
            },
            |_| None,
        );
        let text = advertised.to_string();
        assert!(text.starts_with("cannot connect to node 2 at 127.0.0.1:1: the TCP connection failed: connection refused"), "{text}");
        assert!(text.contains("advertised.listeners"), "{text}");
        assert!(advertised.is_retriable());
        assert_eq!(advertised.node(), Some(NodeId(2)));

        // A bootstrap address is the user's own: no advertised.listeners hint.
        let bootstrap = ClusterError::from_route(
            RouteError::DialFailed {
                node: NodeId(-1),
                address: address(1),
                failure: refused,
            },
            |_| None,
        );
        assert!(!bootstrap.to_string().contains("advertised"), "{bootstrap}");
        assert!(bootstrap.to_string().contains("bootstrap node -1"));

        // The handshake's close reason is the step and the reason.
        let eof = CloseReason::Broken {
            cause: BrokenCause::Eof,
            during: Phase::Negotiating,
        };
        let handshake = ClusterError::from_route(
            RouteError::DialFailed {
                node: NodeId(1),
                address: address(9092),
                failure: Failure::Closed {
                    was_ready: false,
                    reason: Box::new(eof.clone()),
                },
            },
            |_| None,
        );
        let ClusterError::Unreachable { step, .. } = &handshake else {
            panic!("{handshake:?}")
        };
        assert_eq!(*step, Some(DialStep::Handshake));
        assert_eq!(handshake.close_reason(), Some(&eof));
        assert!(!handshake.to_string().contains("advertised"), "{handshake}");

        let both = ClusterError::BootstrapFailed {
            failures: vec![bootstrap, handshake],
        };
        assert!(
            both.to_string().starts_with(
                "no bootstrap address answered Metadata: cannot connect to bootstrap node -1"
            ),
            "{both}"
        );
        assert!(both.is_retriable());
        assert!(!ClusterError::Closed.is_retriable());
        assert_eq!(
            ClusterError::from_route(RouteError::Closed, |_| None).to_string(),
            "the cluster is closed"
        );
    }
}
