//! Observability against real brokers, generic over the runtime (run by
//! [`crate::suite!`]): the [`Observer`] hooks after a known workload, the
//! `MetricsObserver`'s values in a recorder, and the stable `tracing`
//! span and event names and fields (`docs/metrics.md`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use kafka_conn_driver::core::sasl::{OAuthBearerToken, SaslConfig};
use kafka_conn_driver::core::{ApiKey, Config, Response};
use kafka_conn_driver::{
    close_reason_label, connect, connect_direct, metric_names as names, request_error_label,
    Cluster, ClusterConfig, ConnectConfig, ConnectErrorEvent, ConnectEvent, DisconnectEvent,
    InFlightEvent, MetricsObserver, NodeId, Observer, Peer, ReauthenticationEvent,
    RequestFailedEvent, ResponseEvent, Runtime, SetupStep, ThrottleEvent,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use crate::fake::OAuthBroker;
use crate::kafka::{api_versions_error, api_versions_v0, assert_metadata_for, metadata_for};
use crate::tests::LIMIT;
use crate::{env, sleep, timeout};

/// One observer event, as the recording observer saw it.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// `on_connect`: the node, address, and the ApiVersions, TCP and SASL step times.
    Connect {
        node: Option<NodeId>,
        address: std::net::SocketAddr,
        tcp: Option<Duration>,
        api_versions: Option<Duration>,
        sasl: Option<Duration>,
    },
    /// `on_connect_error`.
    ConnectError {
        node: Option<NodeId>,
        address: String,
        step: SetupStep,
        retriable: bool,
    },
    /// `on_disconnect`.
    Disconnect {
        reason: &'static str,
        retriable: bool,
    },
    /// `on_response`.
    Response {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        request_bytes: u32,
        response_bytes: u32,
        latency: Duration,
    },
    /// `on_request_failed`.
    Failed {
        api_key: ApiKey,
        correlation_id: i32,
        reason: &'static str,
    },
    /// `on_late_responses`.
    Late(u64),
    /// `on_throttle`: API, version, the broker's time, applied.
    Throttle(ApiKey, i16, Duration, bool),
    /// `on_throttle_held`.
    Held(Duration),
    /// `on_reauthentication`.
    Reauth { ok: bool, latency: Duration },
    /// `on_in_flight`.
    InFlight { in_flight: usize, held: usize },
}

/// An observer that keeps every event, with the node of its peer checked.
#[derive(Default)]
struct Recording {
    seen: Mutex<Vec<Seen>>,
    peers: Mutex<Vec<u64>>,
}

impl Recording {
    fn push(&self, peer: Option<&Peer>, seen: Seen) {
        if let Some(p) = peer {
            self.peers.lock().unwrap().push(p.connection_id);
        }
        self.seen.lock().unwrap().push(seen);
    }

    /// Every event so far.
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The (first) connect event.
    fn connect(&self) -> Option<Seen> {
        (self.seen().into_iter()).find(|s| matches!(s, Seen::Connect { .. }))
    }

    fn late(&self) -> u64 {
        (self.seen().iter())
            .map(|s| if let Seen::Late(n) = s { *n } else { 0 })
            .sum()
    }
}

impl Observer for Recording {
    fn on_connect(&self, e: &ConnectEvent<'_>) {
        let t = &e.info.timings;
        self.push(
            Some(e.peer),
            Seen::Connect {
                node: e.peer.node_id,
                address: e.peer.address,
                tcp: t.tcp,
                api_versions: t.api_versions,
                sasl: t.sasl,
            },
        );
    }

    fn on_connect_error(&self, e: &ConnectErrorEvent<'_>) {
        self.push(
            None,
            Seen::ConnectError {
                node: e.node_id,
                address: e.address.to_owned(),
                step: e.step,
                retriable: e.retriable,
            },
        );
    }

    fn on_disconnect(&self, e: &DisconnectEvent<'_>) {
        self.push(
            Some(e.peer),
            Seen::Disconnect {
                reason: close_reason_label(e.reason),
                retriable: e.retriable,
            },
        );
    }

    fn on_response(&self, e: &ResponseEvent<'_>) {
        self.push(
            Some(e.peer),
            Seen::Response {
                api_key: e.api_key,
                api_version: e.api_version,
                correlation_id: e.correlation_id.0,
                request_bytes: e.request_bytes,
                response_bytes: e.response_bytes,
                latency: e.latency,
            },
        );
    }

    fn on_request_failed(&self, e: &RequestFailedEvent<'_>) {
        self.push(
            Some(e.peer),
            Seen::Failed {
                api_key: e.api_key,
                correlation_id: e.correlation_id.0,
                reason: request_error_label(e.error),
            },
        );
    }

    fn on_late_responses(&self, peer: &Peer, count: u64) {
        self.push(Some(peer), Seen::Late(count));
    }

    fn on_throttle(&self, e: &ThrottleEvent<'_>) {
        let seen = Seen::Throttle(e.api_key, e.api_version, e.throttle_time, e.applied);
        self.push(Some(e.peer), seen);
    }

    fn on_throttle_held(&self, peer: &Peer, held: Duration) {
        self.push(Some(peer), Seen::Held(held));
    }

    fn on_reauthentication(&self, e: &ReauthenticationEvent<'_>) {
        self.push(
            Some(e.peer),
            Seen::Reauth {
                ok: e.outcome.is_ok(),
                latency: e.latency,
            },
        );
    }

    fn on_in_flight(&self, e: &InFlightEvent<'_>) {
        self.push(
            Some(e.peer),
            Seen::InFlight {
                in_flight: e.in_flight,
                held: e.held,
            },
        );
    }
}

/// The size on the wire of a request with header v1 and the default client
/// id `kafka-conn`: size prefix, API key, version, correlation id, client
/// id (length and bytes), body.
fn request_bytes(body: usize) -> u32 {
    (4 + 2 + 2 + 4 + 2 + "kafka-conn".len() + body) as u32
}

/// The hooks after a known workload against tansu: the connect with its
/// step times, every response with its API, version, correlation id, sizes
/// and latency, requests that time out (with their API) and their late
/// responses, the in-flight count back to zero, the disconnect with its
/// typed reason; and a failed connect with its step.
pub async fn observer_sees_connect_responses_failures_and_close<R: Runtime>(rt: R) {
    let Some(addr) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let recording = Arc::new(Recording::default());
    let config = ConnectConfig::default()
        .with_observer(recording.clone())
        .with_node_id(NodeId(7));
    let client = match timeout(&rt, LIMIT, connect(rt.clone(), &addr, config.clone())).await {
        Some(Ok(c)) => c,
        other => panic!("{addr}: {other:?}"),
    };
    let Some(Seen::Connect {
        node,
        address,
        tcp,
        api_versions,
        sasl,
    }) = recording.connect()
    else {
        panic!("no connect event: {:?}", recording.seen())
    };
    assert_eq!((node, address), (Some(NodeId(7)), client.info().address));
    assert_eq!(
        (tcp, api_versions, sasl),
        (
            client.info().timings.tcp,
            client.info().timings.api_versions,
            None
        )
    );
    assert!(tcp.is_some() && api_versions.is_some());

    // 20 Metadata requests at once: 20 responses, each reported as it was answered.
    let topics: Vec<String> = (0..20).map(|i| format!("kc-observe-{i}")).collect();
    let responses: Vec<Response> = join_all(topics.iter().map(|t| client.send(metadata_for(t))))
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    for (r, t) in responses.iter().zip(&topics) {
        assert_metadata_for(r, t);
        let seen = recording.seen();
        let reported = seen
            .iter()
            .find_map(|s| match s {
                Seen::Response {
                    correlation_id,
                    api_key,
                    api_version,
                    request_bytes: req,
                    response_bytes,
                    latency,
                } if *correlation_id == r.correlation_id.0 => {
                    Some((*api_key, *api_version, *req, *response_bytes, *latency))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no response event for {}", r.correlation_id));
        // Metadata v4: request header v1; response header v0 (a correlation id).
        let body = metadata_for(t).body().len();
        assert_eq!(
            reported,
            (
                ApiKey::METADATA,
                4,
                request_bytes(body),
                r.body.len() as u32 + 8,
                r.rtt
            )
        );
        assert_eq!(
            (r.request_bytes, r.response_bytes),
            (reported.2, reported.3)
        );
    }

    // Requests that cannot be answered in time (a zero timeout): each fails
    // with its API, and its response, read later, is a late response.
    let quick =
        join_all((0..5).map(|_| client.send(api_versions_v0().with_timeout(Duration::ZERO)))).await;
    let timed_out = quick.iter().filter(|r| r.is_err()).count() as u64;
    assert!(timed_out >= 1, "{quick:?}");
    let failed: Vec<_> = recording
        .seen()
        .into_iter()
        .filter_map(|s| match s {
            Seen::Failed {
                api_key, reason, ..
            } => Some((api_key, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        vec![(ApiKey::API_VERSIONS, "timed_out"); timed_out as usize]
    );
    let until = Instant::now() + LIMIT;
    while recording.late() < timed_out && Instant::now() < until {
        sleep(&rt, Duration::from_millis(10)).await;
    }
    assert_eq!(recording.late(), timed_out, "{:?}", recording.seen());
    assert_eq!(client.stats().late_responses, timed_out);

    // Throttles (KIP-219) as a typed response reports them: Metadata v6
    // makes the client wait (applied), v5 was already delayed by the broker.
    // Both are told with the broker's figure; the time requests were then
    // actually held comes apart.
    client.handle_throttle_time(ApiKey::METADATA, 6, 150);
    client.handle_throttle_time(ApiKey::METADATA, 5, 40);
    let held_from = Instant::now();
    client.send(metadata_for("kc-throttled")).await.unwrap();
    assert!(
        held_from.elapsed() >= Duration::from_millis(100),
        "not held"
    );

    client.close();
    let reason = client.closed().await;
    assert_eq!(close_reason_label(&reason), "shutdown");
    let seen = recording.seen();
    let throttles: Vec<_> = (seen.iter())
        .filter(|s| matches!(s, Seen::Throttle(..)))
        .collect();
    assert_eq!(
        throttles,
        [
            &Seen::Throttle(ApiKey::METADATA, 6, Duration::from_millis(150), true),
            &Seen::Throttle(ApiKey::METADATA, 5, Duration::from_millis(40), false),
        ]
    );
    let held: Duration = (seen.iter())
        .map(|s| {
            if let Seen::Held(d) = s {
                *d
            } else {
                Duration::ZERO
            }
        })
        .sum();
    assert_eq!(held, client.stats().throttled);
    assert!(held >= Duration::from_millis(100), "{held:?}");
    let seen = recording.seen();
    assert_eq!(
        seen.last(),
        Some(&Seen::Disconnect {
            reason: "shutdown",
            retriable: false
        }),
        "{seen:?}"
    );
    // The in-flight count (sampled while busy) is back to zero.
    let in_flight: Vec<_> = (seen.iter())
        .filter_map(|s| match s {
            Seen::InFlight { in_flight, held } => Some((*in_flight, *held)),
            _ => None,
        })
        .collect();
    assert!(
        in_flight.last().is_none_or(|q| *q == (0, 0)),
        "{in_flight:?}"
    );
    // Every event named the same connection.
    let peers = recording.peers.lock().unwrap().clone();
    assert!(peers.windows(2).all(|w| w[0] == w[1]), "{peers:?}");

    // A failed connect: the step and whether retrying may help.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let closed = format!("127.0.0.1:{port}");
    assert!(connect(rt.clone(), &closed, config).await.is_err());
    assert_eq!(
        recording.seen().last(),
        Some(&Seen::ConnectError {
            node: Some(NodeId(7)),
            address: closed,
            step: SetupStep::Tcp,
            retriable: true,
        })
    );
}

/// KIP-368 re-authentication timed by the hooks (the simulated OAUTHBEARER
/// broker over a real socket: no broker here expires sessions in seconds).
/// The token callback takes 20 ms, so each re-authentication takes at least
/// that; SASL is a step of the connect.
pub async fn observer_times_reauthentications<R: Runtime>(rt: R) {
    let broker = OAuthBroker::start(3000);
    let recording = Arc::new(Recording::default());
    let rt2 = rt.clone();
    let config = ConnectConfig::new(Config::new().with_sasl(SaslConfig::oauthbearer()))
        .with_observer(recording.clone())
        .with_oauth_token_provider(move || {
            let rt = rt2.clone();
            async move {
                sleep(&rt, Duration::from_millis(20)).await;
                Ok(OAuthBearerToken::new("token"))
            }
        });
    let client = match timeout(&rt, LIMIT, connect(rt.clone(), &broker.address(), config)).await {
        Some(Ok(c)) => c,
        other => panic!("{other:?}"),
    };
    let until = Instant::now() + Duration::from_millis(4000);
    while Instant::now() < until {
        client.send(metadata_for("kc-reauth")).await.unwrap();
        sleep(&rt, Duration::from_millis(20)).await;
    }
    let seen = recording.seen();
    let Some(Seen::Connect {
        sasl: Some(sasl), ..
    }) = recording.connect()
    else {
        panic!("no connect event with SASL timed")
    };
    assert!(sasl >= Duration::from_millis(20), "{sasl:?}");
    let reauths: Vec<_> = (seen.iter())
        .filter_map(|s| match s {
            Seen::Reauth { ok, latency } => Some((*ok, *latency)),
            _ => None,
        })
        .collect();
    assert!(!reauths.is_empty(), "no re-authentication seen");
    assert_eq!(reauths.len() as u64, client.stats().reauthentications);
    for (ok, latency) in reauths {
        assert!(ok);
        assert!(latency >= Duration::from_millis(20), "{latency:?}");
        assert!(latency < LIMIT, "{latency:?}");
    }
}

/// A metric's labels, sorted.
type Labels = Vec<(String, String)>;

/// Every metric of a snapshot: (name, labels) to its value.
fn values(
    recorder: &metrics_util::debugging::Snapshotter,
) -> BTreeMap<(String, Labels), DebugValue> {
    recorder
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            ((key.name().to_owned(), labels), value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut l: Labels = (pairs.iter())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    l.sort();
    l
}

/// Every `(client_queued, waiting_for_room)` an observer was told.
#[derive(Default, Clone)]
struct ClientQueues(Arc<Mutex<Vec<(usize, usize)>>>);

impl Observer for ClientQueues {
    fn on_in_flight(&self, e: &InFlightEvent<'_>) {
        (self.0.lock().unwrap()).push((e.client_queued, e.waiting_for_room));
    }
}

/// The bound on queued requests per connection in the metrics workload:
/// small, so that a flood of [`FLOOD`] concurrent sends waits for room.
const MAX_QUEUED: usize = 4;
/// Concurrent sends to one node, far over [`MAX_QUEUED`].
const FLOOD: usize = 40;

/// The `MetricsObserver` after a known workload on the librdkafka mock
/// cluster through a `Cluster` (node ids known): 10 ApiVersions and 5
/// Metadata requests to one broker, timed per node and API (the
/// histogram's count is the responses), the connection's bytes per node;
/// the connections and their setup steps per node; then a flood of 40
/// (`FLOOD`) concurrent ApiVersions over a bound of 4 (`MAX_QUEUED`)
/// queued requests: callers waiting for room are
/// reported while it lasts, and the Client's queue gauges are back at zero
/// once it is answered; gauges back to zero and the closes typed once the
/// cluster closes.
pub async fn metrics_after_a_known_workload_on_the_mock_cluster<R: Runtime>(rt: R) {
    let Some(bootstrap) = env::var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let recorder = DebuggingRecorder::new();
    let snapshots = recorder.snapshotter();
    let queues = ClientQueues::default();
    let observer = Arc::new((
        MetricsObserver::with_recorder(Arc::new(recorder)),
        queues.clone(),
    ));
    let config = ClusterConfig::new(
        ConnectConfig::default()
            .with_observer(observer)
            .with_max_queued_requests(MAX_QUEUED),
    );
    let cluster = match timeout(
        &rt,
        LIMIT,
        Cluster::connect_with(rt.clone(), [bootstrap.as_str()], config),
    )
    .await
    {
        Some(Ok(c)) => c,
        other => panic!("{bootstrap}: {other:?}"),
    };
    let node = (cluster.nodes().iter())
        .map(|n| n.id)
        .filter(|id| !id.is_bootstrap())
        .max()
        .expect("brokers from Metadata");
    let mut incoming = (0, 0);
    for _ in 0..10 {
        let r = cluster.send_to(node, api_versions_v0()).await.unwrap();
        assert_eq!(api_versions_error(&r), 0);
        incoming.0 += r.body.len() as u64 + 8;
    }
    for i in 0..5 {
        let topic = format!("kc-metrics-{i}");
        let r = cluster.send_to(node, metadata_for(&topic)).await.unwrap();
        assert_metadata_for(&r, &topic);
        incoming.1 += r.body.len() as u64 + 8;
    }
    let id = node.0.to_string();
    let v = values(&snapshots);
    let get = |name: &str, l: &[(&str, &str)]| {
        v.get(&(name.to_owned(), labels(l)))
            .unwrap_or_else(|| panic!("no {name} {l:?} in {v:#?}"))
    };
    let api = |name| [("node_id", id.as_str()), ("api_key", name)];
    for (name, n) in [("ApiVersions", 10), ("Metadata", 5)] {
        let DebugValue::Histogram(latencies) = get(names::REQUEST_LATENCY, &api(name)) else {
            panic!("latency is a histogram")
        };
        assert_eq!(latencies.len(), n);
        assert!(latencies
            .iter()
            .all(|s| s.0 > 0.0 && s.0 < LIMIT.as_secs_f64()));
    }
    let client = cluster.client(node).await.unwrap();
    let node_l = [("node_id", id.as_str())];
    assert_eq!(
        get(names::CONNECTION_CREATIONS, &node_l),
        &DebugValue::Counter(1)
    );
    assert_eq!(
        get(names::CONNECTION_ACTIVE, &node_l),
        &DebugValue::Gauge(1.0.into())
    );
    assert_eq!(
        get(names::IN_FLIGHT, &node_l),
        &DebugValue::Gauge(0.0.into())
    );
    for step in ["tcp", "api_versions"] {
        let DebugValue::Histogram(t) = get(
            names::CONNECTION_SETUP_TIME,
            &[("node_id", &id), ("step", step)],
        ) else {
            panic!("setup time is a histogram")
        };
        assert_eq!(t.len(), 1, "{step}");
    }
    // The cluster bootstrapped through a bootstrap entry (node -1, -2, ...).
    let bootstraps: u64 = (v.iter())
        .filter(|((name, l), _)| {
            name == names::CONNECTION_CREATIONS
                && l.iter().any(|(k, v)| k == "node_id" && v.starts_with('-'))
        })
        .map(|(_, value)| {
            if let DebugValue::Counter(n) = value {
                *n
            } else {
                0
            }
        })
        .sum();
    assert!(bootstraps >= 1, "{v:#?}");

    // The flood: MAX_QUEUED take the Client's slots, the others wait for
    // room (FIFO), all are answered.
    queues.0.lock().unwrap().clear();
    let flood = join_all((0..FLOOD).map(|_| cluster.send_to(node, api_versions_v0()))).await;
    for r in flood {
        assert_eq!(api_versions_error(&r.unwrap()), 0);
    }
    let seen = queues.0.lock().unwrap().clone();
    let most_waiting = seen.iter().map(|q| q.1).max().unwrap_or(0);
    assert!(
        most_waiting > 0 && most_waiting <= FLOOD - MAX_QUEUED,
        "waiting for room: {seen:?}"
    );
    // Sampled before the last responses were handed out: nothing queued
    // in front of the connection, nobody waiting for room.
    assert_eq!(seen.last().copied(), Some((0, 0)), "{seen:?}");
    // (A snapshot drains histograms: the ones above are read already.)
    let v = values(&snapshots);
    let get = |name: &str, l: &[(&str, &str)]| {
        v.get(&(name.to_owned(), labels(l)))
            .unwrap_or_else(|| panic!("no {name} {l:?} in {v:#?}"))
    };
    for gauge in [names::CLIENT_QUEUED, names::WAITING_FOR_ROOM] {
        assert_eq!(
            get(gauge, &node_l),
            &DebugValue::Gauge(0.0.into()),
            "{gauge}"
        );
    }
    let DebugValue::Histogram(latencies) = get(names::REQUEST_LATENCY, &api("ApiVersions")) else {
        panic!("latency is a histogram")
    };
    // A snapshot drains the histograms: the flood's samples only.
    assert_eq!(latencies.len(), FLOOD);

    cluster.close();
    client.closed().await;
    // Every byte of the connection to the node (its handshake and the
    // workload), reported at the close at the latest.
    let stats = client.stats();
    let metadata_body = metadata_for("kc-metrics-0").body().len();
    let workload_out =
        10 * u64::from(request_bytes(0)) + 5 * u64::from(request_bytes(metadata_body));
    assert!(stats.bytes_sent > workload_out, "{stats:?}");
    assert!(stats.bytes_received > incoming.0 + incoming.1, "{stats:?}");
    let until = Instant::now() + LIMIT;
    let closes = [
        ("node_id", id.as_str()),
        ("reason", "shutdown"),
        ("retriable", "false"),
    ];
    loop {
        let v = values(&snapshots);
        let closed = v.get(&(names::CONNECTION_CLOSES.to_owned(), labels(&closes)));
        if closed == Some(&DebugValue::Counter(1)) {
            let bytes = |name: &str| v.get(&(name.to_owned(), labels(&node_l)));
            assert_eq!(
                bytes(names::OUTGOING_BYTES),
                Some(&DebugValue::Counter(stats.bytes_sent))
            );
            assert_eq!(
                bytes(names::INCOMING_BYTES),
                Some(&DebugValue::Counter(stats.bytes_received))
            );
            assert_eq!(
                v.get(&(names::CONNECTION_ACTIVE.to_owned(), labels(&node_l))),
                Some(&DebugValue::Gauge(0.0.into()))
            );
            break;
        }
        assert!(Instant::now() < until, "no close counted: {v:#?}");
        sleep(&rt, Duration::from_millis(10)).await;
    }
}

/// Fields by name, as text.
type FieldMap = BTreeMap<String, String>;

/// (event name, fields, the names of its spans from the root, their fields merged).
type CapturedEvent = (String, FieldMap, Vec<String>, FieldMap);

/// What the capturing subscriber saw: spans by name with their fields, and
/// events by name with their fields and the names of their spans.
#[derive(Debug, Default, Clone)]
pub(crate) struct Captured {
    /// (span name, fields).
    pub(crate) spans: Vec<(String, BTreeMap<String, String>)>,
    /// (event name, fields, the enclosing spans' fields merged, innermost last).
    pub(crate) events: Vec<CapturedEvent>,
}

mod capture {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::layer::Context;
    use tracing_subscriber::registry::LookupSpan;
    use tracing_subscriber::Layer;

    use super::Captured;

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    /// A layer that keeps every span and event with its fields.
    pub(super) struct Capture(pub(super) Arc<Mutex<Captured>>);

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(fields);
            }
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            if let Some(span) = ctx.span(id) {
                if let Some(fields) = span.extensions_mut().get_mut::<BTreeMap<String, String>>() {
                    values.record(&mut Fields(fields));
                }
            }
        }

        fn on_close(&self, id: Id, ctx: Context<'_, S>) {
            if let Some(span) = ctx.span(&id) {
                let fields = (span.extensions().get::<BTreeMap<String, String>>().cloned())
                    .unwrap_or_default();
                let name = span.name().to_owned();
                self.0.lock().unwrap().spans.push((name, fields));
            }
        }

        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            let mut names = Vec::new();
            let mut span_fields = BTreeMap::new();
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    names.push(span.name().to_owned());
                    if let Some(f) = span.extensions().get::<BTreeMap<String, String>>() {
                        span_fields.extend(f.clone());
                    }
                }
            }
            let name = event.metadata().name().to_owned();
            self.0
                .lock()
                .unwrap()
                .events
                .push((name, fields, names, span_fields));
        }
    }
}

/// The stable `tracing` names and fields of `docs/metrics.md`, seen by a
/// capturing subscriber: the connect span (`kafka_conn.connect`: address,
/// node_id), the connection span (`kafka_conn.connection`: address,
/// node_id), a `kafka_conn.response` event per response (api_key,
/// api_version, correlation_id, latency_us, request_bytes,
/// response_bytes), and `kafka_conn.closed` with close_reason and
/// retriable. A `DirectClient` runs in this thread, where the capturing
/// subscriber is the default. The connection span is made inside the
/// connect span, so it is the connect span's child.
pub async fn traces_carry_stable_span_names_and_fields<R: Runtime>(rt: R) {
    use tracing_subscriber::layer::SubscriberExt;
    let Some(addr) = env::var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let captured = Arc::new(Mutex::new(Captured::default()));
    let subscriber = tracing_subscriber::registry().with(capture::Capture(captured.clone()));
    // tracing-core caches each callsite's interest when the callsite is
    // first hit, by whichever thread: with one dispatcher registered it asks
    // only that thread's default, so another test's thread (no subscriber)
    // hitting `kafka_conn.response` first would disable it for us. A second
    // registered dispatcher makes it ask every one of them.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let guard = tracing::subscriber::set_default(subscriber);
    let config = ConnectConfig::default().with_node_id(NodeId(5));
    let mut client = match timeout(&rt, LIMIT, connect_direct(rt.clone(), &addr, config)).await {
        Some(Ok(c)) => c,
        other => panic!("{addr}: {:?}", other.map(|r| r.map(|_| ()))),
    };
    let r = client.request(metadata_for("kc-traced")).await.unwrap();
    client.close();
    client.closed().await;
    let socket = client.info().address.to_string();
    drop(client);
    drop(guard);
    let c = captured.lock().unwrap().clone();

    let span = |name: &str| {
        (c.spans.iter())
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no span {name}: {:?}", c.spans))
            .1
            .clone()
    };
    let connect_span = span("kafka_conn.connect");
    assert_eq!(connect_span.get("address"), Some(&addr));
    assert_eq!(connect_span.get("node_id").map(String::as_str), Some("5"));
    let connection_span = span("kafka_conn.connection");
    assert_eq!(connection_span.get("address"), Some(&socket));
    assert_eq!(
        connection_span.get("node_id").map(String::as_str),
        Some("5")
    );

    let event = |name: &str| {
        (c.events.iter())
            .find(|e| e.0 == name)
            .unwrap_or_else(|| panic!("no event {name}: {:#?}", c.events))
            .clone()
    };
    // The connection span is made inside the connect span: its child.
    let (_, fields, spans, span_fields) = event("kafka_conn.response");
    assert_eq!(spans, ["kafka_conn.connect", "kafka_conn.connection"]);
    assert_eq!(span_fields.get("node_id").map(String::as_str), Some("5"));
    let want = [
        ("api_key", "Metadata".to_owned()),
        ("api_version", "4".to_owned()),
        ("correlation_id", r.correlation_id.0.to_string()),
        ("request_bytes", r.request_bytes.to_string()),
        ("response_bytes", r.response_bytes.to_string()),
    ];
    for (k, v) in want {
        assert_eq!(fields.get(k), Some(&v), "{k}: {fields:?}");
    }
    assert!(fields.contains_key("latency_us"), "{fields:?}");
    let (_, fields, spans, _) = event("kafka_conn.closed");
    assert_eq!(spans, ["kafka_conn.connect", "kafka_conn.connection"]);
    assert_eq!(
        fields.get("close_reason").map(String::as_str),
        Some("shutdown")
    );
    assert_eq!(fields.get("retriable").map(String::as_str), Some("false"));
}
