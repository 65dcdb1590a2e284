//! Creates a topic with CreateTopics, produces three records (with a key
//! and a header) and fetches them back, all with typed requests at the
//! negotiated versions.
//!
//! ```sh
//! cargo run -p kafka-conn-tokio --features kafka-protocol --example produce_fetch -- 127.0.0.1:9092 my-topic
//! ```
//!
//! The broker must support CreateTopics (a broker that creates topics on
//! first use answers with an error, which is printed; producing still works).

use bytes::{Bytes, BytesMut};
use kafka_conn_tokio::core::typed::kafka_protocol::indexmap::IndexMap;
use kafka_conn_tokio::core::typed::kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_conn_tokio::core::typed::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ReplicaState,
};
use kafka_conn_tokio::core::typed::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_conn_tokio::core::typed::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use kafka_conn_tokio::core::typed::kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_conn_tokio::core::typed::kafka_protocol::protocol::StrBytes;
use kafka_conn_tokio::core::typed::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_conn_tokio::core::typed::kafka_protocol::ResponseError;
use kafka_conn_tokio::{connect, ConnectConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topic = args
        .next()
        .unwrap_or_else(|| "kafka-conn-example".to_owned());
    let name = TopicName(StrBytes::from_string(topic.clone()));
    let client = connect(&address, ConnectConfig::default()).await?;

    // 1. CreateTopics: one partition, replication factor 1.
    let created = client
        .send_typed(
            CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(name.clone())
                    .with_num_partitions(1)
                    .with_replication_factor(1)]),
        )
        .await?;
    for t in &created.topics {
        match ResponseError::try_from_code(t.error_code) {
            None => println!("created {}", t.name.0.as_str()),
            Some(e) => println!("CreateTopics {}: {e}", t.name.0.as_str()),
        }
    }

    // The topic id (Fetch v13+ and Produce v13 name topics by id).
    let metadata = client
        .send_typed(MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name.clone())),
        ])))
        .await?;
    let topic_id = metadata
        .topics
        .first()
        .map(|t| t.topic_id)
        .unwrap_or_default();

    // 2. Produce three records in one batch (uncompressed, magic v2).
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // One batch needs a constant `offset - sequence`; -1 = not idempotent.
            sequence: i as i32 - 1,
            timestamp: 0,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value {i} from kafka-conn"))),
            headers: IndexMap::from_iter([(
                StrBytes::from_static_str("source"),
                Some(Bytes::from_static(b"produce_fetch.rs")),
            )]),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    let produced = client
        .send_typed(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name.clone())
                    .with_topic_id(topic_id)
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.freeze()))])]),
        )
        .await?;
    let p = &produced.responses[0].partition_responses[0];
    if let Some(e) = ResponseError::try_from_code(p.error_code) {
        return Err(format!("Produce: {e}").into());
    }
    println!("produced 3 records at offset {}", p.base_offset);

    // 3. Fetch them back from that offset.
    let fetched = client
        .send_typed(
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(-1)))
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(name)
                    .with_topic_id(topic_id)
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(p.base_offset)
                        .with_current_leader_epoch(-1)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(1 << 20)])]),
        )
        .await?;
    let partition = &fetched.responses[0].partitions[0];
    let mut bytes = partition.records.clone().unwrap_or_default();
    for set in RecordBatchDecoder::decode_all(&mut bytes)? {
        for r in set.records {
            println!(
                "  offset {}: {:?} = {:?} {:?}",
                r.offset,
                r.key.as_deref().map(String::from_utf8_lossy),
                r.value.as_deref().map(String::from_utf8_lossy),
                r.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>()
            );
        }
    }
    println!("stats: {:?}", client.stats());
    client.close();
    client.closed().await;
    Ok(())
}
