//! A `Cluster`'s policy events through the [`Observer`] hooks
//! (`on_cluster_event`, `on_cluster_table`) and as metrics
//! (`MetricsObserver`), against a private librdkafka mock cluster whose
//! broker is taken down and brought back (`docs/metrics.md`). Generic over
//! the runtime (run by [`crate::suite!`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_conn_driver::cluster_policy::RebootstrapReason;
use kafka_conn_driver::core::sasl::{Credential, CredentialRequest, SaslConfig};
use kafka_conn_driver::core::Config;
use kafka_conn_driver::{
    metric_names as names, Cluster, ClusterConfig, ClusterError, ClusterEvent, ClusterPolicyEvent,
    ClusterTableEvent, ConnectConfig, ConnectError, ConnectErrorEvent, MetricsObserver, NodeId,
    NodeState, Observer, PolicyConfig, Runtime, SetupStep, TlsConfig,
};
use kafka_conn_driver::{CallbackError, CredentialContext};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use crate::cluster::proxy::KafkaProxy;
use crate::cluster::{eventually, must_connect, until_circuit_opens};
use crate::env;
use crate::fake::FullBacklog;
use crate::kafka::{api_versions_error, api_versions_v0};
use crate::tests::LIMIT;
use crate::{sleep, timeout, MockCluster};

/// One `on_cluster_event`, as the recording observer saw it.
#[derive(Debug, Clone)]
struct Seen {
    cluster: u64,
    event: ClusterEvent,
    node: Option<NodeId>,
    node_state: Option<NodeState>,
    retry_in: Option<Duration>,
    backoff: bool,
}

/// One `on_cluster_table`: (known, previous known, open circuits, previous).
type Table = (usize, usize, Vec<NodeId>, Vec<NodeId>);

/// An observer that keeps every cluster event and table report.
#[derive(Default)]
struct Recording {
    events: Mutex<Vec<Seen>>,
    tables: Mutex<Vec<(u64, Table)>>,
}

impl Recording {
    fn events(&self) -> Vec<Seen> {
        self.events.lock().unwrap().clone()
    }

    fn tables(&self) -> Vec<(u64, Table)> {
        self.tables.lock().unwrap().clone()
    }

    fn count(&self, f: impl Fn(&Seen) -> bool) -> u64 {
        self.events().iter().filter(|s| f(s)).count() as u64
    }
}

impl Observer for Recording {
    fn on_cluster_event(&self, e: &ClusterPolicyEvent<'_>) {
        self.events.lock().unwrap().push(Seen {
            cluster: e.cluster,
            event: e.event.clone(),
            node: e.node(),
            node_state: e.node_state,
            retry_in: e.retry_in,
            backoff: e.is_backoff(),
        });
    }

    fn on_cluster_table(&self, e: &ClusterTableEvent<'_>) {
        self.tables.lock().unwrap().push((
            e.cluster,
            (
                e.known_nodes,
                e.previous_known_nodes,
                e.open_circuits.to_vec(),
                e.previous_open_circuits.to_vec(),
            ),
        ));
    }
}

/// The recording observer and a `MetricsObserver` side by side. The
/// metrics are told first: a test that has seen an event recorded may
/// read its counters at once, from another thread.
struct Both(Arc<Recording>, MetricsObserver);

impl Observer for Both {
    fn on_cluster_event(&self, e: &ClusterPolicyEvent<'_>) {
        self.1.on_cluster_event(e);
        self.0.on_cluster_event(e);
    }

    fn on_cluster_table(&self, e: &ClusterTableEvent<'_>) {
        self.1.on_cluster_table(e);
        self.0.on_cluster_table(e);
    }
}

/// A metric: its name and sorted labels.
type MetricKey = (String, Vec<(String, String)>);

/// The recorder's metrics read back. A snapshot drains the histograms:
/// their samples are kept here across snapshots.
struct Metrics {
    snapshots: Snapshotter,
    samples: Mutex<BTreeMap<MetricKey, Vec<f64>>>,
}

impl Metrics {
    /// Every counter and gauge now (histograms go to `samples`).
    fn values(&self) -> BTreeMap<MetricKey, f64> {
        let mut out = BTreeMap::new();
        let mut samples = self.samples.lock().unwrap();
        for (key, _, _, value) in self.snapshots.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<(String, String)> = (key.labels())
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let key = (key.name().to_owned(), labels);
            match value {
                DebugValue::Counter(n) => drop(out.insert(key, n as f64)),
                DebugValue::Gauge(g) => drop(out.insert(key, g.into_inner())),
                DebugValue::Histogram(h) => samples
                    .entry(key)
                    .or_default()
                    .extend(h.iter().map(|s| s.0)),
            }
        }
        out
    }

    /// A counter's or gauge's value (`None`: never recorded).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.values().remove(&key(name, labels))
    }

    /// Every sample a histogram got so far.
    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.values();
        let samples = self.samples.lock().unwrap();
        samples.get(&key(name, labels)).cloned().unwrap_or_default()
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> MetricKey {
    let mut l: Vec<(String, String)> = (labels.iter())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    l.sort();
    (name.to_owned(), l)
}

/// A metric's expected value: name, labels, value.
type Expected<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// The hooks and the metrics of a `Cluster`'s policy events on a
/// three-broker mock cluster, bootstrapped through one address: the node
/// events of the first Metadata (the bootstrap entry removed, brokers 1-3
/// added, disconnected), the table reported with the bootstrap entry and
/// then the three brokers; broker 2 taken down: its connection's failure
/// puts it into the reconnect backoff (within the configured 20 ms ±20 %),
/// the refused redial opens its circuit (threshold 2, cool-down 300 ms),
/// the table reports the open circuit; broker 2 back: half-open, the probe
/// closes it; a requested rebootstrap; the close reports an empty table.
/// The `MetricsObserver` beside the recording one counts exactly what the
/// hooks saw.
pub async fn cluster_events_reach_the_observer_and_metrics<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let recorder = DebuggingRecorder::new();
    let metrics = Metrics {
        snapshots: recorder.snapshotter(),
        samples: Mutex::default(),
    };
    let recording = Arc::new(Recording::default());
    let observer = Arc::new(Both(
        recording.clone(),
        MetricsObserver::with_recorder(Arc::new(recorder)),
    ));
    let policy = PolicyConfig::new()
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .with_circuit_breaker(Some(2), Duration::from_millis(300));
    let config =
        ClusterConfig::new(ConnectConfig::default().with_observer(observer)).with_policy(policy);
    let bootstrap = mock.address(1);
    let cluster = must_connect(&rt, &bootstrap, config).await;

    // The first Metadata: the bootstrap entry leaves, the brokers come.
    eventually(&rt, "the first Metadata's events", || {
        recording.count(|s| matches!(s.event, ClusterEvent::MetadataUpdated { .. })) == 1
            && recording.tables().len() >= 2
    })
    .await;
    let seen = recording.events();
    let clusters: Vec<u64> = seen.iter().map(|s| s.cluster).collect();
    assert!(clusters.iter().all(|c| *c == clusters[0]), "{seen:#?}");
    let connected_to_bootstrap = seen
        .iter()
        .any(|s| matches!(s.event, ClusterEvent::Connected { .. }) && s.node == Some(NodeId(-1)));
    assert!(connected_to_bootstrap, "{seen:#?}");
    let removed: Vec<_> = (seen.iter())
        .filter(|s| matches!(s.event, ClusterEvent::NodeRemoved { .. }))
        .map(|s| (s.node, s.node_state))
        .collect();
    assert_eq!(removed, [(Some(NodeId(-1)), None)], "{seen:#?}");
    let added: Vec<_> = (seen.iter())
        .filter(|s| matches!(s.event, ClusterEvent::NodeAdded { .. }))
        .map(|s| (s.node, s.node_state))
        .collect();
    let disconnected = Some(NodeState::Disconnected);
    assert_eq!(
        added,
        [
            (Some(NodeId(1)), disconnected),
            (Some(NodeId(2)), disconnected),
            (Some(NodeId(3)), disconnected)
        ],
        "{seen:#?}"
    );
    assert!(
        (seen.iter()).any(|s| matches!(s.event, ClusterEvent::MetadataUpdated { brokers: 3, .. })),
        "{seen:#?}"
    );
    // The table: the bootstrap entry (reported with the connect), then the brokers.
    let tables: Vec<(usize, usize)> = (recording.tables().iter())
        .map(|(_, t)| (t.0, t.1))
        .collect();
    assert_eq!(tables, [(1, 0), (3, 1)]);
    assert_eq!(
        metrics.value(names::CLUSTER_NODES, &[]),
        Some(3.0),
        "known nodes"
    );

    // Broker 2 goes down under a ready connection.
    let r = cluster.send_to(NodeId(2), api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);
    mock.broker_down(2);
    let open = until_circuit_opens(&rt, &cluster, NodeId(2)).await;
    eprintln!("{open}");
    eventually(&rt, "the circuit opened, seen by the observer", || {
        recording.count(|s| matches!(s.event, ClusterEvent::CircuitOpened { .. })) >= 1
    })
    .await;
    let seen = recording.events();
    let node2: Vec<&Seen> = (seen.iter())
        .filter(|s| s.node == Some(NodeId(2)))
        .collect();
    // The first failure (the connection broke): the reconnect backoff,
    // 20 ms ±20 % at most from the failure.
    let first = (node2.iter())
        .find(|s| matches!(s.event, ClusterEvent::ConnectionFailed { failures: 1, .. }))
        .unwrap_or_else(|| panic!("no first failure: {node2:#?}"));
    assert!(first.backoff, "{first:?}");
    assert!(
        matches!(first.node_state, Some(NodeState::BackingOff { .. })),
        "{first:?}"
    );
    let wait = first.retry_in.expect("a backoff has a length");
    assert!(wait <= Duration::from_millis(24), "{wait:?}");
    // The second (the redial refused) opens the circuit: no backoff, the
    // time to the probe at most the 300 ms cool-down.
    let second = (node2.iter())
        .find(|s| matches!(s.event, ClusterEvent::ConnectionFailed { failures: 2, .. }))
        .unwrap_or_else(|| panic!("no second failure: {node2:#?}"));
    assert!(!second.backoff, "{second:?}");
    let opened = (node2.iter())
        .find(|s| matches!(s.event, ClusterEvent::CircuitOpened { failures: 2, .. }))
        .unwrap_or_else(|| panic!("no circuit opened: {node2:#?}"));
    assert!(
        matches!(opened.node_state, Some(NodeState::CircuitOpen { .. })),
        "{opened:?}"
    );
    assert!(
        opened
            .retry_in
            .is_some_and(|t| t <= Duration::from_millis(300)),
        "{opened:?}"
    );
    eventually(&rt, "the open circuit in the table", || {
        (recording.tables().last()).is_some_and(|(_, t)| t.2 == [NodeId(2)])
    })
    .await;
    let node_2 = [("node_id", "2")];
    eventually(&rt, "the open circuit's gauge", || {
        metrics.value(names::CLUSTER_CIRCUIT_OPEN, &node_2) == Some(1.0)
    })
    .await;

    // Back up: half-open at the end of the cool-down, the probe closes it.
    mock.broker_up(2);
    eventually(&rt, "half-open", || {
        recording.count(
            |s| matches!(s.event, ClusterEvent::CircuitHalfOpen { node } if node == NodeId(2)),
        ) >= 1
    })
    .await;
    let deadline = Instant::now() + LIMIT;
    loop {
        match cluster.send_to(NodeId(2), api_versions_v0()).await {
            Ok(r) => {
                assert_eq!(api_versions_error(&r), 0);
                break;
            }
            Err(e) if e.is_retriable() => sleep(&rt, Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "no recovery");
    }
    eventually(&rt, "the circuit closed", || {
        recording
            .count(|s| matches!(s.event, ClusterEvent::CircuitClosed { node } if node == NodeId(2)))
            == 1
            && (recording.tables().last()).is_some_and(|(_, t)| t.2.is_empty())
    })
    .await;
    assert_eq!(
        metrics.value(names::CLUSTER_CIRCUIT_OPEN, &node_2),
        Some(0.0)
    );

    // A rebootstrap asked for: the table is the bootstrap entry again,
    // then the brokers once the refresh is in.
    cluster.rebootstrap();
    eventually(&rt, "rebootstrapped and refreshed", || {
        recording.count(|s| {
            s.event
                == ClusterEvent::Rebootstrapped {
                    reason: RebootstrapReason::Requested,
                }
        }) == 1
            && recording.count(|s| matches!(s.event, ClusterEvent::MetadataUpdated { .. })) >= 2
    })
    .await;
    eventually(&rt, "the brokers back in the table", || {
        (recording.tables().iter()).any(|(_, t)| t.0 == 1 && t.1 == 3)
            && recording.tables().last().is_some_and(|(_, t)| t.0 == 3)
    })
    .await;

    cluster.close();
    cluster.closed().await;
    let (_, last) = recording.tables().last().cloned().unwrap();
    assert_eq!((last.0, last.2.as_slice()), (0, &[][..]), "{last:?}");

    // The metrics count what the hooks saw.
    let count = |f: &dyn Fn(&Seen) -> bool| recording.count(f) as f64;
    let backoffs = count(&|s| s.backoff && s.node == Some(NodeId(2)));
    assert!(backoffs >= 1.0);
    let expected: Vec<Expected<'_>> = vec![
        (names::CLUSTER_NODES, vec![], 0.0),
        (names::CLUSTER_CIRCUIT_OPEN, node_2.to_vec(), 0.0),
        (
            names::CLUSTER_CIRCUIT_OPENS,
            node_2.to_vec(),
            count(&|s| matches!(s.event, ClusterEvent::CircuitOpened { .. })),
        ),
        (names::CLUSTER_RECONNECT_BACKOFFS, node_2.to_vec(), backoffs),
        (
            names::CLUSTER_METADATA_UPDATES,
            vec![],
            count(&|s| matches!(s.event, ClusterEvent::MetadataUpdated { .. })),
        ),
        (
            names::CLUSTER_NODE_CHANGES,
            vec![("change", "added")],
            count(&|s| matches!(s.event, ClusterEvent::NodeAdded { .. })),
        ),
        (
            names::CLUSTER_NODE_CHANGES,
            vec![("change", "removed")],
            count(&|s| matches!(s.event, ClusterEvent::NodeRemoved { .. })),
        ),
        (
            names::CLUSTER_REBOOTSTRAPS,
            vec![("reason", "requested")],
            1.0,
        ),
    ];
    for (name, labels, want) in &expected {
        assert_eq!(
            metrics.value(name, labels),
            Some(*want),
            "{name} {labels:?}"
        );
    }
    // The first Metadata and the one after the rebootstrap: 3 brokers
    // added each time, the bootstrap entry removed each time.
    assert_eq!(
        metrics.value(names::CLUSTER_NODE_CHANGES, &[("change", "added")]),
        Some(6.0)
    );
    let times = metrics.samples(names::CLUSTER_RECONNECT_BACKOFF_TIME, &node_2);
    assert_eq!(times.len() as f64, backoffs);
    assert!(times.iter().all(|t| *t <= 0.12), "{times:?}");
}

/// One `on_connect_error` of a setup timeout: node, address, the event's
/// step, the error's own step and timeout, retriable, the message.
type TimedOut = (
    Option<NodeId>,
    String,
    SetupStep,
    SetupStep,
    Duration,
    bool,
    String,
);

/// Keeps the setup timeouts `on_connect_error` is told about, and passes
/// every connect error on to a `MetricsObserver`.
struct SetupTimeouts(Mutex<Vec<TimedOut>>, MetricsObserver);

impl Observer for SetupTimeouts {
    fn on_connect_error(&self, e: &ConnectErrorEvent<'_>) {
        // The metrics first: the test reads the counters once it sees the
        // timeout in the list, maybe from another thread (recording after
        // the push failed one CI run: counter not there yet).
        self.1.on_connect_error(e);
        let (after, step) = match e.error {
            ConnectError::SetupTimeout {
                after,
                step,
                progress,
                ..
            } => {
                // Its own timer or the policy's, at the same deadline.
                assert!(
                    progress.timings.total > *after / 2 && progress.timings.total < LIMIT,
                    "{:?}",
                    progress.timings
                );
                (*after, *step)
            }
            // The TCP attempt's own bound is the same setup timeout: when
            // both run out in one timer tick, the attempt's error wins.
            ConnectError::ConnectTimeout { after, .. } => (*after, SetupStep::Tcp),
            _ => return,
        };
        self.0.lock().unwrap().push((
            e.node_id,
            e.address.to_owned(),
            e.step,
            step,
            after,
            e.retriable,
            e.error.to_string(),
        ));
    }
}

/// Waits until `n` setup timeouts (or, for a hanging TCP connect, the
/// attempt's own time-out at the same deadline) were told.
async fn told<R: Runtime>(rt: &R, observer: &SetupTimeouts, n: usize) {
    let deadline = Instant::now() + LIMIT;
    while observer.0.lock().unwrap().len() != n {
        assert!(
            Instant::now() < deadline,
            "not {n} setup timeouts told: {:#?}",
            observer.0.lock().unwrap()
        );
        sleep(rt, Duration::from_millis(10)).await;
    }
}

/// Connects a `Cluster` whose one bootstrap address hangs in its setup,
/// checks that `connect` fails, and returns the one setup timeout the
/// observer was told (after forgetting those of earlier connects).
async fn one_setup_timeout<R: Runtime>(
    rt: &R,
    observer: &SetupTimeouts,
    address: &str,
    config: ClusterConfig,
) -> TimedOut {
    observer.0.lock().unwrap().clear();
    let r = timeout(
        rt,
        LIMIT,
        Cluster::connect_with(rt.clone(), [address], config),
    )
    .await;
    assert!(
        matches!(r, Some(Err(ClusterError::BootstrapFailed { .. }))),
        "{address}: {r:?}"
    );
    told(rt, observer, 1).await;
    let got = observer.0.lock().unwrap()[0].clone();
    got
}

/// A `Cluster`'s setup timeout (300 ms) running out reaches the observer
/// as the typed `ConnectError::SetupTimeout` with the step the attempt was
/// at: bootstrap entry -1 is a listener whose backlog is full (the TCP
/// connect hangs: `tcp`), -2 a listener that never accepts (the kernel
/// completes the handshake, the ApiVersions request gets no answer:
/// `api_versions`); a second cluster with TLS over the silent listener
/// hangs in the TLS handshake (`tls`). (The TCP attempts are bounded by
/// the same setup timeout: when both run out in one timer tick, node -1's
/// is the attempt's own `ConnectTimeout`, also at step `tcp`; seen in about
/// one run in five.) `connect` fails with both
/// addresses' failures; `connection.errors` counts each by its step.
/// Then SASL: the OAUTHBEARER broker with a token provider that never
/// answers (`sasl`).
pub async fn setup_timeout_is_typed_with_its_step<R: Runtime>(rt: R) {
    let Some(full) = FullBacklog::start() else {
        eprintln!("SKIPPED: a connect to a full backlog does not hang on this system");
        return;
    };
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (hangs, unanswered) = (
        full.addr().to_string(),
        silent.local_addr().unwrap().to_string(),
    );
    let recorder = DebuggingRecorder::new();
    let metrics = Metrics {
        snapshots: recorder.snapshotter(),
        samples: Mutex::default(),
    };
    let observer = Arc::new(SetupTimeouts(
        Mutex::default(),
        MetricsObserver::with_recorder(Arc::new(recorder)),
    ));
    let setup = Duration::from_millis(300);
    // One attempt per address: no redial before `connect` gives up.
    let policy = PolicyConfig::new()
        .with_setup_timeout(setup, setup)
        .with_reconnect_backoff(LIMIT, LIMIT);
    let connect = ConnectConfig::default().with_observer(observer.clone());
    let config = ClusterConfig::new(connect.clone()).with_policy(policy.clone());
    let bootstrap = [hangs.as_str(), unanswered.as_str()];
    let failed = match timeout(
        &rt,
        LIMIT,
        Cluster::connect_with(rt.clone(), bootstrap, config),
    )
    .await
    {
        Some(Err(e)) => e,
        other => panic!("silent bootstrap addresses: {other:?}"),
    };
    eprintln!("{failed}");
    assert!(
        matches!(&failed, ClusterError::BootstrapFailed { failures } if failures.len() == 2),
        "{failed:?}"
    );
    told(&rt, &observer, 2).await;
    let mut seen = observer.0.lock().unwrap().clone();
    seen.sort_by_key(|t| std::cmp::Reverse(t.0));
    for t in &seen {
        eprintln!("{}", t.6);
    }
    let want = [
        (NodeId(-1), &hangs, SetupStep::Tcp, "the TCP connect"),
        (
            NodeId(-2),
            &unanswered,
            SetupStep::ApiVersions,
            "version negotiation (ApiVersions)",
        ),
    ];
    for (got, (node, address, step, during)) in seen.iter().zip(want) {
        assert_eq!(
            (got.0, &got.1, got.2, got.3, got.5),
            (Some(node), address, step, step, true),
            "{got:?}"
        );
        // The node's setup timeout: 300 ms ±20 % jitter.
        assert!(got.4 >= setup * 4 / 5 && got.4 <= setup * 6 / 5, "{got:?}");
        let typed = format!(
            "connection setup to {address} timed out after {:?} during {during}",
            got.4
        );
        let tcp_own = format!("TCP connect to {address} timed out after {:?}", got.4);
        assert!(
            got.6 == typed || (step == SetupStep::Tcp && got.6 == tcp_own),
            "{got:?}"
        );
        let id = node.0.to_string();
        let labels = [
            ("node_id", id.as_str()),
            ("step", step.as_str()),
            ("retriable", "true"),
        ];
        assert_eq!(
            metrics.value(names::CONNECTION_ERRORS, &labels),
            Some(1.0),
            "{labels:?}"
        );
    }

    // TLS over the listener that never answers: the handshake hangs.
    let config =
        ClusterConfig::new(connect.with_tls(TlsConfig::system_roots())).with_policy(policy.clone());
    let got = one_setup_timeout(&rt, &observer, &unanswered, config).await;
    assert_eq!(
        (got.0, got.2, got.3),
        (Some(NodeId(-1)), SetupStep::Tls, SetupStep::Tls),
        "{got:?}"
    );
    drop(silent);

    // SASL: the OAUTHBEARER broker answers ApiVersions; the token provider
    // never answers, so the connection waits in SASL authentication.
    let Some(oauth) = env::sasl_var("KAFKA_SASL_OAUTHBEARER_BOOTSTRAP") else {
        return;
    };
    let never = |_: CredentialRequest, _: CredentialContext| {
        std::future::pending::<Result<Credential, CallbackError>>()
    };
    let connect = ConnectConfig::new(Config::new().with_sasl(SaslConfig::oauthbearer()))
        .with_credential_provider(never)
        .with_observer(observer.clone());
    let config = ClusterConfig::new(connect).with_policy(policy);
    let got = one_setup_timeout(&rt, &observer, &oauth, config).await;
    eprintln!("{}", got.6);
    assert_eq!(
        (got.0, got.2, got.3),
        (Some(NodeId(-1)), SetupStep::Sasl, SetupStep::Sasl),
        "{got:?}"
    );
}

/// A Metadata response from another cluster id (a forwarder switched from
/// one mock cluster to another) reaches the observer as `ClusterIdChanged`
/// (about no node), is counted in `cluster.id.changes`, and is not merged:
/// `cluster.metadata.updates` stays at the first response's one and the
/// table's gauge at its one node.
pub async fn cluster_id_change_reaches_the_observer_and_metrics<R: Runtime>(rt: R) {
    let (Some(a), Some(b)) = (MockCluster::start(1), MockCluster::start(1)) else {
        return;
    };
    let proxy = KafkaProxy::start(&[(1, a.address(1))]);
    let recorder = DebuggingRecorder::new();
    let metrics = Metrics {
        snapshots: recorder.snapshotter(),
        samples: Mutex::default(),
    };
    let recording = Arc::new(Recording::default());
    let observer = Arc::new(Both(
        recording.clone(),
        MetricsObserver::with_recorder(Arc::new(recorder)),
    ));
    let config = ClusterConfig::new(ConnectConfig::default().with_observer(observer));
    let bootstrap = proxy.address(1);
    let cluster = must_connect(&rt, &bootstrap, config).await;
    let first = cluster.cluster_id().expect("a cluster id");
    let r = cluster.send_to(NodeId(1), api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);
    proxy.retarget(1, &b.address(1));
    proxy.cut(1);
    let e = loop {
        match cluster.refresh_metadata().await {
            Err(e @ ClusterError::Metadata { .. }) => break e,
            // The cut connection: the policy backs off, then redials.
            Err(e) if e.is_retriable() => sleep(&rt, Duration::from_millis(50)).await,
            other => panic!("{other:?}"),
        }
    };
    assert!(e.to_string().contains("not merged"), "{e}");
    // Told before the refresh's caller was woken with the error.
    let changes: Vec<Seen> = (recording.events().into_iter())
        .filter(|s| matches!(s.event, ClusterEvent::ClusterIdChanged { .. }))
        .collect();
    let [change] = changes.as_slice() else {
        panic!("one cluster id change: {changes:#?}")
    };
    let ClusterEvent::ClusterIdChanged { expected, got } = &change.event else {
        unreachable!()
    };
    assert_eq!(expected.as_deref(), Some(first.as_str()));
    assert_ne!(got, expected);
    assert_eq!(
        (change.node, change.node_state, change.retry_in),
        (None, None, None)
    );
    assert_eq!(metrics.value(names::CLUSTER_ID_CHANGES, &[]), Some(1.0));
    let updates = recording.count(|s| matches!(s.event, ClusterEvent::MetadataUpdated { .. }));
    assert_eq!(updates, 1);
    assert_eq!(
        metrics.value(names::CLUSTER_METADATA_UPDATES, &[]),
        Some(1.0)
    );
    assert_eq!(metrics.value(names::CLUSTER_NODES, &[]), Some(1.0));
    cluster.close();
    cluster.closed().await;
    assert_eq!(metrics.value(names::CLUSTER_NODES, &[]), Some(0.0));
}
