//! `kconn check --roundtrip TOPIC`: produce one record to partition 0 of
//! TOPIC and fetch it back from the partition's leader, the test operators
//! run by hand to see that a principal may write and read (ACLs), that the
//! leader is reachable at its advertised address, and that the cluster
//! acknowledges with `acks=all`.
//!
//! Typed messages from the `kafka-protocol` crate (through the driver's
//! `send_typed`). Topics are never created unless `--create-topic` asks:
//! Metadata is sent with `allow_auto_topic_creation=false`, and with
//! `--create-topic` CreateTopics is used where the broker offers it (the
//! librdkafka mock cluster does not: it creates topics on a Metadata
//! request that allows it).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_conn_tokio::core::typed::kafka_protocol;
use kafka_conn_tokio::core::ApiKey;
use kafka_conn_tokio::{Client, TypedFailure};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, MetadataRequest, MetadataResponse, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::Serialize;

use crate::diagnose::{self, Diagnosis, Step};
use crate::errcode;
use crate::latency::ms;
use crate::settings::Settings;

/// Produce versions used: v3 (record batches) up to v12; v13 names topics
/// by id only.
const PRODUCE_VERSIONS: std::ops::RangeInclusive<i16> = 3..=12;
/// Fetch versions used: up to v12; v13+ names topics by id only.
const FETCH_VERSIONS: std::ops::RangeInclusive<i16> = 4..=12;
/// The partition written to.
const PARTITION: i32 = 0;
/// How long a freshly created topic may take to get a leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// One step of the round trip.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RoundtripStep {
    step: Step,
    /// `ok` or `failed`.
    ok: bool,
    /// The API version used.
    version: Option<i16>,
    /// How long it took.
    ms: f64,
    /// What it found.
    detail: String,
}

/// The `roundtrip` part of `check --json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RoundtripReport {
    topic: String,
    pub(crate) ok: bool,
    /// Whether kconn created the topic (`--create-topic`).
    created: bool,
    partition: i32,
    /// The partition's leader: node id and advertised address.
    leader_id: Option<i32>,
    leader: Option<String>,
    /// The offset the record was written at.
    offset: Option<i64>,
    steps: Vec<RoundtripStep>,
    pub(crate) error: Option<Diagnosis>,
}

impl RoundtripReport {
    fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            ok: false,
            created: false,
            partition: PARTITION,
            leader_id: None,
            leader: None,
            offset: None,
            steps: Vec::new(),
            error: None,
        }
    }

    /// The report of a round trip that could not start.
    pub(crate) fn not_run(topic: &str) -> Self {
        Self::new(topic)
    }

    /// The one line of a round trip that passed.
    pub(crate) fn summary(&self) -> String {
        format!(
            "1 record produced to {}-{} on broker {} ({}) at offset {} and fetched back{}",
            self.topic,
            self.partition,
            self.leader_id.map_or("?".to_owned(), |id| id.to_string()),
            self.leader.as_deref().unwrap_or("?"),
            self.offset.map_or("?".to_owned(), |o| o.to_string()),
            if self.created {
                " (topic created by kconn)"
            } else {
                ""
            }
        )
    }

    fn fail(&mut self, d: Diagnosis) -> &mut Self {
        self.error = Some(d);
        self
    }

    /// The text lines of the report.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for s in &self.steps {
            lines.push(format!(
                "  {} {:<13}  {:>9}  {}",
                if s.ok { "✓" } else { "✗" },
                s.step.label(),
                crate::latency::human_ms(s.ms),
                s.detail
            ));
        }
        lines
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn code_text(code: i16) -> String {
    match errcode::by_code(code) {
        Some(e) => format!("{} {}", code, e.name),
        None => format!("error {code}"),
    }
}

fn broker_error(step: Step, what: &str, code: i16, message: Option<&str>) -> Diagnosis {
    let known = errcode::by_code(code);
    let mut problem = format!("{what} failed: {}", code_text(code));
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        problem.push_str(&format!(" ({m})"));
    }
    let advice = match code {
        29 => "the principal may not use this topic: check its ACLs (WRITE for Produce, READ for Fetch, DESCRIBE for Metadata)",
        31 => "the principal may not create topics: check its ACLs (CREATE on the cluster)",
        19 | 20 => "fewer in-sync replicas than min.insync.replicas: check the brokers holding the partition",
        _ => known.map_or("see the broker's log", |e| e.meaning),
    };
    let mut d = Diagnosis::custom(step, "broker_error", problem);
    d.advice = Some(advice.to_owned());
    d.retriable = known.is_some_and(|e| e.retriable);
    d
}

fn typed_failure(step: Step, api: ApiKey, e: &TypedFailure, settings: &Settings) -> Diagnosis {
    let mut d = match e {
        TypedFailure::Request(r) => {
            diagnose::request_failure(r, api, &settings.diagnosis_context(None))
        }
        other => Diagnosis::custom(step, "request_failed", format!("{api} failed: {other}")),
    };
    d.step = step;
    d
}

/// Runs the round trip over the bootstrap connection `client` (for
/// Metadata and CreateTopics) and a connection to the partition's leader.
pub(crate) async fn run(
    settings: &Settings,
    client: &Client,
    topic: &str,
    create: bool,
) -> RoundtripReport {
    let mut report = RoundtripReport::new(topic);
    let Some((leader_id, leader)) = find_leader(settings, client, topic, create, &mut report).await
    else {
        return report;
    };
    report.leader_id = Some(leader_id);
    report.leader = Some(leader.clone());
    let leader_client = match settings.connect(&leader).await {
        Ok(c) => c,
        Err(e) => {
            let mut d = diagnose::connect_error(&e, &settings.diagnosis_context(None));
            d.problem = format!(
                "cannot connect to the partition's leader {leader_id} at {leader} (its advertised address): {}",
                d.problem
            );
            d.step = Step::Produce;
            report.fail(d);
            return report;
        }
    };
    if let Some(offset) = produce(settings, &leader_client, topic, &mut report).await {
        report.offset = Some(offset.0);
        fetch(settings, &leader_client, topic, offset, &mut report).await;
    }
    leader_client.close();
    let _ = tokio::time::timeout(settings.timeout, leader_client.closed()).await;
    report.ok = report.error.is_none();
    report
}

/// The partition's leader (node id, address) from Metadata for the topic
/// (created if asked); `None` after a failure recorded in `report`.
async fn find_leader(
    settings: &Settings,
    client: &Client,
    topic: &str,
    create: bool,
    report: &mut RoundtripReport,
) -> Option<(i32, String)> {
    let start = Instant::now();
    let can_create = client.api_versions().get(ApiKey::CREATE_TOPICS).is_some();
    let mut created = false;
    loop {
        // Without CreateTopics, only a Metadata request that allows it can create.
        let auto = create && !can_create;
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(auto);
        let response: MetadataResponse = match client.send_typed(request).await {
            Ok(r) => r,
            Err(e) => {
                report.fail(typed_failure(
                    Step::Metadata,
                    ApiKey::METADATA,
                    &e,
                    settings,
                ));
                return None;
            }
        };
        let Some(t) = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        else {
            report.fail(Diagnosis::custom(
                Step::Metadata,
                "malformed_metadata",
                format!("the Metadata response does not mention topic {topic}"),
            ));
            return None;
        };
        match t.error_code {
            0 => {}
            3 if create && can_create && !created => {
                if !create_topic(settings, client, topic, report).await {
                    return None;
                }
                created = true;
                report.created = true;
                continue;
            }
            3 if !create => {
                let mut d = Diagnosis::custom(
                    Step::Metadata,
                    "topic_not_found",
                    format!("topic {topic} does not exist (or the principal may not see it)"),
                );
                d.advice = Some(
                    "create it, or pass --create-topic to let kconn create it with one partition"
                        .into(),
                );
                report.fail(d);
                return None;
            }
            // A new topic's leader is being elected.
            3 | 5 if start.elapsed() < LEADER_WAIT => {
                report.created |= auto;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            code => {
                report.fail(broker_error(
                    Step::Metadata,
                    &format!("Metadata for {topic}"),
                    code,
                    None,
                ));
                return None;
            }
        }
        report.created |= auto;
        let Some(p) = t.partitions.iter().find(|p| p.partition_index == PARTITION) else {
            report.fail(Diagnosis::custom(
                Step::Metadata,
                "no_partition",
                format!("topic {topic} has no partition {PARTITION}"),
            ));
            return None;
        };
        if (p.error_code == 5 || p.leader_id.0 < 0) && start.elapsed() < LEADER_WAIT {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if p.error_code != 0 && p.leader_id.0 < 0 {
            report.fail(broker_error(
                Step::Metadata,
                &format!("Metadata for {topic}-{PARTITION}"),
                p.error_code,
                None,
            ));
            return None;
        }
        let leader = p.leader_id;
        let Some(b) = response.brokers.iter().find(|b| b.node_id == leader) else {
            report.fail(Diagnosis::custom(
                Step::Metadata,
                "leader_not_advertised",
                format!("the leader of {topic}-{PARTITION}, broker {}, is not among the advertised brokers", leader.0),
            ));
            return None;
        };
        let address = if b.host.contains(':') {
            format!("[{}]:{}", b.host.as_str(), b.port)
        } else {
            format!("{}:{}", b.host.as_str(), b.port)
        };
        return Some((leader.0, address));
    }
}

async fn create_topic(
    settings: &Settings,
    client: &Client,
    topic: &str,
    report: &mut RoundtripReport,
) -> bool {
    // Replication factor -1 (the broker's default.replication.factor)
    // needs CreateTopics v4 (KIP-464); before that, 1.
    let replication = match client.api_versions().get(ApiKey::CREATE_TOPICS) {
        Some((_, max)) if max >= 4 => -1,
        _ => 1,
    };
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(1)
            .with_replication_factor(replication)])
        .with_timeout_ms(i32::try_from(settings.request_timeout.as_millis()).unwrap_or(i32::MAX));
    match client.send_typed(request).await {
        Ok(r) => match r
            .topics
            .first()
            .map(|t| (t.error_code, t.error_message.clone()))
        {
            // TOPIC_ALREADY_EXISTS: someone else was quicker; fine.
            Some((0 | 36, _)) => true,
            Some((code, message)) => {
                report.fail(broker_error(
                    Step::Metadata,
                    &format!("creating topic {topic}"),
                    code,
                    message.as_ref().map(|m| m.as_str()),
                ));
                false
            }
            None => {
                report.fail(Diagnosis::custom(
                    Step::Metadata,
                    "malformed_response",
                    "the CreateTopics response lists no topic",
                ));
                false
            }
        },
        Err(e) => {
            report.fail(typed_failure(
                Step::Metadata,
                ApiKey::CREATE_TOPICS,
                &e,
                settings,
            ));
            false
        }
    }
}

/// A unique payload, to recognise our record among others.
fn payload() -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Bytes::from(format!(
        "kconn roundtrip {} {}.{:09}",
        std::process::id(),
        now.as_secs(),
        now.subsec_nanos()
    ))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What was produced: the offset and the payload.
struct Produced(i64, Bytes);

async fn produce(
    settings: &Settings,
    client: &Client,
    topic: &str,
    report: &mut RoundtripReport,
) -> Option<Produced> {
    let Some(version) = client.negotiate(ApiKey::PRODUCE, PRODUCE_VERSIONS) else {
        report.fail(Diagnosis::custom(
            Step::Produce,
            "no_common_version",
            format!(
                "the leader offers no Produce version kconn can send (v{}-v{})",
                PRODUCE_VERSIONS.start(),
                PRODUCE_VERSIONS.end()
            ),
        ));
        return None;
    };
    let value = payload();
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms(),
        key: Some(Bytes::from_static(b"kconn")),
        value: Some(value.clone()),
        headers: Default::default(),
    };
    let mut batch = BytesMut::new();
    if let Err(e) = RecordBatchEncoder::encode(
        &mut batch,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    ) {
        report.fail(Diagnosis::custom(
            Step::Produce,
            "encode_failed",
            format!("cannot encode the record: {e}"),
        ));
        return None;
    }
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(i32::try_from(settings.request_timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(PARTITION)
                .with_records(Some(batch.freeze()))])]);
    let start = Instant::now();
    let response = client.send_typed_at(request, version).await;
    let took = start.elapsed();
    let step = |ok, detail: String| RoundtripStep {
        step: Step::Produce,
        ok,
        version: Some(version),
        ms: ms(took),
        detail,
    };
    let r = match response {
        Ok(r) => r,
        Err(e) => {
            let d = typed_failure(Step::Produce, ApiKey::PRODUCE, &e, settings);
            report.steps.push(step(false, d.problem.clone()));
            report.fail(d);
            return None;
        }
    };
    let Some(p) = r
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == PARTITION)
    else {
        let d = Diagnosis::custom(
            Step::Produce,
            "malformed_response",
            "the Produce response does not mention the partition",
        );
        report.steps.push(step(false, d.problem.clone()));
        report.fail(d);
        return None;
    };
    if p.error_code != 0 {
        let d = broker_error(
            Step::Produce,
            &format!("Produce to {topic}-{PARTITION}"),
            p.error_code,
            p.error_message.as_ref().map(|m| m.as_str()),
        );
        report.steps.push(step(false, d.problem.clone()));
        report.fail(d);
        return None;
    }
    report.steps.push(step(
        true,
        format!(
            "v{version}: 1 record ({} bytes) to {topic}-{PARTITION} at offset {}, acks=all",
            value.len(),
            p.base_offset
        ),
    ));
    Some(Produced(p.base_offset, value))
}

async fn fetch(
    settings: &Settings,
    client: &Client,
    topic: &str,
    produced: Produced,
    report: &mut RoundtripReport,
) {
    let Produced(offset, value) = produced;
    let Some(version) = client.negotiate(ApiKey::FETCH, FETCH_VERSIONS) else {
        report.fail(Diagnosis::custom(
            Step::Fetch,
            "no_common_version",
            format!(
                "the leader offers no Fetch version kconn can send (v{}-v{})",
                FETCH_VERSIONS.start(),
                FETCH_VERSIONS.end()
            ),
        ));
        return;
    };
    let start = Instant::now();
    let deadline = start + settings.request_timeout;
    let fail = |report: &mut RoundtripReport, d: Diagnosis, version| {
        report.steps.push(RoundtripStep {
            step: Step::Fetch,
            ok: false,
            version: Some(version),
            ms: ms(start.elapsed()),
            detail: d.problem.clone(),
        });
        report.fail(d);
    };
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(PARTITION)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1 << 20)])]);
        let r = match client.send_typed_at(request, version).await {
            Ok(r) => r,
            Err(e) => {
                fail(
                    report,
                    typed_failure(Step::Fetch, ApiKey::FETCH, &e, settings),
                    version,
                );
                return;
            }
        };
        if r.error_code != 0 {
            fail(
                report,
                broker_error(Step::Fetch, "Fetch", r.error_code, None),
                version,
            );
            return;
        }
        let Some(p) = r
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == PARTITION)
        else {
            fail(
                report,
                Diagnosis::custom(
                    Step::Fetch,
                    "malformed_response",
                    "the Fetch response does not mention the partition",
                ),
                version,
            );
            return;
        };
        if p.error_code != 0 {
            fail(
                report,
                broker_error(
                    Step::Fetch,
                    &format!("Fetch from {topic}-{PARTITION}"),
                    p.error_code,
                    None,
                ),
                version,
            );
            return;
        }
        let mut records = p.records.clone().unwrap_or_default();
        let mut found = None;
        while !records.is_empty() {
            match RecordBatchDecoder::decode(&mut records) {
                Ok(set) => {
                    if let Some(r) = set.records.iter().find(|r| r.offset == offset) {
                        found = Some(r.value.clone());
                        break;
                    }
                }
                // A partial batch at the end of the response: not ours.
                Err(_) => break,
            }
        }
        match found {
            Some(v) if v.as_ref() == Some(&value) => {
                report.steps.push(RoundtripStep {
                    step: Step::Fetch,
                    ok: true,
                    version: Some(version),
                    ms: ms(start.elapsed()),
                    detail: format!(
                        "v{version}: the record came back from offset {offset} (high watermark {})",
                        p.high_watermark
                    ),
                });
                return;
            }
            Some(_) => {
                fail(
                    report,
                    Diagnosis::custom(
                        Step::Fetch,
                        "roundtrip_mismatch",
                        format!("offset {offset} holds another record than the one produced"),
                    ),
                    version,
                );
                return;
            }
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None => {
                fail(
                    report,
                    Diagnosis::custom(
                        Step::Fetch,
                        "record_not_fetched",
                        format!(
                            "the record at offset {offset} did not come back within {} (high watermark {})",
                            crate::latency::human(settings.request_timeout),
                            p.high_watermark
                        ),
                    ),
                    version,
                );
                return;
            }
        }
    }
}
