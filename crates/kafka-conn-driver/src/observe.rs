//! Hooks: an [`Observer`] the application registers with
//! [`ConnectConfig::with_observer`](crate::ConnectConfig::with_observer) is
//! told what each connection does (connects with the time of each setup
//! step, disconnects with the typed close reason, each response's API,
//! version, sizes and latency, failures, throttles, re-authentications),
//! and what a [`Cluster`](crate::Cluster)'s policy decides (nodes,
//! backoffs, circuits, rebootstraps: [`Observer::on_cluster_event`],
//! [`Observer::on_cluster_table`]), the way franz-go's hooks serve its
//! kprom and kotel plugins. Metrics are
//! one observer among others (`MetricsObserver`, feature `metrics`); see
//! `docs/metrics.md`.
//!
//! The engine calls an observer right after the input that caused the
//! event, from the connection's own task, so an observer must be quick
//! and must not block (count, record, queue; never wait on I/O). With no
//! observer registered the cost is one branch per event.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kafka_conn_cluster::{Event as ClusterEvent, NodeId, NodeState};
use kafka_conn_core::{
    ApiKey, CloseReason, Connection, CorrelationId, RequestError, Response, State as ConnState,
};

use crate::error::ConnectError;
use crate::error::SetupMark;
pub use crate::error::SetupStep;
use crate::info::ConnectInfo;

/// Told what connections do, and what a [`Cluster`](crate::Cluster)'s
/// policy decides. Every method has an empty default: implement the ones
/// you need. Called from the connection's task (or a
/// [`DirectClient`](crate::DirectClient)'s caller; a cluster's events from
/// the task that handled their cause): keep them short and never block.
///
/// Two observers observe together as a tuple: `Arc::new((a, b))`.
pub trait Observer: Send + Sync + 'static {
    /// A connection is ready: transport up, versions negotiated,
    /// authenticated. `event.info` has the time of each setup step.
    fn on_connect(&self, event: &ConnectEvent<'_>) {
        let _ = event;
    }

    /// A connection attempt failed (at `event.step`).
    ///
    /// A [`Cluster`](crate::Cluster)'s setup timeout running out is reported
    /// as [`ConnectError::SetupTimeout`], at the step the attempt was in
    /// (docs/metrics.md).
    fn on_connect_error(&self, event: &ConnectErrorEvent<'_>) {
        let _ = event;
    }

    /// A connection that was ready has closed.
    fn on_disconnect(&self, event: &DisconnectEvent<'_>) {
        let _ = event;
    }

    /// A response arrived for an application's request.
    fn on_response(&self, event: &ResponseEvent<'_>) {
        let _ = event;
    }

    /// An application's request will get no response (timed out, the
    /// connection closed, or the broker does not support its version).
    fn on_request_failed(&self, event: &RequestFailedEvent<'_>) {
        let _ = event;
    }

    /// `count` responses arrived for requests whose callers had given up
    /// (timed out or cancelled); they were read and dropped. Reported as
    /// [`Observer::on_in_flight`] is.
    fn on_late_responses(&self, peer: &Peer, count: u64) {
        let _ = (peer, count);
    }

    /// The connection wrote `sent` and read `received` more bytes (all of
    /// them: handshake, requests, responses; TLS records excluded) since
    /// the last report. Sampled: on every 16th publish of the connection
    /// and when it closes.
    fn on_bytes(&self, peer: &Peer, sent: u64, received: u64) {
        let _ = (peer, sent, received);
    }

    /// A response carried the broker's `throttle_time_ms` (KIP-219).
    fn on_throttle(&self, event: &ThrottleEvent<'_>) {
        let _ = event;
    }

    /// The connection held new requests for `held` because of a broker
    /// throttle (KIP-219): the time actually waited, which is not the
    /// broker's figure ([`ThrottleEvent::throttle_time`]) when requests
    /// came later or the throttles overlapped. Sampled as
    /// [`Observer::on_bytes`] is.
    fn on_throttle_held(&self, peer: &Peer, held: Duration) {
        let _ = (peer, held);
    }

    /// A KIP-368 re-authentication ended.
    fn on_reauthentication(&self, event: &ReauthenticationEvent<'_>) {
        let _ = event;
    }

    /// The number of requests on the wire awaiting a response, or held in
    /// the connection before the wire, changed. Sampled: looked at on every
    /// 16th publish of the connection (a few per request) while it is busy,
    /// and at once when it goes idle (before the responses that made it
    /// idle are handed out: a caller holding its response sees zero) or
    /// closes. The connection's own requests (ApiVersions, SASL) count too.
    /// The event also carries the [`Client`](crate::Client)'s queue in front
    /// of the connection (requests not yet given to it, callers waiting for
    /// room), as the connection's task last saw it; a change there alone is
    /// reported too.
    fn on_in_flight(&self, event: &InFlightEvent<'_>) {
        let _ = event;
    }

    /// A [`Cluster`](crate::Cluster)'s policy reported an event: a node
    /// added, removed or moved, a Metadata response merged, a cluster id
    /// change, a connection ready or failed (with the backoff it caused), a
    /// circuit opening, half-open or closing, a rebootstrap. Every event
    /// [`Cluster::events`](crate::Cluster::events) yields, with the node's
    /// state after it. Called after the cluster's lock is released, from
    /// the task whose call or input caused it (a request's caller, a
    /// connection's task, the timer): see [`ClusterPolicyEvent`].
    fn on_cluster_event(&self, event: &ClusterPolicyEvent<'_>) {
        let _ = event;
    }

    /// A [`Cluster`](crate::Cluster)'s table changed in what gauges count:
    /// the nodes it knows, the nodes whose circuit is not closed. Reported
    /// after the events that changed it (the first time with the first
    /// events: the bootstrap entries are known from the start), and once
    /// more when the cluster closes, with nothing known.
    fn on_cluster_table(&self, event: &ClusterTableEvent<'_>) {
        let _ = event;
    }
}

macro_rules! both {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        /// Both observe, `A` first.
        impl<A: Observer, B: Observer> Observer for (A, B) {
            $(fn $method(&self, $($arg: $ty),*) {
                self.0.$method($($arg),*);
                self.1.$method($($arg),*);
            })*
        }
    };
}

both! {
    on_connect(event: &ConnectEvent<'_>);
    on_connect_error(event: &ConnectErrorEvent<'_>);
    on_disconnect(event: &DisconnectEvent<'_>);
    on_response(event: &ResponseEvent<'_>);
    on_request_failed(event: &RequestFailedEvent<'_>);
    on_late_responses(peer: &Peer, count: u64);
    on_bytes(peer: &Peer, sent: u64, received: u64);
    on_throttle(event: &ThrottleEvent<'_>);
    on_throttle_held(peer: &Peer, held: Duration);
    on_reauthentication(event: &ReauthenticationEvent<'_>);
    on_in_flight(event: &InFlightEvent<'_>);
    on_cluster_event(event: &ClusterPolicyEvent<'_>);
    on_cluster_table(event: &ClusterTableEvent<'_>);
}

/// Which connection an event is about.
#[non_exhaustive]
pub struct Peer {
    /// The broker's node id: set by [`Cluster`](crate::Cluster) (bootstrap
    /// entries are `-1`, `-2`, … as in the Java client), or by
    /// [`ConnectConfig::with_node_id`](crate::ConnectConfig::with_node_id);
    /// `None` for a single connection without one.
    pub node_id: Option<NodeId>,
    /// The host as given to connect (what TLS verifies).
    pub host: String,
    /// The socket address connected to (`0.0.0.0:0` over a caller's stream).
    pub address: SocketAddr,
    /// A number unique among the connections of this process, to tell
    /// apart the connections to one node over time.
    pub connection_id: u64,
    /// An observer's own state for this connection ([`Peer::cached`]).
    cache: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("node_id", &self.node_id)
            .field("host", &self.host)
            .field("address", &self.address)
            .field("connection_id", &self.connection_id)
            .finish_non_exhaustive()
    }
}

impl Peer {
    pub(crate) fn new(node_id: Option<NodeId>, host: &str, address: SocketAddr) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            node_id,
            host: host.to_owned(),
            address,
            connection_id: NEXT.fetch_add(1, Ordering::Relaxed),
            cache: OnceLock::new(),
        }
    }

    /// State an observer keeps per connection (metric handles, counters),
    /// made by `init` on first use and kept as long as the connection: the
    /// hot path then needs no lookup by node or lock. One type per
    /// connection: the first observer to ask owns the slot, and another
    /// type gets `None` (fall back to a lookup of your own).
    pub fn cached<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.cache
            .get_or_init(|| Box::new(init()))
            .downcast_ref::<T>()
    }

    /// What [`Peer::cached`] made, if it has been made already and is a
    /// `T`: for a hot path that keeps the making out of line.
    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn cached_if_made<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.cache.get()?.downcast_ref::<T>()
    }
}

/// A connection is ready ([`Observer::on_connect`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectEvent<'a> {
    /// The connection.
    pub peer: &'a Peer,
    /// What `connect` learnt: timings of each step
    /// ([`ConnectInfo::timings`]: DNS, TCP, proxy, TLS, ApiVersions, SASL,
    /// total), TLS session, versions, SASL session.
    pub info: &'a ConnectInfo,
}

/// A connection attempt failed ([`Observer::on_connect_error`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectErrorEvent<'a> {
    /// The node, when known (see [`Peer::node_id`]).
    pub node_id: Option<NodeId>,
    /// The address asked for: `host:port` (or the host, over a caller's stream).
    pub address: &'a str,
    /// What went wrong; [`ConnectError::timings`] has how long each step
    /// took until then.
    pub error: &'a ConnectError,
    /// The step that failed.
    pub step: SetupStep,
    /// Whether trying again may help ([`ConnectError::is_retriable`]).
    pub retriable: bool,
}

/// A ready connection closed ([`Observer::on_disconnect`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct DisconnectEvent<'a> {
    /// The connection.
    pub peer: &'a Peer,
    /// Why it closed.
    pub reason: &'a CloseReason,
    /// Whether a new connection may help ([`CloseReason::is_retriable`]).
    pub retriable: bool,
    /// How long it was ready.
    pub connected_for: Duration,
}

/// A response arrived ([`Observer::on_response`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct ResponseEvent<'a> {
    /// The connection.
    pub peer: &'a Peer,
    /// The request's API.
    pub api_key: ApiKey,
    /// Its version.
    pub api_version: i16,
    /// Its correlation id.
    pub correlation_id: CorrelationId,
    /// The request's size on the wire (size prefix, header, body).
    pub request_bytes: u32,
    /// The response's size on the wire (size prefix, header, body).
    pub response_bytes: u32,
    /// From the request's last byte handed to the transport to the
    /// response read ([`Response::rtt`]).
    pub latency: Duration,
}

/// A request failed ([`Observer::on_request_failed`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestFailedEvent<'a> {
    /// The connection.
    pub peer: &'a Peer,
    /// The request's API.
    pub api_key: ApiKey,
    /// Its correlation id.
    pub correlation_id: CorrelationId,
    /// Why.
    pub error: &'a RequestError,
    /// Whether sending again may help ([`RequestError::is_retriable`]).
    pub retriable: bool,
}

/// A response carried a positive `throttle_time_ms` ([`Observer::on_throttle`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct ThrottleEvent<'a> {
    /// The connection.
    pub peer: &'a Peer,
    /// The API whose response carried it.
    pub api_key: ApiKey,
    /// The response's version.
    pub api_version: i16,
    /// The broker's `throttle_time_ms`: how long its quota throttles this client.
    pub throttle_time: Duration,
    /// Whether the connection holds new requests for it (KIP-219: from the
    /// API's 2.0 version on); otherwise the broker delayed the response itself.
    pub applied: bool,
}

/// A re-authentication ended ([`Observer::on_reauthentication`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct ReauthenticationEvent<'a> {
    /// The connection.
    pub peer: &'a Peer,
    /// From the exchange's start to its end.
    pub latency: Duration,
    /// `Ok`, or the reason the connection closed during it.
    pub outcome: Result<(), &'a CloseReason>,
}

/// A connection's queues changed ([`Observer::on_in_flight`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct InFlightEvent<'a> {
    /// The connection.
    pub peer: &'a Peer,
    /// Requests on the wire awaiting a response (including timed-out and
    /// cancelled ones whose late responses will be dropped).
    pub in_flight: usize,
    /// Requests accepted by the connection but held before the wire:
    /// before ready, at the in-flight limit, while throttled or
    /// re-authenticating.
    pub held: usize,
    /// `(in_flight, held)` as last reported (zeros at first): gauges summed
    /// over connections add the difference.
    pub previous: (usize, usize),
    /// Requests sent through the [`Client`](crate::Client) and not yet
    /// given to the connection: they wait in the Client's queue because
    /// the connection already holds `max_queued` requests
    /// ([`ConnectConfig::with_max_queued_requests`](crate::ConnectConfig::with_max_queued_requests)).
    /// Zero for a [`DirectClient`](crate::DirectClient).
    pub client_queued: usize,
    /// Callers of [`Client::send`](crate::Client::send) waiting for room:
    /// [`Client::queued`](crate::Client::queued) is at
    /// [`Client::max_queued`](crate::Client::max_queued).
    pub waiting_for_room: usize,
    /// `(client_queued, waiting_for_room)` as last reported.
    pub previous_client: (usize, usize),
}

/// An event of a [`Cluster`](crate::Cluster)'s policy
/// ([`Observer::on_cluster_event`]).
///
/// When: right after the input that caused it (a dial's outcome, a
/// connection closing, a Metadata response, the cluster's timer, a
/// command), once the cluster's lock is released, in the order the policy
/// reported them for that input, and before the callers that input wakes
/// (those parked on a dial, a refresh) are woken: a caller parked on a
/// dial that failed finds the failure, and the circuit it opened, already
/// told. (Another thread may route meanwhile and see the open circuit a
/// moment before the observer is told.) Events of inputs handled on two
/// threads at once may reach the observer in either order.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClusterPolicyEvent<'a> {
    /// Which cluster: a number unique among the [`Cluster`](crate::Cluster)s
    /// of this process (not Kafka's cluster id), to tell apart clusters
    /// that share an observer.
    pub cluster: u64,
    /// What happened: the policy's event, as
    /// [`Cluster::events`](crate::Cluster::events) yields it.
    pub event: &'a ClusterEvent,
    /// The node the event is about ([`ClusterPolicyEvent::node`]) and its
    /// state right after the input that caused the event; `None` for an
    /// event about no node, or a node that left the table.
    pub node_state: Option<NodeState>,
    /// How long until the node may be dialed again when the event left it
    /// backing off ([`NodeState::BackingOff`]: the reconnect backoff) or
    /// with its circuit open ([`NodeState::CircuitOpen`]: the time to the
    /// probe), as of the report.
    pub retry_in: Option<Duration>,
}

impl ClusterPolicyEvent<'_> {
    /// The node the event is about, if it is about one.
    pub fn node(&self) -> Option<NodeId> {
        event_node(self.event)
    }

    /// Whether the event is a failure that put the node into its
    /// reconnect backoff (rather than opening its circuit, or leaving it
    /// free to dial at once with a zero backoff).
    pub fn is_backoff(&self) -> bool {
        matches!(self.event, ClusterEvent::ConnectionFailed { .. })
            && matches!(self.node_state, Some(NodeState::BackingOff { .. }))
    }
}

/// The node a policy event is about.
pub(crate) fn event_node(event: &ClusterEvent) -> Option<NodeId> {
    match event {
        ClusterEvent::NodeAdded { node, .. }
        | ClusterEvent::NodeRemoved { node }
        | ClusterEvent::NodeAddressChanged { node, .. }
        | ClusterEvent::ConnectionFailed { node, .. }
        | ClusterEvent::CircuitOpened { node, .. }
        | ClusterEvent::CircuitHalfOpen { node }
        | ClusterEvent::CircuitClosed { node } => Some(*node),
        ClusterEvent::Connected { conn } => Some(conn.node()),
        _ => None,
    }
}

/// What a [`Cluster`](crate::Cluster)'s table counts for gauges changed
/// ([`Observer::on_cluster_table`]). With the values last reported, so that
/// gauges summed over clusters add the difference (reports of two threads
/// may arrive in either order; their differences add up all the same).
#[derive(Debug)]
#[non_exhaustive]
pub struct ClusterTableEvent<'a> {
    /// Which cluster (see [`ClusterPolicyEvent::cluster`]).
    pub cluster: u64,
    /// The nodes in the table: brokers from Metadata, or the bootstrap
    /// entries before the first Metadata and after a rebootstrap. Zero
    /// once the cluster is closed.
    pub known_nodes: usize,
    /// `known_nodes` as last reported (zero at first).
    pub previous_known_nodes: usize,
    /// The nodes whose circuit is not closed (open, half-open, or its probe
    /// under way), sorted. Empty once the cluster is closed.
    pub open_circuits: &'a [NodeId],
    /// `open_circuits` as last reported (empty at first).
    pub previous_open_circuits: &'a [NodeId],
}

/// A short, stable label of a close reason's kind, for metrics and traces:
/// `shutdown`, `broken`, `timeout`, `out_of_sync`, `idle`, `auth_failed`,
/// `session_expired`, `protocol`, `incompatible` (`other` for kinds added later).
pub fn close_reason_label(reason: &CloseReason) -> &'static str {
    match reason {
        CloseReason::Shutdown => "shutdown",
        CloseReason::Broken { .. } => "broken",
        CloseReason::Timeout(_) => "timeout",
        CloseReason::OutOfSync { .. } => "out_of_sync",
        CloseReason::Idle { .. } => "idle",
        CloseReason::AuthFailed(_) => "auth_failed",
        CloseReason::SessionExpired(_) => "session_expired",
        CloseReason::Protocol(_) => "protocol",
        CloseReason::Incompatible(_) => "incompatible",
        _ => "other",
    }
}

/// A short, stable label of why a request failed: `timed_out`,
/// `unsupported`, or the close reason's label (`connection_closed` is not
/// used: the close reason says more).
pub fn request_error_label(error: &RequestError) -> &'static str {
    match error {
        RequestError::TimedOut(_) => "timed_out",
        RequestError::Unsupported(_) => "unsupported",
        RequestError::ConnectionClosed(reason) => close_reason_label(reason),
        _ => "other",
    }
}

/// Who observes, as the configuration carries it.
#[derive(Clone, Default)]
pub(crate) struct ObserveConfig {
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) node_id: Option<NodeId>,
}

impl std::fmt::Debug for ObserveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserveConfig")
            .field("observer", &self.observer.as_ref().map(|_| "dyn Observer"))
            .field("node_id", &self.node_id)
            .finish()
    }
}

impl ObserveConfig {
    /// The peer and the engine's observation state of a new connection to
    /// `host` at `address`, when an observer is set.
    pub(crate) fn start(
        &self,
        host: &str,
        address: SocketAddr,
    ) -> (Option<Arc<Peer>>, Option<Observing>) {
        let Some(observer) = &self.observer else {
            return (None, None);
        };
        let peer = Arc::new(Peer::new(self.node_id, host, address));
        let observing = Observing::new(observer.clone(), peer.clone());
        (Some(peer), Some(observing))
    }

    /// Tells the observer that the connection to `peer` is up.
    pub(crate) fn connected(&self, peer: Option<&Peer>, info: &ConnectInfo) {
        if let (Some(o), Some(peer)) = (&self.observer, peer) {
            o.on_connect(&ConnectEvent { peer, info });
        }
    }

    /// Tells the observer, if any, when `result` is a failure to connect to `address`.
    pub(crate) fn report_failure<T>(&self, address: &str, result: &Result<T, ConnectError>) {
        if let Err(e) = result {
            self.connect_failed(address, e);
        }
    }

    /// Tells the observer, if any, that connecting to `address` failed.
    pub(crate) fn connect_failed(&self, address: &str, error: &ConnectError) {
        if let Some(o) = &self.observer {
            o.on_connect_error(&ConnectErrorEvent {
                node_id: self.node_id,
                address,
                error,
                step: SetupStep::of_error(error),
                retriable: error.is_retriable(),
            });
        }
    }
}

/// One connection's observation state, in its engine: the observer, the
/// peer, and what was last reported (for the events derived from counters).
pub(crate) struct Observing {
    observer: Arc<dyn Observer>,
    pub(crate) peer: Arc<Peer>,
    ready_at: Option<Instant>,
    reauth_since: Option<Instant>,
    /// Whether the connection authenticated (SASL): only then can it
    /// re-authenticate.
    authenticated: bool,
    late_responses: u64,
    throttled: Duration,
    queue: (usize, usize),
    /// `(client_queued, waiting_for_room)` as last reported.
    client: (usize, usize),
    /// Whether anything was in flight or held at the last publish.
    busy: bool,
    bytes: (u64, u64),
    /// Where a cluster's attempt is, until the connection is ready (see
    /// `SetupMark`).
    setup: Option<Arc<SetupMark>>,
    /// Publishes since the connection opened: the counters are compared
    /// on every [`SAMPLE_EVERY`]th (see [`Observing::publish`]).
    ticks: u32,
}

/// While a connection is busy, its counters and queue lengths are looked at
/// on every this many publishes (a few per request), and at once when it
/// goes idle or closes: a gauge updated twice per request cost more than
/// the rest of the metrics together (docs/benchmarks.md).
const SAMPLE_EVERY: u32 = 16;

impl Observing {
    pub(crate) fn new(observer: Arc<dyn Observer>, peer: Arc<Peer>) -> Self {
        Self {
            observer,
            peer,
            ready_at: None,
            reauth_since: None,
            authenticated: false,
            late_responses: 0,
            throttled: Duration::ZERO,
            queue: (0, 0),
            client: (0, 0),
            busy: false,
            bytes: (0, 0),
            ticks: 0,
            setup: None,
        }
    }

    /// Marks SASL on `setup` when the connection gets there (a cluster's
    /// setup timeout names the step in progress).
    pub(crate) fn with_setup(mut self, setup: Option<Arc<SetupMark>>) -> Self {
        self.setup = setup;
        self
    }

    /// Version negotiation ended (once per connection, not per request):
    /// a cluster's attempt is at SASL now if the connection authenticates.
    pub(crate) fn negotiated(&self, conn: &Connection) {
        if let Some(setup) = &self.setup {
            if conn.state() == ConnState::Authenticating {
                setup.set(SetupStep::Sasl);
            }
        }
    }

    /// The connection is ready, `authenticated` with SASL or not.
    pub(crate) fn ready(&mut self, now: Instant, authenticated: bool) {
        self.ready_at = Some(now);
        self.authenticated = authenticated;
    }

    // Inlined into the engine's drain: a response's whole cost here is
    // building the event and the one call (docs/benchmarks.md, issue 18).
    #[inline]
    pub(crate) fn response(&self, r: &Response) {
        self.observer.on_response(&ResponseEvent {
            peer: &self.peer,
            api_key: r.api_key,
            api_version: r.api_version,
            correlation_id: r.correlation_id,
            request_bytes: r.request_bytes,
            response_bytes: r.response_bytes,
            latency: r.rtt,
        });
    }

    pub(crate) fn request_failed(&self, id: CorrelationId, api_key: ApiKey, e: &RequestError) {
        self.observer.on_request_failed(&RequestFailedEvent {
            peer: &self.peer,
            api_key,
            correlation_id: id,
            error: e,
            retriable: e.is_retriable(),
        });
    }

    pub(crate) fn throttled(
        &self,
        api_key: ApiKey,
        api_version: i16,
        throttle_time: Duration,
        applied: bool,
    ) {
        self.observer.on_throttle(&ThrottleEvent {
            peer: &self.peer,
            api_key,
            api_version,
            throttle_time,
            applied,
        });
    }

    /// After every drain: notes when a re-authentication starts (only a
    /// connection that authenticated can re-authenticate, KIP-368: the
    /// others pay one flag per drain, a few drains per request).
    #[inline]
    pub(crate) fn after_drain(&mut self, conn: &Connection, now: impl FnOnce() -> Instant) {
        if self.authenticated && self.reauth_since.is_none() && conn.is_reauthenticating() {
            self.reauth_since = Some(now());
        }
    }

    pub(crate) fn reauthenticated(&mut self, now: Instant) {
        if let Some(since) = self.reauth_since.take() {
            self.observer.on_reauthentication(&ReauthenticationEvent {
                peer: &self.peer,
                latency: now.saturating_duration_since(since),
                outcome: Ok(()),
            });
        }
    }

    pub(crate) fn closed(&mut self, reason: &CloseReason, conn: &Connection, now: Instant) {
        // Closing fails every request queued in front of the connection
        // and every caller waiting for room: both queues are empty now.
        self.report(conn, (0, 0), true);
        if let Some(since) = self.reauth_since.take() {
            self.observer.on_reauthentication(&ReauthenticationEvent {
                peer: &self.peer,
                latency: now.saturating_duration_since(since),
                outcome: Err(reason),
            });
        }
        if let Some(at) = self.ready_at.take() {
            self.observer.on_disconnect(&DisconnectEvent {
                peer: &self.peer,
                reason,
                retriable: reason.is_retriable(),
                connected_for: now.saturating_duration_since(at),
            });
        }
    }

    /// When the engine publishes (before the events of a drain, and when a
    /// poll ends): on every [`SAMPLE_EVERY`]th call, and whenever the
    /// connection has just gone idle (nothing in flight or held), tells
    /// the observer what its counters and queues say happened since.
    /// `client` tells the lengths of the queue in front of the connection
    /// (asked only when reporting: a busy Client's queue is only non-empty
    /// while the connection is busy too).
    ///
    /// Inlined into the engine, and the common cases cost a few
    /// instructions: a busy connection between samples, and one that went
    /// idle with nothing to report (the gauges already at zero, no late
    /// response), which is every request at concurrency 1.
    #[inline]
    pub(crate) fn publish(&mut self, conn: &Connection, client: impl FnOnce() -> (usize, usize)) {
        self.ticks = self.ticks.wrapping_add(1);
        let busy = conn.in_flight() != 0 || conn.held() != 0;
        let went_idle = self.busy && !busy;
        self.busy = busy;
        if self.ticks % SAMPLE_EVERY == 0 {
            self.report(conn, client(), true);
        } else if went_idle {
            // The gauges and late responses at once (an idle connection
            // may publish nothing more for long); bytes at the next sample.
            let client = client();
            if self.queue != (0, 0)
                || client != self.client
                || conn.stats().late_responses != self.late_responses
            {
                self.report(conn, client, false);
            }
        }
    }

    /// Reports what changed: the queue and late responses, and with `all`
    /// the bytes and throttle time too.
    #[inline(never)]
    fn report(&mut self, conn: &Connection, client: (usize, usize), all: bool) {
        let queue = (conn.in_flight(), conn.held());
        if queue != self.queue || client != self.client {
            let previous = std::mem::replace(&mut self.queue, queue);
            let previous_client = std::mem::replace(&mut self.client, client);
            self.observer.on_in_flight(&InFlightEvent {
                peer: &self.peer,
                in_flight: queue.0,
                held: queue.1,
                previous,
                client_queued: client.0,
                waiting_for_room: client.1,
                previous_client,
            });
        }
        let stats = conn.stats();
        if stats.late_responses != self.late_responses {
            let n = stats.late_responses - self.late_responses;
            self.late_responses = stats.late_responses;
            self.observer.on_late_responses(&self.peer, n);
        }
        if !all {
            return;
        }
        let bytes = (stats.bytes_sent, stats.bytes_received);
        if bytes != self.bytes {
            let (sent, received) = (bytes.0 - self.bytes.0, bytes.1 - self.bytes.1);
            self.bytes = bytes;
            self.observer.on_bytes(&self.peer, sent, received);
        }
        if stats.throttled != self.throttled {
            let held = stats.throttled.saturating_sub(self.throttled);
            self.throttled = stats.throttled;
            self.observer.on_throttle_held(&self.peer, held);
        }
    }
}
