//! `kconn check` learns the cluster from Metadata and checks every broker
//! it advertises, end to end, with a per-broker table: against private
//! librdkafka mock clusters (a broker taken down, addresses advertised
//! that nobody can reach, through the Kafka-aware forwarder of the
//! testsuite that rewrites Metadata) and tansu over TLS, mTLS and SASL
//! (bootstrapped by name, advertised by address, so the advertised
//! address gets its own TLS and SASL check).

mod common;

use common::proxy::{valid_for, TestPki, TlsProxy};
use common::*;
use kafka_conn_testsuite::cluster::KafkaProxy;
use kafka_conn_testsuite::MockCluster;

fn row(report: &Value, node: i64) -> &Value {
    report["cluster"]["brokers"]
        .as_array()
        .expect("a cluster table")
        .iter()
        .find(|r| r["node_id"] == node)
        .unwrap_or_else(|| panic!("no node {node}: {report:#}"))
}

fn broker<'a>(report: &'a Value, address: &str) -> &'a Value {
    report["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["broker"] == address)
        .unwrap_or_else(|| panic!("no broker {address}: {report:#}"))
}

#[test]
fn every_advertised_broker_of_the_mock_cluster_is_checked() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    mock.set_rack(2, "rack-b");
    let first = mock.address(1);
    let (report, code) = json(&["check", "-b", &first]);
    assert_eq!(code, Some(0), "{report:#}");
    let brokers = report["brokers"].as_array().unwrap();
    assert_eq!(
        brokers.len(),
        3,
        "one bootstrap broker, two more advertised"
    );
    assert_eq!(brokers[0]["bootstrap"], true);
    assert_eq!(
        brokers[0]["advertised"], true,
        "the bootstrap address is broker 1's"
    );
    assert_eq!(brokers[0]["node_id"], 1);
    for id in 1..=3 {
        let r = row(&report, id);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["broker"], mock.address(id as i32).as_str());
        assert!(r["ready_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["metadata_ms"].is_number(), "{r}");
        assert!(r["failed_step"].is_null(), "{r}");
        let b = broker(&report, &mock.address(id as i32));
        assert_eq!(b["node_id"], id);
        // The full step list ran on each: ApiVersions, then Metadata.
        let statuses: Vec<(&str, &str)> = b["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["step"].as_str().unwrap(), s["status"].as_str().unwrap()))
            .collect();
        for step in ["dns", "tcp", "api_versions", "ready", "metadata"] {
            assert!(statuses.contains(&(step, "ok")), "{step}: {statuses:?}");
        }
    }
    assert_eq!(row(&report, 2)["rack"], "rack-b");
    assert_eq!(broker(&report, &mock.address(2))["bootstrap"], false);

    let out = kconn(&["check", "-b", &first]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "kconn check {} (broker 2, advertised) · PLAINTEXT",
            mock.address(2)
        )),
        "{text}"
    );
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("cluster "))
        .collect();
    assert!(table[0].contains("3 brokers advertised"), "{text}");
    assert!(
        table[1].contains("NODE") && table[1].contains("FAILED STEP"),
        "{text}"
    );
    assert!(
        table[3].contains("rack-b") && table[3].contains("✓ ok"),
        "{text}"
    );
    assert_eq!(
        table.last().copied(),
        Some("✓ every advertised broker (3) is reachable and ready from here"),
        "{text}"
    );
}

#[test]
fn bootstrap_only_checks_the_bootstrap_list_alone() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let (report, code) = json(&["check", "-b", &mock.address(1), "--bootstrap-only"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["brokers"].as_array().unwrap().len(), 1);
    assert!(report["cluster"].is_null(), "{report:#}");
    // --no-metadata learns nothing, so checks nothing more either.
    let (report, code) = json(&["check", "-b", &mock.address(1), "--no-metadata"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["brokers"].as_array().unwrap().len(), 1);
    assert!(report["cluster"].is_null(), "{report:#}");
}

/// Kafka's Metadata lists live brokers only, and so does librdkafka's mock:
/// a broker taken down drops out of the table, and its bootstrap entry fails.
#[test]
fn a_broker_down_drops_out_of_metadata_and_its_bootstrap_entry_fails() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    mock.broker_down(3);
    let all = mock.bootstrap().to_owned();
    let (report, code) = json(&["check", "-b", &all, "--timeout", "3s"]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["ok"], false);
    let rows = report["cluster"]["brokers"].as_array().unwrap();
    let nodes: Vec<i64> = rows
        .iter()
        .map(|r| r["node_id"].as_i64().unwrap())
        .collect();
    assert_eq!(nodes, [1, 2], "{report:#}");
    assert!(rows.iter().all(|r| r["ok"] == true), "{report:#}");
    let down = broker(&report, &mock.address(3));
    assert_eq!(down["bootstrap"], true);
    assert_eq!(down["advertised"], false);
    assert_eq!(down["error"]["kind"], "connection_refused", "{down}");

    let out = kconn(&["check", "-b", &all, "--timeout", "3s"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("✓ every advertised broker (2) is reachable and ready from here"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "✗ bootstrap broker {} failed, and the cluster does not advertise it",
            mock.address(3)
        )),
        "{text}"
    );
    mock.broker_up(3);
    let (report, code) = json(&["check", "-b", &mock.address(1)]);
    assert_eq!(code, Some(0), "back up: {report:#}");
    assert_eq!(report["cluster"]["brokers"].as_array().unwrap().len(), 3);
}

/// A broker advertised at an address that accepts connections but leads
/// nowhere (a load balancer or forwarder whose broker is gone): the
/// forwarder of node 3 points at a closed port.
#[test]
fn an_advertised_broker_that_is_gone_behind_its_address_fails_in_the_table() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let proxy = KafkaProxy::in_front_of(&mock, 3);
    proxy.retarget(3, &closed_port());
    let (report, code) = json(&["check", "-b", &proxy.address(1), "--timeout", "3s"]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(row(&report, 1)["ok"], true);
    assert_eq!(row(&report, 2)["ok"], true);
    let gone = row(&report, 3);
    assert_eq!(gone["ok"], false, "{gone}");
    assert_eq!(gone["failed_step"], "api_versions", "{gone}");
    assert!(gone["ready_ms"].is_null(), "{gone}");
    let out = kconn(&["check", "-b", &proxy.address(1), "--timeout", "3s"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("✗ 1 of 3 advertised brokers failed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("  ✗ broker 3 at {}: ", proxy.address(3))),
        "{text}"
    );
}

#[test]
fn advertised_addresses_nobody_can_reach_say_check_advertised_listeners() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let proxy = KafkaProxy::in_front_of(&mock, 3);
    let closed = closed_port();
    let (host, port) = closed.rsplit_once(':').unwrap();
    proxy.advertise(2, host, port.parse().unwrap());
    proxy.advertise(3, "kafka-conn-broker-3.invalid", 9092);
    let (report, code) = json(&["check", "-b", &proxy.address(1), "--timeout", "3s"]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(row(&report, 1)["ok"], true);

    let refused = row(&report, 2);
    assert_eq!(refused["failed_step"], "tcp", "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "broker 2 advertises {closed}, which is unreachable from here (connection refused by {closed})"
        )),
        "{message}"
    );
    assert!(
        message.contains("if broker 2 is up, check its advertised.listeners"),
        "{message}"
    );
    assert_eq!(
        broker(&report, &closed)["error"]["kind"],
        "connection_refused",
        "the kind stays the cause's"
    );

    let unresolved = row(&report, 3);
    assert_eq!(unresolved["failed_step"], "dns", "{unresolved}");
    let message = unresolved["error"].as_str().unwrap();
    assert!(
        message.starts_with(
            "broker 3 advertises kafka-conn-broker-3.invalid:9092, which does not resolve from here (cannot resolve kafka-conn-broker-3.invalid"
        ),
        "{message}"
    );
    assert!(
        message.contains("check its advertised.listeners"),
        "{message}"
    );

    let out = kconn(&["check", "-b", &proxy.address(1), "--timeout", "3s"]);
    let text = stdout(&out);
    assert!(
        text.contains("✗ 2 of 3 advertised brokers failed"),
        "{text}"
    );
    assert!(
        text.contains("  hint: if brokers 2, 3 are up, check advertised.listeners"),
        "{text}"
    );
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("cluster "))
        .collect();
    let line = |node: &str| {
        table
            .iter()
            .find(|l| l.trim_start().starts_with(node))
            .copied()
            .unwrap_or_else(|| panic!("no row {node}: {text}"))
    };
    assert!(line("2 ").ends_with("TCP connect"), "{text}");
    assert!(line("3 ").ends_with("DNS"), "{text}");
}

#[test]
fn an_advertised_address_leading_to_another_cluster_fails() {
    let (Some(mock), Some(tansu)) = (
        MockCluster::start(3),
        broker_var("KAFKA_PLAINTEXT_BOOTSTRAP"),
    ) else {
        return;
    };
    let proxy = KafkaProxy::in_front_of(&mock, 3);
    // Node 2's advertised address now reaches tansu: another cluster id.
    proxy.retarget(2, &tansu);
    let (report, code) = json(&["check", "-b", &proxy.address(1)]);
    assert_eq!(code, Some(1), "{report:#}");
    let other = row(&report, 2);
    assert_eq!(other["failed_step"], "metadata", "{other}");
    assert!(
        other["error"]
            .as_str()
            .unwrap()
            .contains("the advertised address leads to another cluster"),
        "{other}"
    );
    assert_eq!(
        broker(&report, &proxy.address(2))["error"]["kind"],
        "cluster_mismatch"
    );
}

/// Bootstraps by name (`localhost:PORT`); the broker advertises
/// `127.0.0.1:PORT`, which gets its own check: TLS verified for
/// 127.0.0.1, SASL again.
fn by_name_then_advertised(bootstrap: &str, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let port = bootstrap.rsplit_once(':').unwrap().1;
    let by_name = format!("localhost:{port}");
    let mut args = vec!["check", "-b", &by_name];
    args.extend_from_slice(extra);
    let (report, code) = json_env(&args, env);
    assert_eq!(code, Some(0), "{report:#}");
    let brokers = report["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 2, "{report:#}");
    let advertised = &brokers[1];
    assert_eq!(advertised["broker"], format!("127.0.0.1:{port}"));
    assert_eq!(advertised["bootstrap"], false);
    assert_eq!(advertised["advertised"], true);
    assert_eq!(advertised["ok"], true);
    let rows = report["cluster"]["brokers"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["ok"], true);
    report
}

#[test]
fn tansu_over_tls_mtls_and_sasl_every_advertised_broker_is_checked() {
    let Some([tls, mtls, ca, cert, key]) = broker_vars([
        "KAFKA_TLS_BOOTSTRAP",
        "KAFKA_MTLS_BOOTSTRAP",
        "KAFKA_TLS_CA_FILE",
        "KAFKA_TLS_CLIENT_CERT_FILE",
        "KAFKA_TLS_CLIENT_KEY_FILE",
    ]) else {
        return;
    };
    let r = by_name_then_advertised(&tls, &["--tls-ca", &ca], &[]);
    assert_eq!(r["brokers"][1]["tls"]["server_name"], "127.0.0.1");
    assert_eq!(r["brokers"][0]["tls"]["server_name"], "localhost");
    by_name_then_advertised(
        &mtls,
        &["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key],
        &[],
    );
    let Some([sasl_ssl, user, password, sasl_ca]) = ["KAFKA_SASL_SSL_BOOTSTRAP"]
        .iter()
        .chain(&[
            "KAFKA_SASL_USERNAME",
            "KAFKA_SASL_PASSWORD",
            "KAFKA_SASL_TLS_CA_FILE",
        ])
        .map(|n| sasl_var(n))
        .collect::<Option<Vec<String>>>()
        .and_then(|v| <[String; 4]>::try_from(v).ok())
    else {
        return;
    };
    let r = by_name_then_advertised(
        &sasl_ssl,
        &[
            "--tls-ca",
            &sasl_ca,
            "--sasl-mechanism",
            "SCRAM-SHA-512",
            "--username",
            &user,
        ],
        &[("KCONN_SASL_PASSWORD", &password)],
    );
    assert_eq!(r["brokers"][1]["sasl"]["mechanism"], "SCRAM-SHA-512");
}

#[test]
fn api_versions_lists_every_advertised_broker_and_guesses_releases() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let (report, code) = json(&["api-versions", "-b", &mock.address(1)]);
    assert_eq!(code, Some(0), "{report:#}");
    let brokers = report["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 3, "{report:#}");
    for (i, b) in brokers.iter().enumerate() {
        let id = i as i64 + 1;
        assert_eq!(b["broker"], mock.address(id as i32).as_str());
        assert_eq!(b["node_id"], id);
        assert_eq!(b["advertised"], true);
        assert_eq!(b["bootstrap"], i == 0);
        assert!(b["apis"].as_array().unwrap().len() > 10, "{b}");
        assert!(b["release_guess"].is_null(), "only with --probe-version");
    }
    let out = kconn(&["api-versions", "-b", &mock.address(1)]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "{} (broker 3, advertised) · ApiVersions v",
            mock.address(3)
        )),
        "{text}"
    );
    assert!(text.contains("[usable: "), "{text}");

    let (report, _) = json(&["api-versions", "-b", &mock.address(1), "--bootstrap-only"]);
    assert_eq!(report["brokers"].as_array().unwrap().len(), 1);

    // librdkafka's mock advertises a mix no Apache Kafka release has (its
    // own API versions): the guess says so, with the closest release.
    // (No Apache Kafka broker runs here: the exact guesses are unit tests
    // over the release table.)
    let (report, code) = json(&["api-versions", "-b", &mock.address(1), "--probe-version"]);
    assert_eq!(code, Some(0));
    for b in report["brokers"].as_array().unwrap() {
        let g = &b["release_guess"];
        assert_eq!(g["confidence"], "poor", "{g}");
        assert!(g["matching"].as_u64().unwrap() < g["compared"].as_u64().unwrap());
        assert!(!g["differences"].as_array().unwrap().is_empty(), "{g}");
    }
    let out = kconn(&["api-versions", "-b", &mock.address(1), "--probe-version"]);
    assert!(
        stdout(&out).contains("  release: no Apache Kafka release matches well (the closest is "),
        "{}",
        stdout(&out)
    );
}

/// TLS in front of every node (rustls forwarders with an rcgen
/// certificate for localhost and 127.0.0.1, in front of the Kafka-aware
/// forwarder of a private mock cluster): node 2 is advertised by a name
/// its certificate does not carry (resolved to 127.0.0.1 with
/// `--resolve`), the classic "advertised.listeners vs. the certificate"
/// mismatch. Reachable, but clients refuse it.
#[test]
fn an_advertised_name_the_certificate_does_not_carry_is_named() {
    let Some(mock) = MockCluster::start(3) else {
        return;
    };
    let kafka = KafkaProxy::in_front_of(&mock, 3);
    let pki = TestPki::new(valid_for(365), None, 21);
    let tls: Vec<TlsProxy> = (1..=3)
        .map(|id| TlsProxy::start(&pki, &kafka.address(id)))
        .collect();
    for (i, t) in tls.iter().enumerate() {
        let id = i as i32 + 1;
        let host = if id == 2 {
            "broker-2.test"
        } else {
            "127.0.0.1"
        };
        kafka.advertise(id, host, i32::from(t.addr.port()));
    }
    let dir = TempDir::new("kconn-cluster-tls");
    let ca = dir.file("ca.pem", &pki.ca_pem);
    let resolve = format!("broker-2.test:{}=127.0.0.1", tls[1].addr.port());
    let first = tls[0].addr.to_string();
    let args = [
        "check",
        "-b",
        &first,
        "--tls-ca",
        &ca,
        "--resolve",
        &resolve,
    ];
    let (report, code) = json(&args);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(row(&report, 1)["ok"], true);
    assert_eq!(row(&report, 3)["ok"], true);
    let bad = row(&report, 2);
    assert_eq!(bad["failed_step"], "tls", "{bad}");
    let b = broker(&report, &format!("broker-2.test:{}", tls[1].addr.port()));
    assert_eq!(b["error"]["kind"], "certificate_name_mismatch");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "broker 2 advertises broker-2.test:{}, a name its certificate does not carry",
            tls[1].addr.port()
        )),
        "{message}"
    );
    assert!(
        message
            .contains("add broker-2.test to the certificate's names, or advertise a name it has"),
        "{message}"
    );
    let out = kconn(&args);
    assert!(
        stdout(&out).contains("✗ 1 of 3 advertised brokers failed"),
        "{}",
        stdout(&out)
    );
}
