//! `kconn errcode`: Kafka's error codes, with what each means and whether
//! retrying the same request can help.
//!
//! Codes, names and the retriable flags are those of the protocol's error
//! list (Apache Kafka, `clients/.../common/protocol/Errors.java`, published
//! as <https://kafka.apache.org/protocol#protocol_error_codes>), up to
//! Kafka 4.1 (code 133); a test checks codes and flags against the
//! `kafka-protocol` crate's copy of the same list. The meanings are ours,
//! written for operators.

use serde::Serialize;

use crate::cli::ErrcodeArgs;
use crate::envelope::Envelope;
use crate::output::{errln, outln};

/// One error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorCode {
    /// The code on the wire.
    pub(crate) code: i16,
    /// Kafka's name for it.
    pub(crate) name: &'static str,
    /// Whether the protocol marks it retriable: the same request may
    /// succeed later without any change.
    pub(crate) retriable: bool,
    /// What it means.
    pub(crate) meaning: &'static str,
}

const fn e(code: i16, name: &'static str, retriable: bool, meaning: &'static str) -> ErrorCode {
    ErrorCode {
        code,
        name,
        retriable,
        meaning,
    }
}

/// Every code, in order.
pub(crate) const ERROR_CODES: &[ErrorCode] = &[
    e(-1, "UNKNOWN_SERVER_ERROR", false, "The broker failed in a way it has no code for; its log says why."),
    e(0, "NONE", false, "Success: no error."),
    e(1, "OFFSET_OUT_OF_RANGE", false, "The offset asked for is outside the range the partition holds (deleted by retention, or not written yet)."),
    e(2, "CORRUPT_MESSAGE", true, "A record failed its CRC check, is too large, or has a null key on a compacted topic."),
    e(3, "UNKNOWN_TOPIC_OR_PARTITION", true, "This broker does not host the topic-partition: it does not exist, or metadata is not up to date yet."),
    e(4, "INVALID_FETCH_SIZE", false, "The fetch size in the request is not valid."),
    e(5, "LEADER_NOT_AVAILABLE", true, "The partition has no leader right now (an election is going on)."),
    e(6, "NOT_LEADER_OR_FOLLOWER", true, "This broker is not the partition's leader (or not a replica of it): refresh metadata and send to the current leader."),
    e(7, "REQUEST_TIMED_OUT", true, "The broker gave up waiting (e.g. for replicas to acknowledge) within the request's timeout."),
    e(8, "BROKER_NOT_AVAILABLE", false, "The broker is not available."),
    e(9, "REPLICA_NOT_AVAILABLE", true, "The replica asked about is not available."),
    e(10, "MESSAGE_TOO_LARGE", false, "A record batch is larger than the broker or topic accepts (message.max.bytes, max.message.bytes)."),
    e(11, "STALE_CONTROLLER_EPOCH", false, "The request came from a controller that is no longer the controller."),
    e(12, "OFFSET_METADATA_TOO_LARGE", false, "The metadata string of an offset commit is too long."),
    e(13, "NETWORK_EXCEPTION", true, "The connection closed before a response arrived."),
    e(14, "COORDINATOR_LOAD_IN_PROGRESS", true, "The coordinator is still loading its state: try again shortly."),
    e(15, "COORDINATOR_NOT_AVAILABLE", true, "The group or transaction coordinator is not available."),
    e(16, "NOT_COORDINATOR", true, "This broker is not the coordinator of the group or transaction: find the coordinator again."),
    e(17, "INVALID_TOPIC_EXCEPTION", false, "The topic name is not valid, or the operation is not allowed on it (e.g. an internal topic)."),
    e(18, "RECORD_LIST_TOO_LARGE", false, "The record batch is larger than the log segment size."),
    e(19, "NOT_ENOUGH_REPLICAS", true, "Fewer in-sync replicas than min.insync.replicas: the write was refused."),
    e(20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", true, "The write reached the log, but fewer in-sync replicas than required have it."),
    e(21, "INVALID_REQUIRED_ACKS", false, "The Produce request's acks value is not valid (use 0, 1 or -1)."),
    e(22, "ILLEGAL_GENERATION", false, "The consumer group generation in the request is not the current one."),
    e(23, "INCONSISTENT_GROUP_PROTOCOL", false, "The member's protocols do not match those of the group (or are empty)."),
    e(24, "INVALID_GROUP_ID", false, "The group id is not valid (empty, for example)."),
    e(25, "UNKNOWN_MEMBER_ID", false, "The coordinator does not know this group member."),
    e(26, "INVALID_SESSION_TIMEOUT", false, "The session timeout is outside group.min/max.session.timeout.ms."),
    e(27, "REBALANCE_IN_PROGRESS", false, "The group is rebalancing: the member must rejoin."),
    e(28, "INVALID_COMMIT_OFFSET_SIZE", false, "The offset commit's data is not of a valid size."),
    e(29, "TOPIC_AUTHORIZATION_FAILED", false, "The principal is not allowed to do this on the topic (ACLs)."),
    e(30, "GROUP_AUTHORIZATION_FAILED", false, "The principal is not allowed to use the consumer group (ACLs)."),
    e(31, "CLUSTER_AUTHORIZATION_FAILED", false, "The principal is not allowed this cluster-level operation (ACLs)."),
    e(32, "INVALID_TIMESTAMP", false, "A record's timestamp is outside the range the topic accepts."),
    e(33, "UNSUPPORTED_SASL_MECHANISM", false, "The listener does not enable the SASL mechanism asked for."),
    e(34, "ILLEGAL_SASL_STATE", false, "The request is not valid in the current state of SASL authentication."),
    e(35, "UNSUPPORTED_VERSION", false, "The broker does not support this version of the API."),
    e(36, "TOPIC_ALREADY_EXISTS", false, "A topic of this name exists already."),
    e(37, "INVALID_PARTITIONS", false, "The number of partitions is not valid (below 1, or not more than today's count)."),
    e(38, "INVALID_REPLICATION_FACTOR", false, "The replication factor is below 1 or above the number of brokers."),
    e(39, "INVALID_REPLICA_ASSIGNMENT", false, "The replica assignment is not valid."),
    e(40, "INVALID_CONFIG", false, "A configuration value is not valid."),
    e(41, "NOT_CONTROLLER", true, "This broker is not the controller: send to the current controller."),
    e(42, "INVALID_REQUEST", false, "The broker could not make sense of the request (a client bug, or a broker that does not speak this version); its log says more."),
    e(43, "UNSUPPORTED_FOR_MESSAGE_FORMAT", false, "The topic's message format version does not support this request."),
    e(44, "POLICY_VIOLATION", false, "The request breaks a policy configured on the broker (e.g. create.topic.policy)."),
    e(45, "OUT_OF_ORDER_SEQUENCE_NUMBER", false, "The idempotent producer's sequence number is not the next one the broker expects."),
    e(46, "DUPLICATE_SEQUENCE_NUMBER", false, "The broker already has a batch with this sequence number."),
    e(47, "INVALID_PRODUCER_EPOCH", false, "The producer's epoch is older than the current one (another instance took over)."),
    e(48, "INVALID_TXN_STATE", false, "The transactional operation is not valid in the transaction's current state."),
    e(49, "INVALID_PRODUCER_ID_MAPPING", false, "The producer id is not the one assigned to this transactional id."),
    e(50, "INVALID_TRANSACTION_TIMEOUT", false, "The transaction timeout exceeds transaction.max.timeout.ms."),
    e(51, "CONCURRENT_TRANSACTIONS", false, "Another operation on the same transaction is in progress."),
    e(52, "TRANSACTION_COORDINATOR_FENCED", false, "The transaction coordinator that sent this is no longer the coordinator."),
    e(53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", false, "The principal may not use this transactional id (ACLs)."),
    e(54, "SECURITY_DISABLED", false, "The request needs security features that are switched off on this cluster."),
    e(55, "OPERATION_NOT_ATTEMPTED", false, "The broker did not try this part of a batched request because another part failed."),
    e(56, "KAFKA_STORAGE_ERROR", true, "A disk error on the broker while accessing the log."),
    e(57, "LOG_DIR_NOT_FOUND", false, "The log directory named in the request is not in the broker's configuration."),
    e(58, "SASL_AUTHENTICATION_FAILED", false, "SASL authentication failed: wrong credentials, or a principal the broker does not accept."),
    e(59, "UNKNOWN_PRODUCER_ID", false, "The broker no longer has state for this producer id (its records expired)."),
    e(60, "REASSIGNMENT_IN_PROGRESS", false, "A partition reassignment is going on."),
    e(61, "DELEGATION_TOKEN_AUTH_DISABLED", false, "Delegation tokens are not enabled on the cluster."),
    e(62, "DELEGATION_TOKEN_NOT_FOUND", false, "The broker does not know this delegation token."),
    e(63, "DELEGATION_TOKEN_OWNER_MISMATCH", false, "The principal is not the token's owner or renewer."),
    e(64, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED", false, "Delegation token requests are refused on this channel (PLAINTEXT, one-way TLS, or a token-authenticated one)."),
    e(65, "DELEGATION_TOKEN_AUTHORIZATION_FAILED", false, "The principal may not use delegation tokens (ACLs)."),
    e(66, "DELEGATION_TOKEN_EXPIRED", false, "The delegation token has expired."),
    e(67, "INVALID_PRINCIPAL_TYPE", false, "The principal type is not supported."),
    e(68, "NON_EMPTY_GROUP", false, "The consumer group still has members."),
    e(69, "GROUP_ID_NOT_FOUND", false, "No consumer group has this id."),
    e(70, "FETCH_SESSION_ID_NOT_FOUND", true, "The broker does not know the incremental fetch session (KIP-227)."),
    e(71, "INVALID_FETCH_SESSION_EPOCH", true, "The fetch session epoch is not the expected one."),
    e(72, "LISTENER_NOT_FOUND", true, "The partition's leader has no listener of the name this request came in on (check listener names across brokers)."),
    e(73, "TOPIC_DELETION_DISABLED", false, "Deleting topics is switched off (delete.topic.enable=false)."),
    e(74, "FENCED_LEADER_EPOCH", true, "The leader epoch in the request is older than the broker's."),
    e(75, "UNKNOWN_LEADER_EPOCH", true, "The leader epoch in the request is newer than the broker's."),
    e(76, "UNSUPPORTED_COMPRESSION_TYPE", false, "The client does not support the topic's compression type (e.g. zstd with an old fetch version)."),
    e(77, "STALE_BROKER_EPOCH", false, "The broker epoch in the request is out of date."),
    e(78, "OFFSET_NOT_AVAILABLE", true, "The new leader's high watermark has not caught up yet after an election."),
    e(79, "MEMBER_ID_REQUIRED", false, "The member must rejoin with the member id the coordinator just gave it."),
    e(80, "PREFERRED_LEADER_NOT_AVAILABLE", true, "The preferred leader could not take over."),
    e(81, "GROUP_MAX_SIZE_REACHED", false, "The consumer group has reached group.max.size."),
    e(82, "FENCED_INSTANCE_ID", false, "Another consumer registered with the same group.instance.id (static membership)."),
    e(83, "ELIGIBLE_LEADERS_NOT_AVAILABLE", true, "No eligible leader is available for the partition."),
    e(84, "ELECTION_NOT_NEEDED", true, "The partition already has the leader the election would choose."),
    e(85, "NO_REASSIGNMENT_IN_PROGRESS", false, "There is no partition reassignment to cancel."),
    e(86, "GROUP_SUBSCRIBED_TO_TOPIC", false, "Offsets cannot be deleted while the group is subscribed to the topic."),
    e(87, "INVALID_RECORD", false, "The broker refused the record after validating it (e.g. a schema or key check)."),
    e(88, "UNSTABLE_OFFSET_COMMIT", true, "Offsets with pending transactions must settle first."),
    e(89, "THROTTLING_QUOTA_EXCEEDED", true, "A controller mutation quota (KIP-599) was exceeded: try later."),
    e(90, "PRODUCER_FENCED", false, "A newer producer with the same transactional.id fenced this one."),
    e(91, "RESOURCE_NOT_FOUND", false, "The request names a resource that does not exist."),
    e(92, "DUPLICATE_RESOURCE", false, "The request names the same resource twice."),
    e(93, "UNACCEPTABLE_CREDENTIAL", false, "The credential does not meet the broker's requirements (e.g. SCRAM iterations)."),
    e(94, "INCONSISTENT_VOTER_SET", false, "The sender or receiver of a KRaft voter request is not an expected voter."),
    e(95, "INVALID_UPDATE_VERSION", false, "The feature update version is not valid."),
    e(96, "FEATURE_UPDATE_FAILED", false, "The finalized features could not be updated (a broker error)."),
    e(97, "PRINCIPAL_DESERIALIZATION_FAILURE", false, "A forwarded request's principal could not be read: a cluster security setup problem."),
    e(98, "SNAPSHOT_NOT_FOUND", false, "The KRaft snapshot asked for does not exist."),
    e(99, "POSITION_OUT_OF_RANGE", false, "The snapshot position is outside the snapshot."),
    e(100, "UNKNOWN_TOPIC_ID", true, "This broker does not host a topic with this id."),
    e(101, "DUPLICATE_BROKER_REGISTRATION", false, "Another broker registered with this broker id."),
    e(102, "BROKER_ID_NOT_REGISTERED", false, "No broker is registered with this id."),
    e(103, "INCONSISTENT_TOPIC_ID", true, "The topic id in the request is not the log's."),
    e(104, "INCONSISTENT_CLUSTER_ID", false, "The cluster id in the request is not this cluster's."),
    e(105, "TRANSACTIONAL_ID_NOT_FOUND", false, "No transaction has this transactional id."),
    e(106, "FETCH_SESSION_TOPIC_ID_ERROR", true, "The fetch session used topic ids inconsistently."),
    e(107, "INELIGIBLE_REPLICA", false, "The new in-sync replica set has a replica that may not be in it."),
    e(108, "NEW_LEADER_ELECTED", false, "The partition state changed, and so did its leader."),
    e(109, "OFFSET_MOVED_TO_TIERED_STORAGE", false, "The offset is now only in tiered storage."),
    e(110, "FENCED_MEMBER_EPOCH", false, "The group coordinator fenced the member's epoch (KIP-848): it must rejoin."),
    e(111, "UNRELEASED_INSTANCE_ID", false, "Another group member still holds this instance id."),
    e(112, "UNSUPPORTED_ASSIGNOR", false, "The group does not support the assignor (or its version)."),
    e(113, "STALE_MEMBER_EPOCH", false, "The member epoch is out of date: retry with the epoch from the next heartbeat."),
    e(114, "MISMATCHED_ENDPOINT_TYPE", false, "The request went to the wrong kind of endpoint (broker or controller)."),
    e(115, "UNSUPPORTED_ENDPOINT_TYPE", false, "This kind of endpoint is not supported yet."),
    e(116, "UNKNOWN_CONTROLLER_ID", false, "No controller has this id."),
    e(117, "UNKNOWN_SUBSCRIPTION_ID", false, "The client telemetry subscription id is unknown or out of date (KIP-714)."),
    e(118, "TELEMETRY_TOO_LARGE", false, "The pushed client telemetry is larger than the broker accepts."),
    e(119, "INVALID_REGISTRATION", false, "The controller considers the broker's registration not valid."),
    e(120, "TRANSACTION_ABORTABLE", false, "The transaction failed but can be aborted, keeping the transactional id usable."),
    e(121, "INVALID_RECORD_STATE", false, "The record's state does not allow this acknowledgement (share groups)."),
    e(122, "SHARE_SESSION_NOT_FOUND", true, "The broker does not know the share session."),
    e(123, "INVALID_SHARE_SESSION_EPOCH", true, "The share session epoch is not the expected one."),
    e(124, "FENCED_STATE_EPOCH", false, "The share-group state epoch does not match."),
    e(125, "INVALID_VOTER_KEY", false, "The voter key is not the receiving replica's."),
    e(126, "DUPLICATE_VOTER", false, "The voter is already in the voter set."),
    e(127, "VOTER_NOT_FOUND", false, "The voter is not in the voter set."),
    e(128, "INVALID_REGULAR_EXPRESSION", false, "The regular expression (a subscription pattern) is not valid."),
    e(129, "REBOOTSTRAP_REQUIRED", false, "The client's metadata is stale: it must bootstrap again from bootstrap.servers (KIP-1102)."),
    e(130, "STREAMS_INVALID_TOPOLOGY", false, "The Kafka Streams topology is not valid."),
    e(131, "STREAMS_INVALID_TOPOLOGY_EPOCH", false, "The Kafka Streams topology epoch is not valid."),
    e(132, "STREAMS_TOPOLOGY_FENCED", false, "The Kafka Streams topology epoch is out of date."),
    e(133, "SHARE_SESSION_LIMIT_REACHED", true, "The broker has as many share sessions as it allows."),
];

/// The code with this number.
pub(crate) fn by_code(code: i16) -> Option<&'static ErrorCode> {
    ERROR_CODES.iter().find(|e| e.code == code)
}

/// `SASL_AUTHENTICATION_FAILED`, `sasl-authentication-failed` and
/// `SaslAuthenticationFailed` all name code 58.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// What `kconn errcode TEXT` shows: one code by number or exact name, or
/// every code whose name contains the text.
pub(crate) fn lookup(text: &str) -> Vec<&'static ErrorCode> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i16>() {
        return by_code(n).into_iter().collect();
    }
    let wanted = normalise(text);
    if wanted.is_empty() {
        return Vec::new();
    }
    if let Some(exact) = ERROR_CODES.iter().find(|e| normalise(e.name) == wanted) {
        return vec![exact];
    }
    ERROR_CODES
        .iter()
        .filter(|e| normalise(e.name).contains(&wanted))
        .collect()
}

/// `errcode --json`'s own field.
#[derive(Debug, Serialize)]
struct Extra<'a> {
    query: Option<&'a str>,
    codes: Vec<&'static ErrorCode>,
}

/// Runs `kconn errcode`; true when something matched.
pub(crate) fn run(args: &ErrcodeArgs, json: bool) -> bool {
    let codes = match &args.code {
        Some(text) => lookup(text),
        None => ERROR_CODES.iter().collect(),
    };
    let ok = !codes.is_empty();
    if json {
        let mut envelope = Envelope::<(), _>::new(
            "errcode",
            None,
            ok,
            Vec::new(),
            Extra {
                query: args.code.as_deref(),
                codes,
            },
        );
        if !ok {
            envelope.error = Some(not_found(args.code.as_deref().unwrap_or_default()));
        }
        envelope.print();
        return ok;
    }
    if !ok {
        errln!(
            "kconn: {}",
            not_found(args.code.as_deref().unwrap_or_default()).line()
        );
        return false;
    }
    if codes.len() == 1 {
        let e = codes[0];
        outln!("{} {}", e.code, e.name);
        outln!("  {}", e.meaning);
        outln!(
            "  {}",
            if e.retriable {
                "retriable: the same request may succeed later"
            } else {
                "not retriable: retrying the same request will fail the same way"
            }
        );
        return true;
    }
    let width = codes.iter().map(|e| e.name.len()).max().unwrap_or(0);
    outln!(
        "{:>5}  {:<width$}  {:<9}  MEANING",
        "CODE",
        "NAME",
        "RETRIABLE"
    );
    for e in codes {
        outln!(
            "{:>5}  {:<width$}  {:<9}  {}",
            e.code,
            e.name,
            if e.retriable { "yes" } else { "no" },
            e.meaning
        );
    }
    true
}

fn not_found(text: &str) -> crate::diagnose::Diagnosis {
    crate::diagnose::Diagnosis::custom(
        crate::diagnose::Step::Config,
        "unknown_error_code",
        format!(
            "no Kafka error code matches {text:?} (codes run from -1 to {}): run `kconn errcode` for the list",
            ERROR_CODES.last().map_or(0, |e| e.code)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_conn_tokio::core::typed::kafka_protocol::error::ResponseError;

    #[test]
    fn codes_and_retriable_flags_match_the_kafka_protocol_crate() {
        for w in ERROR_CODES.windows(2) {
            assert!(w[0].code < w[1].code, "{} then {}", w[0].code, w[1].code);
        }
        for e in ERROR_CODES.iter().filter(|e| e.code != 0) {
            let theirs = ResponseError::try_from_code(e.code).unwrap();
            assert!(
                !matches!(theirs, ResponseError::Unknown(_)),
                "{} unknown to kafka-protocol",
                e.code
            );
            assert_eq!(theirs.is_retriable(), e.retriable, "{} {}", e.code, e.name);
            // Their variant is our name in CamelCase.
            assert_eq!(
                normalise(&format!("{theirs:?}")),
                normalise(e.name),
                "{}",
                e.code
            );
        }
        // Every code kafka-protocol knows is here.
        for code in -1..=200 {
            if let Some(theirs) = ResponseError::try_from_code(code) {
                if !matches!(theirs, ResponseError::Unknown(_)) {
                    assert!(by_code(code).is_some(), "{code} ({theirs:?}) missing");
                }
            }
        }
    }

    #[test]
    fn names_agree_with_the_core() {
        for e in ERROR_CODES {
            let core = kafka_conn_tokio::core::error_code_name(e.code);
            if core != "UNKNOWN" {
                assert_eq!(core, e.name, "{}", e.code);
            }
        }
    }

    #[test]
    fn lookups_by_number_name_and_part_of_a_name() {
        assert_eq!(lookup("58")[0].name, "SASL_AUTHENTICATION_FAILED");
        assert_eq!(lookup("-1")[0].name, "UNKNOWN_SERVER_ERROR");
        assert_eq!(lookup("sasl_authentication_failed")[0].code, 58);
        assert_eq!(lookup("SaslAuthenticationFailed")[0].code, 58);
        assert_eq!(lookup("not-leader-or-follower")[0].code, 6);
        let sasl: Vec<i16> = lookup("sasl").iter().map(|e| e.code).collect();
        assert_eq!(sasl, [33, 34, 58]);
        assert!(lookup("999").is_empty());
        assert!(lookup("no such thing").is_empty());
        assert!(lookup("--").is_empty());
    }
}
