//! [`ClusterPolicy`]: the node table and every decision about connections.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use kafka_conn_core::CloseReason;

use crate::backoff::{exponential, jittered, later, Rng};
use crate::bootstrap::parse_bootstrap;
use crate::config::ClusterConfig;
use crate::error::{BootstrapError, ConfigError, DialFailure, Failure, MetadataError, RouteError};
use crate::ids::{Address, ConnId, NodeId};
use crate::in_flight::InFlight;
use crate::metadata::{decode_metadata, Metadata, Partition, REBOOTSTRAP_REQUIRED};
use crate::output::{Action, CloseWhy, Event, RebootstrapReason};

/// A node's connection state. Every node is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeState {
    /// No connection and nothing stopping one: the next request dials.
    Disconnected,
    /// A dial is under way (callers that ask wait for it).
    Dialing {
        /// The connection being set up.
        conn: ConnId,
        /// When its setup timeout ends (`None`: never).
        deadline: Option<Instant>,
        /// Whether this dial is the half-open circuit's single probe.
        probe: bool,
    },
    /// Connected and ready for requests.
    Ready {
        /// The connection.
        conn: ConnId,
    },
    /// The last attempt failed; no dial before `until` (`None`: never).
    BackingOff {
        /// End of the backoff.
        until: Option<Instant>,
    },
    /// Too many consecutive failures (or one no retry can fix): requests fail
    /// at once until `until`, then one probe is let through.
    CircuitOpen {
        /// End of the cool-down.
        until: Option<Instant>,
    },
    /// The cool-down is over: the next request dials, as the only probe.
    HalfOpen,
}

/// Which node a request should go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// This node (a partition leader, a coordinator, the controller).
    Node(NodeId),
    /// The least loaded usable node (Java's `leastLoadedNode`): a ready one
    /// with the fewest requests in flight, else one being dialed, else one
    /// that may be dialed now. Ties are broken from a random start.
    Any,
}

/// Where to send a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Route {
    /// Send it on this connection. It is counted in flight from now: call
    /// [`ClusterPolicy::request_done`] once when it is answered, fails, or is
    /// not sent after all.
    Ready(ConnId),
    /// The node is being dialed: park the caller until [`Action::Wake`] for
    /// this node, then route again.
    Wait(NodeId),
}

/// A node as the getters show it.
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    /// Its id.
    pub id: NodeId,
    /// Its address.
    pub address: &'a Address,
    /// Its rack, if Metadata named one.
    pub rack: Option<&'a str>,
    /// Its connection state.
    pub state: NodeState,
    /// Requests in flight on its ready connection.
    pub in_flight: u32,
    /// Callers waiting for its dial.
    pub waiters: u32,
    /// Consecutive failures (reset by a successful connection).
    pub failures: u32,
    /// The last failure, if any since the node entered the table.
    pub last_failure: Option<&'a Failure>,
}

#[derive(Debug)]
struct Node {
    address: Address,
    rack: Option<String>,
    state: NodeState,
    failures: u32,
    last_failure: Option<Failure>,
    /// Requests in flight on its ready connection, shared with the driver's
    /// request path (see [`InFlight`]); a fresh one per ready connection,
    /// retired when it stops being ready.
    in_flight: InFlight,
    waiters: u32,
    last_used: Instant,
    /// The current (or last) dial's setup timeout, jitter included.
    dial_timeout: Duration,
    /// Consecutive dials that failed before the connection was ready: the
    /// setup timeout grows with these only (as Java's
    /// `failedConnectAttempts`), not with breaks of ready connections.
    dial_failures: u32,
}

impl Node {
    fn new(address: Address, rack: Option<String>, now: Instant) -> Self {
        Self {
            address,
            rack,
            state: NodeState::Disconnected,
            failures: 0,
            last_failure: None,
            in_flight: InFlight::new(),
            waiters: 0,
            last_used: now,
            dial_timeout: Duration::ZERO,
            dial_failures: 0,
        }
    }

    /// The connection it holds (dialing or ready), if any.
    fn conn(&self) -> Option<ConnId> {
        match self.state {
            NodeState::Dialing { conn, .. } | NodeState::Ready { conn } => Some(conn),
            _ => None,
        }
    }

    /// The connection stops being ready (or a new dial starts): retire the
    /// counter, so that no request path counts on it any more, and start a
    /// fresh one. Returns the retired counter.
    fn reset_in_flight(&mut self) -> InFlight {
        let old = std::mem::take(&mut self.in_flight);
        old.retire();
        old
    }

    fn deadline(&self) -> Option<Instant> {
        match self.state {
            NodeState::Dialing { deadline, .. } => deadline,
            NodeState::BackingOff { until } | NodeState::CircuitOpen { until } => until,
            _ => None,
        }
    }
}

/// A connection that left its node (node removed, address changed,
/// rebootstrap) and is closed once its requests are answered.
#[derive(Debug)]
struct Draining {
    conn: ConnId,
    /// The retired counter: requests still running on it.
    in_flight: InFlight,
    why: CloseWhy,
}

/// The Metadata refresh's state.
#[derive(Debug, Default)]
struct Refresh {
    /// When the last Metadata was merged.
    last: Option<Instant>,
    /// A refresh is wanted now (asked for, too old, or after a failure's wait).
    wanted: bool,
    /// The node a refresh was asked through, until its outcome is reported.
    in_flight: Option<NodeId>,
    /// No refresh before this (after a failed one).
    retry_at: Option<Instant>,
    /// Consecutive failed refreshes.
    failures: u32,
}

/// The cluster policy: a sans-IO state machine that owns the node table and
/// decides every dial, close, wait, backoff, circuit transition, Metadata
/// refresh and rebootstrap. The driver does the I/O. See the crate docs for
/// the drive contract.
///
/// Method families, as in quinn-proto:
///
/// - **getters**: [`config`](Self::config), [`nodes`](Self::nodes),
///   [`node`](Self::node), [`bootstrap`](Self::bootstrap),
///   [`cluster_id`](Self::cluster_id), [`controller`](Self::controller),
///   [`leader`](Self::leader), [`open_connections`](Self::open_connections),
///   [`metadata_age`](Self::metadata_age), [`is_closed`](Self::is_closed);
/// - **inputs** (`handle_*`, each with `now`): [`handle_connected`](Self::handle_connected),
///   [`handle_dial_failed`](Self::handle_dial_failed), [`handle_closed`](Self::handle_closed),
///   [`handle_metadata`](Self::handle_metadata), [`handle_metadata_failed`](Self::handle_metadata_failed),
///   [`handle_error_code`](Self::handle_error_code), [`handle_timeout`](Self::handle_timeout);
/// - **commands**: [`route`](Self::route), [`request_done`](Self::request_done),
///   [`refresh_metadata`](Self::refresh_metadata), [`rebootstrap`](Self::rebootstrap),
///   [`accept_cluster_id`](Self::accept_cluster_id), [`close`](Self::close);
/// - **outputs** (`poll_*`, drained after every input and command):
///   [`poll_action`](Self::poll_action), [`poll_event`](Self::poll_event),
///   [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct ClusterPolicy {
    config: ClusterConfig,
    rng: Rng,
    bootstrap: Vec<Address>,
    nodes: BTreeMap<NodeId, Node>,
    draining: Vec<Draining>,
    next_seq: u64,
    cluster_id: Option<String>,
    controller: Option<NodeId>,
    leaders: BTreeMap<String, Vec<Partition>>,
    refresh: Refresh,
    /// Since when no node has been reachable: set by a failure while no
    /// connection is ready, cleared by a ready connection or merged Metadata.
    unreachable_since: Option<Instant>,
    last_failure: Option<(NodeId, Failure)>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    closed: bool,
}

/// Why [`ClusterPolicy::new`] refused to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NewError {
    /// The bootstrap list.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// The configuration.
    #[error("invalid cluster configuration: {0}")]
    Config(#[from] ConfigError),
}

impl ClusterPolicy {
    /// Starts from the bootstrap addresses (see [`crate::parse_bootstrap`]
    /// for the forms accepted), numbered -1, -2, … in order. The first
    /// [`Action::RefreshMetadata`] is queued at once.
    pub fn new<I, S>(bootstrap: I, config: ClusterConfig, now: Instant) -> Result<Self, NewError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        config.validate()?;
        let bootstrap = parse_bootstrap(bootstrap)?;
        let mut policy = Self {
            rng: Rng::new(config.seed),
            config,
            bootstrap,
            nodes: BTreeMap::new(),
            draining: Vec::new(),
            next_seq: 0,
            cluster_id: None,
            controller: None,
            leaders: BTreeMap::new(),
            refresh: Refresh {
                wanted: true,
                ..Refresh::default()
            },
            unreachable_since: None,
            last_failure: None,
            actions: VecDeque::with_capacity(16),
            events: VecDeque::with_capacity(16),
            closed: false,
        };
        policy.load_bootstrap(now);
        policy.maybe_refresh(now);
        Ok(policy)
    }

    // ----- getters -------------------------------------------------------

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The bootstrap addresses, as parsed.
    pub fn bootstrap(&self) -> &[Address] {
        &self.bootstrap
    }

    /// Every node of the table, by id (bootstrap entries first, as they are negative).
    pub fn nodes(&self) -> impl Iterator<Item = NodeView<'_>> + '_ {
        self.nodes.iter().map(|(&id, n)| view(id, n))
    }

    /// One node.
    pub fn node(&self, id: NodeId) -> Option<NodeView<'_>> {
        self.nodes.get(&id).map(|n| view(id, n))
    }

    /// The cluster id of the table (from the first Metadata that named one).
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// The controller, as the last Metadata named it.
    pub fn controller(&self) -> Option<NodeId> {
        self.controller
    }

    /// A partition's leader, as the last Metadata that listed its topic named
    /// it (`None`: unknown, or no leader right now).
    pub fn leader(&self, topic: &str, partition: i32) -> Option<NodeId> {
        let parts = self.leaders.get(topic)?;
        let i = parts.binary_search_by_key(&partition, |p| p.index).ok()?;
        let leader = parts[i].leader;
        (leader >= 0).then_some(NodeId(leader))
    }

    /// Connections open or being set up, including those draining before
    /// their close. Never above `max_connections`.
    pub fn open_connections(&self) -> usize {
        self.nodes.values().filter(|n| n.conn().is_some()).count() + self.draining.len()
    }

    /// Requests in flight on a connection (ready or draining); `None` if the
    /// policy does not hold it.
    pub fn in_flight(&self, conn: ConnId) -> Option<u32> {
        if let Some(n) = self.nodes.get(&conn.node()) {
            if n.state == (NodeState::Ready { conn }) {
                return Some(n.in_flight.get());
            }
        }
        self.draining
            .iter()
            .find(|d| d.conn == conn)
            .map(|d| d.in_flight.get())
    }

    /// The in-flight counter of `conn` while it is ready (`None`
    /// otherwise), for a driver's lock-free request path: a request counted
    /// with [`InFlight::try_begin`] is in flight on `conn` exactly as one
    /// routed with [`route`](Self::route), and ends with [`InFlight::end`]
    /// instead of [`request_done`](Self::request_done) (then
    /// [`request_drained`](Self::request_drained) when `end` asks). Such
    /// requests do not refresh the connection's "last used" time: with
    /// `max_connections` set, route every request so that the least
    /// recently used choice stays exact.
    pub fn in_flight_counter(&self, conn: ConnId) -> Option<&InFlight> {
        let n = self.nodes.get(&conn.node())?;
        (n.state == (NodeState::Ready { conn })).then_some(&n.in_flight)
    }

    /// How old the last merged Metadata is (`None`: none yet).
    pub fn metadata_age(&self, now: Instant) -> Option<Duration> {
        self.refresh.last.map(|t| now.saturating_duration_since(t))
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ----- commands ------------------------------------------------------

    /// Where to send a request for `target` now. Never waits: answers
    /// [`Route::Ready`] (counted in flight), [`Route::Wait`] (a dial is under
    /// way: this call may have started it), or an error saying why not
    /// (backing off, circuit open, unknown node, …) and until when.
    pub fn route(&mut self, target: Target, now: Instant) -> Result<Route, RouteError> {
        if self.closed {
            return Err(RouteError::Closed);
        }
        let id = match target {
            Target::Node(id) => id,
            Target::Any => self
                .least_loaded(now)
                .ok_or_else(|| self.none_available(now))?,
        };
        if !self.nodes.contains_key(&id) {
            return Err(RouteError::UnknownNode(id));
        }
        // Ends of backoffs and cool-downs apply at once; a dial past its
        // setup timeout is left to the timer (handle_timeout), so the caller
        // joins it and is woken with everyone else: a Wake queued here would
        // reach a caller this call parks.
        self.expire_node(id, now, false);
        let result = self.route_to(id, now);
        self.maybe_refresh(now);
        result
    }

    fn route_to(&mut self, id: NodeId, now: Instant) -> Result<Route, RouteError> {
        let node = self.nodes.get_mut(&id).expect("checked by the caller");
        match node.state {
            NodeState::Ready { conn } => {
                node.in_flight.begin();
                node.last_used = now;
                Ok(Route::Ready(conn))
            }
            NodeState::Dialing { probe: false, .. } => {
                node.waiters = node.waiters.saturating_add(1);
                Ok(Route::Wait(id))
            }
            NodeState::Dialing { probe: true, .. } => Err(circuit_error(id, node, None)),
            NodeState::Disconnected | NodeState::HalfOpen => {
                self.dial(id, now)?;
                let node = self.nodes.get_mut(&id).expect("dialed");
                node.waiters = 1;
                Ok(Route::Wait(id))
            }
            NodeState::BackingOff { until } => Err(RouteError::BackingOff {
                node: id,
                address: node.address.clone(),
                retry_in: remaining(until, now),
                last: node.last_failure.clone().unwrap_or(Failure::SetupTimeout {
                    after: Duration::ZERO,
                }),
            }),
            NodeState::CircuitOpen { until } => {
                Err(circuit_error(id, node, Some(remaining(until, now))))
            }
        }
    }

    /// A request routed with [`Route::Ready`] on `conn` is over (answered,
    /// failed, timed out, cancelled, or not sent after all). Call it exactly
    /// once per `Ready`; calls for connections that have closed are ignored.
    pub fn request_done(&mut self, conn: ConnId, now: Instant) {
        if let Some(node) = self.nodes.get_mut(&conn.node()) {
            if node.state == (NodeState::Ready { conn }) {
                node.in_flight.end();
                node.last_used = now;
                return;
            }
        }
        if let Some(i) = self.draining.iter().position(|d| d.conn == conn) {
            self.draining[i].in_flight.end();
            self.close_if_drained(i);
        }
    }

    /// The last request on `conn`, counted through its [`InFlight`] counter
    /// after the connection stopped being ready, is over
    /// ([`InFlight::end`] or [`InFlight::try_begin`] said so): a draining
    /// connection closes now. Nothing is counted down here; calls for a
    /// connection that is not draining (or still has requests) are ignored.
    pub fn request_drained(&mut self, conn: ConnId, _now: Instant) {
        if let Some(i) = self.draining.iter().position(|d| d.conn == conn) {
            self.close_if_drained(i);
        }
    }

    /// Closes the `i`-th draining connection if nothing runs on it any more.
    fn close_if_drained(&mut self, i: usize) {
        if self.draining[i].in_flight.get() == 0 {
            let d = self.draining.swap_remove(i);
            self.actions.push_back(Action::Close {
                conn: d.conn,
                why: d.why,
            });
        }
    }

    /// Asks for a Metadata refresh (as soon as no other is in flight and a
    /// failed one's retry wait is over).
    pub fn refresh_metadata(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.refresh.wanted = true;
        self.maybe_refresh(now);
    }

    /// Goes back to the bootstrap addresses now (as on REBOOTSTRAP_REQUIRED).
    /// Does nothing if `rebootstrap_after` is `None`.
    pub fn rebootstrap(&mut self, now: Instant) {
        self.do_rebootstrap(RebootstrapReason::Requested, now);
    }

    /// Adopts `cluster_id` as the table's cluster (after an
    /// [`Event::ClusterIdChanged`] the application decided to follow);
    /// `None` accepts whatever the next Metadata names.
    pub fn accept_cluster_id(&mut self, cluster_id: Option<String>) {
        self.cluster_id = cluster_id;
    }

    /// Closes every connection ([`CloseWhy::Shutdown`], in-flight requests
    /// included), wakes every waiting caller with [`RouteError::Closed`],
    /// and refuses everything from now on. Idempotent.
    pub fn close(&mut self, _now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let node = self.nodes.get_mut(&id).expect("listed");
            if let Some(conn) = node.conn() {
                self.actions.push_back(Action::Close {
                    conn,
                    why: CloseWhy::Shutdown,
                });
            }
            let waiters = std::mem::take(&mut node.waiters);
            node.state = NodeState::Disconnected;
            node.reset_in_flight();
            if waiters > 0 {
                self.actions.push_back(Action::Wake {
                    node: id,
                    waiters,
                    outcome: Err(RouteError::Closed),
                });
            }
        }
        for d in self.draining.drain(..) {
            self.actions.push_back(Action::Close {
                conn: d.conn,
                why: CloseWhy::Shutdown,
            });
        }
        self.refresh = Refresh::default();
        self.unreachable_since = None;
    }

    // ----- inputs --------------------------------------------------------

    /// The connection `conn` is ready (the core's `Ready` event: versions
    /// negotiated, authenticated). Returns `false` if the policy no longer
    /// wants it (it timed out, its node left): the driver closes it.
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant) -> bool {
        let id = conn.node();
        let Some(node) = self.nodes.get_mut(&id) else {
            return false;
        };
        let NodeState::Dialing { conn: c, probe, .. } = node.state else {
            return false;
        };
        if c != conn || self.closed {
            return false;
        }
        // Only a half-open probe can succeed with the circuit not closed.
        let was_open = probe;
        node.state = NodeState::Ready { conn };
        node.failures = 0;
        node.dial_failures = 0;
        node.reset_in_flight();
        node.last_used = now;
        let waiters = std::mem::take(&mut node.waiters);
        self.unreachable_since = None;
        self.events.push_back(Event::Connected { conn });
        if was_open {
            self.events.push_back(Event::CircuitClosed { node: id });
        }
        if waiters > 0 {
            self.actions.push_back(Action::Wake {
                node: id,
                waiters,
                outcome: Ok(conn),
            });
        }
        self.maybe_refresh(now);
        true
    }

    /// The dial of `conn` failed before a connection existed (DNS, TCP, proxy, TLS).
    pub fn handle_dial_failed(&mut self, conn: ConnId, failure: DialFailure, now: Instant) {
        if self.is_dialing(conn) {
            self.fail_node(conn.node(), Failure::Dial(failure), now);
        }
        self.maybe_refresh(now);
    }

    /// The connection `conn` closed by itself (the core's `Closed` event, EOF,
    /// idle reaping), during its handshake or after. An idle close is not a
    /// failure; anything else is. Not needed after an [`Action::Close`].
    pub fn handle_closed(&mut self, conn: ConnId, reason: CloseReason, now: Instant) {
        if let Some(i) = self.draining.iter().position(|d| d.conn == conn) {
            self.draining.swap_remove(i);
            return;
        }
        let id = conn.node();
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        match node.state {
            NodeState::Dialing { conn: c, .. } if c == conn => {
                let failure = Failure::Closed {
                    was_ready: false,
                    reason: Box::new(reason),
                };
                self.fail_node(id, failure, now);
            }
            NodeState::Ready { conn: c } if c == conn => {
                node.reset_in_flight();
                if matches!(reason, CloseReason::Idle { .. } | CloseReason::Shutdown) {
                    node.state = NodeState::Disconnected;
                } else {
                    let failure = Failure::Closed {
                        was_ready: true,
                        reason: Box::new(reason),
                    };
                    self.fail_node(id, failure, now);
                }
            }
            _ => {}
        }
        self.maybe_refresh(now);
    }

    /// A Metadata response body (after the response header) at `version`,
    /// from any node. Decoded, validated, and merged into the table: nodes
    /// added, moved (reconnected) and removed (closed once idle). Refused
    /// with the table unchanged: bad bodies ([`MetadataError`]), another
    /// cluster's id ([`Event::ClusterIdChanged`]), a top-level error
    /// (REBOOTSTRAP_REQUIRED rebootstraps). Either way it ends the refresh
    /// in flight; a refused one is retried after a backoff.
    pub fn handle_metadata(
        &mut self,
        version: i16,
        body: &[u8],
        now: Instant,
    ) -> Result<(), MetadataError> {
        if self.closed {
            return Err(MetadataError::Closed);
        }
        let result = decode_metadata(version, body).and_then(|md| self.merge(md, now));
        if result.is_err() {
            self.refresh_failed(now);
        }
        self.maybe_refresh(now);
        result
    }

    /// The refresh asked for with [`Action::RefreshMetadata`] failed (its
    /// node could not be routed to, the request failed or timed out). It is
    /// retried after the Metadata retry backoff, through the least loaded node.
    pub fn handle_metadata_failed(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.refresh_failed(now);
        self.maybe_refresh(now);
    }

    /// A Kafka error code seen in any response: REBOOTSTRAP_REQUIRED (129)
    /// rebootstraps (KIP-1102); the others are not the policy's business.
    pub fn handle_error_code(&mut self, code: i16, now: Instant) {
        if code == REBOOTSTRAP_REQUIRED {
            self.do_rebootstrap(RebootstrapReason::RebootstrapRequired, now);
        }
    }

    /// Time passed: processes every deadline at or before `now` (setup
    /// timeouts, backoff ends, cool-downs, Metadata age and retries, the
    /// rebootstrap trigger). Spurious calls are no-ops; afterwards
    /// [`poll_timeout`](Self::poll_timeout) is `None` or later than `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let due: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.deadline().is_some_and(|d| d <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.expire_node(id, now, true);
        }
        if self.refresh.retry_at.is_some_and(|t| t <= now) {
            self.refresh.retry_at = None;
            self.refresh.wanted = true;
        }
        if self.metadata_due().is_some_and(|t| t <= now) {
            self.refresh.wanted = true;
        }
        if let Some(t) = self.rebootstrap_due() {
            if t <= now {
                let for_ = now.saturating_duration_since(self.unreachable_since.unwrap_or(now));
                self.do_rebootstrap(RebootstrapReason::NoNodeReachable { for_ }, now);
            }
        }
        self.maybe_refresh(now);
    }

    // ----- outputs -------------------------------------------------------

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next: the
    /// earliest of every deadline the policy keeps (the one timer table).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let nodes = self.nodes.values().filter_map(Node::deadline);
        let global = [
            self.metadata_due(),
            self.refresh.retry_at,
            self.rebootstrap_due(),
        ];
        nodes.chain(global.into_iter().flatten()).min()
    }

    // ----- internals -----------------------------------------------------

    fn load_bootstrap(&mut self, now: Instant) {
        for (i, address) in self.bootstrap.iter().enumerate() {
            let id = NodeId(-1 - i32::try_from(i).unwrap_or(i32::MAX - 1));
            self.nodes.insert(id, Node::new(address.clone(), None, now));
        }
    }

    /// The next Metadata refresh by age (none while one is wanted, in flight,
    /// or waiting to be retried).
    fn metadata_due(&self) -> Option<Instant> {
        if self.refresh.wanted
            || self.refresh.in_flight.is_some()
            || self.refresh.retry_at.is_some()
        {
            return None;
        }
        later(self.refresh.last?, self.config.metadata_max_age)
    }

    fn rebootstrap_due(&self) -> Option<Instant> {
        later(self.unreachable_since?, self.config.rebootstrap_after?)
    }

    fn is_dialing(&self, conn: ConnId) -> bool {
        self.nodes
            .get(&conn.node())
            .is_some_and(|n| matches!(n.state, NodeState::Dialing { conn: c, .. } if c == conn))
    }

    /// Applies the node's elapsed deadline, repeatedly (a zero backoff ends
    /// at once); a dial's setup timeout only if `dials`.
    fn expire_node(&mut self, id: NodeId, now: Instant, dials: bool) {
        loop {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            if node.deadline().is_none_or(|d| d > now) {
                return;
            }
            match node.state {
                NodeState::Dialing { conn, .. } if dials => {
                    let after = node.dial_timeout;
                    self.actions.push_back(Action::Close {
                        conn,
                        why: CloseWhy::SetupTimeout,
                    });
                    self.fail_node(id, Failure::SetupTimeout { after }, now);
                }
                NodeState::BackingOff { .. } => node.state = NodeState::Disconnected,
                NodeState::CircuitOpen { .. } => {
                    node.state = NodeState::HalfOpen;
                    self.events.push_back(Event::CircuitHalfOpen { node: id });
                }
                _ => return,
            }
        }
    }

    /// The setup timeout after `failures` consecutive failed dials, before jitter.
    fn setup_timeout_of(&self, failures: u32) -> Duration {
        exponential(
            self.config.setup_timeout,
            self.config.setup_timeout_max,
            failures,
        )
    }

    /// Starts a dial to `id` (Disconnected or HalfOpen), making room under
    /// the connection cap first.
    fn dial(&mut self, id: NodeId, now: Instant) -> Result<(), RouteError> {
        if let Some(max) = self.config.max_connections {
            if self.open_connections() >= max {
                let lru = self
                    .nodes
                    .iter()
                    .filter(|(&n, node)| {
                        n != id
                            && matches!(node.state, NodeState::Ready { .. })
                            && node.in_flight.get() == 0
                    })
                    .min_by_key(|(&n, node)| (node.last_used, n))
                    .map(|(&n, _)| n);
                let Some(lru) = lru else {
                    return Err(RouteError::ConnectionLimit { node: id, max });
                };
                let node = self.nodes.get_mut(&lru).expect("found");
                let conn = node.conn().expect("ready");
                node.state = NodeState::Disconnected;
                node.reset_in_flight();
                self.actions.push_back(Action::Close {
                    conn,
                    why: CloseWhy::LeastRecentlyUsed,
                });
            }
        }
        self.next_seq += 1;
        let conn = ConnId::new(id, self.next_seq);
        let dial_failures = self.nodes[&id].dial_failures;
        let setup_timeout = jittered(
            self.setup_timeout_of(dial_failures),
            self.config.jitter_permille,
            &mut self.rng,
        );
        let node = self.nodes.get_mut(&id).expect("checked by the caller");
        let probe = node.state == NodeState::HalfOpen;
        node.state = NodeState::Dialing {
            conn,
            deadline: later(now, setup_timeout),
            probe,
        };
        node.reset_in_flight();
        node.last_used = now;
        node.dial_timeout = setup_timeout;
        self.actions.push_back(Action::Dial {
            conn,
            address: node.address.clone(),
            setup_timeout,
        });
        Ok(())
    }

    /// A dialing or ready node failed: count it, wake its waiters, back off
    /// or open the circuit.
    fn fail_node(&mut self, id: NodeId, failure: Failure, now: Instant) {
        let threshold = self.config.circuit_failures;
        let node = self.nodes.get_mut(&id).expect("failing node exists");
        let probe = matches!(node.state, NodeState::Dialing { probe: true, .. });
        if matches!(node.state, NodeState::Dialing { .. }) {
            node.dial_failures = node.dial_failures.saturating_add(1);
        }
        node.failures = node.failures.saturating_add(1);
        node.reset_in_flight();
        node.last_failure = Some(failure.clone());
        let failures = node.failures;
        let waiters = std::mem::take(&mut node.waiters);
        if waiters > 0 {
            self.actions.push_back(Action::Wake {
                node: id,
                waiters,
                outcome: Err(RouteError::DialFailed {
                    node: id,
                    address: node.address.clone(),
                    failure: failure.clone(),
                }),
            });
        }
        // Open the circuit after N consecutive failures, when the half-open
        // probe failed, or at once for a failure no retry can fix.
        let open = threshold.is_some_and(|n| failures >= n || probe || !failure.is_retriable());
        if open {
            node.state = NodeState::CircuitOpen {
                until: later(now, self.config.circuit_cool_down),
            };
        } else {
            let base = exponential(
                self.config.reconnect_backoff,
                self.config.reconnect_backoff_max,
                failures - 1,
            );
            let wait = jittered(base, self.config.jitter_permille, &mut self.rng);
            node.state = if wait.is_zero() {
                NodeState::Disconnected
            } else {
                NodeState::BackingOff {
                    until: later(now, wait),
                }
            };
        }
        self.events.push_back(Event::ConnectionFailed {
            node: id,
            failures,
            failure: failure.clone(),
        });
        if open {
            self.events
                .push_back(Event::CircuitOpened { node: id, failures });
        }
        self.last_failure = Some((id, failure));
        if !self
            .nodes
            .values()
            .any(|n| matches!(n.state, NodeState::Ready { .. }))
        {
            self.unreachable_since.get_or_insert(now);
        }
    }

    /// Java's `leastLoadedNode`, read-only: a ready node with the fewest in
    /// flight (0 wins at once), else one being dialed, else one that can be
    /// dialed now; ties broken from a random start so load spreads.
    fn least_loaded(&mut self, now: Instant) -> Option<NodeId> {
        let n = self.nodes.len() as u64;
        if n == 0 {
            return None;
        }
        let start = self.rng.below(n) as usize;
        let mut best: Option<(u8, u32, NodeId)> = None;
        let len = self.nodes.len();
        for (&id, node) in self.nodes.iter().cycle().skip(start).take(len) {
            let rank = match node.state {
                NodeState::Ready { .. } => (0, node.in_flight.get()),
                NodeState::Dialing { probe: false, .. } => (1, 0),
                NodeState::Disconnected | NodeState::HalfOpen => (2, 0),
                NodeState::BackingOff { until } if until.is_some_and(|t| t <= now) => (2, 0),
                NodeState::CircuitOpen { until } if until.is_some_and(|t| t <= now) => (2, 0),
                _ => continue,
            };
            if rank == (0, 0) {
                return Some(id);
            }
            if best.is_none_or(|(c, f, _)| rank < (c, f)) {
                best = Some((rank.0, rank.1, id));
            }
        }
        best.map(|(_, _, id)| id)
    }

    fn none_available(&self, now: Instant) -> RouteError {
        let retry_in = self
            .nodes
            .values()
            .filter_map(Node::deadline)
            .min()
            .map(|t| t.saturating_duration_since(now));
        RouteError::NoNodeAvailable {
            nodes: self.nodes.len(),
            retry_in,
            last: self.last_failure.clone(),
        }
    }

    /// Asks for a Metadata refresh if one is wanted and none is in flight or
    /// waiting to be retried, through the least loaded usable node.
    fn maybe_refresh(&mut self, now: Instant) {
        if self.closed || self.refresh.in_flight.is_some() || self.refresh.retry_at.is_some() {
            return;
        }
        if !self.refresh.wanted && self.metadata_due().is_none_or(|t| t > now) {
            return;
        }
        self.refresh.wanted = true;
        if let Some(via) = self.least_loaded(now) {
            self.refresh.wanted = false;
            self.refresh.in_flight = Some(via);
            self.actions.push_back(Action::RefreshMetadata { via });
        }
    }

    fn refresh_failed(&mut self, now: Instant) {
        self.refresh.in_flight = None;
        self.refresh.failures = self.refresh.failures.saturating_add(1);
        let base = exponential(
            self.config.metadata_retry_backoff,
            self.config.metadata_retry_backoff_max,
            self.refresh.failures - 1,
        );
        let wait = jittered(base, self.config.jitter_permille, &mut self.rng);
        self.refresh.wanted = true;
        self.refresh.retry_at = if wait.is_zero() {
            None
        } else {
            later(now, wait)
        };
        if self.refresh.retry_at.is_none() && !wait.is_zero() {
            // A wait past what an Instant holds: no retry by time.
            self.refresh.wanted = false;
        }
    }

    /// Merges a decoded Metadata response, or refuses it with the table unchanged.
    fn merge(&mut self, md: Metadata, now: Instant) -> Result<(), MetadataError> {
        if md.error_code != 0 {
            if md.error_code == REBOOTSTRAP_REQUIRED {
                self.do_rebootstrap(RebootstrapReason::RebootstrapRequired, now);
            }
            return Err(MetadataError::TopLevelError {
                code: md.error_code,
            });
        }
        if let (Some(expected), Some(got)) = (&self.cluster_id, &md.cluster_id) {
            if expected != got {
                self.events.push_back(Event::ClusterIdChanged {
                    expected: Some(expected.clone()),
                    got: Some(got.clone()),
                });
                return Err(MetadataError::ClusterIdMismatch {
                    expected: Some(expected.clone()),
                    got: Some(got.clone()),
                });
            }
        }
        if self.cluster_id.is_none() {
            self.cluster_id = md.cluster_id.clone();
        }
        // Nodes that left.
        let gone: Vec<NodeId> = self
            .nodes
            .keys()
            .copied()
            .filter(|id| !md.brokers.iter().any(|b| b.node_id == id.0))
            .collect();
        for id in gone {
            self.remove_node(id, CloseWhy::NodeRemoved);
            self.events.push_back(Event::NodeRemoved { node: id });
        }
        // Nodes that came or moved.
        for b in &md.brokers {
            let id = NodeId(b.node_id);
            let address = Address {
                host: b.host.clone(),
                port: b.port,
            };
            match self.nodes.get_mut(&id) {
                None => {
                    self.nodes
                        .insert(id, Node::new(address.clone(), b.rack.clone(), now));
                    self.events.push_back(Event::NodeAdded {
                        node: id,
                        address,
                        rack: b.rack.clone(),
                    });
                }
                Some(node) => {
                    node.rack.clone_from(&b.rack);
                    if node.address != address {
                        let from = std::mem::replace(&mut node.address, address.clone());
                        self.move_node(id, now);
                        self.events.push_back(Event::NodeAddressChanged {
                            node: id,
                            from,
                            to: address,
                        });
                    }
                }
            }
        }
        self.controller = md.controller.map(NodeId);
        for t in md.topics {
            let Some(name) = t.name else { continue };
            if t.error_code != 0 {
                self.leaders.remove(&name);
                continue;
            }
            let mut parts = t.partitions;
            parts.sort_by_key(|p| p.index);
            parts.dedup_by_key(|p| p.index);
            self.leaders.insert(name, parts);
        }
        self.refresh.last = Some(now);
        self.refresh.in_flight = None;
        self.refresh.wanted = false;
        self.refresh.retry_at = None;
        self.refresh.failures = 0;
        self.unreachable_since = None;
        self.events.push_back(Event::MetadataUpdated {
            version: md.version,
            brokers: md.brokers.len(),
        });
        Ok(())
    }

    /// Takes a node out of the table: its ready connection drains, its dial
    /// is abandoned and its waiters are told.
    fn remove_node(&mut self, id: NodeId, why: CloseWhy) {
        let Some(node) = self.nodes.remove(&id) else {
            return;
        };
        self.retire(node.state, node.in_flight, why);
        if node.waiters > 0 {
            self.actions.push_back(Action::Wake {
                node: id,
                waiters: node.waiters,
                outcome: Err(RouteError::NodeRemoved(id)),
            });
        }
    }

    /// The node's address changed: its connection is replaced. A dial with
    /// waiters is restarted at the new address; failures are forgotten (a
    /// new address deserves a fresh start).
    fn move_node(&mut self, id: NodeId, now: Instant) {
        let node = self.nodes.get_mut(&id).expect("moving node exists");
        let state = std::mem::replace(&mut node.state, NodeState::Disconnected);
        let in_flight = std::mem::take(&mut node.in_flight);
        let waiters = node.waiters;
        node.failures = 0;
        node.dial_failures = 0;
        node.last_failure = None;
        self.retire(state, in_flight, CloseWhy::AddressChanged);
        if waiters == 0 {
            return;
        }
        if let Err(e) = self.dial(id, now) {
            let node = self.nodes.get_mut(&id).expect("moving node exists");
            node.waiters = 0;
            self.actions.push_back(Action::Wake {
                node: id,
                waiters,
                outcome: Err(e),
            });
        }
    }

    /// Closes a connection that left its node: at once if nothing is in
    /// flight (or it was still dialing), else once the last request is done.
    fn retire(&mut self, state: NodeState, in_flight: InFlight, why: CloseWhy) {
        // Retired first, then read: a request path either sees the retire
        // (and routes through the policy) or is counted here (see `InFlight`).
        let running = in_flight.retire();
        match state {
            NodeState::Dialing { conn, .. } => {
                self.actions.push_back(Action::Close { conn, why });
            }
            NodeState::Ready { conn } if running == 0 => {
                self.actions.push_back(Action::Close { conn, why });
            }
            NodeState::Ready { conn } => self.draining.push(Draining {
                conn,
                in_flight,
                why,
            }),
            _ => {}
        }
    }

    fn do_rebootstrap(&mut self, reason: RebootstrapReason, now: Instant) {
        if self.closed || self.config.rebootstrap_after.is_none() {
            return;
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.remove_node(id, CloseWhy::Rebootstrap);
        }
        self.load_bootstrap(now);
        self.controller = None;
        self.leaders.clear();
        self.refresh = Refresh {
            wanted: true,
            last: self.refresh.last,
            ..Refresh::default()
        };
        self.unreachable_since = None;
        self.last_failure = None;
        self.events.push_back(Event::Rebootstrapped { reason });
        self.maybe_refresh(now);
    }
}

fn view(id: NodeId, n: &Node) -> NodeView<'_> {
    NodeView {
        id,
        address: &n.address,
        rack: n.rack.as_deref(),
        state: n.state,
        in_flight: n.in_flight.get(),
        waiters: n.waiters,
        failures: n.failures,
        last_failure: n.last_failure.as_ref(),
    }
}

fn remaining(until: Option<Instant>, now: Instant) -> Duration {
    until.map_or(Duration::MAX, |t| t.saturating_duration_since(now))
}

fn circuit_error(id: NodeId, node: &Node, retry_in: Option<Duration>) -> RouteError {
    RouteError::CircuitOpen {
        node: id,
        address: node.address.clone(),
        failures: node.failures,
        retry_in,
        last: node.last_failure.clone().unwrap_or(Failure::SetupTimeout {
            after: Duration::ZERO,
        }),
    }
}
