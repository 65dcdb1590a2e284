//! `kconn check --roundtrip TOPIC`: one record produced and fetched back,
//! against tansu and the librdkafka mock cluster (whose partition leaders
//! are spread over three brokers, so the record goes to another broker
//! than the bootstrap one).

mod common;

use common::*;

/// A topic name no other run uses.
fn topic(prefix: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{prefix}-{}-{}", std::process::id(), now.as_nanos())
}

fn roundtrip_ok(report: &Value) {
    let rt = &report["roundtrip"];
    assert_eq!(rt["ok"], true, "{report:#}");
    let steps = rt["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{rt}");
    assert_eq!(
        (steps[0]["step"].as_str(), steps[0]["ok"].as_bool()),
        (Some("produce"), Some(true))
    );
    assert_eq!(
        (steps[1]["step"].as_str(), steps[1]["ok"].as_bool()),
        (Some("fetch"), Some(true))
    );
    assert!(rt["offset"].as_i64().unwrap() >= 0, "{rt}");
}

#[test]
fn tansu_without_the_topic_says_so_and_creates_nothing() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let t = topic("kconn-absent");
    for _ in 0..2 {
        let (report, code) = json(&["check", "-b", &bs, "--roundtrip", &t]);
        assert_eq!(code, Some(1), "{report:#}");
        // The broker itself passed; the round trip did not.
        assert_eq!(report["brokers"][0]["ok"], true);
        let e = &report["roundtrip"]["error"];
        assert_eq!(e["kind"], "topic_not_found", "{e}");
        assert!(
            e["message"].as_str().unwrap().contains("--create-topic"),
            "{e}"
        );
    }
    let out = kconn(&["check", "-b", &bs, "--roundtrip", &t]);
    let text = stdout(&out);
    assert!(
        // The round trip's verdict ends the bootstrap broker's report
        // (the table of advertised brokers follows).
        text.lines()
            .any(|l| l.starts_with(&format!("✗ round trip: topic {t} does not exist"))),
        "{text}"
    );
}

#[test]
fn tansu_with_create_topic_then_again_on_the_existing_topic() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let t = topic("kconn-rt");
    let (report, code) = json(&["check", "-b", &bs, "--roundtrip", &t, "--create-topic"]);
    assert_eq!(code, Some(0), "{report:#}");
    roundtrip_ok(&report);
    assert_eq!(report["roundtrip"]["created"], true);
    assert_eq!(report["roundtrip"]["offset"], 0);
    // The topic exists now: no flag needed, and the next record follows.
    let out = kconn(&["check", "-b", &bs, "--roundtrip", &t]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("✓ Produce"), "{text}");
    assert!(text.contains("✓ Fetch"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("✓ round trip: 1 record produced to {t}-0"))),
        "{text}"
    );
    assert!(text.contains("at offset 1"), "{text}");
}

#[test]
fn the_mock_cluster_creates_the_topic_on_request_and_the_leader_is_found() {
    let Some(mock) = broker_var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    let first = mock.split(',').next().unwrap();
    let t = topic("kconn-mock-rt");
    let (report, code) = json(&["check", "-b", first, "--roundtrip", &t]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["roundtrip"]["error"]["kind"], "topic_not_found");
    let (report, code) = json(&["check", "-b", first, "--roundtrip", &t, "--create-topic"]);
    assert_eq!(code, Some(0), "{report:#}");
    roundtrip_ok(&report);
    // The leader is one of the cluster's brokers, at its advertised address.
    let leader = report["roundtrip"]["leader"].as_str().unwrap();
    let advertised: Vec<String> = report["brokers"][0]["metadata"]["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| format!("{}:{}", b["host"].as_str().unwrap(), b["port"]))
        .collect();
    assert!(
        advertised.iter().any(|a| a == leader),
        "{leader} not in {advertised:?}"
    );
}

#[test]
fn a_round_trip_with_every_bootstrap_broker_down_is_not_run() {
    let closed = closed_port();
    let (report, code) = json(&["check", "-b", &closed, "--roundtrip", "t"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        report["roundtrip"]["error"]["kind"], "not_run",
        "{report:#}"
    );
}

#[test]
fn create_topic_needs_roundtrip() {
    let out = kconn(&["check", "-b", "h:1", "--create-topic"]);
    assert_eq!(out.status.code(), Some(2));
}
