//! Watching a long `ping` or `bench`: the progress line on stderr, the
//! latency histogram printed at the end, and (feature `metrics`) the
//! Prometheus endpoint of `--metrics-addr`, fed by the driver's
//! `MetricsObserver` (names in docs/metrics.md).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use kafka_conn_tokio::Client;

use crate::diagnose::Diagnosis;
use crate::latency::human;
use crate::output::errln;
use crate::settings::Settings;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Not at all.
    Off,
    /// A bar redrawn in place (stderr is a terminal).
    Bar,
    /// A line a second (asked for with `--progress`, stderr not a terminal).
    Lines,
}

impl Mode {
    /// On a terminal for long runs (not with `--json`, whose reader wants
    /// stdout alone), or wherever `--progress` asks for it.
    pub(crate) fn choose(json: bool, forced: bool, long_run: bool) -> Mode {
        match (forced, std::io::stderr().is_terminal()) {
            (true, true) => Mode::Bar,
            (true, false) => Mode::Lines,
            (false, true) if long_run && !json => Mode::Bar,
            _ => Mode::Off,
        }
    }
}

/// The progress line of one run.
pub(crate) struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    /// What is counted: `requests`, `round trips`.
    what: &'static str,
    total: Option<u64>,
    duration: Option<Duration>,
    start: Instant,
    last_line: Instant,
}

impl Progress {
    /// Progress of `total` items (or of a run of `duration`).
    pub(crate) fn new(
        mode: Mode,
        what: &'static str,
        total: Option<u64>,
        duration: Option<Duration>,
    ) -> Self {
        let bar = (mode == Mode::Bar).then(|| match (duration, total) {
            (Some(d), _) => ProgressBar::new((d.as_millis() as u64).max(1)).with_style(
                ProgressStyle::with_template("{bar:40} {elapsed}/{duration} · {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            (None, n) => ProgressBar::new(n.unwrap_or(0)).with_style(
                ProgressStyle::with_template(&format!(
                    "{{bar:40}} {{pos}}/{{len}} {what} · {{msg}} · {{elapsed}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        });
        let now = Instant::now();
        Self {
            mode,
            bar,
            what,
            total,
            duration,
            start: now,
            last_line: now,
        }
    }

    /// `done` items so far, `errors` of them failed.
    pub(crate) fn update(&mut self, done: u64, errors: u64) {
        let elapsed = self.start.elapsed();
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
        match self.mode {
            Mode::Off => {}
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    match self.duration {
                        Some(_) => {
                            bar.set_position(elapsed.as_millis() as u64);
                            bar.set_message(format!(
                                "{done} {} · {rate:.0}/s · {errors} errors",
                                self.what
                            ));
                        }
                        None => {
                            bar.set_position(done);
                            bar.set_message(format!("{rate:.0}/s · {errors} errors"));
                        }
                    }
                }
            }
            Mode::Lines => {
                if self.last_line.elapsed() >= Duration::from_secs(1) {
                    self.last_line = Instant::now();
                    self.line(done, errors, rate, elapsed);
                }
            }
        }
    }

    fn line(&self, done: u64, errors: u64, rate: f64, elapsed: Duration) {
        let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
        errln!(
            "progress: {done}{of} {} · {rate:.0}/s · {errors} errors · {}",
            self.what,
            human(elapsed)
        );
    }

    /// Prints `line` on stdout without tearing the bar.
    pub(crate) fn println(&self, line: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(line),
            None => line(),
        }
    }

    /// The run is over: clears the bar, or writes the last line.
    pub(crate) fn finish(&mut self, done: u64, errors: u64) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.mode == Mode::Lines {
            let elapsed = self.start.elapsed();
            self.line(
                done,
                errors,
                done as f64 / elapsed.as_secs_f64().max(1e-9),
                elapsed,
            );
        }
    }
}

/// The upper bounds of the histogram's buckets (the last is open).
const BOUNDS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// The width of the longest bar.
const BAR: usize = 40;

/// The latency histogram of `samples` as text lines, from the first
/// non-empty bucket to the last: bound, bar, count, share.
pub(crate) fn histogram(samples: &[Duration]) -> Vec<String> {
    if samples.is_empty() {
        return Vec::new();
    }
    let mut counts = [0u64; BOUNDS_US.len() + 1];
    for s in samples {
        let us = u64::try_from(s.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|&b| b < us);
        counts[i] += 1;
    }
    let first = counts.iter().position(|&c| c > 0).unwrap_or(0);
    let last = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    let max = counts.iter().copied().max().unwrap_or(1).max(1);
    let total = samples.len() as f64;
    (first..=last)
        .map(|i| {
            let label = match BOUNDS_US.get(i) {
                Some(&b) => format!("≤ {}", human(Duration::from_micros(b))),
                None => format!("> {}", human(Duration::from_micros(BOUNDS_US[i - 1]))),
            };
            let width = (counts[i] as f64 / max as f64 * BAR as f64).ceil() as usize;
            format!(
                "  {label:>10} {:<BAR$} {:>8} {:>5.1}%",
                "#".repeat(width),
                counts[i],
                counts[i] as f64 / total * 100.0
            )
        })
        .collect()
}

/// The observer `--metrics-addr` asks for, with its endpoint serving:
/// `None` without the flag. An endpoint that cannot be served is the
/// run's diagnosis (kind `metrics_endpoint`), the same for every command.
pub(crate) async fn metrics_observer(
    addr: Option<&str>,
) -> Result<Option<std::sync::Arc<dyn kafka_conn_tokio::Observer>>, Diagnosis> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    serve(addr)
        .await
        .map(Some)
        .map_err(|e| Diagnosis::custom(crate::diagnose::Step::Ready, "metrics_endpoint", e))
}

#[cfg(feature = "metrics")]
async fn serve(addr: &str) -> Result<std::sync::Arc<dyn kafka_conn_tokio::Observer>, String> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Seconds, from 100 µs (a local broker) to 10 s (a connect that waits).
    const BUCKETS: &[f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("latency".into()), BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("time".into()), BUCKETS))
        .map_err(|e| e.to_string())?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    // Before the connection: the observer registers its handles once.
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    errln!("serving metrics at http://{local}/metrics");
    // The exporter keeps every histogram sample until it is drained (a
    // scrape's `render`, or `run_upkeep`); nothing else drains it, so a long
    // `bench` nobody scrapes would grow by each response (docs/metrics.md).
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                // Any request gets the metrics: read its head, answer, close.
                let mut head = [0u8; 2048];
                let _ = socket.read(&mut head).await;
                let body = handle.render();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(std::sync::Arc::new(kafka_conn_tokio::MetricsObserver::new()))
}

#[cfg(not(feature = "metrics"))]
async fn serve(addr: &str) -> Result<std::sync::Arc<dyn kafka_conn_tokio::Observer>, String> {
    Err(format!(
        "--metrics-addr {addr}: this kconn was built without the `metrics` feature (cargo install kafka-conn-cli --features metrics)"
    ))
}

/// Connects as `crate::connect` does, with `observer` watching the
/// connection when there is one.
pub(crate) async fn connect(
    settings: &Settings,
    broker: &str,
    observer: Option<std::sync::Arc<dyn kafka_conn_tokio::Observer>>,
) -> Result<Client, Diagnosis> {
    let Some(observer) = observer else {
        return crate::connect(settings, broker).await;
    };
    let config = match settings.connect_config() {
        Ok(c) => c.with_observer(observer),
        Err(e) => {
            return Err(crate::diagnose::connect_error(
                &kafka_conn_tokio::ConnectError::TlsConfig(e),
                &settings.diagnosis_context(None),
            ))
        }
    };
    kafka_conn_tokio::connect(broker, config)
        .await
        .map_err(|e| {
            let certificate = settings
                .presented(&e)
                .first()
                .and_then(|der| crate::x509::parse(der).ok());
            crate::diagnose::connect_error(&e, &settings.diagnosis_context(certificate))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_from_first_to_last_non_empty() {
        let samples: Vec<Duration> = [80, 90, 400, 450, 480, 30_000]
            .into_iter()
            .map(Duration::from_micros)
            .collect();
        let lines = histogram(&samples);
        // 100 µs, 250 µs, 500 µs, ..., 50 ms: 9 buckets.
        assert_eq!(lines.len(), 9, "{lines:#?}");
        assert!(lines[0].contains("≤ 0.10 ms") && lines[0].trim_end().ends_with("33.3%"));
        assert!(lines[2].contains("≤ 0.50 ms") && lines[2].contains(&"#".repeat(BAR)));
        assert!(lines[2].trim_end().ends_with("50.0%"), "{}", lines[2]);
        assert!(lines[8].contains("≤ 50.0 ms") && lines[8].trim_end().ends_with("16.7%"));
        assert!(histogram(&[]).is_empty());
        let slow = histogram(&[Duration::from_secs(20)]);
        assert_eq!(slow.len(), 1);
        assert!(slow[0].contains("> 10 s"), "{slow:?}");
    }
}
