//! Kafka's API keys: display names and the first flexible version of each
//! (KIP-482), which decides the request and response header versions.
//!
//! The table covers every API key Apache Kafka 4.x defines, including those
//! only brokers and controllers use, so that `kconn api-versions` can name
//! whatever a broker advertises.

use std::fmt;

/// A Kafka API key (the request type), e.g. `ApiKey(3)` is Metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiKey(pub i16);

/// Where the built-in knowledge of one API ends.
struct ApiInfo {
    name: &'static str,
    /// `None`: no version of this API is flexible.
    first_flexible: Option<i16>,
}

const fn api(name: &'static str, first_flexible: i16) -> ApiInfo {
    ApiInfo {
        name,
        first_flexible: if first_flexible < 0 {
            None
        } else {
            Some(first_flexible)
        },
    }
}

/// Indexed by API key. `-1` means never flexible. From the `flexibleVersions`
/// of each message in Apache Kafka's `clients/src/main/resources/common/message`.
static APIS: [ApiInfo; 93] = [
    api("Produce", 9),
    api("Fetch", 12),
    api("ListOffsets", 6),
    api("Metadata", 9),
    api("LeaderAndIsr", 4),
    api("StopReplica", 2),
    api("UpdateMetadata", 6),
    api("ControlledShutdown", 3),
    api("OffsetCommit", 8),
    api("OffsetFetch", 6),
    api("FindCoordinator", 3),
    api("JoinGroup", 6),
    api("Heartbeat", 4),
    api("LeaveGroup", 4),
    api("SyncGroup", 4),
    api("DescribeGroups", 5),
    api("ListGroups", 3),
    api("SaslHandshake", -1),
    api("ApiVersions", 3),
    api("CreateTopics", 5),
    api("DeleteTopics", 4),
    api("DeleteRecords", 2),
    api("InitProducerId", 2),
    api("OffsetForLeaderEpoch", 4),
    api("AddPartitionsToTxn", 3),
    api("AddOffsetsToTxn", 3),
    api("EndTxn", 3),
    api("WriteTxnMarkers", 1),
    api("TxnOffsetCommit", 3),
    api("DescribeAcls", 2),
    api("CreateAcls", 2),
    api("DeleteAcls", 2),
    api("DescribeConfigs", 4),
    api("AlterConfigs", 2),
    api("AlterReplicaLogDirs", 2),
    api("DescribeLogDirs", 2),
    api("SaslAuthenticate", 2),
    api("CreatePartitions", 2),
    api("CreateDelegationToken", 2),
    api("RenewDelegationToken", 2),
    api("ExpireDelegationToken", 2),
    api("DescribeDelegationToken", 2),
    api("DeleteGroups", 2),
    api("ElectLeaders", 2),
    api("IncrementalAlterConfigs", 1),
    api("AlterPartitionReassignments", 0),
    api("ListPartitionReassignments", 0),
    api("OffsetDelete", -1),
    api("DescribeClientQuotas", 1),
    api("AlterClientQuotas", 1),
    api("DescribeUserScramCredentials", 0),
    api("AlterUserScramCredentials", 0),
    api("Vote", 0),
    api("BeginQuorumEpoch", 1),
    api("EndQuorumEpoch", 1),
    api("DescribeQuorum", 0),
    api("AlterPartition", 0),
    api("UpdateFeatures", 0),
    api("Envelope", 0),
    api("FetchSnapshot", 0),
    api("DescribeCluster", 0),
    api("DescribeProducers", 0),
    api("BrokerRegistration", 0),
    api("BrokerHeartbeat", 0),
    api("UnregisterBroker", 0),
    api("DescribeTransactions", 0),
    api("ListTransactions", 0),
    api("AllocateProducerIds", 0),
    api("ConsumerGroupHeartbeat", 0),
    api("ConsumerGroupDescribe", 0),
    api("ControllerRegistration", 0),
    api("GetTelemetrySubscriptions", 0),
    api("PushTelemetry", 0),
    api("AssignReplicasToDirs", 0),
    api("ListConfigResources", 0),
    api("DescribeTopicPartitions", 0),
    api("ShareGroupHeartbeat", 0),
    api("ShareGroupDescribe", 0),
    api("ShareFetch", 0),
    api("ShareAcknowledge", 0),
    api("AddRaftVoter", 0),
    api("RemoveRaftVoter", 0),
    api("UpdateRaftVoter", 0),
    api("InitializeShareGroupState", 0),
    api("ReadShareGroupState", 0),
    api("WriteShareGroupState", 0),
    api("DeleteShareGroupState", 0),
    api("ReadShareGroupStateSummary", 0),
    api("StreamsGroupHeartbeat", 0),
    api("StreamsGroupDescribe", 0),
    api("DescribeShareGroupOffsets", 0),
    api("AlterShareGroupOffsets", 0),
    api("DeleteShareGroupOffsets", 0),
];

impl ApiKey {
    /// Produce (0).
    pub const PRODUCE: ApiKey = ApiKey(0);
    /// Fetch (1).
    pub const FETCH: ApiKey = ApiKey(1);
    /// Metadata (3).
    pub const METADATA: ApiKey = ApiKey(3);
    /// SaslHandshake (17).
    pub const SASL_HANDSHAKE: ApiKey = ApiKey(17);
    /// ApiVersions (18).
    pub const API_VERSIONS: ApiKey = ApiKey(18);
    /// CreateTopics (19).
    pub const CREATE_TOPICS: ApiKey = ApiKey(19);
    /// SaslAuthenticate (36).
    pub const SASL_AUTHENTICATE: ApiKey = ApiKey(36);

    fn info(self) -> Option<&'static ApiInfo> {
        usize::try_from(self.0).ok().and_then(|i| APIS.get(i))
    }

    /// The API's name, e.g. "Metadata"; `None` for a key this table does not know.
    pub fn name(self) -> Option<&'static str> {
        self.info().map(|i| i.name)
    }

    /// Whether this crate's table knows the key.
    pub fn is_known(self) -> bool {
        self.info().is_some()
    }

    /// The first flexible version, or `None` if the API has none (or is unknown).
    pub fn first_flexible_version(self) -> Option<i16> {
        self.info().and_then(|i| i.first_flexible)
    }

    /// Whether `version` of this API uses the flexible encoding. Unknown keys
    /// are taken as not flexible: override the header version per request
    /// ([`crate::Request::with_header_versions`]) for APIs newer than this table.
    pub fn is_flexible(self, version: i16) -> bool {
        self.first_flexible_version().is_some_and(|f| version >= f)
    }

    /// The header versions for `version` of this API: request v2 and response
    /// v1 when flexible, else v1 and v0. ApiVersions responses always use
    /// header v0 so that any client can read the error code (KIP-511).
    pub fn header_versions(self, version: i16) -> HeaderVersions {
        let flexible = self.is_flexible(version);
        HeaderVersions {
            request: if flexible { 2 } else { 1 },
            response: if flexible && self != ApiKey::API_VERSIONS {
                1
            } else {
                0
            },
        }
    }

    /// Every API key in the built-in table.
    pub fn all() -> impl Iterator<Item = ApiKey> {
        (0..APIS.len() as i16).map(ApiKey)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "ApiKey({})", self.0),
        }
    }
}

impl From<i16> for ApiKey {
    fn from(k: i16) -> Self {
        ApiKey(k)
    }
}

/// Request and response header versions of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderVersions {
    /// Request header version: 0 (no client id), 1 or 2 (tagged fields).
    pub request: u8,
    /// Response header version: 0, or 1 (tagged fields).
    pub response: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_flexible_versions() {
        assert_eq!(ApiKey(0).name(), Some("Produce"));
        assert_eq!(ApiKey(60).name(), Some("DescribeCluster"));
        assert_eq!(ApiKey(92).name(), Some("DeleteShareGroupOffsets"));
        assert_eq!(ApiKey(1000).name(), None);
        assert_eq!(ApiKey(-1).name(), None);
        assert_eq!(ApiKey(-1).to_string(), "ApiKey(-1)");
        assert!(ApiKey::METADATA.is_flexible(9));
        assert!(!ApiKey::METADATA.is_flexible(8));
        assert!(!ApiKey::SASL_HANDSHAKE.is_flexible(1));
    }

    #[test]
    fn api_versions_responses_use_header_v0() {
        let h = ApiKey::API_VERSIONS.header_versions(3);
        assert_eq!((h.request, h.response), (2, 0));
        let h = ApiKey::API_VERSIONS.header_versions(2);
        assert_eq!((h.request, h.response), (1, 0));
        let h = ApiKey::FETCH.header_versions(12);
        assert_eq!((h.request, h.response), (2, 1));
    }
}
