//! Typed requests (feature `kafka-protocol`) and KIP-219 throttling against
//! the simulated broker: versions picked and pinned, decode errors, and a
//! broker returning `throttle_time_ms` on both sides of each API's version
//! bump: later sends are held only where the client is expected to back off.

#![cfg(feature = "kafka-protocol")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_conn_core::sim::{api_versions_reply, Action, Pair, ReceivedRequest, SimBroker};
use kafka_conn_core::typed::kafka_protocol::messages::{
    FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
};
use kafka_conn_core::typed::kafka_protocol::protocol::{Decodable, Encodable};
use kafka_conn_core::typed::TypedError;
use kafka_conn_core::{ApiKey, Config, CorrelationId, Event, Response, SendError};

/// Decodes the request with kafka-protocol (so our encoding is read by the
/// crate's own decoder) and answers with `throttle_time_ms` = `*throttle`.
fn typed_broker(throttle: Arc<Mutex<i32>>) -> SimBroker {
    SimBroker::new(Box::new(move |r: &ReceivedRequest| {
        if let Some(a) = api_versions_reply(r, kafka_conn_core::sim::DEFAULT_VERSIONS) {
            return vec![a];
        }
        let t = *throttle.lock().unwrap();
        let v = r.api_version;
        let mut body = BytesMut::new();
        let mut req = r.body.clone();
        match r.api_key {
            ApiKey::METADATA => {
                MetadataRequest::decode(&mut req, v).expect("our Metadata request decodes");
                MetadataResponse::default()
                    .with_throttle_time_ms(t)
                    .encode(&mut body, v)
                    .unwrap();
            }
            ApiKey::PRODUCE => {
                ProduceRequest::decode(&mut req, v).expect("our Produce request decodes");
                ProduceResponse::default()
                    .with_throttle_time_ms(t)
                    .encode(&mut body, v)
                    .unwrap();
            }
            ApiKey::FETCH => {
                FetchRequest::decode(&mut req, v).expect("our Fetch request decodes");
                FetchResponse::default()
                    .with_throttle_time_ms(t)
                    .encode(&mut body, v)
                    .unwrap();
            }
            // Garbage for anything else.
            _ => body.extend_from_slice(&[0xff; 3]),
        }
        vec![Action::Respond(body.freeze())]
    }))
}

fn ready_pair(throttle: i32) -> (Pair, Arc<Mutex<i32>>) {
    let t = Arc::new(Mutex::new(throttle));
    let mut p = Pair::new(Config::new(), typed_broker(t.clone()));
    p.drive();
    assert!(
        matches!(p.take_events().first(), Some(Event::Ready { .. })),
        "not ready"
    );
    (p, t)
}

fn response_for(p: &mut Pair, id: CorrelationId) -> Response {
    let events = p.take_events();
    events
        .into_iter()
        .find_map(|e| match e {
            Event::Response(r) if r.correlation_id == id => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no response to {id:?}"))
}

/// How many requests of `key` the broker has read.
fn seen(p: &Pair, key: ApiKey) -> usize {
    p.broker
        .received
        .iter()
        .filter(|r| r.api_key == key)
        .count()
}

/// One API on both sides of its KIP-219 version bump.
fn throttle_around_the_bump<R>(request: R, below: i16, from: i16)
where
    R: kafka_conn_core::typed::kafka_protocol::protocol::Request,
    R::Response: kafka_conn_core::typed::ThrottleTime + std::fmt::Debug,
{
    let key = ApiKey(R::KEY);
    for (version, holds) in [(below, false), (from, true)] {
        let (mut p, _) = ready_pair(500);
        let id = p.conn.send_typed(&request, Some(version), p.now).unwrap();
        p.drive();
        let r = response_for(&mut p, id);
        assert_eq!((r.api_key, r.api_version), (key, version));
        let decoded = p.conn.decode_typed::<R>(&r, p.now).unwrap();
        assert_eq!(
            kafka_conn_core::typed::ThrottleTime::throttle_time_ms(&decoded),
            500
        );

        // The next request: held for the throttle at `from`, sent at once below.
        let next = p.conn.send_typed(&request, Some(version), p.now);
        assert!(
            next.is_ok(),
            "{key} v{version}: held, never refused: {next:?}"
        );
        p.drive();
        let sent = seen(&p, key);
        if holds {
            assert_eq!(sent, 1, "{key} v{version}: the second request must wait");
            assert_eq!(p.conn.held(), 1);
            p.advance(Duration::from_millis(499));
            assert_eq!(
                seen(&p, key),
                1,
                "{key} v{version}: still throttled at 499 ms"
            );
            p.advance(Duration::from_millis(1));
            assert_eq!(
                seen(&p, key),
                2,
                "{key} v{version}: sent when the throttle ends"
            );
            assert_eq!(p.conn.stats().throttled, Duration::from_millis(500));
        } else {
            assert_eq!(sent, 2, "{key} v{version}: the broker already throttled");
            assert_eq!(p.conn.stats().throttled, Duration::ZERO);
        }
        // Either way the held request gets its answer: nothing was lost.
        let events = p.take_events();
        assert!(
            events.iter().any(|e| matches!(e, Event::Response(_))),
            "{key} v{version}: {events:?}"
        );
    }
}

#[test]
fn metadata_throttles_the_client_from_v6() {
    throttle_around_the_bump(MetadataRequest::default().with_topics(None), 5, 6);
}

#[test]
fn produce_throttles_the_client_from_v6() {
    throttle_around_the_bump(ProduceRequest::default().with_acks(1), 5, 6);
}

#[test]
fn fetch_throttles_the_client_from_v8() {
    throttle_around_the_bump(FetchRequest::default().with_max_wait_ms(0), 7, 8);
}

#[test]
fn zero_throttle_holds_nothing() {
    let (mut p, _) = ready_pair(0);
    let req = MetadataRequest::default().with_topics(None);
    let id = p.conn.send_typed(&req, None, p.now).unwrap();
    p.drive();
    let r = response_for(&mut p, id);
    p.conn.decode_typed::<MetadataRequest>(&r, p.now).unwrap();
    p.conn.send_typed(&req, None, p.now).unwrap();
    p.drive();
    assert_eq!(seen(&p, ApiKey::METADATA), 2);
    assert_eq!(p.conn.stats().throttled, Duration::ZERO);
}

#[test]
fn a_caller_decoding_itself_tells_the_core_the_same_way() {
    let (mut p, _) = ready_pair(0);
    assert_eq!(
        p.conn
            .handle_throttle_time(ApiKey::PRODUCE, 5, 1_000, p.now),
        None
    );
    assert_eq!(
        p.conn
            .handle_throttle_time(ApiKey::PRODUCE, 9, 1_000, p.now),
        Some(Duration::from_secs(1))
    );
    p.conn
        .send_typed(&MetadataRequest::default(), None, p.now)
        .unwrap();
    p.drive();
    assert_eq!(seen(&p, ApiKey::METADATA), 0);
    p.advance(Duration::from_secs(1));
    assert_eq!(seen(&p, ApiKey::METADATA), 1);
    assert_eq!(p.conn.stats().throttled, Duration::from_secs(1));
}

#[test]
fn picks_the_highest_common_version() {
    let (mut p, _) = ready_pair(0);
    // The simulated broker offers Metadata v0-v12, kafka-protocol v0-v13.
    let id = p
        .conn
        .send_typed(&MetadataRequest::default(), None, p.now)
        .unwrap();
    p.drive();
    let r = response_for(&mut p, id);
    assert_eq!(r.api_version, 12);
    p.conn.decode_typed::<MetadataRequest>(&r, p.now).unwrap();
    // Produce: broker v0-v11, kafka-protocol v3-v13.
    p.conn
        .send_typed(&ProduceRequest::default(), None, p.now)
        .unwrap();
    p.drive();
    let produce = p.broker.received.last().unwrap();
    assert_eq!(
        (produce.api_key, produce.api_version),
        (ApiKey::PRODUCE, 11)
    );
}

#[test]
fn a_pinned_version_the_broker_lacks_fails_before_anything_is_sent() {
    let (mut p, _) = ready_pair(0);
    let before = p.broker.received.len();
    let err = p
        .conn
        .send_typed(&MetadataRequest::default(), Some(13), p.now)
        .unwrap_err();
    assert_eq!(
        err.send_error(),
        Some(&SendError::UnsupportedVersion {
            api_key: ApiKey::METADATA,
            version: 13,
            broker_range: Some((0, 12)),
        })
    );
    assert_eq!(
        err.to_string(),
        "the broker does not support Metadata v13: it supports v0 to v12"
    );
    p.drive();
    assert_eq!(
        p.broker.received.len(),
        before,
        "nothing may reach the broker"
    );
    assert_eq!(p.conn.transmit_len(), 0);
    assert_eq!(p.conn.held() + p.conn.in_flight(), 0);
}

#[test]
fn before_ready_there_is_no_version_to_pick() {
    let mut p = Pair::new(Config::new(), typed_broker(Arc::new(Mutex::new(0))));
    let err = p
        .conn
        .send_typed(&MetadataRequest::default(), None, p.now)
        .unwrap_err();
    assert_eq!(err, TypedError::NotNegotiated);
}

#[test]
fn a_body_kafka_protocol_cannot_decode_is_our_error_and_the_connection_lives() {
    let (mut p, _) = ready_pair(0);
    // The broker answers CreateTopics with three 0xff bytes.
    let req = kafka_conn_core::typed::kafka_protocol::messages::CreateTopicsRequest::default();
    let id = p.conn.send_typed(&req, None, p.now).unwrap();
    p.drive();
    let r = response_for(&mut p, id);
    let err = p
        .conn
        .decode_typed::<kafka_conn_core::typed::kafka_protocol::messages::CreateTopicsRequest>(
            &r, p.now,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            TypedError::Decode {
                api_key: ApiKey::CREATE_TOPICS,
                version: 7,
                len: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("cannot decode the CreateTopics v7 response (3 bytes): "),
        "{err}"
    );
    assert!(!p.conn.is_closed());
    // Decoding a response as the wrong type is refused, not misread.
    let err = kafka_conn_core::typed::decode::<FetchRequest>(&Response {
        body: Bytes::new(),
        ..r
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the response is to CreateTopics, not Fetch"
    );
}
