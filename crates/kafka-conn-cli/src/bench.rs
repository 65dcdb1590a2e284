//! `kconn bench`: many requests pipelined on one connection.

use crate::output::outln;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_conn_tokio::core::Request;
use kafka_conn_tokio::Client;
use serde::Serialize;

use crate::cli::{BenchArgs, BenchRequest};
use crate::diagnose::{self, Diagnosis};
use crate::kafka::{self, Probe};
use crate::latency::{human, human_ms, Summary};
use crate::observe::{self, Mode, Progress};
use crate::settings::Settings;

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
    warnings: Vec<String>,
    error: Option<Diagnosis>,
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
    let broker = &settings.brokers[0];
    let mut report = Report {
        ok: false,
        broker: broker.clone(),
        address: None,
        request: String::new(),
        concurrency: args.concurrency,
        completed: 0,
        errors: 0,
        elapsed_s: 0.0,
        requests_per_s: 0.0,
        latency_ms: None,
        histogram: Vec::new(),
        bytes_sent: 0,
        bytes_received: 0,
        warnings: Vec::new(),
        error: None,
    };
    let observer = match observe::metrics_observer(args.observe.metrics_addr.as_deref()).await {
        Ok(o) => o,
        Err(e) => {
            report.error = Some(Diagnosis::custom(
                diagnose::Step::Ready,
                "metrics_endpoint",
                e,
            ));
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

async fn show_progress(shared: Arc<Shared>, mode: Mode, limit: Limit, duration: Option<Duration>) {
    let total = match limit {
        Limit::Requests(n) => Some(n),
        Limit::Until(_) => None,
    };
    let mut progress = Progress::new(mode, "requests", total, duration);
    let counts = || {
        (
            shared.completed.load(Ordering::Relaxed),
            shared.errors.load(Ordering::Relaxed),
        )
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let (done, errors) = counts();
        progress.update(done, errors);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (done, errors) = counts();
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
        outln!(
            "  latency: min {} · p50 {} · p90 {} · p99 {} · p99.9 {} · max {}",
            human_ms(s.min_ms),
            human_ms(s.p50_ms),
            human_ms(s.p90_ms),
            human_ms(s.p99_ms),
            human_ms(s.p999_ms),
            human_ms(s.max_ms),
        );
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
