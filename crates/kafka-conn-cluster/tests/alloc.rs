//! Counts heap allocations: the per-request path of the policy (choose a
//! node by id or the least loaded one, count the request in flight, count it
//! done, drain the outputs, read the next deadline) allocates nothing once
//! the connections are up.

use std::time::{Duration, Instant};

use kafka_conn_cluster::fuzz_support::encode_metadata;
use kafka_conn_cluster::{Action, ClusterConfig, ClusterPolicy, NodeId, Route, Target};
use kafka_conn_test_support::alloc::{allocations_in, assert_counting_works, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn routing_a_request_and_ending_it_allocates_nothing() {
    let mut now = Instant::now();
    let mut p = ClusterPolicy::new(["seed:9092"], ClusterConfig::new(), now).unwrap();
    let brokers: Vec<(i32, &str, i32)> = (0..12).map(|i| (i, "broker", 9092 + i)).collect();
    p.handle_metadata(9, &encode_metadata(9, &brokers, Some("c"), 0, &[], 0), now)
        .unwrap();
    // Connect every broker.
    for id in 0..12 {
        assert_eq!(
            p.route(Target::Node(NodeId(id)), now),
            Ok(Route::Wait(NodeId(id)))
        );
        while let Some(a) = p.poll_action() {
            if let Action::Dial { conn, .. } = a {
                assert!(p.handle_connected(conn, now));
            }
        }
    }
    while p.poll_action().is_some() {}
    while p.poll_event().is_some() {}

    let round = |p: &mut ClusterPolicy, i: i32, now: Instant| {
        let target = if i % 2 == 0 {
            Target::Any
        } else {
            Target::Node(NodeId(i % 12))
        };
        let Ok(Route::Ready(conn)) = p.route(target, now) else {
            panic!("not ready")
        };
        // A second request in flight on another node, so the choice is not trivial.
        let Ok(Route::Ready(other)) = p.route(Target::Any, now) else {
            panic!("not ready")
        };
        p.request_done(conn, now);
        p.request_done(other, now);
        assert!(p.poll_action().is_none());
        assert!(p.poll_event().is_none());
        let _ = p.poll_timeout();
    };
    for i in 0..100 {
        round(&mut p, i, now);
    }
    assert_counting_works();
    let (allocs, ()) = allocations_in(|| {
        for i in 0..10_000 {
            now += Duration::from_micros(10);
            round(&mut p, i, now);
        }
    });
    assert_eq!(allocs, 0, "allocations in 10,000 request rounds");
}
