//! Counts heap allocations while pipelined responses are held: the
//! receive buffer runs out of room while frames the caller holds share it.
//! (Its own test binary: the allocation counter is global, and a second
//! counting test running beside `alloc.rs`'s would count into its window.)

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::Instant;

use bytes::Bytes;
use kafka_conn_core::{ApiKey, ApiVersions, Config, Connection, Event, Request};
use kafka_conn_test_support::alloc::{
    allocations, assert_counting_works, count_this_thread, CountingAllocator,
};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Pipelining: the caller still holds the responses of the last batch
/// while the next batch arrives, so the receive buffer runs out of room
/// while frames handed out share it. After a warm-up this allocates
/// nothing either: the buffer moves to its spare allocation (see
/// `FrameReader::spare`) instead of a new one per buffer-full (issue 20).
#[test]
fn pipelined_responses_held_while_more_arrive_allocate_nothing() {
    const BATCH: usize = 64;
    assert_counting_works();
    let now = Instant::now();
    let config = Config::new().with_version_hint(ApiVersions::from_ranges([(3, 0, 12)]).unwrap());
    let mut conn = Connection::new(config, now).unwrap();
    while conn.poll_event().is_some() {}
    let body = [0u8; 300];
    let mut stream = Vec::with_capacity(BATCH * (8 + body.len()));
    let mut held: VecDeque<Event> = VecDeque::with_capacity(4 * BATCH);
    let (mut after_warmup, mut responses) = (0, 0);
    count_this_thread(true);
    for round in 0..600 {
        let start = allocations();
        stream.clear();
        for _ in 0..BATCH {
            let id = conn
                .send_request(
                    Request::new(ApiKey::METADATA, 1, Bytes::from_static(b"\xff\xff\xff\xff")),
                    now,
                )
                .unwrap();
            stream.extend_from_slice(&(4 + body.len() as i32).to_be_bytes());
            stream.extend_from_slice(&id.0.to_be_bytes());
            stream.extend_from_slice(&body);
        }
        while conn.transmit_len() > 0 {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = conn.poll_transmit(&mut slices);
            let written: usize = slices[..n].iter().map(|s| s.len()).sum();
            conn.transmit_complete(written, now);
        }
        let mut fed = 0;
        while fed < stream.len() {
            let buf = conn.recv_buf();
            let n = buf.len().min(stream.len() - fed);
            buf[..n].copy_from_slice(&stream[fed..fed + n]);
            conn.recv_commit(n, now);
            fed += n;
            while let Some(ev) = conn.poll_event() {
                assert!(matches!(ev, Event::Response(_)), "{ev:?}");
                held.push_back(ev);
                responses += 1;
            }
        }
        // Only now does the caller drop the previous batch.
        while held.len() > BATCH {
            held.pop_front();
        }
        if round >= 100 {
            after_warmup += allocations() - start;
        }
    }
    count_this_thread(false);
    assert_eq!(responses, 600 * BATCH);
    assert_eq!(after_warmup, 0, "allocations in 500 batches of {BATCH}");
}
