//! `kconn bench`: many requests pipelined on one connection; with
//! `--brokers`, spread round-robin over the cluster's brokers through the
//! driver's `Cluster`.

use crate::output::outln;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kafka_conn_tokio::core::Request;
use kafka_conn_tokio::{Client, Cluster, ClusterError};
use serde::Serialize;

use crate::cli::{BenchArgs, BenchRequest, BrokerSelection};
use crate::diagnose::{self, Context, Diagnosis};
use crate::kafka::{self, Probe};
use crate::latency::{human, human_ms, Summary};
use crate::observe::{self, Mode, Progress};
use crate::settings::Settings;
use crate::spread;

/// Requests when neither --requests nor --duration is given.
const DEFAULT_REQUESTS: u64 = 10_000;

/// When to stop.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Requests(u64),
    Until(Instant),
}

/// The broker of `bench --json`.
#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    broker: String,
    address: Option<SocketAddr>,
    request: String,
    concurrency: u64,
    completed: u64,
    errors: u64,
    elapsed_s: f64,
    requests_per_s: f64,
    latency_ms: Option<Summary>,
    /// The latency histogram's lines (text output only).
    #[serde(skip)]
    histogram: Vec<String>,
    bytes_sent: u64,
    bytes_received: u64,
    /// The broker's node id (`--brokers` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<i32>,
    /// Requests the cluster did not send to this broker because it was
    /// backing off or its circuit was open (`--brokers` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<u64>,
    warnings: Vec<String>,
    error: Option<Diagnosis>,
}

impl Report {
    fn new(broker: String, concurrency: u64) -> Self {
        Report {
            ok: false,
            broker,
            address: None,
            request: String::new(),
            concurrency,
            completed: 0,
            errors: 0,
            elapsed_s: 0.0,
            requests_per_s: 0.0,
            latency_ms: None,
            histogram: Vec::new(),
            bytes_sent: 0,
            bytes_received: 0,
            node_id: None,
            refused: None,
            warnings: Vec::new(),
            error: None,
        }
    }
}

/// What the workers share.
struct Shared {
    client: Client,
    request: Request,
    limit: Limit,
    issued: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    /// Claims the next request, or says it is time to stop.
    fn claim(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        match self.limit {
            Limit::Requests(n) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
            Limit::Until(deadline) => Instant::now() < deadline,
        }
    }

    fn record_error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
    }
}

async fn worker(shared: Arc<Shared>) -> Vec<Duration> {
    let mut samples = Vec::new();
    while shared.claim() {
        let start = Instant::now();
        let outcome = shared.client.send(shared.request.clone()).await;
        match outcome {
            Ok(r) => match kafka::check_response(r.api_key, r.api_version, &r.body) {
                Ok(()) => samples.push(start.elapsed()),
                Err(e) => shared.record_error(e.to_string()),
            },
            Err(e) => {
                shared.record_error(e.to_string());
                if e.close_reason().is_some() {
                    shared.stop.store(true, Ordering::Relaxed);
                }
            }
        }
        shared.completed.fetch_add(1, Ordering::Relaxed);
    }
    samples
}

/// Runs `kconn bench` against the first bootstrap broker; true when no
/// request failed.
pub(crate) async fn run(settings: &Settings, args: &BenchArgs) -> bool {
    if let Some(selection) = &args.brokers {
        return run_spread(settings, args, selection).await;
    }
    let broker = &settings.brokers[0];
    let mut report = Report::new(broker.clone(), args.concurrency);
    let observer = match observe::metrics_observer(args.observe.metrics_addr.as_deref()).await {
        Ok(o) => o,
        Err(d) => {
            report.error = Some(d);
            finish(settings, &report);
            return false;
        }
    };
    let client = match observe::connect(settings, broker, observer).await {
        Ok(c) => c,
        Err(d) => {
            report.error = Some(d);
            finish(settings, &report);
            return false;
        }
    };
    report.address = Some(client.info().address);
    let probe = match args.request {
        BenchRequest::ApiVersions => Probe::ApiVersions,
        BenchRequest::Metadata => Probe::Metadata,
    };
    let request = match probe.request(&client) {
        Ok(r) => r,
        Err(e) => {
            report.error = Some(Diagnosis::custom(
                diagnose::Step::Ready,
                "no_common_version",
                e.to_string(),
            ));
            finish(settings, &report);
            return false;
        }
    };
    report.request = format!("{} v{}", request.api_key(), request.api_version());
    let before = client.stats();
    let start = Instant::now();
    let limit = match (args.requests, args.duration) {
        (_, Some(d)) => Limit::Until(start + d),
        (Some(n), None) => Limit::Requests(n),
        (None, None) => Limit::Requests(DEFAULT_REQUESTS),
    };
    if !settings.json {
        outln!(
            "bench {} · {} · concurrency {} · {}",
            crate::describe(broker, client.info().address),
            report.request,
            args.concurrency,
            match limit {
                Limit::Requests(n) => format!("{n} requests"),
                Limit::Until(_) => format!("for {}", human(args.duration.unwrap_or_default())),
            }
        );
    }
    let shared = Arc::new(Shared {
        client: client.clone(),
        request,
        limit,
        issued: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        first_error: std::sync::Mutex::new(None),
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(worker(shared.clone())))
        .collect();
    // A bench is a long run: its progress shows on a terminal.
    let mode = Mode::choose(settings.json, args.observe.progress, true);
    let progress = (mode != Mode::Off)
        .then(|| tokio::spawn(show_progress(shared.clone(), mode, limit, args.duration)));
    let mut samples = Vec::new();
    for w in workers {
        match w.await {
            Ok(s) => samples.extend(s),
            Err(e) => shared.record_error(format!("a worker task failed: {e}")),
        }
    }
    let elapsed = start.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.await;
    }
    let after = client.stats();
    report.completed = samples.len() as u64;
    report.errors = shared.errors.load(Ordering::Relaxed);
    report.elapsed_s = elapsed.as_secs_f64();
    report.requests_per_s = report.completed as f64 / elapsed.as_secs_f64().max(1e-9);
    report.latency_ms = Summary::of(&mut samples);
    report.histogram = observe::histogram(&samples);
    report.bytes_sent = after.bytes_sent.saturating_sub(before.bytes_sent);
    report.bytes_received = after.bytes_received.saturating_sub(before.bytes_received);
    if report.errors > 0 {
        let first = shared
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        report.error = Some(Diagnosis::custom(
            diagnose::Step::Ready,
            "requests_failed",
            format!("{} request(s) failed; the first: {first}", report.errors),
        ));
    }
    report.ok = report.errors == 0;
    drop(shared);
    client.close();
    let _ = tokio::time::timeout(settings.timeout, client.closed()).await;
    finish(settings, &report);
    report.ok
}

/// What the progress line reads while a bench runs.
trait Counts: Send + Sync + 'static {
    /// Requests done so far, and how many of them failed.
    fn counts(&self) -> (u64, u64);
    /// Whether the run is over.
    fn stopped(&self) -> bool;
}

impl Counts for Shared {
    fn counts(&self) -> (u64, u64) {
        (
            self.completed.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

async fn show_progress<S: Counts>(
    shared: Arc<S>,
    mode: Mode,
    limit: Limit,
    duration: Option<Duration>,
) {
    let total = match limit {
        Limit::Requests(n) => Some(n),
        Limit::Until(_) => None,
    };
    let mut progress = Progress::new(mode, "requests", total, duration);
    while !shared.stopped() {
        let (done, errors) = shared.counts();
        progress.update(done, errors);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (done, errors) = shared.counts();
    progress.finish(done, errors);
}

fn finish(settings: &Settings, r: &Report) {
    if settings.json {
        crate::envelope::Envelope::new(
            "bench",
            Some(settings),
            r.ok,
            vec![r],
            crate::envelope::NoExtra {},
        )
        .print();
        return;
    }
    if r.completed > 0 || r.errors > 0 {
        outln!(
            "  {} requests in {:.2} s: {:.0} requests/s, {} errors",
            r.completed,
            r.elapsed_s,
            r.requests_per_s,
            r.errors
        );
    }
    if let Some(s) = &r.latency_ms {
        outln!("  latency: {}", s.percentiles());
        outln!(
            "  bytes: {} sent, {} received",
            r.bytes_sent,
            r.bytes_received
        );
        outln!("  latency histogram:");
        for line in &r.histogram {
            outln!("{line}");
        }
    }
    if let Some(d) = &r.error {
        outln!("✗ {}", d.line());
    }
}

/// How long a worker leaves a broker alone when the cluster refuses it
/// without saying until when (a circuit's probe under way).
const REFUSED_PAUSE: Duration = Duration::from_millis(50);

/// One broker of `bench --brokers`.
struct Slot {
    node: spread::Node,
    /// The request at this broker's version, built once its connection was
    /// ready.
    request: OnceLock<Request>,
    /// The address its connection reached.
    address: OnceLock<SocketAddr>,
    /// No request goes to it before this time (µs since the start): the
    /// cluster said it is backing off or its circuit is open. `u64::MAX`:
    /// never again (it left the cluster, or speaks no version kconn can send).
    skip_until_us: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
    refused: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    first_error: std::sync::Mutex<Option<Diagnosis>>,
}

impl Slot {
    fn record(&self, d: impl FnOnce() -> Diagnosis) {
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(d());
        }
    }
}

/// What the workers of `bench --brokers` share.
struct SpreadShared {
    cluster: Cluster,
    probe: Probe,
    ctx: Context,
    limit: Limit,
    start: Instant,
    issued: AtomicU64,
    /// Requests done: answered, failed or refused (for the progress line).
    done: AtomicU64,
    /// Requests failed or refused (for the progress line).
    failures: AtomicU64,
    stop: AtomicBool,
    /// The round-robin position.
    next: AtomicUsize,
    slots: Vec<Slot>,
    /// Why the run ended before its limit.
    stopped_early: std::sync::Mutex<Option<String>>,
}

impl Counts for SpreadShared {
    fn counts(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl SpreadShared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX - 1)
    }

    /// The next broker in round-robin order that the cluster has not just
    /// refused; `None` when every one is refused now.
    fn pick(&self) -> Option<usize> {
        let n = self.slots.len();
        let now = self.now_us();
        (0..n)
            .map(|_| self.next.fetch_add(1, Ordering::Relaxed) % n)
            .find(|&i| self.slots[i].skip_until_us.load(Ordering::Relaxed) <= now)
    }

    /// Claims the next request, or says it is time to stop.
    fn claim(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        match self.limit {
            Limit::Requests(n) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
            Limit::Until(deadline) => Instant::now() < deadline,
        }
    }

    fn skip(&self, i: usize, pause: Option<Duration>) {
        let until = match pause {
            Some(p) => self.now_us().saturating_add(
                u64::try_from(p.max(Duration::from_millis(1)).as_micros()).unwrap_or(u64::MAX),
            ),
            None => u64::MAX,
        };
        self.slots[i]
            .skip_until_us
            .fetch_max(until, Ordering::Relaxed);
    }

    /// A request to broker `i` the cluster failed: refused without sending
    /// (the broker is left alone until it may be tried again), or failed
    /// (its connection closed, its dial failed, no response in time).
    fn cluster_failed(&self, i: usize, e: &ClusterError) {
        let slot = &self.slots[i];
        self.failures.fetch_add(1, Ordering::Relaxed);
        match e {
            ClusterError::BackingOff { retry_in, .. } => {
                slot.refused.fetch_add(1, Ordering::Relaxed);
                self.skip(i, Some(*retry_in));
            }
            ClusterError::CircuitOpen { retry_in, .. } => {
                slot.refused.fetch_add(1, Ordering::Relaxed);
                self.skip(i, Some(retry_in.unwrap_or(REFUSED_PAUSE)));
            }
            ClusterError::NoNodeAvailable { .. } | ClusterError::ConnectionLimit { .. } => {
                slot.refused.fetch_add(1, Ordering::Relaxed);
                self.skip(i, Some(REFUSED_PAUSE));
            }
            ClusterError::UnknownNode(_) | ClusterError::NodeRemoved(_) => {
                slot.errors.fetch_add(1, Ordering::Relaxed);
                self.skip(i, None);
            }
            ClusterError::Closed => {
                slot.errors.fetch_add(1, Ordering::Relaxed);
                self.stop.store(true, Ordering::Relaxed);
            }
            _ => {
                slot.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        slot.record(|| diagnose::cluster_error(e, self.probe.api_key(), &self.ctx));
    }

    /// Broker `i` failed in a way no retry fixes: it gets no more requests.
    fn give_up(&self, i: usize, d: Diagnosis) {
        let slot = &self.slots[i];
        slot.errors.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.skip(i, None);
        slot.record(|| d);
    }
}

/// One worker of `bench --brokers`: takes the brokers in turn, sends one
/// request at a time through the cluster; the latencies per broker.
async fn spread_worker(sh: Arc<SpreadShared>) -> Vec<Vec<Duration>> {
    let mut samples = vec![Vec::new(); sh.slots.len()];
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(i) = sh.pick() else {
            // Every broker is backing off, has an open circuit or is gone:
            // as a bench on one connection stops when it closes.
            let mut why = sh.stopped_early.lock().unwrap_or_else(|p| p.into_inner());
            why.get_or_insert_with(|| {
                "no broker could take requests (each was backing off, had an open circuit or had failed for good)".to_owned()
            });
            sh.stop.store(true, Ordering::Relaxed);
            break;
        };
        if !sh.claim() {
            break;
        }
        let slot = &sh.slots[i];
        let request = match slot.request.get() {
            Some(r) => r.clone(),
            None => match spread::prepare(&sh.cluster, slot.node.id, sh.probe).await {
                Ok((r, address)) => {
                    let _ = slot.address.set(address);
                    slot.request.get_or_init(|| r).clone()
                }
                Err(spread::Prepared::Cluster(e)) => {
                    sh.cluster_failed(i, &e);
                    sh.done.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(version @ spread::Prepared::Version(_)) => {
                    let d = version.diagnosis_with(&sh.ctx, sh.probe);
                    sh.give_up(i, d);
                    sh.done.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        let start = Instant::now();
        match sh.cluster.send_to(slot.node.id, request).await {
            Ok(r) => match kafka::check_response(r.api_key, r.api_version, &r.body) {
                Ok(()) => {
                    samples[i].push(start.elapsed());
                    slot.completed.fetch_add(1, Ordering::Relaxed);
                    slot.bytes_sent
                        .fetch_add(u64::from(r.request_bytes), Ordering::Relaxed);
                    slot.bytes_received
                        .fetch_add(u64::from(r.response_bytes), Ordering::Relaxed);
                }
                Err(e) => {
                    slot.errors.fetch_add(1, Ordering::Relaxed);
                    sh.failures.fetch_add(1, Ordering::Relaxed);
                    slot.record(|| {
                        Diagnosis::custom(diagnose::Step::Ready, "broker_error", e.to_string())
                    });
                }
            },
            Err(e) => sh.cluster_failed(i, &e),
        }
        sh.done.fetch_add(1, Ordering::Relaxed);
    }
    samples
}

/// The `spread` object of `bench --json --brokers`.
#[derive(Debug, Serialize)]
struct BenchSpread {
    /// `--brokers` as given (`all`, `1,3`).
    selection: String,
    /// The cluster id from Metadata.
    cluster_id: Option<String>,
    /// The brokers benchmarked.
    node_ids: Vec<i32>,
    /// How requests are placed on the brokers.
    placement: &'static str,
    /// Why the run ended before its limit, if it did.
    stopped_early: Option<String>,
    /// Every broker's requests together.
    total: BenchTotal,
}

/// Every broker's requests together.
#[derive(Debug, Serialize)]
struct BenchTotal {
    completed: u64,
    errors: u64,
    refused: u64,
    elapsed_s: f64,
    requests_per_s: f64,
    latency_ms: Option<Summary>,
    bytes_sent: u64,
    bytes_received: u64,
}

/// `kconn bench --brokers`: the requests spread round-robin over the
/// chosen brokers through the driver's `Cluster` (`send_to`, each broker
/// at its own version); a broker that fails is left alone while the
/// cluster refuses it and the others keep going. True when no request
/// failed or was refused.
async fn run_spread(settings: &Settings, args: &BenchArgs, selection: &BrokerSelection) -> bool {
    let mut extra = BenchSpread {
        selection: selection.to_string(),
        cluster_id: None,
        node_ids: Vec::new(),
        placement: "round_robin",
        stopped_early: None,
        total: BenchTotal {
            completed: 0,
            errors: 0,
            refused: 0,
            elapsed_s: 0.0,
            requests_per_s: 0.0,
            latency_ms: None,
            bytes_sent: 0,
            bytes_received: 0,
        },
    };
    let fail_early = |d: Diagnosis, extra: BenchSpread| {
        let mut report = Report::new(settings.brokers.join(","), args.concurrency);
        report.error = Some(d);
        finish_spread(settings, &[report], &extra, &[], false);
        false
    };
    let sp = match spread::connect(settings, selection, args.observe.metrics_addr.as_deref()).await
    {
        Ok(sp) => sp,
        Err(d) => return fail_early(d, extra),
    };
    extra.cluster_id = sp.cluster_id.clone();
    extra.node_ids = sp.nodes.iter().map(|n| n.id.0).collect();
    let probe = match args.request {
        BenchRequest::ApiVersions => Probe::ApiVersions,
        BenchRequest::Metadata => Probe::Metadata,
    };
    let ctx = settings.diagnosis_context(None);
    // Every broker's connection first, at once (not timed): the version
    // to use, the address, and who cannot be reached before the start.
    let prepared: Vec<_> = sp
        .nodes
        .iter()
        .map(|n| {
            let cluster = sp.cluster.clone();
            let id = n.id;
            tokio::spawn(async move { spread::prepare(&cluster, id, probe).await })
        })
        .collect();
    let mut slots = Vec::with_capacity(prepared.len());
    let mut dial_failures: Vec<Option<Diagnosis>> = Vec::new();
    for (node, task) in sp.nodes.iter().zip(prepared) {
        let slot = Slot {
            node: node.clone(),
            request: OnceLock::new(),
            address: OnceLock::new(),
            skip_until_us: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            first_error: std::sync::Mutex::new(None),
        };
        dial_failures.push(match task.await {
            Ok(Ok((request, address))) => {
                let _ = slot.address.set(address);
                let _ = slot.request.set(request);
                None
            }
            Ok(Err(e)) => Some(e.diagnosis_with(&ctx, probe)),
            Err(e) => Some(Diagnosis::custom(
                diagnose::Step::Ready,
                "task_failed",
                e.to_string(),
            )),
        });
        slots.push(slot);
    }
    let versions = |slots: &[Slot]| {
        let mut v: Vec<String> = slots
            .iter()
            .filter_map(|s| s.request.get())
            .map(|r| format!("{} v{}", r.api_key(), r.api_version()))
            .collect();
        v.dedup();
        v
    };
    let start = Instant::now();
    let limit = match (args.requests, args.duration) {
        (_, Some(d)) => Limit::Until(start + d),
        (Some(n), None) => Limit::Requests(n),
        (None, None) => Limit::Requests(DEFAULT_REQUESTS),
    };
    if !settings.json {
        outln!(
            "bench cluster {} · brokers {} · {} · concurrency {} · {} · round-robin (bootstrap {})",
            sp.cluster_id.as_deref().unwrap_or("(no id)"),
            spread::ids(&sp.nodes),
            versions(&slots).join(" / "),
            args.concurrency,
            match limit {
                Limit::Requests(n) => format!("{n} requests"),
                Limit::Until(_) => format!("for {}", human(args.duration.unwrap_or_default())),
            },
            settings.brokers.join(",")
        );
        let width = slots.iter().map(|s| s.node.broker.len()).max().unwrap_or(0);
        for (s, failure) in slots.iter().zip(&dial_failures) {
            let what = match (s.request.get(), failure) {
                (Some(r), _) => format!("{} v{}", r.api_key(), r.api_version()),
                (None, Some(d)) => format!("✗ {}", d.problem),
                (None, None) => String::new(),
            };
            outln!(
                "  broker {:<3} {:<width$}  {what}",
                s.node.id.0,
                s.address
                    .get()
                    .map_or(s.node.broker.clone(), |a| crate::describe(
                        &s.node.broker,
                        *a
                    ))
            );
        }
    }
    // The limit and the clock start now, after the dials.
    let sh = Arc::new(SpreadShared {
        cluster: sp.cluster.clone(),
        probe,
        ctx,
        limit,
        start,
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        next: AtomicUsize::new(0),
        slots,
        stopped_early: std::sync::Mutex::new(None),
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(spread_worker(sh.clone())))
        .collect();
    let mode = Mode::choose(settings.json, args.observe.progress, true);
    let progress = (mode != Mode::Off)
        .then(|| tokio::spawn(show_progress(sh.clone(), mode, limit, args.duration)));
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); sh.slots.len()];
    for w in workers {
        match w.await {
            Ok(per_slot) => {
                for (all, mine) in samples.iter_mut().zip(per_slot) {
                    all.extend(mine);
                }
            }
            Err(e) => {
                let mut why = sh.stopped_early.lock().unwrap_or_else(|p| p.into_inner());
                why.get_or_insert_with(|| format!("a worker task failed: {e}"));
            }
        }
    }
    let elapsed = start.elapsed();
    sh.stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.await;
    }
    let elapsed_s = elapsed.as_secs_f64();
    let rate = |n: u64| n as f64 / elapsed_s.max(1e-9);
    let mut all: Vec<Duration> = Vec::new();
    let mut reports = Vec::with_capacity(sh.slots.len());
    for (slot, (mut mine, dial_failure)) in
        sh.slots.iter().zip(samples.into_iter().zip(dial_failures))
    {
        all.extend_from_slice(&mine);
        let mut r = Report::new(slot.node.broker.clone(), args.concurrency);
        r.node_id = Some(slot.node.id.0);
        r.address = slot.address.get().copied();
        r.request = slot
            .request
            .get()
            .map(|q| format!("{} v{}", q.api_key(), q.api_version()))
            .unwrap_or_default();
        r.completed = slot.completed.load(Ordering::Relaxed);
        r.errors = slot.errors.load(Ordering::Relaxed);
        let refused = slot.refused.load(Ordering::Relaxed);
        r.refused = Some(refused);
        r.elapsed_s = elapsed_s;
        r.requests_per_s = rate(r.completed);
        r.latency_ms = Summary::of(&mut mine);
        r.bytes_sent = slot.bytes_sent.load(Ordering::Relaxed);
        r.bytes_received = slot.bytes_received.load(Ordering::Relaxed);
        r.error = slot
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if r.error.is_some() {
            // The dial before the start said more than the backoff after it.
            if let Some(d) = dial_failure {
                r.error = Some(d);
            }
        }
        r.ok = r.errors == 0 && refused == 0 && r.error.is_none();
        let t = &mut extra.total;
        t.completed += r.completed;
        t.errors += r.errors;
        t.refused += refused;
        t.bytes_sent += r.bytes_sent;
        t.bytes_received += r.bytes_received;
        reports.push(r);
    }
    extra.total.elapsed_s = elapsed_s;
    extra.total.requests_per_s = rate(extra.total.completed);
    extra.total.latency_ms = Summary::of(&mut all);
    extra.stopped_early = sh
        .stopped_early
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let histogram = observe::histogram(&all);
    drop(sh);
    sp.cluster.close();
    let _ = tokio::time::timeout(settings.timeout, sp.cluster.closed()).await;
    let ok = extra.stopped_early.is_none() && reports.iter().all(|r| r.ok);
    finish_spread(settings, &reports, &extra, &histogram, true);
    ok
}

/// Prints `bench --brokers`' result: the JSON envelope, or the totals, a
/// line per broker, the histogram of every request and each failing
/// broker's first failure. `ran` is false when the run never started.
fn finish_spread(
    settings: &Settings,
    reports: &[Report],
    extra: &BenchSpread,
    histogram: &[String],
    ran: bool,
) {
    let ok = ran && extra.stopped_early.is_none() && reports.iter().all(|r| r.ok);
    if settings.json {
        crate::envelope::Envelope::new(
            "bench",
            Some(settings),
            ok,
            reports.iter().collect(),
            spread::Extra { spread: extra },
        )
        .print();
        return;
    }
    if !ran {
        if let Some(d) = reports.first().and_then(|r| r.error.as_ref()) {
            outln!("✗ {}", d.line());
        }
        return;
    }
    let t = &extra.total;
    outln!(
        "  {} requests in {:.2} s: {:.0} requests/s, {} errors, {} refused",
        t.completed,
        t.elapsed_s,
        t.requests_per_s,
        t.errors,
        t.refused
    );
    if let Some(s) = &t.latency_ms {
        outln!("  latency: {}", s.percentiles());
        outln!(
            "  bytes: {} sent, {} received",
            t.bytes_sent,
            t.bytes_received
        );
    }
    let width = reports
        .iter()
        .map(|r| r.broker.len())
        .max()
        .unwrap_or(0)
        .max("ADDRESS".len());
    outln!(
        "  BROKER  {:<width$}  {:>9}  {:>9}  {:>6}  {:>7}  {:>8}  {:>8}  {:>8}",
        "ADDRESS",
        "REQUESTS",
        "REQ/S",
        "ERRORS",
        "REFUSED",
        "P50",
        "P99",
        "MAX"
    );
    for r in reports {
        let (p50, p99, max) = match &r.latency_ms {
            Some(s) => (human_ms(s.p50_ms), human_ms(s.p99_ms), human_ms(s.max_ms)),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        outln!(
            "  {:>6}  {:<width$}  {:>9}  {:>9.0}  {:>6}  {:>7}  {:>8}  {:>8}  {:>8}",
            r.node_id.unwrap_or(-1),
            r.broker,
            r.completed,
            r.requests_per_s,
            r.errors,
            r.refused.unwrap_or(0),
            p50,
            p99,
            max
        );
    }
    if !histogram.is_empty() {
        outln!("  latency histogram:");
        for line in histogram {
            outln!("{line}");
        }
    }
    for r in reports.iter().filter(|r| !r.ok) {
        let why = r.error.as_ref().map(Diagnosis::line).unwrap_or_default();
        outln!(
            "✗ broker {} ({}): {} request(s) failed, {} refused by the cluster (backing off or circuit open); the first: {why}",
            r.node_id.unwrap_or(-1),
            r.broker,
            r.errors,
            r.refused.unwrap_or(0)
        );
    }
    if let Some(why) = &extra.stopped_early {
        outln!("✗ stopped before the end: {why}");
    }
}
