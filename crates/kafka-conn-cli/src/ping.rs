//! `kconn ping`: ApiVersions round trips on one connection, one at a time.

use crate::output::outln;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::PingArgs;
use crate::diagnose::{self, Diagnosis};
use crate::kafka::{self, Probe};
use crate::latency::{human, human_ms, ms, Summary};
use crate::observe::{self, Mode, Progress};
use crate::settings::Settings;

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
    warnings: Vec<String>,
    error: Option<Diagnosis>,
}

/// Runs `kconn ping` against the first bootstrap broker; true when every
/// round trip succeeded.
pub(crate) async fn run(settings: &Settings, args: &PingArgs) -> bool {
    let broker = &settings.brokers[0];
    let mut report = Report {
        ok: false,
        broker: broker.clone(),
        address: None,
        api_version: None,
        sent: 0,
        answered: 0,
        failed: 0,
        latency_ms: None,
        histogram: Vec::new(),
        samples_ms: Vec::new(),
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
