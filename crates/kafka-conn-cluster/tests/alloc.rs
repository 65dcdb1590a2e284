//! Counts heap allocations: the per-request path of the policy (choose a
//! node by id or the least loaded one, count the request in flight, count it
//! done, drain the outputs, read the next deadline) allocates nothing once
//! the connections are up.

// The counting allocator is the only unsafe code, confined to this test
// binary; the library itself forbids unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kafka_conn_cluster::fuzz_support::encode_metadata;
use kafka_conn_cluster::{Action, ClusterConfig, ClusterPolicy, NodeId, Route, Target};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Only this test's thread counts: the test harness's own threads
    // allocate now and then while it runs.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    COUNTED.with(|c| c.set(true));
    let start = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..10_000 {
        now += Duration::from_micros(10);
        round(&mut p, i, now);
    }
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - start;
    COUNTED.with(|c| c.set(false));
    assert_eq!(allocs, 0, "allocations in 10,000 request rounds");
}
