//! KIP-219 client-side throttling: which responses ask the client to back
//! off, and for how long. The connection applies it
//! ([`crate::Connection::handle_throttle_time`]).
//!
//! Before Kafka 2.0 a broker over its quota delayed the *response* by the
//! throttle time. KIP-219 turned that around: the broker answers at once
//! with `throttle_time_ms` and mutes the channel, and a client that sees a
//! non-zero value must not send more requests on that connection until the
//! time has passed. Each API marked the change by bumping its version in
//! Kafka 2.0; a response below that version still reports the (already
//! served) delay, which the client must not wait out a second time.

use std::time::Duration;

use crate::api::ApiKey;

/// `NEVER`: no version of the API's response carries `throttle_time_ms`.
const NEVER: i16 = -1;

/// Indexed by API key: the first response version whose `throttle_time_ms`
/// the client must honour (KIP-219), or [`NEVER`].
///
/// Source: the `shouldClientThrottle(version)` override of each response
/// class in Apache Kafka's `org.apache.kafka.common.requests` (the KIP-219
/// bumps of Kafka 2.0: Produce v6, Fetch v8, ListOffsets v3, Metadata v6,
/// OffsetCommit/OffsetFetch v4, JoinGroup/CreateTopics v3, the group APIs,
/// ApiVersions, DeleteTopics and DescribeConfigs v2, the rest v1). APIs
/// added after KIP-219 answer before throttling from their first version
/// (0). Where the Java client's class keeps the default `false` for such a
/// newer API (e.g. DescribeCluster, ConsumerGroupHeartbeat, or
/// OffsetForLeaderEpoch, whose `throttle_time_ms` arrived in v2 with Kafka
/// 2.1), this table still says "throttle": a broker that sends the field
/// has already muted the channel for that long, so holding requests on our
/// side costs nothing and keeps them from timing out behind the mute.
/// APIs without the field (SASL, Raft, share-group state, ...) never do.
static CLIENT_THROTTLES_FROM: [i16; 93] = [
    6,     // 0 Produce
    8,     // 1 Fetch
    3,     // 2 ListOffsets
    6,     // 3 Metadata
    NEVER, // 4 LeaderAndIsr (inter-broker, no throttle_time_ms)
    NEVER, // 5 StopReplica
    NEVER, // 6 UpdateMetadata
    NEVER, // 7 ControlledShutdown
    4,     // 8 OffsetCommit
    4,     // 9 OffsetFetch
    2,     // 10 FindCoordinator
    3,     // 11 JoinGroup
    2,     // 12 Heartbeat
    2,     // 13 LeaveGroup
    2,     // 14 SyncGroup
    2,     // 15 DescribeGroups
    2,     // 16 ListGroups
    NEVER, // 17 SaslHandshake
    2,     // 18 ApiVersions
    3,     // 19 CreateTopics
    2,     // 20 DeleteTopics
    1,     // 21 DeleteRecords
    1,     // 22 InitProducerId
    2,     // 23 OffsetForLeaderEpoch (field added in v2, after KIP-219)
    1,     // 24 AddPartitionsToTxn
    1,     // 25 AddOffsetsToTxn
    1,     // 26 EndTxn
    NEVER, // 27 WriteTxnMarkers
    1,     // 28 TxnOffsetCommit
    1,     // 29 DescribeAcls
    1,     // 30 CreateAcls
    1,     // 31 DeleteAcls
    2,     // 32 DescribeConfigs
    1,     // 33 AlterConfigs
    1,     // 34 AlterReplicaLogDirs
    1,     // 35 DescribeLogDirs
    NEVER, // 36 SaslAuthenticate
    1,     // 37 CreatePartitions
    1,     // 38 CreateDelegationToken
    1,     // 39 RenewDelegationToken
    1,     // 40 ExpireDelegationToken
    1,     // 41 DescribeDelegationToken
    1,     // 42 DeleteGroups
    0,     // 43 ElectLeaders
    0,     // 44 IncrementalAlterConfigs
    0,     // 45 AlterPartitionReassignments
    0,     // 46 ListPartitionReassignments
    0,     // 47 OffsetDelete
    0,     // 48 DescribeClientQuotas
    0,     // 49 AlterClientQuotas
    0,     // 50 DescribeUserScramCredentials
    0,     // 51 AlterUserScramCredentials
    NEVER, // 52 Vote
    NEVER, // 53 BeginQuorumEpoch
    NEVER, // 54 EndQuorumEpoch
    NEVER, // 55 DescribeQuorum
    0,     // 56 AlterPartition
    0,     // 57 UpdateFeatures
    NEVER, // 58 Envelope
    0,     // 59 FetchSnapshot
    0,     // 60 DescribeCluster
    0,     // 61 DescribeProducers
    0,     // 62 BrokerRegistration
    0,     // 63 BrokerHeartbeat
    0,     // 64 UnregisterBroker
    0,     // 65 DescribeTransactions
    0,     // 66 ListTransactions
    0,     // 67 AllocateProducerIds
    0,     // 68 ConsumerGroupHeartbeat
    0,     // 69 ConsumerGroupDescribe
    0,     // 70 ControllerRegistration
    0,     // 71 GetTelemetrySubscriptions
    0,     // 72 PushTelemetry
    0,     // 73 AssignReplicasToDirs
    0,     // 74 ListConfigResources
    0,     // 75 DescribeTopicPartitions
    0,     // 76 ShareGroupHeartbeat
    0,     // 77 ShareGroupDescribe
    0,     // 78 ShareFetch
    0,     // 79 ShareAcknowledge
    0,     // 80 AddRaftVoter
    0,     // 81 RemoveRaftVoter
    0,     // 82 UpdateRaftVoter
    NEVER, // 83 InitializeShareGroupState
    NEVER, // 84 ReadShareGroupState
    NEVER, // 85 WriteShareGroupState
    NEVER, // 86 DeleteShareGroupState
    NEVER, // 87 ReadShareGroupStateSummary
    0,     // 88 StreamsGroupHeartbeat
    0,     // 89 StreamsGroupDescribe
    0,     // 90 DescribeShareGroupOffsets
    0,     // 91 AlterShareGroupOffsets
    0,     // 92 DeleteShareGroupOffsets
];

impl ApiKey {
    /// The first version of this API whose responses' `throttle_time_ms`
    /// the client must wait out itself (KIP-219), or `None` if no version
    /// carries the field. Keys newer than this crate's table (all added
    /// after KIP-219) throttle from version 0; negative keys never.
    pub fn client_throttles_from(self) -> Option<i16> {
        let Ok(index) = usize::try_from(self.0) else {
            return None;
        };
        match CLIENT_THROTTLES_FROM.get(index) {
            Some(&NEVER) => None,
            Some(&v) => Some(v),
            // KIP-219: every API added since answers first and throttles after.
            None => Some(0),
        }
    }

    /// Whether a response to `version` of this API with a non-zero
    /// `throttle_time_ms` asks the client to hold its next requests
    /// (KIP-219). Below that version the broker has already delayed the
    /// response itself, so the client must not wait again.
    pub fn client_throttles(self, version: i16) -> bool {
        self.client_throttles_from().is_some_and(|v| version >= v)
    }
}

/// The wait a response asks for, if the client must wait it out (KIP-219):
/// `None` for zero or negative times and for versions the broker throttled
/// itself.
pub(crate) fn throttle_to_apply(
    api_key: ApiKey,
    version: i16,
    throttle_time_ms: i32,
) -> Option<Duration> {
    let ms = u64::try_from(throttle_time_ms).ok().filter(|&ms| ms > 0)?;
    api_key
        .client_throttles(version)
        .then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kafka_2_0_bumps() {
        // KIP-219: Produce v6, Fetch v8, Metadata v6, ApiVersions v2.
        for (key, first) in [
            (ApiKey::PRODUCE, 6),
            (ApiKey::FETCH, 8),
            (ApiKey::METADATA, 6),
            (ApiKey::API_VERSIONS, 2),
            (ApiKey::CREATE_TOPICS, 3),
            (ApiKey(2), 3),
            (ApiKey(8), 4),
            (ApiKey(42), 1),
        ] {
            assert!(!key.client_throttles(first - 1), "{key} v{}", first - 1);
            assert!(key.client_throttles(first), "{key} v{first}");
            assert!(key.client_throttles(first + 5), "{key} v{}", first + 5);
        }
    }

    #[test]
    fn newer_apis_always_and_fieldless_apis_never() {
        assert!(ApiKey(60).client_throttles(0)); // DescribeCluster
        assert!(ApiKey(75).client_throttles(0)); // DescribeTopicPartitions
        assert!(ApiKey(500).client_throttles(0)); // newer than the table
        for key in [17, 36, 52, 58, 83, 27, 4, -1, -300] {
            assert_eq!(ApiKey(key).client_throttles_from(), None, "{key}");
            assert!(!ApiKey(key).client_throttles(i16::MAX), "{key}");
        }
        assert_eq!(CLIENT_THROTTLES_FROM.len(), ApiKey::all().count());
    }

    #[test]
    fn only_positive_times_at_throttling_versions_apply() {
        let ms = Duration::from_millis;
        assert_eq!(throttle_to_apply(ApiKey::PRODUCE, 6, 250), Some(ms(250)));
        assert_eq!(throttle_to_apply(ApiKey::PRODUCE, 5, 250), None);
        assert_eq!(throttle_to_apply(ApiKey::PRODUCE, 9, 0), None);
        assert_eq!(throttle_to_apply(ApiKey::PRODUCE, 9, -5), None);
        assert_eq!(throttle_to_apply(ApiKey::SASL_AUTHENTICATE, 2, 100), None);
    }
}
