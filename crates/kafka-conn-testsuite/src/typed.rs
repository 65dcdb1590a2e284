//! Typed requests (feature `kafka-protocol`) against the real brokers:
//! Metadata, CreateTopics (tansu), Produce and Fetch at the negotiated
//! versions, with an independent client (confluent-kafka, i.e. librdkafka,
//! from the venv `scripts/broker-up` builds) reading what kafka-conn
//! produced and producing what kafka-conn fetches, byte for byte.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use kafka_conn_driver::core::typed::kafka_protocol::indexmap::IndexMap;
use kafka_conn_driver::core::typed::kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_conn_driver::core::typed::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ReplicaState,
};
use kafka_conn_driver::core::typed::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_conn_driver::core::typed::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use kafka_conn_driver::core::typed::kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, MetadataRequest, MetadataResponse, ProduceRequest,
    TopicName,
};
use kafka_conn_driver::core::typed::kafka_protocol::protocol::{Message, StrBytes};
use kafka_conn_driver::core::typed::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_conn_driver::core::{ApiKey, SendError};
use kafka_conn_driver::{connect, Client, ConnectConfig, RequestFailure, Runtime, TypedFailure};

use uuid::Uuid;

use crate::env::Plaintext;
use crate::{connected, env, sleep, timeout};

const LIMIT: Duration = Duration::from_secs(30);

/// One record as both clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Headers in order (distinct names: kafka-protocol keeps them in a map).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Records with awkward bytes: non-UTF-8, empty, null key, null header value.
fn sample_records(tag: &str) -> Vec<PeerRecord> {
    vec![
        PeerRecord {
            key: Some(format!("{tag}-k0").into_bytes()),
            value: Some(vec![0, 1, 2, 0xff, 0xfe, b'\n', 0x80]),
            headers: vec![
                ("h1".to_owned(), Some(vec![0xde, 0xad, 0xbe, 0xef])),
                ("h2".to_owned(), None),
            ],
        },
        PeerRecord {
            key: None,
            value: Some(format!("{tag} value with ünïcode").into_bytes()),
            headers: vec![],
        },
        PeerRecord {
            key: Some(vec![]),
            value: Some(vec![]),
            headers: vec![("empty".to_owned(), Some(vec![]))],
        },
        PeerRecord {
            key: Some(vec![7; 300]),
            value: Some((0..=255u8).cycle().take(5000).collect()),
            headers: vec![("bin".to_owned(), Some((0..=255u8).collect()))],
        },
    ]
}

fn unique_topic(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The venv's Python with confluent-kafka (see `scripts/broker-up`), or
/// `None` (skipped, or failed with `KAFKA_CONN_REQUIRE_BROKERS=1`).
fn peer_python() -> Option<PathBuf> {
    let cache = std::env::var_os("KAFKA_CONN_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kafka-conn")))?;
    let python = cache.join("venv/bin/python");
    if python.exists() {
        return Some(python);
    }
    if std::env::var("KAFKA_CONN_REQUIRE_BROKERS").as_deref() == Ok("1") {
        panic!(
            "{} is missing but KAFKA_CONN_REQUIRE_BROKERS=1: run scripts/broker-up",
            python.display()
        );
    }
    eprintln!(
        "SKIPPED: {} is missing (run scripts/broker-up)",
        python.display()
    );
    None
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_json(records: &[PeerRecord]) -> String {
    let opt = |b: &Option<Vec<u8>>| {
        b.as_deref()
            .map_or(serde_json::Value::Null, |b| hex(b).into())
    };
    let v: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "key": opt(&r.key),
                "value": opt(&r.value),
                "headers": r.headers.iter().map(|(k, v)| serde_json::json!([k, opt(v)])).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_string(&v).unwrap()
}

fn from_json(s: &str) -> Vec<PeerRecord> {
    let v: Vec<serde_json::Value> = serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"));
    let opt = |v: &serde_json::Value| v.as_str().map(unhex);
    v.iter()
        .map(|r| PeerRecord {
            key: opt(&r["key"]),
            value: opt(&r["value"]),
            headers: r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h[0].as_str().unwrap().to_owned(), opt(&h[1])))
                .collect(),
        })
        .collect()
}

/// Runs the peer script on its own thread (it blocks) and returns stdout.
async fn run_peer(python: PathBuf, args: Vec<String>, stdin: String) -> String {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/peer.py");
        let out = (|| {
            let mut child = Command::new(&python)
                .arg(script)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            use std::io::Write;
            child.stdin.take().unwrap().write_all(stdin.as_bytes())?;
            child.wait_with_output()
        })();
        let _ = tx.send(out);
    });
    let out = rx.await.expect("peer thread").expect("run peer.py");
    assert!(
        out.status.success(),
        "peer.py {:?} failed: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn must_connect<R: Runtime>(rt: &R, addr: &str) -> Client {
    let connecting = connect(rt.clone(), addr, ConnectConfig::default());
    connected(rt, addr, LIMIT, connecting).await
}

/// Asserts that Metadata `pinned` (one above the broker's `broker_max`)
/// was refused as unsupported, before anything was sent.
fn assert_unsupported_metadata(err: &TypedFailure, pinned: i16, broker_max: i16) {
    assert_eq!(
        err.send_error(),
        Some(&SendError::UnsupportedVersion {
            api_key: ApiKey::METADATA,
            version: pinned,
            broker_range: Some((0, broker_max)),
        }),
        "{err}"
    );
}

/// Creates `topic` with `partitions` partitions (tansu, noida-db), checks
/// it worked and returns the topic id the broker gave it.
async fn create_topic(client: &Client, topic: &str, partitions: i32) -> Uuid {
    let created = client
        .send_typed(create_topics(topic, partitions))
        .await
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
    created.topics[0].topic_id
}

/// A CreateTopics request for one topic, replication factor 1.
fn create_topics(topic: &str, partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// Metadata for `topic` until partition 0 has a leader (the mock cluster
/// creates topics on first sight, tansu right away).
async fn metadata_for<R: Runtime>(rt: &R, client: &Client, topic: &str) -> MetadataResponse {
    for _ in 0..50 {
        let m = client
            .send_typed(
                MetadataRequest::default()
                    .with_topics(Some(vec![
                        MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
                    ]))
                    .with_allow_auto_topic_creation(true),
            )
            .await
            .unwrap_or_else(|e| panic!("Metadata: {e}"));
        let ready = m.topics.iter().any(|t| {
            t.error_code == 0
                && t.partitions
                    .iter()
                    .any(|p| p.partition_index == 0 && p.leader_id.0 >= 0)
        });
        if ready {
            return m;
        }
        sleep(rt, Duration::from_millis(100)).await;
    }
    panic!("{topic}: no leader for partition 0");
}

/// A connection to the leader of `topic`'s partition 0, and the topic's id.
async fn leader_of<R: Runtime>(rt: &R, bootstrap: &str, topic: &str) -> (Client, Uuid) {
    let client = must_connect(rt, bootstrap).await;
    let m = metadata_for(rt, &client, topic).await;
    let t = &m.topics[0];
    let leader = t
        .partitions
        .iter()
        .find(|p| p.partition_index == 0)
        .unwrap()
        .leader_id;
    let broker = m
        .brokers
        .iter()
        .find(|b| b.node_id == leader)
        .expect("leader listed");
    let addr = format!("{}:{}", broker.host.as_str(), broker.port);
    if addr == bootstrap {
        return (client, t.topic_id);
    }
    client.close();
    (must_connect(rt, &addr).await, t.topic_id)
}

/// Produces `records` to partition 0 with kafka-conn at the negotiated version.
async fn produce_with_kafka_conn(
    client: &Client,
    topic: &str,
    id: Uuid,
    records: &[PeerRecord],
) -> i64 {
    produce_with_acks(client, topic, id, records, -1)
        .await
        .expect("acks=-1 gives an offset")
}

/// Produces `records` as one batch to partition 0 with `acks`; the base
/// offset, or `None` for `acks=0` (no response at all).
async fn produce_with_acks(
    client: &Client,
    topic: &str,
    id: Uuid,
    records: &[PeerRecord],
    acks: i16,
) -> Option<i64> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let batch: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol puts consecutive records in one batch while
            // `offset - sequence` stays the same, and writes the first one's
            // sequence as the batch's base sequence: -1 without idempotence.
            // Kafka takes exactly one batch per partition in a Produce request.
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &batch,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    let version = client
        .negotiate(
            ApiKey::PRODUCE,
            ProduceRequest::VERSIONS.min..=ProduceRequest::VERSIONS.max,
        )
        .unwrap();
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_topic_id(id)
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(buf.freeze()))])]);
    if acks == 0 {
        // Kafka sends no response at all to acks=0: the request takes no
        // in-flight slot and the call returns once the connection took it.
        let raw = kafka_conn_driver::core::typed::encode(&request, version).unwrap();
        client
            .send_without_response(raw)
            .await
            .unwrap_or_else(|e| panic!("Produce v{version} acks=0: {e}"));
        return None;
    }
    let response = client
        .send_typed(request)
        .await
        .unwrap_or_else(|e| panic!("Produce v{version}: {e}"));
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "Produce v{version}: {:?}", p);
    eprintln!(
        "produced {} records with Produce v{version} at offset {}",
        records.len(),
        p.base_offset
    );
    Some(p.base_offset)
}

/// A Fetch of partition 0 of `topic` (by name up to v12, by `id` from v13)
/// from `offset`.
fn fetch_request(topic: &str, id: Uuid, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(-1)))
        .with_max_wait_ms(200)
        .with_min_bytes(1)
        .with_max_bytes(4 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_topic_id(id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(4 << 20)])])
}

/// Fetches partition 0 from `offset` with kafka-conn, at the highest Fetch
/// version both sides have up to `max_version`, until `count` records came.
async fn fetch_with_kafka_conn<R: Runtime>(
    rt: &R,
    client: &Client,
    (topic, id): (&str, Uuid),
    offset: i64,
    count: usize,
    max_version: i16,
) -> Vec<PeerRecord> {
    let version = client
        .negotiate(ApiKey::FETCH, FetchRequest::VERSIONS.min..=max_version)
        .unwrap();
    let mut out = Vec::new();
    let mut next = offset;
    for _ in 0..40 {
        let response = client
            .send_typed_at(fetch_request(topic, id, next), version)
            .await
            .unwrap_or_else(|e| panic!("Fetch v{version}: {e}"));
        assert_eq!(response.error_code, 0, "Fetch v{version}");
        let p = &response.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{version} partition: {p:?}");
        if let Some(mut records) = p.records.clone() {
            for set in RecordBatchDecoder::decode_all(&mut records).expect("record batches decode")
            {
                for r in set.records {
                    if r.control || r.offset < next {
                        continue;
                    }
                    next = r.offset + 1;
                    out.push(PeerRecord {
                        key: r.key.map(|b| b.to_vec()),
                        value: r.value.map(|b| b.to_vec()),
                        headers: r
                            .headers
                            .into_iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.map(|b| b.to_vec())))
                            .collect(),
                    });
                }
            }
        }
        if out.len() >= count {
            eprintln!("fetched {} records with Fetch v{version}", out.len());
            return out;
        }
        sleep(rt, Duration::from_millis(100)).await;
    }
    panic!(
        "Fetch v{version}: only {} of {count} records arrived: {out:?}",
        out.len()
    );
}

/// Both directions through `bootstrap`, with the independent client;
/// kafka-conn fetches with Fetch v`max_fetch` at most.
async fn round_trip<R: Runtime>(rt: &R, bootstrap: &str, topic: &str, max_fetch: i16) {
    let Some(python) = peer_python() else {
        return;
    };
    let (client, id) = leader_of(rt, bootstrap, topic).await;

    // kafka-conn produces, confluent-kafka reads.
    let ours = sample_records("kafka-conn");
    let base = produce_with_kafka_conn(&client, topic, id, &ours).await;
    assert!(base >= 0);
    let read = run_peer(
        python.clone(),
        vec![
            "consume".into(),
            bootstrap.into(),
            topic.into(),
            ours.len().to_string(),
        ],
        String::new(),
    )
    .await;
    assert_eq!(
        from_json(&read),
        ours,
        "confluent-kafka read back something else"
    );

    // confluent-kafka produces, kafka-conn fetches.
    let theirs = sample_records("librdkafka");
    let offsets: Vec<i64> = serde_json::from_str(
        &run_peer(
            python,
            vec!["produce".into(), bootstrap.into(), topic.into()],
            to_json(&theirs),
        )
        .await,
    )
    .unwrap();
    let first = *offsets.iter().min().unwrap();
    assert_eq!(
        first,
        base + ours.len() as i64,
        "our 4 records are one batch of 4"
    );
    let fetched =
        fetch_with_kafka_conn(rt, &client, (topic, id), first, theirs.len(), max_fetch).await;
    assert_eq!(fetched, theirs, "kafka-conn fetched something else");
    client.close();
}

/// Metadata and CreateTopics at the negotiated versions.
pub async fn typed_metadata_and_create_topics<R: Runtime>(rt: R, broker: Plaintext) {
    let addr = broker.addr;
    let client = must_connect(&rt, &addr).await;
    let topic = unique_topic("kc-typed-create");
    let v = client
        .negotiate(
            ApiKey::CREATE_TOPICS,
            CreateTopicsRequest::VERSIONS.min..=CreateTopicsRequest::VERSIONS.max,
        )
        .unwrap();
    let created = client
        .send_typed(create_topics(&topic, 3))
        .await
        .unwrap_or_else(|e| panic!("CreateTopics v{v}: {e}"));
    assert_eq!(created.topics.len(), 1);
    let t = &created.topics[0];
    assert_eq!(
        (t.name.0.as_str(), t.error_code),
        (topic.as_str(), 0),
        "CreateTopics v{v}: {t:?}"
    );

    // Creating it again is the broker's TOPIC_ALREADY_EXISTS (36), decoded.
    let again = client.send_typed(create_topics(&topic, 3)).await.unwrap();
    assert_eq!(again.topics[0].error_code, 36);

    let m = metadata_for(&rt, &client, &topic).await;
    let mv = client.negotiate(
        ApiKey::METADATA,
        MetadataRequest::VERSIONS.min..=MetadataRequest::VERSIONS.max,
    );
    eprintln!("CreateTopics v{v}, Metadata {mv:?}");
    assert!(!m.brokers.is_empty());
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic.as_str()));
    let t = t.unwrap_or_else(|| panic!("{topic} not in {m:?}"));
    assert_eq!(t.partitions.len(), 3);
    // All topics: ours is among them.
    let all = client
        .send_typed(MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    assert!(all
        .topics
        .iter()
        .any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic.as_str())));
    client.close();
}

/// Produce + Fetch on tansu (topic made with CreateTopics), both directions
/// checked by confluent-kafka.
pub async fn typed_produce_fetch_round_trip_tansu<R: Runtime>(rt: R) {
    if let Some(broker) = Plaintext::tansu() {
        produce_fetch_round_trip_created_topic(&rt, broker.addr).await;
    }
}

/// The same on noida-db, where kafka-conn fetches with Fetch v12.
///
/// A noida-db 0.2.3 bug, asserted here so that this test says when it is
/// fixed: it has no topic ids (CreateTopics v7 and Metadata v12 give the
/// nil id) yet offers Fetch v13 and up, which name topics by id only, and
/// answers a Fetch v13 for the nil id with UNKNOWN_TOPIC_OR_PARTITION (3).
/// Apache Kafka 3.8, which it follows, gives every topic an id and serves
/// Fetch v13+ by it. A client that takes the highest common Fetch version
/// cannot read from noida-db; Fetch v12 (topics by name) works.
pub async fn typed_produce_fetch_round_trip_noida<R: Runtime>(rt: R) {
    let Some(broker) = Plaintext::noida() else {
        return;
    };
    let topic = unique_topic("kc-typed-rt");
    let client = must_connect(&rt, &broker.addr).await;
    let created = create_topic(&client, &topic, 1).await;
    let (_, fetch_max) = client.api_versions().get(ApiKey::FETCH).unwrap();
    assert!(fetch_max >= 13, "noida-db offers Fetch v0-v{fetch_max}");
    let m = metadata_for(&rt, &client, &topic).await;
    assert_eq!(
        (created, m.topics[0].topic_id),
        (Uuid::nil(), Uuid::nil()),
        "noida-db gives topic ids now: fetch at the negotiated version"
    );
    let r = client
        .send_typed(fetch_request(&topic, Uuid::nil(), 0))
        .await
        .unwrap();
    assert_eq!(r.responses[0].partitions[0].error_code, 3, "{r:?}");
    client.close();
    round_trip(&rt, &broker.addr, &topic, 12).await;
}

async fn produce_fetch_round_trip_created_topic<R: Runtime>(rt: &R, addr: String) {
    let topic = unique_topic("kc-typed-rt");
    let client = must_connect(rt, &addr).await;
    create_topic(&client, &topic, 1).await;
    client.close();
    round_trip(rt, &addr, &topic, FetchRequest::VERSIONS.max).await;
}

/// Produce + Fetch on the librdkafka mock cluster (topics auto-created,
/// older protocol versions), both directions checked by confluent-kafka.
pub async fn typed_produce_fetch_round_trip_mock<R: Runtime>(rt: R) {
    let Some(addrs) = env::var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let first = addrs.split(',').next().unwrap().to_owned();
    round_trip(
        &rt,
        &first,
        &unique_topic("kc-typed-mock"),
        FetchRequest::VERSIONS.max,
    )
    .await;
}

/// A pinned version the broker does not offer fails with the core's
/// `UnsupportedVersion` before anything is sent; the connection lives on.
pub async fn typed_pinned_unsupported_version_is_refused_before_sending<R: Runtime>(
    rt: R,
    broker: Plaintext,
) {
    let addr = broker.addr;
    let client = must_connect(&rt, &addr).await;
    let (_, broker_max) = client.api_versions().get(ApiKey::METADATA).unwrap();
    assert!(
        broker_max < MetadataRequest::VERSIONS.max,
        "this test needs a broker below kafka-protocol's Metadata v{}",
        MetadataRequest::VERSIONS.max
    );
    let pinned = broker_max + 1;
    // The stats were published before `connect` returned.
    let sent_before = client.stats().requests_sent;
    let err = client
        .send_typed_at(MetadataRequest::default(), pinned)
        .await
        .unwrap_err();
    // Nothing reached the socket (the task is idle: its stats are current).
    assert_eq!(client.stats().requests_sent, sent_before);
    assert_unsupported_metadata(&err, pinned, broker_max);
    eprintln!("{err}");
    // Still usable at a version it offers.
    let m = client
        .send_typed_at(MetadataRequest::default().with_topics(None), broker_max)
        .await
        .unwrap();
    assert!(!m.brokers.is_empty());
    client.close();
}

/// `acks=0` Produce through `Client::send_without_response`. Apache Kafka
/// never answers such a request, but all three test brokers do (tansu
/// 0.6.0, noida-db 0.2.3 and the librdkafka 2.16 mock cluster; noida-db
/// with its Produce v9): the answer has no request waiting for
/// it, and the connection closes with a protocol violation naming it (as
/// the Java client would), rather than hanging or handing a later caller
/// the wrong response. `Client::send` refuses an `acks=0` request outright.
/// (That the core keeps no slot for `acks=0` requests and stays in sync with
/// a broker that answers nothing is shown with the simulated broker in
/// `crates/kafka-conn-core/tests/connection.rs`.)
pub async fn typed_acks_zero_answered_by_the_test_brokers_is_unsolicited<R: Runtime>(rt: R) {
    let (Some(plain), Some(mock)) = (
        env::var("KAFKA_PLAINTEXT_BOOTSTRAP"),
        env::var("KAFKA_MOCK_BOOTSTRAP"),
    ) else {
        return;
    };
    let tansu_topic = unique_topic("kc-acks0-tansu");
    let client = must_connect(&rt, &plain).await;
    create_topic(&client, &tansu_topic, 1).await;
    let raw =
        kafka_conn_driver::core::Request::new(ApiKey::PRODUCE, 3, Bytes::new()).without_response();
    assert!(matches!(
        client.send(raw).await,
        Err(RequestFailure::NoResponseExpected)
    ));
    client.close();
    let mock = mock.split(',').next().unwrap().to_owned();
    let mut cases = vec![(plain, tansu_topic), (mock, unique_topic("kc-acks0-mock"))];
    if let Some(noida) = Plaintext::noida() {
        let topic = unique_topic("kc-acks0-noida");
        let client = must_connect(&rt, &noida.addr).await;
        create_topic(&client, &topic, 1).await;
        client.close();
        cases.push((noida.addr, topic));
    }
    for (addr, topic) in cases {
        let (client, id) = leader_of(&rt, &addr, &topic).await;
        let accepted = produce_with_acks(&client, &topic, id, &sample_records("acks0"), 0).await;
        assert_eq!(accepted, None);
        assert_eq!(client.in_flight(), 0, "acks=0 takes no in-flight slot");
        let reason = timeout(&rt, Duration::from_secs(15), client.closed())
            .await
            .expect("the broker's answer closes the connection");
        assert!(
            matches!(
                reason,
                kafka_conn_driver::core::CloseReason::Protocol(
                    kafka_conn_driver::core::ProtocolViolation::Unsolicited(_)
                )
            ),
            "{addr}: {reason}"
        );
    }
}

/// The same typed requests on a `DirectClient`: CreateTopics with
/// the broker's answer decoded (and TOPIC_ALREADY_EXISTS the second time),
/// Metadata for the new topic until it has leaders, and a pinned version
/// the broker does not offer refused before anything is sent.
pub async fn direct_typed_requests<R: Runtime>(rt: R, broker: Plaintext) {
    let addr = broker.addr;
    let connecting = kafka_conn_driver::connect_direct(rt.clone(), &addr, ConnectConfig::default());
    let mut client = connected(&rt, &addr, LIMIT, connecting).await;
    let topic = unique_topic("kc-typed-direct");
    let created = client
        .request_typed(create_topics(&topic, 3))
        .await
        .unwrap_or_else(|e| panic!("CreateTopics: {e}"));
    assert_eq!(
        (
            created.topics[0].name.0.as_str(),
            created.topics[0].error_code
        ),
        (topic.as_str(), 0)
    );
    let again = client
        .request_typed(create_topics(&topic, 3))
        .await
        .unwrap();
    assert_eq!(again.topics[0].error_code, 36);
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(&topic))),
    ]));
    let mut partitions = 0;
    for _ in 0..50 {
        let m = client.request_typed(request.clone()).await.unwrap();
        let t = &m.topics[0];
        if t.error_code == 0 && t.partitions.iter().all(|p| p.leader_id.0 >= 0) {
            partitions = t.partitions.len();
            break;
        }
        sleep(&rt, Duration::from_millis(100)).await;
    }
    assert_eq!(partitions, 3, "{topic}: no leaders after 5 s");

    let (_, broker_max) = client.api_versions().get(ApiKey::METADATA).unwrap();
    assert!(broker_max < MetadataRequest::VERSIONS.max);
    let sent_before = client.stats().requests_sent;
    let err = client
        .request_typed_at(MetadataRequest::default(), broker_max + 1)
        .await
        .unwrap_err();
    assert_eq!(client.stats().requests_sent, sent_before);
    assert_unsupported_metadata(&err, broker_max + 1, broker_max);
    client.close();
    assert_eq!(
        client.closed().await,
        kafka_conn_driver::core::CloseReason::Shutdown
    );
}
