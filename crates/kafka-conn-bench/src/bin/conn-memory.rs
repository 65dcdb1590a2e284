//! `conn-memory`: what one idle connection owns on the heap, by allocation.
//!
//! Opens one warm-up connection, then N more (1,000) to a broker, either as
//! `Client`s (`--kind client`, to `--broker`, default the first address of
//! `KAFKA_PLAINTEXT_BOOTSTRAP`) or as the connections of one `Cluster` to
//! a private librdkafka mock cluster of N + 1 brokers (`--kind cluster`),
//! on tokio's current-thread runtime; a counting allocator keeps the number
//! of live allocations of each size. Prints the live heap bytes per
//! connection and every allocation size that N connections hold about N
//! times (or a multiple), with the bytes each costs per connection: the
//! breakdown of `docs/benchmarks.md` ("Memory per idle connection").
//! RSS (what `e2e --scenario idle-memory` reports) is lower than the heap
//! bytes where an allocation's pages were never touched (most of the 16 KiB
//! receive buffer of an idle connection).

// The counting allocator is the only unsafe code, confined to this
// measuring binary; the libraries forbid unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use kafka_conn_driver::{Cluster, ClusterConfig, ConnectConfig, NodeId};
use kafka_conn_testsuite::MockCluster;

/// Allocation sizes counted one by one; larger ones share the last slot.
const SIZES: usize = 64 * 1024 + 1;

struct Counting;

static LIVE: [AtomicI64; SIZES] = [const { AtomicI64::new(0) }; SIZES];
static BYTES: AtomicI64 = AtomicI64::new(0);

fn slot(size: usize) -> usize {
    size.min(SIZES - 1)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE[slot(layout.size())].fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE[slot(layout.size())].fetch_sub(1, Ordering::Relaxed);
        BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE[slot(layout.size())].fetch_sub(1, Ordering::Relaxed);
        LIVE[slot(new_size)].fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn snapshot() -> (i64, Vec<i64>) {
    (
        BYTES.load(Ordering::SeqCst),
        LIVE.iter().map(|c| c.load(Ordering::SeqCst)).collect(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let n: usize = value("--connections").map_or(1000, |v| v.parse().expect("a number"));
    let kind = value("--kind").unwrap_or_else(|| "client".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    let mut mock = None;
    let (before, after) = rt.block_on(async {
        match kind.as_str() {
            "client" => {
                let broker = value("--broker").unwrap_or_else(|| {
                    let list = std::env::var("KAFKA_PLAINTEXT_BOOTSTRAP")
                        .expect("--broker or KAFKA_PLAINTEXT_BOOTSTRAP");
                    list.split(',').next().unwrap_or_default().to_owned()
                });
                let connect = || kafka_conn_tokio::connect(&broker, ConnectConfig::default());
                let _warm = connect().await.expect("warm-up connection");
                let mut all = Vec::with_capacity(n);
                settle().await;
                let before = snapshot();
                for _ in 0..n {
                    all.push(connect().await.expect("connect"));
                }
                settle().await;
                (before, snapshot())
            }
            "cluster" => {
                let m = MockCluster::start(n as u32 + 1).expect("a mock cluster (broker env)");
                let cluster =
                    kafka_conn_tokio::Cluster::connect([m.address(1)], ClusterConfig::default())
                        .await
                        .expect("cluster");
                mock = Some(m);
                let ids: Vec<NodeId> = cluster.nodes().iter().map(|n| n.id).collect();
                cluster.client(ids[0]).await.expect("warm-up connection");
                settle().await;
                let before = snapshot();
                for id in &ids[1..] {
                    cluster.client(*id).await.expect("connect");
                }
                settle().await;
                let after = snapshot();
                let _keep: &Cluster<_> = &cluster;
                (before, after)
            }
            other => panic!("--kind client|cluster, not {other}"),
        }
    });
    drop(mock);
    let n = n as i64;
    println!(
        "# {kind}: {n} idle connections: {:.2} KiB of live heap each",
        (after.0 - before.0) as f64 / n as f64 / 1024.0
    );
    println!();
    println!("| allocation size, bytes | live per connection | bytes per connection |");
    println!("|---:|---:|---:|");
    let mut accounted = 0;
    for size in 1..SIZES {
        let delta = after.1[size] - before.1[size];
        // Held about once (or k times) per connection.
        if delta * 10 >= n * 9 {
            let per = delta as f64 / n as f64;
            let bytes = per * size as f64;
            accounted += (bytes * n as f64) as i64;
            let label = if size == SIZES - 1 {
                "> 65536".to_owned()
            } else {
                size.to_string()
            };
            println!("| {label} | {per:.2} | {bytes:.0} |");
        }
    }
    println!(
        "| other sizes | | {:.0} |",
        ((after.0 - before.0) - accounted) as f64 / n as f64
    );
}
