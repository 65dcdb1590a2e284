//! The body of the cargo-fuzz target `cluster_policy` (feature `fuzzing`).
//! Not part of the stable API.
//!
//! [`run_cluster_policy`] builds a policy from an arbitrary configuration and
//! drives it with arbitrary operations (routes, request ends, dial outcomes,
//! closes with every kind of reason, stale reports, Metadata bodies built
//! from parts or raw bytes at v0-v13, error codes, refreshes, rebootstraps,
//! time jumps, the timer, close), acting as a driver would, and **panics on
//! any broken invariant**:
//!
//! - never two dials for one node at once (a dial ends with a report or an
//!   [`Action::Close`]);
//! - after `handle_timeout(now)`, `poll_timeout()` is `None` or later than `now`;
//! - every node in exactly one state; waiters only on a node being dialed,
//!   and exactly as many as callers parked on it; requests in flight only on
//!   a ready connection, exactly as many as routed and not done;
//!   open connections within `max_connections`;
//! - a connection is closed only when nothing is in flight on it (except at
//!   shutdown); every `Wake` wakes someone; every parked caller is woken by
//!   `close`;
//! - Metadata built with a fault (duplicate id, port 0, empty host, no
//!   broker, another cluster id, an error code) is refused with the table
//!   unchanged; a good one makes the table exactly its brokers;
//! - no panic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use kafka_conn_core::{BrokenCause, CloseReason, Phase, TimeoutKind};

use crate::{
    Action, Address, Begin, ClusterConfig, ClusterPolicy, ConnId, DialFailure, DialStep, InFlight,
    NodeId, NodeState, Route, Target,
};

/// A target's body: runs one raw fuzzer input, panicking on a broken invariant.
pub type Body = fn(&[u8]);

/// The fuzz targets of this crate: (name, body), for the corpus replay test.
pub const TARGETS: &[(&str, Body)] = &[("cluster_policy", run_cluster_policy)];

/// The structured input.
#[derive(Debug, Arbitrary)]
pub struct Input {
    seed: u64,
    bootstrap: u8,
    backoff_ms: u16,
    backoff_max_extra_ms: u16,
    setup_ms: u16,
    setup_max_extra_ms: u16,
    jitter: u16,
    circuit: Option<u8>,
    cool_down_ms: u16,
    rebootstrap_ms: Option<u16>,
    max_age_ms: u16,
    cap: Option<u8>,
    ops: Vec<Op>,
}

/// One step.
#[derive(Debug, Arbitrary)]
pub enum Op {
    /// Let time pass without the timer firing.
    Advance(u16),
    /// Jump to `poll_timeout()` and fire.
    Fire,
    /// `handle_timeout(now)` without anything due.
    Spurious,
    /// Route a request to node `n` (bootstrap ids for n >= 200) or any.
    Route(Option<u8>),
    /// End one outstanding request (picked by index).
    Done(u8),
    /// A dial succeeds.
    Connected(u8),
    /// A dial fails at a step.
    DialFailed(u8, u8),
    /// A connection closes with a reason (kind 0-5).
    Closed(u8, u8),
    /// A report about a connection the policy already gave up.
    Stale(u8, u8),
    /// A Metadata response built from parts.
    Metadata(MdSpec),
    /// A Metadata response from raw bytes.
    RawMetadata(u8, Vec<u8>),
    /// The refresh failed.
    MetadataFailed,
    /// An error code in a response.
    ErrorCode(i16),
    /// Ask for a refresh.
    Refresh,
    /// Ask for a rebootstrap.
    Rebootstrap,
    /// Accept a cluster id.
    Accept(Option<u8>),
    /// Shut down.
    Close,
    /// A driver's lock-free request path: count a request on node `n`'s
    /// ready connection through its `InFlight` counter, without `route`.
    FastRoute(u8),
    /// End one request counted that way (picked by index).
    FastDone(u8),
    /// `try_begin` on a counter seen earlier (maybe retired since).
    StaleBegin(u8),
}

/// A Metadata response from parts, possibly with faults.
#[derive(Debug, Arbitrary)]
pub struct MdSpec {
    version: u8,
    brokers: Vec<(u8, u8, u16)>,
    cluster: Option<u8>,
    controller: i8,
    topics: Vec<(u8, Vec<(u8, i8)>)>,
    error: bool,
}

/// Runs the target on raw fuzzer bytes.
pub fn run_cluster_policy(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    Harness::run(input);
}

/// Describes what an input stands for (triage).
pub fn describe(data: &[u8]) -> Option<String> {
    Input::arbitrary_take_rest(Unstructured::new(data))
        .ok()
        .map(|i| format!("{i:#?}"))
}

const HOSTS: [&str; 5] = ["b0", "b1", "b2", "b3", ""];

struct Harness {
    policy: ClusterPolicy,
    now: Instant,
    cap: Option<usize>,
    /// Dials under way, by node.
    dialing: BTreeMap<NodeId, ConnId>,
    /// Connections the driver holds open (ready or draining).
    open: Vec<ConnId>,
    /// Requests routed Ready and not done, per connection.
    outstanding: Vec<ConnId>,
    /// Requests counted through a connection's `InFlight` and not ended
    /// (kept after the connection closes: ending them must be harmless).
    fast: Vec<(ConnId, InFlight)>,
    /// Counters seen (the last 16), for stale `try_begin`s.
    counters: Vec<(ConnId, InFlight)>,
    /// Callers parked per node.
    parked: BTreeMap<NodeId, u32>,
    /// Connections given up (for stale reports).
    gone: Vec<ConnId>,
}

impl Harness {
    fn run(input: Input) {
        let t0 = Instant::now();
        let ms = |v: u16| Duration::from_millis(u64::from(v));
        let backoff = ms(input.backoff_ms);
        let setup = ms(input.setup_ms.max(1));
        let cap = input.cap.map(|c| usize::from(c % 6).max(1));
        let config = ClusterConfig::new()
            .with_seed(input.seed)
            .with_reconnect_backoff(backoff, backoff + ms(input.backoff_max_extra_ms))
            .with_setup_timeout(setup, setup + ms(input.setup_max_extra_ms))
            .with_jitter_permille(input.jitter % 1001)
            .with_circuit_breaker(
                input.circuit.map(|c| u32::from(c % 8).max(1)),
                ms(input.cool_down_ms.max(1)),
            )
            .with_rebootstrap_after(input.rebootstrap_ms.map(|r| ms(r.max(1))))
            .with_metadata_max_age(ms(input.max_age_ms.max(1)))
            .with_max_connections(cap);
        let n = usize::from(input.bootstrap % 4) + 1;
        let bootstrap: Vec<String> = (0..n).map(|i| format!("boot{i}:9092")).collect();
        let policy = ClusterPolicy::new(&bootstrap, config, t0).expect("valid config");
        let mut h = Harness {
            policy,
            now: t0,
            cap,
            dialing: BTreeMap::new(),
            open: Vec::new(),
            outstanding: Vec::new(),
            fast: Vec::new(),
            counters: Vec::new(),
            parked: BTreeMap::new(),
            gone: Vec::new(),
        };
        h.drain();
        for op in input.ops.into_iter().take(256) {
            h.step(op);
            h.drain();
            h.check();
        }
        h.step(Op::Close);
        h.drain();
        assert!(
            h.parked.values().all(|&w| w == 0),
            "callers left parked after close: {:?}",
            h.parked
        );
        assert!(
            h.dialing.is_empty(),
            "dials left after close: {:?}",
            h.dialing
        );
        assert_eq!(h.policy.poll_timeout(), None, "a deadline after close");
    }

    fn pick<T: Clone>(list: &[T], i: u8) -> Option<T> {
        (!list.is_empty()).then(|| list[usize::from(i) % list.len()].clone())
    }

    fn step(&mut self, op: Op) {
        let now = self.now;
        match op {
            Op::Advance(ms) => self.now += Duration::from_millis(u64::from(ms)),
            Op::Fire => {
                if let Some(t) = self.policy.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeout();
            }
            Op::Spurious => self.timeout(),
            Op::Route(n) => {
                let target = match n {
                    None => Target::Any,
                    Some(n) if n >= 200 => Target::Node(NodeId(-1 - i32::from(n % 5))),
                    Some(n) => Target::Node(NodeId(i32::from(n % 8))),
                };
                match self.policy.route(target, now) {
                    Ok(Route::Ready(conn)) => self.outstanding.push(conn),
                    Ok(Route::Wait(node)) => *self.parked.entry(node).or_default() += 1,
                    Err(_) => {}
                }
            }
            Op::Done(i) => {
                if !self.outstanding.is_empty() {
                    let conn = self
                        .outstanding
                        .remove(usize::from(i) % self.outstanding.len());
                    self.policy.request_done(conn, now);
                }
            }
            Op::Connected(i) => {
                let dials: Vec<ConnId> = self.dialing.values().copied().collect();
                if let Some(conn) = Self::pick(&dials, i) {
                    self.dialing.remove(&conn.node());
                    assert!(
                        self.policy.handle_connected(conn, now),
                        "current dial refused"
                    );
                    self.open.push(conn);
                }
            }
            Op::DialFailed(i, step) => {
                let dials: Vec<ConnId> = self.dialing.values().copied().collect();
                if let Some(conn) = Self::pick(&dials, i) {
                    self.dialing.remove(&conn.node());
                    self.policy
                        .handle_dial_failed(conn, dial_failure(step), now);
                }
            }
            Op::Closed(i, kind) => {
                let mut all: Vec<ConnId> = self.dialing.values().copied().collect();
                all.extend(&self.open);
                if let Some(conn) = Self::pick(&all, i) {
                    self.forget(conn);
                    self.policy.handle_closed(conn, close_reason(kind), now);
                }
            }
            Op::Stale(i, kind) => {
                if let Some(conn) = Self::pick(&self.gone, i) {
                    let before = self.snapshot();
                    match kind % 3 {
                        0 => assert!(!self.policy.handle_connected(conn, now), "stale connected"),
                        1 => self
                            .policy
                            .handle_dial_failed(conn, dial_failure(kind), now),
                        _ => self.policy.handle_closed(conn, close_reason(kind), now),
                    }
                    assert_eq!(before, self.snapshot(), "a stale report changed the table");
                }
            }
            Op::Metadata(spec) => self.metadata(spec),
            Op::RawMetadata(v, body) => {
                let before = self.snapshot();
                if self
                    .policy
                    .handle_metadata(i16::from(v % 15), &body, now)
                    .is_err()
                {
                    assert_eq!(
                        before,
                        self.snapshot(),
                        "refused Metadata changed the table"
                    );
                }
            }
            Op::MetadataFailed => self.policy.handle_metadata_failed(now),
            Op::ErrorCode(c) => self.policy.handle_error_code(c, now),
            Op::Refresh => self.policy.refresh_metadata(now),
            Op::Rebootstrap => self.policy.rebootstrap(now),
            Op::Accept(c) => self
                .policy
                .accept_cluster_id(c.map(|c| format!("c{}", c % 3))),
            Op::Close => self.policy.close(now),
            Op::FastRoute(n) => {
                let id = if n >= 200 {
                    NodeId(-1 - i32::from(n % 5))
                } else {
                    NodeId(i32::from(n % 8))
                };
                let ready = self.policy.node(id).and_then(|n| match n.state {
                    NodeState::Ready { conn } => Some(conn),
                    _ => None,
                });
                if let Some(conn) = ready {
                    let counter = self
                        .policy
                        .in_flight_counter(conn)
                        .expect("a ready connection has a counter")
                        .clone();
                    assert_eq!(
                        counter.try_begin(),
                        Begin::Begun,
                        "{conn} ready but refused"
                    );
                    self.fast.push((conn, counter.clone()));
                    self.counters.push((conn, counter));
                    if self.counters.len() > 16 {
                        self.counters.remove(0);
                    }
                } else if let Some(n) = self.policy.node(id) {
                    assert!(n.state != NodeState::Disconnected || n.in_flight == 0);
                }
            }
            Op::FastDone(i) => {
                if !self.fast.is_empty() {
                    let (conn, counter) = self.fast.remove(usize::from(i) % self.fast.len());
                    if counter.end() {
                        self.policy.request_drained(conn, now);
                    }
                }
            }
            Op::StaleBegin(i) => {
                if let Some((conn, counter)) = Self::pick(&self.counters, i) {
                    let ready = self
                        .policy
                        .node(conn.node())
                        .is_some_and(|n| n.state == (NodeState::Ready { conn }));
                    match counter.try_begin() {
                        Begin::Begun => {
                            assert!(ready, "{conn}: counted after it stopped being ready");
                            self.fast.push((conn, counter));
                        }
                        Begin::Retired { drained } => {
                            assert!(!ready, "{conn}: ready but its counter refused");
                            if drained {
                                self.policy.request_drained(conn, now);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Requests in flight on `conn` as the driver counts them (routed and
    /// counted through its `InFlight`).
    fn running(&self, conn: ConnId) -> usize {
        self.outstanding.iter().filter(|&&c| c == conn).count()
            + self.fast.iter().filter(|(c, _)| *c == conn).count()
    }

    fn timeout(&mut self) {
        self.policy.handle_timeout(self.now);
        if let Some(t) = self.policy.poll_timeout() {
            assert!(
                t > self.now,
                "poll_timeout {t:?} not after handle_timeout({:?})",
                self.now
            );
        }
    }

    fn metadata(&mut self, spec: MdSpec) {
        let version = i16::from(spec.version % 14);
        let brokers: Vec<(i32, &str, i32)> = spec
            .brokers
            .iter()
            .take(6)
            .map(|&(id, host, port)| {
                (
                    i32::from(id % 6),
                    HOSTS[usize::from(host % 5)],
                    i32::from(port % 4) * 9092,
                )
            })
            .collect();
        let cluster = spec.cluster.map(|c| format!("c{}", c % 3));
        let error = if version >= 13 && spec.error { 129 } else { 0 };
        let body = encode_metadata(
            version,
            &brokers,
            cluster.as_deref(),
            spec.controller,
            &spec.topics,
            error,
        );
        let mut ids: Vec<i32> = brokers.iter().map(|b| b.0).collect();
        ids.sort_unstable();
        let dup = ids.windows(2).any(|w| w[0] == w[1]);
        let bad = brokers.is_empty() || dup || brokers.iter().any(|b| b.1.is_empty() || b.2 == 0);
        let other_cluster = version >= 2
            && matches!((self.policy.cluster_id(), &cluster), (Some(a), Some(b)) if a != b);
        let before = self.snapshot();
        let result = self.policy.handle_metadata(version, &body, self.now);
        if self.policy.is_closed() {
            assert_eq!(result, Err(crate::MetadataError::Closed));
            assert_eq!(before, self.snapshot(), "Metadata changed a closed table");
        } else if bad || other_cluster || error != 0 {
            assert!(
                result.is_err(),
                "bad Metadata accepted: {brokers:?} {cluster:?}"
            );
            if error == 0 {
                assert_eq!(
                    before,
                    self.snapshot(),
                    "refused Metadata changed the table"
                );
            }
        } else {
            assert_eq!(
                result,
                Ok(()),
                "good Metadata refused: v{version} {brokers:?}"
            );
            let table: Vec<(i32, String)> = self
                .policy
                .nodes()
                .map(|n| (n.id.0, n.address.to_string()))
                .collect();
            let mut want: Vec<(i32, String)> = brokers
                .iter()
                .map(|b| {
                    (
                        b.0,
                        Address {
                            host: b.1.to_owned(),
                            port: b.2 as u16,
                        }
                        .to_string(),
                    )
                })
                .collect();
            want.sort();
            assert_eq!(table, want, "the table is not the Metadata's brokers");
        }
    }

    fn snapshot(&self) -> Vec<(NodeId, String, NodeState)> {
        self.policy
            .nodes()
            .map(|n| (n.id, n.address.to_string(), n.state))
            .collect()
    }

    /// The driver no longer holds `conn`.
    fn forget(&mut self, conn: ConnId) {
        if self.dialing.get(&conn.node()) == Some(&conn) {
            self.dialing.remove(&conn.node());
        }
        self.open.retain(|&c| c != conn);
        self.outstanding.retain(|&c| c != conn);
        self.gone.push(conn);
        if self.gone.len() > 16 {
            self.gone.remove(0);
        }
    }

    fn drain(&mut self) {
        while let Some(action) = self.policy.poll_action() {
            match action {
                Action::Dial {
                    conn,
                    address,
                    setup_timeout,
                } => {
                    assert!(
                        address.port != 0 && !address.host.is_empty(),
                        "bad dial {address}"
                    );
                    assert!(!setup_timeout.is_zero(), "zero setup timeout");
                    if let Some(other) = self.dialing.insert(conn.node(), conn) {
                        panic!("two dials for {} at once: {other} and {conn}", conn.node());
                    }
                }
                Action::Close { conn, why } => {
                    if why != crate::CloseWhy::Shutdown {
                        let n = self.running(conn);
                        assert_eq!(n, 0, "{conn} closed ({why}) with {n} in flight");
                    }
                    self.forget(conn);
                }
                Action::RefreshMetadata { via } => {
                    assert!(self.policy.node(via).is_some(), "refresh via unknown {via}");
                }
                Action::Wake {
                    node,
                    waiters,
                    outcome,
                } => {
                    assert!(waiters > 0, "a Wake for nobody");
                    let parked = self.parked.remove(&node).unwrap_or(0);
                    assert_eq!(
                        parked, waiters,
                        "Wake for {node}: parked {parked}, counted {waiters}"
                    );
                    if let Ok(conn) = outcome {
                        assert_eq!(self.policy.in_flight(conn), Some(0), "woken onto {conn}");
                    }
                }
            }
        }
        while self.policy.poll_event().is_some() {}
    }

    fn check(&self) {
        let mut open = 0;
        for n in self.policy.nodes() {
            let parked = self.parked.get(&n.id).copied().unwrap_or(0);
            assert_eq!(
                n.waiters, parked,
                "{}: waiters {} but {parked} parked",
                n.id, n.waiters
            );
            if n.waiters > 0 {
                assert!(
                    matches!(n.state, NodeState::Dialing { .. }),
                    "{} has waiters in {:?}",
                    n.id,
                    n.state
                );
            }
            match n.state {
                NodeState::Ready { conn } => {
                    open += 1;
                    let running = self.running(conn);
                    assert_eq!(n.in_flight as usize, running, "{conn}: in flight");
                }
                NodeState::Dialing { conn, .. } => {
                    open += 1;
                    assert_eq!(n.in_flight, 0, "in flight while dialing");
                    assert_eq!(self.dialing.get(&n.id), Some(&conn), "dial not announced");
                }
                _ => assert_eq!(n.in_flight, 0, "{}: in flight in {:?}", n.id, n.state),
            }
        }
        // Draining connections count every request still running on them.
        for &conn in &self.open {
            if let Some(k) = self.policy.in_flight(conn) {
                assert_eq!(k as usize, self.running(conn), "{conn}: in flight");
            }
        }
        for (node, &w) in &self.parked {
            assert!(
                w == 0 || self.policy.node(*node).is_some(),
                "callers parked on gone {node}"
            );
        }
        assert!(open <= self.policy.open_connections());
        if let Some(cap) = self.cap {
            assert!(
                self.policy.open_connections() <= cap,
                "{} connections open, cap {cap}",
                self.policy.open_connections()
            );
        }
    }
}

fn dial_failure(step: u8) -> DialFailure {
    let step = match step % 4 {
        0 => DialStep::Resolve,
        1 => DialStep::Connect,
        2 => DialStep::Proxy,
        _ => DialStep::Tls,
    };
    DialFailure::new(step, "fuzzed failure")
}

fn close_reason(kind: u8) -> CloseReason {
    match kind % 6 {
        0 => CloseReason::Broken {
            cause: BrokenCause::Eof,
            during: Phase::Ready,
        },
        1 => CloseReason::Idle {
            idle_for: Duration::from_secs(540),
        },
        2 => CloseReason::Shutdown,
        3 => CloseReason::Timeout(TimeoutKind::Handshake {
            after: Duration::from_secs(30),
            phase: Phase::Negotiating,
        }),
        4 => CloseReason::OutOfSync {
            expected: 1,
            received: 2,
        },
        _ => CloseReason::Protocol(kafka_conn_core::ProtocolViolation::LooksLikeTls),
    }
}

/// Encodes a Metadata response body at `version` (0-13) from parts, as
/// Kafka's schema lays it out. Written for the fuzzer's structured inputs;
/// the decoder is checked against an independent encoder (`kafka-protocol`)
/// in `tests/metadata.rs`.
pub fn encode_metadata(
    version: i16,
    brokers: &[(i32, &str, i32)],
    cluster_id: Option<&str>,
    controller: i8,
    topics: &[(u8, Vec<(u8, i8)>)],
    error_code: i16,
) -> Vec<u8> {
    let flexible = version >= 9;
    let mut b = Vec::new();
    let len = |b: &mut Vec<u8>, n: usize| {
        if flexible {
            uvarint(b, n as u32 + 1);
        } else {
            b.extend((n as i32).to_be_bytes());
        }
    };
    let string = |b: &mut Vec<u8>, s: Option<&str>| match (s, flexible) {
        (None, true) => b.push(0),
        (None, false) => b.extend((-1i16).to_be_bytes()),
        (Some(s), true) => {
            uvarint(b, s.len() as u32 + 1);
            b.extend(s.as_bytes());
        }
        (Some(s), false) => {
            b.extend((s.len() as i16).to_be_bytes());
            b.extend(s.as_bytes());
        }
    };
    if version >= 3 {
        b.extend(0i32.to_be_bytes());
    }
    len(&mut b, brokers.len());
    for &(id, host, port) in brokers {
        b.extend(id.to_be_bytes());
        string(&mut b, Some(host));
        b.extend(port.to_be_bytes());
        if version >= 1 {
            string(&mut b, None);
        }
        if flexible {
            b.push(0);
        }
    }
    if version >= 2 {
        string(&mut b, cluster_id);
    }
    if version >= 1 {
        b.extend(i32::from(controller).to_be_bytes());
    }
    len(&mut b, topics.len().min(4));
    for (t, parts) in topics.iter().take(4) {
        b.extend(0i16.to_be_bytes());
        string(&mut b, Some(&format!("t{}", t % 4)));
        if version >= 10 {
            b.extend([0u8; 16]);
        }
        if version >= 1 {
            b.push(0);
        }
        len(&mut b, parts.len().min(8));
        for &(p, leader) in parts.iter().take(8) {
            b.extend(0i16.to_be_bytes());
            b.extend(i32::from(p % 8).to_be_bytes());
            b.extend(i32::from(leader).to_be_bytes());
            if version >= 7 {
                b.extend(0i32.to_be_bytes());
            }
            let arrays = if version >= 5 { 3 } else { 2 };
            for _ in 0..arrays {
                len(&mut b, 1);
                b.extend(i32::from(leader).to_be_bytes());
            }
            if flexible {
                b.push(0);
            }
        }
        if version >= 8 {
            b.extend(0i32.to_be_bytes());
        }
        if flexible {
            b.push(0);
        }
    }
    if (8..=10).contains(&version) {
        b.extend(0i32.to_be_bytes());
    }
    if version >= 13 {
        b.extend(error_code.to_be_bytes());
    }
    if flexible {
        b.push(0);
    }
    b
}

fn uvarint(b: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}
