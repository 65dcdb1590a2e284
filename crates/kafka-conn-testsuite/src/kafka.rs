//! Requests whose responses prove they answer the right request.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_conn_driver::core::wire::Reader;
use kafka_conn_driver::core::{ApiKey, Request, Response};

/// Metadata v4 for one topic, without auto-creation: the broker echoes the
/// topic name, so a response given to the wrong caller is caught.
pub fn metadata_for(topic: &str) -> Request {
    let mut b = BytesMut::new();
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_u8(0); // allow_auto_topic_creation = false
    Request::new(ApiKey::METADATA, 4, b.freeze())
}

/// The topic names in a Metadata v4 response.
pub fn metadata_topics(r: &Response) -> Vec<String> {
    assert_eq!(r.api_key, ApiKey::METADATA);
    assert_eq!(r.api_version, 4);
    let mut rd = Reader::new(&r.body);
    rd.i32("throttle").unwrap();
    for _ in 0..rd.array_len(10, "brokers").unwrap() {
        rd.i32("node").unwrap();
        rd.string("host").unwrap();
        rd.i32("port").unwrap();
        rd.nullable_string("rack").unwrap();
    }
    rd.nullable_string("cluster").unwrap();
    rd.i32("controller").unwrap();
    let mut names = Vec::new();
    for _ in 0..rd.array_len(7, "topics").unwrap() {
        rd.i16("error").unwrap();
        names.push(rd.string("name").unwrap().to_owned());
        rd.i8("internal").unwrap();
        // Partitions of an unknown topic: none to skip in practice; bail
        // out of parsing if a broker lists some (names are all we check).
        if rd.array_len(0, "partitions").unwrap() > 0 {
            break;
        }
    }
    names
}

/// Asserts `r` answers [`metadata_for`]`(topic)`.
pub fn assert_metadata_for(r: &Response, topic: &str) {
    let names = metadata_topics(r);
    assert_eq!(names, [topic], "response given to the wrong request");
}

/// Metadata v1 for all topics (every broker from 0.10 on has it).
pub fn metadata_all() -> Request {
    Request::new(ApiKey::METADATA, 1, Bytes::from_static(&[0xff; 4]))
}

/// ApiVersions v0 (empty body).
pub fn api_versions_v0() -> Request {
    Request::new(ApiKey::API_VERSIONS, 0, Bytes::new())
}

/// The error code of an ApiVersions response.
pub fn api_versions_error(r: &Response) -> i16 {
    assert_eq!(r.api_key, ApiKey::API_VERSIONS);
    Reader::new(&r.body).i16("error").unwrap()
}
