//! [`MetricsObserver`]: an [`Observer`] that records through the `metrics`
//! facade (feature `metrics`), under KIP-714's
//! `org.apache.kafka.client.*` names. `docs/metrics.md` lists every metric
//! with its labels and unit, and maps it to the Java client's JMX names,
//! the OpenTelemetry messaging conventions and franz-go's kprom.
//!
//! Cost: every handle of the per-request path (success counter, latency
//! histogram, byte counters) is registered once per (node, API key) and
//! kept in the connection's [`Peer`] ([`Peer::cached`]), as are its node's
//! gauges and byte counters; a response then costs a scan of a few slots
//! and one handle update (its latency, whose count is the responses), with no label or key
//! built, no lock and no registry lookup. Bytes, gauges and late responses
//! come sampled from the connection's counters (see
//! [`Observer::on_in_flight`] and docs/benchmarks.md).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock, RwLock};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};

use crate::observe::{
    close_reason_label, request_error_label, ConnectErrorEvent, ConnectEvent, DisconnectEvent,
    InFlightEvent, Observer, Peer, ReauthenticationEvent, RequestFailedEvent, ResponseEvent,
    SetupStep, ThrottleEvent,
};
use crate::{ClusterPolicyEvent, ClusterTableEvent, NodeId};
use kafka_conn_cluster::{Event as ClusterEvent, RebootstrapReason};

/// The metric names (KIP-714's where it has one; see `docs/metrics.md`).
pub mod names {
    /// Counter: connections made ready. KIP-714.
    pub const CONNECTION_CREATIONS: &str = "org.apache.kafka.client.connection.creations";
    /// Gauge: connections ready and not yet closed. KIP-714.
    pub const CONNECTION_ACTIVE: &str = "org.apache.kafka.client.connection.active";
    /// Counter: connection attempts that failed, by `step` and `retriable`. KIP-714.
    pub const CONNECTION_ERRORS: &str = "org.apache.kafka.client.connection.errors";
    /// Counter: ready connections that closed, by `reason` and `retriable`.
    pub const CONNECTION_CLOSES: &str = "org.apache.kafka.client.connection.closes";
    /// Histogram, seconds: each setup step of a connection that became ready, by `step`.
    pub const CONNECTION_SETUP_TIME: &str = "org.apache.kafka.client.connection.setup.time";
    /// Counter: SASL authentications, by `outcome` (`success`, `failure`).
    pub const AUTHENTICATIONS: &str = "org.apache.kafka.client.connection.authentications";
    /// Counter: KIP-368 re-authentications, by `outcome`.
    pub const REAUTHENTICATIONS: &str = "org.apache.kafka.client.connection.reauthentications";
    /// Histogram, seconds: how long each re-authentication took.
    pub const REAUTHENTICATION_TIME: &str =
        "org.apache.kafka.client.connection.reauthentication.time";
    /// Histogram, seconds: request latency, by `api_key`. Its count is
    /// KIP-714's `request.success` (responses received): a second counter
    /// would cost as much again per request.
    pub const REQUEST_LATENCY: &str = "org.apache.kafka.client.request.latency";
    /// Counter: requests that failed, by `api_key`, `reason` and `retriable`. KIP-714.
    pub const REQUEST_ERRORS: &str = "org.apache.kafka.client.request.errors";
    /// Counter, bytes: everything written to the connections (handshake included).
    pub const OUTGOING_BYTES: &str = "org.apache.kafka.client.connection.outgoing.bytes";
    /// Counter, bytes: everything read from the connections.
    pub const INCOMING_BYTES: &str = "org.apache.kafka.client.connection.incoming.bytes";
    /// Gauge: requests on the wire awaiting their response.
    pub const IN_FLIGHT: &str = "org.apache.kafka.client.request.in_flight";
    /// Gauge: requests held in the connection before the wire. KIP-714
    /// (`request.queue.count`).
    pub const QUEUED: &str = "org.apache.kafka.client.request.queue.count";
    /// Gauge: requests sent through a `Client` and not yet given to its
    /// connection, which already holds `max_queued` requests.
    pub const CLIENT_QUEUED: &str = "org.apache.kafka.client.request.queue.client.count";
    /// Gauge: callers of `Client::send` waiting for room (the backpressure
    /// bound `max_queued` reached).
    pub const WAITING_FOR_ROOM: &str = "org.apache.kafka.client.request.queue.waiting";
    /// Counter: responses to requests whose callers had given up.
    pub const LATE_RESPONSES: &str = "org.apache.kafka.client.request.late_responses";
    /// Histogram, seconds: the broker's `throttle_time_ms`, by `api_key` and
    /// `applied` (whether the client waited it out, KIP-219).
    pub const THROTTLE_TIME: &str = "org.apache.kafka.client.request.throttle.time";
    /// Counter, milliseconds: time new requests were actually held for throttles.
    pub const THROTTLE_HELD: &str = "org.apache.kafka.client.request.throttle.held";

    // A `Cluster`'s policy events (`Observer::on_cluster_event`,
    // `Observer::on_cluster_table`).

    /// Gauge: the nodes the clusters know (brokers from Metadata, or the
    /// bootstrap entries before it and after a rebootstrap).
    pub const CLUSTER_NODES: &str = "org.apache.kafka.client.cluster.nodes";
    /// Counter: nodes added, removed or moved by Metadata, by `change`
    /// (`added`, `removed`, `moved`).
    pub const CLUSTER_NODE_CHANGES: &str = "org.apache.kafka.client.cluster.node.changes";
    /// Counter: Metadata responses merged into the node table.
    pub const CLUSTER_METADATA_UPDATES: &str = "org.apache.kafka.client.cluster.metadata.updates";
    /// Counter: Metadata responses from another cluster id (not merged).
    pub const CLUSTER_ID_CHANGES: &str = "org.apache.kafka.client.cluster.id.changes";
    /// Counter: rebootstraps (KIP-899, KIP-1102), by `reason`
    /// (`no_node_reachable`, `rebootstrap_required`, `requested`).
    pub const CLUSTER_REBOOTSTRAPS: &str = "org.apache.kafka.client.cluster.rebootstraps";
    /// Counter: failures that put a node into its reconnect backoff.
    pub const CLUSTER_RECONNECT_BACKOFFS: &str =
        "org.apache.kafka.client.cluster.reconnect.backoffs";
    /// Histogram, seconds: the length of each reconnect backoff.
    pub const CLUSTER_RECONNECT_BACKOFF_TIME: &str =
        "org.apache.kafka.client.cluster.reconnect.backoff.time";
    /// Counter: times a node's circuit opened (a failed probe opens it again).
    pub const CLUSTER_CIRCUIT_OPENS: &str = "org.apache.kafka.client.cluster.circuit.opens";
    /// Gauge: 1 while a node's circuit is not closed (open, half-open, or
    /// its probe under way), by `node_id`.
    pub const CLUSTER_CIRCUIT_OPEN: &str = "org.apache.kafka.client.cluster.circuit.open";
}

/// An [`Observer`] that records every event as metrics through the
/// `metrics` facade: into the recorder installed globally (install it
/// before the first connection: handles are registered once and kept), or
/// into one of its own ([`MetricsObserver::with_recorder`]). Labels:
/// `node_id` (the broker's node id, `unknown` for a single connection
/// without [`ConnectConfig::with_node_id`](crate::ConnectConfig::with_node_id)),
/// `api_key` (the API's name: `Metadata`, `Produce`), `step`, `reason`,
/// `retriable`, `outcome`, `applied`. See `docs/metrics.md`.
pub struct MetricsObserver {
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    /// The hot path's handles, registered on first use.
    per_api: RwLock<IntMap<(i32, i16), ApiHandles>>,
    per_node: RwLock<IntMap<i32, NodeHandles>>,
    // Each connection keeps the handles it uses in its `Peer` (see
    // `ConnHandles`); these maps share them between a node's connections.
}

impl std::fmt::Debug for MetricsObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsObserver")
            .field("own_recorder", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

/// What a response updates, for one (node, API key).
#[derive(Clone)]
struct ApiHandles {
    latency: Histogram,
}

/// What an in-flight change updates, for one node.
#[derive(Clone)]
struct NodeHandles {
    in_flight: Gauge,
    queued: Gauge,
    client_queued: Gauge,
    waiting_for_room: Gauge,
    outgoing: Counter,
    incoming: Counter,
}

/// How many APIs a connection keeps handles for itself (most use a few;
/// more fall back to the observer's map).
const APIS_PER_CONNECTION: usize = 8;

/// The handles one connection uses, kept in its [`Peer`] ([`Peer::cached`]):
/// the hot path finds them without a lock or a hash.
struct ConnHandles {
    node: NodeHandles,
    apis: [OnceLock<(i16, ApiHandles)>; APIS_PER_CONNECTION],
}

impl ConnHandles {
    /// The handles `peer` keeps, if it has made them already (no
    /// initialisation code on the hot path).
    #[inline]
    fn of(peer: &Peer) -> Option<&ConnHandles> {
        peer.cached_if_made::<ConnHandles>()
    }

    /// The handles of `api_key`, made by `make` in a free slot the first
    /// time; `None` once every slot holds another API.
    /// The handles of `api_key` if a slot has them already: a response
    /// of the API this connection answered last is found in the first
    /// slot or so.
    #[inline]
    fn known_api(&self, api_key: i16) -> Option<&ApiHandles> {
        self.apis
            .iter()
            .map_while(OnceLock::get)
            .find(|(key, _)| *key == api_key)
            .map(|(_, handles)| handles)
    }

    fn api(&self, api_key: i16, make: impl FnOnce() -> ApiHandles) -> Option<&ApiHandles> {
        let mut make = Some(make);
        for slot in &self.apis {
            let (key, handles) = match slot.get() {
                Some(entry) => entry,
                // Only the connection's own task fills its slots.
                None => slot.get_or_init(|| (api_key, (make.take().expect("called once"))())),
            };
            if *key == api_key {
                return Some(handles);
            }
        }
        None
    }
}

/// The key of "no node id" in the caches: no broker has it (ids are `>= -N`).
const NO_NODE: i32 = i32::MIN;

static METADATA: Metadata<'static> = Metadata::new(
    "kafka_conn_driver::metrics",
    metrics::Level::INFO,
    Some(module_path!()),
);

impl Default for MetricsObserver {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsObserver {
    /// Records into the recorder installed globally (`metrics::set_global_recorder`,
    /// or an exporter's `install`), which must be installed before the
    /// first connection is observed. Describes every metric to it.
    pub fn new() -> Self {
        let observer = Self {
            recorder: None,
            per_api: RwLock::default(),
            per_node: RwLock::default(),
        };
        observer.describe();
        observer.describe_cluster();
        observer
    }

    /// Records into `recorder` rather than the global one: for a library
    /// that must not depend on a global, or a test.
    pub fn with_recorder(recorder: Arc<dyn Recorder + Send + Sync>) -> Self {
        let observer = Self {
            recorder: Some(recorder),
            per_api: RwLock::default(),
            per_node: RwLock::default(),
        };
        observer.describe();
        observer.describe_cluster();
        observer
    }

    fn with_recorder_do<T>(&self, f: impl FnOnce(&dyn Recorder) -> T) -> T {
        match &self.recorder {
            Some(r) => f(r.as_ref()),
            None => metrics::with_recorder(f),
        }
    }

    fn describe(&self) {
        use names::*;
        let counters: [(&'static str, Option<Unit>, &'static str); 10] = [
            (
                CONNECTION_CREATIONS,
                Some(Unit::Count),
                "Connections made ready (transport, versions, SASL).",
            ),
            (
                CONNECTION_ERRORS,
                Some(Unit::Count),
                "Connection attempts that failed, by the step that failed.",
            ),
            (
                CONNECTION_CLOSES,
                Some(Unit::Count),
                "Ready connections that closed, by the kind of close reason.",
            ),
            (
                AUTHENTICATIONS,
                Some(Unit::Count),
                "SASL authentications, by outcome.",
            ),
            (
                REAUTHENTICATIONS,
                Some(Unit::Count),
                "KIP-368 re-authentications, by outcome.",
            ),
            (
                REQUEST_ERRORS,
                Some(Unit::Count),
                "Requests that got no response, by API and reason.",
            ),
            (
                OUTGOING_BYTES,
                Some(Unit::Bytes),
                "Bytes of the requests answered, on the wire, by API.",
            ),
            (
                INCOMING_BYTES,
                Some(Unit::Bytes),
                "Bytes of the responses, on the wire, by API.",
            ),
            (
                LATE_RESPONSES,
                Some(Unit::Count),
                "Responses to requests whose callers had given up.",
            ),
            (
                THROTTLE_HELD,
                Some(Unit::Milliseconds),
                "Time new requests were held for broker throttles (KIP-219).",
            ),
        ];
        let gauges: [(&'static str, &'static str); 5] = [
            (CONNECTION_ACTIVE, "Connections ready and not yet closed."),
            (IN_FLIGHT, "Requests on the wire awaiting their response."),
            (QUEUED, "Requests held in the connection before the wire."),
            (
                CLIENT_QUEUED,
                "Requests queued in the Client, not yet given to the connection.",
            ),
            (
                WAITING_FOR_ROOM,
                "Callers waiting for room in the Client's bounded queue.",
            ),
        ];
        let histograms: [(&'static str, &'static str); 4] = [
            (
                CONNECTION_SETUP_TIME,
                "Each setup step of a connection that became ready.",
            ),
            (
                REAUTHENTICATION_TIME,
                "How long each KIP-368 re-authentication took.",
            ),
            (
                REQUEST_LATENCY,
                "From a request's last byte written to its response read, by API.",
            ),
            (
                THROTTLE_TIME,
                "The broker's throttle_time_ms, by API and whether the client waited.",
            ),
        ];
        self.with_recorder_do(|r| {
            for (name, unit, text) in counters {
                r.describe_counter(
                    KeyName::from_const_str(name),
                    unit,
                    SharedString::const_str(text),
                );
            }
            for (name, text) in gauges {
                r.describe_gauge(
                    KeyName::from_const_str(name),
                    Some(Unit::Count),
                    SharedString::const_str(text),
                );
            }
            for (name, text) in histograms {
                r.describe_histogram(
                    KeyName::from_const_str(name),
                    Some(Unit::Seconds),
                    SharedString::const_str(text),
                );
            }
        });
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        let key = Key::from_parts(name, labels);
        self.with_recorder_do(|r| r.register_counter(&key, &METADATA))
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        let key = Key::from_parts(name, labels);
        self.with_recorder_do(|r| r.register_gauge(&key, &METADATA))
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        let key = Key::from_parts(name, labels);
        self.with_recorder_do(|r| r.register_histogram(&key, &METADATA))
    }

    /// The handles of (node, API key) from the observer's map, registered
    /// on first use.
    fn api_handles(&self, node: Option<NodeId>, api_key: kafka_conn_core::ApiKey) -> ApiHandles {
        let key = (node.map_or(NO_NODE, |n| n.0), api_key.0);
        if let Some(h) = read(&self.per_api).get(&key) {
            return h.clone();
        }
        let labels = vec![node_label(node), api_label(api_key)];
        let handles = ApiHandles {
            latency: self.histogram(names::REQUEST_LATENCY, labels),
        };
        write(&self.per_api).entry(key).or_insert(handles).clone()
    }

    /// The gauges of `node` from the observer's map, registered on first use.
    fn node_handles(&self, node: Option<NodeId>) -> NodeHandles {
        let key = node.map_or(NO_NODE, |n| n.0);
        if let Some(h) = read(&self.per_node).get(&key) {
            return h.clone();
        }
        let handles = NodeHandles {
            in_flight: self.gauge(names::IN_FLIGHT, vec![node_label(node)]),
            queued: self.gauge(names::QUEUED, vec![node_label(node)]),
            client_queued: self.gauge(names::CLIENT_QUEUED, vec![node_label(node)]),
            waiting_for_room: self.gauge(names::WAITING_FOR_ROOM, vec![node_label(node)]),
            outgoing: self.counter(names::OUTGOING_BYTES, vec![node_label(node)]),
            incoming: self.counter(names::INCOMING_BYTES, vec![node_label(node)]),
        };
        write(&self.per_node).entry(key).or_insert(handles).clone()
    }

    /// The connection's own handles, kept in its `Peer`.
    fn conn<'p>(&self, peer: &'p Peer) -> Option<&'p ConnHandles> {
        peer.cached(|| ConnHandles {
            node: self.node_handles(peer.node_id),
            apis: Default::default(),
        })
    }

    /// Runs `f` on the handles of the peer's node and `api_key`: the
    /// connection's own (no lock, no hash) or, past its slots, the map's.
    fn with_api(&self, peer: &Peer, api_key: kafka_conn_core::ApiKey, f: impl FnOnce(&ApiHandles)) {
        let make = || self.api_handles(peer.node_id, api_key);
        match self.conn(peer).and_then(|c| c.api(api_key.0, make)) {
            Some(h) => f(h),
            None => f(&self.api_handles(peer.node_id, api_key)),
        }
    }

    /// [`Observer::on_response`] the first time the connection sees
    /// `api_key` (or for the APIs past its slots): registers the handles.
    #[cold]
    #[inline(never)]
    fn first_response(&self, peer: &Peer, api_key: kafka_conn_core::ApiKey, latency: f64) {
        self.with_api(peer, api_key, |h| h.latency.record(latency));
    }

    /// Runs `f` on the gauges of the peer's node.
    fn with_node(&self, peer: &Peer, f: impl FnOnce(&NodeHandles)) {
        match self.conn(peer) {
            Some(c) => f(&c.node),
            None => f(&self.node_handles(peer.node_id)),
        }
    }
}

impl Observer for MetricsObserver {
    fn on_connect(&self, event: &ConnectEvent<'_>) {
        let node = node_label(event.peer.node_id);
        self.counter(names::CONNECTION_CREATIONS, vec![node.clone()])
            .increment(1);
        self.gauge(names::CONNECTION_ACTIVE, vec![node.clone()])
            .increment(1.0);
        for step in SetupStep::ALL {
            if let Some(took) = step.took(event.info) {
                let labels = vec![
                    node.clone(),
                    Label::from_static_parts("step", step.as_str()),
                ];
                self.histogram(names::CONNECTION_SETUP_TIME, labels)
                    .record(took.as_secs_f64());
            }
        }
        if event.info.sasl.is_some() {
            let labels = vec![node, Label::from_static_parts("outcome", "success")];
            self.counter(names::AUTHENTICATIONS, labels).increment(1);
        }
    }

    fn on_connect_error(&self, event: &ConnectErrorEvent<'_>) {
        let node = node_label(event.node_id);
        let labels = vec![
            node.clone(),
            Label::from_static_parts("step", event.step.as_str()),
            retriable_label(event.retriable),
        ];
        self.counter(names::CONNECTION_ERRORS, labels).increment(1);
        if event.step == SetupStep::Sasl {
            let labels = vec![node, Label::from_static_parts("outcome", "failure")];
            self.counter(names::AUTHENTICATIONS, labels).increment(1);
        }
    }

    fn on_disconnect(&self, event: &DisconnectEvent<'_>) {
        let node = node_label(event.peer.node_id);
        self.gauge(names::CONNECTION_ACTIVE, vec![node.clone()])
            .decrement(1.0);
        let labels = vec![
            node,
            Label::from_static_parts("reason", close_reason_label(event.reason)),
            retriable_label(event.retriable),
        ];
        self.counter(names::CONNECTION_CLOSES, labels).increment(1);
    }

    fn on_response(&self, event: &ResponseEvent<'_>) {
        let latency = event.latency.as_secs_f64();
        // The hot path: the handle the connection already keeps, found
        // without a lock, a hash or a closure; and nothing after the
        // record, so that it is a tail call into the recorder.
        match ConnHandles::of(event.peer).and_then(|c| c.known_api(event.api_key.0)) {
            Some(h) => h.latency.record(latency),
            None => self.first_response(event.peer, event.api_key, latency),
        }
    }

    fn on_request_failed(&self, event: &RequestFailedEvent<'_>) {
        let labels = vec![
            node_label(event.peer.node_id),
            api_label(event.api_key),
            Label::from_static_parts("reason", request_error_label(event.error)),
            retriable_label(event.retriable),
        ];
        self.counter(names::REQUEST_ERRORS, labels).increment(1);
    }

    fn on_bytes(&self, peer: &Peer, sent: u64, received: u64) {
        self.with_node(peer, |h| {
            h.outgoing.increment(sent);
            h.incoming.increment(received);
        });
    }

    fn on_late_responses(&self, peer: &Peer, count: u64) {
        self.counter(names::LATE_RESPONSES, vec![node_label(peer.node_id)])
            .increment(count);
    }

    fn on_throttle(&self, event: &ThrottleEvent<'_>) {
        let labels = vec![
            node_label(event.peer.node_id),
            api_label(event.api_key),
            Label::from_static_parts("applied", if event.applied { "true" } else { "false" }),
        ];
        self.histogram(names::THROTTLE_TIME, labels)
            .record(event.throttle_time.as_secs_f64());
    }

    fn on_throttle_held(&self, peer: &Peer, held: std::time::Duration) {
        // Milliseconds: a counter is an integer, and holds are often short.
        self.counter(names::THROTTLE_HELD, vec![node_label(peer.node_id)])
            .increment(u64::try_from(held.as_millis()).unwrap_or(u64::MAX));
    }

    fn on_reauthentication(&self, event: &ReauthenticationEvent<'_>) {
        let node = node_label(event.peer.node_id);
        let outcome = if event.outcome.is_ok() {
            "success"
        } else {
            "failure"
        };
        let labels = vec![node.clone(), Label::from_static_parts("outcome", outcome)];
        self.counter(names::REAUTHENTICATIONS, labels).increment(1);
        self.histogram(names::REAUTHENTICATION_TIME, vec![node])
            .record(event.latency.as_secs_f64());
    }

    fn on_in_flight(&self, event: &InFlightEvent<'_>) {
        // Gauges summed over a node's connections: add the difference.
        let delta = |now: usize, before: usize| now as f64 - before as f64;
        self.with_node(event.peer, |h| {
            if event.in_flight != event.previous.0 {
                h.in_flight
                    .increment(delta(event.in_flight, event.previous.0));
            }
            if event.held != event.previous.1 {
                h.queued.increment(delta(event.held, event.previous.1));
            }
            if event.client_queued != event.previous_client.0 {
                h.client_queued
                    .increment(delta(event.client_queued, event.previous_client.0));
            }
            if event.waiting_for_room != event.previous_client.1 {
                h.waiting_for_room
                    .increment(delta(event.waiting_for_room, event.previous_client.1));
            }
        });
    }

    fn on_cluster_event(&self, event: &ClusterPolicyEvent<'_>) {
        self.cluster_event(event);
    }

    fn on_cluster_table(&self, event: &ClusterTableEvent<'_>) {
        self.cluster_table(event);
    }
}

// ----- A Cluster's policy events ---------------------------------------
//
// Rare (a node's failure, a Metadata refresh, a circuit): registered per
// event, no cache.

impl MetricsObserver {
    fn describe_cluster(&self) {
        use names::*;
        let counters: [(&'static str, &'static str); 6] = [
            (
                CLUSTER_NODE_CHANGES,
                "Nodes added, removed or moved by Metadata, by change.",
            ),
            (
                CLUSTER_METADATA_UPDATES,
                "Metadata responses merged into the node table.",
            ),
            (
                CLUSTER_ID_CHANGES,
                "Metadata responses from another cluster id (not merged).",
            ),
            (
                CLUSTER_REBOOTSTRAPS,
                "Rebootstraps to the bootstrap addresses, by reason (KIP-899).",
            ),
            (
                CLUSTER_RECONNECT_BACKOFFS,
                "Failures that put a node into its reconnect backoff.",
            ),
            (CLUSTER_CIRCUIT_OPENS, "Times a node's circuit opened."),
        ];
        let gauges: [(&'static str, &'static str); 2] = [
            (CLUSTER_NODES, "Nodes in the clusters' tables."),
            (
                CLUSTER_CIRCUIT_OPEN,
                "1 while a node's circuit is open, half-open or probing.",
            ),
        ];
        self.with_recorder_do(|r| {
            for (name, text) in counters {
                r.describe_counter(
                    KeyName::from_const_str(name),
                    Some(Unit::Count),
                    SharedString::const_str(text),
                );
            }
            for (name, text) in gauges {
                r.describe_gauge(
                    KeyName::from_const_str(name),
                    Some(Unit::Count),
                    SharedString::const_str(text),
                );
            }
            r.describe_histogram(
                KeyName::from_const_str(CLUSTER_RECONNECT_BACKOFF_TIME),
                Some(Unit::Seconds),
                SharedString::const_str("The length of each reconnect backoff."),
            );
        });
    }

    fn cluster_event(&self, event: &ClusterPolicyEvent<'_>) {
        let change = |change: &'static str| {
            self.counter(
                names::CLUSTER_NODE_CHANGES,
                vec![Label::from_static_parts("change", change)],
            )
            .increment(1);
        };
        match event.event {
            ClusterEvent::NodeAdded { .. } => change("added"),
            ClusterEvent::NodeRemoved { .. } => change("removed"),
            ClusterEvent::NodeAddressChanged { .. } => change("moved"),
            ClusterEvent::MetadataUpdated { .. } => {
                self.counter(names::CLUSTER_METADATA_UPDATES, vec![])
                    .increment(1);
            }
            ClusterEvent::ClusterIdChanged { .. } => {
                self.counter(names::CLUSTER_ID_CHANGES, vec![]).increment(1);
            }
            ClusterEvent::Rebootstrapped { reason } => {
                let reason = match reason {
                    RebootstrapReason::NoNodeReachable { .. } => "no_node_reachable",
                    RebootstrapReason::RebootstrapRequired => "rebootstrap_required",
                    RebootstrapReason::Requested => "requested",
                    _ => "other",
                };
                let labels = vec![Label::from_static_parts("reason", reason)];
                self.counter(names::CLUSTER_REBOOTSTRAPS, labels)
                    .increment(1);
            }
            ClusterEvent::CircuitOpened { node, .. } => {
                self.counter(names::CLUSTER_CIRCUIT_OPENS, vec![node_label(Some(*node))])
                    .increment(1);
            }
            ClusterEvent::ConnectionFailed { node, .. } if event.is_backoff() => {
                let node = node_label(Some(*node));
                self.counter(names::CLUSTER_RECONNECT_BACKOFFS, vec![node.clone()])
                    .increment(1);
                if let Some(wait) = event.retry_in {
                    self.histogram(names::CLUSTER_RECONNECT_BACKOFF_TIME, vec![node])
                        .record(wait.as_secs_f64());
                }
            }
            _ => {}
        }
    }

    fn cluster_table(&self, event: &ClusterTableEvent<'_>) {
        // Gauges summed over clusters: add the difference.
        if event.known_nodes != event.previous_known_nodes {
            self.gauge(names::CLUSTER_NODES, vec![])
                .increment(event.known_nodes as f64 - event.previous_known_nodes as f64);
        }
        // Both sorted: a node in one list only changed.
        for node in event.open_circuits {
            if event.previous_open_circuits.binary_search(node).is_err() {
                self.gauge(names::CLUSTER_CIRCUIT_OPEN, vec![node_label(Some(*node))])
                    .increment(1.0);
            }
        }
        for node in event.previous_open_circuits {
            if event.open_circuits.binary_search(node).is_err() {
                self.gauge(names::CLUSTER_CIRCUIT_OPEN, vec![node_label(Some(*node))])
                    .decrement(1.0);
            }
        }
    }
}

fn node_label(node: Option<NodeId>) -> Label {
    match node {
        Some(n) => Label::new("node_id", n.0.to_string()),
        None => Label::from_static_parts("node_id", "unknown"),
    }
}

fn api_label(api_key: kafka_conn_core::ApiKey) -> Label {
    match api_key.name() {
        Some(name) => Label::from_static_parts("api_key", name),
        None => Label::new("api_key", api_key.0.to_string()),
    }
}

fn retriable_label(retriable: bool) -> Label {
    Label::from_static_parts("retriable", if retriable { "true" } else { "false" })
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Handles only: a panic elsewhere leaves them usable.
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// The caches are keyed by small integers: one multiply spreads them
/// (SipHash would cost more than the handle updates it guards).
type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

#[derive(Default)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_i16(&mut self, n: i16) {
        self.write_u64(u64::from(n as u16));
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(u64::from(n as u32));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
