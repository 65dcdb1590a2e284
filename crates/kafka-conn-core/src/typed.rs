//! Typed requests and responses through the [`kafka_protocol`] crate
//! (feature `kafka-protocol`).
//!
//! The core sends opaque bodies; this module turns any `kafka-protocol`
//! request type into a core [`Request`] and a [`Response`] body back into
//! the typed response:
//!
//! - **Version**: the highest both the broker (the negotiated
//!   [`ApiVersions`] table, KIP-511) and `kafka-protocol` (the message's
//!   `VERSIONS`) support ([`pick_version`]), or one the caller pins, which
//!   is refused with [`SendError::UnsupportedVersion`] before anything is
//!   sent when the broker does not offer it.
//! - **Headers**: request and response header versions come from the
//!   message types (`HeaderVersion`), not from the core's table, so a
//!   message newer than the core still gets the right headers.
//! - **Decoding** happens only on a [`Response`] the core produced, i.e.
//!   after its frame-size guard (`Config::max_frame_size`) bounded the body.
//!   `kafka-protocol` reports failures with `anyhow`; they become
//!   [`TypedError::Decode`] / [`TypedError::Encode`] with the same text.
//! - **Throttling (KIP-219)**: every response type implements
//!   [`ThrottleTime`]; [`Connection::decode_typed`](crate::Connection::decode_typed) applies the response's
//!   `throttle_time_ms` through [`Connection::handle_throttle_time`](crate::Connection::handle_throttle_time) when the
//!   version asks the client to back off ([`ApiKey::client_throttles`]).
//!
//! ```
//! use std::time::Instant;
//! use kafka_conn_core::typed::{self, kafka_protocol::messages::MetadataRequest};
//! use kafka_conn_core::{ApiKey, ApiVersions};
//!
//! // What the broker offered (normally from the connection, after Ready).
//! let broker = ApiVersions::from_ranges([(3, 0, 12), (18, 0, 4)]).unwrap();
//! let v = typed::pick_version::<MetadataRequest>(&broker, None).unwrap();
//! assert_eq!(v, 12);
//! let request = typed::encode(&MetadataRequest::default().with_topics(None), v).unwrap();
//! assert_eq!((request.api_key(), request.api_version()), (ApiKey::METADATA, 12));
//! // Pinning a version the broker does not offer fails before anything is sent:
//! let err = typed::pick_version::<MetadataRequest>(&broker, Some(13)).unwrap_err();
//! assert!(err.to_string().contains("does not support Metadata v13"), "{err}");
//! ```

use std::time::Duration;

use bytes::BytesMut;
pub use kafka_protocol;
use kafka_protocol::protocol::{HeaderVersion, Message};

use crate::api::{ApiKey, HeaderVersions};
use crate::error::SendError;
use crate::event::Response;
use crate::request::Request;
use crate::throttle::throttle_to_apply;
use crate::versions::ApiVersions;

/// The `throttle_time_ms` of a response (KIP-219): implemented for every
/// response type of `kafka-protocol`.
pub trait ThrottleTime {
    /// Whether any version of this response carries `throttle_time_ms`.
    const HAS_THROTTLE_TIME: bool;

    /// The field's value; 0 when the message (or its version) has none.
    fn throttle_time_ms(&self) -> i32;
}

macro_rules! throttle_time {
    (with: $($with:ident),* $(,)?; without: $($without:ident),* $(,)?) => {
        $(
            impl ThrottleTime for kafka_protocol::messages::$with {
                const HAS_THROTTLE_TIME: bool = true;
                fn throttle_time_ms(&self) -> i32 {
                    self.throttle_time_ms
                }
            }
        )*
        $(
            impl ThrottleTime for kafka_protocol::messages::$without {
                const HAS_THROTTLE_TIME: bool = false;
                fn throttle_time_ms(&self) -> i32 {
                    0
                }
            }
        )*
    };
}

// Every response type of kafka-protocol 0.18, split by whether it has the field.
throttle_time! {
    with:
    ProduceResponse, FetchResponse, ListOffsetsResponse, MetadataResponse, OffsetCommitResponse,
    OffsetFetchResponse, FindCoordinatorResponse, JoinGroupResponse, HeartbeatResponse,
    LeaveGroupResponse, SyncGroupResponse, DescribeGroupsResponse, ListGroupsResponse,
    ApiVersionsResponse, CreateTopicsResponse, DeleteTopicsResponse, DeleteRecordsResponse,
    InitProducerIdResponse, OffsetForLeaderEpochResponse, AddPartitionsToTxnResponse,
    AddOffsetsToTxnResponse, EndTxnResponse, TxnOffsetCommitResponse, DescribeAclsResponse,
    CreateAclsResponse, DeleteAclsResponse, DescribeConfigsResponse, AlterConfigsResponse,
    AlterReplicaLogDirsResponse, DescribeLogDirsResponse, CreatePartitionsResponse,
    CreateDelegationTokenResponse, RenewDelegationTokenResponse, ExpireDelegationTokenResponse,
    DescribeDelegationTokenResponse, DeleteGroupsResponse, ElectLeadersResponse,
    IncrementalAlterConfigsResponse, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsResponse, OffsetDeleteResponse, DescribeClientQuotasResponse,
    AlterClientQuotasResponse, DescribeUserScramCredentialsResponse,
    AlterUserScramCredentialsResponse, AlterPartitionResponse, UpdateFeaturesResponse,
    FetchSnapshotResponse, DescribeClusterResponse, DescribeProducersResponse,
    BrokerRegistrationResponse, BrokerHeartbeatResponse, UnregisterBrokerResponse,
    DescribeTransactionsResponse, ListTransactionsResponse, AllocateProducerIdsResponse,
    ConsumerGroupHeartbeatResponse, ConsumerGroupDescribeResponse,
    ControllerRegistrationResponse, GetTelemetrySubscriptionsResponse, PushTelemetryResponse,
    AssignReplicasToDirsResponse, ListConfigResourcesResponse, DescribeTopicPartitionsResponse,
    ShareGroupHeartbeatResponse, ShareGroupDescribeResponse, ShareFetchResponse,
    ShareAcknowledgeResponse, AddRaftVoterResponse, RemoveRaftVoterResponse,
    UpdateRaftVoterResponse, DescribeShareGroupOffsetsResponse, AlterShareGroupOffsetsResponse,
    DeleteShareGroupOffsetsResponse;
    without:
    SaslHandshakeResponse, WriteTxnMarkersResponse, SaslAuthenticateResponse, VoteResponse,
    BeginQuorumEpochResponse, EndQuorumEpochResponse, DescribeQuorumResponse, EnvelopeResponse,
    InitializeShareGroupStateResponse, ReadShareGroupStateResponse,
    WriteShareGroupStateResponse, DeleteShareGroupStateResponse,
    ReadShareGroupStateSummaryResponse,
}

/// Why a typed request could not be sent or its response not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TypedError {
    /// The core refused the request; nothing was sent. A pinned version the
    /// broker does not offer is [`SendError::UnsupportedVersion`].
    #[error(transparent)]
    Send(#[from] SendError),
    /// No version is supported by both the broker and `kafka-protocol`.
    #[error("no common version of {api_key}: kafka-protocol encodes v{}-v{}, {}", .ours.0, .ours.1, match .broker_range {
        Some((min, max)) => format!("the broker supports v{min}-v{max}"),
        None => "the broker does not offer this API at all".to_owned(),
    })]
    NoCommonVersion {
        /// The API.
        api_key: ApiKey,
        /// The versions `kafka-protocol` can encode.
        ours: (i16, i16),
        /// The broker's range, or `None` if it does not offer the API.
        broker_range: Option<(i16, i16)>,
    },
    /// The pinned version is outside what `kafka-protocol` can encode.
    #[error("kafka-protocol cannot encode {api_key} v{version}: it supports v{}-v{}", .ours.0, .ours.1)]
    VersionNotEncodable {
        /// The API.
        api_key: ApiKey,
        /// The version asked for.
        version: i16,
        /// The versions `kafka-protocol` can encode.
        ours: (i16, i16),
    },
    /// The versions were not negotiated yet (the connection is not ready),
    /// so no version can be picked.
    #[error("API versions are not negotiated yet: wait for Event::Ready")]
    NotNegotiated,
    /// `kafka-protocol` could not encode the request (its message, kept).
    #[error("cannot encode {api_key} v{version}: {message}")]
    Encode {
        /// The API.
        api_key: ApiKey,
        /// The version.
        version: i16,
        /// What `kafka-protocol` said.
        message: String,
    },
    /// `kafka-protocol` could not decode the response body (its message, kept).
    #[error("cannot decode the {api_key} v{version} response ({len} bytes): {message}")]
    Decode {
        /// The API.
        api_key: ApiKey,
        /// The version.
        version: i16,
        /// The body's length.
        len: usize,
        /// What `kafka-protocol` said.
        message: String,
    },
    /// The response belongs to another API than the type asked for.
    #[error("the response is to {got}, not {expected}")]
    WrongApi {
        /// The API the typed response is for.
        expected: ApiKey,
        /// The API of the response given.
        got: ApiKey,
    },
}

impl TypedError {
    /// The core's refusal, if this is one (e.g. [`SendError::UnsupportedVersion`]).
    pub fn send_error(&self) -> Option<&SendError> {
        match self {
            TypedError::Send(e) => Some(e),
            _ => None,
        }
    }
}

fn ours<R: Message>() -> (i16, i16) {
    (R::VERSIONS.min, R::VERSIONS.max)
}

/// The version to send `R` at: `pinned` if both `kafka-protocol` and the
/// broker support it, else the highest both support.
///
/// A pinned version the broker does not offer is
/// [`SendError::UnsupportedVersion`] (the core's own refusal, raised here
/// before anything is queued); one `kafka-protocol` cannot encode is
/// [`TypedError::VersionNotEncodable`].
pub fn pick_version<R: kafka_protocol::protocol::Request>(
    broker: &ApiVersions,
    pinned: Option<i16>,
) -> Result<i16, TypedError> {
    let api_key = ApiKey(R::KEY);
    let ours = ours::<R>();
    match pinned {
        Some(version) => {
            if version < ours.0 || version > ours.1 {
                return Err(TypedError::VersionNotEncodable {
                    api_key,
                    version,
                    ours,
                });
            }
            if !broker.supports(api_key, version) {
                return Err(SendError::UnsupportedVersion {
                    api_key,
                    version,
                    broker_range: broker.get(api_key),
                }
                .into());
            }
            Ok(version)
        }
        None => broker
            .negotiate(api_key, ours.0..=ours.1)
            .ok_or(TypedError::NoCommonVersion {
                api_key,
                ours,
                broker_range: broker.get(api_key),
            }),
    }
}

/// Encodes `request` at `version` into a core [`Request`] with the header
/// versions `kafka-protocol` gives for it. Does not check the broker's
/// table: see [`pick_version`].
pub fn encode<R: kafka_protocol::protocol::Request>(
    request: &R,
    version: i16,
) -> Result<Request, TypedError> {
    let api_key = ApiKey(R::KEY);
    let ours = ours::<R>();
    if version < ours.0 || version > ours.1 {
        return Err(TypedError::VersionNotEncodable {
            api_key,
            version,
            ours,
        });
    }
    let encode_error = |e: anyhow_like::Error| TypedError::Encode {
        api_key,
        version,
        message: e.0,
    };
    let size = request
        .compute_size(version)
        .map_err(|e| encode_error(e.into()))?;
    let mut body = BytesMut::with_capacity(size);
    request
        .encode(&mut body, version)
        .map_err(|e| encode_error(e.into()))?;
    let header = |v: i16, what: &str| {
        u8::try_from(v).map_err(|_| TypedError::Encode {
            api_key,
            version,
            message: format!("kafka-protocol gives {what} header version {v}"),
        })
    };
    let headers = HeaderVersions {
        request: header(R::header_version(version), "request")?,
        response: header(R::Response::header_version(version), "response")?,
    };
    Ok(Request::new(api_key, version, body.freeze()).with_header_versions(headers))
}

/// Decodes a response body into `R`'s response type. The body comes from
/// an [`crate::Event::Response`], so the core's frame-size guard has
/// already bounded it. Bytes after the message (a newer broker's fields an
/// older schema does not know) are ignored, as Kafka's own clients do.
pub fn decode<R: kafka_protocol::protocol::Request>(
    response: &Response,
) -> Result<R::Response, TypedError> {
    let expected = ApiKey(R::KEY);
    if response.api_key != expected {
        return Err(TypedError::WrongApi {
            expected,
            got: response.api_key,
        });
    }
    let mut body = response.body.clone();
    <R::Response as kafka_protocol::protocol::Decodable>::decode(&mut body, response.api_version)
        .map_err(|e| TypedError::Decode {
            api_key: expected,
            version: response.api_version,
            len: response.body.len(),
            message: anyhow_like::Error::from(e).0,
        })
}

/// The wait a decoded response asks the client for (KIP-219): its
/// `throttle_time_ms` when positive and `version` of `api_key` is one where
/// the client backs off ([`ApiKey::client_throttles`]), else `None`.
pub fn throttle_of<T: ThrottleTime>(
    api_key: ApiKey,
    version: i16,
    response: &T,
) -> Option<Duration> {
    throttle_to_apply(api_key, version, response.throttle_time_ms())
}

/// `kafka-protocol` returns `anyhow::Error`; the core does not depend on
/// `anyhow` itself, so its errors are taken through `Display` with the
/// whole chain (`{:#}`), keeping the text.
mod anyhow_like {
    pub(super) struct Error(pub(super) String);

    impl<E: std::fmt::Display> From<E> for Error {
        fn from(e: E) -> Self {
            Error(format!("{e:#}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiKey;
    use crate::CorrelationId;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Decodable, Encodable, Message, Request as _, StrBytes};

    fn broker() -> ApiVersions {
        ApiVersions::from_ranges([(0, 3, 7), (1, 4, 11), (3, 0, 8), (18, 0, 3), (19, 2, 5)])
            .unwrap()
    }

    #[test]
    fn picks_the_highest_common_version() {
        let b = broker();
        assert_eq!(pick_version::<MetadataRequest>(&b, None), Ok(8));
        assert_eq!(pick_version::<ProduceRequest>(&b, None), Ok(7));
        assert_eq!(pick_version::<FetchRequest>(&b, None), Ok(11));
        assert_eq!(pick_version::<MetadataRequest>(&b, Some(4)), Ok(4));
    }

    #[test]
    fn a_pinned_version_the_broker_lacks_is_the_cores_error() {
        let b = broker();
        let err = pick_version::<MetadataRequest>(&b, Some(9)).unwrap_err();
        assert_eq!(
            err.send_error(),
            Some(&SendError::UnsupportedVersion {
                api_key: ApiKey::METADATA,
                version: 9,
                broker_range: Some((0, 8)),
            })
        );
        assert_eq!(
            err.to_string(),
            "the broker does not support Metadata v9: it supports v0 to v8"
        );
        // An API the broker does not offer at all.
        let err = pick_version::<DeleteTopicsRequest>(&b, Some(4)).unwrap_err();
        assert!(err.to_string().contains("does not offer this API"), "{err}");
    }

    #[test]
    fn no_common_version_and_unencodable_pins() {
        // kafka-protocol encodes Produce from v3; a broker offering only v0-v2.
        let old = ApiVersions::from_ranges([(0, 0, 2)]).unwrap();
        let err = pick_version::<ProduceRequest>(&old, None).unwrap_err();
        assert!(
            matches!(
                err,
                TypedError::NoCommonVersion {
                    broker_range: Some((0, 2)),
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("the broker supports v0-v2"),
            "{err}"
        );
        let err = pick_version::<ProduceRequest>(&old, Some(1)).unwrap_err();
        assert!(
            matches!(err, TypedError::VersionNotEncodable { version: 1, .. }),
            "{err}"
        );
        assert!(matches!(
            encode(&ProduceRequest::default(), 99),
            Err(TypedError::VersionNotEncodable { version: 99, .. })
        ));
    }

    #[test]
    fn header_versions_come_from_the_message_type() {
        let r = encode(&MetadataRequest::default(), 9).unwrap();
        assert_eq!(r.api_version(), 9);
        assert_eq!(
            r.header_versions(),
            HeaderVersions {
                request: 2,
                response: 1
            }
        );
        let r = encode(&MetadataRequest::default(), 8).unwrap();
        assert_eq!(
            r.header_versions(),
            HeaderVersions {
                request: 1,
                response: 0
            }
        );
        // ApiVersions responses always use header v0 (KIP-511).
        let r = encode(&ApiVersionsRequest::default(), 3).unwrap();
        assert_eq!(
            r.header_versions(),
            HeaderVersions {
                request: 2,
                response: 0
            }
        );
    }

    #[test]
    fn the_body_is_what_kafka_protocol_encodes() {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))]));
        let r = encode(&req, 4).unwrap();
        let back = MetadataRequest::decode(&mut r.body().clone(), 4).unwrap();
        assert_eq!(back, req);
    }

    fn response_to(api_key: ApiKey, version: i16, body: impl Into<bytes::Bytes>) -> Response {
        Response {
            correlation_id: CorrelationId(1),
            api_key,
            api_version: version,
            body: body.into(),
            rtt: Duration::ZERO,
            request_bytes: 0,
            response_bytes: 0,
        }
    }

    #[test]
    fn decodes_and_maps_errors_keeping_the_text() {
        let resp = MetadataResponse::default().with_throttle_time_ms(7);
        let mut body = BytesMut::new();
        resp.encode(&mut body, 8).unwrap();
        let r = response_to(ApiKey::METADATA, 8, body.freeze());
        assert_eq!(decode::<MetadataRequest>(&r).unwrap(), resp);

        // Truncated: kafka-protocol's own message is kept.
        let short = response_to(ApiKey::METADATA, 8, r.body.slice(..3));
        let err = decode::<MetadataRequest>(&short).unwrap_err();
        let TypedError::Decode {
            len: 3,
            ref message,
            ..
        } = err
        else {
            panic!("{err:?}")
        };
        assert!(!message.is_empty());
        assert!(
            err.to_string()
                .starts_with("cannot decode the Metadata v8 response (3 bytes): "),
            "{err}"
        );

        let err = decode::<FetchRequest>(&r).unwrap_err();
        assert_eq!(err.to_string(), "the response is to Metadata, not Fetch");
    }

    #[test]
    fn throttle_follows_the_version_rule() {
        let resp = MetadataResponse::default().with_throttle_time_ms(300);
        assert_eq!(throttle_of(ApiKey::METADATA, 5, &resp), None);
        assert_eq!(
            throttle_of(ApiKey::METADATA, 6, &resp),
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            throttle_of(ApiKey::SASL_HANDSHAKE, 1, &SaslHandshakeResponse::default()),
            None
        );
    }

    /// The table in `throttle.rs` and kafka-protocol agree: every response
    /// with `throttle_time_ms` throttles the client at its newest version,
    /// and no response without it ever does.
    #[test]
    fn the_throttle_table_matches_the_message_types() {
        macro_rules! check {
            ($($req:ident),* $(,)?) => {{
                let mut n = 0;
                $(
                    n += 1;
                    let key = ApiKey($req::KEY);
                    let has = <<$req as kafka_protocol::protocol::Request>::Response as ThrottleTime>::HAS_THROTTLE_TIME;
                    assert_eq!(key.client_throttles($req::VERSIONS.max), has, "{key}");
                    assert_eq!(key.client_throttles_from().is_some(), has, "{key}");
                )*
                n
            }};
        }
        let n = check!(
            ProduceRequest,
            FetchRequest,
            ListOffsetsRequest,
            MetadataRequest,
            OffsetCommitRequest,
            OffsetFetchRequest,
            FindCoordinatorRequest,
            JoinGroupRequest,
            HeartbeatRequest,
            LeaveGroupRequest,
            SyncGroupRequest,
            DescribeGroupsRequest,
            ListGroupsRequest,
            SaslHandshakeRequest,
            ApiVersionsRequest,
            CreateTopicsRequest,
            DeleteTopicsRequest,
            DeleteRecordsRequest,
            InitProducerIdRequest,
            OffsetForLeaderEpochRequest,
            AddPartitionsToTxnRequest,
            AddOffsetsToTxnRequest,
            EndTxnRequest,
            WriteTxnMarkersRequest,
            TxnOffsetCommitRequest,
            DescribeAclsRequest,
            CreateAclsRequest,
            DeleteAclsRequest,
            DescribeConfigsRequest,
            AlterConfigsRequest,
            AlterReplicaLogDirsRequest,
            DescribeLogDirsRequest,
            SaslAuthenticateRequest,
            CreatePartitionsRequest,
            CreateDelegationTokenRequest,
            RenewDelegationTokenRequest,
            ExpireDelegationTokenRequest,
            DescribeDelegationTokenRequest,
            DeleteGroupsRequest,
            ElectLeadersRequest,
            IncrementalAlterConfigsRequest,
            AlterPartitionReassignmentsRequest,
            ListPartitionReassignmentsRequest,
            OffsetDeleteRequest,
            DescribeClientQuotasRequest,
            AlterClientQuotasRequest,
            DescribeUserScramCredentialsRequest,
            AlterUserScramCredentialsRequest,
            VoteRequest,
            BeginQuorumEpochRequest,
            EndQuorumEpochRequest,
            DescribeQuorumRequest,
            AlterPartitionRequest,
            UpdateFeaturesRequest,
            EnvelopeRequest,
            FetchSnapshotRequest,
            DescribeClusterRequest,
            DescribeProducersRequest,
            BrokerRegistrationRequest,
            BrokerHeartbeatRequest,
            UnregisterBrokerRequest,
            DescribeTransactionsRequest,
            ListTransactionsRequest,
            AllocateProducerIdsRequest,
            ConsumerGroupHeartbeatRequest,
            ConsumerGroupDescribeRequest,
            ControllerRegistrationRequest,
            GetTelemetrySubscriptionsRequest,
            PushTelemetryRequest,
            AssignReplicasToDirsRequest,
            ListConfigResourcesRequest,
            DescribeTopicPartitionsRequest,
            ShareGroupHeartbeatRequest,
            ShareGroupDescribeRequest,
            ShareFetchRequest,
            ShareAcknowledgeRequest,
            AddRaftVoterRequest,
            RemoveRaftVoterRequest,
            UpdateRaftVoterRequest,
            InitializeShareGroupStateRequest,
            ReadShareGroupStateRequest,
            WriteShareGroupStateRequest,
            DeleteShareGroupStateRequest,
            ReadShareGroupStateSummaryRequest,
            DescribeShareGroupOffsetsRequest,
            AlterShareGroupOffsetsRequest,
            DeleteShareGroupOffsetsRequest,
        );
        assert_eq!(n, 87);
    }
}
