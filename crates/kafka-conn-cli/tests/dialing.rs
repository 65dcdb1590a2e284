//! Dialing options of the built binary against the real broker and real
//! proxies (microsocks, dante, tinyproxy from `scripts/broker-up`): the
//! Happy Eyeballs race shown address by address (a silent address, made
//! with a listener whose accept queue is full, raced against tansu through
//! `--resolve`), the address family, and every proxy outcome with the
//! proxy step named.

mod common;

use common::*;
use kafka_conn_testsuite::fake::FullBacklog;

/// A proxy variable, or `None` (skipped) when the proxies are missing.
fn proxy_var(name: &str) -> Option<String> {
    if let Some(reason) = var("KAFKA_CONN_PROXY_SKIP_REASON") {
        eprintln!("SKIPPED: proxies unavailable: {reason}");
        return None;
    }
    broker_var(name)
}

/// Each attempt: address, started (ms), took (ms), outcome.
fn attempts(report: &Value) -> Vec<(String, f64, f64, String)> {
    report["brokers"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap().to_owned(),
                a["started_ms"].as_f64().unwrap(),
                a["ms"].as_f64().unwrap(),
                a["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_live_address_wins_the_race_and_check_shows_every_attempt() {
    let Some(live) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let Some(silent) = FullBacklog::start() else {
        eprintln!("SKIPPED: a connect to a full backlog does not hang on this system");
        return;
    };
    let port = live.rsplit_once(':').unwrap().1;
    let name = format!("broker.test:{port}");
    let resolve = format!("{name}={},{live}", silent.addr());
    for (delay, at_least, below) in [(None, 250.0, 10_000.0), (Some("50ms"), 50.0, 250.0)] {
        let mut args = vec![
            "check",
            "-b",
            &name,
            "--resolve",
            &resolve,
            "--bootstrap-only",
        ];
        if let Some(d) = delay {
            args.extend(["--attempt-delay", d]);
        }
        let (report, code) = json(&args);
        assert_eq!(code, Some(0), "{report:#}");
        let a = attempts(&report);
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(a[0].0, silent.addr().to_string());
        assert_eq!(a[0].3, "cancelled", "{a:?}");
        assert_eq!(
            (a[1].0.as_str(), a[1].3.as_str()),
            (live.as_str(), "connected")
        );
        // The live address started one attempt delay after the silent one
        // and won long before the 10 s connect timeout.
        assert!(a[1].1 >= at_least && a[1].1 < below, "{a:?}");
        assert!(a[0].2 < 10_000.0, "{a:?}");
    }
    let out = kconn(&[
        "check",
        "-b",
        &name,
        "--resolve",
        &resolve,
        "--bootstrap-only",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "connected to {live}: won the race of 2 addresses (Happy Eyeballs)"
        )),
        "{text}"
    );
    let line = |addr: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(addr))
            .unwrap_or_else(|| panic!("no line for {addr}: {text}"))
            .to_owned()
    };
    assert!(
        line(&silent.addr().to_string()).contains("started +0"),
        "{text}"
    );
    assert!(
        line(&silent.addr().to_string()).contains(&format!("cancelled: {live} connected first")),
        "{text}"
    );
    assert!(line(&live).contains("connected after"), "{text}");
}

#[test]
fn the_address_family_filters_and_orders_the_addresses() {
    let Some(live) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let port = live.rsplit_once(':').unwrap().1;
    let name = format!("broker.test:{port}");
    // ::1 has no broker here: an IPv6-first race would try it first.
    let resolve = format!("{name}=::1,127.0.0.1");
    let (report, code) = json(&[
        "check",
        "-b",
        &name,
        "--resolve",
        &resolve,
        "--prefer-family",
        "v4",
        "--bootstrap-only",
    ]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(attempts(&report)[0].0, live, "IPv4 first");
    let (report, code) = json(&[
        "check",
        "-b",
        &name,
        "--resolve",
        &format!("{name}=127.0.0.1"),
        "--address-family",
        "v6",
        "--bootstrap-only",
    ]);
    assert_eq!(code, Some(1), "{report:#}");
    let e = &report["brokers"][0]["error"];
    assert_eq!(e["step"], "dns", "{e}");
    assert_eq!(e["kind"], "no_address_of_family", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("use --address-family any"),
        "{e}"
    );
}

/// `check` through a proxy given by `--proxy` or `KCONN_PROXY`; returns the
/// report and exit status.
fn through(proxy_url: &str, broker: &str, extra: &[&str]) -> (Value, Option<i32>) {
    let mut args = vec!["check", "-b", broker, "--timeout", "5s"];
    args.extend_from_slice(extra);
    json_env(&args, &[("KCONN_PROXY", proxy_url)])
}

fn step_of<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["brokers"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step: {report:#}"))
}

#[test]
fn socks5_and_http_proxies_carry_plaintext_and_tls_with_the_proxy_step() {
    let (Some([plain, tls, ca]), Some(socks), Some(socks_auth), Some(user), Some(password)) = (
        broker_vars([
            "KAFKA_PLAINTEXT_BOOTSTRAP",
            "KAFKA_TLS_BOOTSTRAP",
            "KAFKA_TLS_CA_FILE",
        ]),
        proxy_var("KAFKA_CONN_SOCKS5_PROXY"),
        proxy_var("KAFKA_CONN_SOCKS5_AUTH_PROXY"),
        proxy_var("KAFKA_CONN_SOCKS5_AUTH_USER"),
        proxy_var("KAFKA_CONN_SOCKS5_AUTH_PASSWORD"),
    ) else {
        return;
    };
    let (Some(http), Some(http_auth)) = (
        proxy_var("KAFKA_CONN_HTTP_PROXY"),
        proxy_var("KAFKA_CONN_HTTP_AUTH_PROXY"),
    ) else {
        return;
    };
    let tls_by_name = format!("localhost:{}", tls.rsplit_once(':').unwrap().1);
    let cases = [
        (format!("socks5://{socks}"), plain.clone(), vec![]),
        (
            format!("socks5h://{user}:{password}@{socks_auth}"),
            tls_by_name.clone(),
            vec!["--tls-ca", &ca],
        ),
        (
            format!("http://{http}"),
            tls_by_name.clone(),
            vec!["--tls-ca", &ca],
        ),
        (
            format!("http://{user}:{password}@{http_auth}"),
            plain.clone(),
            vec![],
        ),
    ];
    for (url, broker, extra) in &cases {
        let (report, code) = through(url, broker, extra);
        assert_eq!(code, Some(0), "{url}: {report:#}");
        let proxy = &report["brokers"][0]["proxy"];
        assert!(
            proxy["proxy"].as_str().unwrap().ends_with(
                url.rsplit_once('@')
                    .map_or(url.split_once("://").unwrap().1, |(_, a)| a)
            ),
            "{proxy}"
        );
        assert!(!proxy.to_string().contains(&password), "{proxy}");
        assert_eq!(step_of(&report, "proxy")["status"], "ok");
        // The TCP attempts are the proxy's.
        let proxy_addr = url
            .rsplit_once('@')
            .map_or(url.split_once("://").unwrap().1, |(_, a)| a);
        assert_eq!(attempts(&report)[0].0, proxy_addr, "{report:#}");
        // Every broker, bootstrap and advertised, went through the proxy.
        for b in report["brokers"].as_array().unwrap() {
            assert!(!b["proxy"].is_null(), "{b}");
        }
    }
    let out = kconn_env(
        &["check", "-b", &plain],
        &[(
            "KCONN_PROXY",
            &format!("socks5://{user}:{password}@{socks_auth}"),
        )],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("  ✓ proxy "), "{text}");
    assert!(
        text.contains(&format!(
            "tunnel through socks5://{user}:***@{socks_auth} to {plain}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "✓ {plain} is ready for PLAINTEXT clients (through socks5://{user}:***@{socks_auth})"
        )),
        "{text}"
    );
    assert!(!text.contains(&password), "{text}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&password));
    // Not in the logs either, at the most verbose level, given as a flag.
    let out = kconn(&[
        "check",
        "-b",
        &plain,
        "-vvv",
        "--proxy",
        &format!("socks5://{user}:{password}@{socks_auth}"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(&password));
    }
}

#[test]
fn proxy_failures_name_the_proxy_step_and_what_to_do() {
    let Some(plain) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let vars = [
        "KAFKA_CONN_SOCKS5_AUTH_PROXY",
        "KAFKA_CONN_SOCKS5_AUTH_USER",
        "KAFKA_CONN_SOCKS5_DENY_PROXY",
        "KAFKA_CONN_HTTP_AUTH_PROXY",
        "KAFKA_CONN_HTTP_DENY_PROXY",
    ];
    let Some([socks_auth, user, socks_deny, http_auth, http_deny]) = vars
        .iter()
        .map(|v| proxy_var(v))
        .collect::<Option<Vec<_>>>()
        .and_then(|v| <[String; 5]>::try_from(v).ok())
    else {
        return;
    };
    let down = closed_port();
    let cases = [
        (
            format!("socks5://{down}"),
            "tcp",
            "proxy_unreachable",
            "is the proxy up",
        ),
        (
            format!("socks5://{socks_auth}"),
            "proxy",
            "proxy_authentication_required",
            "KCONN_PROXY=socks5://USER:PASSWORD@HOST:PORT",
        ),
        (
            format!("socks5://{user}:wrong-password@{socks_auth}"),
            "proxy",
            "proxy_authentication_failed",
            "check the username and password",
        ),
        (
            format!("socks5://{socks_deny}"),
            "proxy",
            "proxy_refused",
            "the proxy's rules forbid this broker",
        ),
        (
            format!("http://{http_auth}"),
            "proxy",
            "proxy_authentication_required",
            "KCONN_PROXY=http://USER:PASSWORD@HOST:PORT",
        ),
        (
            format!("http://{user}:wrong-password@{http_auth}"),
            "proxy",
            "proxy_authentication_failed",
            "check the username and password",
        ),
        (
            format!("http://{http_deny}"),
            "proxy",
            "proxy_refused",
            "the proxy's rules forbid this broker",
        ),
    ];
    for (url, step, kind, advice) in &cases {
        let (report, code) = through(url, &plain, &[]);
        assert_eq!(code, Some(1), "{url}: {report:#}");
        let e = &report["brokers"][0]["error"];
        assert_eq!(
            (e["step"].as_str(), e["kind"].as_str()),
            (Some(*step), Some(*kind)),
            "{url}: {e}"
        );
        let message = e["message"].as_str().unwrap();
        assert!(message.contains(advice), "{url}: {message}");
        assert!(!message.contains("wrong-password"), "{message}");
        if *step == "proxy" {
            assert_eq!(step_of(&report, "proxy")["status"], "failed");
            assert_eq!(step_of(&report, "tcp")["status"], "ok");
        }
    }
}
