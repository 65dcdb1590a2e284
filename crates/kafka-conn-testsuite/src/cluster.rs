//! The async `Cluster` against real brokers, generic over the runtime (run
//! by [`crate::suite!`]): discovery from one bootstrap address on the
//! librdkafka mock cluster and on tansu (PLAINTEXT, TLS, SASL); bad input;
//! a broker that advertises an address nobody can reach; brokers taken
//! down and brought back; circuits and rebootstrap; a moved leader;
//! REBOOTSTRAP_REQUIRED; single flight; the connection cap; a cluster id
//! change.
//!
//! Each test that takes brokers down, moves leaders or injects errors runs
//! its own [`MockCluster`]. Where the test must count or steer connections
//! per node, the nodes sit behind a [`KafkaProxy`] (a Kafka-aware
//! forwarder that advertises each node at its own listener), in front of
//! the real mock brokers.

pub(crate) mod proxy;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use kafka_conn_driver::cluster_policy::{Failure, RebootstrapReason};
use kafka_conn_driver::core::sasl::{SaslConfig, ScramHash};
use kafka_conn_driver::core::{ApiKey, CloseReason, Config, Response};
use kafka_conn_driver::{
    Cluster, ClusterConfig, ClusterError, ClusterEvent, ClusterEvents, ConnectConfig, DialStep,
    MetadataTopics, NodeId, NodeState, PolicyConfig, Runtime, TlsConfig,
};

pub use proxy::KafkaProxy;

use crate::env::Plaintext;
use crate::kafka::{api_versions_error, api_versions_v0, assert_metadata_for, metadata_for};
use crate::tests::LIMIT;
use crate::{env, sleep, spawn, timeout, MockCluster};

/// Connects a `Cluster` through `bootstrap`, or panics saying why.
pub(crate) async fn must_connect<R: Runtime>(
    rt: &R,
    bootstrap: &str,
    config: ClusterConfig,
) -> Cluster<R> {
    match timeout(
        rt,
        LIMIT,
        Cluster::connect_with(rt.clone(), [bootstrap], config),
    )
    .await
    {
        Some(Ok(c)) => c,
        Some(Err(e)) => panic!("cluster through {bootstrap}: {e}"),
        None => panic!("cluster through {bootstrap}: no outcome within {LIMIT:?}"),
    }
}

async fn must_fail<R: Runtime>(rt: &R, bootstrap: &str, config: ClusterConfig) -> ClusterError {
    match timeout(
        rt,
        LIMIT,
        Cluster::connect_with(rt.clone(), [bootstrap], config),
    )
    .await
    {
        Some(Ok(c)) => panic!("cluster through {bootstrap:?} should fail, got {c:?}"),
        Some(Err(e)) => {
            eprintln!("{bootstrap:?}: {e}");
            e
        }
        None => panic!("cluster through {bootstrap:?}: no outcome within {LIMIT:?}"),
    }
}

/// ApiVersions v0 to `node`, checked.
async fn ping<R: Runtime>(cluster: &Cluster<R>, node: NodeId) {
    let r = cluster
        .send_to(node, api_versions_v0())
        .await
        .unwrap_or_else(|e| panic!("{node}: {e}"));
    assert_eq!(api_versions_error(&r), 0);
}

/// Waits for the first event `want` accepts.
async fn wait_for<R: Runtime>(
    rt: &R,
    events: &mut ClusterEvents,
    what: &str,
    want: impl Fn(&ClusterEvent) -> bool,
) -> ClusterEvent {
    let found = timeout(rt, LIMIT, async {
        while let Some(e) = events.next().await {
            if want(&e) {
                return Some(e);
            }
        }
        None
    })
    .await;
    match found {
        Some(Some(e)) => e,
        Some(None) => panic!("{what}: the event stream ended"),
        None => panic!("{what}: no such event within {LIMIT:?}"),
    }
}

/// Polls `check` every 10 ms until it holds (at most [`LIMIT`]).
pub(crate) async fn eventually<R: Runtime>(rt: &R, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {LIMIT:?}");
        sleep(rt, Duration::from_millis(10)).await;
    }
}

/// Sends ApiVersions to `node` (a down broker) again and again, waiting
/// out each backoff, until its circuit opens; returns that error.
pub(crate) async fn until_circuit_opens<R: Runtime>(
    rt: &R,
    cluster: &Cluster<R>,
    node: NodeId,
) -> ClusterError {
    let deadline = Instant::now() + LIMIT;
    loop {
        assert!(Instant::now() < deadline, "no circuit opened");
        match cluster.send_to(node, api_versions_v0()).await {
            Err(e @ ClusterError::CircuitOpen { .. }) => return e,
            Err(ClusterError::BackingOff { retry_in, .. }) => sleep(rt, retry_in).await,
            Err(_) => {}
            Ok(_) => panic!("a down broker answered"),
        }
    }
}

/// Starts `n` `send_to(node, ApiVersions)` as tasks of their own; await
/// the receivers for their outcomes.
fn spawn_pings<R: Runtime>(
    rt: &R,
    cluster: &Cluster<R>,
    node: NodeId,
    n: usize,
) -> Vec<futures_channel::oneshot::Receiver<Result<Response, ClusterError>>> {
    (0..n)
        .map(|_| {
            let c = cluster.clone();
            spawn(rt, async move { c.send_to(node, api_versions_v0()).await })
        })
        .collect()
}

/// Waits until `node` has `n` requests in flight.
async fn in_flight<R: Runtime>(rt: &R, cluster: &Cluster<R>, node: NodeId, n: u32) {
    eventually(rt, &format!("{n} requests in flight on {node}"), || {
        cluster.node(node).is_some_and(|info| info.in_flight == n)
    })
    .await;
}

fn ids<R: Runtime>(cluster: &Cluster<R>) -> Vec<i32> {
    cluster.nodes().iter().map(|n| n.id.0).collect()
}

/// Bootstrap with one address of a three-broker mock cluster: the table
/// lists all three with the hosts, ports and racks the brokers advertise;
/// each answers through `send_to`; any answers through `send_any`.
pub async fn cluster_discovers_every_broker_from_one_address<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    for id in 1..=3 {
        mock.set_rack(id, &format!("rack-{id}"));
    }
    let cluster = must_connect(&rt, &mock.address(2), ClusterConfig::default()).await;
    let nodes = cluster.nodes();
    assert_eq!(ids(&cluster), [1, 2, 3]);
    for n in &nodes {
        assert_eq!(n.address.to_string(), mock.address(n.id.0));
        assert_eq!(n.rack.as_deref(), Some(format!("rack-{}", n.id.0).as_str()));
        // Connections are made when a request needs one.
        assert_eq!(n.state, NodeState::Disconnected, "{n:?}");
    }
    let cluster_id = cluster.cluster_id().expect("the mock names its cluster");
    assert!(cluster_id.starts_with("mockCluster"), "{cluster_id}");
    assert!(cluster.controller().is_some());
    for id in 1..=3 {
        ping(&cluster, NodeId(id)).await;
        let node = cluster.node(NodeId(id)).unwrap();
        assert!(matches!(node.state, NodeState::Ready { .. }), "{node:?}");
        assert_eq!(
            node.connected_to.map(|a| a.to_string()),
            Some(mock.address(id))
        );
    }
    let r = cluster.send_any(api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);
    // The client of a node, for what the cluster API does not cover.
    let client = cluster.client(NodeId(3)).await.unwrap();
    assert_eq!(client.info().address.to_string(), mock.address(3));
    assert_eq!(cluster.open_connections(), 3);
    let e = cluster
        .send_to(NodeId(42), api_versions_v0())
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::UnknownNode(NodeId(42))), "{e}");
    cluster.close();
    timeout(&rt, LIMIT, cluster.closed())
        .await
        .expect("closed within the limit");
    assert!(client.is_closed());
    let e = cluster.send_any(api_versions_v0()).await.unwrap_err();
    assert!(matches!(e, ClusterError::Closed), "{e}");
    assert!(!e.is_retriable());
}

/// tansu over PLAINTEXT, TLS (stunnel in front) and SASL (SCRAM, plaintext
/// and TLS): each listener is its own one-node cluster that advertises its
/// own port, so the table is that node at the bootstrap address.
pub async fn cluster_over_tansu_plaintext_tls_and_sasl<R: Runtime>(rt: R) {
    let mut cases: Vec<(String, ConnectConfig)> = Vec::new();
    if let Some(addr) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") {
        cases.push((addr, ConnectConfig::default()));
    }
    if let Some([addr, ca, name]) = env::vars([
        "KAFKA_TLS_BOOTSTRAP",
        "KAFKA_TLS_CA_FILE",
        "KAFKA_TLS_SERVER_NAME",
    ]) {
        let tls = TlsConfig::ca_file(ca).with_server_name(name);
        cases.push((addr, ConnectConfig::default().with_tls(tls)));
    }
    if let (Some(plain), Some(ssl), Some(user), Some(password), Some(ca)) = (
        env::sasl_var("KAFKA_SASL_SCRAM_BOOTSTRAP"),
        env::sasl_var("KAFKA_SASL_SSL_BOOTSTRAP"),
        env::sasl_var("KAFKA_SASL_USERNAME"),
        env::sasl_var("KAFKA_SASL_PASSWORD"),
        env::sasl_var("KAFKA_SASL_TLS_CA_FILE"),
    ) {
        let name =
            std::env::var("KAFKA_SASL_TLS_SERVER_NAME").unwrap_or_else(|_| "localhost".into());
        let scram = |hash| {
            ConnectConfig::new(Config::new().with_sasl(SaslConfig::scram(hash, &user, &password)))
        };
        cases.push((plain, scram(ScramHash::Sha256)));
        cases.push((
            ssl,
            scram(ScramHash::Sha512).with_tls(TlsConfig::ca_file(&ca).with_server_name(&name)),
        ));
    }
    for (addr, connect) in cases {
        let tls = connect.tls().is_some();
        let sasl = connect.core().sasl().is_some();
        let cluster = must_connect(&rt, &addr, ClusterConfig::new(connect)).await;
        let nodes = cluster.nodes();
        assert_eq!(nodes.len(), 1, "{addr}: {nodes:?}");
        let node = &nodes[0];
        assert!(node.id.0 >= 0, "{addr}: {node:?}");
        assert_eq!(node.address.to_string(), addr, "{addr}: advertised address");
        ping(&cluster, node.id).await;
        let client = cluster.client(node.id).await.unwrap();
        assert_eq!(client.info().tls.is_some(), tls, "{addr}");
        assert_eq!(client.sasl_session().is_some(), sasl, "{addr}");
        cluster.close();
        timeout(&rt, LIMIT, cluster.closed())
            .await
            .expect("closed within the limit");
    }
}

/// A one-node broker over PLAINTEXT, bootstrapped from its address: the
/// table is that node under the id it gives itself, at the address it
/// advertises (the bootstrap one), not yet connected; the cluster id and
/// the controller (itself) come from its Metadata; the node's connection
/// negotiates as a direct one does (noida-db: after the KIP-511 fallback
/// to ApiVersions v3); requests through the cluster get their own answers.
pub async fn cluster_bootstraps_a_one_node_table<R: Runtime>(rt: R, broker: Plaintext) {
    let name = broker.name;
    let cluster = must_connect(&rt, &broker.addr, ClusterConfig::default()).await;
    let nodes = cluster.nodes();
    assert_eq!(ids(&cluster), [broker.node_id], "{name}: {nodes:?}");
    let node = &nodes[0];
    assert_eq!(
        node.address.to_string(),
        broker.addr,
        "{name}: advertised address"
    );
    assert_eq!(node.state, NodeState::Disconnected, "{name}: {node:?}");
    let cluster_id = cluster.cluster_id().unwrap_or_default();
    assert!(!cluster_id.is_empty(), "{name}: no cluster id");
    assert_eq!(cluster.controller(), Some(node.id), "{name}: controller");
    ping(&cluster, node.id).await;
    let client = cluster.client(node.id).await.unwrap();
    let v = client.api_versions();
    assert_eq!(
        v.negotiated_with,
        Some(broker.api_versions),
        "{name}: {v:?}"
    );
    assert_eq!(v.fell_back, broker.fell_back, "{name}: {v:?}");
    let answers = join_all((0..100).map(|i| {
        let c = &cluster;
        async move {
            (
                i,
                c.send_any(metadata_for(&format!("kc-cluster-{i}"))).await,
            )
        }
    }))
    .await;
    for (i, r) in answers {
        assert_metadata_for(&r.unwrap(), &format!("kc-cluster-{i}"));
    }
    assert_eq!(cluster.open_connections(), 1, "{name}");
    cluster.close();
    timeout(&rt, LIMIT, cluster.closed())
        .await
        .expect("closed within the limit");
    assert!(client.is_closed());
}

/// An empty or unparsable bootstrap list is refused naming the address; an
/// unresolvable or refusing one fails after that address was tried, naming
/// it and the step.
pub async fn cluster_bad_bootstrap_input_names_the_address<R: Runtime>(rt: R) {
    let none: [&str; 0] = [];
    let e = Cluster::connect_with(rt.clone(), none, ClusterConfig::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    for (input, named) in [
        ("", "empty"),
        ("no-port", "\"no-port\""),
        ("host:http", "\"host:http\""),
        ("host:70000", "\"host:70000\""),
        ("::1:9092", "\"::1:9092\""),
    ] {
        let e = must_fail(&rt, input, ClusterConfig::default()).await;
        assert!(matches!(e, ClusterError::Bootstrap(_)), "{input}: {e:?}");
        assert!(e.to_string().contains(named), "{input}: {e}");
        assert!(!e.is_retriable());
    }
    // A topic name Kafka would refuse.
    let bad_topic =
        ClusterConfig::default().with_metadata_topics(MetadataTopics::Only(vec![String::new()]));
    let e = must_fail(&rt, "127.0.0.1:9092", bad_topic).await;
    assert!(matches!(e, ClusterError::Config(_)), "{e:?}");

    // Unresolvable (RFC 6761 reserves .invalid): the resolve step, named.
    let started = Instant::now();
    let e = must_fail(
        &rt,
        "kafka-conn-nowhere.invalid:9092",
        ClusterConfig::default(),
    )
    .await;
    let ClusterError::BootstrapFailed { failures } = &e else {
        panic!("{e:?}")
    };
    let [ClusterError::Unreachable {
        node,
        address,
        step,
        ..
    }] = &failures[..]
    else {
        panic!("{e:?}")
    };
    assert_eq!(*node, NodeId(-1));
    assert_eq!(address.to_string(), "kafka-conn-nowhere.invalid:9092");
    assert_eq!(*step, Some(DialStep::Resolve));
    assert!(e.to_string().contains("kafka-conn-nowhere.invalid"), "{e}");
    assert!(
        failures[0].connect_error().is_some(),
        "the connect error is kept"
    );
    // A closed port, second in the list: every address tried, each named.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let list = format!("kafka-conn-nowhere.invalid:9092,127.0.0.1:{port}");
    let e = must_fail(&rt, &list, ClusterConfig::default()).await;
    let ClusterError::BootstrapFailed { failures } = &e else {
        panic!("{e:?}")
    };
    let steps: Vec<(i32, Option<DialStep>)> = failures
        .iter()
        .map(|f| match f {
            ClusterError::Unreachable { node, step, .. } => (node.0, *step),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(steps.contains(&(-1, Some(DialStep::Resolve))), "{e}");
    assert!(steps.contains(&(-2, Some(DialStep::Connect))), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    // Fails once each address failed, long before the 60 s bootstrap timeout.
    assert!(started.elapsed() < LIMIT, "{:?}", started.elapsed());
}

/// A broker advertising an address nobody can reach (the classic
/// "advertised.listeners" mistake), on a real mock cluster behind the
/// Kafka-aware forwarder: node 2 advertised at a closed port, node 3 at a
/// name that does not resolve. The bootstrap works; those nodes fail with
/// an error naming the node, the advertised address and the step, and the
/// node table keeps the failure.
pub async fn cluster_unreachable_advertised_address_names_node_address_and_step<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let proxy = KafkaProxy::in_front_of(&mock, 3);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    proxy.advertise(2, "127.0.0.1", i32::from(port));
    proxy.advertise(3, "kafka-conn-broker-3.invalid", 9092);
    let cluster = must_connect(&rt, &proxy.address(1), ClusterConfig::default()).await;
    ping(&cluster, NodeId(1)).await;
    for (node, address, step) in [
        (2, format!("127.0.0.1:{port}"), DialStep::Connect),
        (
            3,
            "kafka-conn-broker-3.invalid:9092".to_owned(),
            DialStep::Resolve,
        ),
    ] {
        let e = cluster
            .send_to(NodeId(node), api_versions_v0())
            .await
            .unwrap_err();
        eprintln!("{e}");
        let ClusterError::Unreachable {
            node: n,
            address: a,
            step: s,
            ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            (n.0, a.to_string(), *s),
            (node, address.clone(), Some(step))
        );
        let text = e.to_string();
        assert!(text.contains(&format!("node {node}")), "{text}");
        assert!(text.contains(&address), "{text}");
        assert!(text.contains("advertised.listeners"), "{text}");
        assert!(e.is_retriable());
        // Asked again at once: backing off, with the same failure.
        let again = cluster
            .send_to(NodeId(node), api_versions_v0())
            .await
            .unwrap_err();
        let ClusterError::BackingOff { last, .. } = &again else {
            panic!("{again:?}")
        };
        assert_eq!(last.step(), Some(step));
        let info = cluster.node(NodeId(node)).unwrap();
        assert!(info.last_failure.is_some(), "{info:?}");
        assert!(info.connect_error.is_some(), "{info:?}");
    }
}

/// A broker taken down with requests in flight: they fail with the close
/// reason; while it is down, requests fail at once (backing off, then
/// refused); once it is back, a request succeeds after the backoff. Prints
/// the time from `broker_up` to the first successful request.
pub async fn cluster_broker_down_mid_flight_and_back<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let policy = PolicyConfig::new()
        .with_reconnect_backoff(Duration::from_millis(50), Duration::from_millis(400))
        .with_circuit_breaker(None, Duration::from_secs(10));
    let cluster = must_connect(
        &rt,
        mock.bootstrap(),
        ClusterConfig::default().with_policy(policy),
    )
    .await;
    ping(&cluster, NodeId(2)).await;
    // Requests in flight: the broker delays its answers.
    mock.set_rtt(2, Duration::from_secs(5));
    let pending = spawn_pings(&rt, &cluster, NodeId(2), 20);
    in_flight(&rt, &cluster, NodeId(2), 20).await;
    mock.broker_down(2);
    for p in join_all(pending).await {
        let e = p.unwrap().unwrap_err();
        let reason = e.close_reason().unwrap_or_else(|| panic!("{e:?}"));
        assert!(matches!(reason, CloseReason::Broken { .. }), "{e}");
        assert!(e.is_retriable(), "{e}");
        assert!(
            matches!(
                e,
                ClusterError::Request {
                    node: NodeId(2),
                    ..
                }
            ),
            "{e:?}"
        );
    }
    mock.set_rtt(2, Duration::ZERO);
    // Down: every ask fails at once, never hangs.
    let mut refused = 0;
    for _ in 0..5 {
        let asked = Instant::now();
        match cluster.send_to(NodeId(2), api_versions_v0()).await {
            Err(ClusterError::BackingOff { retry_in, .. }) => {
                sleep(&rt, retry_in).await;
            }
            Err(e @ ClusterError::Unreachable { .. }) => {
                assert_eq!(e.node(), Some(NodeId(2)));
                refused += 1;
            }
            // The broken connection, found by this call before its task
            // reported the close (the call reports it: the next one backs off).
            Err(e @ ClusterError::Request { .. }) => {
                assert!(
                    matches!(e.close_reason(), Some(CloseReason::Broken { .. })),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{:?}",
            asked.elapsed()
        );
    }
    assert!(refused > 0, "no redial was refused");
    // Back: the first request after the current backoff succeeds.
    mock.broker_up(2);
    let up = Instant::now();
    loop {
        match cluster.send_to(NodeId(2), api_versions_v0()).await {
            Ok(r) => {
                assert_eq!(api_versions_error(&r), 0);
                break;
            }
            Err(ClusterError::BackingOff { retry_in, .. }) => sleep(&rt, retry_in).await,
            Err(e) => panic!("after broker_up: {e}"),
        }
        assert!(up.elapsed() < LIMIT, "no success within {LIMIT:?}");
    }
    eprintln!(
        "broker_up to the first successful request: {:?} (backoff max 400 ms ± 20 %)",
        up.elapsed()
    );
    // The other brokers never noticed.
    ping(&cluster, NodeId(1)).await;
}

/// Every broker down: connections fail, circuits open (requests fail at
/// once with the last failure), the cluster rebootstraps after the trigger
/// (configured short), and recovers when the brokers come back.
pub async fn cluster_all_brokers_down_circuits_rebootstrap_and_recovery<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let policy = PolicyConfig::new()
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .with_circuit_breaker(Some(2), Duration::from_millis(300))
        .with_rebootstrap_after(Some(Duration::from_secs(1)))
        .with_metadata_retry_backoff(Duration::from_millis(50), Duration::from_millis(200));
    let cluster = must_connect(
        &rt,
        mock.bootstrap(),
        ClusterConfig::default().with_policy(policy),
    )
    .await;
    let mut events = cluster.events();
    for id in 1..=3 {
        ping(&cluster, NodeId(id)).await;
    }
    mock.broker_down(-1);
    // Each connection breaks; asking again until the circuit opens.
    let open = until_circuit_opens(&rt, &cluster, NodeId(1)).await;
    eprintln!("{open}");
    let ClusterError::CircuitOpen { failures, last, .. } = &open else {
        unreachable!()
    };
    assert!(*failures >= 2, "{open}");
    assert!(
        matches!(last, Failure::Dial(_) | Failure::Closed { .. }),
        "{open}"
    );
    // Fails fast while open.
    let asked = Instant::now();
    let e = cluster
        .send_to(NodeId(1), api_versions_v0())
        .await
        .unwrap_err();
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert!(e.is_retriable(), "{e}");
    wait_for(&rt, &mut events, "circuit opened", |e| {
        matches!(e, ClusterEvent::CircuitOpened { .. })
    })
    .await;
    // No node reachable for 1 s: back to the bootstrap addresses.
    let e = wait_for(&rt, &mut events, "rebootstrap", |e| {
        matches!(e, ClusterEvent::Rebootstrapped { .. })
    })
    .await;
    assert!(
        matches!(
            e,
            ClusterEvent::Rebootstrapped {
                reason: RebootstrapReason::NoNodeReachable { .. }
            }
        ),
        "{e:?}"
    );
    eventually(&rt, "bootstrap entries in the table", || {
        ids(&cluster).iter().all(|id| *id < 0)
    })
    .await;
    // Recovery: the brokers come back, the bootstrap refresh finds them.
    mock.broker_up(-1);
    eventually(&rt, "brokers back in the table", || {
        ids(&cluster) == [1, 2, 3]
    })
    .await;
    let deadline = Instant::now() + LIMIT;
    loop {
        match cluster.send_to(NodeId(1), api_versions_v0()).await {
            Ok(_) => break,
            Err(e) if e.is_retriable() => sleep(&rt, Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "no recovery");
    }
}

/// A partition leader moved on the mock: after `refresh_metadata` the
/// cluster's leader view follows (the topic is among the ones its
/// refreshes ask about).
pub async fn cluster_follows_a_moved_leader<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    mock.create_topic("kc-cluster-leader", 2, 3);
    mock.set_leader("kc-cluster-leader", 0, 1);
    let config = ClusterConfig::default()
        .with_metadata_topics(MetadataTopics::Only(vec!["kc-cluster-leader".into()]));
    let cluster = must_connect(&rt, mock.bootstrap(), config).await;
    assert_eq!(cluster.leader("kc-cluster-leader", 0), Some(NodeId(1)));
    assert_eq!(cluster.leader("kc-cluster-leader", 7), None);
    mock.set_leader("kc-cluster-leader", 0, 3);
    cluster.refresh_metadata().await.unwrap();
    assert_eq!(cluster.leader("kc-cluster-leader", 0), Some(NodeId(3)));
    // Without topics in the refreshes (the default), no leader is tracked.
    let brokers_only = must_connect(&rt, mock.bootstrap(), ClusterConfig::default()).await;
    assert_eq!(brokers_only.leader("kc-cluster-leader", 0), None);
}

/// REBOOTSTRAP_REQUIRED (129, KIP-1102) pushed on Metadata: the mock sends
/// it as the v13 top-level error; the refresh fails with it, the cluster
/// rebootstraps and the next refresh (through a bootstrap address) fills
/// the table again.
pub async fn cluster_rebootstraps_on_rebootstrap_required<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let cluster = must_connect(&rt, mock.bootstrap(), ClusterConfig::default()).await;
    let mut events = cluster.events();
    mock.push_request_errors(ApiKey::METADATA.0, &[129]);
    let e = cluster.refresh_metadata().await.unwrap_err();
    assert!(e.to_string().contains("129 REBOOTSTRAP_REQUIRED"), "{e}");
    let event = wait_for(&rt, &mut events, "rebootstrap", |e| {
        matches!(e, ClusterEvent::Rebootstrapped { .. })
    })
    .await;
    assert_eq!(
        event,
        ClusterEvent::Rebootstrapped {
            reason: RebootstrapReason::RebootstrapRequired
        }
    );
    wait_for(&rt, &mut events, "the refresh after the rebootstrap", |e| {
        matches!(e, ClusterEvent::MetadataUpdated { .. })
    })
    .await;
    assert_eq!(ids(&cluster), [1, 2, 3]);
    ping(&cluster, NodeId(2)).await;
}

/// Single flight: 1,000 concurrent `send_to` on a cold node share one dial:
/// the node's forwarder accepts exactly one connection. The broker delays
/// its answers by 200 ms so that every caller arrives while the handshake
/// is under way.
pub async fn cluster_single_flight_one_connection_for_a_thousand_callers<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let proxy = KafkaProxy::in_front_of(&mock, 3);
    let cluster = must_connect(&rt, &proxy.address(1), ClusterConfig::default()).await;
    assert_eq!(proxy.accepted(2), 0, "node 2 is cold");
    mock.set_rtt(2, Duration::from_millis(200));
    let callers = spawn_pings(&rt, &cluster, NodeId(2), 1000);
    // All of them parked on the one dial (the handshake takes 200 ms).
    eventually(&rt, "1,000 callers waiting on node 2's dial", || {
        cluster.node(NodeId(2)).unwrap().waiters == 1000
    })
    .await;
    for r in join_all(callers).await {
        let r = r.unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(api_versions_error(&r), 0);
    }
    assert_eq!(proxy.accepted(2), 1, "one dial for 1,000 callers");
    assert_eq!(proxy.accepted(3), 0);
}

/// A cap of two connections with three nodes: the third node's dial closes
/// the least recently used idle connection first.
pub async fn cluster_connection_cap_closes_the_least_recently_used<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let proxy = KafkaProxy::in_front_of(&mock, 3);
    let config =
        ClusterConfig::default().with_policy(PolicyConfig::new().with_max_connections(Some(2)));
    let cluster = must_connect(&rt, &proxy.address(1), config).await;
    // The bootstrap connection closes once its Metadata is in.
    eventually(&rt, "bootstrap connection closed", || {
        cluster.open_connections() == 0 && proxy.open(1) == 0
    })
    .await;
    ping(&cluster, NodeId(1)).await;
    ping(&cluster, NodeId(2)).await;
    ping(&cluster, NodeId(1)).await; // node 2 is now the least recently used
    ping(&cluster, NodeId(3)).await;
    assert_eq!(cluster.open_connections(), 2);
    assert_eq!(
        cluster.node(NodeId(2)).unwrap().state,
        NodeState::Disconnected
    );
    eventually(&rt, "node 2's connection closed at the broker side", || {
        proxy.open(2) == 0
    })
    .await;
    assert_eq!((proxy.open(1), proxy.open(3)), (1, 1));
    // Every connection busy: a third node cannot be dialed, it says why.
    mock.set_rtt(1, Duration::from_secs(2));
    mock.set_rtt(3, Duration::from_secs(2));
    let mut busy = spawn_pings(&rt, &cluster, NodeId(1), 1);
    busy.extend(spawn_pings(&rt, &cluster, NodeId(3), 1));
    eventually(&rt, "both connections busy", || {
        cluster.nodes().iter().filter(|n| n.in_flight > 0).count() == 2
    })
    .await;
    let e = cluster
        .send_to(NodeId(2), api_versions_v0())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClusterError::ConnectionLimit { max: 2, .. }),
        "{e:?}"
    );
    for r in join_all(busy).await {
        r.unwrap().unwrap();
    }
}

/// Two clusters behind one address (the forwarder switched to another mock
/// cluster): the other cluster's Metadata is reported (event, error) and
/// not merged; the table keeps the first cluster's id.
pub async fn cluster_reports_a_cluster_id_change_and_does_not_merge<R: Runtime>(rt: R) {
    let (Some(a), Some(b)) = (MockCluster::start(1), MockCluster::start(1)) else {
        return;
    };
    let proxy = KafkaProxy::start(&[(1, a.address(1))]);
    let cluster = must_connect(&rt, &proxy.address(1), ClusterConfig::default()).await;
    let first = cluster.cluster_id().expect("a cluster id");
    let mut events = cluster.events();
    ping(&cluster, NodeId(1)).await;
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
    eprintln!("{e}");
    assert!(e.to_string().contains("not merged"), "{e}");
    let event = wait_for(&rt, &mut events, "cluster id change", |e| {
        matches!(e, ClusterEvent::ClusterIdChanged { .. })
    })
    .await;
    let ClusterEvent::ClusterIdChanged { expected, got } = event else {
        unreachable!()
    };
    assert_eq!(expected.as_deref(), Some(first.as_str()));
    assert_ne!(got, expected);
    assert_eq!(cluster.cluster_id().as_deref(), Some(first.as_str()));
    assert_eq!(ids(&cluster), [1]);
}

/// A connection reaped idle by the core is reported to the policy as idle,
/// not as a failure: the node goes back to disconnected (no backoff) and
/// the next request dials again. Closing the cluster fails requests in
/// flight with `Shutdown` and ends `closed()`.
pub async fn cluster_idle_reaping_is_not_a_failure_and_close_fails_pending<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(1) else {
        return;
    };
    let core = Config::new().with_idle_timeout(Some(Duration::from_millis(300)));
    let cluster = must_connect(&rt, mock.bootstrap(), ClusterConfig::new(core.into())).await;
    let mut events = cluster.events();
    ping(&cluster, NodeId(1)).await;
    let first = cluster.client(NodeId(1)).await.unwrap();
    assert!(matches!(
        timeout(&rt, LIMIT, first.closed()).await,
        Some(CloseReason::Idle { .. })
    ));
    eventually(&rt, "node 1 disconnected after the idle close", || {
        let n = cluster.node(NodeId(1)).unwrap();
        n.state == NodeState::Disconnected && n.failures == 0 && n.last_failure.is_none()
    })
    .await;
    ping(&cluster, NodeId(1)).await;
    let second = cluster.client(NodeId(1)).await.unwrap();
    assert!(!second.is_closed());
    assert!(
        std::iter::from_fn(|| events.try_next())
            .all(|e| !matches!(e, ClusterEvent::ConnectionFailed { .. })),
        "an idle close counted as a failure"
    );
    // Requests in flight when the cluster closes fail with Shutdown.
    mock.set_rtt(1, Duration::from_secs(5));
    let pending = spawn_pings(&rt, &cluster, NodeId(1), 10);
    in_flight(&rt, &cluster, NodeId(1), 10).await;
    cluster.close();
    for p in join_all(pending).await {
        let e = p.unwrap().unwrap_err();
        assert_eq!(e.close_reason(), Some(&CloseReason::Shutdown), "{e}");
    }
    timeout(&rt, LIMIT, cluster.closed())
        .await
        .expect("closed within the limit");
    assert!(second.is_closed());
    let ended = timeout(&rt, LIMIT, async { while events.next().await.is_some() {} }).await;
    assert!(ended.is_some(), "the event stream ends with the cluster");
}

/// Polls `f` once (with the caller's waker) and says whether it finished.
async fn poll_once<F: std::future::Future + ?Sized>(mut f: std::pin::Pin<&mut F>) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx).is_ready())).await
}

/// Cancellation safety of the cluster's in-flight accounting: `send_to`
/// futures dropped at each point of their life (never polled, counted from
/// the call on a ready node; polled once while the node was still being
/// dialed; polled once while the broker delays its answer, i.e. counted in
/// flight and queued on the connection; completed) leave the node with
/// nothing in flight, and the connection keeps answering. A count left
/// behind would skew the least-loaded choice and keep a draining
/// connection open forever.
pub async fn cluster_dropped_send_to_futures_leave_nothing_in_flight<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let cluster = must_connect(&rt, mock.bootstrap(), ClusterConfig::default()).await;
    let node = NodeId(1);
    // Node 1 has no connection yet: the first poll starts the dial and
    // waits for it; dropped while it waits.
    {
        let mut waiting = Box::pin(cluster.send_to(node, api_versions_v0()));
        assert!(
            !poll_once(waiting.as_mut()).await,
            "answered before its dial"
        );
    }
    ping(&cluster, node).await;
    in_flight(&rt, &cluster, node, 0).await;
    // Never polled: counted from the call (the node is ready), ended by
    // the drop.
    let unpolled: Vec<_> = (0..10)
        .map(|_| cluster.send_to(node, api_versions_v0()))
        .collect();
    in_flight(&rt, &cluster, node, 10).await;
    drop(unpolled);
    in_flight(&rt, &cluster, node, 0).await;
    // Polled once: sent, the broker holds the answers back.
    mock.set_rtt(1, Duration::from_secs(2));
    let mut polled: Vec<_> = (0..10)
        .map(|_| Box::pin(cluster.send_to(node, api_versions_v0())))
        .collect();
    for f in &mut polled {
        assert!(!poll_once(f.as_mut()).await, "answered despite the delay");
    }
    in_flight(&rt, &cluster, node, 10).await;
    drop(polled);
    in_flight(&rt, &cluster, node, 0).await;
    mock.set_rtt(1, Duration::ZERO);
    // Completed, and the connection (never closed by the drops) answers.
    for _ in 0..3 {
        ping(&cluster, node).await;
    }
    in_flight(&rt, &cluster, node, 0).await;
    let info = cluster.node(node).unwrap();
    assert!(matches!(info.state, NodeState::Ready { .. }), "{info:?}");
    assert_eq!(info.failures, 0, "{info:?}");
    cluster.close();
    timeout(&rt, LIMIT, cluster.closed())
        .await
        .expect("closed in time");
}
