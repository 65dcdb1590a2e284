//! The core over real sockets against real brokers written by other people
//! (tansu, noida-db and the librdkafka mock cluster, started by
//! `scripts/broker-up`),
//! driven by a plain blocking std::net loop: no async runtime involved.

mod support;

use std::time::Duration;

use bytes::Bytes;
use kafka_conn_core::{ApiKey, CloseReason, Config, Phase, ProtocolViolation, Request};
use support::blocking::Blocking;
use support::endpoint;

const LIMIT: Duration = Duration::from_secs(15);

/// A Metadata v1 request for all topics (null topic array).
fn metadata_all_topics() -> Request {
    Request::new(
        ApiKey::METADATA,
        1,
        Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]),
    )
}

#[test]
fn tansu_negotiates_api_versions_v4_and_answers_metadata() {
    let Some(addr) = endpoint("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    // tansu speaks ApiVersions v4, our first try.
    negotiates_and_answers_metadata(&addr, 4, false);
}

#[test]
fn noida_falls_back_to_api_versions_v3_and_answers_metadata() {
    let Some(addr) = endpoint("KAFKA_NOIDA_BOOTSTRAP") else {
        return;
    };
    // noida-db has ApiVersions v0-v3 (as Kafka 3.8): it answers our v4 with
    // UNSUPPORTED_VERSION and its range, and we retry with v3 (KIP-511).
    negotiates_and_answers_metadata(&addr, 3, true);
}

/// Ready on ApiVersions `version` (after a fallback or not), then Metadata,
/// alone and 200 pipelined.
fn negotiates_and_answers_metadata(addr: &str, version: i16, fell_back: bool) {
    let mut c = Blocking::connect(addr, Config::new()).unwrap();
    let versions = c.wait_ready(LIMIT).unwrap();
    assert_eq!(
        versions.negotiated_with,
        Some(version),
        "{addr}: {versions:?}"
    );
    assert_eq!(versions.fell_back, fell_back, "{addr}: {versions:?}");
    assert_eq!(
        versions.get(ApiKey::API_VERSIONS).map(|r| r.1),
        Some(version),
        "{addr}: {versions:?}"
    );
    assert!(versions.get(ApiKey::METADATA).is_some());
    assert!(versions.get(ApiKey::CREATE_TOPICS).is_some());
    let r = c.request(metadata_all_topics(), LIMIT).unwrap();
    assert_eq!(r.api_key, ApiKey::METADATA);
    // Metadata v1: brokers array first; at least one broker.
    let mut rd = kafka_conn_core::wire::Reader::new(&r.body);
    assert!(rd.array_len(1, "brokers").unwrap() >= 1);
    // Pipelined: 200 requests in flight at once, answered in order.
    let ids: Vec<_> = (0..200)
        .map(|_| {
            c.conn
                .send_request(metadata_all_topics(), std::time::Instant::now())
                .unwrap()
        })
        .collect();
    for id in ids {
        c.wait_for(id, LIMIT).unwrap();
    }
}

#[test]
fn mock_cluster_falls_back_from_its_quirky_v4_reply() {
    let Some(bootstrap) = endpoint("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    for addr in bootstrap.split(',') {
        let mut c = Blocking::connect(addr, Config::new()).unwrap();
        let versions = c
            .wait_ready(LIMIT)
            .unwrap_or_else(|r| panic!("{addr}: {r}"));
        // The mock speaks ApiVersions 0-2 only and answers v4 with a
        // non-standard body: we must end on a lower version, ready.
        assert!(versions.negotiated_with.unwrap() <= 2, "{versions:?}");
        assert!(versions.fell_back);
        assert_eq!(versions.get(ApiKey::API_VERSIONS).map(|r| r.1), Some(2));
        let metadata = c.conn.negotiate(ApiKey::METADATA, 0..=12).unwrap();
        assert!(metadata >= 1);
        c.request(metadata_all_topics(), LIMIT).unwrap();
    }
}

#[test]
fn plaintext_client_on_the_tls_port_is_told_the_broker_speaks_tls() {
    let Some(addr) = endpoint("KAFKA_TLS_BOOTSTRAP") else {
        return;
    };
    let mut c = Blocking::connect(&addr, Config::new()).unwrap();
    let reason = c.wait_ready(LIMIT).unwrap_err();
    // stunnel resets the connection rather than sending a TLS alert; either
    // way the reason must point at TLS.
    let text = reason.to_string();
    eprintln!("plaintext on the TLS port: {text}");
    assert!(text.contains("TLS"), "{text}");
    assert!(matches!(
        reason,
        CloseReason::Protocol(ProtocolViolation::LooksLikeTls)
            | CloseReason::Broken {
                during: Phase::Negotiating,
                ..
            }
    ));
}
