//! The 1 MiB Produce workload (one request body, encoded once with
//! rskafka's own protocol types so that every client sends the same bytes;
//! the response check; the lookup of the partition's leader, which the
//! request must go to) and the topics the Metadata workload describes: the
//! broker-side setup both need, through one rskafka `Messenger` (the Fetch
//! workload's, in `fetch.rs`, uses it too).

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use rskafka::messenger::Messenger;
use rskafka::protocol::api_key::ApiKey as RsKey;
use rskafka::protocol::api_version::{ApiVersion, ApiVersionRange};
use rskafka::protocol::messages::{
    ApiVersionsRequest, CreateTopicRequest, CreateTopicsRequest, MetadataRequest,
    MetadataRequestTopic, ProduceRequest, ProduceRequestPartitionData, ProduceRequestTopicData,
    ProduceResponse, ReadVersionedType, WriteVersionedType,
};
use rskafka::protocol::primitives::{Boolean, Int16, Int32, NullableString, Records, String_};
use rskafka::protocol::record::{
    ControlBatchOrRecords, Record, RecordBatch, RecordBatchCompression, RecordBatchTimestampType,
};

/// The topic every client produces to (partition 0).
pub(crate) const TOPIC: &str = "kc-bench-produce-1mib";

/// Produce v3: the first with record batches (KIP-98), and the lowest
/// version rskafka sends.
pub(crate) const VERSION: i16 = 3;

/// The record's value: the request body comes to just under 1 MiB, so that a
/// broker with Kafka's default `message.max.bytes` (1 MiB + 12) accepts it.
const VALUE_BYTES: usize = (1 << 20) - 256;

/// The typed request (what rskafka's API takes and encodes on every send).
pub(crate) fn request() -> ProduceRequest {
    let record = Record {
        timestamp_delta: 0,
        offset_delta: 0,
        key: None,
        value: Some(vec![b'k'; VALUE_BYTES]),
        headers: vec![],
    };
    // A fixed timestamp: every request carries the same batch (the broker
    // assigns the offsets).
    let timestamp = 1_764_000_000_000;
    let batch = RecordBatch {
        base_offset: 0,
        // -1: no leader epoch known (what producers send).
        partition_leader_epoch: -1,
        last_offset_delta: 0,
        first_timestamp: timestamp,
        max_timestamp: timestamp,
        // -1: not idempotent, not transactional.
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records: ControlBatchOrRecords::Records(vec![record]),
        compression: RecordBatchCompression::NoCompression,
        is_transactional: false,
        timestamp_type: RecordBatchTimestampType::CreateTime,
    };
    ProduceRequest {
        transactional_id: NullableString(None),
        acks: Int16(1),
        timeout_ms: Int32(10_000),
        topic_data: vec![ProduceRequestTopicData {
            name: String_(TOPIC.to_owned()),
            partition_data: vec![ProduceRequestPartitionData {
                index: Int32(0),
                records: Records(vec![batch]),
            }],
        }],
    }
}

/// The encoded request body, built once per process (clients share it as
/// `Bytes`; kafka-conn and the raw loop never copy it).
pub(crate) fn body() -> Bytes {
    static BODY: OnceLock<Bytes> = OnceLock::new();
    BODY.get_or_init(|| encode(request(), VERSION)).clone()
}

/// `request` encoded at `version` with rskafka's own encoder: the body
/// every client of a workload sends (the Produce and Fetch workloads).
pub(crate) fn encode(request: impl WriteVersionedType<Vec<u8>>, version: i16) -> Bytes {
    let mut out = Vec::new();
    request
        .write_versioned(&mut out, ApiVersion(Int16(version)))
        .unwrap_or_else(|e| panic!("a bench request does not encode at v{version}: {e}"));
    Bytes::from(out)
}

/// Checks a Produce v3 response body (decoded with rskafka's own types):
/// one topic, one partition, no error.
pub(crate) fn check(body: &[u8]) -> Result<(), String> {
    let r = ProduceResponse::read_versioned(&mut Cursor::new(body), ApiVersion(Int16(VERSION)))
        .map_err(|e| format!("undecodable Produce response: {e}"))?;
    match &r.responses[..] {
        [t] if t.name.0 == TOPIC => match &t.partition_responses[..] {
            [p] => match &p.error {
                None => Ok(()),
                Some(e) => Err(format!("Produce error: {e:?}")),
            },
            _ => Err(format!("unexpected Produce response: {r:?}")),
        },
        _ => Err(format!("unexpected Produce response: {r:?}")),
    }
}

/// A setup connection (rskafka's `Messenger`, versions synced) on a
/// current-thread runtime, for `f`.
pub(crate) fn with_messenger<T>(
    bootstrap: &str,
    f: impl AsyncFnOnce(&mut Messenger<tokio::net::TcpStream>) -> Result<T, String>,
) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(bootstrap)
            .await
            .map_err(|e| format!("{bootstrap}: {e}"))?;
        let mut m = Messenger::new(tcp, 100 << 20, Arc::from("kc-bench-setup"));
        m.sync_versions().await.map_err(|e| e.to_string())?;
        // `override_version_ranges` replaces every range `sync_versions`
        // found (a request for an API left out fails with "Cannot find
        // matching version"): ask the broker's ranges again and pin
        // Metadata to v4 on top of them.
        let versions = m
            .request(&ApiVersionsRequest {
                client_software_name: None,
                client_software_version: None,
                tagged_fields: None,
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut ranges: HashMap<RsKey, ApiVersionRange> = versions
            .api_keys
            .into_iter()
            .map(|k| {
                (
                    k.api_key,
                    ApiVersionRange::new(k.min_version, k.max_version),
                )
            })
            .collect();
        ranges.insert(
            RsKey::Metadata,
            ApiVersionRange::new(ApiVersion(Int16(4)), ApiVersion(Int16(4))),
        );
        m.override_version_ranges(ranges);
        f(&mut m).await
    })
}

/// Creates `names` (one partition each) where they do not exist yet:
/// CreateTopics where the broker offers it (tansu), then a Metadata request
/// that auto-creates them (the mock cluster). Returns the partition leaders
/// by topic, as `host:port`.
async fn create_topics(
    m: &mut Messenger<tokio::net::TcpStream>,
    names: &[String],
) -> Result<HashMap<String, String>, String> {
    let create = CreateTopicsRequest {
        topics: names
            .iter()
            .map(|name| CreateTopicRequest {
                name: String_(name.clone()),
                num_partitions: Int32(1),
                replication_factor: Int16(1),
                assignments: vec![],
                configs: vec![],
                tagged_fields: None,
            })
            .collect(),
        timeout_ms: Int32(5_000),
        validate_only: None,
        tagged_fields: None,
    };
    // Topics may exist already, or the broker may not offer CreateTopics:
    // either way the Metadata request below decides.
    let _ = m.request(&create).await;
    let metadata = MetadataRequest {
        topics: Some(
            names
                .iter()
                .map(|name| MetadataRequestTopic {
                    name: String_(name.clone()),
                })
                .collect(),
        ),
        allow_auto_topic_creation: Some(Boolean(true)),
    };
    let mut last = String::new();
    for _ in 0..20 {
        let r = m.request(&metadata).await.map_err(|e| e.to_string())?;
        let leaders: HashMap<String, String> = r
            .topics
            .iter()
            .filter(|t| t.error.is_none())
            .filter_map(|t| {
                let p = t.partitions.iter().find(|p| p.partition_index.0 == 0)?;
                let b = r.brokers.iter().find(|b| b.node_id.0 == p.leader_id.0)?;
                Some((t.name.0.clone(), format!("{}:{}", b.host.0, b.port.0)))
            })
            .collect();
        if names.iter().all(|n| leaders.contains_key(n)) {
            return Ok(leaders);
        }
        last = format!("{} of {} topics have a leader", leaders.len(), names.len());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(format!("topics not ready: {last}"))
}

/// Creates the Produce topic (see [`create_topics`]) and returns the
/// address of its partition 0's leader, which all clients then talk to.
pub(crate) fn leader_address(bootstrap: &str) -> Result<String, String> {
    with_messenger(bootstrap, async |m| {
        let leaders = create_topics(m, &[TOPIC.to_owned()]).await?;
        leaders
            .get(TOPIC)
            .cloned()
            .ok_or_else(|| format!("no leader for {TOPIC}"))
    })
}

/// How many topics the Metadata workload's cluster has at least: with them
/// a Metadata response for all topics is a few KB, as on a small real
/// cluster, whatever the test suites left behind.
pub(crate) const METADATA_TOPICS: usize = 64;

/// Makes sure the broker has [`METADATA_TOPICS`] benchmark topics.
pub(crate) fn ensure_metadata_topics(bootstrap: &str) -> Result<(), String> {
    let names: Vec<String> = (0..METADATA_TOPICS)
        .map(|i| format!("kc-bench-metadata-{i:02}"))
        .collect();
    with_messenger(bootstrap, async |m| {
        create_topics(m, &names).await.map(drop)
    })
}
