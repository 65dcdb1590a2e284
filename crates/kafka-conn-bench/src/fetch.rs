//! The 1 MiB Fetch workload: one request body (encoded once with rskafka's
//! own protocol types, so that every client sends the same bytes) that
//! fetches the ~1 MiB record batch the Produce workload writes, the newest
//! one in partition 0 of [`produce::TOPIC`]; the response check; and the
//! broker-side setup (the topic, at least one ~1 MiB record in it, the
//! partition's leader and the offset to fetch), through rskafka
//! `Messenger`s.
//!
//! Why the newest batch and not offset 0: what a Fetch from the start
//! returns depends on what was produced before. The librdkafka mock
//! cluster keeps only the last ~5 MiB of a partition (after a
//! `produce-1mib` run offset 0 is gone: `OFFSET_OUT_OF_RANGE`) and answers
//! with one record batch; tansu 0.6 returns whole batches past `max_bytes`
//! (three 1 MiB batches, 3 MiB, for a 2 MiB limit). From the newest record
//! every broker answers with that one batch: a response of 1,048,457 bytes
//! whatever ran before. On a fresh broker that is offset 0.

use std::io::Cursor;
use std::sync::OnceLock;

use bytes::Bytes;
use rskafka::messenger::Messenger;
use rskafka::protocol::api_version::ApiVersion;
use rskafka::protocol::messages::{
    FetchRequest, FetchRequestPartition, FetchRequestTopic, FetchResponse, IsolationLevel,
    ListOffsetsRequest, ListOffsetsRequestPartition, ListOffsetsRequestTopic, ReadVersionedType,
};
use rskafka::protocol::primitives::{Int16, Int32, Int64, String_};
use rskafka::protocol::record::ControlBatchOrRecords;

use crate::produce::{self, TOPIC};

/// Fetch v4: the lowest (and only) version rskafka implements, the first
/// with record batches (KIP-98) and an isolation level.
pub(crate) const VERSION: i16 = 4;

/// The request's `max_wait_ms` (see [`request_at`]).
const MAX_WAIT_MS: i32 = 1;

/// The request's `max_bytes` and the partition's `partition_max_bytes`:
/// room for the one Produce record batch (just under 1 MiB) there is from
/// the newest offset on.
const MAX_BYTES: i32 = 2 << 20;

/// The least record bytes (keys and values) a response must carry: the
/// Produce workload's record value is 1 MiB - 256 B.
const MIN_RECORD_BYTES: usize = (1 << 20) - 1024;

/// The offset the request fetches from: the partition's newest record's
/// (its high watermark - 1), found by [`prepare`] (see the module docs).
static OFFSET: OnceLock<i64> = OnceLock::new();

/// The typed request (what rskafka's API takes and encodes on every send).
pub(crate) fn request() -> FetchRequest {
    request_at(OFFSET.get().copied().unwrap_or(0))
}

fn request_at(offset: i64) -> FetchRequest {
    FetchRequest {
        // -1: a consumer, not a follower.
        replica_id: Int32(-1),
        // Answer at once: the data is there (min_bytes 1 is met). 1, not
        // 0: tansu 0.6 answers max_wait_ms 0 with no topics at all (its
        // fetch loop runs only while the time waited is under max_wait).
        max_wait_ms: Int32(MAX_WAIT_MS),
        min_bytes: Int32(1),
        max_bytes: Some(Int32(MAX_BYTES)),
        isolation_level: Some(IsolationLevel::ReadUncommitted),
        topics: vec![FetchRequestTopic {
            topic: String_(TOPIC.to_owned()),
            partitions: vec![FetchRequestPartition {
                partition: Int32(0),
                fetch_offset: Int64(offset),
                partition_max_bytes: Int32(MAX_BYTES),
            }],
        }],
    }
}

/// The encoded request body, built once per process (after [`prepare`],
/// which sets the offset, in a child).
pub(crate) fn body() -> Bytes {
    static BODY: OnceLock<Bytes> = OnceLock::new();
    BODY.get_or_init(|| produce::encode(request(), VERSION))
        .clone()
}

/// Checks a Fetch v4 response body (decoded with rskafka's own types): see
/// [`check_response`].
pub(crate) fn check(body: &[u8]) -> Result<(), String> {
    let r = FetchResponse::read_versioned(&mut Cursor::new(body), ApiVersion(Int16(VERSION)))
        .map_err(|e| format!("undecodable Fetch response: {e}"))?;
    check_response(&r)
}

/// One topic, one partition, no error, at least one record batch, and at
/// least [`MIN_RECORD_BYTES`] of record keys and values in them.
pub(crate) fn check_response(r: &FetchResponse) -> Result<(), String> {
    let [t] = &r.responses[..] else {
        return Err(format!(
            "a Fetch response with {} topics, not 1",
            r.responses.len()
        ));
    };
    if t.topic.0 != TOPIC {
        return Err(format!("a Fetch response for topic {:?}", t.topic.0));
    }
    let [p] = &t.partitions[..] else {
        return Err(format!(
            "a Fetch response with {} partitions, not 1",
            t.partitions.len()
        ));
    };
    if let Some(e) = &p.error_code {
        return Err(format!("Fetch error: {e:?}"));
    }
    if p.records.0.is_empty() {
        return Err(format!(
            "a Fetch response without a record batch (high watermark {})",
            p.high_watermark.0
        ));
    }
    let bytes: usize = p
        .records
        .0
        .iter()
        .map(|batch| match &batch.records {
            ControlBatchOrRecords::Records(records) => records
                .iter()
                .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
                .sum(),
            ControlBatchOrRecords::ControlBatch(_) => 0,
        })
        .sum();
    if bytes < MIN_RECORD_BYTES {
        return Err(format!(
            "a Fetch response with {bytes} record bytes in {} batches (at least {MIN_RECORD_BYTES} expected)",
            p.records.0.len()
        ));
    }
    Ok(())
}

/// Partition 0's log start and end offsets (ListOffsets, earliest and
/// latest), asked of its leader.
async fn log_offsets(m: &mut Messenger<tokio::net::TcpStream>) -> Result<(i64, i64), String> {
    let mut offsets = [0i64; 2];
    // -2: the earliest offset, -1: the latest (the high watermark).
    for (slot, timestamp) in offsets.iter_mut().zip([-2, -1]) {
        let request = ListOffsetsRequest {
            replica_id: Int32(-1),
            isolation_level: Some(IsolationLevel::ReadUncommitted),
            topics: vec![ListOffsetsRequestTopic {
                name: String_(TOPIC.to_owned()),
                partitions: vec![ListOffsetsRequestPartition {
                    partition_index: Int32(0),
                    timestamp: Int64(timestamp),
                    max_num_offsets: Some(Int32(1)),
                }],
            }],
        };
        let r = m.request(&request).await.map_err(|e| e.to_string())?;
        let p = r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index.0 == 0)
            .ok_or_else(|| format!("no ListOffsets answer for {TOPIC}/0: {r:?}"))?;
        if let Some(e) = &p.error_code {
            return Err(format!("ListOffsets error for {TOPIC}/0: {e:?}"));
        }
        *slot = p
            .offset
            .map(|o| o.0)
            .or_else(|| {
                p.old_style_offsets
                    .as_ref()?
                    .0
                    .as_ref()?
                    .first()
                    .map(|o| o.0)
            })
            .ok_or_else(|| format!("ListOffsets for {TOPIC}/0 without an offset: {r:?}"))?;
    }
    Ok((offsets[0], offsets[1]))
}

/// The setup: creates the topic where needed, finds partition 0's leader
/// (which the requests must go to), makes sure the partition holds a
/// record (one Produce request of the Produce workload's batch when it is
/// empty), and checks one Fetch from its newest record through rskafka.
/// Returns the leader's `host:port` and that record's offset.
pub(crate) fn prepare(bootstrap: &str) -> Result<(String, i64), String> {
    let leader = produce::leader_address(bootstrap)?;
    let offset = produce::with_messenger(&leader, async |m| {
        let (mut start, mut end) = log_offsets(m).await?;
        if end <= start {
            let r = m
                .request(&produce::request())
                .await
                .map_err(|e| format!("setup Produce: {e}"))?;
            if let Some(e) = r
                .responses
                .iter()
                .flat_map(|t| &t.partition_responses)
                .find_map(|p| p.error.as_ref())
            {
                return Err(format!("setup Produce error: {e:?}"));
            }
            (start, end) = log_offsets(m).await?;
            if end <= start {
                return Err(format!(
                    "{TOPIC}/0 still empty after a Produce (log {start}..{end})"
                ));
            }
        }
        let newest = end - 1;
        let r = m
            .request(&request_at(newest))
            .await
            .map_err(|e| format!("setup Fetch: {e}"))?;
        check_response(&r)
            .map_err(|e| format!("setup Fetch from offset {newest} (log {start}..{end}): {e}"))?;
        Ok(newest)
    })?;
    Ok((leader, offset))
}

/// A child's setup: [`prepare`] on the broker it was given, which must be
/// the partition's leader; fixes the offset its requests fetch from.
pub(crate) fn prepare_child(broker: &str) -> Result<(), String> {
    let (leader, offset) = prepare(broker)?;
    if leader != broker {
        return Err(format!(
            "{broker} does not lead {TOPIC}/0: {leader} does (run the child with --broker {leader})"
        ));
    }
    OFFSET
        .set(offset)
        .map_err(|_| "the Fetch offset was set twice".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rskafka::protocol::traits::WriteType;

    /// A Fetch v4 response body for [`TOPIC`], partition 0, with `error`
    /// and `records` (the encoded batches).
    fn response(error: i16, records: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle_time_ms
        b.extend_from_slice(&1i32.to_be_bytes()); // topics
        b.extend_from_slice(&(TOPIC.len() as i16).to_be_bytes());
        b.extend_from_slice(TOPIC.as_bytes());
        b.extend_from_slice(&1i32.to_be_bytes()); // partitions
        b.extend_from_slice(&0i32.to_be_bytes()); // partition_index
        b.extend_from_slice(&error.to_be_bytes());
        b.extend_from_slice(&1i64.to_be_bytes()); // high_watermark
        b.extend_from_slice(&1i64.to_be_bytes()); // last_stable_offset
        b.extend_from_slice(&0i32.to_be_bytes()); // aborted_transactions
        b.extend_from_slice(&(records.len() as i32).to_be_bytes());
        b.extend_from_slice(records);
        b
    }

    fn produce_batch() -> Vec<u8> {
        let mut out = Vec::new();
        for batch in &produce::request().topic_data[0].partition_data[0].records.0 {
            batch.write(&mut out).expect("the batch encodes");
        }
        out
    }

    #[test]
    fn the_request_asks_for_partition_0_from_offset_0_up_to_2_mib() {
        let body = body();
        // replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level.
        assert_eq!(&body[..4], &(-1i32).to_be_bytes());
        assert_eq!(&body[4..8], &1i32.to_be_bytes());
        assert_eq!(&body[8..12], &1i32.to_be_bytes());
        assert_eq!(&body[12..16], &(2i32 << 20).to_be_bytes());
        assert_eq!(body[16], 0);
        // The partition: index, fetch_offset, partition_max_bytes.
        let tail = &body[body.len() - 16..];
        assert_eq!(&tail[..4], &0i32.to_be_bytes());
        assert_eq!(&tail[4..12], &0i64.to_be_bytes());
        assert_eq!(&tail[12..], &(2i32 << 20).to_be_bytes());
    }

    #[test]
    fn a_response_with_the_produce_batch_passes() {
        let batch = produce_batch();
        check(&response(0, &batch)).unwrap();
        // A cut-off second batch (max_bytes) is ignored.
        let mut two = batch.clone();
        two.extend_from_slice(&batch[..batch.len() / 2]);
        check(&response(0, &two)).unwrap();
    }

    #[test]
    fn errors_and_empty_or_small_responses_fail() {
        let e = check(&response(1, &produce_batch())).unwrap_err();
        assert!(e.contains("OffsetOutOfRange"), "{e}");
        let e = check(&response(0, &[])).unwrap_err();
        assert!(e.contains("without a record batch"), "{e}");
        // A batch of the Produce workload's shape with a 1 KiB value.
        let mut small = produce::request();
        let batch = &mut small.topic_data[0].partition_data[0].records.0[0];
        if let ControlBatchOrRecords::Records(records) = &mut batch.records {
            records[0].value = Some(vec![b'k'; 1024]);
        }
        let mut bytes = Vec::new();
        batch.write(&mut bytes).expect("the batch encodes");
        let e = check(&response(0, &bytes)).unwrap_err();
        assert!(e.contains("with 1024 record bytes in 1 batches"), "{e}");
        let e = check(&[0, 0]).unwrap_err();
        assert!(e.starts_with("undecodable"), "{e}");
    }
}
