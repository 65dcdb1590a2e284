//! The few Kafka request bodies kconn sends, encoded by hand, and the parts
//! of their responses it reads.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_conn_tokio::core::wire::{DecodeError, Reader, WriteExt};
use kafka_conn_tokio::core::{error_code_name, ApiKey, Request};
use kafka_conn_tokio::Client;

use crate::settings::{SOFTWARE_NAME, SOFTWARE_VERSION};

/// ApiVersions versions kconn can encode (v3+ carries the client software, KIP-511).
pub(crate) const API_VERSIONS_RANGE: std::ops::RangeInclusive<i16> = 0..=3;
/// Metadata versions kconn can encode: v1-v7 share a simple non-flexible
/// layout, and v1 (Kafka 0.10.0) is where "no topics" became expressible.
pub(crate) const METADATA_RANGE: std::ops::RangeInclusive<i16> = 1..=7;

/// The ApiVersions request body at `version` (0-3).
pub(crate) fn api_versions_body(version: i16) -> Bytes {
    let mut b = BytesMut::new();
    if version >= 3 {
        b.put_compact_string(SOFTWARE_NAME);
        b.put_compact_string(SOFTWARE_VERSION);
        b.put_empty_tagged_fields();
    }
    b.freeze()
}

/// A Metadata request (v1-v7) for no topics: the broker list and controller only.
pub(crate) fn metadata_body(version: i16) -> Bytes {
    let mut b = BytesMut::new();
    // topics: an empty array (v1+; a null array would mean all topics).
    b.put_i32(0);
    if version >= 4 {
        // allow_auto_topic_creation
        b.put_u8(0);
    }
    b.freeze()
}

/// A request kconn knows how to build, at the highest version both sides support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// ApiVersions.
    ApiVersions,
    /// Metadata for no topics.
    Metadata,
}

/// The broker offers no version of the request that kconn can encode.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the broker supports no {api} version kconn can send (kconn: v{}-v{}, broker: {broker})", ours.start(), ours.end())]
pub(crate) struct NoCommonVersion {
    /// The API.
    pub(crate) api: ApiKey,
    /// What kconn encodes.
    pub(crate) ours: std::ops::RangeInclusive<i16>,
    /// What the broker offers.
    pub(crate) broker: String,
}

impl Probe {
    /// The API key.
    pub(crate) fn api_key(self) -> ApiKey {
        match self {
            Probe::ApiVersions => ApiKey::API_VERSIONS,
            Probe::Metadata => ApiKey::METADATA,
        }
    }

    fn range(self) -> std::ops::RangeInclusive<i16> {
        match self {
            Probe::ApiVersions => API_VERSIONS_RANGE,
            Probe::Metadata => METADATA_RANGE,
        }
    }

    /// The request at the highest version `client`'s broker and kconn share.
    pub(crate) fn request(self, client: &Client) -> Result<Request, NoCommonVersion> {
        let key = self.api_key();
        let version = client
            .negotiate(key, self.range())
            .ok_or_else(|| NoCommonVersion {
                api: key,
                ours: self.range(),
                broker: client
                    .api_versions()
                    .get(key)
                    .map_or("not offered".to_owned(), |(min, max)| {
                        format!("v{min}-v{max}")
                    }),
            })?;
        let body = match self {
            Probe::ApiVersions => api_versions_body(version),
            Probe::Metadata => metadata_body(version),
        };
        Ok(Request::new(key, version, body))
    }
}

/// A response whose error code is not 0.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ResponseError {
    /// The broker answered with an error code.
    #[error("the broker answered {api} with error {code} {}", error_code_name(*.code))]
    Code {
        /// The API.
        api: ApiKey,
        /// The code.
        code: i16,
    },
    /// The body could not be read.
    #[error("cannot decode the {api} response: {error}")]
    Decode {
        /// The API.
        api: ApiKey,
        /// Why.
        error: DecodeError,
    },
}

/// Checks a response of a [`Probe`] request: ApiVersions' error code, or
/// that a Metadata body decodes.
pub(crate) fn check_response(api: ApiKey, version: i16, body: &[u8]) -> Result<(), ResponseError> {
    if api == ApiKey::API_VERSIONS {
        let code = Reader::new(body)
            .i16("error_code")
            .map_err(|error| ResponseError::Decode { api, error })?;
        return match code {
            0 => Ok(()),
            code => Err(ResponseError::Code { api, code }),
        };
    }
    decode_metadata(body, version)
        .map(drop)
        .map_err(|error| ResponseError::Decode { api, error })
}

/// One broker as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct AdvertisedBroker {
    /// node.id
    pub(crate) node_id: i32,
    /// The advertised host.
    pub(crate) host: String,
    /// The advertised port.
    pub(crate) port: i32,
    /// broker.rack
    pub(crate) rack: Option<String>,
}

/// The broker part of a Metadata response.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct MetadataSummary {
    /// The brokers, as advertised.
    pub(crate) brokers: Vec<AdvertisedBroker>,
    /// The cluster id (v2+).
    pub(crate) cluster_id: Option<String>,
    /// The controller's node id (-1 or absent when unknown).
    pub(crate) controller_id: Option<i32>,
}

/// Decodes the brokers, cluster id and controller of a Metadata v1-v7
/// response (the topics, which follow, are not read).
pub(crate) fn decode_metadata(body: &[u8], version: i16) -> Result<MetadataSummary, DecodeError> {
    let mut r = Reader::new(body);
    if version >= 3 {
        r.i32("throttle_time_ms")?;
    }
    // node_id (4) + host (2) + port (4) + rack (2): at least 12 bytes each.
    let n = r.array_len(12, "brokers")?;
    let mut brokers = Vec::with_capacity(n);
    for _ in 0..n {
        let node_id = r.i32("node_id")?;
        let host = r.string("host")?.to_owned();
        let port = r.i32("port")?;
        let rack = if version >= 1 {
            r.nullable_string("rack")?.map(str::to_owned)
        } else {
            None
        };
        brokers.push(AdvertisedBroker {
            node_id,
            host,
            port,
            rack,
        });
    }
    let cluster_id = if version >= 2 {
        r.nullable_string("cluster_id")?.map(str::to_owned)
    } else {
        None
    };
    let controller_id = if version >= 1 {
        Some(r.i32("controller_id")?).filter(|id| *id >= 0)
    } else {
        None
    };
    Ok(MetadataSummary {
        brokers,
        cluster_id,
        controller_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_bodies() {
        for v in 0..=2 {
            assert!(api_versions_body(v).is_empty());
        }
        let v3 = api_versions_body(3);
        let mut expected = vec![SOFTWARE_NAME.len() as u8 + 1];
        expected.extend_from_slice(SOFTWARE_NAME.as_bytes());
        expected.push(SOFTWARE_VERSION.len() as u8 + 1);
        expected.extend_from_slice(SOFTWARE_VERSION.as_bytes());
        expected.push(0);
        assert_eq!(&v3[..], &expected[..]);
    }

    #[test]
    fn metadata_bodies_ask_for_no_topics() {
        for v in 1..=3 {
            assert_eq!(&metadata_body(v)[..], &[0, 0, 0, 0]);
        }
        for v in 4..=7 {
            assert_eq!(&metadata_body(v)[..], &[0, 0, 0, 0, 0]);
        }
    }

    fn metadata_response(version: i16) -> Vec<u8> {
        let mut b = BytesMut::new();
        if version >= 3 {
            b.put_i32(0);
        }
        b.put_i32(2);
        for (id, host, rack) in [(1, "b1.example", Some("r1")), (2, "b2.example", None)] {
            b.put_i32(id);
            b.put_nullable_string(Some(host));
            b.put_i32(9092);
            b.put_nullable_string(rack);
        }
        if version >= 2 {
            b.put_nullable_string(Some("cluster-1"));
        }
        b.put_i32(2);
        b.put_i32(0); // topics
        b.to_vec()
    }

    #[test]
    fn metadata_responses_decode_at_each_version() {
        for v in METADATA_RANGE {
            let m = decode_metadata(&metadata_response(v), v).unwrap();
            assert_eq!(m.brokers.len(), 2);
            assert_eq!(m.brokers[0].host, "b1.example");
            assert_eq!(m.brokers[0].rack.as_deref(), Some("r1"));
            assert_eq!(m.brokers[1].rack, None);
            assert_eq!(m.controller_id, Some(2));
            assert_eq!(m.cluster_id.as_deref(), (v >= 2).then_some("cluster-1"));
            check_response(ApiKey::METADATA, v, &metadata_response(v)).unwrap();
        }
    }

    #[test]
    fn truncated_metadata_is_an_error() {
        let full = metadata_response(7);
        for n in 0..full.len() - 4 {
            assert!(decode_metadata(&full[..n], 7).is_err(), "{n} bytes");
        }
    }

    #[test]
    fn api_versions_error_codes_are_reported() {
        check_response(ApiKey::API_VERSIONS, 0, &[0, 0, 0, 0, 0, 0]).unwrap();
        let e = check_response(ApiKey::API_VERSIONS, 3, &[0, 35]).unwrap_err();
        assert!(e.to_string().contains("error 35"), "{e}");
        assert!(check_response(ApiKey::API_VERSIONS, 0, &[0]).is_err());
    }
}
