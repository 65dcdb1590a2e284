//! [`Cluster`]: a whole Kafka cluster from a bootstrap list, run by the
//! sans-IO policy of `kafka-conn-cluster` (node table, backoff, circuit
//! breaker, rebootstrap, least loaded, connection cap, single flight) with
//! one lazily opened [`Client`] per node.
//!
//! What runs where:
//!
//! - **One lock** (a `std::sync::Mutex`) holds the policy, the ready
//!   connections, the dials under way and the parked callers. It is held
//!   only to call the policy and drain its outputs, never across an await
//!   or any I/O: what the outputs ask for (spawn a dial, close a
//!   connection, wake callers) is done after it is released.
//! - **One timer task** per cluster sleeps until the policy's
//!   `poll_timeout` (re-armed when a call brings the deadline earlier) and
//!   calls `handle_timeout`: setup timeouts, backoff ends, circuit
//!   cool-downs, Metadata age, the rebootstrap trigger.
//! - **One task per connection** dials it (DNS on every dial, every
//!   resolved address, TLS, the Kafka handshake), reports the outcome, then
//!   watches the ready connection and reports its close with the core's
//!   reason (EOF, broker restart, idle reaping).
//! - **Callers** route under the lock: a ready connection is leased and the
//!   request sent on its `Client` (pipelined with the others); a node being
//!   dialed parks the caller on that dial's one latch (a thousand callers,
//!   one dial, one wake-up each); anything else fails at once with a
//!   [`ClusterError`] saying why and until when. Requests are never queued
//!   by the cluster: callers wait only for a dial.
//! - **Metadata refreshes** run as short tasks when the policy asks (at
//!   start, by age, after a rebootstrap, on
//!   [`refresh_metadata`](Cluster::refresh_metadata)).

mod config;
mod dial;
mod error;
mod events;
mod latch;
mod metadata;
mod observing;
mod send_to;
mod shared;
mod state;

use std::sync::Arc;

use kafka_conn_cluster::{Address, ClusterPolicy, NewError, NodeId, Target};
use kafka_conn_core::{Request, Response};

pub use config::{ClusterConfig, MetadataTopics};
pub use error::ClusterError;
pub use events::ClusterEvents;
pub use send_to::SendTo;
pub use state::NodeInfo;

use crate::client::Client;
use crate::runtime::{timeout, Runtime};
use shared::Shared;
use state::State;

/// A runtime that can be made where the code runs, so that
/// [`Cluster::connect`] needs no runtime argument. The adapter crates
/// implement it through [`adapter_api!`](crate::adapter_api) (tokio: the
/// runtime the caller runs on).
pub trait CurrentRuntime: Runtime {
    /// The runtime to run on, made from the caller's context.
    fn current() -> Self;
}

/// A whole Kafka cluster: learns the brokers from a bootstrap list and
/// Metadata, keeps one connection per node (opened when a request needs
/// it), reconnects with backoff, fails fast behind a per-node circuit
/// breaker, goes back to the bootstrap list when the cluster moved
/// (KIP-899, KIP-1102), and caps the connections. The decisions are those
/// of the sans-IO `kafka-conn-cluster` policy; see `docs/cluster.md`.
///
/// Cheap to clone; every clone is the same cluster. Dropping the last
/// clone closes it.
///
/// ```no_run
/// use kafka_conn_driver::core::{ApiKey, Request};
/// use kafka_conn_driver::{Cluster, ClusterConfig, ClusterError, CurrentRuntime, NodeId};
///
/// // With an adapter: `kafka_conn_tokio::Cluster::connect(…)`.
/// async fn run<R: CurrentRuntime>() -> Result<(), ClusterError> {
///     let cluster =
///         Cluster::<R>::connect(["broker-1:9092,broker-2:9092"], ClusterConfig::default()).await?;
///     for node in cluster.nodes() {
///         println!("{} at {} (rack {:?}): {:?}", node.id, node.address, node.rack, node.state);
///     }
///     let api_versions = Request::new(ApiKey::API_VERSIONS, 0, Vec::new());
///     let _response = cluster.send_to(NodeId(1), api_versions.clone()).await?;
///     let _any = cluster.send_any(api_versions).await?;
///     cluster.close();
///     cluster.closed().await;
///     Ok(())
/// }
/// ```
pub struct Cluster<R: Runtime> {
    handle: Arc<Handle<R>>,
}

/// Closes the cluster when the last [`Cluster`] clone goes (the tasks hold
/// the shared state, not this).
struct Handle<R: Runtime> {
    shared: Arc<Shared<R>>,
}

impl<R: Runtime> Drop for Handle<R> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl<R: Runtime> Clone for Cluster<R> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Cluster<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (nodes, open, closed) = self.shared().read(|st| {
            (
                st.policy.nodes().count(),
                st.policy.open_connections(),
                st.is_closed(),
            )
        });
        f.debug_struct("Cluster")
            .field("nodes", &nodes)
            .field("open_connections", &open)
            .field("closed", &closed)
            .finish_non_exhaustive()
    }
}

impl<R: CurrentRuntime> Cluster<R> {
    /// Connects to the cluster through `bootstrap` (`host:port` entries,
    /// in one comma-separated string or as a list) on the current runtime:
    /// see [`Cluster::connect_with`].
    pub async fn connect<I, S>(
        bootstrap: I,
        config: impl Into<ClusterConfig>,
    ) -> Result<Self, ClusterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::connect_with(R::current(), bootstrap, config).await
    }
}

impl<R: Runtime> Cluster<R> {
    /// Connects to the cluster through `bootstrap` on runtime `rt` and
    /// returns once the first Metadata response has filled the node table
    /// (through a bootstrap address: that connection is closed after, and
    /// each broker is dialed when a request needs it).
    ///
    /// Fails with an error naming the address for an empty or unparsable
    /// list ([`ClusterError::Bootstrap`]) and a configuration that cannot
    /// work ([`ClusterError::Config`]); with every address's failure once
    /// each bootstrap address has failed ([`ClusterError::BootstrapFailed`]:
    /// unresolvable, refused, TLS, SASL, …); or after the bootstrap timeout.
    pub async fn connect_with<I, S>(
        rt: R,
        bootstrap: I,
        config: impl Into<ClusterConfig>,
    ) -> Result<Self, ClusterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut config = config.into();
        validate(&config)?;
        if config.policy.seed == 0 {
            config.policy.seed = random_seed();
        }
        let policy = ClusterPolicy::new(bootstrap, config.policy.clone(), rt.now()).map_err(
            |e| match e {
                NewError::Bootstrap(e) => ClusterError::Bootstrap(e),
                other => ClusterError::Config(other.to_string()),
            },
        )?;
        let bootstrap_ids: Vec<NodeId> = policy.nodes().map(|n| n.id).collect();
        let bootstrap_timeout = config.bootstrap_timeout;
        let shared = Shared::new(rt.clone(), config, State::new(policy));
        let cluster = Cluster {
            handle: Arc::new(Handle {
                shared: shared.clone(),
            }),
        };
        rt.spawn(Box::pin(shared.clone().timer_task()));
        let mut failures: Vec<ClusterError> = Vec::new();
        let first = timeout(&rt, bootstrap_timeout, async {
            loop {
                // The first refresh is queued by the policy already: this
                // waits for it (and, after a failure, for its retry).
                let latch = shared.with(true, |st, now| st.want_refresh(now));
                match latch.wait().await {
                    Ok(()) => return Ok(()),
                    Err(ClusterError::Closed) => return Err(ClusterError::Closed),
                    Err(e) => {
                        tracing::debug!(error = %e, "bootstrap attempt failed");
                        remember(&mut failures, e);
                        let tried = bootstrap_ids
                            .iter()
                            .all(|id| failures.iter().any(|f| f.node() == Some(*id)));
                        if tried {
                            return Err(ClusterError::BootstrapFailed {
                                failures: std::mem::take(&mut failures),
                            });
                        }
                    }
                }
            }
        })
        .await;
        match first {
            Some(Ok(())) => Ok(cluster),
            Some(Err(e)) => Err(e),
            None => Err(ClusterError::BootstrapTimeout {
                after: bootstrap_timeout,
                failures,
            }),
        }
        // On error, dropping `cluster` closes it.
    }

    fn shared(&self) -> &Arc<Shared<R>> {
        &self.handle.shared
    }

    /// Sends `request` to `node` (a partition leader, a coordinator, the
    /// controller) and waits for its response. Dials the node first if it
    /// has no connection (callers asking meanwhile share that one dial).
    ///
    /// Fails at once, without sending, when the node is backing off
    /// ([`ClusterError::BackingOff`] with `retry_in`), its circuit is open
    /// ([`ClusterError::CircuitOpen`] with the last failure), it is unknown,
    /// or the connection cap is reached with every connection busy; fails
    /// with the dial's failure ([`ClusterError::Unreachable`]: node,
    /// address, step) or the request's ([`ClusterError::Request`]: timed
    /// out, or the connection closed with its reason). Requests are not
    /// retried: Kafka requests are not all idempotent, the caller decides
    /// ([`ClusterError::is_retriable`]).
    ///
    /// Cancellation safe, as [`Client::send`]: the returned [`SendTo`]
    /// may be dropped at any point. When the node's connection is ready,
    /// the request is counted in flight on it from this call (before the
    /// first poll) until the future is dropped.
    #[inline]
    pub fn send_to(&self, node: NodeId, request: Request) -> SendTo<'_, R> {
        // The ready node's path is taken here, not in an `async fn`: no
        // lock, no policy call, one pointer leased, and the connection's
        // own send future holding the lease (measured in instructions per
        // request against a `Client`: `docs/benchmarks.md`).
        SendTo::new(self.shared(), node, request)
    }

    /// Sends `request` to the least loaded usable node (Java's
    /// `leastLoadedNode`: a ready connection with the fewest requests in
    /// flight, else a node being dialed, else one that may be dialed now),
    /// for requests any broker answers (Metadata, ApiVersions,
    /// FindCoordinator, …). Fails as [`send_to`](Self::send_to) does, and
    /// with [`ClusterError::NoNodeAvailable`] when every node is backing
    /// off or has an open circuit.
    pub async fn send_any(&self, request: Request) -> Result<Response, ClusterError> {
        let lease = self.shared().lease(Target::Any).await?;
        lease.send(request).await
    }

    /// The connection to `node`, dialed if needed: for its
    /// [`info`](Client::info) (address, timings, TLS, versions, SASL) and
    /// what the cluster API does not cover (`send_without_response`, typed
    /// requests). Requests sent on it directly are not counted in flight by
    /// the policy: under a connection cap it may be closed as idle while
    /// they run.
    pub async fn client(&self, node: NodeId) -> Result<Client, ClusterError> {
        let lease = self.shared().lease(Target::Node(node)).await?;
        Ok(lease.conn().client.clone())
    }

    /// Refreshes the Metadata now (one that starts after this call; one
    /// already in flight is not enough) and returns its outcome: the node
    /// table, controller, cluster id and leaders are then up to date, or
    /// the error says why not (unreachable node, another cluster's id,
    /// REBOOTSTRAP_REQUIRED, …; failed refreshes are retried by the policy
    /// after its Metadata backoff).
    pub async fn refresh_metadata(&self) -> Result<(), ClusterError> {
        let latch = self.shared().with(true, |st, now| st.want_refresh(now));
        latch.wait().await
    }

    /// The node table: id, address, rack, state, in flight, failures, the
    /// last failure and connect error.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.shared().read(State::nodes)
    }

    /// One node of the table.
    pub fn node(&self, id: NodeId) -> Option<NodeInfo> {
        self.nodes().into_iter().find(|n| n.id == id)
    }

    /// The cluster id (from the first Metadata that named one).
    pub fn cluster_id(&self) -> Option<String> {
        self.shared()
            .read(|st| st.policy.cluster_id().map(str::to_owned))
    }

    /// The controller, as the last Metadata named it.
    pub fn controller(&self) -> Option<NodeId> {
        self.shared().read(|st| st.policy.controller())
    }

    /// A partition's leader, as the last Metadata that listed its topic
    /// named it: only for topics the refreshes ask about
    /// ([`MetadataTopics`]; none by default).
    pub fn leader(&self, topic: &str, partition: i32) -> Option<NodeId> {
        self.shared().read(|st| st.policy.leader(topic, partition))
    }

    /// The bootstrap addresses, as parsed.
    pub fn bootstrap(&self) -> Vec<Address> {
        self.shared().read(|st| st.policy.bootstrap().to_vec())
    }

    /// Connections open or being set up (never above `max_connections`).
    pub fn open_connections(&self) -> usize {
        self.shared().read(|st| st.policy.open_connections())
    }

    /// Subscribes to the cluster's events (nodes added, removed or moved, a
    /// cluster id change, connection failures, circuits, rebootstraps). Every
    /// event is also logged through `tracing`.
    pub fn events(&self) -> ClusterEvents {
        self.shared().with(false, |st, _| {
            let closed = st.is_closed();
            st.subscribers.subscribe(closed)
        })
    }

    /// Reports a Kafka error code seen in a response the application
    /// decoded: REBOOTSTRAP_REQUIRED (129, KIP-1102) sends the cluster back
    /// to its bootstrap addresses; other codes are ignored. (The cluster's
    /// own Metadata responses are checked already.)
    pub fn report_error_code(&self, code: i16) {
        self.shared()
            .with(true, |st, now| st.policy.handle_error_code(code, now));
    }

    /// Goes back to the bootstrap addresses now (re-resolving their names
    /// at the next dial), as REBOOTSTRAP_REQUIRED does.
    pub fn rebootstrap(&self) {
        self.shared()
            .with(true, |st, now| st.policy.rebootstrap(now));
    }

    /// Follows the cluster id `id` after a
    /// [`ClusterIdChanged`](crate::ClusterEvent::ClusterIdChanged) event the
    /// application decided to accept (`None`: whatever the next Metadata
    /// names). Until then, Metadata from another cluster is not merged.
    pub fn accept_cluster_id(&self, id: Option<String>) {
        self.shared()
            .with(false, |st, _| st.policy.accept_cluster_id(id));
    }

    /// Starts closing: every connection closes (requests in flight fail
    /// with `Shutdown`), every waiting caller fails with
    /// [`ClusterError::Closed`]. Await [`closed`](Self::closed) for the end.
    pub fn close(&self) {
        self.shared().close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared().read(State::is_closed)
    }

    /// Waits until the cluster is closed and every connection task has ended.
    pub async fn closed(&self) {
        let latch = self.shared().read(State::finished);
        latch.wait().await;
    }
}

/// Keeps one failure per node (the most telling: a refused dial rather than
/// the backoff that followed it).
fn remember(failures: &mut Vec<ClusterError>, e: ClusterError) {
    let node = e.node();
    match failures
        .iter_mut()
        .find(|f| f.node().is_some() && f.node() == node)
    {
        Some(f) => {
            let follow_up = matches!(
                e,
                ClusterError::BackingOff { .. } | ClusterError::CircuitOpen { .. }
            );
            if !follow_up {
                *f = e;
            }
        }
        None => failures.push(e),
    }
}

/// Checks what the policy does not: the per-connection settings and the
/// topic names.
fn validate(config: &ClusterConfig) -> Result<(), ClusterError> {
    config
        .connect
        .core
        .validate()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    if let Some(tls) = &config.connect.tls {
        tls.rustls()
            .map_err(|e| ClusterError::Config(e.to_string()))?;
    }
    if let MetadataTopics::Only(names) = &config.metadata_topics {
        if let Some(bad) = names
            .iter()
            .find(|n| n.is_empty() || n.len() > metadata::MAX_TOPIC_NAME)
        {
            return Err(ClusterError::Config(format!(
                "topic name {bad:?}: 1 to {} bytes expected",
                metadata::MAX_TOPIC_NAME
            )));
        }
    }
    if config.bootstrap_timeout.is_zero() {
        return Err(ClusterError::Config(
            "bootstrap_timeout must not be zero".to_owned(),
        ));
    }
    Ok(())
}

/// A jitter seed from the OS, so that clients started together do not
/// retry in lockstep. Without an OS source (never on the platforms the
/// runtimes support), the clock's nanoseconds.
fn random_seed() -> u64 {
    let mut seed = [0u8; 8];
    if getrandom::getrandom(&mut seed).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        return nanos | 1;
    }
    u64::from_le_bytes(seed) | 1
}
