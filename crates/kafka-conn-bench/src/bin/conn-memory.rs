//! `conn-memory`: what one idle connection owns, on the heap by allocation
//! and in resident memory.
//!
//! Opens one warm-up connection, then N more (1,000) to a broker, either as
//! `Client`s (`--kind client`) or `DirectClient`s (`--kind direct`) to
//! `--broker` (default the first address of `KAFKA_PLAINTEXT_BOOTSTRAP`),
//! or as the connections of one `Cluster` to a private librdkafka mock
//! cluster of N + 1 brokers (`--kind cluster`), on tokio's current-thread
//! runtime; then lets them idle for `--settle-ms` (1,500: past the core's
//! receive-buffer release, 1 s by default, so what is measured is an idle
//! connection's steady state). A `DirectClient` is driven only while its
//! owner polls it: each is polled once after the settle, as an owner's
//! `recv` loop would (that poll fires its due deadline: the release).
//!
//! A counting allocator keeps the number of live allocations of each size.
//! Prints the live heap bytes per connection, the resident memory per
//! connection (`RssAnon` and `VmRSS` deltas / N, the method), and
//! every allocation size that N connections hold about N times (or a
//! multiple), with the bytes each costs per connection: the breakdown of
//! `docs/benchmarks.md` ("Memory per idle connection").

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

/// The live heap bytes, and the live allocations per size into `live`
/// (allocated and touched before the first measure, so that neither the
/// heap nor the RSS measured counts the snapshots themselves).
fn snapshot(live: &mut [i64]) -> i64 {
    for (slot, c) in live.iter_mut().zip(&LIVE) {
        *slot = c.load(Ordering::SeqCst);
    }
    BYTES.load(Ordering::SeqCst)
}

/// `(RssAnon, VmRSS)` of this process, KiB.
fn rss() -> (i64, i64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("VmRSS:"))
}

/// Heap bytes, RSS, and RSS after `malloc_trim`, taken together.
type Measure = (i64, (i64, i64), (i64, i64));

extern "C" {
    /// glibc: gives free memory inside the heap back to the OS (whole free
    /// pages, `madvise`), so that the RSS after it counts what is in use
    /// plus what fragmentation pins.
    fn malloc_trim(pad: usize) -> i32;
}

/// The RSS after `malloc_trim(0)`.
fn trimmed_rss() -> (i64, i64) {
    // SAFETY: glibc's malloc_trim takes no pointer and may be called at
    // any time; the binary links glibc (Linux gnu target, as measured).
    unsafe { malloc_trim(0) };
    rss()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let n: usize = value("--connections").map_or(1000, |v| v.parse().expect("a number"));
    let settle_ms: u64 = value("--settle-ms").map_or(1500, |v| v.parse().expect("a number"));
    let kind = value("--kind").unwrap_or_else(|| "client".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let settle = || tokio::time::sleep(Duration::from_millis(settle_ms));
    let broker = || {
        value("--broker").unwrap_or_else(|| {
            let list = std::env::var("KAFKA_PLAINTEXT_BOOTSTRAP")
                .expect("--broker or KAFKA_PLAINTEXT_BOOTSTRAP");
            list.split(',').next().unwrap_or_default().to_owned()
        })
    };
    let mut mock = None;
    // Touch every page of the counters now: a size first allocated between
    // the two measures would otherwise add a page of them to the RSS.
    for c in &LIVE {
        c.fetch_add(0, Ordering::SeqCst);
    }
    // Non-zero, so that the pages are touched now.
    let mut live0 = vec![1i64; SIZES];
    let mut live1 = vec![1i64; SIZES];
    let measure = |live: &mut Vec<i64>| -> Measure {
        let heap = snapshot(live);
        (heap, rss(), trimmed_rss())
    };
    let (before, after) = rt.block_on(async {
        match kind.as_str() {
            "client" => {
                let broker = broker();
                let connect = || kafka_conn_tokio::connect(&broker, ConnectConfig::default());
                let _warm = connect().await.expect("warm-up connection");
                let mut all = Vec::with_capacity(n);
                settle().await;
                let before = measure(&mut live0);
                for _ in 0..n {
                    all.push(connect().await.expect("connect"));
                }
                settle().await;
                (before, measure(&mut live1))
            }
            "direct" => {
                let broker = broker();
                let connect =
                    || kafka_conn_tokio::connect_direct(&broker, ConnectConfig::default());
                let mut warm = connect().await.expect("warm-up connection");
                settle().await;
                poll_once(&mut warm).await;
                let before = measure(&mut live0);
                let mut all = Vec::with_capacity(n);
                for _ in 0..n {
                    all.push(connect().await.expect("connect"));
                }
                settle().await;
                for d in &mut all {
                    poll_once(d).await;
                }
                (before, measure(&mut live1))
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
                let before = measure(&mut live0);
                for id in &ids[1..] {
                    cluster.client(*id).await.expect("connect");
                }
                settle().await;
                let after = measure(&mut live1);
                let _keep: &Cluster<_> = &cluster;
                (before, after)
            }
            other => panic!("--kind client|direct|cluster, not {other}"),
        }
    });
    drop(mock);
    let (heap0, (anon0, vm0), (tanon0, _)) = before;
    let (heap1, (anon1, vm1), (tanon1, _)) = after;
    let n = n as i64;
    let per = |a: i64, b: i64| (b - a) as f64 / n as f64;
    println!(
        "# {kind}: {n} idle connections, after {settle_ms} ms idle: {:.2} KiB of live heap, {:.2} KiB RssAnon, {:.2} KiB VmRSS, {:.2} KiB RssAnon after malloc_trim each",
        per(heap0, heap1) / 1024.0,
        per(anon0, anon1),
        per(vm0, vm1),
        per(tanon0, tanon1),
    );
    println!();
    println!("| allocation size, bytes | live per connection | bytes per connection |");
    println!("|---:|---:|---:|");
    let mut accounted = 0;
    for size in 1..SIZES {
        let delta = live1[size] - live0[size];
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
        ((heap1 - heap0) - accounted) as f64 / n as f64
    );
}

/// One poll of a `DirectClient`, as its owner's `recv` loop would do: the
/// engine runs its due deadlines. Nothing is in flight, so nothing completes.
async fn poll_once<R: kafka_conn_driver::Runtime>(d: &mut kafka_conn_driver::DirectClient<R>) {
    std::future::poll_fn(|cx| {
        assert!(d.poll_recv(cx).is_pending(), "the connection closed");
        std::task::Poll::Ready(())
    })
    .await;
}
