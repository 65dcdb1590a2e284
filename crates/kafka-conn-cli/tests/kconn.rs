//! Runs the built `kconn` against the real test brokers (`scripts/broker-up`,
//! then `. .broker-state/env`). Each diagnosis is produced by the real
//! failure, not a simulation.
//!
//! A missing broker variable skips the test with "SKIPPED: ..." unless
//! `KAFKA_CONN_REQUIRE_BROKERS=1`, where it fails; SASL tests also skip when
//! `KAFKA_SASL_SKIP_REASON` is non-empty.

mod common;

use std::process::Output;

use common::*;
use kafka_conn_testsuite::env::Plaintext;

/// Two tests of one check: `$on_tansu` against tansu and `$on_noida`
/// against noida-db, each skipped (or failed in CI) as its broker's
/// variables say.
macro_rules! on_both_brokers {
    ($check:ident: $on_tansu:ident, $on_noida:ident) => {
        #[test]
        fn $on_tansu() {
            if let Some(broker) = Plaintext::tansu() {
                $check(&broker);
            }
        }

        #[test]
        fn $on_noida() {
            if let Some(broker) = Plaintext::noida() {
                $check(&broker);
            }
        }
    };
}

/// The last line of stdout: the verdict of a one-broker `check`.
/// The first broker's verdict: its ✓ or ✗ line (the per-broker table of
/// the advertised brokers may follow).
fn verdict(out: &Output) -> String {
    stdout(out)
        .lines()
        .find(|l| l.starts_with("✓ ") || l.starts_with("✗ "))
        .unwrap_or_default()
        .to_owned()
}

/// The diagnosis of the first broker in a `check --json` report.
fn error_of(report: &Value) -> &Value {
    &report["brokers"][0]["error"]
}

fn step_status<'a>(report: &'a Value, step: &str) -> &'a str {
    report["brokers"][0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == step)
        .and_then(|s| s["status"].as_str())
        .unwrap_or_else(|| panic!("no step {step} in {report}"))
}

/// A step of the first broker in a `check --json` report.
fn step_of<'a>(report: &'a Value, step: &str) -> &'a Value {
    report["brokers"][0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {report}"))
}

/// The milliseconds a step took (panics if it has none).
fn step_ms(report: &Value, step: &str) -> f64 {
    step_of(report, step)["ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("no time for {step} in {report}"))
}

// ----- usage --------------------------------------------------------------

#[test]
fn version_and_help() {
    let out = kconn(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("kconn {}", env!("CARGO_PKG_VERSION"))
    );
    let out = kconn(&["check", "--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for needle in [
        "--bootstrap",
        "--security-protocol",
        "--tls-ca",
        "--sasl-mechanism",
        "KCONN_SASL_PASSWORD",
        "KCONN_OAUTH_TOKEN",
        "--json",
    ] {
        assert!(help.contains(needle), "help lacks {needle}:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2_with_the_fix() {
    let out = kconn(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no broker given: use --bootstrap"));

    let out = kconn(&[
        "check",
        "-b",
        "localhost:9092",
        "--security-protocol",
        "PLAINTEXT",
        "--tls-ca",
        "ca.pem",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use SSL"));

    let out = kconn(&[
        "check",
        "-b",
        "localhost:9092",
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--username",
        "u",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KCONN_SASL_PASSWORD"));
}

// ----- check: success -----------------------------------------------------

on_both_brokers!(check_plaintext_step_by_step:
    check_plaintext_succeeds_step_by_step, check_noida_succeeds_step_by_step);

fn check_plaintext_step_by_step(broker: &Plaintext) {
    let bs = broker.addr.as_str();
    let out = kconn(&["check", "-b", bs]);
    assert!(out.status.success());
    let text = stdout(&out);
    for line in [
        "✓ DNS",
        "✓ TCP connect",
        "· TLS handshake",
        "✓ ApiVersions",
        "· SASL",
        "✓ ready",
        "✓ Metadata",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert_eq!(
        verdict(&out),
        format!("✓ {bs} is ready for PLAINTEXT clients")
    );
}

// On noida-db: ApiVersions v3 after the KIP-511 fallback, one broker
// (node 1) at the bootstrap address.
on_both_brokers!(check_json: check_json_is_one_parsable_object, check_json_against_noida);

fn check_json(expected: &Plaintext) {
    let bs = expected.addr.as_str();
    let name = expected.name;
    let (report, code) = json(&["check", "-b", bs]);
    assert_eq!(code, Some(0));
    assert_eq!(report["command"], "check");
    assert_eq!(report["ok"], true);
    assert_eq!(report["security_protocol"], "PLAINTEXT");
    let broker = &report["brokers"][0];
    assert_eq!(broker["ok"], true);
    assert_eq!(broker["address"], bs);
    for step in ["dns", "tcp", "api_versions", "ready", "metadata"] {
        assert_eq!(step_status(&report, step), "ok", "{step}");
    }
    assert_eq!(step_status(&report, "tls"), "skipped");
    assert_eq!(step_status(&report, "sasl"), "skipped");
    let versions = &broker["api_versions"];
    assert_eq!(
        versions["version"], expected.api_versions,
        "{name}: {versions}"
    );
    assert_eq!(
        versions["fell_back"], expected.fell_back,
        "{name}: {versions}"
    );
    assert!(versions["apis"].as_u64().unwrap() > 10);
    assert!(broker["timings_ms"]["total"].as_f64().unwrap() > 0.0);
    // One node, advertising the address it was reached at; its own controller.
    let metadata = &broker["metadata"];
    let (host, port) = bs.rsplit_once(':').unwrap();
    let advertised = metadata["brokers"].as_array().unwrap();
    assert_eq!(advertised.len(), 1, "{name}: {metadata}");
    assert_eq!(
        advertised[0]["node_id"], expected.node_id,
        "{name}: {metadata}"
    );
    assert_eq!(advertised[0]["host"], host, "{name}: {metadata}");
    assert_eq!(
        advertised[0]["port"],
        port.parse::<i64>().unwrap(),
        "{name}: {metadata}"
    );
    assert_eq!(
        metadata["controller_id"], expected.node_id,
        "{name}: {metadata}"
    );
    assert!(
        metadata["cluster_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{name}: {metadata}"
    );
    assert!(broker["error"].is_null());
}

#[test]
fn check_tls_shows_the_session_and_the_certificate() {
    let Some([bs, ca]) = broker_vars(["KAFKA_TLS_BOOTSTRAP", "KAFKA_TLS_CA_FILE"]) else {
        return;
    };
    let (report, code) = json(&["check", "-b", &bs, "--tls-ca", &ca]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["security_protocol"], "SSL");
    assert_eq!(report["security_protocol_inferred"], true);
    let tls = &report["brokers"][0]["tls"];
    assert!(
        tls["protocol_version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1_"),
        "{tls}"
    );
    assert!(!tls["cipher_suite"].as_str().unwrap().is_empty());
    let cert = &tls["certificate"];
    assert!(
        cert["subject"].as_str().unwrap().contains("CN=localhost"),
        "{cert}"
    );
    assert!(cert["expires_in_days"].as_i64().unwrap() > 0, "{cert}");
    assert!(
        cert["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "127.0.0.1"),
        "{cert}"
    );

    let out = kconn(&["check", "-b", &bs, "--tls-ca", &ca]);
    let text = stdout(&out);
    assert!(text.contains("✓ TLS handshake"), "{text}");
    assert!(text.contains("certificate: CN=localhost"), "{text}");
    assert!(text.contains("valid until"), "{text}");
}

#[test]
fn check_mtls_succeeds_with_a_client_certificate() {
    let Some([bs, ca, cert, key, name]) = broker_vars([
        "KAFKA_MTLS_BOOTSTRAP",
        "KAFKA_TLS_CA_FILE",
        "KAFKA_TLS_CLIENT_CERT_FILE",
        "KAFKA_TLS_CLIENT_KEY_FILE",
        "KAFKA_TLS_SERVER_NAME",
    ]) else {
        return;
    };
    let (report, code) = json(&[
        "check",
        "-b",
        &bs,
        "--security-protocol",
        "SSL",
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-server-name",
        &name,
    ]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["brokers"][0]["tls"]["server_name"], name.as_str());
}

fn sasl_check(mechanism: &str) {
    let Some([bs, user, password]) = sasl_vars() else {
        return;
    };
    let (report, code) = json_env(
        &[
            "check",
            "-b",
            &bs,
            "--sasl-mechanism",
            mechanism,
            "--username",
            &user,
        ],
        &[("KCONN_SASL_PASSWORD", &password)],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["security_protocol"], "SASL_PLAINTEXT");
    let sasl = &report["brokers"][0]["sasl"];
    assert_eq!(sasl["mechanism"], mechanism);
    // The SASL test broker sends a 60 s session lifetime (KIP-368).
    if let Some(lifetime) = var("KAFKA_SASL_SESSION_LIFETIME_MS") {
        assert_eq!(sasl["session_lifetime_ms"].to_string(), lifetime, "{sasl}");
    }
    assert_eq!(step_status(&report, "sasl"), "ok");
    assert_eq!(step_status(&report, "metadata"), "ok");
    // ApiVersions and SASL are timed apart, and together fit in the total.
    let (versions, sasl) = (step_ms(&report, "api_versions"), step_ms(&report, "sasl"));
    let timings = &report["brokers"][0]["timings_ms"];
    assert_eq!(
        timings["api_versions"].as_f64(),
        Some(versions),
        "{timings}"
    );
    assert_eq!(timings["sasl"].as_f64(), Some(sasl), "{timings}");
    assert!(
        versions + sasl <= timings["total"].as_f64().unwrap(),
        "{timings}"
    );
}

fn sasl_vars() -> Option<[String; 3]> {
    Some([
        sasl_var("KAFKA_SASL_SCRAM_BOOTSTRAP")?,
        sasl_var("KAFKA_SASL_USERNAME")?,
        sasl_var("KAFKA_SASL_PASSWORD")?,
    ])
}

#[test]
fn check_sasl_scram_sha_256_succeeds() {
    sasl_check("SCRAM-SHA-256");
}

#[test]
fn check_sasl_scram_sha_512_succeeds() {
    sasl_check("SCRAM-SHA-512");
}

#[test]
fn check_sasl_plain_succeeds() {
    sasl_check("PLAIN");
}

#[test]
fn check_sasl_oauthbearer_succeeds_with_a_token_from_the_environment() {
    let Some(bs) = sasl_var("KAFKA_SASL_OAUTHBEARER_BOOTSTRAP") else {
        return;
    };
    let token = kafka_conn_core::sim::unsecured_jwt("kafka-test", 3600);
    let (report, code) = json_env(
        &["check", "-b", &bs, "--sasl-mechanism", "OAUTHBEARER"],
        &[("KCONN_OAUTH_TOKEN", &token)],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["brokers"][0]["sasl"]["mechanism"], "OAUTHBEARER");
    assert!(!report.to_string().contains(&token), "the token was echoed");
}

#[test]
fn check_sasl_ssl_succeeds() {
    let Some([bs, ca]) = (|| {
        Some([
            sasl_var("KAFKA_SASL_SSL_BOOTSTRAP")?,
            sasl_var("KAFKA_SASL_TLS_CA_FILE")?,
        ])
    })() else {
        return;
    };
    let Some([_, user, password]) = sasl_vars() else {
        return;
    };
    let (report, code) = json_env(
        &[
            "check",
            "-b",
            &bs,
            "--sasl-mechanism",
            "SCRAM-SHA-512",
            "--username",
            &user,
            "--tls-ca",
            &ca,
        ],
        &[("KCONN_SASL_PASSWORD", &password)],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["security_protocol"], "SASL_SSL");
    assert_eq!(step_status(&report, "tls"), "ok");
    assert_eq!(step_status(&report, "sasl"), "ok");
}

// ----- check: each diagnosis from the real failure --------------------------

#[test]
fn plaintext_client_on_the_tls_port_is_told_to_use_ssl() {
    let Some(bs) = broker_var("KAFKA_TLS_BOOTSTRAP") else {
        return;
    };
    let out = kconn(&["check", "-b", &bs]);
    assert_eq!(out.status.code(), Some(1));
    let line = verdict(&out);
    assert!(line.starts_with('✗'), "{line}");
    assert!(line.contains("use --security-protocol SSL"), "{line}");
    // Whether the TLS listener answers with a TLS alert or just closes.
    assert!(
        line.contains("the broker answered with a TLS record")
            || line.contains("before answering ApiVersions"),
        "{line}"
    );
    let (report, code) = json(&["check", "-b", &bs]);
    assert_eq!(code, Some(1));
    assert_eq!(report["ok"], false);
    let e = error_of(&report);
    assert_eq!(e["step"], "api_versions", "{e}");
    assert!(
        ["broker_speaks_tls", "closed_before_api_versions"].contains(&e["kind"].as_str().unwrap()),
        "{e}"
    );
    assert_eq!(step_status(&report, "tcp"), "ok");
    assert_eq!(step_status(&report, "api_versions"), "failed");
}

#[test]
fn tls_client_on_a_plaintext_port_is_told_to_use_plaintext() {
    let Some([bs, ca]) = broker_vars(["KAFKA_PLAINTEXT_BOOTSTRAP", "KAFKA_TLS_CA_FILE"]) else {
        return;
    };
    let (report, code) = json(&[
        "check",
        "-b",
        &bs,
        "--security-protocol",
        "SSL",
        "--tls-ca",
        &ca,
        "--timeout",
        "10s",
    ]);
    assert_eq!(code, Some(1));
    let e = error_of(&report);
    assert_eq!(e["step"], "tls", "{e}");
    // Diagnosed by the plaintext probe after about a second, not at the
    // 10 s timeout.
    let total = report["brokers"][0]["timings_ms"]["total"]
        .as_f64()
        .unwrap();
    assert!(total < 5000.0, "took {total} ms");
    assert_eq!(step_status(&report, "tcp"), "ok");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("--security-protocol PLAINTEXT"),
        "{message}"
    );
}

#[test]
fn a_closed_port_is_connection_refused() {
    let addr = closed_port();
    let out = kconn(&["check", "-b", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let line = verdict(&out);
    assert!(
        line.starts_with(&format!("✗ connection refused by {addr}")),
        "{line}"
    );
    assert!(line.contains("is the broker up"), "{line}");
    let (report, _) = json(&["check", "-b", &addr]);
    assert_eq!(error_of(&report)["kind"], "connection_refused");
    assert_eq!(error_of(&report)["step"], "tcp");
    assert_eq!(error_of(&report)["retriable"], true);
}

#[test]
fn a_wrong_ca_is_certificate_not_trusted() {
    let Some([bs, wrong_ca]) = broker_vars(["KAFKA_TLS_BOOTSTRAP", "KAFKA_TLS_WRONG_CA_FILE"])
    else {
        return;
    };
    let out = kconn(&["check", "-b", &bs, "--tls-ca", &wrong_ca]);
    assert_eq!(out.status.code(), Some(1));
    let line = verdict(&out);
    assert!(
        line.starts_with("✗ certificate not trusted: check --tls-ca"),
        "{line}"
    );
    assert!(line.contains(&wrong_ca), "{line}");
    // The certificate is shown although it is not trusted.
    assert!(
        stdout(&out).contains("certificate: CN=localhost"),
        "{}",
        stdout(&out)
    );
    let (report, _) = json(&["check", "-b", &bs, "--tls-ca", &wrong_ca]);
    assert_eq!(error_of(&report)["kind"], "certificate_not_trusted");
    assert_eq!(error_of(&report)["step"], "tls");
    // TCP passed before the failure, with its time; the refused
    // certificate is reported as the broker presented it.
    assert_eq!(step_status(&report, "tcp"), "ok");
    assert!(step_ms(&report, "tcp") >= 0.0);
    assert!(step_ms(&report, "tls") > 0.0);
    let tls = &report["brokers"][0]["tls"];
    assert!(tls["peer_certificates"].as_u64().unwrap() >= 1, "{tls}");
    assert!(tls["cipher_suite"].is_null(), "{tls}");
    let cert = &tls["certificate"];
    assert!(
        cert["subject"].as_str().unwrap().contains("CN=localhost"),
        "{cert}"
    );
    assert!(cert["expires_in_days"].as_i64().unwrap() > 0, "{cert}");
}

#[test]
fn an_unreadable_ca_file_names_the_option_and_runs_no_step() {
    let addr = closed_port();
    let (report, code) = json(&[
        "check",
        "-b",
        &addr,
        "--tls-ca",
        "/nonexistent/kconn-ca.pem",
    ]);
    assert_eq!(code, Some(1));
    let e = error_of(&report);
    assert_eq!(e["kind"], "tls_configuration", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("/nonexistent/kconn-ca.pem"), "{message}");
    assert!(message.ends_with("check --tls-ca"), "{message}");
    // Nothing was tried: not even the (closed) TCP port.
    assert_eq!(step_status(&report, "tcp"), "not_run");
}

#[test]
fn a_certificate_for_another_name_says_which_names_it_has() {
    let Some([bs, ca]) = broker_vars(["KAFKA_TLS_BOOTSTRAP", "KAFKA_TLS_CA_FILE"]) else {
        return;
    };
    let (report, code) = json(&[
        "check",
        "-b",
        &bs,
        "--tls-ca",
        &ca,
        "--tls-server-name",
        "kafka.example.com",
    ]);
    assert_eq!(code, Some(1));
    let e = error_of(&report);
    assert_eq!(e["kind"], "certificate_name_mismatch", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("it is valid for localhost"), "{message}");
    assert!(message.contains("--tls-server-name"), "{message}");
}

#[test]
fn an_unknown_host_is_a_dns_failure() {
    // .invalid never resolves (RFC 2606); no broker needed.
    let (report, code) = json(&["check", "-b", "kconn-test.invalid:9092", "--timeout", "5s"]);
    assert_eq!(code, Some(1));
    let e = error_of(&report);
    assert_eq!(e["step"], "dns", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot resolve kconn-test.invalid"),
        "{e}"
    );
}

#[test]
fn mtls_without_a_client_certificate_is_named() {
    let Some([bs, ca]) = broker_vars(["KAFKA_MTLS_BOOTSTRAP", "KAFKA_TLS_CA_FILE"]) else {
        return;
    };
    let (report, code) = json(&["check", "-b", &bs, "--tls-ca", &ca]);
    assert_eq!(code, Some(1));
    let e = error_of(&report);
    assert_eq!(e["kind"], "client_certificate_required", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("give --tls-cert and --tls-key"),
        "{e}"
    );
}

#[test]
fn a_wrong_password_is_authentication_failed_with_the_brokers_message() {
    let Some([bs, user, _]) = sasl_vars() else {
        return;
    };
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let out = kconn_env(
            &[
                "check",
                "-b",
                &bs,
                "--sasl-mechanism",
                mechanism,
                "--username",
                &user,
            ],
            &[("KCONN_SASL_PASSWORD", "definitely-not-the-password")],
        );
        assert_eq!(out.status.code(), Some(1));
        let line = verdict(&out);
        assert!(line.starts_with("✗ authentication failed: "), "{line}");
        assert!(line.contains("SASL_AUTHENTICATION_FAILED"), "{line}");
        assert!(line.contains("KCONN_SASL_PASSWORD"), "{line}");
        let (report, _) = json_env(
            &[
                "check",
                "-b",
                &bs,
                "--sasl-mechanism",
                mechanism,
                "--username",
                &user,
            ],
            &[("KCONN_SASL_PASSWORD", "definitely-not-the-password")],
        );
        assert_eq!(error_of(&report)["kind"], "authentication_failed");
        assert_eq!(error_of(&report)["step"], "sasl");
        // The steps before the failure passed, with their times.
        for step in ["tcp", "api_versions"] {
            assert_eq!(step_status(&report, step), "ok", "{step}");
            assert!(step_ms(&report, step) >= 0.0);
        }
        assert_eq!(step_status(&report, "sasl"), "failed");
        assert!(step_ms(&report, "sasl") > 0.0);
    }
}

/// tansu's SASL listener enables every mechanism kconn can ask for (and
/// closes the connection for others, such as GSSAPI), so "not enabled" is
/// produced by its PLAINTEXT listener, which answers SaslHandshake with
/// UNSUPPORTED_SASL_MECHANISM (listing only the mechanism asked for).
#[test]
fn a_mechanism_the_broker_does_not_enable_is_reported() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let (report, code) = json_env(
        &[
            "check",
            "-b",
            &bs,
            "--sasl-mechanism",
            "SCRAM-SHA-512",
            "--username",
            "u",
        ],
        &[("KCONN_SASL_PASSWORD", "p")],
    );
    assert_eq!(code, Some(1));
    let e = error_of(&report);
    assert_eq!(e["kind"], "mechanism_not_enabled", "{e}");
    assert_eq!(e["step"], "sasl");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("mechanism SCRAM-SHA-512 is not enabled"),
        "{e}"
    );
}

#[test]
fn sasl_against_a_broker_without_sasl_apis_is_reported() {
    let Some(mock) = broker_var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let first = mock.split(',').next().unwrap();
    let (report, code) = json_env(
        &[
            "check",
            "-b",
            first,
            "--sasl-mechanism",
            "PLAIN",
            "--username",
            "u",
        ],
        &[("KCONN_SASL_PASSWORD", "p")],
    );
    assert_eq!(code, Some(1));
    assert_eq!(error_of(&report)["kind"], "sasl_not_offered", "{report}");
}

#[test]
fn no_sasl_on_a_sasl_listener_suggests_sasl() {
    let Some(bs) = sasl_var("KAFKA_SASL_SCRAM_BOOTSTRAP") else {
        return;
    };
    let (report, code) = json(&["check", "-b", &bs]);
    assert_eq!(code, Some(1));
    let e = error_of(&report);
    assert_eq!(e["step"], "metadata", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("--security-protocol SASL_PLAINTEXT"),
        "{e}"
    );
    assert_eq!(step_status(&report, "ready"), "ok");
}

#[test]
fn secrets_are_never_echoed() {
    let Some([bs, user, _]) = sasl_vars() else {
        return;
    };
    let password = "kconn-secret-password-3141";
    let token = "kconn-secret-token-2718";
    for args in [
        vec![
            "check",
            "-b",
            &bs,
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--username",
            &user,
            "-vvv",
        ],
        vec![
            "check",
            "-b",
            &bs,
            "--sasl-mechanism",
            "PLAIN",
            "--username",
            &user,
            "--json",
            "-vvv",
        ],
        vec![
            "check",
            "-b",
            &bs,
            "--sasl-mechanism",
            "OAUTHBEARER",
            "--json",
            "-vvv",
        ],
    ] {
        let out = kconn_env(
            &args,
            &[
                ("KCONN_SASL_PASSWORD", password),
                ("KCONN_OAUTH_TOKEN", token),
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        assert!(!all.contains(password), "password echoed");
        assert!(!all.contains(token), "token echoed");
    }
}

// ----- api-versions, ping, bench --------------------------------------------

on_both_brokers!(api_versions_table: api_versions_against_tansu, api_versions_against_noida);

fn api_versions_table(broker: &Plaintext) {
    let bs = broker.addr.as_str();
    let out = kconn(&["api-versions", "-b", bs]);
    assert!(out.status.success());
    let text = stdout(&out);
    let header = text
        .lines()
        .find(|l| l.trim_start().starts_with("API "))
        .expect("table header");
    for col in ["KEY", "BROKER", "KAFKA-CONN"] {
        assert!(header.contains(col), "{header}");
    }
    // Aligned: every row starts its KEY column where the header does.
    let key_end = header.find("KEY").unwrap() + 3;
    for row in text
        .lines()
        .filter(|l| l.starts_with("  ") && !l.contains("features"))
    {
        let before = &row[..key_end.min(row.len())];
        assert!(
            before.ends_with(|c: char| c.is_ascii_digit()) || before.ends_with("KEY"),
            "misaligned: {row:?}"
        );
    }
    assert!(text.contains("ApiVersions"), "{text}");

    let (report, code) = json(&["api-versions", "-b", bs]);
    assert_eq!(code, Some(0));
    assert_eq!(
        report["brokers"][0]["api_versions_version"], broker.api_versions,
        "{}",
        broker.name
    );
    let apis = report["brokers"][0]["apis"].as_array().unwrap();
    let api = |key: i64| {
        apis.iter()
            .find(|a| a["key"] == key)
            .unwrap_or_else(|| panic!("no key {key}"))
    };
    assert_eq!(api(18)["name"], "ApiVersions");
    assert_eq!(api(18)["max"], broker.api_versions, "{}", broker.name);
    assert_eq!(
        api(18)["kafka_conn"],
        broker.api_versions,
        "{}",
        broker.name
    );
    assert_eq!(api(3)["name"], "Metadata");
    assert_eq!(api(3)["kafka_conn"], api(3)["max"]);
}

#[test]
fn api_versions_lists_every_broker_of_the_mock_cluster() {
    let Some(mock) = broker_var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let (report, code) = json(&["api-versions", "-b", &mock]);
    assert_eq!(code, Some(0), "{report}");
    let brokers = report["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), mock.split(',').count());
    for b in brokers {
        assert_eq!(b["ok"], true, "{b}");
        // The librdkafka mock speaks ApiVersions v0-v2 only.
        assert!(b["api_versions_version"].as_i64().unwrap() <= 2, "{b}");
        assert!(b["apis"].as_array().unwrap().len() > 10, "{b}");
    }
    let out = kconn(&["api-versions", "-b", &mock]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).matches("KAFKA-CONN").count(), brokers.len());
}

#[test]
fn api_versions_reports_an_unreachable_broker_and_fails() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let closed = closed_port();
    let list = format!("{bs},{closed}");
    let (report, code) = json(&["api-versions", "-b", &list]);
    assert_eq!(code, Some(1));
    assert_eq!(report["brokers"][0]["ok"], true);
    assert_eq!(report["brokers"][1]["ok"], false);
    assert_eq!(report["brokers"][1]["error"]["kind"], "connection_refused");
}

#[test]
fn ping_measures_round_trips() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let out = kconn(&["ping", "-b", &bs, "-n", "5"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert_eq!(text.matches("seq=").count(), 5, "{text}");
    assert!(
        text.contains("min ")
            && text.contains("p50 ")
            && text.contains("p99 ")
            && text.contains("max "),
        "{text}"
    );

    let (report, code) = json(&["ping", "-b", &bs, "-n", "20"]);
    assert_eq!(code, Some(0));
    assert_eq!(report["command"], "ping");
    let report = &report["brokers"][0];
    assert_eq!(report["sent"], 20);
    assert_eq!(report["answered"], 20);
    let l = &report["latency_ms"];
    let (min, p50, p99, max) = (
        l["min_ms"].as_f64().unwrap(),
        l["p50_ms"].as_f64().unwrap(),
        l["p99_ms"].as_f64().unwrap(),
        l["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= p50 && p50 <= p99 && p99 <= max, "{l}");
}

#[test]
fn ping_the_mock_cluster_uses_its_api_versions_version() {
    let Some(mock) = broker_var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let (report, code) = json(&["ping", "-b", &mock, "-n", "3"]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report["brokers"][0]["api_version"].as_i64().unwrap() <= 2);
}

#[test]
fn bench_pipelines_requests() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let (report, code) = json(&[
        "bench",
        "-b",
        &bs,
        "--requests",
        "2000",
        "--concurrency",
        "16",
    ]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["command"], "bench");
    let report = &report["brokers"][0];
    assert_eq!(report["completed"], 2000);
    assert_eq!(report["errors"], 0);
    assert!(report["requests_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["latency_ms"]["p99_ms"].as_f64().unwrap() > 0.0);

    // Not a terminal: plain output, no progress bar.
    let out = kconn(&[
        "bench",
        "-b",
        &bs,
        "--duration",
        "500ms",
        "--concurrency",
        "8",
        "--request",
        "metadata",
    ]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("requests/s"), "{text}");
    assert!(text.contains("Metadata v"), "{text}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains('\r'),
        "progress bar drawn without a terminal"
    );
}
