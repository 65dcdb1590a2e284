//! `kconn ping --brokers` and `kconn bench --brokers`: the built kconn
//! spreads over the brokers of a private librdkafka mock cluster (3
//! brokers) through the driver's `Cluster`, bootstrapped from broker 1
//! alone: every broker answers; one broker taken down mid-run fails alone
//! (its failures typed, the others going on, exit status 1). Every JSON
//! output is checked against the schema.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::*;
use kafka_conn_testsuite::MockCluster;

fn broker(report: &Value, node: i64) -> &Value {
    report["brokers"]
        .as_array()
        .expect("brokers")
        .iter()
        .find(|b| b["node_id"] == node)
        .unwrap_or_else(|| panic!("no broker {node}: {report:#}"))
}

/// kconn started with `args`, one of its streams read line by line on a
/// channel (`stderr`: stderr, else stdout), the other collected whole.
struct Running {
    child: Child,
    lines: Receiver<String>,
    other: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(args: &[&str], stderr: bool) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kconn"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kconn");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let (streamed, mut whole): (Box<dyn Read + Send>, Box<dyn Read + Send>) = if stderr {
            (Box::new(err), Box::new(out))
        } else {
            (Box::new(out), Box::new(err))
        };
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(streamed).lines().map_while(Result::ok) {
                eprintln!("| {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let other = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = whole.read_to_string(&mut text);
            text
        });
        Running {
            child,
            lines,
            other,
        }
    }

    /// Waits (at most 60 s) for a streamed line that `matches`.
    fn wait_for(&self, what: &str, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = matches(&line);
                    seen.push(line);
                    if hit {
                        return seen;
                    }
                }
                Err(e) => panic!("no {what} ({e}); seen: {seen:#?}"),
            }
        }
    }

    /// Waits for the end: the rest of the streamed lines, the other
    /// stream, the exit status.
    fn finish(mut self) -> (Vec<String>, String, Option<i32>) {
        let status = self.child.wait().expect("wait for kconn");
        let rest: Vec<String> = self.lines.iter().collect();
        let other = self.other.join().unwrap();
        eprintln!("--- the other stream\n{other}--- exit {:?}", status.code());
        (rest, other, status.code())
    }
}

#[test]
fn ping_and_bench_spread_over_every_broker_of_the_mock_cluster() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let first = mock.address(1);

    let (report, code) = json(&["ping", "-b", &first, "--brokers", "all", "-n", "5"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["spread"]["selection"], "all");
    assert_eq!(report["spread"]["node_ids"], serde_json::json!([1, 2, 3]));
    assert!(report["spread"]["cluster_id"].is_string(), "{report:#}");
    assert_eq!(report["brokers"].as_array().unwrap().len(), 3);
    for id in 1..=3 {
        let b = broker(&report, id);
        assert_eq!(b["broker"], mock.address(id as i32).as_str(), "{b}");
        assert_eq!(b["address"], mock.address(id as i32).as_str(), "{b}");
        assert_eq!(
            (b["sent"].as_u64(), b["answered"].as_u64()),
            (Some(5), Some(5)),
            "{b}"
        );
        assert_eq!(b["failed"], 0);
        assert_eq!(b["loss_percent"], 0.0);
        assert_eq!(b["latency_ms"]["count"], 5);
        assert_eq!(b["samples_ms"].as_array().unwrap().len(), 5);
        assert!(b["api_version"].is_i64(), "{b}");
        assert!(b["error"].is_null(), "{b}");
    }
    let total = &report["spread"]["total"];
    assert_eq!(
        (total["sent"].as_u64(), total["answered"].as_u64()),
        (Some(15), Some(15))
    );
    assert_eq!(total["latency_ms"]["count"], 15);

    // The text: a line per broker per round, the table, the totals, the
    // histogram of every round trip.
    let out = kconn(&["ping", "-b", &first, "--brokers", "all", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.starts_with("PING cluster mockCluster"), "{text}");
    for id in 1..=3i32 {
        for seq in 1..=2 {
            let prefix = format!("  broker {id:<3} seq={seq}  time=");
            assert!(
                text.lines().any(|l| l.starts_with(&prefix)),
                "{prefix}: {text}"
            );
        }
        let row = text
            .lines()
            .skip_while(|l| !l.starts_with("--- per broker ---"))
            .find(|l| l.trim_start().starts_with(&format!("{id}  ")))
            .unwrap_or_else(|| panic!("no row for {id}: {text}"));
        assert!(
            row.contains(&mock.address(id)) && row.contains(" 0% "),
            "{row}"
        );
    }
    assert!(
        text.contains("total: 6 sent, 6 answered, 0 failed (0% loss)"),
        "{text}"
    );
    assert!(text.contains("latency histogram:"), "{text}");

    // A subset, by node id.
    let (report, code) = json(&["ping", "-b", &first, "--brokers", "3,1", "-n", "1"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["spread"]["selection"], "1,3");
    assert_eq!(report["spread"]["node_ids"], serde_json::json!([1, 3]));

    // The requests spread round-robin: every broker takes about a third.
    let (report, code) = json(&[
        "bench",
        "-b",
        &first,
        "--brokers",
        "all",
        "-n",
        "3000",
        "-c",
        "6",
    ]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["spread"]["placement"], "round_robin");
    assert!(report["spread"]["stopped_early"].is_null());
    let mut sum = 0;
    for id in 1..=3 {
        let b = broker(&report, id);
        let completed = b["completed"].as_u64().unwrap();
        // Round-robin to within the workers that claimed past the limit.
        assert!((1000 - 6..=1000 + 6).contains(&completed), "{b}");
        assert_eq!(
            (b["errors"].as_u64(), b["refused"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(b["ok"], true);
        assert!(b["bytes_sent"].as_u64().unwrap() > 0 && b["bytes_received"].as_u64().unwrap() > 0);
        assert_eq!(b["latency_ms"]["count"].as_u64(), Some(completed));
        assert!(b["requests_per_s"].as_f64().unwrap() > 0.0);
        sum += completed;
    }
    assert_eq!(sum, 3000);
    let total = &report["spread"]["total"];
    assert_eq!(total["completed"], 3000);
    assert_eq!(total["latency_ms"]["count"], 3000);

    let out = kconn(&["bench", "-b", &first, "--brokers", "all", "-n", "600"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("  600 requests in "), "{text}");
    assert!(
        text.contains("REQUESTS") && text.contains("REFUSED"),
        "{text}"
    );
}

#[test]
fn brokers_the_cluster_does_not_have_and_bad_values() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let first = mock.address(1);
    for command in ["ping", "bench"] {
        let (report, code) = json(&[command, "-b", &first, "--brokers", "2,7"]);
        assert_eq!(code, Some(1), "{report:#}");
        let error = &report["brokers"][0]["error"];
        assert_eq!(error["kind"], "broker_not_advertised", "{report:#}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("does not advertise broker 7 (its Metadata lists 1, 2, 3)"),
            "{error}"
        );
        assert_eq!(report["spread"]["node_ids"], serde_json::json!([]));

        // Nobody at the bootstrap address: the dial's own diagnosis.
        let closed = closed_port();
        let (report, code) = json(&[command, "-b", &closed, "--brokers", "all"]);
        assert_eq!(code, Some(1), "{report:#}");
        assert_eq!(report["brokers"][0]["broker"], closed.as_str());
        assert_eq!(
            report["brokers"][0]["error"]["kind"], "connection_refused",
            "{report:#}"
        );

        // An address where a node id belongs is a usage error.
        let out = kconn(&[command, "-b", &first, "--brokers", &first]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is not a node id") && err.contains("go to -b"),
            "{err}"
        );
    }
}

#[test]
fn ping_across_brokers_keeps_going_when_one_goes_down() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let first = mock.address(1);
    let run = Running::start(
        &[
            "ping",
            "-b",
            &first,
            "--brokers",
            "all",
            "-n",
            "40",
            "-i",
            "50ms",
        ],
        false,
    );
    // Broker 2 answered its fifth round trip: take it down.
    let mut lines = run.wait_for("fifth round", |l| {
        l.starts_with("  broker 2   seq=5  time=")
    });
    mock.broker_down(2);
    let (rest, _, code) = run.finish();
    lines.extend(rest);
    assert_eq!(code, Some(1), "{lines:#?}");
    let trips = |id: i32, what: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("  broker {id:<3} seq=")) && l.contains(what))
            .count()
    };
    // The others answered every round, before and after.
    for id in [1, 3] {
        assert_eq!(trips(id, "  time="), 40, "broker {id}: {lines:#?}");
        assert_eq!(trips(id, "failed:"), 0, "broker {id}: {lines:#?}");
    }
    let answered = trips(2, "  time=");
    let failed = trips(2, "failed:");
    assert!(answered >= 5 && failed >= 1, "{lines:#?}");
    assert_eq!(answered + failed, 40, "{lines:#?}");
    let summary = lines
        .iter()
        .find(|l| l.starts_with("✗ broker 2 ("))
        .unwrap_or_else(|| panic!("no failure line for broker 2: {lines:#?}"));
    assert!(
        summary.contains(&format!("{failed} of 40 round trips failed; the first: ")),
        "{summary}"
    );
    assert!(!lines
        .iter()
        .any(|l| l.starts_with("✗ broker 1") || l.starts_with("✗ broker 3")));

    // The same in JSON, the broker down from the start this time: it is
    // not in Metadata any more (Kafka lists live brokers only), so `all`
    // leaves it out and naming it fails.
    let (report, code) = json(&["ping", "-b", &first, "--brokers", "all", "-n", "2"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["spread"]["node_ids"], serde_json::json!([1, 3]));
}

#[test]
fn ping_json_types_the_failures_of_a_broker_that_goes_down() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let first = mock.address(1);
    // --progress writes a line a second on stderr (not a terminal): the
    // first one says rounds have run; then broker 2 goes down.
    let run = Running::start(
        &[
            "ping",
            "-b",
            &first,
            "--brokers",
            "all",
            "-n",
            "100",
            "-i",
            "50ms",
            "--progress",
            "--json",
        ],
        true,
    );
    run.wait_for("a progress line", |l| l.starts_with("progress: "));
    mock.broker_down(2);
    let (_, out, code) = run.finish();
    assert_eq!(code, Some(1), "{out}");
    let report: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_schema(&report);
    assert_eq!(report["ok"], false);
    for id in [1, 3] {
        let b = broker(&report, id);
        assert_eq!(
            (b["answered"].as_u64(), b["ok"].as_bool()),
            (Some(100), Some(true)),
            "{b}"
        );
    }
    let b = broker(&report, 2);
    assert_eq!(b["ok"], false);
    let (answered, failed) = (
        b["answered"].as_u64().unwrap(),
        b["failed"].as_u64().unwrap(),
    );
    assert!(
        answered > 0 && failed > 0 && answered + failed == 100,
        "{b}"
    );
    assert_eq!(
        b["loss_percent"].as_f64().unwrap(),
        (failed as f64 * 1000.0 / 100.0).round() / 10.0
    );
    assert_eq!(b["samples_ms"].as_array().unwrap().len() as u64, answered);
    // The first failure: the connection the broker closed (a request that
    // found it closed, or the cluster holding the next one back because
    // of that close; or, when the backoff had ended before the next
    // round, the redial refused), with its typed kind.
    let error = &b["error"];
    assert!(
        ["connection_closed", "connection_refused"].contains(&error["kind"].as_str().unwrap()),
        "{error}"
    );
    let total = &report["spread"]["total"];
    assert_eq!(total["failed"].as_u64(), Some(failed));
    assert_eq!(total["sent"], 300);
}

#[test]
fn bench_across_brokers_keeps_going_when_one_goes_down() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let first = mock.address(1);
    let run = Running::start(
        &[
            "bench",
            "-b",
            &first,
            "--brokers",
            "all",
            "--duration",
            "4s",
            "-c",
            "6",
            "--progress",
            "--json",
        ],
        true,
    );
    run.wait_for("a progress line", |l| l.starts_with("progress: "));
    mock.broker_down(2);
    let (_, out, code) = run.finish();
    assert_eq!(code, Some(1), "{out}");
    let report: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_schema(&report);
    assert_eq!(report["ok"], false);
    assert!(report["spread"]["stopped_early"].is_null(), "{report:#}");
    let two = broker(&report, 2);
    for id in [1, 3] {
        let b = broker(&report, id);
        assert_eq!(b["ok"], true, "{b}");
        assert_eq!(
            (b["errors"].as_u64(), b["refused"].as_u64()),
            (Some(0), Some(0))
        );
        // They went on for the three seconds broker 2 was down.
        assert!(
            b["completed"].as_u64() > two["completed"].as_u64(),
            "{report:#}"
        );
    }
    assert_eq!(two["ok"], false);
    assert!(two["completed"].as_u64().unwrap() > 0, "{two}");
    let lost = two["errors"].as_u64().unwrap() + two["refused"].as_u64().unwrap();
    assert!(lost > 0, "{two}");
    assert!(
        ["connection_closed", "connection_refused"]
            .contains(&two["error"]["kind"].as_str().unwrap()),
        "{two}"
    );
    let total = &report["spread"]["total"];
    let sum = |field: &str| {
        report["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(total["completed"].as_u64(), Some(sum("completed")));
    assert_eq!(total["errors"].as_u64(), Some(sum("errors")));
    assert_eq!(total["refused"].as_u64(), Some(sum("refused")));
}

/// GET /metrics from `addr`, or `None` while nothing listens.
#[cfg(feature = "metrics")]
fn scrape(addr: &str) -> Option<String> {
    use std::io::Write;
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

/// With `--brokers`, every connection the cluster opens is watched, and
/// the metrics carry each broker's node id.
#[cfg(feature = "metrics")]
#[test]
fn bench_across_brokers_serves_metrics_per_node() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let run = Running::start(
        &[
            "bench",
            "-b",
            &mock.address(1),
            "--brokers",
            "all",
            "--duration",
            "4s",
            "--metrics-addr",
            &addr,
        ],
        true,
    );
    run.wait_for("the metrics address", |l| l.contains("serving metrics at"));
    let latency = |node: i32| {
        format!(
            r#"org_apache_kafka_client_request_latency_count{{node_id="{node}",api_key="ApiVersions"}}"#
        )
    };
    let until = Instant::now() + Duration::from_secs(20);
    let text = loop {
        if let Some(text) = scrape(&addr) {
            if (1..=3).all(|n| sample(&text, &latency(n)).is_some_and(|v| v > 0.0)) {
                break text;
            }
        }
        assert!(Instant::now() < until, "no per-node metrics at {addr}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for node in 1..=3 {
        let created =
            format!(r#"org_apache_kafka_client_connection_creations{{node_id="{node}"}}"#);
        assert_eq!(sample(&text, &created), Some(1.0), "{node}: {text}");
    }
    let (_, out, code) = run.finish();
    assert_eq!(code, Some(0), "{out}");
}
