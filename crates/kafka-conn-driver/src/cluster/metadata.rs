//! The Metadata request of the cluster's refreshes, encoded for the version
//! negotiated on the node it goes through.

use std::ops::RangeInclusive;

use bytes::{BufMut, BytesMut};
use kafka_conn_cluster::METADATA_MAX_VERSION;
use kafka_conn_core::{ApiKey, Request};

use super::config::MetadataTopics;

/// The Metadata versions the cluster sends: v1 (the first where an empty
/// topic array means "no topic" rather than "all topics", and where brokers
/// have racks) to the policy decoder's highest, v13 (KIP-1102's top-level
/// error code). Every broker since Kafka 0.10 has v1.
pub(crate) const METADATA_VERSIONS: RangeInclusive<i16> = 1..=METADATA_MAX_VERSION;

/// Kafka's limit on a topic name's length (`Topic.MAX_NAME_LENGTH`).
pub(crate) const MAX_TOPIC_NAME: usize = 249;

/// A Metadata request at `version` (within [`METADATA_VERSIONS`]) for
/// `topics`, that never creates topics.
pub(crate) fn metadata_request(version: i16, topics: &MetadataTopics) -> Request {
    let flexible = ApiKey::METADATA.is_flexible(version);
    let mut b = BytesMut::with_capacity(32);
    let names: &[String] = match topics {
        MetadataTopics::Only(names) => names,
        MetadataTopics::None | MetadataTopics::All => &[],
    };
    // The topic array: null = every topic, empty = none (v1+).
    match (topics, flexible) {
        (MetadataTopics::All, false) => b.put_i32(-1),
        (MetadataTopics::All, true) => uvarint(&mut b, 0),
        (_, false) => b.put_i32(names.len() as i32),
        (_, true) => uvarint(&mut b, names.len() as u64 + 1),
    }
    for name in names {
        if version >= 10 {
            // topic_id: zero, the name decides (KIP-516).
            b.put_bytes(0, 16);
        }
        if flexible {
            uvarint(&mut b, name.len() as u64 + 1);
        } else {
            // Checked at connect: names are at most 249 bytes.
            b.put_i16(name.len() as i16);
        }
        b.put_slice(name.as_bytes());
        if flexible {
            b.put_u8(0); // no tagged fields
        }
    }
    if version >= 4 {
        b.put_u8(0); // allow_auto_topic_creation = false
    }
    if (8..=10).contains(&version) {
        b.put_u8(0); // include_cluster_authorized_operations
    }
    if version >= 8 {
        b.put_u8(0); // include_topic_authorized_operations
    }
    if flexible {
        b.put_u8(0); // no tagged fields
    }
    Request::new(ApiKey::METADATA, version, b.freeze())
}

/// An unsigned varint (the compact lengths of flexible versions, KIP-482).
fn uvarint(b: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        b.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    b.put_u8(n as u8);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::MetadataRequest;
    use kafka_protocol::protocol::Decodable;

    use super::*;

    fn decode(version: i16, topics: &MetadataTopics) -> MetadataRequest {
        let request = metadata_request(version, topics);
        assert_eq!(request.api_key(), ApiKey::METADATA);
        assert_eq!(request.api_version(), version);
        let mut body: Bytes = request.body().clone();
        let decoded = MetadataRequest::decode(&mut body, version)
            .unwrap_or_else(|e| panic!("v{version} {topics:?}: {e}"));
        assert!(
            body.is_empty(),
            "v{version}: {} bytes left over",
            body.len()
        );
        decoded
    }

    /// Checked against kafka-protocol's decoder (generated from Kafka's
    /// message schemas) at every version sent.
    #[test]
    fn every_version_decodes_as_kafka_defines_it() {
        let names = vec!["orders".to_owned(), "a".repeat(MAX_TOPIC_NAME)];
        for version in METADATA_VERSIONS {
            let none = decode(version, &MetadataTopics::None);
            assert_eq!(
                none.topics.as_deref().map(<[_]>::len),
                Some(0),
                "v{version}"
            );
            assert!(!none.allow_auto_topic_creation || version < 4, "v{version}");
            assert!(!none.include_topic_authorized_operations, "v{version}");
            assert!(!none.include_cluster_authorized_operations, "v{version}");

            let all = decode(version, &MetadataTopics::All);
            assert!(
                all.topics.is_none(),
                "v{version}: all topics is a null array"
            );

            let only = decode(version, &MetadataTopics::Only(names.clone()));
            let got: Vec<String> = only
                .topics
                .unwrap()
                .iter()
                .map(|t| t.name.as_ref().unwrap().to_string())
                .collect();
            assert_eq!(got, names, "v{version}");
        }
    }
}
