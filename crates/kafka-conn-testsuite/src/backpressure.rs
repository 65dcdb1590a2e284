//! Backpressure (issue 18): a connection holds at most `max_queued`
//! requests for its callers. A private mock cluster is flooded from
//! thousands of tasks while its process is stopped (SIGSTOP: the broker
//! stops reading, its socket buffers fill), and the queue gauges show that
//! what the connection holds stops at the bound; then the broker resumes
//! (everything completes) or dies (everything fails with the close reason).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_conn_driver::core::{CloseReason, Config};
use kafka_conn_driver::{
    connect, Client, Cluster, ClusterConfig, ConnectConfig, NodeId, RequestFailure, Runtime,
};

use crate::kafka::{api_versions_error, api_versions_v0};
use crate::tests::LIMIT;
use crate::{connected, sleep, spawn, timeout, MockCluster};

/// The bound under test: small, so that the flood is mostly waiting.
const BOUND: usize = 256;
/// The flood: `TASKS` tasks sending `PER_TASK` requests each, one after
/// the other (a million requests).
const TASKS: u64 = 2_000;
const PER_TASK: u64 = 500;

/// How the flood's requests ended.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// A failure that is not the connection's close (there must be none).
    unexpected: Mutex<Option<RequestFailure>>,
}

/// A connection to broker 1 of `mock` with the test's bound, and a request
/// deadline far beyond the test, so that no request times out while the
/// broker is stopped.
async fn flood_client<R: Runtime>(rt: &R, mock: &MockCluster) -> Client {
    let addr = mock.address(1);
    let config = ConnectConfig::new(Config::new().with_request_timeout(Duration::from_secs(600)))
        .with_max_queued_requests(BOUND);
    let client = connected(rt, &addr, LIMIT, connect(rt.clone(), &addr, config)).await;
    assert_eq!(client.max_queued(), BOUND);
    let r = client.send(api_versions_v0()).await.unwrap();
    assert_eq!(api_versions_error(&r), 0);
    assert_eq!(client.queued(), 0);
    client
}

/// Starts the flood: `TASKS` tasks, each sending `PER_TASK` ApiVersions in
/// a loop and tallying how each ended.
fn flood<R: Runtime>(
    rt: &R,
    client: &Client,
    tally: &Arc<Tally>,
) -> Vec<futures_channel::oneshot::Receiver<()>> {
    (0..TASKS)
        .map(|_| {
            let client = client.clone();
            let tally = tally.clone();
            spawn(rt, async move {
                for _ in 0..PER_TASK {
                    match client.send(api_versions_v0()).await {
                        Ok(_) => tally.ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            if e.close_reason().is_none() {
                                tally.unexpected.lock().unwrap().get_or_insert(e);
                            }
                            tally.failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect()
}

/// Watches the gauges for `for_how_long` while the broker is stopped: the
/// connection fills up to the bound and stays there; the core gets no more
/// than the bound either (its `requests_sent` stops `BOUND` past
/// `sent_before`), and no response comes.
async fn assert_held_at_the_bound<R: Runtime>(
    rt: &R,
    client: &Client,
    tally: &Tally,
    sent_before: u64,
    for_how_long: Duration,
) {
    let start = Instant::now();
    while client.queued() < BOUND {
        assert!(
            start.elapsed() < LIMIT,
            "the flood never filled the queue: {} of {BOUND}",
            client.queued()
        );
        sleep(rt, Duration::from_millis(10)).await;
    }
    let answered = tally.ok.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut samples = 0;
    while start.elapsed() < for_how_long {
        let (queued, in_flight, sent) = (
            client.queued(),
            client.in_flight(),
            client.stats().requests_sent,
        );
        assert_eq!(queued, BOUND, "the queue must stay full at the bound");
        assert!(in_flight <= BOUND, "{in_flight} in flight, bound {BOUND}");
        assert!(
            sent - sent_before <= BOUND as u64,
            "{} requests handed to a stopped broker, bound {BOUND}",
            sent - sent_before
        );
        samples += 1;
        sleep(rt, Duration::from_millis(20)).await;
    }
    assert!(samples > 10);
    assert_eq!(
        tally.ok.load(Ordering::Relaxed),
        answered,
        "a stopped broker answered"
    );
    // The non-waiting variant is refused at once, with the bound.
    match client.try_send(api_versions_v0()) {
        Err(RequestFailure::Overloaded { max_queued }) => assert_eq!(max_queued, BOUND),
        Err(e) => panic!("try_send on a full connection: {e}"),
        Ok(_) => panic!("try_send on a full connection queued its request"),
    }
    let e = RequestFailure::Overloaded { max_queued: BOUND };
    assert!(e.is_retriable() && e.close_reason().is_none(), "{e}");
}

/// Awaits every flood task within `within`.
async fn join_all_within<R: Runtime>(
    rt: &R,
    tasks: Vec<futures_channel::oneshot::Receiver<()>>,
    within: Duration,
    what: &str,
) {
    let deadline = Instant::now() + within;
    for t in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        timeout(rt, left, t)
            .await
            .unwrap_or_else(|| panic!("{what}: the flood did not end within {within:?}"))
            .expect("a flood task panicked");
    }
}

/// A million requests from 2,000 tasks against a broker that stopped
/// reading: the connection holds `BOUND` and the other senders wait;
/// after the broker resumes, every request is answered.
pub async fn flood_of_a_stopped_broker_holds_at_the_bound_then_completes<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(1) else {
        return;
    };
    let client = flood_client(&rt, &mock).await;
    mock.pause();
    let sent_before = client.stats().requests_sent;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let tasks = flood(&rt, &client, &tally);
    assert_held_at_the_bound(&rt, &client, &tally, sent_before, Duration::from_secs(2)).await;
    mock.resume();
    join_all_within(&rt, tasks, Duration::from_secs(600), "after resume").await;
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "flood: {ok} answered, {failed} failed, in {:?}",
        started.elapsed()
    );
    assert_eq!(tally.unexpected.lock().unwrap().take(), None);
    assert_eq!((ok, failed), (TASKS * PER_TASK, 0));
    assert_eq!(client.queued(), 0);
    let s = client.stats();
    assert_eq!(s.requests_sent, s.responses_received, "{s:?}");
    assert!(!client.is_closed());
}

/// The same flood, then the stopped broker is killed: every request (the
/// ones on the wire and the ones waiting for room) fails with the close
/// reason, which is retriable; nothing hangs.
pub async fn flood_of_a_killed_broker_fails_every_request_cleanly<R: Runtime>(rt: R) {
    let Some(mock) = MockCluster::start(1) else {
        return;
    };
    let client = flood_client(&rt, &mock).await;
    mock.pause();
    let sent_before = client.stats().requests_sent;
    let tally = Arc::new(Tally::default());
    let tasks = flood(&rt, &client, &tally);
    assert_held_at_the_bound(
        &rt,
        &client,
        &tally,
        sent_before,
        Duration::from_millis(500),
    )
    .await;
    mock.kill();
    let reason = timeout(&rt, LIMIT, client.closed())
        .await
        .expect("the connection sees the broker die");
    assert!(
        matches!(reason, CloseReason::Broken { .. }) && reason.is_retriable(),
        "{reason:?}"
    );
    join_all_within(&rt, tasks, Duration::from_secs(120), "after kill").await;
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!("flood then kill: {ok} answered, {failed} failed ({reason})");
    assert_eq!(tally.unexpected.lock().unwrap().take(), None);
    assert_eq!(ok + failed, TASKS * PER_TASK);
    assert_eq!(ok, 0, "a stopped broker answered");
    assert_eq!(client.queued(), 0);
    // Refused at once from now on, with the same reason.
    match client.send(api_versions_v0()).await {
        Err(e) => assert_eq!(e.close_reason(), Some(&reason), "{e}"),
        Ok(_) => panic!("a closed connection answered"),
    }
}

/// Cancellation safety under backpressure: send futures dropped while
/// waiting for room, or while their request is on the wire of a stopped
/// broker, give back their places; the dropped requests on the wire still
/// count against what the core may hold until their responses are read
/// (and dropped), and the connection stays in sync.
pub async fn dropped_sends_give_back_their_places<R: Runtime>(rt: R) {
    const SMALL: usize = 8;
    let Some(mock) = MockCluster::start(1) else {
        return;
    };
    let addr = mock.address(1);
    let config = ConnectConfig::default().with_max_queued_requests(SMALL);
    let client = connected(&rt, &addr, LIMIT, connect(rt.clone(), &addr, config)).await;
    client.send(api_versions_v0()).await.unwrap();
    mock.pause();
    // SMALL on the wire and 3 * SMALL waiting for room, all given up
    // after 300 ms.
    let tasks: Vec<_> = (0..4 * SMALL)
        .map(|_| {
            let (rt2, client) = (rt.clone(), client.clone());
            spawn(&rt, async move {
                let give_up = Duration::from_millis(300);
                timeout(&rt2, give_up, client.send(api_versions_v0()))
                    .await
                    .is_none()
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap(), "a stopped broker answered");
    }
    // Every place comes back (the task frees a cancelled slot once it sees
    // the cancel); the core still waits for the SMALL responses due.
    let start = Instant::now();
    while client.queued() > 0 {
        assert!(start.elapsed() < LIMIT, "{} places kept", client.queued());
        sleep(&rt, Duration::from_millis(5)).await;
    }
    assert_eq!(client.in_flight(), SMALL);
    // So new requests get places but wait for the core, up to the bound.
    let waiting: Vec<_> = (0..SMALL)
        .map(|_| {
            let client = client.clone();
            spawn(&rt, async move { client.send(api_versions_v0()).await })
        })
        .collect();
    let start = Instant::now();
    while client.queued() < SMALL {
        assert!(start.elapsed() < LIMIT, "{} queued", client.queued());
        sleep(&rt, Duration::from_millis(5)).await;
    }
    let sent = client.stats().requests_sent;
    assert!(matches!(
        client.try_send(api_versions_v0()),
        Err(RequestFailure::Overloaded { max_queued: SMALL })
    ));
    mock.resume();
    for w in waiting {
        let r = timeout(&rt, LIMIT, w).await.expect("in time").unwrap();
        assert_eq!(api_versions_error(&r.unwrap()), 0);
    }
    let s = client.stats();
    assert_eq!(s.requests_sent, sent + SMALL as u64, "{s:?}");
    assert_eq!(s.late_responses, SMALL as u64, "{s:?}");
    assert_eq!(s.requests_sent, s.responses_received, "{s:?}");
    assert_eq!((client.queued(), client.in_flight()), (0, 0));
    // And the connection is in sync.
    for _ in 0..3 {
        let r = client.send(api_versions_v0()).await.unwrap();
        assert_eq!(api_versions_error(&r), 0);
    }
}

/// The same bound through a `Cluster`: its per-node `Client`s are made
/// with the cluster's `ConnectConfig`, so requests sent with `send_to` to a
/// stopped broker hold at the node's bound too (the other callers wait for
/// room), and all complete once it resumes.
pub async fn cluster_node_connections_are_bounded_too<R: Runtime>(rt: R) {
    const NODE_BOUND: usize = 32;
    const CALLERS: u64 = 200;
    const EACH: u64 = 10;
    let Some(mock) = MockCluster::start(1) else {
        return;
    };
    let connect = ConnectConfig::new(Config::new().with_request_timeout(Duration::from_secs(600)))
        .with_max_queued_requests(NODE_BOUND);
    let cluster = timeout(
        &rt,
        LIMIT,
        Cluster::connect_with(rt.clone(), [mock.address(1)], ClusterConfig::new(connect)),
    )
    .await
    .expect("the cluster connects in time")
    .expect("the cluster connects");
    let node = NodeId(1);
    let client = cluster.client(node).await.unwrap();
    assert_eq!(client.max_queued(), NODE_BOUND);
    mock.pause();
    let ok = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cluster, ok) = (cluster.clone(), ok.clone());
            spawn(&rt, async move {
                for _ in 0..EACH {
                    let r = cluster.send_to(node, api_versions_v0()).await.unwrap();
                    assert_eq!(api_versions_error(&r), 0);
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    while client.queued() < NODE_BOUND {
        assert!(start.elapsed() < LIMIT, "{} queued", client.queued());
        sleep(&rt, Duration::from_millis(10)).await;
    }
    for _ in 0..25 {
        assert_eq!(client.queued(), NODE_BOUND);
        assert!(client.in_flight() <= NODE_BOUND);
        sleep(&rt, Duration::from_millis(20)).await;
    }
    assert_eq!(ok.load(Ordering::Relaxed), 0, "a stopped broker answered");
    mock.resume();
    join_all_within(&rt, tasks, LIMIT, "cluster after resume").await;
    assert_eq!(ok.load(Ordering::Relaxed), CALLERS * EACH);
    assert_eq!(client.queued(), 0);
}
