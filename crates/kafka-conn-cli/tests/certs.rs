//! Certificate expiry, checked on every certificate the broker presents.
//! No shared broker has an expiring certificate, so each test makes its
//! own with rcgen and serves it from a TLS-terminating forwarder (rustls,
//! in this process) in front of the real plaintext tansu broker: the whole
//! check, ApiVersions and Metadata included, runs against tansu.

mod common;

use common::proxy::{valid_for, TestPki, TlsProxy, Validity};
use common::*;

/// Runs `check --json` through a forwarder serving `pki`; returns the
/// report and the exit status.
fn check_through(pki: &TestPki, extra: &[&str]) -> Option<(Value, Option<i32>)> {
    let bs = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP")?;
    let proxy = TlsProxy::start(pki, &bs);
    let dir = TempDir::new("kconn-certs");
    let ca = dir.file("ca.pem", &pki.ca_pem);
    let addr = proxy.addr.to_string();
    // The forwarder terminates TLS in front of the plaintext broker, which
    // advertises its own plaintext port: only the bootstrap address is
    // about these certificates (tests/cluster.rs checks advertised brokers).
    let mut args = vec!["check", "-b", &addr, "--tls-ca", &ca, "--bootstrap-only"];
    args.extend_from_slice(extra);
    Some(json(&args))
}

fn warnings(report: &Value) -> Vec<String> {
    report["brokers"][0]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_leaf_expiring_within_30_days_is_a_warning_that_names_it() {
    let pki = TestPki::new(valid_for(10), None, 7);
    let Some((report, code)) = check_through(&pki, &[]) else {
        return;
    };
    assert_eq!(code, Some(0), "{report:#}");
    let w = warnings(&report);
    let expiring: Vec<&String> = w.iter().filter(|w| w.contains("expires on")).collect();
    assert_eq!(expiring.len(), 1, "{w:?}");
    let line = expiring[0];
    assert!(
        line.starts_with("the broker's certificate \"CN=localhost, O=kconn tests\" expires on "),
        "{line}"
    );
    // 10 days from yesterday's start: 9 or 10 whole days left, by the hour of the run.
    assert!(
        line.contains("(in 9 days") || line.contains("(in 10 days"),
        "{line}"
    );
    assert!(line.contains("warning at 30"), "{line}");
    // The certificate itself is in the report, with its days left.
    let cert = &report["brokers"][0]["tls"]["chain"][0];
    assert!(cert["expires_in_days"].as_i64().unwrap() <= 10, "{cert}");
}

#[test]
fn the_text_report_shows_the_warning() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let pki = TestPki::new(valid_for(10), None, 12);
    let proxy = TlsProxy::start(&pki, &bs);
    let dir = TempDir::new("kconn-certs-text");
    let ca = dir.file("ca.pem", &pki.ca_pem);
    let out = kconn(&[
        "check",
        "-b",
        &proxy.addr.to_string(),
        "--tls-ca",
        &ca,
        "--bootstrap-only",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains("  ⚠ the broker's certificate \"CN=localhost, O=kconn tests\" expires on "),
        "{text}"
    );
}

#[test]
fn the_warning_window_is_configurable() {
    let pki = TestPki::new(valid_for(10), None, 8);
    let Some((report, code)) = check_through(&pki, &["--cert-warn-days", "5"]) else {
        return;
    };
    assert_eq!(code, Some(0), "{report:#}");
    assert!(
        !warnings(&report).iter().any(|w| w.contains("expires on")),
        "{report:#}"
    );
    let Some((report, _)) = check_through(&pki, &["--cert-warn-days", "60"]) else {
        return;
    };
    assert!(
        warnings(&report)
            .iter()
            .any(|w| w.contains("warning at 60")),
        "{report:#}"
    );
}

#[test]
fn an_intermediate_expiring_soon_is_named_by_its_place_in_the_chain() {
    let pki = TestPki::new(valid_for(100), Some(valid_for(5)), 9);
    let Some((report, code)) = check_through(&pki, &[]) else {
        return;
    };
    assert_eq!(code, Some(0), "{report:#}");
    let w = warnings(&report);
    let expiring: Vec<&String> = w.iter().filter(|w| w.contains("expires on")).collect();
    assert_eq!(expiring.len(), 1, "{w:?}");
    assert!(
        expiring[0].starts_with(
            "certificate 2 of 2 in the chain \"CN=kconn test intermediate, O=kconn tests\" expires on"
        ),
        "{w:?}"
    );
    assert_eq!(
        report["brokers"][0]["tls"]["chain"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn an_expired_certificate_is_an_error_with_the_same_detail() {
    let pki = TestPki::new(
        Validity {
            from_days: -30,
            to_days: -3,
        },
        None,
        10,
    );
    let Some((report, code)) = check_through(&pki, &[]) else {
        return;
    };
    assert_eq!(code, Some(1), "{report:#}");
    let e = &report["brokers"][0]["error"];
    assert_eq!(e["kind"], "certificate_expired", "{e}");
    assert_eq!(e["step"], "tls", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("the broker's certificate \"CN=localhost, O=kconn tests\" expired on "),
        "{message}"
    );
    assert!(
        message.contains("(3 days ago)") || message.contains("(2 days ago)"),
        "{message}"
    );
    // The refused certificate is still shown.
    let cert = &report["brokers"][0]["tls"]["chain"][0];
    assert!(cert["expires_in_days"].as_i64().unwrap() < 0, "{cert}");
}

#[test]
fn an_expired_intermediate_is_the_one_named() {
    let pki = TestPki::new(
        valid_for(100),
        Some(Validity {
            from_days: -30,
            to_days: -1,
        }),
        11,
    );
    let Some((report, code)) = check_through(&pki, &[]) else {
        return;
    };
    assert_eq!(code, Some(1), "{report:#}");
    let e = &report["brokers"][0]["error"];
    assert_eq!(e["kind"], "certificate_expired", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("certificate 2 of 2 in the chain \"CN=kconn test intermediate"),
        "{e}"
    );
}
