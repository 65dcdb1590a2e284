//! Each control of the test helper `kafka_conn_testsuite::MockCluster` (a
//! private librdkafka mock cluster per test), proven through kafka-conn's
//! public API as it is today: a broker taken down closes its connections and
//! refuses new ones until it is brought up, a round-trip delay shows in the
//! measured response time, pushed error codes come back in the responses,
//! a moved leader and a changed broker set show in Metadata.
//!
//! Skipped (with a message) without `KAFKA_CONN_MOCK_PYTHON` and
//! `KAFKA_CONN_MOCK_SCRIPT` from `scripts/broker-up`'s env file; failed
//! instead under `KAFKA_CONN_REQUIRE_BROKERS=1`.

use std::time::{Duration, Instant};

use kafka_conn_testsuite::kafka::{api_versions_error, api_versions_v0};
use kafka_conn_testsuite::MockCluster;
use kafka_conn_tokio::core::wire::Reader;
use kafka_conn_tokio::core::{ApiKey, BrokenCause, CloseReason, Request};
use kafka_conn_tokio::{connect, Client, ConnectConfig, ConnectError};

/// Generous: every step here takes milliseconds on an idle machine.
const LIMIT: Duration = Duration::from_secs(10);

async fn must_connect(addr: &str) -> Client {
    match tokio::time::timeout(LIMIT, connect(addr, ConnectConfig::default())).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("connect to {addr}: {e}"),
        Err(_) => panic!("connect to {addr}: no outcome within {LIMIT:?}"),
    }
}

/// Metadata v1 for `topics` (every topic when `None`).
fn metadata(topics: Option<&[&str]>) -> Request {
    let mut body = Vec::new();
    match topics {
        None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(ts) => {
            body.extend_from_slice(&(ts.len() as i32).to_be_bytes());
            for t in ts {
                body.extend_from_slice(&(t.len() as i16).to_be_bytes());
                body.extend_from_slice(t.as_bytes());
            }
        }
    }
    Request::new(ApiKey::METADATA, 1, body)
}

/// What a Metadata v1 response says.
#[derive(Debug)]
struct Metadata {
    /// (node id, "host:port", rack)
    brokers: Vec<(i32, String, Option<String>)>,
    topics: Vec<Topic>,
}

#[derive(Debug)]
struct Topic {
    name: String,
    error: i16,
    /// (partition, leader)
    leaders: Vec<(i32, i32)>,
}

impl Metadata {
    fn leader(&self, topic: &str, partition: i32) -> i32 {
        let t = self.topics.iter().find(|t| t.name == topic).unwrap();
        t.leaders.iter().find(|p| p.0 == partition).unwrap().1
    }

    fn broker_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.brokers.iter().map(|b| b.0).collect();
        ids.sort_unstable();
        ids
    }
}

async fn fetch_metadata(client: &Client, topics: Option<&[&str]>) -> Metadata {
    let r = client.send(metadata(topics)).await.unwrap();
    let mut rd = Reader::new(&r.body);
    let mut brokers = Vec::new();
    for _ in 0..rd.array_len(10, "brokers").unwrap() {
        let id = rd.i32("node").unwrap();
        let host = rd.string("host").unwrap().to_owned();
        let port = rd.i32("port").unwrap();
        let rack = rd.nullable_string("rack").unwrap().map(str::to_owned);
        brokers.push((id, format!("{host}:{port}"), rack));
    }
    rd.i32("controller").unwrap();
    let mut topics = Vec::new();
    for _ in 0..rd.array_len(7, "topics").unwrap() {
        let error = rd.i16("error").unwrap();
        let name = rd.string("name").unwrap().to_owned();
        rd.i8("internal").unwrap();
        let mut leaders = Vec::new();
        for _ in 0..rd.array_len(18, "partitions").unwrap() {
            rd.i16("error").unwrap();
            let index = rd.i32("partition").unwrap();
            let leader = rd.i32("leader").unwrap();
            for what in ["replicas", "isr"] {
                for _ in 0..rd.array_len(4, what).unwrap() {
                    rd.i32(what).unwrap();
                }
            }
            leaders.push((index, leader));
        }
        topics.push(Topic {
            name,
            error,
            leaders,
        });
    }
    assert_eq!(rd.remaining(), 0, "trailing bytes in Metadata v1");
    Metadata { brokers, topics }
}

/// The cluster is private: its own ports, and `address(id)` is the
/// listener Metadata advertises for broker `id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_lists_the_brokers_by_id() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let Some(other) = MockCluster::start(1) else {
        return;
    };
    assert_ne!(mock.bootstrap(), other.bootstrap());
    assert_eq!(mock.bootstrap().split(',').count(), 3);
    let client = must_connect(&mock.address(1)).await;
    let md = fetch_metadata(&client, None).await;
    assert_eq!(md.broker_ids(), [1, 2, 3]);
    for (id, addr, _) in &md.brokers {
        assert_eq!(*addr, mock.address(*id), "{md:?}");
    }
}

/// Down: the open connection ends (EOF) and new connections are refused;
/// the other brokers are untouched. Up: the same port accepts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_closes_and_refuses_until_up() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let addr = mock.address(2);
    let victim = must_connect(&addr).await;
    let bystander = must_connect(&mock.address(1)).await;

    mock.broker_down(2);
    let reason = tokio::time::timeout(LIMIT, victim.closed())
        .await
        .expect("the connection to a downed broker stayed open");
    assert!(
        matches!(
            reason,
            CloseReason::Broken {
                cause: BrokenCause::Eof | BrokenCause::Io { .. },
                ..
            }
        ),
        "{reason}"
    );
    match tokio::time::timeout(LIMIT, connect(&addr, ConnectConfig::default())).await {
        Ok(Err(ConnectError::Refused { .. })) => {}
        other => panic!("connect to a downed broker: {other:?}"),
    }
    let r = bystander.send(api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);

    mock.broker_up(2);
    let back = must_connect(&addr).await;
    let r = back.send(api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);
}

/// `set_rtt` delays every response of that broker by at least the RTT, as
/// kafka-conn measures it (`Response::rtt`) and as the caller waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtt_delays_every_response() {
    let Some(mock) = MockCluster::start(2) else {
        return;
    };
    let rtt = Duration::from_millis(300);
    let client = must_connect(&mock.address(1)).await;
    mock.set_rtt(1, rtt);
    for _ in 0..3 {
        let started = Instant::now();
        let r = client.send(api_versions_v0()).await.unwrap();
        assert!(started.elapsed() >= rtt, "{:?}", started.elapsed());
        assert!(r.rtt >= rtt, "measured {:?}", r.rtt);
    }
    mock.set_rtt(1, Duration::ZERO);
    // Only the delay is gone: no upper bound asserted on a loaded machine.
    let r = client.send(api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);
}

/// Pushed error codes answer the next requests of that API, one each, in
/// order; then the broker answers normally again. `-195` (librdkafka's
/// `_TRANSPORT`) drops the connection instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_errors_come_back_in_order() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let client = must_connect(&mock.address(1)).await;
    mock.push_request_errors(ApiKey::API_VERSIONS.0, &[35, 41]);
    for expected in [35, 41, 0] {
        let r = client.send(api_versions_v0()).await.unwrap();
        assert_eq!(api_versions_error(&r), expected);
    }

    // On one broker only, with a delay; the others are unaffected.
    let delay = Duration::from_millis(200);
    let two = must_connect(&mock.address(2)).await;
    let three = must_connect(&mock.address(3)).await;
    mock.push_broker_request_errors(2, ApiKey::API_VERSIONS.0, &[(7, delay)]);
    let r = three.send(api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);
    let started = Instant::now();
    let r = two.send(api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 7);
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());

    mock.push_request_errors(ApiKey::METADATA.0, &[-195]);
    let failure = client.send(metadata(None)).await.unwrap_err();
    let reason = failure.close_reason().cloned().expect("a close reason");
    assert!(matches!(reason, CloseReason::Broken { .. }), "{reason}");
}

/// A moved leader shows in the next Metadata response; so do a topic error,
/// a rack, a decommissioned broker and an added one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_follows_leaders_and_brokers() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let client = must_connect(&mock.address(1)).await;
    mock.create_topic("moving", 2, 3);
    for leader in [3, 1, 2, -1] {
        mock.set_leader("moving", 0, leader);
        let md = fetch_metadata(&client, Some(&["moving"])).await;
        assert_eq!(md.leader("moving", 0), leader, "{md:?}");
    }
    mock.set_topic_error("moving", 3);
    let md = fetch_metadata(&client, Some(&["moving"])).await;
    assert_eq!(md.topics[0].error, 3, "{md:?}");

    mock.set_rack(2, "rack-b");
    mock.decommission_broker(3);
    let md = fetch_metadata(&client, None).await;
    assert_eq!(md.broker_ids(), [1, 2]);
    let rack = md.brokers.iter().find(|b| b.0 == 2).unwrap().2.clone();
    assert_eq!(rack.as_deref(), Some("rack-b"));

    mock.add_broker(4);
    let md = fetch_metadata(&client, None).await;
    assert_eq!(md.broker_ids(), [1, 2, 4]);
    let (_, addr, _) = md.brokers.iter().find(|b| b.0 == 4).unwrap();
    let four = must_connect(addr).await;
    let r = four.send(api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);
}

/// A restricted version range is what a new connection negotiates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_version_range_is_negotiated() {
    let Some(mock) = MockCluster::start(1) else {
        return;
    };
    let before = must_connect(mock.bootstrap()).await;
    assert!(before.negotiate(ApiKey::METADATA, 0..=12).unwrap() > 4);
    mock.set_api_version(ApiKey::METADATA.0, 0, 4);
    let after = must_connect(mock.bootstrap()).await;
    assert_eq!(after.negotiate(ApiKey::METADATA, 0..=12), Some(4));
}

/// Refused commands are errors that say why; dropping the helper stops the
/// cluster (its listeners refuse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commands_and_drop() {
    let Some(mock) = MockCluster::start(2) else {
        return;
    };
    let e = mock.command("down 9").unwrap_err();
    assert!(e.starts_with("BROKER_NOT_AVAILABLE"), "{e}");
    let e = mock.command("leader t 0 9").unwrap_err();
    assert!(!e.is_empty(), "{e}");
    let e = mock.command("frobnicate 1").unwrap_err();
    assert!(e.starts_with("BAD_COMMAND"), "{e}");
    let e = mock.command("rtt one 5").unwrap_err();
    assert!(e.starts_with("BAD_ARGUMENTS"), "{e}");
    assert_eq!(mock.command("bootstraps").unwrap(), mock.bootstrap());

    let addr = mock.address(1);
    drop(mock);
    match tokio::time::timeout(LIMIT, connect(&addr, ConnectConfig::default())).await {
        Ok(Err(ConnectError::Refused { .. })) => {}
        other => panic!("connect after drop: {other:?}"),
    }
}
