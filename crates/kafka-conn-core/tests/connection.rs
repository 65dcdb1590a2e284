//! The connection state machine against the simulated broker (`sim`), in
//! virtual time: framing, correlation, deadlines and close reasons.

use std::time::Duration;

use bytes::Bytes;
use kafka_conn_core::sim::{
    api_versions_reply, response_frame, Action, Delivery, Pair, SimBroker, DEFAULT_VERSIONS,
};
use kafka_conn_core::{
    ApiKey, ApiVersions, BrokenCause, CloseReason, Config, CorrelationId, Event, ProtocolViolation,
    Request, RequestError, SendError, State, Stats, TimeoutKind,
};

fn ready_pair(config: Config, broker: SimBroker) -> Pair {
    let mut p = Pair::new(config, broker);
    p.drive();
    assert_eq!(p.conn.state(), State::Ready, "events: {:?}", p.events);
    p.take_events();
    p
}

fn metadata(body: &'static [u8]) -> Request {
    Request::new(ApiKey::METADATA, 1, Bytes::from_static(body))
}

/// (id, body) of every response event.
fn responses(events: &[Event]) -> Vec<(i32, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Response(r) => Some((r.correlation_id.0, r.body.to_vec())),
            _ => None,
        })
        .collect()
}

fn closed(events: &[Event]) -> Vec<&CloseReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Closed(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Checks the invariant: exactly one Closed, and it is last.
fn assert_closed_last(events: &[Event]) -> CloseReason {
    let c = closed(events);
    assert_eq!(c.len(), 1, "exactly one Closed: {events:?}");
    match events.last() {
        Some(Event::Closed(r)) => r.clone(),
        other => panic!("Closed is not last: {other:?}"),
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut p = ready_pair(Config::new(), SimBroker::echo());
    let ids: Vec<_> = (0..100u8)
        .map(|i| {
            p.conn
                .send_request(Request::new(ApiKey::METADATA, 1, vec![i]), p.now)
                .unwrap()
        })
        .collect();
    assert_eq!(p.conn.in_flight(), 100);
    p.drive();
    let got = responses(&p.events);
    assert_eq!(got.len(), 100);
    for (i, (id, body)) in got.iter().enumerate() {
        assert_eq!(*id, ids[i].0);
        assert_eq!(body, &vec![i as u8]);
    }
    assert_eq!(p.conn.in_flight(), 0);
    let s = p.conn.stats();
    assert_eq!(s.responses_received, 101); // + ApiVersions
    assert!(s.rtt_last.is_some());
}

#[test]
fn transmit_slices_counts_what_poll_transmit_fills_through_a_partial_write() {
    use std::io::IoSlice;
    let mut p = ready_pair(Config::new(), SimBroker::echo());
    assert_eq!(p.conn.transmit_slices(), 0);
    for i in 0..3u8 {
        let body = Bytes::from(vec![b'a' + i; 5]);
        let _ = p
            .conn
            .send_request(Request::new(ApiKey::METADATA, 1, body), p.now)
            .unwrap();
    }
    // A header and a body per request.
    assert_eq!(p.conn.transmit_slices(), 6);
    let first_header = {
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(p.conn.poll_transmit(&mut slices), 6);
        slices[0].len()
    };
    // Into the first body: the rest of it is still a slice of its own.
    p.conn.transmit_complete(first_header + 2, p.now);
    assert_eq!(p.conn.transmit_slices(), 5);
    {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = p.conn.poll_transmit(&mut slices);
        assert_eq!(n, 5);
        assert_eq!(&*slices[0], &[b'a'; 3]);
        let total: usize = slices[..n].iter().map(|s| s.len()).sum();
        assert_eq!(total, p.conn.transmit_len());
        // A smaller array takes the first pieces only.
        let mut two = [IoSlice::new(&[]); 2];
        assert_eq!(p.conn.poll_transmit(&mut two), 2);
    }
    // (Written outside the simulated broker: the test ends here.)
    let rest = p.conn.transmit_len();
    p.conn.transmit_complete(rest, p.now);
    assert_eq!(p.conn.transmit_slices(), 0);
}

#[test]
fn responses_split_at_every_byte_boundary_give_identical_results() {
    // Record the broker's bytes once, then feed them split at every boundary.
    let mut reference = ready_pair(Config::new(), SimBroker::echo());
    let setup_events = {
        let mut p = Pair::new(Config::new(), SimBroker::echo());
        p.drive();
        p.events.len()
    };
    let _ = setup_events;
    let mut frames = Vec::new();
    for (i, body) in [&b"a"[..], b"", b"hello world"].iter().enumerate() {
        let id = reference
            .conn
            .send_request(
                Request::new(ApiKey::METADATA, 1, body.to_vec()),
                reference.now,
            )
            .unwrap();
        assert_eq!(id.0, i as i32 + 1);
        frames.extend(response_frame(id.0, 0, body));
    }
    reference.drive();
    let expected = responses(&reference.events);

    for split in 0..=frames.len() {
        for split2 in [split, (split + 3).min(frames.len())] {
            let mut p = ready_pair(
                Config::new(),
                SimBroker::new(Box::new(|r| {
                    api_versions_reply(r, DEFAULT_VERSIONS)
                        .into_iter()
                        .collect()
                })),
            );
            for body in [&b"a"[..], b"", b"hello world"] {
                p.conn
                    .send_request(Request::new(ApiKey::METADATA, 1, body.to_vec()), p.now)
                    .unwrap();
            }
            p.drive();
            for part in [&frames[..split], &frames[split..split2], &frames[split2..]] {
                p.conn.handle_input(part, p.now);
            }
            let mut events = Vec::new();
            while let Some(e) = p.conn.poll_event() {
                events.push(e);
            }
            assert_eq!(responses(&events), expected, "split at {split}/{split2}");
        }
    }
}

#[test]
fn one_byte_at_a_time_copying_and_zero_copy() {
    for delivery in [
        Delivery::Chunks(1),
        Delivery::ZeroCopy(1),
        Delivery::Chunks(7),
    ] {
        let mut p = Pair::new(Config::new(), SimBroker::echo());
        p.delivery = delivery;
        p.write_limit = 3; // partial writes on the way out too
        for i in 0..10u8 {
            p.conn
                .send_request(
                    Request::new(ApiKey::METADATA, 1, vec![i; i as usize]),
                    p.now,
                )
                .unwrap();
        }
        p.drive();
        assert!(matches!(p.events[0], Event::Ready { .. }), "{delivery:?}");
        let got = responses(&p.events);
        assert_eq!(got.len(), 10, "{delivery:?}");
        for (i, (_, body)) in got.iter().enumerate() {
            assert_eq!(body, &vec![i as u8; i]);
        }
    }
}

#[test]
fn acks_zero_requests_take_no_slot_and_produce_no_event() {
    let mut p = ready_pair(
        Config::new(),
        SimBroker::new(Box::new(|r| {
            if let Some(a) = api_versions_reply(r, DEFAULT_VERSIONS) {
                return vec![a];
            }
            if r.api_key == ApiKey::PRODUCE {
                vec![Action::Ignore] // acks=0: the broker answers nothing
            } else {
                vec![Action::Respond(r.body.clone())]
            }
        })),
    );
    p.conn
        .send_request(
            Request::new(ApiKey::PRODUCE, 3, vec![1]).without_response(),
            p.now,
        )
        .unwrap();
    assert_eq!(p.conn.in_flight(), 0);
    let id = p.conn.send_request(metadata(b"m"), p.now).unwrap();
    p.drive();
    assert_eq!(responses(&p.events), vec![(id.0, b"m".to_vec())]);
    assert_eq!(p.broker.received.len(), 3);
}

/// A broker that answers ApiVersions and ignores everything else,
/// remembering the requests so a test can answer them late.
fn silent_broker() -> SimBroker {
    SimBroker::new(Box::new(|r| {
        api_versions_reply(r, DEFAULT_VERSIONS)
            .map(|a| vec![a])
            .unwrap_or_else(|| vec![Action::Ignore])
    }))
}

#[test]
fn timed_out_request_keeps_its_slot_and_its_late_response_is_dropped() {
    let config = Config::new()
        .with_request_timeout(Duration::from_secs(5))
        // This test is about other deadlines: the receive buffer's release
        // (its own test below) would come first.
        .with_receive_buffer_release(None)
        .with_unanswered_grace(Duration::from_secs(10));
    let mut p = ready_pair(config, silent_broker());
    let id = p.conn.send_request(metadata(b"x"), p.now).unwrap();
    p.drive();
    let deadline = p.conn.poll_timeout().unwrap();
    assert_eq!(deadline, p.now + Duration::from_secs(5));
    p.advance(Duration::from_millis(4999));
    assert!(p.events.is_empty(), "early: {:?}", p.events);
    p.advance(Duration::from_millis(1));
    assert!(matches!(
        p.take_events().as_slice(),
        [Event::RequestFailed { correlation_id, error: RequestError::TimedOut(d), .. }]
            if *correlation_id == id && *d == Duration::from_secs(5)
    ));
    // The slot stays; the late response is read and dropped.
    assert_eq!(p.conn.in_flight(), 1);
    let late = p.broker.received.last().unwrap().clone();
    p.broker
        .apply(&late, vec![Action::Respond(Bytes::from_static(b"late"))]);
    p.drive();
    assert!(p.events.is_empty());
    assert_eq!(p.conn.stats().late_responses, 1);
    assert_eq!(p.conn.state(), State::Ready);
    // And the connection goes on.
    let id2 = p.conn.send_request(metadata(b"y"), p.now).unwrap();
    p.drive();
    let req = p.broker.received.last().unwrap().clone();
    p.broker
        .apply(&req, vec![Action::Respond(Bytes::from_static(b"y"))]);
    p.drive();
    assert_eq!(responses(&p.events), vec![(id2.0, b"y".to_vec())]);
}

#[test]
fn a_timed_out_slot_that_never_answers_closes_the_connection_after_the_grace() {
    let config = Config::new()
        .with_request_timeout(Duration::from_secs(5))
        .with_unanswered_grace(Duration::from_secs(10));
    let mut p = ready_pair(config, silent_broker());
    p.conn.send_request(metadata(b"x"), p.now).unwrap();
    p.drive();
    p.advance(Duration::from_secs(5));
    let second = p.conn.send_request(metadata(b"z"), p.now).unwrap();
    p.drive();
    p.advance(Duration::from_secs(10));
    let events = p.take_events();
    let reason = assert_closed_last(&events);
    assert!(
        matches!(
            reason,
            CloseReason::Timeout(TimeoutKind::Unanswered {
                correlation_id: 1,
                ..
            })
        ),
        "{reason}"
    );
    assert!(reason.is_retriable());
    // The second request (sent at 5 s, timeout at 10 s) timed out first; no double outcome.
    let outcomes: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::RequestFailed { correlation_id, .. } if *correlation_id == second))
        .collect();
    assert_eq!(outcomes.len(), 1, "{events:?}");
}

#[test]
fn cancelled_request_late_reply_is_dropped_and_the_connection_stays_in_sync() {
    let mut p = ready_pair(Config::new(), silent_broker());
    let a = p.conn.send_request(metadata(b"a"), p.now).unwrap();
    let b = p.conn.send_request(metadata(b"b"), p.now).unwrap();
    p.drive();
    assert!(p.conn.cancel(a, p.now));
    assert!(!p.conn.cancel(a, p.now), "cancelled twice");
    assert!(!p.conn.cancel(CorrelationId(999), p.now));
    let reqs: Vec<_> = p.broker.received[1..].to_vec();
    for r in &reqs {
        p.broker.apply(r, vec![Action::Respond(r.body.clone())]);
    }
    p.drive();
    assert_eq!(responses(&p.events), vec![(b.0, b"b".to_vec())]);
    assert_eq!(p.conn.stats().late_responses, 1);
}

#[test]
fn out_of_sync_ids_close_and_fail_every_pending_request() {
    let mut p = ready_pair(Config::new(), silent_broker());
    let ids: Vec<_> = (0..3)
        .map(|_| p.conn.send_request(metadata(b"q"), p.now).unwrap())
        .collect();
    p.drive();
    let first = p.broker.received[1].clone();
    p.broker.apply(
        &first,
        vec![Action::RespondWithId(
            first.correlation_id + 2,
            Bytes::new(),
        )],
    );
    p.drive();
    let reason = assert_closed_last(&p.events);
    assert_eq!(
        reason,
        CloseReason::OutOfSync {
            expected: ids[0].0,
            received: ids[0].0 + 2
        }
    );
    let failed: Vec<_> = p
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RequestFailed {
                correlation_id,
                error: RequestError::ConnectionClosed(_),
                ..
            } => Some(*correlation_id),
            _ => None,
        })
        .collect();
    assert_eq!(failed, ids);
    // Sticky.
    assert!(matches!(
        p.conn.send_request(metadata(b"q"), p.now),
        Err(SendError::Closed(CloseReason::OutOfSync { .. }))
    ));
}

fn protocol_violation_from(bytes: &[u8]) -> (CloseReason, usize) {
    let mut p = ready_pair(Config::new(), silent_broker());
    p.conn.send_request(metadata(b"q"), p.now).unwrap();
    p.drive();
    p.conn.handle_input(bytes, p.now);
    let cap = p.conn.receive_buffer_capacity();
    p.drive();
    (assert_closed_last(&p.events), cap)
}

#[test]
fn negative_and_two_gib_size_prefixes_close_without_allocating() {
    let (r, cap) = protocol_violation_from(&(-7i32).to_be_bytes());
    assert_eq!(
        r,
        CloseReason::Protocol(ProtocolViolation::NegativeFrameSize(-7))
    );
    assert!(cap < 1 << 20);
    let (r, cap) = protocol_violation_from(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1]);
    assert!(
        matches!(
            r,
            CloseReason::Protocol(ProtocolViolation::FrameTooLarge { size: i32::MAX, .. })
        ),
        "{r}"
    );
    assert!(cap < 1 << 20, "capacity after a 2 GiB claim: {cap}");
    assert!(!r.is_retriable());

    // With the limit raised to i32::MAX the claim is accepted but memory
    // only follows the bytes that actually arrive.
    let mut p = ready_pair(
        Config::new().with_max_frame_size(i32::MAX as usize),
        silent_broker(),
    );
    p.conn.send_request(metadata(b"q"), p.now).unwrap();
    p.drive();
    let mut claim = 0x7fff_0000i32.to_be_bytes().to_vec();
    claim.extend([1, 2, 3, 4]);
    p.conn.handle_input(&claim, p.now);
    assert!(p.conn.receive_buffer_capacity() < 1 << 20);
    for _ in 0..8 {
        let n = p.conn.recv_buf().len();
        assert!(n <= 1 << 20, "read window {n} is bounded");
        p.conn.recv_commit(n, p.now);
    }
    assert!(
        p.conn.receive_buffer_capacity() <= 16 << 20,
        "{}",
        p.conn.receive_buffer_capacity()
    );
    assert!(!p.conn.is_closed());
}

#[test]
fn a_frame_shorter_than_its_header_is_a_protocol_error() {
    let (r, _) = protocol_violation_from(&[0, 0, 0, 2, 0, 0]);
    assert_eq!(
        r,
        CloseReason::Protocol(ProtocolViolation::FrameTooSmall { size: 2, header: 4 })
    );
}

#[test]
fn tls_alert_and_http_reply_are_named() {
    // A TLS alert record: what a TLS listener sends a plaintext client.
    let (r, _) = protocol_violation_from(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]);
    assert_eq!(r, CloseReason::Protocol(ProtocolViolation::LooksLikeTls));
    assert!(r.to_string().contains("use SSL"), "{r}");
    let (r, _) = protocol_violation_from(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    assert_eq!(r, CloseReason::Protocol(ProtocolViolation::LooksLikeHttp));
    // Before the first frame too, even with a huge limit, and even at EOF with 3 bytes.
    let mut p = Pair::new(
        Config::new().with_max_frame_size(i32::MAX as usize),
        silent_broker(),
    );
    p.conn.handle_input(&[0x16, 0x03, 0x01], p.now);
    p.drive();
    assert_eq!(
        assert_closed_last(&p.events),
        CloseReason::Protocol(ProtocolViolation::LooksLikeTls)
    );
}

#[test]
fn eof_with_requests_pending_fails_them_as_broken() {
    let mut p = ready_pair(Config::new(), silent_broker());
    let a = p.conn.send_request(metadata(b"a"), p.now).unwrap();
    p.drive();
    p.conn.handle_eof(p.now);
    p.drive();
    let r = assert_closed_last(&p.events);
    assert!(matches!(
        r,
        CloseReason::Broken {
            cause: BrokenCause::Eof,
            ..
        }
    ));
    assert!(r.is_retriable());
    assert!(
        matches!(&p.events[0], Event::RequestFailed { correlation_id, .. } if *correlation_id == a)
    );
    // Spurious inputs after close are no-ops.
    p.conn.handle_eof(p.now);
    p.conn.handle_timeout(p.now + Duration::from_secs(1000));
    p.conn.handle_input(b"xx", p.now);
    p.conn.close(p.now);
    assert!(p.conn.poll_event().is_none());
    assert!(p.conn.poll_timeout().is_none());
}

#[test]
fn close_while_pending_fails_everything_with_shutdown() {
    let mut p = Pair::new(Config::new(), silent_broker());
    // One held (before ready), then ready, then one in flight.
    let held = p.conn.send_request(metadata(b"h"), p.now).unwrap();
    assert_eq!(p.conn.held(), 1);
    p.drive();
    let inflight = p.conn.send_request(metadata(b"i"), p.now).unwrap();
    p.conn.close(p.now);
    p.drive();
    let r = assert_closed_last(&p.events);
    assert_eq!(r, CloseReason::Shutdown);
    assert!(!r.is_retriable());
    let failed: Vec<_> = p
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RequestFailed { correlation_id, .. } => Some(*correlation_id),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![held, inflight]);
    assert_eq!(p.conn.transmit_len(), 0);
}

#[test]
fn idle_connections_are_reaped_but_never_while_a_request_is_pending() {
    let config = Config::new()
        .with_idle_timeout(Some(Duration::from_secs(60)))
        .with_request_timeout(Duration::from_secs(300))
        // This test is about other deadlines: the receive buffer's release
        // (its own test below) would come first.
        .with_receive_buffer_release(None)
        .with_unanswered_grace(Duration::from_secs(300));
    let mut p = ready_pair(config.clone(), silent_broker());
    p.conn.send_request(metadata(b"slow"), p.now).unwrap();
    p.drive();
    p.advance(Duration::from_secs(120));
    assert!(!p.conn.is_closed(), "reaped with a request pending");
    let req = p.broker.received.last().unwrap().clone();
    p.broker.apply(&req, vec![Action::Respond(Bytes::new())]);
    p.drive();
    // Idle time counts from the last activity (the response).
    p.advance(Duration::from_secs(59));
    assert!(!p.conn.is_closed());
    p.advance(Duration::from_secs(1));
    let r = assert_closed_last(&p.events);
    assert_eq!(
        r,
        CloseReason::Idle {
            idle_for: Duration::from_secs(60)
        }
    );

    let mut p = ready_pair(config.with_idle_timeout(None), silent_broker());
    assert!(p.conn.poll_timeout().is_none());
    p.advance(Duration::from_secs(100_000));
    assert!(!p.conn.is_closed());
}

#[test]
fn max_in_flight_holds_requests_in_order() {
    let mut p = ready_pair(Config::new().with_max_in_flight(Some(2)), SimBroker::echo());
    let ids: Vec<_> = (0..5u8)
        .map(|i| {
            p.conn
                .send_request(Request::new(ApiKey::METADATA, 1, vec![i]), p.now)
                .unwrap()
        })
        .collect();
    assert_eq!(p.conn.in_flight(), 2);
    assert_eq!(p.conn.held(), 3);
    p.drive();
    let got = responses(&p.events);
    assert_eq!(
        got.iter().map(|r| r.0).collect::<Vec<_>>(),
        ids.iter().map(|i| i.0).collect::<Vec<_>>()
    );
}

#[test]
fn handshake_deadline_closes_a_connection_that_never_becomes_ready() {
    let mut p = Pair::new(
        Config::new().with_handshake_timeout(Duration::from_secs(3)),
        SimBroker::new(Box::new(|_| vec![Action::Ignore])),
    );
    let id = p.conn.send_request(metadata(b"early"), p.now).unwrap();
    p.drive();
    let start = p.now;
    // At 1 s the written transmit queue's memory goes back (the default
    // release): the connection still waits for ApiVersions.
    assert!(p.advance_to_timeout());
    assert_eq!(p.now, start + Duration::from_secs(1));
    assert!(p.events.is_empty(), "{:?}", p.events);
    assert!(!p.conn.is_closed());
    // At 3 s the handshake deadline closes it.
    assert!(p.advance_to_timeout());
    assert_eq!(p.now, start + Duration::from_secs(3));
    let r = assert_closed_last(&p.events);
    assert!(
        matches!(r, CloseReason::Timeout(TimeoutKind::Handshake { .. })),
        "{r}"
    );
    assert!(
        matches!(&p.events[0], Event::RequestFailed { correlation_id, .. } if *correlation_id == id)
    );
}

#[test]
fn correlation_ids_wrap_around() {
    let mut p = ready_pair(Config::new(), SimBroker::echo());
    p.conn.set_next_correlation_id_for_testing(i32::MAX - 1);
    let ids: Vec<i32> = (0..4)
        .map(|_| p.conn.send_request(metadata(b""), p.now).unwrap().0)
        .collect();
    assert_eq!(ids, vec![i32::MAX - 1, i32::MAX, i32::MIN, i32::MIN + 1]);
    p.drive();
    assert_eq!(
        responses(&p.events).iter().map(|r| r.0).collect::<Vec<_>>(),
        ids
    );
}

#[test]
fn poll_timeout_is_never_in_the_past_after_handle_timeout() {
    let mut p = ready_pair(
        Config::new().with_request_timeout(Duration::from_secs(1)),
        silent_broker(),
    );
    for i in 0..20 {
        p.conn
            .send_request(
                metadata(b"t").with_timeout(Duration::from_millis(100 * (i % 7) + 1)),
                p.now,
            )
            .unwrap();
        p.advance(Duration::from_millis(37));
        if let Some(t) = p.conn.poll_timeout() {
            assert!(t > p.now, "timeout {t:?} not after now {:?}", p.now);
        }
    }
}

#[test]
fn huge_durations_saturate_instead_of_panicking() {
    // Found by the connection_ops fuzz target: `Duration::MAX` (a natural
    // "no timeout") as a request timeout, throttle, grace or handshake
    // timeout overflowed `Instant + Duration` and panicked inside the core.
    let broker = SimBroker::new(Box::new(|r| {
        match api_versions_reply(r, DEFAULT_VERSIONS) {
            Some(a) => vec![a],
            None => vec![Action::Ignore],
        }
    }));
    let config = Config::new()
        .with_handshake_timeout(Duration::MAX)
        .with_unanswered_grace(Duration::MAX)
        // This test is about other deadlines: the receive buffer's release
        // (its own test below) would come first.
        .with_receive_buffer_release(None)
        .with_idle_timeout(Some(Duration::MAX));
    let mut p = ready_pair(config, broker);
    let id = p
        .conn
        .send_request(metadata(b"x").with_timeout(Duration::MAX), p.now)
        .unwrap();
    p.drive();
    assert_eq!(p.conn.in_flight(), 1);
    let wake = p.conn.poll_timeout().expect("a deadline");
    assert!(wake > p.now + Duration::from_secs(50 * 365 * 24 * 3600));
    assert!(p.conn.cancel(id, p.now));
    p.conn.handle_throttle(Duration::MAX, p.now);
    let held = p.conn.send_request(metadata(b"y"), p.now).unwrap();
    assert_eq!(p.conn.held(), 1);
    p.advance(Duration::from_secs(3600));
    assert!(!p.conn.is_closed(), "{:?}", p.events);
    assert!(matches!(
        &p.events[..],
        [Event::RequestFailed { correlation_id, error: RequestError::TimedOut(_), .. }] if *correlation_id == held
    ));
}

#[test]
fn a_timed_out_request_behind_a_waiting_one_does_not_make_poll_timeout_spin() {
    // Found by the connection_ops fuzz target: poll_timeout reported the
    // grace deadline of a timed-out request that was not the oldest in
    // flight, which handle_timeout (rightly) never acts on, so poll_timeout
    // stayed in the past after handle_timeout and a driver would spin.
    let mut p = ready_pair(
        Config::new().with_unanswered_grace(Duration::from_secs(10)),
        silent_broker(),
    );
    let start = p.now;
    p.conn
        .send_request(
            metadata(b"a").with_timeout(Duration::from_secs(3600)),
            p.now,
        )
        .unwrap();
    let quick = p
        .conn
        .send_request(metadata(b"b").with_timeout(Duration::from_secs(1)), p.now)
        .unwrap();
    p.drive();
    assert!(p.advance_to_timeout());
    assert!(matches!(
        &p.events[..],
        [Event::RequestFailed { correlation_id, error: RequestError::TimedOut(_), .. }] if *correlation_id == quick
    ));
    // Next: the slow request's own deadline, not the quick one's grace.
    assert_eq!(
        p.conn.poll_timeout(),
        Some(start + Duration::from_secs(3600))
    );
    // Past the quick one's grace: nothing to do, and nothing in the past.
    p.advance(Duration::from_secs(20));
    let t = p.conn.poll_timeout().expect("the slow request's deadline");
    assert!(t > p.now, "poll_timeout {t:?} not after now {:?}", p.now);
    assert!(!p.conn.is_closed());
    assert_eq!(p.events.len(), 1);
}

#[test]
fn poll_timeout_finds_the_earliest_request_deadline_in_any_order() {
    // poll_timeout stops at the first waiting slot while deadlines are in
    // send order (one timeout for all); a shorter timeout behind longer
    // ones must still be found.
    let mut p = ready_pair(
        Config::new()
            .with_request_timeout(Duration::from_secs(30))
            // The receive buffer's release (its own test) would come first.
            .with_receive_buffer_release(None),
        silent_broker(),
    );
    let start = p.now;
    for _ in 0..3 {
        p.conn.send_request(metadata(b"a"), p.now).unwrap();
        p.now += Duration::from_secs(1);
    }
    assert_eq!(p.conn.poll_timeout(), Some(start + Duration::from_secs(30)));
    p.conn
        .send_request(metadata(b"b").with_timeout(Duration::from_secs(5)), p.now)
        .unwrap();
    assert_eq!(p.conn.poll_timeout(), Some(start + Duration::from_secs(8)));
    p.conn
        .send_request(metadata(b"c").with_timeout(Duration::from_secs(60)), p.now)
        .unwrap();
    assert_eq!(p.conn.poll_timeout(), Some(start + Duration::from_secs(8)));
    // The short one times out; the first request's deadline is next.
    p.drive();
    assert!(p.advance_to_timeout());
    assert!(matches!(
        &p.events[..],
        [Event::RequestFailed { error: RequestError::TimedOut(d), .. }] if *d == Duration::from_secs(5)
    ));
    assert_eq!(p.conn.poll_timeout(), Some(start + Duration::from_secs(30)));
}

#[test]
fn a_held_request_refused_after_a_long_throttle_leaves_no_deadline_in_the_past() {
    // Found by the connection_ops fuzz target: a request held through a
    // long throttle is refused when the throttle ends (the broker turned
    // out not to support its version). The connection is then idle, and has
    // been since long before; handle_timeout used to check idleness before
    // releasing held requests, so poll_timeout afterwards reported an idle
    // deadline already passed (a driver would fire again at once).
    let config = Config::new()
        .with_idle_timeout(Some(Duration::from_secs(60)))
        // This test is about other deadlines: the receive buffer's release
        // (its own test below) would come first.
        .with_receive_buffer_release(None)
        .with_request_timeout(Duration::from_secs(7200));
    let mut p = Pair::new(config, silent_broker());
    let unsupported = Request::new(ApiKey::METADATA, 99, Bytes::from_static(b"x"));
    let held = p.conn.send_request(unsupported, p.now).unwrap();
    p.conn.handle_throttle(Duration::from_secs(3600), p.now);
    p.drive();
    assert_eq!(p.conn.state(), State::Ready);
    assert_eq!(p.conn.held(), 1);
    p.take_events();
    assert!(p.advance_to_timeout());
    if let Some(t) = p.conn.poll_timeout() {
        assert!(t > p.now, "poll_timeout {t:?} is not after now {:?}", p.now);
    }
    assert!(
        matches!(
            &p.events[0],
            Event::RequestFailed { correlation_id, error: RequestError::Unsupported(_), .. } if *correlation_id == held
        ),
        "{:?}",
        p.events
    );
    // Idle for the hour the throttle lasted: reaped in the same call.
    assert!(matches!(
        assert_closed_last(&p.events),
        CloseReason::Idle { idle_for } if idle_for >= Duration::from_secs(3600)
    ));
}

#[test]
fn the_default_request_timeout_is_40_seconds() {
    // `Config::new()` untouched: a request the broker never answers fails
    // 40 s after it was sent, not a millisecond earlier.
    let mut p = ready_pair(Config::new(), silent_broker());
    let sent = p.now;
    let id = p.conn.send_request(metadata(b"x"), p.now).unwrap();
    p.drive();
    // First the empty receive buffer goes back (1 s, the default), which
    // fails nothing; then the request's deadline.
    assert_eq!(p.conn.poll_timeout(), Some(sent + Duration::from_secs(1)));
    assert!(p.advance_to_timeout());
    assert_eq!(p.conn.receive_buffer_capacity(), 0);
    assert!(p.events.is_empty(), "{:?}", p.events);
    assert_eq!(p.conn.poll_timeout(), Some(sent + Duration::from_secs(40)));
    p.advance(Duration::from_secs(39) - Duration::from_millis(1));
    assert!(p.events.is_empty(), "early: {:?}", p.events);
    p.advance(Duration::from_millis(1));
    assert!(matches!(
        p.take_events().as_slice(),
        [Event::RequestFailed { correlation_id, error: RequestError::TimedOut(d), .. }]
            if *correlation_id == id && *d == Duration::from_secs(40)
    ));
}

#[test]
fn the_default_idle_timeout_is_540_seconds() {
    // `Config::new()` untouched: a ready connection with nothing pending is
    // reaped 540 s after its last activity (the last response read here),
    // not a millisecond earlier.
    let mut p = ready_pair(Config::new(), SimBroker::echo());
    p.conn.send_request(metadata(b"x"), p.now).unwrap();
    p.drive();
    assert_eq!(responses(&p.take_events()).len(), 1);
    let last_activity = p.now;
    // The empty receive buffer goes back first (1 s, the default).
    assert_eq!(
        p.conn.poll_timeout(),
        Some(last_activity + Duration::from_secs(1))
    );
    assert!(p.advance_to_timeout());
    assert_eq!(p.conn.receive_buffer_capacity(), 0);
    assert_eq!(
        p.conn.poll_timeout(),
        Some(last_activity + Duration::from_secs(540))
    );
    p.advance(Duration::from_secs(539) - Duration::from_millis(1));
    assert!(p.events.is_empty(), "early: {:?}", p.events);
    assert_eq!(p.conn.state(), State::Ready);
    p.advance(Duration::from_millis(1));
    assert_eq!(
        assert_closed_last(&p.events),
        CloseReason::Idle {
            idle_for: Duration::from_secs(540)
        }
    );
}

#[test]
fn stats_count_the_bytes_and_timeouts_of_a_known_exchange() {
    // With a version hint nothing but the two requests below is sent, so
    // the byte counts follow from the wire format alone.
    let table = ApiVersions::from_ranges(DEFAULT_VERSIONS.iter().copied()).unwrap();
    let broker = SimBroker::new(Box::new(|r| {
        if &r.body[..] == b"answer" {
            vec![Action::Respond(r.body.clone())]
        } else {
            vec![Action::Ignore]
        }
    }));
    let mut p = ready_pair(Config::new().with_version_hint(table), broker);
    assert_eq!(p.conn.stats(), Stats::default());
    p.conn.send_request(metadata(b"answer"), p.now).unwrap();
    p.conn
        .send_request(
            metadata(b"ignore").with_timeout(Duration::from_secs(1)),
            p.now,
        )
        .unwrap();
    p.drive();
    p.advance(Duration::from_secs(1));
    let stats = p.conn.stats();
    // Metadata v1 uses request header v1: size (4), api key (2), version
    // (2), correlation id (4), client id "kafka-conn" (2 + 10), then the
    // 6-byte body: 30 bytes per request.
    assert_eq!(stats.bytes_sent, 2 * 30);
    // Response header v0: size (4), correlation id (4), the 6-byte body.
    assert_eq!(stats.bytes_received, 14);
    assert_eq!(stats.requests_sent, 2);
    assert_eq!(stats.responses_received, 1);
    assert_eq!(stats.timeouts, 1);
    assert_eq!(stats.late_responses, 0);
}

#[test]
fn an_idle_connection_gives_its_receive_buffer_back_and_reads_on() {
    for delivery in [Delivery::All, Delivery::ZeroCopy(usize::MAX)] {
        let config = Config::new().with_receive_buffer_release(Duration::from_secs(2));
        let mut p = Pair::new(config, SimBroker::echo());
        p.delivery = delivery;
        p.drive();
        assert_eq!(p.conn.state(), State::Ready);
        p.take_events();
        assert!(p.conn.receive_buffer_capacity() > 0);
        // Traffic keeps it: each response moves the deadline.
        for _ in 0..5 {
            p.conn.send_request(metadata(b"busy"), p.now).unwrap();
            p.drive();
            assert_eq!(responses(&p.take_events()).len(), 1);
            p.advance(Duration::from_millis(1500));
            assert!(p.conn.receive_buffer_capacity() > 0, "{delivery:?}");
        }
        let last = p.now - Duration::from_millis(1500);
        // Idle: given back 2 s after the last traffic, not a millisecond
        // earlier, and nothing else happens.
        assert_eq!(p.conn.poll_timeout(), Some(last + Duration::from_secs(2)));
        p.advance(Duration::from_millis(499));
        assert!(p.conn.receive_buffer_capacity() > 0);
        p.advance(Duration::from_millis(1));
        assert_eq!(p.conn.receive_buffer_capacity(), 0, "{delivery:?}");
        assert!(p.events.is_empty(), "{:?}", p.events);
        assert_eq!(p.conn.state(), State::Ready);
        // Now only the idle reaping is armed.
        assert_eq!(p.conn.poll_timeout(), Some(last + Duration::from_secs(540)));
        // A read that finds nothing takes a small buffer; it goes back a
        // period after the release, never at the same instant again.
        let released = p.now;
        assert_eq!(p.conn.recv_buf().len(), 1024);
        p.conn.recv_commit(0, p.now);
        assert_eq!(
            p.conn.poll_timeout(),
            Some(released + Duration::from_secs(2))
        );
        // The next response is read into a new buffer, whole.
        let big = vec![7u8; 20_000];
        let request = Request::new(ApiKey::METADATA, 1, Bytes::from(big.clone()));
        p.conn.send_request(request, p.now).unwrap();
        p.drive();
        let got = responses(&p.take_events());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, big, "{delivery:?}");
    }
    // `None`: kept for the connection's life.
    let mut p = ready_pair(
        Config::new().with_receive_buffer_release(None),
        SimBroker::echo(),
    );
    let capacity = p.conn.receive_buffer_capacity();
    p.advance(Duration::from_secs(500));
    assert_eq!(p.conn.receive_buffer_capacity(), capacity);
}

/// What drivers report to observers (metrics, hooks): each response's
/// sizes on the wire, the API of a failed request, the broker's throttle
/// time whether or not the client waits it out.
#[test]
fn responses_carry_wire_sizes_failures_their_api_and_throttles_an_event() {
    let config = Config::new()
        .with_client_id(Some("obs"))
        .with_request_timeout(Duration::from_secs(5));
    let mut p = ready_pair(config.clone(), SimBroker::echo());
    let id = p.conn.send_request(metadata(b"hello"), p.now).unwrap();
    p.drive();
    let events = p.take_events();
    let [Event::Response(r)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(r.correlation_id, id);
    // Request: size (4) + api key, version, correlation id (8) + client id
    // "obs" (2 + 3) + body (5); Metadata v1 has header v1.
    assert_eq!(r.request_bytes, 4 + 8 + 5 + 5);
    // Response: size (4) + correlation id (4, header v0) + the echoed body.
    assert_eq!(r.response_bytes, 4 + 4 + 5);

    let mut p = ready_pair(config, silent_broker());
    let produce = Request::new(ApiKey::PRODUCE, 3, Bytes::from_static(b"p"));
    let id = p.conn.send_request(produce, p.now).unwrap();
    p.drive();
    p.advance(Duration::from_secs(5));
    assert!(matches!(
        p.take_events().as_slice(),
        [Event::RequestFailed { correlation_id, api_key: ApiKey::PRODUCE, error: RequestError::TimedOut(_) }]
            if *correlation_id == id
    ));
    // Metadata v6+ asks the client to wait (KIP-219); v5 was delayed by the broker.
    assert_eq!(
        p.conn.handle_throttle_time(ApiKey::METADATA, 6, 250, p.now),
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        p.conn.handle_throttle_time(ApiKey::METADATA, 5, 40, p.now),
        None
    );
    assert_eq!(
        p.conn.handle_throttle_time(ApiKey::METADATA, 6, 0, p.now),
        None
    );
    p.drive();
    let throttles: Vec<_> = p
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Throttled {
                api_key,
                api_version,
                throttle_time,
                applied,
            } => Some((api_key, api_version, throttle_time, applied)),
            _ => None,
        })
        .collect();
    assert_eq!(
        throttles,
        [
            (ApiKey::METADATA, 6, Duration::from_millis(250), true),
            (ApiKey::METADATA, 5, Duration::from_millis(40), false),
        ]
    );
}
