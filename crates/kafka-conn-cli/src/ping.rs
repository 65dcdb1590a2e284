//! `kconn ping`: ApiVersions round trips on one connection, one at a time;
//! with `--brokers`, to each of the cluster's brokers at once, round after
//! round, through the driver's `Cluster`.

use crate::output::outln;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use kafka_conn_tokio::core::Request;
use kafka_conn_tokio::{Cluster, ClusterError, NodeId};

use crate::cli::{BrokerSelection, PingArgs};
use crate::diagnose::{self, Diagnosis};
use crate::kafka::{self, Probe};
use crate::latency::{human, human_ms, ms, Summary};
use crate::observe::{self, Mode, Progress};
use crate::settings::Settings;
use crate::spread;

/// The broker of `ping --json`.
#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    broker: String,
    address: Option<SocketAddr>,
    api_version: Option<i16>,
    sent: u64,
    answered: u64,
    failed: u64,
    latency_ms: Option<Summary>,
    /// The latency histogram's lines (text output only).
    #[serde(skip)]
    histogram: Vec<String>,
    samples_ms: Vec<f64>,
    /// The broker's node id (`--brokers` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<i32>,
    /// The share of round trips that failed, in percent (`--brokers` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    loss_percent: Option<f64>,
    warnings: Vec<String>,
    error: Option<Diagnosis>,
}

impl Report {
    fn new(broker: String) -> Self {
        Report {
            ok: false,
            broker,
            address: None,
            api_version: None,
            sent: 0,
            answered: 0,
            failed: 0,
            latency_ms: None,
            histogram: Vec::new(),
            samples_ms: Vec::new(),
            node_id: None,
            loss_percent: None,
            warnings: Vec::new(),
            error: None,
        }
    }
}

/// Runs `kconn ping` against the first bootstrap broker; true when every
/// round trip succeeded.
pub(crate) async fn run(settings: &Settings, args: &PingArgs) -> bool {
    if let Some(selection) = &args.brokers {
        return run_spread(settings, args, selection).await;
    }
    let broker = &settings.brokers[0];
    let mut report = Report::new(broker.clone());
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
    let template = match Probe::ApiVersions.request(&client) {
        Ok(r) => r,
        Err(e) => {
            report.error = Some(Diagnosis::custom(
                diagnose::Step::ApiVersions,
                "no_common_version",
                e.to_string(),
            ));
            finish(settings, &report);
            return false;
        }
    };
    report.api_version = Some(template.api_version());
    if !settings.json {
        outln!(
            "PING {} with ApiVersions v{} over {}",
            crate::describe(broker, client.info().address),
            template.api_version(),
            settings.protocol
        );
    }
    let mut samples: Vec<Duration> = Vec::new();
    // A long run: more than a screen of lines, or more than ten seconds.
    let long_run = args.count > 20
        || args.interval.saturating_mul(args.count as u32) > Duration::from_secs(10);
    let mode = Mode::choose(settings.json, args.observe.progress, long_run);
    let mut progress = Progress::new(mode, "round trips", Some(args.count), None);
    for seq in 1..=args.count {
        if seq > 1 && !args.interval.is_zero() {
            tokio::time::sleep(args.interval).await;
        }
        progress.update(report.sent, report.failed);
        report.sent += 1;
        let start = Instant::now();
        let outcome = client.send(template.clone()).await;
        let took = start.elapsed();
        match outcome.map_err(|e| e.to_string()).and_then(|r| {
            kafka::check_response(r.api_key, r.api_version, &r.body)
                .map(|()| r.rtt)
                .map_err(|e| e.to_string())
        }) {
            Ok(wire) => {
                report.answered += 1;
                samples.push(took);
                report.samples_ms.push(ms(took));
                if !settings.json {
                    progress.println(|| {
                        outln!(
                            "  seq={seq}  time={}  (on the wire {})",
                            human(took),
                            human(wire)
                        )
                    });
                }
            }
            Err(e) => {
                report.failed += 1;
                if !settings.json {
                    progress.println(|| outln!("  seq={seq}  failed: {e}"));
                }
                if let Some(reason) = client.close_reason() {
                    report.error = Some(Diagnosis::custom(
                        diagnose::Step::Ready,
                        "connection_closed",
                        format!("the connection closed: {reason}"),
                    ));
                    break;
                }
            }
        }
    }
    progress.finish(report.sent, report.failed);
    report.latency_ms = Summary::of(&mut samples);
    report.histogram = observe::histogram(&samples);
    report.ok = report.failed == 0 && report.error.is_none();
    client.close();
    let _ = tokio::time::timeout(settings.timeout, client.closed()).await;
    finish(settings, &report);
    report.ok
}

fn finish(settings: &Settings, report: &Report) {
    if settings.json {
        crate::envelope::Envelope::new(
            "ping",
            Some(settings),
            report.ok,
            vec![report],
            crate::envelope::NoExtra {},
        )
        .print();
        return;
    }
    if let Some(s) = &report.latency_ms {
        outln!(
            "{} sent, {} answered, {} failed · min {} · p50 {} · p99 {} · max {} · mean {}",
            report.sent,
            report.answered,
            report.failed,
            human_ms(s.min_ms),
            human_ms(s.p50_ms),
            human_ms(s.p99_ms),
            human_ms(s.max_ms),
            human_ms(s.mean_ms),
        );
        outln!("latency histogram:");
        for line in &report.histogram {
            outln!("{line}");
        }
    }
    if let Some(d) = &report.error {
        outln!("✗ {}", d.line());
    }
}

/// One broker of `ping --brokers`.
struct Target {
    node: spread::Node,
    /// ApiVersions at the broker's version, once its connection was ready.
    request: Option<Request>,
    samples: Vec<Duration>,
    report: Report,
    /// Why its connection failed before the first round: the broker's
    /// error if a round trip fails too (that dial's failure says more than
    /// the backoff the rounds then meet).
    dial_failure: Option<Diagnosis>,
}

/// The `spread` object of `ping --json --brokers`.
#[derive(Debug, Serialize)]
struct PingSpread {
    /// `--brokers` as given (`all`, `1,3`).
    selection: String,
    /// The cluster id from Metadata.
    cluster_id: Option<String>,
    /// The brokers pinged.
    node_ids: Vec<i32>,
    /// Every broker's round trips together.
    total: Total,
}

/// Round trips of every broker together.
#[derive(Debug, Serialize)]
struct Total {
    sent: u64,
    answered: u64,
    failed: u64,
    loss_percent: f64,
    latency_ms: Option<Summary>,
}

/// Why one round trip to one broker failed.
enum Failed {
    /// The connection could not be had, or the broker has no usable version.
    Prepare(spread::Prepared),
    /// The cluster did not send it, or it got no response.
    Cluster(ClusterError),
    /// The response carried an error.
    Response(String),
}

impl Failed {
    fn diagnosis(&self, settings: &Settings) -> Diagnosis {
        match self {
            Failed::Prepare(p) => p.diagnosis(settings, Probe::ApiVersions),
            Failed::Cluster(e) => diagnose::cluster_error(
                e,
                Probe::ApiVersions.api_key(),
                &settings.diagnosis_context(None),
            ),
            Failed::Response(text) => {
                Diagnosis::custom(diagnose::Step::ApiVersions, "broker_error", text)
            }
        }
    }
}

/// What one round trip to one broker did: the request it built when it
/// had none yet, and the time (total, on the wire) or the failure.
type Trip = (
    Option<(Request, SocketAddr)>,
    Result<(Duration, Duration), Failed>,
);

/// One round trip to `node` through the cluster (dialing it first if its
/// request is not built yet; the dial is not part of the time).
async fn trip(cluster: Cluster, node: NodeId, request: Option<Request>) -> Trip {
    let (request, built) = match request {
        Some(r) => (r, None),
        None => match spread::prepare(&cluster, node, Probe::ApiVersions).await {
            Ok((r, address)) => (r.clone(), Some((r, address))),
            Err(e) => return (None, Err(Failed::Prepare(e))),
        },
    };
    let start = Instant::now();
    let outcome = cluster.send_to(node, request).await;
    let took = start.elapsed();
    let result = match outcome {
        Ok(r) => kafka::check_response(r.api_key, r.api_version, &r.body)
            .map(|()| (took, r.rtt))
            .map_err(|e| Failed::Response(e.to_string())),
        Err(e) => Err(Failed::Cluster(e)),
    };
    (built, result)
}

/// Sends one round trip to each target at once and waits for all.
async fn round(cluster: &Cluster, targets: &[Target]) -> Vec<Trip> {
    let tasks: Vec<_> = targets
        .iter()
        .map(|t| tokio::spawn(trip(cluster.clone(), t.node.id, t.request.clone())))
        .collect();
    let mut trips = Vec::with_capacity(tasks.len());
    for task in tasks {
        trips.push(match task.await {
            Ok(trip) => trip,
            Err(e) => (None, Err(Failed::Response(format!("the task failed: {e}")))),
        });
    }
    trips
}

/// `kconn ping --brokers`: every round, one ApiVersions round trip to each
/// chosen broker at once, through the driver's `Cluster`; a broker that
/// fails keeps being pinged (each round is one lost round trip for it)
/// while the others go on. True when every round trip succeeded.
async fn run_spread(settings: &Settings, args: &PingArgs, selection: &BrokerSelection) -> bool {
    let mut extra = PingSpread {
        selection: selection.to_string(),
        cluster_id: None,
        node_ids: Vec::new(),
        total: Total {
            sent: 0,
            answered: 0,
            failed: 0,
            loss_percent: 0.0,
            latency_ms: None,
        },
    };
    let fail_early = |d: Diagnosis, extra: PingSpread| {
        let mut report = Report::new(settings.brokers.join(","));
        report.error = Some(d);
        finish_spread(settings, &[report], &extra, &[], None);
        false
    };
    let sp = match spread::connect(settings, selection, args.observe.metrics_addr.as_deref()).await
    {
        Ok(sp) => sp,
        Err(d) => return fail_early(d, extra),
    };
    extra.cluster_id = sp.cluster_id.clone();
    extra.node_ids = sp.nodes.iter().map(|n| n.id.0).collect();
    let mut targets: Vec<Target> = sp
        .nodes
        .iter()
        .map(|n| {
            let mut report = Report::new(n.broker.clone());
            report.node_id = Some(n.id.0);
            Target {
                node: n.clone(),
                request: None,
                samples: Vec::new(),
                report,
                dial_failure: None,
            }
        })
        .collect();
    // Every broker's connection first, at once: the version to use, the
    // address, and who cannot be reached before the first round.
    let prepared: Vec<_> = targets
        .iter()
        .map(|t| {
            let cluster = sp.cluster.clone();
            let id = t.node.id;
            tokio::spawn(async move { spread::prepare(&cluster, id, Probe::ApiVersions).await })
        })
        .collect();
    for (t, task) in targets.iter_mut().zip(prepared) {
        match task.await {
            Ok(Ok((request, address))) => {
                t.report.address = Some(address);
                t.report.api_version = Some(request.api_version());
                t.request = Some(request);
            }
            Ok(Err(e)) => t.dial_failure = Some(e.diagnosis(settings, Probe::ApiVersions)),
            Err(e) => {
                t.dial_failure = Some(Diagnosis::custom(
                    diagnose::Step::Ready,
                    "task_failed",
                    e.to_string(),
                ))
            }
        }
    }
    if !settings.json {
        outln!(
            "PING cluster {} · brokers {} · ApiVersions over {} (bootstrap {})",
            sp.cluster_id.as_deref().unwrap_or("(no id)"),
            spread::ids(&sp.nodes),
            settings.protocol,
            settings.brokers.join(",")
        );
        let width = targets
            .iter()
            .map(|t| t.node.broker.len())
            .max()
            .unwrap_or(0);
        for t in &targets {
            let what = match (&t.report.api_version, &t.dial_failure) {
                (Some(v), _) => format!("ApiVersions v{v}"),
                (None, Some(d)) => format!("✗ {}", d.problem),
                (None, None) => String::new(),
            };
            outln!(
                "  broker {:<3} {:<width$}  {what}",
                t.node.id.0,
                t.report.address.map_or(t.node.broker.clone(), |a| {
                    crate::describe(&t.node.broker, a)
                })
            );
        }
    }
    let per_round = targets.len() as u64;
    let long_run = args.count.saturating_mul(per_round) > 20
        || args.interval.saturating_mul(args.count as u32) > Duration::from_secs(10);
    let mode = Mode::choose(settings.json, args.observe.progress, long_run);
    let total_trips = args.count.saturating_mul(per_round);
    let mut progress = Progress::new(mode, "round trips", Some(total_trips), None);
    let (mut sent, mut failed) = (0u64, 0u64);
    for seq in 1..=args.count {
        if seq > 1 && !args.interval.is_zero() {
            tokio::time::sleep(args.interval).await;
        }
        progress.update(sent, failed);
        let trips = round(&sp.cluster, &targets).await;
        for (t, (built, result)) in targets.iter_mut().zip(trips) {
            if let Some((request, address)) = built {
                t.report.address = Some(address);
                t.report.api_version = Some(request.api_version());
                t.request = Some(request);
            }
            t.report.sent += 1;
            sent += 1;
            let id = t.node.id.0;
            match result {
                Ok((took, wire)) => {
                    t.report.answered += 1;
                    t.samples.push(took);
                    t.report.samples_ms.push(ms(took));
                    if !settings.json {
                        progress.println(|| {
                            outln!(
                                "  broker {id:<3} seq={seq}  time={}  (on the wire {})",
                                human(took),
                                human(wire)
                            )
                        });
                    }
                }
                Err(f) => {
                    t.report.failed += 1;
                    failed += 1;
                    let d = f.diagnosis(settings);
                    if !settings.json {
                        progress.println(|| {
                            outln!("  broker {id:<3} seq={seq}  failed: {}", d.problem)
                        });
                    }
                    if t.report.error.is_none() {
                        t.report.error = Some(t.dial_failure.take().unwrap_or(d));
                    }
                }
            }
        }
    }
    progress.finish(sent, failed);
    let mut all: Vec<Duration> = Vec::new();
    for t in &mut targets {
        all.extend_from_slice(&t.samples);
        t.report.latency_ms = Summary::of(&mut t.samples);
        t.report.loss_percent = Some(percent(t.report.failed, t.report.sent));
        t.report.ok = t.report.failed == 0 && t.report.error.is_none();
    }
    extra.total = Total {
        sent,
        answered: sent - failed,
        failed,
        loss_percent: percent(failed, sent),
        latency_ms: Summary::of(&mut all),
    };
    let histogram = observe::histogram(&all);
    sp.cluster.close();
    let _ = tokio::time::timeout(settings.timeout, sp.cluster.closed()).await;
    let reports: Vec<Report> = targets.into_iter().map(|t| t.report).collect();
    finish_spread(settings, &reports, &extra, &histogram, Some(()));
    reports.iter().all(|r| r.ok)
}

/// `part` of `whole` in percent, to 0.1 (0 of 0 is 0).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 1000.0 / whole as f64).round() / 10.0
}

/// A percentage for people: `0%`, `33.3%`.
fn human_percent(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// Prints `ping --brokers`' result: the JSON envelope, or a line per
/// broker, the totals, the histogram of every round trip and each failing
/// broker's first failure. `ran` is `None` when the run never started.
fn finish_spread(
    settings: &Settings,
    reports: &[Report],
    extra: &PingSpread,
    histogram: &[String],
    ran: Option<()>,
) {
    let ok = ran.is_some() && reports.iter().all(|r| r.ok);
    if settings.json {
        crate::envelope::Envelope::new(
            "ping",
            Some(settings),
            ok,
            reports.iter().collect(),
            spread::Extra { spread: extra },
        )
        .print();
        return;
    }
    if ran.is_none() {
        if let Some(d) = reports.first().and_then(|r| r.error.as_ref()) {
            outln!("✗ {}", d.line());
        }
        return;
    }
    let width = reports
        .iter()
        .map(|r| r.broker.len())
        .max()
        .unwrap_or(0)
        .max("ADDRESS".len());
    outln!("--- per broker ---");
    outln!(
        "  BROKER  {:<width$}  {:>6}  {:>8}  {:>6}  {:>8}  {:>8}  {:>8}",
        "ADDRESS",
        "SENT",
        "ANSWERED",
        "LOSS",
        "MIN",
        "AVG",
        "MAX"
    );
    for r in reports {
        let (min, avg, max) = match &r.latency_ms {
            Some(s) => (human_ms(s.min_ms), human_ms(s.mean_ms), human_ms(s.max_ms)),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        outln!(
            "  {:>6}  {:<width$}  {:>6}  {:>8}  {:>6}  {:>8}  {:>8}  {:>8}",
            r.node_id.unwrap_or(-1),
            r.broker,
            r.sent,
            r.answered,
            human_percent(r.loss_percent.unwrap_or(0.0)),
            min,
            avg,
            max
        );
    }
    let t = &extra.total;
    match &t.latency_ms {
        Some(s) => outln!(
            "total: {} sent, {} answered, {} failed ({} loss) · min {} · p50 {} · p99 {} · max {} · mean {}",
            t.sent,
            t.answered,
            t.failed,
            human_percent(t.loss_percent),
            human_ms(s.min_ms),
            human_ms(s.p50_ms),
            human_ms(s.p99_ms),
            human_ms(s.max_ms),
            human_ms(s.mean_ms),
        ),
        None => outln!(
            "total: {} sent, {} answered, {} failed ({} loss)",
            t.sent,
            t.answered,
            t.failed,
            human_percent(t.loss_percent)
        ),
    }
    if !histogram.is_empty() {
        outln!("latency histogram:");
        for line in histogram {
            outln!("{line}");
        }
    }
    for r in reports.iter().filter(|r| !r.ok) {
        let why = r.error.as_ref().map(Diagnosis::line).unwrap_or_default();
        outln!(
            "✗ broker {} ({}): {} of {} round trips failed; the first: {why}",
            r.node_id.unwrap_or(-1),
            r.broker,
            r.failed,
            r.sent
        );
    }
}
