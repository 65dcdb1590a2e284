//! The clients, each run in a child process: connect, check one response,
//! warm up, then the measured phase between two `getrusage` calls.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io::{IoSlice, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use kafka_conn_core::{ApiKey, Request};
use kafka_conn_driver::{Completion, DirectClient};
use kafka_conn_tokio::{Client, ConnectConfig, Runtime};

use crate::{stop_after, ClientKind, Job, Meter, Sample, Workload};

mod cluster;
mod raw_owned;
mod raw_shared;

pub(crate) fn run(job: &Job) -> Result<Sample, String> {
    match job.client {
        ClientKind::Raw => raw(job).map_err(|e| e.to_string()),
        ClientKind::RawTokio => {
            let rt = current_thread_tokio()?;
            let handle = kafka_conn_tokio::TokioRuntime::with_handle(rt.handle().clone());
            rt.block_on(raw_async(job, handle))
        }
        // In one task on the executor's thread, as the `DirectClient`s run.
        ClientKind::RawSmol => {
            let job = job.clone();
            main_thread_wait(smol::spawn(async move {
                raw_async(&job, kafka_conn_smol::SmolRuntime).await
            }))
        }
        ClientKind::RawTokioOwned => {
            let rt = current_thread_tokio()?;
            let handle = kafka_conn_tokio::TokioRuntime::with_handle(rt.handle().clone());
            rt.block_on(raw_owned::raw_owned(job, handle))
        }
        ClientKind::RawSmolOwned => {
            let job = job.clone();
            main_thread_wait(smol::spawn(async move {
                raw_owned::raw_owned(&job, kafka_conn_smol::SmolRuntime).await
            }))
        }
        ClientKind::RawAsyncStd => {
            let job = job.clone();
            main_thread_wait(async_std::task::spawn(async move {
                raw_async(&job, kafka_conn_async_std::AsyncStdRuntime).await
            }))
        }
        // The workers and the socket's task spawned as `kc-<runtime>`'s are.
        ClientKind::RawTokioShared => {
            let rt = current_thread_tokio()?;
            let handle = kafka_conn_tokio::TokioRuntime::with_handle(rt.handle().clone());
            rt.block_on(raw_shared::raw_shared(
                job,
                handle,
                raw_shared::Counted::new(),
                spawn_tokio,
            ))
        }
        ClientKind::RawSmolShared => main_thread_wait(raw_shared::raw_shared(
            job,
            kafka_conn_smol::SmolRuntime,
            raw_shared::Counted::new(),
            smol::spawn,
        )),
        ClientKind::RawAsyncStdShared => main_thread_wait(raw_shared::raw_shared(
            job,
            kafka_conn_async_std::AsyncStdRuntime,
            raw_shared::Counted::new(),
            async_std::task::spawn,
        )),
        ClientKind::RawTokioSharedOwned => {
            let rt = current_thread_tokio()?;
            let handle = kafka_conn_tokio::TokioRuntime::with_handle(rt.handle().clone());
            rt.block_on(raw_shared::raw_shared(
                job,
                handle.clone(),
                raw_shared::Owned::new(handle),
                spawn_tokio,
            ))
        }
        ClientKind::RawSmolSharedOwned => main_thread_wait(raw_shared::raw_shared(
            job,
            kafka_conn_smol::SmolRuntime,
            raw_shared::Owned::new(kafka_conn_smol::SmolRuntime),
            smol::spawn,
        )),
        ClientKind::CoreBlocking => core_blocking(job),
        ClientKind::Tokio => current_thread_tokio()?.block_on(async {
            let client = kafka_conn_tokio::connect(&job.broker, ConnectConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            kafka_conn(job, &client, |client, request, stop| {
                spawn_tokio(send_loop(client, request, stop))
            })
            .await
        }),
        // As kc-tokio, with the cost of observing: the Prometheus exporter's
        // recorder installed globally and a MetricsObserver on the connection.
        ClientKind::TokioMetrics => {
            tokio_metrics(job, metrics_exporter_prometheus::PrometheusBuilder::new())
        }
        // The same with the histograms as buckets (the example's setup):
        // the exporter aggregates the samples into buckets at upkeep
        // instead of a summary; recording is the same.
        ClientKind::TokioMetricsBuckets => {
            const BUCKETS: &[f64] = &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ];
            let builder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .map_err(|e| e.to_string())?;
            tokio_metrics(job, builder)
        }
        ClientKind::Smol => main_thread_wait(async {
            let client = kafka_conn_smol::connect(&job.broker, ConnectConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            // The workers run on smol's global executor, like the connection's task.
            kafka_conn(job, &client, |client, request, stop| {
                smol::spawn(send_loop(client, request, stop))
            })
            .await
        }),
        ClientKind::AsyncStd => main_thread_wait(async {
            let client = kafka_conn_async_std::connect(&job.broker, ConnectConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            kafka_conn(job, &client, |client, request, stop| {
                async_std::task::spawn(send_loop(client, request, stop))
            })
            .await
        }),
        ClientKind::TokioDirect => current_thread_tokio()?.block_on(async {
            let client = kafka_conn_tokio::connect_direct(&job.broker, ConnectConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            direct(job, client).await
        }),
        // The whole client (connect included) is one task on the runtime's
        // executor thread, which also runs its I/O; the main thread only
        // waits (see `main_thread_wait`).
        ClientKind::SmolDirect => {
            let job = job.clone();
            main_thread_wait(smol::spawn(async move {
                let client = kafka_conn_smol::connect_direct(&job.broker, ConnectConfig::default())
                    .await
                    .map_err(|e| e.to_string())?;
                direct(&job, client).await
            }))
        }
        ClientKind::AsyncStdDirect => {
            let job = job.clone();
            main_thread_wait(async_std::task::spawn(async move {
                let client =
                    kafka_conn_async_std::connect_direct(&job.broker, ConnectConfig::default())
                        .await
                        .map_err(|e| e.to_string())?;
                direct(&job, client).await
            }))
        }
        ClientKind::RsKafka => current_thread_tokio()?.block_on(rskafka_messenger(job)),
        ClientKind::RsKafkaClient => current_thread_tokio()?.block_on(rskafka_client(job)),
        ClientKind::TokioCluster => cluster::tokio(job),
        ClientKind::SmolCluster => cluster::smol(job),
        ClientKind::AsyncStdCluster => cluster::async_std(job),
    }
}

/// kc-tokio with a `MetricsObserver` recording into `builder`'s recorder,
/// installed globally. At the end the recorder is drained once
/// (`run_upkeep`, what a scrape or the exporter's upkeep task does): the
/// samples it kept are aggregated then, a cost deferred from the
/// connection's task that `scripts/bench-observe-cost` counts apart.
fn tokio_metrics(
    job: &Job,
    builder: metrics_exporter_prometheus::PrometheusBuilder,
) -> Result<Sample, String> {
    current_thread_tokio()?.block_on(async {
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
        let observer = Arc::new(kafka_conn_tokio::MetricsObserver::new());
        let config = ConnectConfig::default().with_observer(observer);
        let client = kafka_conn_tokio::connect(&job.broker, config)
            .await
            .map_err(|e| e.to_string())?;
        let sample = kafka_conn(job, &client, |client, request, stop| {
            spawn_tokio(send_loop(client, request, stop))
        })
        .await;
        handle.run_upkeep();
        sample
    })
}

/// Waits on the main thread for work spawned on smol's or async-std's
/// executor threads, without taking part in their I/O: with `smol::block_on`
/// the main thread would run the I/O reactor, and every response would hop
/// from it to the executor thread that runs the connection's task.
fn main_thread_wait<T>(f: impl Future<Output = T>) -> T {
    smol::future::block_on(f)
}

/// tokio's single-threaded runtime for both tokio clients (kafka-conn and
/// rskafka): one connection needs no more, and it is the cheapest per request.
fn current_thread_tokio() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Runs `concurrency` workers (spawned by `spawn`) until `seconds` pass;
/// returns the responses received.
async fn round<F, Fut>(concurrency: usize, seconds: f64, mut spawn: F) -> Result<u64, String>
where
    F: FnMut(Arc<AtomicBool>) -> Fut,
    Fut: Future<Output = Result<u64, String>>,
{
    let stop = stop_after(seconds);
    let workers: Vec<Fut> = (0..concurrency).map(|_| spawn(stop.clone())).collect();
    let mut total = 0;
    for w in workers {
        total += w.await?;
    }
    Ok(total)
}

/// The warm-up round, then the measured one between two `getrusage` calls,
/// each a [`round`] of `job.concurrency` workers.
async fn measure<F, Fut>(job: &Job, response_bytes: usize, spawn: F) -> Result<Sample, String>
where
    F: FnMut(Arc<AtomicBool>) -> Fut,
    Fut: Future<Output = Result<u64, String>>,
{
    measure_with(
        job,
        response_bytes,
        spawn,
        |mut spawn, seconds| async move {
            let n = round(job.concurrency, seconds, &mut spawn).await;
            (spawn, n)
        },
    )
    .await
}

/// [`measure`] with any round: `phase(state, seconds)` runs one, and its
/// future hands `state` back for the next. `state` may be a `&mut` (a
/// `DirectClient`), which a closure could not lend to its future; and,
/// unlike an async closure, this needs no higher-ranked lifetime, so the
/// future stays `Send` for smol's and async-std's `spawn`.
async fn measure_with<S, Fut>(
    job: &Job,
    response_bytes: usize,
    state: S,
    mut phase: impl FnMut(S, f64) -> Fut,
) -> Result<Sample, String>
where
    Fut: Future<Output = (S, Result<u64, String>)>,
{
    let (state, warmup) = phase(state, job.warmup).await;
    warmup?;
    let meter = Meter::start();
    let (_, n) = phase(state, job.seconds).await;
    Ok(meter.finish(n?, response_bytes))
}

/// [`measure`] for the blocking clients: `phase(seconds)` runs one round.
fn measure_blocking<E>(
    job: &Job,
    response_bytes: usize,
    mut phase: impl FnMut(f64) -> Result<u64, E>,
) -> Result<Sample, E> {
    phase(job.warmup)?;
    let meter = Meter::start();
    let n = phase(job.seconds)?;
    Ok(meter.finish(n, response_bytes))
}

/// One worker: calls `op` until `stop` is set; returns the calls completed.
async fn count_until<Fut>(stop: &AtomicBool, mut op: impl FnMut() -> Fut) -> Result<u64, String>
where
    Fut: Future<Output = Result<(), String>>,
{
    count_with(stop, (), |()| {
        let call = op();
        async move { ((), call.await) }
    })
    .await
}

/// [`count_until`] with a `state` that each call of `op` gets and its
/// future hands back (as in [`measure_with`]).
async fn count_with<S, Fut>(
    stop: &AtomicBool,
    mut state: S,
    mut op: impl FnMut(S) -> Fut,
) -> Result<u64, String>
where
    Fut: Future<Output = (S, Result<(), String>)>,
{
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let (s, done) = op(state).await;
        state = s;
        done?;
        n += 1;
        crate::note_done(1, stop);
    }
    Ok(n)
}

/// Spawns a worker on the current tokio runtime now (the workers run
/// concurrently); the returned future waits for its count.
fn spawn_tokio(
    worker: impl Future<Output = Result<u64, String>> + Send + 'static,
) -> impl Future<Output = Result<u64, String>> {
    let task = tokio::spawn(worker);
    async move { task.await.map_err(|e| e.to_string())? }
}

async fn send_loop(client: Client, request: Request, stop: Arc<AtomicBool>) -> Result<u64, String> {
    count_until(&stop, || async {
        client
            .send(request.clone())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
}

/// kafka-conn on any runtime: `spawn` starts one `send_loop` on it.
async fn kafka_conn<F, Fut>(job: &Job, client: &Client, spawn: F) -> Result<Sample, String>
where
    F: Fn(Client, Request, Arc<AtomicBool>) -> Fut,
    Fut: Future<Output = Result<u64, String>>,
{
    let w = job.workload;
    let request = Request::new(ApiKey(w.api_key()), w.version(), w.body());
    let first = client
        .send(request.clone())
        .await
        .map_err(|e| e.to_string())?;
    w.check(&first.body)?;
    let response_bytes = first.body.len();
    // A held response keeps its receive buffer alive: let it go, as the
    // other clients do.
    drop(first);
    let sample = measure(job, response_bytes, |stop| {
        spawn(client.clone(), request.clone(), stop)
    })
    .await;
    client.close();
    client.closed().await;
    sample
}

/// kafka-conn's `DirectClient` on any runtime, all in the caller's task:
/// the same first-response check as [`kafka_conn`], then [`direct_round`]s.
async fn direct<R: Runtime>(job: &Job, mut client: DirectClient<R>) -> Result<Sample, String> {
    let w = job.workload;
    let request = Request::new(ApiKey(w.api_key()), w.version(), w.body());
    let first = client
        .request(request.clone())
        .await
        .map_err(|e| e.to_string())?;
    w.check(&first.body)?;
    let response_bytes = first.body.len();
    drop(first);
    let sample = measure_with(job, response_bytes, &mut client, |client, seconds| {
        let request = &request;
        async move {
            let n = direct_round(client, request, job.concurrency, &stop_after(seconds)).await;
            (client, n)
        }
    })
    .await;
    client.close();
    client.closed().await;
    sample
}

/// One round on a `DirectClient`, in this one task. Concurrency 1: a loop
/// of `request`. Otherwise the raw loop's pipelining: `send` `concurrency`
/// requests, then per completion `recv`ed one more `send` until `stop`,
/// then the ones still in flight drained. Returns the responses received.
async fn direct_round<R: Runtime>(
    client: &mut DirectClient<R>,
    request: &Request,
    concurrency: usize,
    stop: &AtomicBool,
) -> Result<u64, String> {
    if concurrency == 1 {
        return count_with(stop, client, |client| async move {
            let done = client.request(request.clone()).await;
            (client, done.map(drop).map_err(|e| e.to_string()))
        })
        .await;
    }
    for _ in 0..concurrency {
        send(client, request)?;
    }
    // Each call takes one completion and sends one more request:
    // `concurrency` stay in flight.
    let done = count_with(stop, &mut *client, |client| async move {
        let done = match recv_ok(client).await {
            Ok(()) => send(client, request),
            Err(e) => Err(e),
        };
        (client, done)
    })
    .await?;
    for _ in 0..concurrency {
        recv_ok(client).await?;
    }
    Ok(done + concurrency as u64)
}

/// Queues one request on a `DirectClient` (no I/O).
fn send<R: Runtime>(client: &mut DirectClient<R>, request: &Request) -> Result<(), String> {
    client
        .submit(request.clone())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The next completion of a `DirectClient`, which must be a response.
async fn recv_ok<R: Runtime>(client: &mut DirectClient<R>) -> Result<(), String> {
    match client.recv().await {
        Some(Completion { result: Ok(_), .. }) => Ok(()),
        Some(Completion { result: Err(e), .. }) => Err(e.to_string()),
        None => Err(format!(
            "connection closed: {}",
            client
                .close_reason()
                .map_or_else(|| "no reason".to_owned(), ToString::to_string)
        )),
    }
}

/// The workload's request in rskafka's types (what its API takes; rskafka
/// encodes it on every send).
enum RsRequest {
    Metadata(rskafka::protocol::messages::MetadataRequest),
    ApiVersions(rskafka::protocol::messages::ApiVersionsRequest),
    /// The same record batch as the others send: rskafka encodes it (a copy
    /// of the 1 MiB value and its CRC) on every request.
    Produce(rskafka::protocol::messages::ProduceRequest),
    /// The same Fetch as the others send: rskafka decodes the 1 MiB record
    /// batch (checking its CRC, copying the value) on every response.
    Fetch(rskafka::protocol::messages::FetchRequest),
}

impl RsRequest {
    fn new(w: Workload) -> Self {
        use rskafka::protocol::messages::{ApiVersionsRequest, MetadataRequest};
        use rskafka::protocol::primitives::Boolean;
        match w {
            Workload::Metadata => Self::Metadata(MetadataRequest {
                topics: None,
                allow_auto_topic_creation: Some(Boolean(false)),
            }),
            Workload::ApiVersions => Self::ApiVersions(ApiVersionsRequest {
                client_software_name: None,
                client_software_version: None,
                tagged_fields: None,
            }),
            Workload::Produce => Self::Produce(crate::produce::request()),
            Workload::Fetch => Self::Fetch(crate::fetch::request()),
        }
    }

    /// Sends it and waits for the (decoded) response; with `check`, also
    /// looks into it (the first response only, as for the other clients).
    async fn send(
        &self,
        m: &rskafka::messenger::Messenger<tokio::net::TcpStream>,
        check: bool,
    ) -> Result<(), String> {
        let e = |e: rskafka::messenger::RequestError| e.to_string();
        let empty = || Err("an empty response".to_owned());
        match self {
            Self::Metadata(r) => {
                let r = m.request(r).await.map_err(e)?;
                if check && r.brokers.is_empty() {
                    return empty();
                }
            }
            Self::ApiVersions(r) => {
                let r = m.request(r).await.map_err(e)?;
                if check {
                    if let Some(code) = r.error_code {
                        return Err(format!("ApiVersions error {code:?}"));
                    }
                    if r.api_keys.is_empty() {
                        return empty();
                    }
                }
            }
            Self::Produce(r) => {
                let r = m.request(r).await.map_err(e)?;
                if check {
                    let mut partitions = r.responses.iter().flat_map(|t| &t.partition_responses);
                    match (partitions.next(), partitions.next()) {
                        (Some(p), None) if p.error.is_none() => {}
                        _ => return Err(format!("unexpected Produce response: {r:?}")),
                    }
                }
            }
            Self::Fetch(r) => {
                let r = m.request(r).await.map_err(e)?;
                if check {
                    crate::fetch::check_response(&r)?;
                }
            }
        }
        Ok(())
    }
}

/// rskafka's single-broker connection, with the same versions as everyone.
async fn rskafka_messenger(job: &Job) -> Result<Sample, String> {
    use rskafka::messenger::Messenger;
    use rskafka::protocol::api_key::ApiKey as RsKey;
    use rskafka::protocol::api_version::{ApiVersion, ApiVersionRange};
    use rskafka::protocol::primitives::Int16;

    let tcp = tokio::net::TcpStream::connect(&job.broker)
        .await
        .map_err(|e| e.to_string())?;
    // As kafka-conn does (rskafka's own transport does not).
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut messenger = Messenger::new(tcp, 100 << 20, Arc::from("rskafka-bench"));
    messenger.sync_versions().await.map_err(|e| e.to_string())?;
    let exactly = |v| ApiVersionRange::new(ApiVersion(Int16(v)), ApiVersion(Int16(v)));
    messenger.override_version_ranges(HashMap::from([
        (RsKey::Metadata, exactly(Workload::Metadata.version())),
        (RsKey::ApiVersions, exactly(Workload::ApiVersions.version())),
        (RsKey::Produce, exactly(Workload::Produce.version())),
        (RsKey::Fetch, exactly(Workload::Fetch.version())),
    ]));
    let messenger = Arc::new(messenger);
    let request = Arc::new(RsRequest::new(job.workload));
    request.send(&messenger, true).await?;
    measure(job, 0, |stop| {
        let (m, r) = (messenger.clone(), request.clone());
        spawn_tokio(async move { count_until(&stop, || r.send(&m, false)).await })
    })
    .await
}

/// rskafka's high-level `Client::list_topics` (a Metadata request for all
/// topics on its cached broker connection, decoded into `Topic`s).
async fn rskafka_client(job: &Job) -> Result<Sample, String> {
    if job.workload != Workload::Metadata {
        return Err("rskafka's Client sends Metadata only".to_owned());
    }
    let client = rskafka::client::ClientBuilder::new(vec![job.broker.clone()])
        .client_id("rskafka-bench")
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let client = Arc::new(client);
    client.list_topics().await.map_err(|e| e.to_string())?;
    measure(job, 0, |stop| {
        let client = client.clone();
        spawn_tokio(async move {
            count_until(&stop, || async {
                client
                    .list_topics()
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .await
        })
    })
    .await
}

/// One pre-encoded request frame: size, header v1 (key, version,
/// correlation id 0, client id), body. Byte for byte what kafka-conn sends
/// for the workload but for the correlation id: its default client id, so
/// that the broker does the same work for the floors as for the clients
/// measured against them (tansu answered Metadata a few percent slower to
/// "kafka-conn" than to the 3-byte id the floors sent before; see
/// docs/benchmarks.md).
fn raw_frame(w: Workload) -> Vec<u8> {
    let config = kafka_conn_core::Config::new();
    let client_id = config.client_id().map(str::as_bytes);
    let id_len = client_id.map_or(0, <[u8]>::len);
    let mut f = Vec::new();
    let body = w.body();
    let size = 2 + 2 + 4 + 2 + id_len + body.len();
    f.extend_from_slice(&(size as i32).to_be_bytes());
    f.extend_from_slice(&w.api_key().to_be_bytes());
    f.extend_from_slice(&w.version().to_be_bytes());
    f.extend_from_slice(&0i32.to_be_bytes());
    // A nullable string: length -1 for null.
    let id_prefix = client_id.map_or(-1, |id| id.len() as i16);
    f.extend_from_slice(&id_prefix.to_be_bytes());
    f.extend_from_slice(client_id.unwrap_or_default());
    f.extend_from_slice(&body);
    f
}

/// The limit: a blocking socket, `concurrency` pre-encoded frames in one
/// `writev`, then per `read` as many responses as arrived (found by their
/// size prefix, not decoded) and one `writev` with as many new frames.
fn raw(job: &Job) -> std::io::Result<Sample> {
    let mut s = TcpStream::connect(&job.broker)?;
    s.set_nodelay(true)?;
    let frame = raw_frame(job.workload);
    let mut buf = vec![0u8; 256 << 10];

    // One request first, to check it is answered as expected.
    s.write_all(&frame)?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let len = i32::from_be_bytes(size) as usize;
    let mut first = vec![0u8; len];
    s.read_exact(&mut first)?;
    let response_bytes = check_first(job.workload, &first).map_err(std::io::Error::other)?;

    measure_blocking(job, response_bytes, |seconds| {
        raw_round(
            &mut s,
            &frame,
            job.concurrency,
            &mut buf,
            &stop_after(seconds),
        )
    })
}

/// Writes `n` copies of `frame` with vectored writes (one `writev` when the
/// socket takes it all), without copying the frame `n` times.
fn write_frames(s: &mut TcpStream, frame: &[u8], n: usize) -> std::io::Result<()> {
    let mut slices = vec![IoSlice::new(frame); n];
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match s.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut rest, written),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn raw_round(
    s: &mut TcpStream,
    frame: &[u8],
    concurrency: usize,
    buf: &mut Vec<u8>,
    stop: &AtomicBool,
) -> std::io::Result<u64> {
    write_frames(s, frame, concurrency)?;
    let mut in_flight = concurrency;
    let (mut start, mut end) = (0, 0);
    let mut done = 0u64;
    while in_flight > 0 {
        make_room(buf, &mut start, &mut end);
        let n = s.read(&mut buf[end..])?;
        let completed = take_frames(buf, n, &mut start, &mut end)?;
        done += completed as u64;
        crate::note_done(completed as u64, stop);
        in_flight -= completed;
        if completed > 0 && !stop.load(Ordering::Relaxed) {
            write_frames(s, frame, completed)?;
            in_flight += completed;
        }
    }
    Ok(done)
}

/// Checks the raw loops' first response (the frame without its size
/// prefix) and returns its body size.
fn check_first(w: Workload, frame: &[u8]) -> Result<usize, String> {
    // The response header (v0 for both APIs) is the correlation id.
    let body = frame.get(4..).unwrap_or_default();
    w.check(body)?;
    Ok(body.len())
}

/// Before a read of the raw loops: a partial frame at the end of the buffer
/// moves to the front (and the buffer grows if one frame does not fit).
fn make_room(buf: &mut Vec<u8>, start: &mut usize, end: &mut usize) {
    if *end == buf.len() {
        buf.copy_within(*start..*end, 0);
        *end -= *start;
        *start = 0;
        if *end == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
}

/// After a read of `n` bytes into `buf[end..]`: counts the whole responses
/// now in `buf[start..end]` (found by their size prefix, not decoded) and
/// steps over them.
fn take_frames(buf: &[u8], n: usize, start: &mut usize, end: &mut usize) -> std::io::Result<usize> {
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    *end += n;
    let mut completed = 0;
    while *end - *start >= 4 {
        let size = i32::from_be_bytes(buf[*start..*start + 4].try_into().unwrap()) as usize;
        if *end - *start < 4 + size {
            break;
        }
        *start += 4 + size;
        completed += 1;
    }
    if *start == *end {
        *start = 0;
        *end = 0;
    }
    Ok(completed)
}

/// [`write_frames`] on an async socket.
async fn write_frames_async(
    s: &mut (impl smol::io::AsyncWrite + Unpin),
    frame: &[u8],
    n: usize,
) -> std::io::Result<()> {
    use smol::io::AsyncWriteExt;
    let mut slices = vec![IoSlice::new(frame); n];
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match s.write_vectored(rest).await? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            written => IoSlice::advance_slices(&mut rest, written),
        }
    }
    Ok(())
}

/// The raw async loops' start: connects over `R::Tcp` with
/// `TCP_NODELAY`, sends one pre-encoded frame and checks its response.
/// Returns the socket, the frame and the response body's size.
async fn raw_async_connect<R: kafka_conn_driver::Runtime>(
    job: &Job,
    rt: &R,
) -> Result<(R::Tcp, Vec<u8>, usize), String> {
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    let e = |e: std::io::Error| e.to_string();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&job.broker)
        .map_err(e)?
        .next()
        .ok_or_else(|| format!("{}: no address", job.broker))?;
    let mut s = rt.connect_tcp(addr).await.map_err(e)?;
    rt.set_nodelay(&s).map_err(e)?;
    let frame = raw_frame(job.workload);
    s.write_all(&frame).await.map_err(e)?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).await.map_err(e)?;
    let mut first = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut first).await.map_err(e)?;
    let response_bytes = check_first(job.workload, &first)?;
    Ok((s, frame, response_bytes))
}

/// The raw loop on an async runtime, in one task: the same pre-encoded
/// frames, vectored writes and frame counting as [`raw`], over the socket
/// type kafka-conn uses on that runtime (`R::Tcp`, `TCP_NODELAY`). No
/// correlation, no decoding, no deadlines: what a client on this runtime
/// cannot go below (its reactor, its wake-ups, a non-blocking read that
/// must end `Pending` before the task sleeps).
///
/// With `E2E_RAW_ARMED_TIMER=1` in the environment the loop keeps one timer
/// of the runtime armed, 30 s out, for the whole run: as a client with a
/// request timeout always has one (kafka-conn's deadline timer), so every
/// sleep of the task has a timeout. The floor with a deadline armed.
async fn raw_async<R: kafka_conn_driver::Runtime>(job: &Job, rt: R) -> Result<Sample, String> {
    use smol::io::AsyncReadExt;
    let e = |e: std::io::Error| e.to_string();
    let (s, frame, response_bytes) = raw_async_connect(job, &rt).await?;
    let buf = vec![0u8; 256 << 10];
    let _armed = armed_timer_if_asked(&rt).await;

    measure_with(
        job,
        response_bytes,
        (s, buf),
        |(mut s, mut buf), seconds| {
            let frame = &frame;
            async move {
                let stop = stop_after(seconds);
                let n = async {
                    write_frames_async(&mut s, frame, job.concurrency).await?;
                    let mut in_flight = job.concurrency;
                    let (mut start, mut end) = (0, 0);
                    let mut done = 0u64;
                    while in_flight > 0 {
                        make_room(&mut buf, &mut start, &mut end);
                        let n = s.read(&mut buf[end..]).await?;
                        let completed = take_frames(&buf, n, &mut start, &mut end)?;
                        done += completed as u64;
                        crate::note_done(completed as u64, &stop);
                        in_flight -= completed;
                        if completed > 0 && !stop.load(Ordering::Relaxed) {
                            write_frames_async(&mut s, frame, completed).await?;
                            in_flight += completed;
                        }
                    }
                    Ok::<u64, std::io::Error>(done)
                }
                .await
                .map_err(e);
                ((s, buf), n)
            }
        },
    )
    .await
}

/// A timer of `rt` armed 30 s out and registered with the current task,
/// when `E2E_RAW_ARMED_TIMER` is set (see [`raw_async`]); kept armed for as
/// long as the caller holds it.
async fn armed_timer_if_asked<R: kafka_conn_driver::Runtime>(
    rt: &R,
) -> Option<kafka_conn_driver::BoxTimer> {
    std::env::var_os("E2E_RAW_ARMED_TIMER")?;
    Some(armed_timer_now(rt, Duration::from_secs(30)).await)
}

/// A timer of `rt` armed `after` from now and registered with the current
/// task; armed for as long as the caller holds it.
async fn armed_timer_now<R: kafka_conn_driver::Runtime>(
    rt: &R,
    after: Duration,
) -> kafka_conn_driver::BoxTimer {
    let mut timer = rt.timer(rt.now() + after);
    // One poll registers the deadline with the runtime's timer.
    poll_fn(|cx| {
        let _ = timer.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
    timer
}

/// The core without a runtime, as an embedder drives it: a blocking socket,
/// `poll_transmit` into one `writev`, reads straight into `recv_buf`, events
/// drained after every read, a new request for each response while the
/// phase lasts. Two syscalls per round trip, like the raw loop, so the
/// difference between the two is what the core itself costs.
fn core_blocking(job: &Job) -> Result<Sample, String> {
    use kafka_conn_core::{Config, Connection, Event};
    use std::time::{Duration, Instant};

    let mut s = TcpStream::connect(&job.broker).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    // Set once: a broker that stops answering ends the run, not hangs it.
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut conn = Connection::new(Config::new(), Instant::now()).map_err(|e| e.to_string())?;
    let w = job.workload;
    let request = Request::new(ApiKey(w.api_key()), w.version(), w.body());

    // One turn: write what is pending, then one blocking read.
    let turn = |s: &mut TcpStream, conn: &mut Connection| -> Result<(), String> {
        while conn.transmit_len() > 0 {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = conn.poll_transmit(&mut slices);
            let written = s.write_vectored(&slices[..n]).map_err(|e| e.to_string())?;
            conn.transmit_complete(written, Instant::now());
        }
        let n = s.read(conn.recv_buf()).map_err(|e| e.to_string())?;
        let now = Instant::now();
        if n == 0 {
            conn.handle_eof(now);
        } else {
            conn.recv_commit(n, now);
        }
        if conn.poll_timeout().is_some_and(|t| t <= now) {
            conn.handle_timeout(now);
        }
        Ok(())
    };

    // Handshake (ApiVersions), then one request checked.
    let mut first = None;
    let mut sent_first = false;
    while first.is_none() {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Ready { .. } if !sent_first => {
                    conn.send_request(request.clone(), Instant::now())
                        .map_err(|e| e.to_string())?;
                    sent_first = true;
                }
                Event::Response(r) => first = Some(r),
                Event::Closed(reason) => return Err(reason.to_string()),
                Event::RequestFailed { error, .. } => return Err(error.to_string()),
                _ => {}
            }
        }
        if first.is_none() {
            turn(&mut s, &mut conn)?;
        }
    }
    let first = first.expect("checked above");
    w.check(&first.body)?;
    let response_bytes = first.body.len();
    drop(first);

    measure_blocking(job, response_bytes, |seconds| {
        let stop = stop_after(seconds);
        for _ in 0..job.concurrency {
            conn.send_request(request.clone(), Instant::now())
                .map_err(|e| e.to_string())?;
        }
        let mut done = 0u64;
        while conn.in_flight() > 0 || conn.transmit_len() > 0 {
            turn(&mut s, &mut conn)?;
            while let Some(event) = conn.poll_event() {
                match event {
                    Event::Response(_) => {
                        done += 1;
                        crate::note_done(1, &stop);
                        if !stop.load(Ordering::Relaxed) {
                            conn.send_request(request.clone(), Instant::now())
                                .map_err(|e| e.to_string())?;
                        }
                    }
                    Event::Closed(reason) => return Err(reason.to_string()),
                    Event::RequestFailed { error, .. } => return Err(error.to_string()),
                    _ => {}
                }
            }
        }
        Ok(done)
    })
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::time::Instant;

    use kafka_conn_core::{ApiKey, ApiVersions, Config, Connection, Request};

    use super::raw_frame;
    use crate::Workload;

    /// The bytes the core writes for `w`'s request on a connection made
    /// ready by a version hint for `w`'s API.
    fn core_frame(w: Workload) -> Vec<u8> {
        let now = Instant::now();
        let hint = ApiVersions::from_ranges([(w.api_key(), 0, w.version())]).expect("valid table");
        let mut conn = Connection::new(Config::new().with_version_hint(hint), now).expect("valid");
        while conn.poll_event().is_some() {}
        conn.send_request(
            Request::new(ApiKey(w.api_key()), w.version(), w.body()),
            now,
        )
        .expect("sent");
        let mut wire = Vec::new();
        while conn.transmit_len() > 0 {
            let mut slices = [IoSlice::new(&[]); 16];
            let n = conn.poll_transmit(&mut slices);
            let before = wire.len();
            for s in &slices[..n] {
                wire.extend_from_slice(s);
            }
            conn.transmit_complete(wire.len() - before, now);
        }
        wire
    }

    /// The floors send what kafka-conn sends, so that the broker's work is
    /// the same for both: every byte but the correlation id (bytes 8..12).
    #[test]
    fn raw_frames_are_the_core_s_bytes_but_for_the_correlation_id() {
        for w in Workload::ALL {
            let mut core = core_frame(w);
            core[8..12].copy_from_slice(&0i32.to_be_bytes());
            assert_eq!(raw_frame(w), core, "{}", w.name());
        }
    }
}
