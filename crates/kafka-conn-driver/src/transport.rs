//! The dialer hook's types: what a dialer is asked ([`DialRequest`]) and
//! what it returns ([`Dialed`]). The driver calls the hook for every
//! connection made with the configuration, in place of resolution, TCP
//! and any proxy; TLS and the Kafka handshake still run on top.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::BoxFuture;
use crate::stream::Transport;

/// What a dialer ([`ConnectConfig::with_dialer`](crate::ConnectConfig::with_dialer))
/// is asked for: a byte stream to the broker at `host:port` within
/// `setup_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DialRequest {
    /// The broker's host, as given (a name or an IP literal).
    pub host: String,
    /// The broker's port.
    pub port: u16,
    /// How long the dial may take: the connect timeout, or the growing
    /// per-node setup timeout of a cluster. The driver also bounds the
    /// dialer's future by it.
    pub setup_timeout: Duration,
}

impl DialRequest {
    /// A request for `host:port` within `setup_timeout`.
    pub fn new(host: impl Into<String>, port: u16, setup_timeout: Duration) -> Self {
        Self {
            host: host.into(),
            port,
            setup_timeout,
        }
    }
}

impl fmt::Display for DialRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A byte stream a dialer opened, for the driver to run TLS (if
/// configured) and Kafka over.
pub struct Dialed {
    pub(crate) transport: Box<dyn Transport>,
    pub(crate) peer: Option<SocketAddr>,
}

impl fmt::Debug for Dialed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialed")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Dialed {
    /// `transport`, whatever it is: a Unix socket, a pipe, a TCP stream
    /// dialed your own way (wrapped for futures-io).
    pub fn new(transport: impl Transport) -> Self {
        Self {
            transport: Box::new(transport),
            peer: None,
        }
    }

    /// The IP address at the other end, when there is one: it becomes
    /// [`ConnectInfo::address`](crate::ConnectInfo::address) (otherwise
    /// the unspecified `0.0.0.0:0`).
    #[must_use]
    pub fn with_peer_addr(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }
}

/// The dialer, boxed.
pub(crate) type DialFn =
    Arc<dyn Fn(DialRequest) -> BoxFuture<'static, io::Result<Dialed>> + Send + Sync>;

/// Boxes a dialer closure.
pub(crate) fn dial_fn<F, Fut>(dialer: F) -> DialFn
where
    F: Fn(DialRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<Dialed>> + Send + 'static,
{
    Arc::new(move |request| Box::pin(dialer(request)))
}
