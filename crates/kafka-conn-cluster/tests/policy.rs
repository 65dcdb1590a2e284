//! The cluster policy in virtual time: no sockets, no clock. The test plays
//! the driver (it reports dial outcomes and closes as a driver would) and
//! the brokers' Metadata responses (built with the encoder that
//! `tests/metadata.rs` checks against `kafka-protocol`). Real sockets and
//! real brokers come with the async `Cluster` in the driver crate.

use std::time::{Duration, Instant};

use kafka_conn_cluster::fuzz_support::encode_metadata;
use kafka_conn_cluster::{
    Action, Begin, BootstrapError, CloseWhy, ClusterConfig, ClusterPolicy, ConfigError, ConnId,
    DialFailure, DialStep, Event, Failure, MetadataError, NewError, NodeId, NodeState,
    RebootstrapReason, Route, RouteError, Target,
};
use kafka_conn_core::{AuthFailure, BrokenCause, CloseReason, Phase};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

struct Sim {
    p: ClusterPolicy,
    now: Instant,
}

impl Sim {
    fn new(bootstrap: &[&str], config: ClusterConfig) -> Self {
        let now = Instant::now();
        let mut s = Sim {
            p: ClusterPolicy::new(bootstrap, config, now).unwrap(),
            now,
        };
        // The first refresh is queued at once; the tests that need it look
        // at it, the others drop it.
        s.actions();
        s
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.p.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.p.poll_event()).collect()
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.p.handle_timeout(self.now);
    }

    /// Jumps to the next deadline and fires it.
    fn fire(&mut self) {
        self.now = self.p.poll_timeout().expect("a deadline");
        self.p.handle_timeout(self.now);
        assert!(self.p.poll_timeout().is_none_or(|t| t > self.now));
    }

    fn route(&mut self, t: Target) -> Result<Route, RouteError> {
        self.p.route(t, self.now)
    }

    /// Routes to `node`, expecting a new dial; returns it.
    fn dial(&mut self, node: i32) -> ConnId {
        assert_eq!(
            self.route(Target::Node(NodeId(node))),
            Ok(Route::Wait(NodeId(node)))
        );
        let dials: Vec<ConnId> = self
            .actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::Dial { conn, .. } => Some(conn),
                _ => None,
            })
            .collect();
        assert_eq!(dials.len(), 1, "one dial");
        dials[0]
    }

    /// Dials `node` and connects it; returns the connection.
    fn connect(&mut self, node: i32) -> ConnId {
        let conn = self.dial(node);
        assert!(self.p.handle_connected(conn, self.now));
        self.actions();
        conn
    }

    /// The dial of `conn` is refused; the driver wakes its waiters.
    fn refuse(&mut self, conn: ConnId) {
        self.p.handle_dial_failed(
            conn,
            DialFailure::new(DialStep::Connect, "connection refused"),
            self.now,
        );
        let wakes = self.actions();
        assert!(
            wakes.iter().all(|a| matches!(
                a,
                Action::Wake {
                    outcome: Err(_),
                    ..
                }
            )),
            "{wakes:?}"
        );
    }

    fn metadata(&mut self, brokers: &[(i32, &str, i32)]) {
        let body = encode_metadata(9, brokers, Some("c"), 1, &[], 0);
        self.p.handle_metadata(9, &body, self.now).unwrap();
    }

    fn state(&self, node: i32) -> NodeState {
        self.p.node(NodeId(node)).unwrap().state
    }
}

fn eof() -> CloseReason {
    CloseReason::Broken {
        cause: BrokenCause::Eof,
        during: Phase::Ready,
    }
}

fn no_circuit() -> ClusterConfig {
    ClusterConfig::new().with_circuit_breaker(None, 10 * SEC)
}

// ----- bad input ----------------------------------------------------------

#[test]
fn bad_bootstrap_lists_and_configs_are_refused_with_clear_errors() {
    let now = Instant::now();
    let new = |b: &[&str]| ClusterPolicy::new(b, ClusterConfig::new(), now).unwrap_err();
    assert_eq!(new(&[]), NewError::Bootstrap(BootstrapError::Empty));
    assert_eq!(
        new(&["ok:9092", "broken"]).to_string(),
        "bootstrap address \"broken\": no port (write host:port)"
    );
    assert_eq!(
        new(&["kafka:0"]).to_string(),
        "bootstrap address \"kafka:0\": port 0 is not a port a broker can listen on"
    );
    assert_eq!(
        new(&["kafka:http"]).to_string(),
        "bootstrap address \"kafka:http\": the port is not a number"
    );
    let bad = |c: ClusterConfig| ClusterPolicy::new(["a:1"], c, now).unwrap_err();
    assert_eq!(
        bad(ClusterConfig::new().with_reconnect_backoff(SEC, MS)),
        NewError::Config(ConfigError::MaxBelowInitial {
            name: "reconnect_backoff",
            initial: SEC,
            max_name: "reconnect_backoff_max",
            max: MS
        })
    );
    assert_eq!(
        bad(ClusterConfig::new().with_setup_timeout(Duration::ZERO, SEC)).to_string(),
        "invalid cluster configuration: setup_timeout must not be zero"
    );
    assert_eq!(
        bad(ClusterConfig::new().with_max_connections(Some(0))),
        NewError::Config(ConfigError::Zero("max_connections"))
    );
    assert_eq!(
        bad(ClusterConfig::new().with_jitter_permille(1001)),
        NewError::Config(ConfigError::Jitter(1001))
    );
}

#[test]
fn bootstrap_entries_get_negative_ids_in_order() {
    let s = Sim::new(&["a:1,b:2", "c:3"], ClusterConfig::new());
    let nodes: Vec<(i32, String)> =
        s.p.nodes()
            .map(|n| (n.id.0, n.address.to_string()))
            .collect();
    assert_eq!(
        nodes,
        [
            (-3, "c:3".to_owned()),
            (-2, "b:2".to_owned()),
            (-1, "a:1".to_owned())
        ]
    );
}

// ----- backoff and setup timeout -----------------------------------------

/// The backoffs after 1..=8 consecutive refused dials, for one seed.
fn backoffs(seed: u64, jitter: u16) -> Vec<Duration> {
    let mut s = Sim::new(
        &["a:1"],
        no_circuit().with_seed(seed).with_jitter_permille(jitter),
    );
    let mut out = vec![];
    for _ in 0..8 {
        let conn = s.dial(-1);
        s.refuse(conn);
        let NodeState::BackingOff { until: Some(until) } = s.state(-1) else {
            panic!("backing off")
        };
        out.push(until - s.now);
        s.fire();
        assert_eq!(s.state(-1), NodeState::Disconnected);
    }
    out
}

#[test]
fn backoff_doubles_from_50ms_to_1s_within_20_percent() {
    let nominal = [50, 100, 200, 400, 800, 1000, 1000, 1000].map(|m| m * MS);
    assert_eq!(backoffs(1, 0), nominal, "without jitter: Java's steps");
    let mut per_step: Vec<Vec<f64>> = vec![vec![]; 8];
    for seed in 0..400 {
        for (i, b) in backoffs(seed, 200).into_iter().enumerate() {
            let ratio = b.as_secs_f64() / nominal[i].as_secs_f64();
            assert!((0.8..=1.2).contains(&ratio), "seed {seed} step {i}: {b:?}");
            per_step[i].push(ratio);
        }
    }
    // Actually spread: the samples reach both ends and are not a few values.
    for (i, r) in per_step.iter().enumerate() {
        let lo = r.iter().cloned().fold(f64::MAX, f64::min);
        let hi = r.iter().cloned().fold(f64::MIN, f64::max);
        assert!(lo < 0.83 && hi > 1.17, "step {i}: {lo}..{hi}");
        let mut distinct: Vec<u64> = r.iter().map(|x| (x * 1e6) as u64).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            distinct.len() > 300,
            "step {i}: {} distinct of 400",
            distinct.len()
        );
        let mean = r.iter().sum::<f64>() / r.len() as f64;
        assert!((0.97..=1.03).contains(&mean), "step {i}: mean {mean}");
    }
}

#[test]
fn same_seed_same_backoffs_other_seed_other_backoffs() {
    assert_eq!(backoffs(42, 200), backoffs(42, 200));
    assert_ne!(backoffs(42, 200), backoffs(43, 200));
}

#[test]
fn setup_timeout_grows_from_10s_to_30s_and_resets_on_success() {
    let mut s = Sim::new(&["a:1"], no_circuit().with_jitter_permille(0));
    let mut seen = vec![];
    for _ in 0..4 {
        assert!(s.route(Target::Node(NodeId(-1))).is_ok());
        let actions = s.actions();
        let Some(Action::Dial { setup_timeout, .. }) = actions.first() else {
            panic!("{actions:?}")
        };
        seen.push(*setup_timeout);
        // Nothing happens: the policy times the dial out by itself.
        s.fire();
        let actions = s.actions();
        assert!(
            matches!(
                actions[0],
                Action::Close {
                    why: CloseWhy::SetupTimeout,
                    ..
                }
            ),
            "{actions:?}"
        );
        assert!(
            matches!(
                &actions[1],
                Action::Wake {
                    outcome: Err(RouteError::DialFailed {
                        failure: Failure::SetupTimeout { .. },
                        ..
                    }),
                    ..
                }
            ),
            "{actions:?}"
        );
        s.fire(); // the backoff
    }
    assert_eq!(seen, [10 * SEC, 20 * SEC, 30 * SEC, 30 * SEC]);
    let conn = s.dial(-1);
    assert!(s.p.handle_connected(conn, s.now));
    s.actions();
    // A ready connection that breaks backs off, but does not grow the
    // setup timeout (Java counts failed connection attempts only).
    s.p.handle_closed(conn, eof(), s.now);
    s.fire();
    assert!(s.route(Target::Node(NodeId(-1))).is_ok());
    let a = s.actions();
    assert!(
        matches!(a[0], Action::Dial { setup_timeout, .. } if setup_timeout == 10 * SEC),
        "{a:?}"
    );
    // With jitter, within ±20 % of the nominal value.
    for seed in 0..50 {
        let mut s = Sim::new(&["a:1"], no_circuit().with_seed(seed));
        assert!(s.route(Target::Node(NodeId(-1))).is_ok());
        let Action::Dial { setup_timeout, .. } = s.actions()[0].clone() else {
            panic!()
        };
        assert!(
            (8 * SEC..=12 * SEC).contains(&setup_timeout),
            "{setup_timeout:?}"
        );
    }
}

#[test]
fn a_backing_off_node_answers_at_once_with_the_failure_and_the_wait() {
    let mut s = Sim::new(&["a:1"], no_circuit().with_jitter_permille(0));
    let conn = s.dial(-1);
    s.refuse(conn);
    s.now += 20 * MS;
    let err = s.route(Target::Node(NodeId(-1))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bootstrap node -1 (a:1) is backing off for 30ms after: the TCP connection failed: connection refused"
    );
    assert!(err.is_retriable());
}

// ----- circuit breaker ----------------------------------------------------

#[test]
fn circuit_opens_after_n_failures_fails_fast_and_lets_one_probe_through() {
    let config = ClusterConfig::new()
        .with_circuit_breaker(Some(3), 10 * SEC)
        .with_jitter_permille(0);
    let mut s = Sim::new(&["a:1"], config);
    for i in 1..=3 {
        let conn = s.dial(-1);
        s.refuse(conn);
        if i < 3 {
            assert!(matches!(s.state(-1), NodeState::BackingOff { .. }));
            s.fire();
        }
    }
    assert!(s.events().contains(&Event::CircuitOpened {
        node: NodeId(-1),
        failures: 3
    }));
    // Open: an error at once, with the last failure, never a wait.
    let err = s.route(Target::Node(NodeId(-1))).unwrap_err();
    let RouteError::CircuitOpen {
        failures: 3,
        retry_in: Some(d),
        last: Failure::Dial(f),
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*d, 10 * SEC);
    assert_eq!(f.step, DialStep::Connect);
    assert_eq!(
        err.to_string(),
        "bootstrap node -1 (a:1): circuit open after 3 consecutive failures, next probe in 10s; last: the TCP connection failed: connection refused"
    );
    let a = s.actions();
    assert!(a.is_empty(), "no dial while open: {a:?}");
    // Half-open after the cool-down: exactly one probe.
    s.fire();
    assert_eq!(s.state(-1), NodeState::HalfOpen);
    assert!(s
        .events()
        .contains(&Event::CircuitHalfOpen { node: NodeId(-1) }));
    let probe = s.dial(-1);
    assert!(matches!(
        s.state(-1),
        NodeState::Dialing { probe: true, .. }
    ));
    for _ in 0..5 {
        let err = s.route(Target::Node(NodeId(-1))).unwrap_err();
        assert!(
            matches!(err, RouteError::CircuitOpen { retry_in: None, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("a probe is under way"));
    }
    assert!(s.actions().is_empty(), "one probe only");
    // The probe fails: open again for a cool-down.
    s.refuse(probe);
    assert!(matches!(s.state(-1), NodeState::CircuitOpen { .. }));
    s.fire();
    // The next probe succeeds: closed.
    let probe = s.dial(-1);
    assert!(s.p.handle_connected(probe, s.now));
    s.actions();
    assert!(s
        .events()
        .contains(&Event::CircuitClosed { node: NodeId(-1) }));
    assert_eq!(s.route(Target::Node(NodeId(-1))), Ok(Route::Ready(probe)));
    assert_eq!(s.p.node(NodeId(-1)).unwrap().failures, 0);
}

#[test]
fn a_failure_no_retry_can_fix_opens_the_circuit_at_once() {
    let mut s = Sim::new(&["a:1"], ClusterConfig::new());
    let conn = s.dial(-1);
    let auth = CloseReason::AuthFailed(AuthFailure {
        mechanism: "SCRAM-SHA-256".into(),
        error_code: Some(58),
        message: "bad password".into(),
        detail: None,
        reauthentication: false,
    });
    s.p.handle_closed(conn, auth, s.now);
    let err = s.route(Target::Node(NodeId(-1))).unwrap_err();
    assert!(
        matches!(err, RouteError::CircuitOpen { failures: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("closed during the Kafka handshake"),
        "{err}"
    );
    assert!(err.to_string().contains("bad password"), "{err}");
}

// ----- rebootstrap --------------------------------------------------------

#[test]
fn rebootstrap_after_the_configured_time_with_no_reachable_node() {
    let config = no_circuit().with_rebootstrap_after(Some(300 * SEC));
    let mut s = Sim::new(&["seed:9092"], config);
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092)]);
    s.events();
    let t0 = s.now;
    let conn = s.dial(1);
    s.refuse(conn);
    // Keep failing, every node, until just before the trigger.
    while s.now < t0 + 299 * SEC {
        s.advance(SEC);
        for node in [1, 2] {
            if s.state(node) == NodeState::Disconnected {
                let c = s.dial(node);
                s.refuse(c);
            }
        }
        assert!(!s
            .events()
            .iter()
            .any(|e| matches!(e, Event::Rebootstrapped { .. })));
    }
    s.advance(2 * SEC);
    let events = s.events();
    assert!(
        events.contains(&Event::Rebootstrapped {
            reason: RebootstrapReason::NoNodeReachable { for_: s.now - t0 }
        }),
        "{events:?}"
    );
    let ids: Vec<NodeId> = s.p.nodes().map(|n| n.id).collect();
    assert_eq!(ids, [NodeId(-1)]);
    assert_eq!(s.state(-1), NodeState::Disconnected);
    assert!(
        s.actions()
            .contains(&Action::RefreshMetadata { via: NodeId(-1) }),
        "a refresh through the bootstrap address"
    );
}

#[test]
fn a_ready_node_in_between_resets_the_rebootstrap_clock() {
    let mut s = Sim::new(&["seed:9092"], no_circuit());
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092)]);
    let c = s.dial(1);
    s.refuse(c);
    s.advance(200 * SEC);
    s.connect(2);
    s.advance(200 * SEC);
    assert!(!s
        .events()
        .iter()
        .any(|e| matches!(e, Event::Rebootstrapped { .. })));
    assert_eq!(s.p.nodes().count(), 2);
}

#[test]
fn rebootstrap_on_rebootstrap_required() {
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092)]);
    let conn = s.connect(1);
    assert_eq!(s.route(Target::Node(NodeId(1))), Ok(Route::Ready(conn)));
    s.events();
    s.p.handle_error_code(129, s.now);
    assert!(s.events().contains(&Event::Rebootstrapped {
        reason: RebootstrapReason::RebootstrapRequired
    }));
    assert_eq!(s.p.nodes().map(|n| n.id).collect::<Vec<_>>(), [NodeId(-1)]);
    // The old connection drains: closed once its request is done.
    assert!(!s
        .actions()
        .iter()
        .any(|a| matches!(a, Action::Close { .. })));
    s.p.request_done(conn, s.now);
    assert_eq!(
        s.actions(),
        [Action::Close {
            conn,
            why: CloseWhy::Rebootstrap
        }]
    );
    // Also as a Metadata v13 top-level error.
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092)]);
    let body = encode_metadata(13, &[(5, "b5", 9092)], Some("c"), 5, &[], 129);
    assert!(s.p.handle_metadata(13, &body, s.now).is_err());
    assert_eq!(s.p.nodes().map(|n| n.id).collect::<Vec<_>>(), [NodeId(-1)]);
    // As brokers send it: the error with an empty broker array (Kafka and
    // the librdkafka mock cluster list no broker with a top-level error).
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092)]);
    let body = encode_metadata(13, &[], Some("c"), -1, &[], 129);
    assert_eq!(
        s.p.handle_metadata(13, &body, s.now),
        Err(MetadataError::TopLevelError { code: 129 })
    );
    assert_eq!(s.p.nodes().map(|n| n.id).collect::<Vec<_>>(), [NodeId(-1)]);
    // Disabled (metadata.recovery.strategy=none): neither happens.
    let mut s = Sim::new(
        &["seed:9092"],
        ClusterConfig::new().with_rebootstrap_after(None),
    );
    s.metadata(&[(1, "b1", 9092)]);
    s.p.handle_error_code(129, s.now);
    assert_eq!(s.p.nodes().map(|n| n.id).collect::<Vec<_>>(), [NodeId(1)]);
}

// ----- choosing a node ----------------------------------------------------

#[test]
fn least_loaded_prefers_ready_with_fewest_in_flight_then_dialing_then_not_backing_off() {
    let mut s = Sim::new(&["seed:9092"], no_circuit());
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092), (3, "b3", 9092)]);
    let c1 = s.connect(1);
    let c2 = s.connect(2);
    for _ in 0..3 {
        assert_eq!(s.route(Target::Node(NodeId(1))), Ok(Route::Ready(c1)));
    }
    assert_eq!(s.route(Target::Node(NodeId(2))), Ok(Route::Ready(c2)));
    // Node 2 has fewer in flight.
    for _ in 0..20 {
        assert_eq!(s.route(Target::Any), Ok(Route::Ready(c2)));
        s.p.request_done(c2, s.now);
    }
    assert_eq!(s.p.in_flight(c2), Some(1));
    // Without ready nodes: the one being dialed.
    let mut s = Sim::new(&["seed:9092"], no_circuit());
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092)]);
    let c = s.dial(1);
    s.refuse(c);
    s.dial(2);
    assert_eq!(s.route(Target::Any), Ok(Route::Wait(NodeId(2))));
    assert!(s.actions().is_empty(), "joins the dial");
    // Then one that may be dialed; none when all back off.
    let mut s = Sim::new(&["seed:9092"], no_circuit());
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092)]);
    let c = s.dial(1);
    s.refuse(c);
    assert_eq!(s.route(Target::Any), Ok(Route::Wait(NodeId(2))));
    let c = s.actions().into_iter().find_map(|a| match a {
        Action::Dial { conn, .. } => Some(conn),
        _ => None,
    });
    s.refuse(c.unwrap());
    let err = s.route(Target::Any).unwrap_err();
    let RouteError::NoNodeAvailable {
        nodes: 2,
        retry_in: Some(_),
        last: Some((NodeId(2), _)),
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        err.to_string().starts_with("no node of 2 is usable now"),
        "{err}"
    );
}

#[test]
fn ties_are_spread_over_nodes() {
    let mut s = Sim::new(&["seed:9092"], no_circuit());
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092), (3, "b3", 9092)]);
    let conns = [s.connect(1), s.connect(2), s.connect(3)];
    let mut hits = [0; 3];
    for _ in 0..300 {
        let Ok(Route::Ready(c)) = s.route(Target::Any) else {
            panic!()
        };
        hits[conns.iter().position(|&x| x == c).unwrap()] += 1;
        s.p.request_done(c, s.now);
    }
    assert!(hits.iter().all(|&h| h > 50), "{hits:?}");
}

// ----- limits -------------------------------------------------------------

#[test]
fn at_the_cap_the_least_recently_used_idle_connection_makes_room() {
    let mut s = Sim::new(&["seed:9092"], no_circuit().with_max_connections(Some(2)));
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092), (3, "b3", 9092)]);
    let c1 = s.connect(1);
    s.now += SEC;
    let c2 = s.connect(2);
    s.now += SEC;
    // Node 1 used last: node 2 is the least recently used.
    assert_eq!(s.route(Target::Node(NodeId(1))), Ok(Route::Ready(c1)));
    s.p.request_done(c1, s.now);
    assert_eq!(s.route(Target::Node(NodeId(3))), Ok(Route::Wait(NodeId(3))));
    let actions = s.actions();
    assert_eq!(
        actions[0],
        Action::Close {
            conn: c2,
            why: CloseWhy::LeastRecentlyUsed
        }
    );
    assert!(matches!(actions[1], Action::Dial { conn, .. } if conn.node() == NodeId(3)));
    assert_eq!(s.state(2), NodeState::Disconnected);
    assert_eq!(s.p.open_connections(), 2);
    // A busy connection is never closed for room: the idle one is.
    let c3 = s.actions_connect_pending(3);
    assert_eq!(s.route(Target::Node(NodeId(3))), Ok(Route::Ready(c3)));
    assert_eq!(s.route(Target::Node(NodeId(2))), Ok(Route::Wait(NodeId(2))));
    assert_eq!(
        s.actions()[0],
        Action::Close {
            conn: c1,
            why: CloseWhy::LeastRecentlyUsed
        }
    );
    // Everything busy or dialing: a clear error, no wait.
    let err = s.route(Target::Node(NodeId(1))).unwrap_err();
    assert_eq!(
        err,
        RouteError::ConnectionLimit {
            node: NodeId(1),
            max: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "node 1: all 2 allowed connections are open and busy (max_connections)"
    );
}

impl Sim {
    /// Connects the dial already under way for `node`.
    fn actions_connect_pending(&mut self, node: i32) -> ConnId {
        let NodeState::Dialing { conn, .. } = self.state(node) else {
            panic!("not dialing")
        };
        assert!(self.p.handle_connected(conn, self.now));
        self.actions();
        conn
    }
}

// ----- metadata merge -----------------------------------------------------

#[test]
fn first_metadata_replaces_the_bootstrap_entries() {
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    let boot = s.connect(-1);
    assert_eq!(s.route(Target::Node(NodeId(-1))), Ok(Route::Ready(boot)));
    s.events();
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9093)]);
    let events = s.events();
    assert!(events.contains(&Event::NodeRemoved { node: NodeId(-1) }));
    assert!(events.iter().any(|e| matches!(e, Event::NodeAdded { node: NodeId(2), address, .. } if address.to_string() == "b2:9093")));
    // The bootstrap connection answers its request, then closes.
    assert!(s.actions().is_empty());
    assert_eq!(s.p.open_connections(), 1);
    s.p.request_done(boot, s.now);
    assert_eq!(
        s.actions(),
        [Action::Close {
            conn: boot,
            why: CloseWhy::NodeRemoved
        }]
    );
    assert_eq!(s.p.open_connections(), 0);
    assert_eq!(
        s.route(Target::Node(NodeId(-1))),
        Err(RouteError::UnknownNode(NodeId(-1)))
    );
}

#[test]
fn a_removed_node_closes_once_nothing_is_in_flight() {
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092)]);
    let c2 = s.connect(2);
    for _ in 0..2 {
        assert_eq!(s.route(Target::Node(NodeId(2))), Ok(Route::Ready(c2)));
    }
    s.metadata(&[(1, "b1", 9092)]);
    assert!(s.actions().is_empty());
    assert_eq!(s.p.in_flight(c2), Some(2));
    s.p.request_done(c2, s.now);
    assert!(s.actions().is_empty());
    s.p.request_done(c2, s.now);
    assert_eq!(
        s.actions(),
        [Action::Close {
            conn: c2,
            why: CloseWhy::NodeRemoved
        }]
    );
    // Late reports about it are ignored.
    s.p.request_done(c2, s.now);
    s.p.handle_closed(c2, eof(), s.now);
    assert!(s.actions().is_empty());
}

#[test]
fn requests_counted_without_route_are_in_flight_and_a_drained_connection_closes() {
    // A driver's lock-free path counts on the ready connection's `InFlight`
    // instead of calling `route`: the policy sees those requests in every
    // decision, refuses the counter once the connection stops being ready,
    // and closes a draining connection when the last of them ends.
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092)]);
    let c1 = s.connect(1);
    let c2 = s.connect(2);
    let counter = s.p.in_flight_counter(c2).expect("ready").clone();
    assert_eq!(counter.try_begin(), Begin::Begun);
    assert_eq!(counter.try_begin(), Begin::Begun);
    assert_eq!(s.route(Target::Node(NodeId(2))), Ok(Route::Ready(c2)));
    assert_eq!(s.p.in_flight(c2), Some(3));
    assert_eq!(s.p.node(NodeId(2)).unwrap().in_flight, 3);
    // Least loaded: node 1 (none in flight) rather than node 2.
    assert_eq!(s.route(Target::Any), Ok(Route::Ready(c1)));
    s.p.request_done(c1, s.now);
    // Node 2 leaves the table: it drains.
    s.metadata(&[(1, "b1", 9092)]);
    assert!(s.actions().is_empty());
    assert!(s.p.in_flight_counter(c2).is_none());
    assert!(counter.is_retired());
    assert_eq!(counter.try_begin(), Begin::Retired { drained: false });
    assert_eq!(s.p.in_flight(c2), Some(3));
    s.p.request_done(c2, s.now);
    assert!(!counter.end());
    assert!(s.actions().is_empty());
    // The last one, ended on the counter: the driver tells the policy.
    assert!(counter.end());
    s.p.request_drained(c2, s.now);
    assert_eq!(
        s.actions(),
        [Action::Close {
            conn: c2,
            why: CloseWhy::NodeRemoved
        }]
    );
    // Late reports are ignored.
    s.p.request_drained(c2, s.now);
    assert!(!counter.end());
    assert!(s.actions().is_empty());
    // A connection that closes retires its counter; the next one has a
    // fresh counter.
    let old = s.p.in_flight_counter(c1).unwrap().clone();
    s.p.handle_closed(c1, eof(), s.now);
    assert!(old.is_retired());
    assert!(s.p.in_flight_counter(c1).is_none());
}

#[test]
fn a_removed_node_being_dialed_wakes_its_waiters() {
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092)]);
    let c2 = s.dial(2);
    assert_eq!(s.route(Target::Node(NodeId(2))), Ok(Route::Wait(NodeId(2))));
    s.metadata(&[(1, "b1", 9092)]);
    assert_eq!(
        s.actions(),
        [
            Action::Close {
                conn: c2,
                why: CloseWhy::NodeRemoved
            },
            Action::Wake {
                node: NodeId(2),
                waiters: 2,
                outcome: Err(RouteError::NodeRemoved(NodeId(2)))
            }
        ]
    );
    assert!(
        !s.p.handle_connected(c2, s.now),
        "the late connection is not wanted"
    );
}

#[test]
fn a_moved_node_is_reconnected_at_its_new_address() {
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092)]);
    let old = s.connect(1);
    assert_eq!(s.route(Target::Node(NodeId(1))), Ok(Route::Ready(old)));
    s.events();
    s.metadata(&[(1, "b1-new", 9093)]);
    let events = s.events();
    assert!(
        events.iter().any(
            |e| matches!(e, Event::NodeAddressChanged { node: NodeId(1), from, to }
        if from.to_string() == "b1:9092" && to.to_string() == "b1-new:9093")
        ),
        "{events:?}"
    );
    assert_eq!(s.state(1), NodeState::Disconnected);
    // The next request dials the new address; the old connection drains.
    assert_eq!(s.route(Target::Node(NodeId(1))), Ok(Route::Wait(NodeId(1))));
    let actions = s.actions();
    assert!(
        matches!(&actions[0], Action::Dial { address, .. } if address.to_string() == "b1-new:9093"),
        "{actions:?}"
    );
    s.p.request_done(old, s.now);
    assert_eq!(
        s.actions(),
        [Action::Close {
            conn: old,
            why: CloseWhy::AddressChanged
        }]
    );
    // A dial with waiters is restarted at the new address.
    let NodeState::Dialing { conn: first, .. } = s.state(1) else {
        panic!()
    };
    s.metadata(&[(1, "b1-newer", 9094)]);
    let actions = s.actions();
    assert_eq!(
        actions[0],
        Action::Close {
            conn: first,
            why: CloseWhy::AddressChanged
        }
    );
    assert!(
        matches!(&actions[1], Action::Dial { address, .. } if address.to_string() == "b1-newer:9094")
    );
    assert_eq!(s.p.node(NodeId(1)).unwrap().waiters, 1);
}

#[test]
fn metadata_is_refreshed_when_older_than_max_age_via_the_least_loaded_node() {
    let now = Instant::now();
    let mut p = ClusterPolicy::new(["seed:9092"], ClusterConfig::new(), now).unwrap();
    assert_eq!(
        p.poll_action(),
        Some(Action::RefreshMetadata { via: NodeId(-1) })
    );
    assert_eq!(p.poll_action(), None);
    let body = encode_metadata(9, &[(1, "b1", 9092), (2, "b2", 9092)], Some("c"), 1, &[], 0);
    p.handle_metadata(9, &body, now).unwrap();
    assert_eq!(p.poll_timeout(), Some(now + 300 * SEC));
    p.handle_timeout(now + 299 * SEC);
    assert_eq!(p.poll_action(), None);
    p.handle_timeout(now + 300 * SEC);
    let Some(Action::RefreshMetadata { via }) = p.poll_action() else {
        panic!()
    };
    assert!([NodeId(1), NodeId(2)].contains(&via));
    // No second refresh while one is in flight, even when asked.
    p.refresh_metadata(now + 301 * SEC);
    assert_eq!(p.poll_action(), None);
    // A failed one is retried after 100 ms ± 20 %.
    let t = now + 302 * SEC;
    p.handle_metadata_failed(t);
    assert_eq!(p.poll_action(), None);
    let retry = p.poll_timeout().unwrap() - t;
    assert!((80 * MS..=120 * MS).contains(&retry), "{retry:?}");
    p.handle_timeout(t + retry);
    assert!(matches!(
        p.poll_action(),
        Some(Action::RefreshMetadata { .. })
    ));
    assert_eq!(p.metadata_age(t), Some(302 * SEC));
}

// ----- single flight ------------------------------------------------------

#[test]
fn a_thousand_callers_share_one_dial() {
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092)]);
    for _ in 0..1000 {
        assert_eq!(s.route(Target::Node(NodeId(1))), Ok(Route::Wait(NodeId(1))));
    }
    let dials: Vec<Action> = s.actions();
    assert_eq!(dials.len(), 1, "{dials:?}");
    let Action::Dial { conn, .. } = dials[0] else {
        panic!()
    };
    assert_eq!(s.p.node(NodeId(1)).unwrap().waiters, 1000);
    assert!(s.p.handle_connected(conn, s.now));
    assert_eq!(
        s.actions(),
        [Action::Wake {
            node: NodeId(1),
            waiters: 1000,
            outcome: Ok(conn)
        }]
    );
    assert_eq!(s.p.node(NodeId(1)).unwrap().waiters, 0);
    // They route again and all go out on the one connection.
    for _ in 0..1000 {
        assert_eq!(s.route(Target::Node(NodeId(1))), Ok(Route::Ready(conn)));
    }
    assert_eq!(s.p.in_flight(conn), Some(1000));
}

#[test]
fn waiters_of_a_failed_dial_get_the_failure() {
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092)]);
    let conn = s.dial(1);
    assert_eq!(s.route(Target::Node(NodeId(1))), Ok(Route::Wait(NodeId(1))));
    s.p.handle_dial_failed(
        conn,
        DialFailure::new(DialStep::Tls, "certificate expired"),
        s.now,
    );
    let actions = s.actions();
    let [Action::Wake {
        node: NodeId(1),
        waiters: 2,
        outcome: Err(e),
    }] = &actions[..]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(
        e.to_string(),
        "node 1 (b1:9092): the TLS handshake failed: certificate expired"
    );
}

// ----- the contract -------------------------------------------------------

#[test]
fn spurious_timeouts_are_no_ops() {
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092)]);
    let c = s.dial(1);
    s.refuse(c);
    s.events();
    let before: Vec<_> = s.p.nodes().map(|n| (n.id, n.state)).collect();
    let deadline = s.p.poll_timeout();
    for _ in 0..10 {
        s.p.handle_timeout(s.now);
    }
    let a = s.actions();
    assert!(a.is_empty(), "{a:?}");
    assert!(s.events().is_empty());
    assert_eq!(
        before,
        s.p.nodes().map(|n| (n.id, n.state)).collect::<Vec<_>>()
    );
    assert_eq!(deadline, s.p.poll_timeout());
}

#[test]
fn close_closes_everything_and_wakes_everyone() {
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092), (2, "b2", 9092)]);
    let c1 = s.connect(1);
    assert_eq!(s.route(Target::Node(NodeId(1))), Ok(Route::Ready(c1)));
    let c2 = s.dial(2);
    s.p.close(s.now);
    assert_eq!(
        s.actions(),
        [
            Action::Close {
                conn: c1,
                why: CloseWhy::Shutdown
            },
            Action::Close {
                conn: c2,
                why: CloseWhy::Shutdown
            },
            Action::Wake {
                node: NodeId(2),
                waiters: 1,
                outcome: Err(RouteError::Closed)
            },
        ]
    );
    assert_eq!(s.route(Target::Any), Err(RouteError::Closed));
    assert_eq!(s.p.poll_timeout(), None);
    assert!(s.p.is_closed());
    s.p.close(s.now);
    assert!(s.actions().is_empty(), "idempotent");
}

#[test]
fn an_idle_close_is_not_a_failure() {
    let mut s = Sim::new(&["seed:9092"], ClusterConfig::new());
    s.metadata(&[(1, "b1", 9092)]);
    let c = s.connect(1);
    s.p.handle_closed(
        c,
        CloseReason::Idle {
            idle_for: 540 * SEC,
        },
        s.now,
    );
    assert_eq!(s.state(1), NodeState::Disconnected);
    assert_eq!(s.p.node(NodeId(1)).unwrap().failures, 0);
    assert_eq!(s.route(Target::Node(NodeId(1))), Ok(Route::Wait(NodeId(1))));
}

#[test]
fn huge_durations_mean_never_instead_of_overflowing() {
    let config = ClusterConfig::new()
        .with_reconnect_backoff(Duration::MAX, Duration::MAX)
        .with_setup_timeout(Duration::MAX, Duration::MAX)
        .with_circuit_breaker(Some(1), Duration::MAX)
        .with_rebootstrap_after(Some(Duration::MAX))
        .with_metadata_max_age(Duration::MAX);
    let mut s = Sim::new(&["a:1"], config);
    let c = s.dial(-1);
    s.refuse(c);
    assert_eq!(s.state(-1), NodeState::CircuitOpen { until: None });
    assert_eq!(s.p.poll_timeout(), None);
    s.p.handle_timeout(s.now + 1000 * SEC);
}
