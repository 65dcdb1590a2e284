//! What the policy asks the driver to do ([`Action`]) and what it reports
//! ([`Event`]).

use std::fmt;
use std::time::Duration;

use crate::error::{Failure, RouteError};
use crate::ids::{Address, ConnId, NodeId};

/// Something the driver must do, from [`crate::ClusterPolicy::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Open a connection: resolve `address` (every time: DNS may have
    /// changed), try each resolved address, TLS, then run a core
    /// `Connection` until its `Ready` event, and report the outcome with
    /// [`crate::ClusterPolicy::handle_connected`],
    /// [`crate::ClusterPolicy::handle_dial_failed`] or
    /// [`crate::ClusterPolicy::handle_closed`]. The policy enforces
    /// `setup_timeout` itself (it sends [`Action::Close`] with
    /// [`CloseWhy::SetupTimeout`]); a driver may also bound its connect
    /// call with it. There is never more than one dial per node at a time.
    Dial {
        /// The new connection's name: every report about it carries it.
        conn: ConnId,
        /// Where to connect.
        address: Address,
        /// This attempt's setup timeout (grows with consecutive failures).
        setup_timeout: Duration,
    },
    /// Close this connection (or abandon its dial). Nothing is in flight on
    /// it unless `why` is [`CloseWhy::Shutdown`]. The policy has already
    /// forgotten it: reports about it are ignored.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        why: CloseWhy,
    },
    /// Send a Metadata request through this node (route it with
    /// [`crate::Target::Node`], which may dial first) and hand the response
    /// to [`crate::ClusterPolicy::handle_metadata`], or report a failure
    /// with [`crate::ClusterPolicy::handle_metadata_failed`]. The policy
    /// asks for no other refresh until one of the two.
    RefreshMetadata {
        /// The node chosen (the least loaded usable one).
        via: NodeId,
    },
    /// Wake the callers parked on `node` (those that got
    /// [`crate::Route::Wait`]): its dial is over. On `Ok` they route again
    /// (the node is ready now); on `Err` they fail with the error.
    Wake {
        /// The node whose dial ended.
        node: NodeId,
        /// How many callers the policy counted as waiting.
        waiters: u32,
        /// The connection, or why there is none.
        outcome: Result<ConnId, RouteError>,
    },
}

/// Why the policy closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseWhy {
    /// The dial took longer than its setup timeout.
    SetupTimeout,
    /// The connection cap was reached: this was the least recently used idle one.
    LeastRecentlyUsed,
    /// Metadata no longer lists the node (closed once nothing was in flight).
    NodeRemoved,
    /// Metadata gives the node a new address (closed once nothing was in flight).
    AddressChanged,
    /// The table went back to the bootstrap addresses.
    Rebootstrap,
    /// [`crate::ClusterPolicy::close`].
    Shutdown,
}

impl fmt::Display for CloseWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseWhy::SetupTimeout => "connection setup timed out",
            CloseWhy::LeastRecentlyUsed => {
                "least recently used idle connection closed to stay within max_connections"
            }
            CloseWhy::NodeRemoved => "the node left the cluster's metadata",
            CloseWhy::AddressChanged => "the node's advertised address changed",
            CloseWhy::Rebootstrap => "rebootstrapping",
            CloseWhy::Shutdown => "the cluster is closing",
        })
    }
}

/// Why the table went back to the bootstrap addresses (KIP-899, KIP-1102).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RebootstrapReason {
    /// No node could be reached for `rebootstrap_after`.
    NoNodeReachable {
        /// How long none could be.
        for_: Duration,
    },
    /// A broker answered with REBOOTSTRAP_REQUIRED (129).
    RebootstrapRequired,
    /// [`crate::ClusterPolicy::rebootstrap`].
    Requested,
}

impl fmt::Display for RebootstrapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RebootstrapReason::NoNodeReachable { for_ } => {
                write!(f, "no known node could be reached for {for_:?}")
            }
            RebootstrapReason::RebootstrapRequired => {
                f.write_str("a broker answered REBOOTSTRAP_REQUIRED (129)")
            }
            RebootstrapReason::Requested => f.write_str("the application asked"),
        }
    }
}

/// Something that happened, for logs, metrics and the application, from
/// [`crate::ClusterPolicy::poll_event`]. Nothing needs doing about them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Metadata added a node.
    NodeAdded {
        /// The node.
        node: NodeId,
        /// Its address.
        address: Address,
        /// Its rack.
        rack: Option<String>,
    },
    /// A node left the table (Metadata no longer lists it; bootstrap entries
    /// leave at the first Metadata).
    NodeRemoved {
        /// The node.
        node: NodeId,
    },
    /// Metadata moved a node: its connection is replaced.
    NodeAddressChanged {
        /// The node.
        node: NodeId,
        /// The old address.
        from: Address,
        /// The new address.
        to: Address,
    },
    /// A Metadata response named another cluster than the table's. It was
    /// not merged. [`crate::ClusterPolicy::accept_cluster_id`] adopts the new one.
    ClusterIdChanged {
        /// The cluster id the table has.
        expected: Option<String>,
        /// The one the response named.
        got: Option<String>,
    },
    /// A Metadata response was merged into the table.
    MetadataUpdated {
        /// Its version.
        version: i16,
        /// How many brokers it listed.
        brokers: usize,
    },
    /// A connection is ready for requests.
    Connected {
        /// The connection.
        conn: ConnId,
    },
    /// A dial failed or a connection broke.
    ConnectionFailed {
        /// The node.
        node: NodeId,
        /// Consecutive failures so far.
        failures: u32,
        /// What happened.
        failure: Failure,
    },
    /// A node's circuit opened: requests for it fail at once until a probe succeeds.
    CircuitOpened {
        /// The node.
        node: NodeId,
        /// Consecutive failures so far.
        failures: u32,
    },
    /// A node's cool-down ended: the next request for it is the probe.
    CircuitHalfOpen {
        /// The node.
        node: NodeId,
    },
    /// A probe succeeded: the node's circuit is closed again.
    CircuitClosed {
        /// The node.
        node: NodeId,
    },
    /// The table went back to the bootstrap addresses.
    Rebootstrapped {
        /// Why.
        reason: RebootstrapReason,
    },
}
