//! Lists a broker's topics with a typed Metadata request: the version is the
//! highest both the broker and `kafka-protocol` support.
//!
//! ```sh
//! cargo run -p kafka-conn-tokio --features kafka-protocol --example list_topics -- 127.0.0.1:9092
//! ```

use kafka_conn_tokio::core::typed::kafka_protocol::messages::MetadataRequest;
use kafka_conn_tokio::core::ApiKey;
use kafka_conn_tokio::{connect, ConnectConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let client = connect(&address, ConnectConfig::default()).await?;
    // `None`: every topic.
    let metadata = client
        .send_typed(MetadataRequest::default().with_topics(None))
        .await?;
    let version = client.negotiate(ApiKey::METADATA, 0..=i16::MAX);
    println!(
        "{address}: cluster {:?}, {} broker(s), Metadata v{}",
        metadata.cluster_id.as_deref().unwrap_or("?"),
        metadata.brokers.len(),
        version.unwrap_or(-1)
    );
    let mut topics: Vec<_> = metadata
        .topics
        .iter()
        .filter_map(|t| Some((t.name.as_ref()?.0.as_str().to_owned(), t)))
        .collect();
    topics.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, topic) in topics {
        let leaders: Vec<_> = topic
            .partitions
            .iter()
            .map(|p| format!("{}@{}", p.partition_index, p.leader_id.0))
            .collect();
        println!(
            "  {name:40} {} partition(s), leaders {}",
            topic.partitions.len(),
            leaders.join(" ")
        );
    }
    client.close();
    client.closed().await;
    Ok(())
}
