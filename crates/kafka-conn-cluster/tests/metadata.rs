//! The Metadata decoder against someone else's encoder (the `kafka-protocol`
//! crate, generated from Kafka's own message schemas) at every version v0 to
//! v13, against real responses captured from tansu and the librdkafka mock
//! cluster (`tests/data/`), and against every bad input the policy must
//! refuse with the table unchanged.

use std::time::Instant;

use bytes::BytesMut;
use kafka_conn_cluster::fuzz_support::encode_metadata;
use kafka_conn_cluster::{
    decode_metadata, ClusterConfig, ClusterPolicy, Event, Metadata, MetadataError, NodeId,
    Partition,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

fn broker(
    id: i32,
    host: &'static str,
    port: i32,
    rack: Option<&'static str>,
) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(id))
        .with_host(StrBytes::from_static_str(host))
        .with_port(port)
        .with_rack(rack.map(StrBytes::from_static_str))
}

fn partition(index: i32, leader: i32, epoch: i32) -> MetadataResponsePartition {
    MetadataResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(BrokerId(leader))
        .with_leader_epoch(epoch)
        .with_replica_nodes(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
        .with_isr_nodes(vec![BrokerId(1), BrokerId(2)])
        .with_offline_replicas(vec![BrokerId(3)])
}

/// A three-broker response with two topics, one of them unknown, with
/// every field the newest version has (kafka-protocol refuses to encode a
/// field at a version without it: see `at`).
fn response() -> MetadataResponse {
    MetadataResponse::default()
        .with_throttle_time_ms(7)
        .with_brokers(vec![
            broker(1, "kafka-1.example", 9092, Some("rack-a")),
            broker(2, "10.0.0.2", 19092, None),
            broker(3, "::1", 65535, Some("rack-c")),
        ])
        .with_cluster_id(Some(StrBytes::from_static_str("cluster-Xy")))
        .with_controller_id(BrokerId(2))
        .with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("orders"))))
                .with_is_internal(false)
                .with_partitions(vec![
                    partition(0, 1, 5),
                    partition(1, 2, 6),
                    partition(2, -1, 0),
                ])
                .with_topic_authorized_operations(-2147483648),
            MetadataResponseTopic::default()
                .with_error_code(3)
                .with_name(Some(TopicName(StrBytes::from_static_str("missing")))),
        ])
        .with_cluster_authorized_operations(0)
}

/// `r` with the fields `version` does not have set to their defaults.
fn at(r: &MetadataResponse, version: i16) -> MetadataResponse {
    let mut r = r.clone();
    if version < 1 {
        r.controller_id = BrokerId(-1);
        for b in &mut r.brokers {
            b.rack = None;
        }
    }
    if version < 2 {
        r.cluster_id = None;
    }
    if version < 3 {
        r.throttle_time_ms = 0;
    }
    if !(8..=10).contains(&version) {
        r.cluster_authorized_operations = i32::MIN;
    }
    if version < 13 {
        r.error_code = 0;
    }
    for t in &mut r.topics {
        if version < 8 {
            t.topic_authorized_operations = i32::MIN;
        }
        for p in &mut t.partitions {
            if version < 5 {
                p.offline_replicas.clear();
            }
            if version < 7 {
                p.leader_epoch = -1;
            }
        }
    }
    r
}

fn encode(r: &MetadataResponse, version: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    at(r, version)
        .encode(&mut b, version)
        .expect("kafka-protocol encodes it");
    b.to_vec()
}

#[test]
fn every_version_decodes_what_kafka_protocol_encodes() {
    let r = response();
    for version in 0..=13i16 {
        let md = decode_metadata(version, &encode(&r, version))
            .unwrap_or_else(|e| panic!("v{version}: {e}"));
        assert_eq!(md.version, version);
        let brokers: Vec<(i32, &str, u16, Option<&str>)> = md
            .brokers
            .iter()
            .map(|b| (b.node_id, b.host.as_str(), b.port, b.rack.as_deref()))
            .collect();
        let rack = |r: &'static str| (version >= 1).then_some(r);
        assert_eq!(
            brokers,
            [
                (1, "kafka-1.example", 9092, rack("rack-a")),
                (2, "10.0.0.2", 19092, None),
                (3, "::1", 65535, rack("rack-c")),
            ],
            "v{version}"
        );
        assert_eq!(
            md.cluster_id.as_deref(),
            (version >= 2).then_some("cluster-Xy"),
            "v{version}"
        );
        assert_eq!(md.controller, (version >= 1).then_some(2), "v{version}");
        assert_eq!(md.topics.len(), 2);
        let orders = &md.topics[0];
        assert_eq!(orders.name.as_deref(), Some("orders"));
        assert_eq!(orders.error_code, 0);
        let epoch = |e: i32| if version >= 7 { e } else { -1 };
        assert_eq!(
            orders.partitions,
            [
                Partition {
                    error_code: 0,
                    index: 0,
                    leader: 1,
                    leader_epoch: epoch(5)
                },
                Partition {
                    error_code: 0,
                    index: 1,
                    leader: 2,
                    leader_epoch: epoch(6)
                },
                Partition {
                    error_code: 0,
                    index: 2,
                    leader: -1,
                    leader_epoch: epoch(0)
                },
            ],
            "v{version}"
        );
        assert_eq!(md.topics[1].error_code, 3);
        assert_eq!(md.error_code, 0);
    }
}

#[test]
fn v13_top_level_error_code_and_v12_null_topic_names() {
    let r = response().with_error_code(129);
    assert_eq!(
        decode_metadata(13, &encode(&r, 13)).unwrap().error_code,
        129
    );
    let mut r = response();
    r.topics[0].name = None;
    let md = decode_metadata(12, &encode(&r, 12)).unwrap();
    assert_eq!(md.topics[0].name, None);
    // Before v12 a null topic name is malformed.
    let body = encode(&response(), 11);
    let md = decode_metadata(11, &body).unwrap();
    assert_eq!(md.topics[0].name.as_deref(), Some("orders"));
}

#[test]
fn our_fuzz_encoder_agrees_with_kafka_protocol() {
    // The fuzzer builds its Metadata bodies with encode_metadata; check it
    // against the independent encoder so the fuzz oracle is right.
    for version in 0..=13i16 {
        let r = MetadataResponse::default()
            .with_brokers(vec![
                broker(1, "b1", 9092, None),
                broker(4, "b4", 18184, None),
            ])
            .with_cluster_id((version >= 2).then(|| StrBytes::from_static_str("c1")))
            .with_controller_id(BrokerId(if version >= 1 { 4 } else { -1 }))
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t2"))))
                .with_partitions(vec![MetadataResponsePartition::default()
                    .with_partition_index(3)
                    .with_leader_id(BrokerId(1))
                    .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)])
                    .with_offline_replicas(if version >= 5 {
                        vec![BrokerId(1)]
                    } else {
                        vec![]
                    })])
                .with_topic_authorized_operations(if version >= 8 {
                    0
                } else {
                    -2147483648
                })])
            .with_cluster_authorized_operations(if (8..=10).contains(&version) {
                0
            } else {
                -2147483648
            });
        let ours = encode_metadata(
            version,
            &[(1, "b1", 9092), (4, "b4", 18184)],
            Some("c1"),
            4,
            &[(2, vec![(3, 1)])],
            0,
        );
        assert_eq!(ours, encode(&r, version), "v{version}");
    }
}

/// A captured body, decoded.
fn captured(name: &str, version: i16) -> Metadata {
    let path = format!(
        "{}/tests/data/{name}-v{version}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    let body = std::fs::read(&path).expect("captured body");
    decode_metadata(version, &body).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn real_responses_from_tansu() {
    for version in [1, 12] {
        let md = captured("tansu", version);
        assert_eq!(md.brokers.len(), 1);
        let b = &md.brokers[0];
        assert_eq!(
            (b.node_id, b.host.as_str(), b.port),
            (111, "127.0.0.1", 39092)
        );
        assert_eq!(md.controller, Some(111));
        let topic = md
            .topics
            .iter()
            .find(|t| t.name.as_deref() == Some("kc-cluster-capture"))
            .expect("the topic asked for");
        assert!(!topic.partitions.is_empty());
        assert!(topic.partitions.iter().all(|p| p.leader == 111));
        if version >= 2 {
            assert_eq!(md.cluster_id.as_deref(), Some("kafka-conn-tansu-plaintext"));
        }
    }
}

#[test]
fn real_responses_from_the_librdkafka_mock_cluster() {
    // Its v12 body carries one byte after the last field (a quirk of the
    // mock; Kafka's Java client ignores such bytes, and so do we).
    for version in [1, 12] {
        let md = captured("mock", version);
        let ids: Vec<i32> = md.brokers.iter().map(|b| b.node_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert!(md
            .brokers
            .iter()
            .all(|b| b.host == "127.0.0.1" && b.port > 1024));
        let topic = &md.topics[0];
        assert_eq!(topic.name.as_deref(), Some("kc-cluster-capture"));
        assert!(topic.partitions.iter().all(|p| (1..=3).contains(&p.leader)));
        if version >= 2 {
            let id = md.cluster_id.as_deref().unwrap();
            assert!(id.starts_with("mockCluster"), "{id}");
        }
        // The policy takes it: three nodes, leaders known.
        let now = Instant::now();
        let mut p = ClusterPolicy::new(["127.0.0.1:1"], ClusterConfig::new(), now).unwrap();
        let path = format!(
            "{}/tests/data/mock-v{version}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        p.handle_metadata(version, &std::fs::read(path).unwrap(), now)
            .unwrap();
        let table: Vec<NodeId> = p.nodes().map(|n| n.id).collect();
        assert_eq!(table, [NodeId(1), NodeId(2), NodeId(3)]);
        let leader = p.leader("kc-cluster-capture", 0).unwrap();
        assert!((1..=3).contains(&leader.0));
    }
}

#[test]
fn truncated_bodies_are_refused_at_every_length() {
    for version in 0..=13i16 {
        let body = encode(&response(), version);
        for len in 0..body.len() {
            assert!(
                matches!(
                    decode_metadata(version, &body[..len]),
                    Err(MetadataError::Decode { .. })
                ),
                "v{version} cut at {len} decoded"
            );
        }
        // Bytes after the end are ignored (see the mock cluster's responses).
        let mut long = body.clone();
        long.push(0);
        assert_eq!(
            decode_metadata(version, &long),
            decode_metadata(version, &body)
        );
    }
    assert_eq!(
        decode_metadata(14, &[]),
        Err(MetadataError::UnsupportedVersion(14))
    );
    assert_eq!(
        decode_metadata(-1, &[]),
        Err(MetadataError::UnsupportedVersion(-1))
    );
}

#[test]
fn a_claimed_count_allocates_nothing_before_the_bytes_are_there() {
    // v1: brokers count i32::MAX with 4 bytes present.
    let body = [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    assert!(matches!(
        decode_metadata(1, &body),
        Err(MetadataError::Decode { .. })
    ));
}

/// A policy that has merged `response()` at v12.
fn policy_with_table() -> (ClusterPolicy, Instant) {
    let now = Instant::now();
    let mut p = ClusterPolicy::new(["seed:9092"], ClusterConfig::new().with_seed(1), now).unwrap();
    p.handle_metadata(12, &encode(&response(), 12), now)
        .unwrap();
    while p.poll_event().is_some() {}
    (p, now)
}

fn table(p: &ClusterPolicy) -> Vec<(NodeId, String)> {
    p.nodes().map(|n| (n.id, n.address.to_string())).collect()
}

#[test]
fn bad_metadata_is_a_typed_error_and_leaves_the_table_unchanged() {
    let cases: Vec<(MetadataResponse, MetadataError)> = vec![
        (
            response().with_brokers(vec![broker(1, "a", 1, None), broker(1, "b", 2, None)]),
            MetadataError::DuplicateNode(1),
        ),
        (
            response().with_brokers(vec![broker(1, "a", -9092, None)]),
            MetadataError::BadPort {
                node: 1,
                port: -9092,
            },
        ),
        (
            response().with_brokers(vec![broker(1, "a", 0, None)]),
            MetadataError::BadPort { node: 1, port: 0 },
        ),
        (
            response().with_brokers(vec![broker(1, "a", 65536, None)]),
            MetadataError::BadPort {
                node: 1,
                port: 65536,
            },
        ),
        (
            response().with_brokers(vec![broker(1, "", 9092, None)]),
            MetadataError::BadHost {
                node: 1,
                host: String::new(),
                why: "empty host",
            },
        ),
        (
            response().with_brokers(vec![broker(-1, "a", 9092, None)]),
            MetadataError::NegativeNodeId(-1),
        ),
        (response().with_brokers(vec![]), MetadataError::NoBrokers),
        (
            response().with_error_code(41),
            MetadataError::TopLevelError { code: 41 },
        ),
    ];
    for (r, want) in cases {
        let (mut p, now) = policy_with_table();
        let before = table(&p);
        let version = if matches!(want, MetadataError::TopLevelError { .. }) {
            13
        } else {
            9
        };
        assert_eq!(
            p.handle_metadata(version, &encode(&r, version), now),
            Err(want.clone())
        );
        assert_eq!(table(&p), before, "{want}");
        // Operators read these.
        assert!(!want.to_string().is_empty());
    }
    let (mut p, now) = policy_with_table();
    let before = table(&p);
    let body = encode(&response(), 12);
    assert!(matches!(
        p.handle_metadata(12, &body[..body.len() / 2], now),
        Err(MetadataError::Decode { version: 12, .. })
    ));
    assert_eq!(table(&p), before);
}

#[test]
fn error_texts_say_what_is_wrong() {
    assert_eq!(
        MetadataError::BadPort { node: 3, port: 0 }.to_string(),
        "the Metadata response gives node 3 the port 0 (1 to 65535 expected)"
    );
    assert_eq!(
        MetadataError::TopLevelError { code: 129 }.to_string(),
        "the Metadata response carries error 129 REBOOTSTRAP_REQUIRED"
    );
    assert_eq!(
        MetadataError::DuplicateNode(2).to_string(),
        "the Metadata response lists node 2 twice"
    );
}

#[test]
fn another_clusters_metadata_is_reported_and_not_merged() {
    let (mut p, now) = policy_with_table();
    let before = table(&p);
    let other = response()
        .with_cluster_id(Some(StrBytes::from_static_str("other")))
        .with_brokers(vec![broker(9, "elsewhere", 9092, None)]);
    let err = p.handle_metadata(12, &encode(&other, 12), now).unwrap_err();
    assert_eq!(
        err,
        MetadataError::ClusterIdMismatch {
            expected: Some("cluster-Xy".into()),
            got: Some("other".into())
        }
    );
    assert_eq!(table(&p), before);
    assert_eq!(
        p.poll_event(),
        Some(Event::ClusterIdChanged {
            expected: Some("cluster-Xy".into()),
            got: Some("other".into())
        })
    );
    // The application may decide to follow the new cluster.
    p.accept_cluster_id(Some("other".into()));
    p.handle_metadata(12, &encode(&other, 12), now).unwrap();
    assert_eq!(table(&p), [(NodeId(9), "elsewhere:9092".to_owned())]);
    assert_eq!(p.cluster_id(), Some("other"));
}

#[test]
fn leaders_and_controller_come_from_the_last_metadata() {
    let (p, _) = policy_with_table();
    assert_eq!(p.controller(), Some(NodeId(2)));
    assert_eq!(p.leader("orders", 0), Some(NodeId(1)));
    assert_eq!(p.leader("orders", 1), Some(NodeId(2)));
    assert_eq!(p.leader("orders", 2), None, "no leader right now");
    assert_eq!(p.leader("orders", 3), None, "no such partition");
    assert_eq!(p.leader("missing", 0), None, "an unknown topic");
    assert_eq!(p.cluster_id(), Some("cluster-Xy"));
    let racks: Vec<Option<&str>> = p.nodes().map(|n| n.rack).collect();
    assert_eq!(racks, [Some("rack-a"), None, Some("rack-c")]);
}
