//! `kconn check --watch`: the built binary watches a broker that the test
//! can take away and bring back (a TCP forwarder in front of the real
//! tansu broker) or give another certificate (a TLS-terminating forwarder
//! with rcgen certificates), and is ended by SIGINT or SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use common::proxy::{valid_for, TcpProxy, TestPki, TlsProxy};
use common::*;

/// Generous: each check takes milliseconds, the interval is 300 ms.
const WAIT: Duration = Duration::from_secs(30);

/// A running `kconn` whose stdout lines arrive on a channel.
struct Watch {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn start(args: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kconn"));
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_BACKTRACE", "1");
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KCONN_")) {
            cmd.env_remove(k);
        }
        let mut child = cmd.spawn().expect("start kconn");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line that contains `needle`; returns it.
    fn until(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {WAIT:?}; so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` (INT or TERM) and waits for the exit; returns the
    /// status and the rest of stdout and stderr.
    fn stop(&mut self, signal: &str) -> (Option<i32>, Vec<String>, String) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let status = self.child.wait().expect("wait for kconn");
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status.code(), rest, err)
    }
}

#[test]
fn text_watch_reports_a_broker_going_away_and_coming_back_then_stops_on_sigint() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let mut proxy = TcpProxy::start_new(&bs);
    let addr = proxy.addr.to_string();
    let mut w = Watch::start(&["check", "-b", &addr, "--watch", "300ms", "--timeout", "2s"]);
    // The first check in full, then the watch line.
    w.until(&format!("✓ {addr} is ready for PLAINTEXT clients"));
    let watching = w.until("watching every");
    assert!(watching.contains("only changes are printed"), "{watching}");
    proxy.stop();
    let gone = w.until("went away");
    // "2026-12-04T16:30:01Z 127.0.0.1:PORT ✗ went away: connection refused by ..."
    let (time, rest) = gone.split_once(' ').unwrap();
    assert!(time.ends_with('Z') && time.contains('T'), "{gone}");
    assert!(
        rest.starts_with(&format!("{addr} ✗ went away: connection refused by {addr}")),
        "{gone}"
    );
    proxy.start();
    let back = w.until("is back");
    assert!(back.contains(&format!("{addr} ✓ is back")), "{back}");
    let (code, rest, err) = w.stop("INT");
    // The last check passed: exit 0.
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(
        rest.len(),
        1,
        "only the stopped line after the changes: {rest:?}"
    );
    let last = rest.last().cloned().unwrap_or_default();
    assert!(last.contains("stopped by SIGINT after"), "{rest:?}");
    assert!(last.ends_with("the last one passed"), "{last}");
    assert!(!err.contains("panicked"), "{err}");
    // Only changes: nothing was printed between the changes.
    let between: Vec<&String> = w
        .seen
        .iter()
        .skip_while(|l| !l.contains("watching every"))
        .skip(1)
        .collect();
    assert_eq!(between.len(), 2, "{between:?}");
}

#[test]
fn json_watch_reports_a_rotated_certificate_and_a_broker_going_away_then_stops_on_sigterm() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let first = TestPki::new(valid_for(365), None, 100);
    let mut proxy = TlsProxy::start(&first, &bs);
    let dir = TempDir::new("kconn-watch");
    // One CA for both certificates: the rotation keeps the trust.
    let ca = dir.file("ca.pem", &first.ca_pem);
    let addr = proxy.addr.to_string();
    let mut w = Watch::start(&[
        "check",
        "-b",
        &addr,
        "--tls-ca",
        &ca,
        // The TLS forwarder fronts a plaintext broker that advertises its
        // plaintext port: only the forwarder is about certificates.
        "--bootstrap-only",
        "--watch",
        "300ms",
        "--timeout",
        "2s",
        "--json",
    ]);
    let event = |line: &str| -> Value {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_schema(&v);
        v
    };
    let baseline = event(&w.until("\"event\":\"baseline\""));
    assert_eq!(baseline["ok"], true, "{baseline}");
    assert_eq!(baseline["brokers"][0]["broker"], addr.as_str());

    let rotated = first.rotate_leaf(101);
    proxy.rotate(&rotated);
    let change = event(&w.until("\"change\":\"certificate\""));
    assert_eq!(change["event"], "change");
    assert_eq!(change["broker"], addr.as_str());
    assert!(
        change["before"].as_str().unwrap().contains("serial 64"),
        "{change}"
    );
    assert!(
        change["after"].as_str().unwrap().contains("serial 65"),
        "{change}"
    );
    assert!(
        change["message"]
            .as_str()
            .unwrap()
            .starts_with("certificate rotated: now CN=localhost"),
        "{change}"
    );

    proxy.stop();
    let gone = event(&w.until("\"change\":\"reachability\""));
    assert_eq!(gone["ok"], false, "{gone}");
    assert_eq!(gone["broker_ok"], false, "{gone}");
    assert!(
        gone["message"]
            .as_str()
            .unwrap()
            .starts_with("went away: connection refused"),
        "{gone}"
    );
    let (code, rest, err) = w.stop("TERM");
    // The last check failed: exit 1.
    assert_eq!(code, Some(1), "stderr: {err}");
    let stopped = event(rest.last().expect("a stopped event"));
    assert_eq!(stopped["event"], "stopped");
    assert_eq!(stopped["signal"], "SIGTERM");
    assert!(stopped["checks"].as_u64().unwrap() >= 3, "{stopped}");
    for line in &w.seen {
        event(line);
    }
}

/// Every advertised broker is watched: on a private mock cluster behind
/// the testsuite's Kafka-aware forwarder, broker 3 goes away (its address
/// still advertised, its broker gone behind it) and comes back, then
/// drops out of Metadata (taken down: Kafka advertises live brokers only)
/// and comes back into it.
#[test]
fn every_advertised_broker_is_watched_and_reported_by_node() {
    let Some(mock) = kafka_conn_testsuite::MockCluster::start(3) else {
        return;
    };
    let proxy = kafka_conn_testsuite::cluster::KafkaProxy::in_front_of(&mock, 3);
    let first = proxy.address(1);
    let third = proxy.address(3);
    let mut w = Watch::start(&[
        "check",
        "-b",
        &first,
        "--watch",
        "300ms",
        "--timeout",
        "2s",
        "--json",
    ]);
    let event = |line: &str| -> Value {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_schema(&v);
        v
    };
    let baseline = event(&w.until("\"event\":\"baseline\""));
    assert_eq!(baseline["ok"], true, "{baseline}");
    assert_eq!(
        baseline["brokers"].as_array().unwrap().len(),
        3,
        "{baseline}"
    );

    proxy.retarget(3, &closed_port());
    let gone = event(&w.until("\"change\":\"reachability\""));
    assert_eq!(gone["broker"], third.as_str(), "{gone}");
    assert_eq!(gone["broker_ok"], false, "{gone}");
    assert_eq!(gone["ok"], false, "{gone}");
    proxy.retarget(3, &mock.address(3));
    let back = event(&w.until("is back"));
    assert_eq!(back["broker"], third.as_str(), "{back}");
    assert_eq!(back["ok"], true, "{back}");

    mock.broker_down(3);
    let removed = event(&w.until("\"change\":\"broker_removed\""));
    assert_eq!(removed["broker"], third.as_str(), "{removed}");
    assert_eq!(removed["message"], "broker 3 is no longer advertised");
    mock.broker_up(3);
    let added = event(&w.until("\"change\":\"broker_added\""));
    assert_eq!(added["broker"], third.as_str(), "{added}");
    assert_eq!(
        added["message"],
        "broker 3 is advertised now: every step passes"
    );
    let (code, _, err) = w.stop("INT");
    assert_eq!(code, Some(0), "stderr: {err}");
}
