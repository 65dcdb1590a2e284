//! Watching a long `ping` or `bench` with the built kconn: the progress
//! line on stderr, the latency histogram at the end, and (feature
//! `metrics`) the Prometheus endpoint of `--metrics-addr`, scraped while
//! the command runs against the librdkafka mock cluster.

mod common;

use common::*;

/// The histogram's rows: (count, percent) of each.
fn histogram_rows(text: &str) -> Vec<(u64, f64)> {
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("latency histogram:"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with('≤') || l.trim_start().starts_with('>'))
        .map(|l| {
            let mut fields = l.split_whitespace().rev();
            let pct = fields
                .next()
                .unwrap()
                .trim_end_matches('%')
                .parse()
                .unwrap();
            let count = fields.next().unwrap().parse().unwrap();
            (count, pct)
        })
        .collect()
}

#[test]
fn ping_shows_progress_when_asked_and_a_latency_histogram() {
    let Some(bs) = broker_var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let broker = bs.split(',').next().unwrap();
    // stderr is a pipe here: without --progress, no progress line.
    let quiet = kconn(&["ping", "-b", broker, "-n", "30"]);
    assert!(quiet.status.success());
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("progress:"),
        "progress without --progress on a pipe"
    );
    let out = kconn(&["ping", "-b", broker, "-n", "30", "--progress"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // At least the last line, with the total.
    assert!(err.contains("progress: 30/30 round trips"), "{err}");
    let rows = histogram_rows(&stdout(&out));
    assert!(!rows.is_empty(), "{}", stdout(&out));
    assert_eq!(rows.iter().map(|r| r.0).sum::<u64>(), 30, "{rows:?}");
    let pct: f64 = rows.iter().map(|r| r.1).sum();
    assert!((pct - 100.0).abs() < 0.5, "{rows:?}");
}

#[test]
fn bench_prints_a_latency_histogram_of_every_request() {
    let Some(bs) = broker_var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let broker = bs.split(',').next().unwrap();
    let out = kconn(&["bench", "-b", broker, "-n", "2000", "-c", "8", "--progress"]);
    assert!(out.status.success());
    let rows = histogram_rows(&stdout(&out));
    assert_eq!(rows.iter().map(|r| r.0).sum::<u64>(), 2000, "{rows:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("progress: 2000/2000 requests"), "{err}");
}

/// GET /metrics from `addr`, or `None` while nothing listens.
#[cfg(feature = "metrics")]
fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: kconn\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The value of the sample `series` (name and labels, as rendered).
#[cfg(feature = "metrics")]
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[cfg(feature = "metrics")]
#[test]
fn bench_serves_prometheus_metrics_while_it_runs() {
    use std::time::{Duration, Instant};
    let Some(bs) = broker_var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let broker = bs.split(',').next().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(["bench", "-b", broker, "--duration", "4s", "-c", "4"])
        .args(["--metrics-addr", &addr])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let latency_count =
        r#"org_apache_kafka_client_request_latency_count{node_id="unknown",api_key="ApiVersions"}"#;
    let until = Instant::now() + Duration::from_secs(10);
    let text = loop {
        if let Some(text) = scrape(&addr) {
            if sample(&text, latency_count).is_some_and(|n| n > 0.0) {
                break text;
            }
        }
        assert!(Instant::now() < until, "no metrics served at {addr}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    let one = |series: &str| sample(&text, series);
    assert_eq!(
        one(r#"org_apache_kafka_client_connection_creations{node_id="unknown"}"#),
        Some(1.0)
    );
    assert_eq!(
        one(r#"org_apache_kafka_client_connection_active{node_id="unknown"}"#),
        Some(1.0)
    );
    // The handshake's steps, timed once.
    for step in ["tcp", "api_versions"] {
        let series = format!(
            r#"org_apache_kafka_client_connection_setup_time_count{{node_id="unknown",step="{step}"}}"#
        );
        assert_eq!(one(&series), Some(1.0), "{step}: {text}");
    }
    let scraped = one(latency_count).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains(&format!("serving metrics at http://{addr}/metrics")));
    // The scrape came while the bench ran: part of what it then reported.
    let completed: f64 = stdout
        .lines()
        .find_map(|l| l.trim().split(" requests in ").next()?.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        scraped <= completed,
        "{scraped} scraped, {completed} completed"
    );
    assert_eq!(
        histogram_rows(&stdout).iter().map(|r| r.0).sum::<u64>() as f64,
        completed
    );
}

#[cfg(not(feature = "metrics"))]
#[test]
fn metrics_addr_without_the_feature_says_so() {
    let Some(bs) = broker_var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let broker = bs.split(',').next().unwrap();
    let out = kconn(&["ping", "-b", broker, "--metrics-addr", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("built without the `metrics` feature"),
        "{}",
        stdout(&out)
    );
}

/// A `--metrics-addr` that cannot be served ends every command that takes
/// it with the same diagnosis (kind `metrics_endpoint`, exit 1) before any
/// broker is dialed: here the address is not one at all, and without the
/// `metrics` feature the flag itself is refused the same way. No broker is
/// needed (the bootstrap address is never used).
#[test]
fn an_unusable_metrics_endpoint_is_diagnosed_alike_by_ping_and_bench() {
    let broker = closed_port();
    for command in [
        &["ping", "-n", "1"][..],
        &["ping", "-n", "1", "--brokers", "all"][..],
        &["bench", "--requests", "1"][..],
        &["bench", "--requests", "1", "--brokers", "all"][..],
    ] {
        let mut args = command.to_vec();
        args.extend(["-b", &broker, "--metrics-addr", "not-an-address"]);
        let (report, code) = json(&args);
        assert_eq!(code, Some(1), "{args:?}: {report}");
        let error = &report["brokers"][0]["error"];
        assert_eq!(error["kind"], "metrics_endpoint", "{args:?}: {report}");
        assert!(
            error.to_string().contains("not-an-address"),
            "{args:?}: {report}"
        );
    }
}
