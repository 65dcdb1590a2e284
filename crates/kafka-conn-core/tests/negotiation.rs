//! API version negotiation (KIP-511) against the simulated broker: the
//! happy path, fallbacks, malicious and broken brokers, version hints.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_conn_core::sim::{
    api_versions_reply, Action, Pair, ReceivedRequest, SimBroker, DEFAULT_VERSIONS,
};
use kafka_conn_core::wire::Reader;
use kafka_conn_core::{
    server, ApiKey, ApiVersions, CloseReason, Config, ConfigError, Connection, Event,
    Incompatibility, ProtocolViolation, Request, RequestError, SendError, State, TimeoutKind,
};

fn ready_versions(events: &[Event]) -> Arc<ApiVersions> {
    match events.first() {
        Some(Event::Ready { api_versions, .. }) => api_versions.clone(),
        other => panic!("expected Ready first, got {other:?} in {events:?}"),
    }
}

fn close_reason(events: &[Event]) -> CloseReason {
    match events.last() {
        Some(Event::Closed(r)) => r.clone(),
        other => panic!("expected Closed last, got {other:?}"),
    }
}

/// The versions of the ApiVersions requests the broker saw.
fn api_versions_sent(p: &Pair) -> Vec<i16> {
    p.broker
        .received
        .iter()
        .filter(|r| r.api_key == ApiKey::API_VERSIONS)
        .map(|r| r.api_version)
        .collect()
}

#[test]
fn v4_accepted_and_the_table_is_recorded() {
    let mut p = Pair::new(
        Config::new().with_client_software("my-app", "1.2.3"),
        SimBroker::echo(),
    );
    p.drive();
    let table = ready_versions(&p.events);
    assert_eq!(api_versions_sent(&p), vec![4]);
    assert_eq!(table.negotiated_with, Some(4));
    assert!(!table.fell_back);
    assert_eq!(table.get(ApiKey::METADATA), Some((0, 12)));
    assert_eq!(p.conn.negotiate(ApiKey::METADATA, 0..=9), Some(9));
    assert_eq!(p.conn.negotiate(ApiKey::FETCH, 18..=20), None);
    assert_eq!(p.conn.api_versions().unwrap().len(), DEFAULT_VERSIONS.len());
    // v3+ carries the client software name and version (KIP-511), in a v2 header.
    let req = &p.broker.received[0];
    assert_eq!(req.client_id.as_deref(), Some("kafka-conn"));
    let mut r = Reader::new(&req.body);
    assert_eq!(r.compact_string("name").unwrap(), "my-app");
    assert_eq!(r.compact_string("version").unwrap(), "1.2.3");
}

fn table_broker(table: &'static [(i16, i16, i16)]) -> SimBroker {
    SimBroker::new(Box::new(move |r| {
        vec![api_versions_reply(r, table).unwrap_or(Action::Respond(r.body.clone()))]
    }))
}

#[test]
fn unsupported_version_with_a_v0_body_retries_at_the_brokers_max() {
    // A broker whose ApiVersions goes to v2 answers v4 with error 35 and a v0 body.
    static OLD: &[(i16, i16, i16)] = &[(0, 0, 7), (3, 0, 8), (18, 0, 2)];
    let mut p = Pair::new(Config::new(), table_broker(OLD));
    p.drive();
    assert_eq!(api_versions_sent(&p), vec![4, 2]);
    let table = ready_versions(&p.events);
    assert_eq!(table.negotiated_with, Some(2));
    assert!(table.fell_back);
    assert_eq!(table.get(ApiKey::METADATA), Some((0, 8)));
}

#[test]
fn unsupported_version_without_an_api_versions_entry_retries_at_v0() {
    let broker = SimBroker::new(Box::new(|r: &ReceivedRequest| {
        if r.api_key == ApiKey::API_VERSIONS && r.api_version > 0 {
            let mut b = BytesMut::new();
            server::api_versions_response(&mut b, 0, 35, &[]);
            return vec![Action::Respond(b.freeze())];
        }
        vec![api_versions_reply(r, &[(3, 0, 1), (18, 0, 0)]).unwrap()]
    }));
    let mut p = Pair::new(Config::new(), broker);
    p.drive();
    assert_eq!(api_versions_sent(&p), vec![4, 0]);
    assert_eq!(
        ready_versions(&p.events).get(ApiKey::METADATA),
        Some((0, 1))
    );
}

#[test]
fn a_broker_that_keeps_answering_unsupported_cannot_hold_us_in_a_loop() {
    for claimed_max in [4i16, 9, 3] {
        let broker = SimBroker::new(Box::new(move |r: &ReceivedRequest| {
            // Always 35, advertising the same or a higher ApiVersions max.
            let mut b = BytesMut::new();
            server::api_versions_response(
                &mut b,
                0,
                35,
                &[(18, 0, claimed_max.max(r.api_version))],
            );
            vec![Action::Respond(b.freeze())]
        }));
        let mut p = Pair::new(Config::new(), broker);
        p.drive();
        let sent = api_versions_sent(&p);
        assert!(sent.len() <= 5, "{claimed_max}: {sent:?}");
        assert!(
            sent.windows(2).all(|w| w[1] < w[0]),
            "strictly lower each time: {sent:?}"
        );
        let r = close_reason(&p.events);
        assert!(
            matches!(
                r,
                CloseReason::Incompatible(Incompatibility::Negotiation(_))
            ),
            "{r}"
        );
        assert!(!r.is_retriable());
    }
}

#[test]
fn an_undecodable_v4_reply_falls_back_to_v0_once() {
    // Like the librdkafka mock cluster: error 35 with a body that is not a
    // valid v0 body (a one-byte "compact" count holding the raw count).
    let broker = SimBroker::new(Box::new(|r: &ReceivedRequest| {
        if r.api_key == ApiKey::API_VERSIONS && r.api_version >= 3 {
            let mut b = BytesMut::new();
            b.put_i16(35);
            b.put_u8(1);
            b.put_slice(&[0, 18, 0, 0, 0, 2]);
            return vec![Action::Respond(b.freeze())];
        }
        vec![api_versions_reply(r, &[(3, 0, 9), (18, 0, 2)]).unwrap()]
    }));
    let mut p = Pair::new(Config::new(), broker);
    p.drive();
    assert_eq!(api_versions_sent(&p), vec![4, 0]);
    assert_eq!(ready_versions(&p.events).negotiated_with, Some(0));

    // Garbage with error 0 at v4: one retry at v0.
    let broker = SimBroker::new(Box::new(|r: &ReceivedRequest| {
        if r.api_version >= 3 {
            return vec![Action::Respond(Bytes::from_static(&[
                0, 0, 0xff, 0xff, 0xff,
            ]))];
        }
        vec![api_versions_reply(r, &[(3, 0, 9), (18, 0, 2)]).unwrap()]
    }));
    let mut p = Pair::new(Config::new(), broker);
    p.drive();
    assert_eq!(api_versions_sent(&p), vec![4, 0]);
    assert!(matches!(p.events[0], Event::Ready { .. }));
}

#[test]
fn garbage_at_v0_closes_as_malformed() {
    let broker = SimBroker::new(Box::new(|_: &ReceivedRequest| {
        vec![Action::Respond(Bytes::from_static(&[
            0, 0, 0x7f, 0, 0, 0, 1,
        ]))]
    }));
    let mut p = Pair::new(Config::new(), broker);
    p.drive();
    assert_eq!(api_versions_sent(&p), vec![4, 0]);
    let r = close_reason(&p.events);
    assert!(
        matches!(
            r,
            CloseReason::Protocol(ProtocolViolation::MalformedResponse {
                api_key: ApiKey::API_VERSIONS,
                ..
            })
        ),
        "{r}"
    );
}

#[test]
fn other_errors_and_invalid_tables_close_as_incompatible() {
    let err_broker = SimBroker::new(Box::new(|r: &ReceivedRequest| {
        let mut b = BytesMut::new();
        server::api_versions_response(&mut b, r.api_version, 42, &[(18, 0, 4)]);
        vec![Action::Respond(b.freeze())]
    }));
    let mut p = Pair::new(Config::new(), err_broker);
    p.drive();
    let r = close_reason(&p.events);
    assert!(r.to_string().contains("INVALID_REQUEST"), "{r}");

    for bad in [&[][..], &[(3, 5, 2)][..]] {
        let bad = bad.to_vec();
        let broker = SimBroker::new(Box::new(move |r: &ReceivedRequest| {
            let mut b = BytesMut::new();
            server::api_versions_response(&mut b, r.api_version, 0, &bad);
            vec![Action::Respond(b.freeze())]
        }));
        let mut p = Pair::new(Config::new(), broker);
        p.drive();
        assert!(matches!(
            close_reason(&p.events),
            CloseReason::Incompatible(_)
        ));
    }
}

#[test]
fn api_versions_timeout_closes_the_connection() {
    let mut p = Pair::new(
        Config::new()
            .with_handshake_timeout(Duration::from_secs(60))
            .with_request_timeout(Duration::from_secs(5)),
        SimBroker::new(Box::new(|_| vec![Action::Ignore])),
    );
    p.drive();
    // First (1 s) the written transmit queue's memory goes back (the
    // default release), which closes nothing; then (5 s) the request.
    let start = p.now;
    assert!(p.advance_to_timeout());
    assert_eq!(p.now, start + Duration::from_secs(1));
    assert!(p.events.is_empty(), "{:?}", p.events);
    assert!(p.advance_to_timeout());
    assert_eq!(p.now, start + Duration::from_secs(5));
    let r = close_reason(&p.events);
    assert_eq!(
        r,
        CloseReason::Timeout(TimeoutKind::InternalRequest {
            api_key: ApiKey::API_VERSIONS,
            after: Duration::from_secs(5)
        })
    );
}

#[test]
fn unsupported_versions_are_refused_with_a_clear_error() {
    let mut p = Pair::new(Config::new(), SimBroker::echo());
    // Held before negotiation: fails as an event once versions are known.
    let early = p
        .conn
        .send_request(Request::new(ApiKey::METADATA, 13, vec![]), p.now)
        .unwrap();
    p.drive();
    let failed = p.events.iter().find_map(|e| match e {
        Event::RequestFailed {
            correlation_id,
            error: RequestError::Unsupported(e),
            ..
        } if *correlation_id == early => Some(e.clone()),
        _ => None,
    });
    let e = failed.expect("held request fails");
    assert_eq!(
        e.to_string(),
        "the broker does not support Metadata v13: it supports v0 to v12"
    );
    // After ready: refused at once, nothing sent.
    let before = p.broker.received.len();
    let err = p
        .conn
        .send_request(Request::new(ApiKey(60), 0, vec![]), p.now)
        .unwrap_err();
    assert_eq!(
        err,
        SendError::UnsupportedVersion {
            api_key: ApiKey(60),
            version: 0,
            broker_range: None
        }
    );
    assert!(err.to_string().contains("DescribeCluster"), "{err}");
    p.drive();
    assert_eq!(p.broker.received.len(), before);
}

#[test]
fn a_version_hint_skips_api_versions() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let broker = SimBroker::new(Box::new(move |r: &ReceivedRequest| {
        s.lock().unwrap().push(r.api_key);
        vec![Action::Respond(r.body.clone())]
    }));
    let mut p = Pair::new(
        Config::new().with_version_hint(ApiVersions::kafka_0_9_0()),
        broker,
    );
    p.drive();
    let table = ready_versions(&p.events);
    assert_eq!(table.negotiated_with, None);
    assert_eq!(p.conn.state(), State::Ready);
    let id = p
        .conn
        .send_request(Request::new(ApiKey::METADATA, 0, vec![1]), p.now)
        .unwrap();
    assert!(p
        .conn
        .send_request(Request::new(ApiKey::METADATA, 1, vec![]), p.now)
        .is_err());
    p.drive();
    assert_eq!(*seen.lock().unwrap(), vec![ApiKey::METADATA]);
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::Response(r) if r.correlation_id == id)));
}

#[test]
fn invalid_client_software_is_a_config_error_before_anything_is_sent() {
    let err = Connection::new(
        Config::new().with_client_software("kafka conn", "1"),
        std::time::Instant::now(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        ConfigError::InvalidSoftwareField {
            field: "client_software_name",
            ..
        }
    ));
}

#[test]
fn the_built_in_table_names_every_kafka_4_api() {
    let names: Vec<_> = ApiKey::all().map(|k| k.name().unwrap()).collect();
    assert_eq!(names.len(), 93);
    assert_eq!(ApiKey(68).name(), Some("ConsumerGroupHeartbeat"));
    assert_eq!(ApiKey(75).name(), Some("DescribeTopicPartitions"));
}
