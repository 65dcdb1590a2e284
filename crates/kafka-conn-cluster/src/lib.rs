//! # kafka-conn-cluster
//!
//! The policy of a whole Kafka cluster as a pure state machine: which nodes
//! exist (bootstrap addresses, then every Metadata response), when to dial
//! which one, how long to back off, when a node's circuit opens, when to go
//! back to the bootstrap addresses (KIP-899, KIP-1102), which node is the
//! least loaded, which idle connection to close under a connection cap, and
//! that a thousand callers share one dial. It performs no I/O, reads no
//! clock and never sleeps, like `kafka-conn-core`: every input carries
//! `now`, every output is polled, and [`ClusterPolicy::poll_timeout`] is
//! the single source of its deadlines.
//!
//! **It decides; the driver does.** A driver (the async `Cluster` of
//! `kafka-conn-driver`, or a loop of your own) owns the sockets, one core
//! `Connection` per ready node, the timer and the parked callers.
//!
//! ## The drive contract
//!
//! 1. **Start**: [`ClusterPolicy::new`]`(bootstrap, config, now)`; seed
//!    [`ClusterConfig::seed`] from the OS (`getrandom`) so clients spread
//!    their retries; tests fix it. A refresh through a bootstrap node is
//!    queued at once.
//! 2. **After every input and command, drain** the outputs:
//!    [`poll_action`](ClusterPolicy::poll_action) until `None` (do each, see
//!    below; doing one may queue more), [`poll_event`](ClusterPolicy::poll_event)
//!    until `None` (log, count), then [`poll_timeout`](ClusterPolicy::poll_timeout)
//!    and (re)arm **one** timer at it.
//! 3. **Actions**:
//!    - [`Action::Dial`] `{ conn, address, setup_timeout }`: resolve the
//!      host (on every dial), try every address, TLS, run a core
//!      `Connection` until its `Ready` event; then
//!      [`handle_connected`](ClusterPolicy::handle_connected)`(conn)` (if it
//!      returns `false`, close the connection), or
//!      [`handle_dial_failed`](ClusterPolicy::handle_dial_failed)`(conn, DialFailure)`,
//!      or, if the core closed it during the handshake,
//!      [`handle_closed`](ClusterPolicy::handle_closed)`(conn, reason)`.
//!    - [`Action::Close`] `{ conn, why }`: close that connection or abandon
//!      its dial. Report nothing back about it.
//!    - [`Action::RefreshMetadata`] `{ via }`: send a Metadata request
//!      routed to `Target::Node(via)` like any request; hand the response
//!      body to [`handle_metadata`](ClusterPolicy::handle_metadata), or any
//!      failure (routing error, request error) to
//!      [`handle_metadata_failed`](ClusterPolicy::handle_metadata_failed).
//!    - [`Action::Wake`] `{ node, outcome }`: wake the callers parked on
//!      `node`. On `Ok` they route again; on `Err` they fail with it.
//! 4. **Requests**: [`route`](ClusterPolicy::route)`(Target::Node(id) | Target::Any, now)`
//!    answers at once: [`Route::Ready`]`(conn)`: send on that connection
//!    (the request is counted in flight) and call
//!    [`request_done`](ClusterPolicy::request_done)`(conn)` exactly once when
//!    it is over; [`Route::Wait`]`(node)`: park the caller until
//!    `Action::Wake` for `node`; `Err(`[`RouteError`]`)`: fail the caller
//!    (backing off, circuit open, unknown node, …: never a wait).
//!    A driver may also count a request on a ready connection without
//!    `route` (and without a lock around the policy): see [`InFlight`]
//!    and [`in_flight_counter`](ClusterPolicy::in_flight_counter).
//! 5. **Connections closing by themselves** (the core's `Closed` event,
//!    EOF, idle reaping): [`handle_closed`](ClusterPolicy::handle_closed)`(conn, reason)`.
//!    Fail that connection's pending requests with the reason; do not call
//!    `request_done` for them (harmless if you do).
//! 6. **Timer fired**: [`handle_timeout`](ClusterPolicy::handle_timeout)`(now)`.
//!    Spurious calls are no-ops; afterwards `poll_timeout` is `None` or
//!    later than `now`.
//! 7. **Error code REBOOTSTRAP_REQUIRED (129) in any response**:
//!    [`handle_error_code`](ClusterPolicy::handle_error_code)`(129, now)`
//!    (a Metadata v13 top-level error is seen by `handle_metadata` itself).
//! 8. **Shutdown**: [`close`](ClusterPolicy::close)`(now)`, drain: a
//!    `Close` for every connection and a `Wake` with `Err(Closed)` for every
//!    parked caller.
//!
//! Guarantees: never two dials for one node at once (callers asking for a
//! node being dialed wait for that dial); callers wait only on a dial, and
//! every wait ends with one `Wake` (at the latest at the setup timeout);
//! waiters exist only on a node being dialed; open connections never exceed
//! `max_connections`; a connection the policy gave up (`Close`) is
//! forgotten, so late reports about it are ignored.
//!
//! ## Method families (on [`ClusterPolicy`])
//!
//! | family | methods |
//! | --- | --- |
//! | getters | `config`, `bootstrap`, `nodes`, `node`, `cluster_id`, `controller`, `leader`, `open_connections`, `in_flight`, `in_flight_counter` (an [`InFlight`] a driver may count requests on without `route`), `metadata_age`, `is_closed` |
//! | inputs | `handle_connected`, `handle_dial_failed`, `handle_closed`, `handle_metadata`, `handle_metadata_failed`, `handle_error_code`, `handle_timeout` |
//! | commands | `route`, `request_done`, `request_drained`, `refresh_metadata`, `rebootstrap`, `accept_cluster_id`, `close` |
//! | outputs | `poll_action`, `poll_event`, `poll_timeout` |
//!
//! ## Example: a driver in virtual time
//!
//! A complete loop with a pretend network where dials finish at once:
//! bootstrap, Metadata, a request to any node, a broker failing and coming
//! back after its backoff.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use kafka_conn_cluster::{
//!     Action, ClusterConfig, ClusterPolicy, DialFailure, DialStep, NodeId, Route, Target,
//! };
//! use kafka_conn_core::{BrokenCause, CloseReason, Phase};
//!
//! /// A Metadata v1 body listing brokers (id, host, port), controller 1, no topics.
//! fn metadata_v1(brokers: &[(i32, &str, i32)]) -> Vec<u8> {
//!     let mut b = (brokers.len() as i32).to_be_bytes().to_vec();
//!     for (id, host, port) in brokers {
//!         b.extend(id.to_be_bytes());
//!         b.extend((host.len() as i16).to_be_bytes());
//!         b.extend(host.as_bytes());
//!         b.extend(port.to_be_bytes());
//!         b.extend((-1i16).to_be_bytes()); // rack: null
//!     }
//!     b.extend(1i32.to_be_bytes()); // controller id
//!     b.extend(0i32.to_be_bytes()); // no topics
//!     b
//! }
//!
//! /// The driver's half: do every action. `down` lists hosts that refuse connections.
//! fn drain(policy: &mut ClusterPolicy, now: Instant, down: &[&str], parked_refresh: &mut Option<NodeId>) {
//!     let brokers = [(1, "b1", 9092), (2, "b2", 9092)];
//!     while let Some(action) = policy.poll_action() {
//!         match action {
//!             Action::Dial { conn, address, .. } => {
//!                 if down.contains(&address.host.as_str()) {
//!                     let f = DialFailure::new(DialStep::Connect, "connection refused");
//!                     policy.handle_dial_failed(conn, f, now);
//!                 } else {
//!                     assert!(policy.handle_connected(conn, now));
//!                 }
//!             }
//!             Action::Close { .. } => {} // drop that socket
//!             Action::RefreshMetadata { via } => match policy.route(Target::Node(via), now) {
//!                 Ok(Route::Ready(conn)) => {
//!                     policy.handle_metadata(1, &metadata_v1(&brokers), now).unwrap();
//!                     policy.request_done(conn, now);
//!                 }
//!                 Ok(Route::Wait(node)) => *parked_refresh = Some(node),
//!                 Err(_) => policy.handle_metadata_failed(now),
//!             },
//!             Action::Wake { node, outcome, .. } => {
//!                 if *parked_refresh == Some(node) {
//!                     *parked_refresh = None;
//!                     match outcome {
//!                         // Route again: the node is ready now.
//!                         Ok(_) => match policy.route(Target::Node(node), now) {
//!                             Ok(Route::Ready(conn)) => {
//!                                 policy.handle_metadata(1, &metadata_v1(&brokers), now).unwrap();
//!                                 policy.request_done(conn, now);
//!                             }
//!                             _ => policy.handle_metadata_failed(now),
//!                         },
//!                         Err(_) => policy.handle_metadata_failed(now),
//!                     }
//!                 }
//!             }
//!             _ => {}
//!         }
//!     }
//!     while let Some(event) = policy.poll_event() {
//!         let _ = event; // log it
//!     }
//! }
//!
//! let mut now = Instant::now();
//! let mut parked = None;
//! let config = ClusterConfig::new().with_seed(7);
//! let mut policy = ClusterPolicy::new(["bootstrap:9092"], config, now).unwrap();
//! // The queued refresh dials the bootstrap node, reads Metadata, and the
//! // table becomes the two brokers.
//! drain(&mut policy, now, &[], &mut parked);
//! let ids: Vec<NodeId> = policy.nodes().map(|n| n.id).collect();
//! assert_eq!(ids, [NodeId(1), NodeId(2)]);
//!
//! // A request for broker 2: the first one dials and waits, the next is ready.
//! assert_eq!(policy.route(Target::Node(NodeId(2)), now), Ok(Route::Wait(NodeId(2))));
//! drain(&mut policy, now, &[], &mut parked);
//! let Ok(Route::Ready(conn)) = policy.route(Target::Node(NodeId(2)), now) else { panic!() };
//! policy.request_done(conn, now);
//!
//! // Broker 2 dies: its connection breaks (the core's close reason), and
//! // the redial is refused.
//! let eof = CloseReason::Broken { cause: BrokenCause::Eof, during: Phase::Ready };
//! policy.handle_closed(conn, eof, now);
//! let err = policy.route(Target::Node(NodeId(2)), now).unwrap_err();
//! assert!(err.to_string().contains("backing off"), "{err}");
//! now = policy.poll_timeout().unwrap(); // 50 ms ± 20 % later
//! policy.handle_timeout(now);
//! assert_eq!(policy.route(Target::Node(NodeId(2)), now), Ok(Route::Wait(NodeId(2))));
//! drain(&mut policy, now, &["b2"], &mut parked);
//! // Backing off again (100 ms ± 20 %): asking answers at once, with the failure.
//! let err = policy.route(Target::Node(NodeId(2)), now).unwrap_err();
//! assert!(err.to_string().contains("connection refused"), "{err}");
//!
//! // The timer: jump to the deadline, let the policy act, the broker is back.
//! now = policy.poll_timeout().unwrap();
//! policy.handle_timeout(now);
//! drain(&mut policy, now, &[], &mut parked);
//! assert!(policy.poll_timeout().map_or(true, |t| t > now));
//! assert_eq!(policy.route(Target::Node(NodeId(2)), now), Ok(Route::Wait(NodeId(2))));
//! drain(&mut policy, now, &[], &mut parked);
//! assert!(matches!(policy.route(Target::Any, now), Ok(Route::Ready(_))));
//! ```
//!
//! See `docs/cluster.md` in the repository for the states and transitions,
//! the defaults next to the Java client's and librdkafka's, and the design.

#![forbid(unsafe_code)]

mod backoff;
mod bootstrap;
mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_support;
mod ids;
mod in_flight;
mod metadata;
mod output;
mod policy;

pub use bootstrap::parse_bootstrap;
pub use config::ClusterConfig;
pub use error::{
    BootstrapError, ConfigError, DialFailure, DialStep, Failure, MetadataError, RouteError,
};
pub use ids::{Address, ConnId, NodeId};
pub use in_flight::{Begin, InFlight};
pub use metadata::{
    decode_metadata, Broker, Metadata, Partition, Topic, METADATA_MAX_VERSION, REBOOTSTRAP_REQUIRED,
};
pub use output::{Action, CloseWhy, Event, RebootstrapReason};
pub use policy::{ClusterPolicy, NewError, NodeState, NodeView, Route, Target};
