//! The Metadata response (API key 3), v0 to v13, read for what a cluster
//! policy needs: brokers, cluster id, controller, partition leaders.
//!
//! Written against Kafka's message schema (`MetadataResponse.json`): flexible
//! (compact strings and arrays, tagged fields, KIP-482) from v9; `rack` from
//! v1; `cluster_id` from v2; `throttle_time_ms` from v3; `offline_replicas`
//! from v5; `leader_epoch` from v7; authorized operations from v8 (cluster
//! level only v8-v10); `topic_id` from v10; nullable topic names from v12;
//! the top-level `error_code` from v13 (KIP-1102, e.g. REBOOTSTRAP_REQUIRED).
//! Lengths are checked against the bytes present before anything is
//! allocated (the core's [`Reader`]).

use kafka_conn_core::wire::{DecodeError, Reader};

use crate::bootstrap::validate_host;
use crate::error::MetadataError;

/// The highest Metadata version this decoder reads.
pub const METADATA_MAX_VERSION: i16 = 13;

/// Kafka's REBOOTSTRAP_REQUIRED error code (KIP-1102): the client's metadata
/// is stale and it should go back to its bootstrap servers.
pub const REBOOTSTRAP_REQUIRED: i16 = 129;

/// The name of the error codes this crate speaks of, else the core's table.
pub(crate) fn error_name(code: i16) -> &'static str {
    match code {
        REBOOTSTRAP_REQUIRED => "REBOOTSTRAP_REQUIRED",
        c => kafka_conn_core::error_code_name(c),
    }
}

/// A decoded and validated Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The response version it was read at.
    pub version: i16,
    /// The brokers, in the order sent.
    pub brokers: Vec<Broker>,
    /// The cluster id (v2+; `None` before, or if the broker sends null).
    pub cluster_id: Option<String>,
    /// The controller's node id (v1+); `None` if unknown (-1) or before v1.
    pub controller: Option<i32>,
    /// The topics, in the order sent.
    pub topics: Vec<Topic>,
    /// The top-level error code (v13+, else 0).
    pub error_code: i16,
}

/// A broker as Metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Its node id (`>= 0`).
    pub node_id: i32,
    /// Its advertised host.
    pub host: String,
    /// Its advertised port (1 to 65535).
    pub port: u16,
    /// Its rack (v1+), if set.
    pub rack: Option<String>,
}

/// A topic's partition leaders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// The topic's error code (0, or e.g. 3 UNKNOWN_TOPIC_OR_PARTITION).
    pub error_code: i16,
    /// Its name (`None` only from v12, when asked by topic id).
    pub name: Option<String>,
    /// Its id (v10+, else all zero).
    pub topic_id: [u8; 16],
    /// Its partitions.
    pub partitions: Vec<Partition>,
}

/// One partition's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// The partition's error code (e.g. 5 LEADER_NOT_AVAILABLE).
    pub error_code: i16,
    /// The partition index.
    pub index: i32,
    /// The leader's node id, or -1 if there is none.
    pub leader: i32,
    /// The leader epoch (v7+, else -1).
    pub leader_epoch: i32,
}

/// Decodes and validates a Metadata response body (the bytes after the
/// response header) at `version`.
///
/// Refused, with a typed error and nothing else done: versions above 13,
/// truncated or malformed bodies, zero brokers, duplicate
/// or negative node ids, ports outside 1-65535, empty hosts or hosts with
/// spaces. A non-zero top-level error code (v13) decodes fine; it is for the
/// caller (the policy rebootstraps on REBOOTSTRAP_REQUIRED).
pub fn decode_metadata(version: i16, body: &[u8]) -> Result<Metadata, MetadataError> {
    if !(0..=METADATA_MAX_VERSION).contains(&version) {
        return Err(MetadataError::UnsupportedVersion(version));
    }
    let mut r = Reader::new(body);
    let raw = read(&mut r, version).map_err(|error| MetadataError::Decode { version, error })?;
    // Bytes after the last field are ignored, as Kafka's Java client does:
    // the librdkafka mock cluster (2.16) sends one extra byte at v9-v12.
    validate(raw)
}

/// Brokers as read, before validation (ports are i32 on the wire).
struct RawBroker<'a> {
    node_id: i32,
    host: &'a str,
    port: i32,
    rack: Option<&'a str>,
}

struct Raw<'a> {
    version: i16,
    brokers: Vec<RawBroker<'a>>,
    cluster_id: Option<&'a str>,
    controller: i32,
    topics: Vec<Topic>,
    error_code: i16,
}

fn read<'a>(r: &mut Reader<'a>, version: i16) -> Result<Raw<'a>, DecodeError> {
    let flexible = version >= 9;
    if version >= 3 {
        r.i32("throttle_time_ms")?;
    }
    // The smallest broker: node id, empty host, port (+ a tag byte if flexible).
    let n = array_len(r, flexible, 4 + 1 + 4, "brokers")?;
    let mut brokers = Vec::with_capacity(n);
    for _ in 0..n {
        let node_id = r.i32("broker node_id")?;
        let host = string(r, flexible, "broker host")?;
        let port = r.i32("broker port")?;
        let rack = if version >= 1 {
            nullable_string(r, flexible, "broker rack")?
        } else {
            None
        };
        if flexible {
            r.skip_tagged_fields()?;
        }
        brokers.push(RawBroker {
            node_id,
            host,
            port,
            rack,
        });
    }
    let cluster_id = if version >= 2 {
        nullable_string(r, flexible, "cluster_id")?
    } else {
        None
    };
    let controller = if version >= 1 {
        r.i32("controller_id")?
    } else {
        -1
    };
    // The smallest topic: error code, name, partition count.
    let n = array_len(r, flexible, 2 + 1 + 1, "topics")?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(read_topic(r, version)?);
    }
    if (8..=10).contains(&version) {
        r.i32("cluster_authorized_operations")?;
    }
    let error_code = if version >= 13 {
        r.i16("error_code")?
    } else {
        0
    };
    if flexible {
        r.skip_tagged_fields()?;
    }
    Ok(Raw {
        version,
        brokers,
        cluster_id,
        controller,
        topics,
        error_code,
    })
}

fn read_topic(r: &mut Reader<'_>, version: i16) -> Result<Topic, DecodeError> {
    let flexible = version >= 9;
    let error_code = r.i16("topic error_code")?;
    let name = if version >= 12 {
        nullable_string(r, flexible, "topic name")?
    } else {
        Some(string(r, flexible, "topic name")?)
    };
    let mut topic_id = [0u8; 16];
    if version >= 10 {
        topic_id.copy_from_slice(r.take(16, "topic_id")?);
    }
    if version >= 1 {
        r.i8("is_internal")?;
    }
    // The smallest partition: error code, index, leader, two empty arrays.
    let n = array_len(r, flexible, 2 + 4 + 4 + 2, "partitions")?;
    let mut partitions = Vec::with_capacity(n);
    for _ in 0..n {
        let error_code = r.i16("partition error_code")?;
        let index = r.i32("partition_index")?;
        let leader = r.i32("leader_id")?;
        let leader_epoch = if version >= 7 {
            r.i32("leader_epoch")?
        } else {
            -1
        };
        skip_i32_array(r, flexible, "replica_nodes")?;
        skip_i32_array(r, flexible, "isr_nodes")?;
        if version >= 5 {
            skip_i32_array(r, flexible, "offline_replicas")?;
        }
        if flexible {
            r.skip_tagged_fields()?;
        }
        partitions.push(Partition {
            error_code,
            index,
            leader,
            leader_epoch,
        });
    }
    if version >= 8 {
        r.i32("topic_authorized_operations")?;
    }
    if flexible {
        r.skip_tagged_fields()?;
    }
    Ok(Topic {
        error_code,
        name: name.map(str::to_owned),
        topic_id,
        partitions,
    })
}

fn array_len(
    r: &mut Reader<'_>,
    flexible: bool,
    min_elem: usize,
    what: &'static str,
) -> Result<usize, DecodeError> {
    // Flexible element sizes are one byte smaller per compact length; the
    // minimum is only a guard against pre-sizing on a claimed count.
    if flexible {
        r.compact_array_len(min_elem.saturating_sub(2).max(1), what)
    } else {
        r.array_len(min_elem, what)
    }
}

fn skip_i32_array(
    r: &mut Reader<'_>,
    flexible: bool,
    what: &'static str,
) -> Result<(), DecodeError> {
    let n = array_len(r, flexible, 4, what)?;
    r.take(n * 4, what)?;
    Ok(())
}

fn string<'a>(
    r: &mut Reader<'a>,
    flexible: bool,
    what: &'static str,
) -> Result<&'a str, DecodeError> {
    if flexible {
        r.compact_string(what)
    } else {
        r.string(what)
    }
}

fn nullable_string<'a>(
    r: &mut Reader<'a>,
    flexible: bool,
    what: &'static str,
) -> Result<Option<&'a str>, DecodeError> {
    if flexible {
        r.compact_nullable_string(what)
    } else {
        r.nullable_string(what)
    }
}

fn validate(raw: Raw<'_>) -> Result<Metadata, MetadataError> {
    // A response carrying a top-level error (KIP-1102) lists no brokers:
    // Kafka sends REBOOTSTRAP_REQUIRED with an empty broker array, and so
    // does the librdkafka mock cluster (2.16). The error must reach the
    // merge, which acts on it, rather than be hidden behind "no brokers".
    if raw.brokers.is_empty() && raw.error_code == 0 {
        return Err(MetadataError::NoBrokers);
    }
    let mut brokers: Vec<Broker> = Vec::with_capacity(raw.brokers.len());
    let mut seen = std::collections::BTreeSet::new();
    for b in &raw.brokers {
        if b.node_id < 0 {
            return Err(MetadataError::NegativeNodeId(b.node_id));
        }
        if !seen.insert(b.node_id) {
            return Err(MetadataError::DuplicateNode(b.node_id));
        }
        let port =
            u16::try_from(b.port)
                .ok()
                .filter(|&p| p != 0)
                .ok_or(MetadataError::BadPort {
                    node: b.node_id,
                    port: b.port,
                })?;
        validate_host(b.host).map_err(|why| MetadataError::BadHost {
            node: b.node_id,
            host: b.host.to_owned(),
            why,
        })?;
        brokers.push(Broker {
            node_id: b.node_id,
            host: b.host.to_owned(),
            port,
            rack: b.rack.map(str::to_owned),
        });
    }
    Ok(Metadata {
        version: raw.version,
        brokers,
        cluster_id: raw.cluster_id.map(str::to_owned),
        controller: (raw.controller >= 0).then_some(raw.controller),
        topics: raw.topics,
        error_code: raw.error_code,
    })
}
