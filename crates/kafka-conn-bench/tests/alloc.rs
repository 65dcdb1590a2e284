//! Zero heap allocations per request in steady state (issue 20), through
//! `Client` and `DirectClient`, proved with the counting allocator against
//! a private librdkafka mock cluster: after a warm-up (buffers, slots and
//! maps grown to the connection's concurrency), a window of 32,768
//! requests at concurrency 64 allocates nothing.
//!
//! On tokio's current-thread runtime everything runs on the counting
//! thread — the callers, `Client`'s connection task, the runtime's I/O
//! driver — and all of it is counted. smol and async-std run their reactor
//! on whichever thread waits, and their reactor allocates by itself (async-io
//! collects the wakers of each `react` turn into a new `Vec`), so there the
//! `DirectClient`, which runs in its caller's task, is counted while its
//! future is polled: everything kafka-conn does for the requests (socket
//! reads and writes included), nothing the runtime does between polls.
//! `Client` on those runtimes runs its task on executor threads the counter
//! does not see; its queue and drive loop are the code measured on tokio.
//!
//! One `#[test]`: the counter is global, so two counting tests running at
//! once would count into each other's windows.
//!
//! The connections run with the default settings, the idle receive-buffer
//! release (1 s) included: its deadline comes and goes between bursts, and
//! each time it is the earliest the engine re-arms its one timer, which the
//! runtime crates move in place (`Runtime::timer`: tokio's `Sleep::reset`,
//! async-io's `Timer::set_at`). Before that, each re-arm boxed a new sleep
//! (96 bytes on tokio), about one allocation per second whatever the
//! request rate (7 in 196,608 requests at concurrency 64). So that the
//! window sees re-arms, it stays open for at least [`MIN_WINDOW`] as well
//! as [`WINDOW`] requests.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kafka_conn_driver::core::{Config, Request};
use kafka_conn_driver::{ConnectConfig, DirectClient, Runtime};
use kafka_conn_test_support::alloc::{
    allocations, assert_counting_works, count_this_thread, CountingAllocator,
};
use kafka_conn_testsuite::kafka::{api_versions_v0, metadata_all};
use kafka_conn_testsuite::MockCluster;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const CONCURRENCY: usize = 64;
const WARMUP: u64 = 32_768;
const WINDOW: u64 = 32_768;
/// The window's least length in time: the idle release's timer (1 s) is
/// re-armed about once a second under load, so at least twice in it.
const MIN_WINDOW: Duration = Duration::from_millis(2_500);

/// Counts completed requests and reads the allocation counter when the
/// window opens and closes (all on the counting thread).
#[derive(Default)]
struct Window {
    done: Cell<u64>,
    start: Cell<u64>,
    opened: Cell<Option<Instant>>,
    /// The allocation counter and the requests done when it closed.
    end: Cell<Option<(u64, u64)>>,
}

impl Window {
    fn finished(&self) -> bool {
        self.end.get().is_some()
    }

    fn one_done(&self) {
        let n = self.done.get() + 1;
        self.done.set(n);
        if n == WARMUP {
            self.start.set(allocations());
            self.opened.set(Some(Instant::now()));
        } else if n >= WARMUP + WINDOW
            && self.end.get().is_none()
            && self.opened.get().is_some_and(|t| t.elapsed() >= MIN_WINDOW)
        {
            self.end.set(Some((allocations(), n - WARMUP)));
        }
    }

    /// Allocations in the window, and requests done in it.
    fn allocations(&self) -> (u64, u64) {
        let (end, requests) = self.end.get().expect("the window closed");
        (end - self.start.get(), requests)
    }
}

fn requests() -> [(&'static str, Request); 2] {
    [
        ("ApiVersions v0", api_versions_v0()),
        ("Metadata v1, all topics", metadata_all()),
    ]
}

/// The connections' settings: the defaults, the idle receive-buffer
/// release (1 s) included (see the module docs).
fn config() -> ConnectConfig {
    ConnectConfig::new(Config::new())
}

fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn client_and_direct_client_allocate_nothing_per_request() {
    assert_counting_works();
    let Some(mock) = MockCluster::start(1) else {
        return;
    };
    let addr = mock.address(1);
    client_on_tokio(&addr);
    direct_client_on_tokio(&addr);
    direct_client_on_smol(&addr);
    direct_client_on_async_std(&addr);
}

fn client_on_tokio(addr: &str) {
    let rt = tokio_current_thread();
    for (name, request) in requests() {
        count_this_thread(true);
        let window = rt.block_on(async {
            let client = kafka_conn_tokio::connect(addr, config()).await.unwrap();
            let window = Rc::new(Window::default());
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let workers: Vec<_> = (0..CONCURRENCY)
                        .map(|_| {
                            let (client, request, window) =
                                (client.clone(), request.clone(), window.clone());
                            tokio::task::spawn_local(async move {
                                while !window.finished() {
                                    client.send(request.clone()).await.unwrap();
                                    window.one_done();
                                }
                            })
                        })
                        .collect();
                    for w in workers {
                        w.await.unwrap();
                    }
                })
                .await;
            client.close();
            client.closed().await;
            window
        });
        count_this_thread(false);
        let (n, requests) = window.allocations();
        eprintln!("Client on tokio, {name}: {n} allocations in {requests} requests");
        assert_eq!(n, 0, "Client on tokio, {name}: allocations in steady state");
    }
}

/// `DirectClient` pipelining `CONCURRENCY` requests in one task, as the
/// benchmark's `direct_round` does.
async fn direct<R: Runtime>(mut client: DirectClient<R>, request: Request) -> Window {
    let window = Window::default();
    for _ in 0..CONCURRENCY {
        client.submit(request.clone()).unwrap();
    }
    let mut in_flight = CONCURRENCY;
    while in_flight > 0 {
        let c = client.recv().await.expect("the connection is open");
        c.result.unwrap();
        in_flight -= 1;
        window.one_done();
        if !window.finished() {
            client.submit(request.clone()).unwrap();
            in_flight += 1;
        }
    }
    client.close();
    client.closed().await;
    window
}

/// Counts allocations only while the inner future is polled.
struct Counted<F>(Pin<Box<F>>);

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        count_this_thread(true);
        let out = self.0.as_mut().poll(cx);
        count_this_thread(false);
        out
    }
}

/// `run(request)` runs one `DirectClient` round per request kind; with
/// `whole_thread`, everything the thread does meanwhile is counted (else
/// `run` counts what it wants, with [`Counted`]).
fn direct_on(runtime: &str, whole_thread: bool, run: impl Fn(Request) -> Window) {
    for (name, request) in requests() {
        count_this_thread(whole_thread);
        let window = run(request);
        count_this_thread(false);
        let (n, requests) = window.allocations();
        eprintln!("DirectClient on {runtime}, {name}: {n} allocations in {requests} requests");
        assert_eq!(n, 0, "DirectClient on {runtime}, {name}");
    }
}

fn direct_client_on_tokio(addr: &str) {
    let rt = tokio_current_thread();
    direct_on("tokio", true, |request| {
        rt.block_on(async {
            let client = kafka_conn_tokio::connect_direct(addr, config())
                .await
                .unwrap();
            direct(client, request).await
        })
    });
}

fn direct_client_on_smol(addr: &str) {
    direct_on("smol", false, |request| {
        smol::block_on(async {
            let client = kafka_conn_smol::connect_direct(addr, config())
                .await
                .unwrap();
            Counted(Box::pin(direct(client, request))).await
        })
    });
}

fn direct_client_on_async_std(addr: &str) {
    direct_on("async-std", false, |request| {
        async_std::task::block_on(async {
            let client = kafka_conn_async_std::connect_direct(addr, config())
                .await
                .unwrap();
            Counted(Box::pin(direct(client, request))).await
        })
    });
}
