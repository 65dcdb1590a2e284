//! Counts heap allocations: a steady-state request/response round trip
//! through the core allocates nothing. (The caller's request body is a
//! `Bytes` it made itself; here a static one. The response body is a slice
//! of the receive buffer.)

use std::io::IoSlice;
use std::time::Instant;

use bytes::Bytes;
use kafka_conn_core::sim::response_frame;
use kafka_conn_core::{ApiKey, ApiVersions, Config, Connection, Event, Request};
use kafka_conn_test_support::alloc::{
    allocations, assert_counting_works, count_this_thread, CountingAllocator,
};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn steady_state_round_trips_allocate_nothing() {
    assert_counting_works();
    count_this_thread(true);
    let now = Instant::now();
    let config = Config::new().with_version_hint(ApiVersions::from_ranges([(3, 0, 12)]).unwrap());
    for zero_copy in [false, true] {
        let mut conn = Connection::new(config.clone(), now).unwrap();
        while conn.poll_event().is_some() {}
        let response = response_frame(0, 0, &[0u8; 64]);
        // Warm up: buffers reach their steady size.
        for _ in 0..100 {
            round_trip_without_test_allocs(&mut conn, now);
        }
        // The frame copy in round_trip is the test's own allocation: count
        // around the core's calls only.
        let mut core_allocs = 0;
        for _ in 0..1000 {
            let id = conn
                .send_request(
                    Request::new(ApiKey::METADATA, 1, Bytes::from_static(b"\xff\xff\xff\xff")),
                    now,
                )
                .unwrap();
            let mut frame = response.clone();
            frame[4..8].copy_from_slice(&id.0.to_be_bytes());
            let start = allocations();
            let mut slices = [IoSlice::new(&[]); 4];
            let n = conn.poll_transmit(&mut slices);
            let written: usize = slices[..n].iter().map(|s| s.len()).sum();
            conn.transmit_complete(written, now);
            if zero_copy {
                let buf = conn.recv_buf();
                buf[..frame.len()].copy_from_slice(&frame);
                conn.recv_commit(frame.len(), now);
            } else {
                conn.handle_input(&frame, now);
            }
            let ev = conn.poll_event();
            assert!(matches!(ev, Some(Event::Response(_))));
            drop(ev);
            let _ = conn.poll_timeout();
            core_allocs += allocations() - start;
        }
        // send_request is counted too: measure it separately.
        let start = allocations();
        for _ in 0..1000 {
            round_trip_without_test_allocs(&mut conn, now);
        }
        let with_send = allocations() - start;
        assert_eq!(
            core_allocs, 0,
            "zero_copy={zero_copy}: allocations in 1000 round trips"
        );
        assert_eq!(
            with_send, 0,
            "zero_copy={zero_copy}: allocations in 1000 sends"
        );
    }
}

/// send + transmit + cancel: the send path alone, nothing of the test's own.
fn round_trip_without_test_allocs(conn: &mut Connection, now: Instant) {
    let id = conn
        .send_request(
            Request::new(ApiKey::METADATA, 1, Bytes::from_static(b"\xff\xff\xff\xff")),
            now,
        )
        .unwrap();
    let mut slices = [IoSlice::new(&[]); 4];
    let n = conn.poll_transmit(&mut slices);
    let written: usize = slices[..n].iter().map(|s| s.len()).sum();
    conn.transmit_complete(written, now);
    // Answer it with a stack-built frame (no allocation in the test).
    let mut frame = [0u8; 8];
    frame[..4].copy_from_slice(&4i32.to_be_bytes());
    frame[4..].copy_from_slice(&id.0.to_be_bytes());
    conn.handle_input(&frame, now);
    let ev = conn.poll_event();
    assert!(matches!(ev, Some(Event::Response(_))));
}
