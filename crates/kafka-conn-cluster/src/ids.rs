//! Names for nodes and connections.

use std::fmt;

/// A node of the table: a broker's id from Metadata (`>= 0`), or a bootstrap
/// address (`-1`, `-2`, … in the order given, as the Java client numbers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub i32);

impl NodeId {
    /// Whether this is a bootstrap entry rather than a broker from Metadata.
    pub fn is_bootstrap(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_bootstrap() {
            write!(f, "bootstrap node {}", self.0)
        } else {
            write!(f, "node {}", self.0)
        }
    }
}

/// One connection attempt to a node, from its [`crate::Action::Dial`] until it is
/// closed. Every report about a connection names it, so a report about a
/// connection the policy has already given up (a late dial result after a
/// setup timeout, a close after [`crate::Action::Close`]) is recognised and
/// ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId {
    node: NodeId,
    seq: u64,
}

impl ConnId {
    pub(crate) fn new(node: NodeId, seq: u64) -> Self {
        Self { node, seq }
    }

    /// The node this connection goes to.
    pub fn node(self) -> NodeId {
        self.node
    }

    /// A number unique among the connections of one policy.
    pub fn seq(self) -> u64 {
        self.seq
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} connection #{}", self.node, self.seq)
    }
}

/// Where a node listens: a host name or IP literal and a port, as the
/// bootstrap list or the broker's Metadata advertises it. Names are resolved
/// by the driver on every dial.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Host name or IP address (an IPv6 literal without brackets).
    pub host: String,
    /// TCP port, never 0.
    pub port: u16,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
