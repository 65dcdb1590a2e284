//! `kconn check --watch INTERVAL`: check again and again, and print only
//! what changed (a broker going away or coming back, a failure changing,
//! a certificate rotated, TLS or SASL settling on something else, API
//! versions or advertised brokers changing, a certificate entering its
//! warning window), each with a timestamp, until SIGINT or SIGTERM.
//!
//! Text: the first check in full, then one line per change. `--json`: one
//! JSON document per line: a `baseline` event, a `change` event per
//! change, and a `stopped` event at the end. The exit status is that of
//! the last check (0 all passed, 1 something failed).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::check::{self, BrokerReport, Outcome};
use crate::cli::CheckArgs;
use crate::diagnose::now_unix;
use crate::envelope::SCHEMA_VERSION;
use crate::output::outln;
use crate::settings::Settings;
use crate::x509::rfc3339;

/// What is compared between two checks of one broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct BrokerState {
    ok: bool,
    /// The failure: kind and one line.
    error: Option<(String, String)>,
    tls: Option<String>,
    /// The presented chain: subject, serial, not-after of each.
    chain: Vec<(String, String, String)>,
    sasl: Option<String>,
    apis: BTreeMap<i16, (i16, i16)>,
    advertised: Vec<String>,
    warnings: Vec<String>,
}

impl BrokerState {
    fn of(r: &BrokerReport) -> Self {
        Self {
            ok: r.ok,
            error: r.error.as_ref().map(|d| (d.kind.to_owned(), d.line())),
            tls: r.tls.as_ref().and_then(|t| {
                Some(format!(
                    "{}, {}",
                    t.protocol_version.as_deref()?,
                    t.cipher_suite.as_deref()?
                ))
            }),
            chain: r.tls.as_ref().map_or_else(Vec::new, |t| {
                t.chain
                    .iter()
                    .map(|c| (c.subject.clone(), c.serial.clone(), c.not_after.clone()))
                    .collect()
            }),
            sasl: r.sasl.as_ref().map(|s| s.mechanism.clone()),
            apis: r
                .apis
                .iter()
                .map(|&(k, min, max)| (k, (min, max)))
                .collect(),
            // What the cluster advertises, once: from the bootstrap brokers
            // (the advertised ones' own answers would repeat it).
            advertised: r
                .metadata
                .as_ref()
                .filter(|_| r.bootstrap)
                .map_or_else(Vec::new, |m| {
                    m.brokers
                        .iter()
                        .map(|b| format!("{} at {}:{}", b.node_id, b.host, b.port))
                        .collect()
                }),
            warnings: r.warnings.clone(),
        }
    }
}

/// One change between two checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Change {
    /// The broker (`host:port` as given), or `null` for the round trip.
    broker: Option<String>,
    /// What changed: `reachability`, `error`, `certificate`, `tls`,
    /// `sasl`, `api_versions`, `advertised_brokers`, `warning`,
    /// `roundtrip`, `broker_added` (the cluster advertises a broker it did
    /// not before), `broker_removed` (no longer advertised).
    change: &'static str,
    /// Whether this broker (or the round trip) passes now.
    #[serde(rename = "broker_ok")]
    ok: bool,
    /// The change in words.
    message: String,
    /// Before and after, as text (`null` when there was nothing).
    before: Option<String>,
    after: Option<String>,
}

fn chain_text(chain: &[(String, String, String)]) -> Option<String> {
    (!chain.is_empty()).then(|| {
        chain
            .iter()
            .map(|(subject, serial, until)| format!("{subject} (serial {serial}, until {until})"))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The changes of one broker from `a` to `b`.
fn diff(broker: &str, a: &BrokerState, b: &BrokerState) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |change, message: String, before: Option<String>, after: Option<String>| {
        out.push(Change {
            broker: Some(broker.to_owned()),
            change,
            ok: b.ok,
            message,
            before,
            after,
        });
    };
    let line = |s: &BrokerState| s.error.as_ref().map(|(_, l)| l.clone());
    match (a.ok, b.ok) {
        (true, false) => push(
            "reachability",
            format!("went away: {}", line(b).unwrap_or_default()),
            Some("ok".into()),
            line(b),
        ),
        (false, true) => push(
            "reachability",
            "is back: every step passes".into(),
            line(a),
            Some("ok".into()),
        ),
        (false, false) if a.error.as_ref().map(|e| &e.0) != b.error.as_ref().map(|e| &e.0) => push(
            "error",
            format!("fails differently now: {}", line(b).unwrap_or_default()),
            line(a),
            line(b),
        ),
        _ => {}
    }
    // A failed check knows nothing of what follows the failure: compare
    // the rest only when both checks got that far.
    if !a.chain.is_empty() && !b.chain.is_empty() && a.chain != b.chain {
        push(
            "certificate",
            format!(
                "certificate rotated: now {}",
                chain_text(&b.chain).unwrap_or_default()
            ),
            chain_text(&a.chain),
            chain_text(&b.chain),
        );
    }
    if a.tls.is_some() && b.tls.is_some() && a.tls != b.tls {
        push(
            "tls",
            format!("TLS now {}", b.tls.clone().unwrap_or_default()),
            a.tls.clone(),
            b.tls.clone(),
        );
    }
    if a.sasl.is_some() && b.sasl != a.sasl {
        push(
            "sasl",
            match &b.sasl {
                Some(m) => format!("now authenticates with {m}"),
                None => format!(
                    "{} no longer authenticates{}",
                    a.sasl.clone().unwrap_or_default(),
                    line(b).map_or(String::new(), |l| format!(": {l}"))
                ),
            },
            a.sasl.clone(),
            b.sasl.clone(),
        );
    }
    if !a.apis.is_empty() && !b.apis.is_empty() && a.apis != b.apis {
        let name = |k: i16| {
            kafka_conn_tokio::core::ApiKey(k)
                .name()
                .map_or_else(|| format!("key {k}"), str::to_owned)
        };
        let range = |r: Option<&(i16, i16)>| r.map(|(min, max)| format!("v{min}-{max}"));
        let keys: std::collections::BTreeSet<i16> =
            a.apis.keys().chain(b.apis.keys()).copied().collect();
        for k in keys {
            let (before, after) = (range(a.apis.get(&k)), range(b.apis.get(&k)));
            if before != after {
                let message = match (&before, &after) {
                    (Some(x), Some(y)) => format!("{} {x} → {y}", name(k)),
                    (None, Some(y)) => format!("{} {y} is new", name(k)),
                    (Some(x), None) => format!("{} {x} is gone", name(k)),
                    (None, None) => continue,
                };
                push("api_versions", message, before, after);
            }
        }
    }
    if !a.advertised.is_empty() && !b.advertised.is_empty() && a.advertised != b.advertised {
        push(
            "advertised_brokers",
            format!("the cluster now advertises {}", b.advertised.join(", ")),
            Some(a.advertised.join(", ")),
            Some(b.advertised.join(", ")),
        );
    }
    // A failed check stops before most warnings: compare them between
    // checks that both passed.
    if a.ok && b.ok {
        for w in b.warnings.iter().filter(|w| !a.warnings.contains(w)) {
            push("warning", format!("⚠ {w}"), None, Some(w.clone()));
        }
    }
    out
}

/// Every change from one run to the next.
fn changes(before: &Outcome, after: &Outcome) -> Vec<Change> {
    let mut out = Vec::new();
    // Brokers by `host:port`: the advertised ones come and go with the
    // cluster's Metadata.
    for b in &after.brokers {
        match before.brokers.iter().find(|a| a.broker == b.broker) {
            Some(a) => out.extend(diff(&b.broker, &BrokerState::of(a), &BrokerState::of(b))),
            None => out.push(Change {
                broker: Some(b.broker.clone()),
                change: "broker_added",
                ok: b.ok,
                message: format!(
                    "{} is advertised now{}",
                    who(b),
                    match &b.error {
                        None => ": every step passes".to_owned(),
                        Some(d) => format!(", and fails: {}", d.line()),
                    }
                ),
                before: None,
                after: Some(
                    b.error
                        .as_ref()
                        .map_or_else(|| "ok".to_owned(), crate::diagnose::Diagnosis::line),
                ),
            }),
        }
    }
    for a in &before.brokers {
        if !after.brokers.iter().any(|b| b.broker == a.broker) {
            out.push(Change {
                broker: Some(a.broker.clone()),
                change: "broker_removed",
                ok: true,
                message: format!("{} is no longer advertised", who(a)),
                before: Some(if a.ok {
                    "ok".to_owned()
                } else {
                    "failed".to_owned()
                }),
                after: None,
            });
        }
    }
    if let (Some(a), Some(b)) = (&before.roundtrip, &after.roundtrip) {
        if a.ok != b.ok {
            let line = |r: &crate::roundtrip::RoundtripReport| {
                r.error
                    .as_ref()
                    .map_or_else(|| "ok".to_owned(), crate::diagnose::Diagnosis::line)
            };
            out.push(Change {
                broker: None,
                change: "roundtrip",
                ok: b.ok,
                message: if b.ok {
                    "the round trip passes again".into()
                } else {
                    format!("the round trip fails: {}", line(b))
                },
                before: Some(line(a)),
                after: Some(line(b)),
            });
        }
    }
    out
}

/// How a broker came to be checked, for `broker_added` and `broker_removed`.
fn who(r: &BrokerReport) -> String {
    r.node_id
        .map_or_else(|| "the broker".to_owned(), |id| format!("broker {id}"))
}

/// A watch-mode JSON line.
#[derive(Debug, Serialize)]
struct Event<'a> {
    schema: u32,
    command: &'static str,
    /// `baseline`, `change` or `stopped`.
    event: &'static str,
    /// When, RFC 3339 UTC.
    time: String,
    /// Whether everything passes (now).
    ok: bool,
    /// `baseline`: each broker's state in brief.
    #[serde(skip_serializing_if = "Option::is_none")]
    brokers: Option<Vec<BaselineBroker<'a>>>,
    /// `change`: what changed.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    change: Option<&'a Change>,
    /// `stopped`: the signal, and how many checks ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<u64>,
}

/// A broker in the `baseline` event.
#[derive(Debug, Serialize)]
struct BaselineBroker<'a> {
    broker: &'a str,
    ok: bool,
    error: Option<&'a crate::diagnose::Diagnosis>,
    warnings: &'a [String],
}

impl<'a> Event<'a> {
    fn new(event: &'static str, ok: bool) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            command: "check",
            event,
            time: rfc3339(now_unix()),
            ok,
            brokers: None,
            change: None,
            signal: None,
            checks: None,
        }
    }
}

/// Waits for SIGINT or SIGTERM; returns the signal's name.
async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            // Cannot listen: never report a signal (the default action applies).
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(_) => std::future::pending().await,
        }
    }
}

/// Runs `check --watch`; true when the last check passed.
pub(crate) async fn run(settings: &Settings, args: &CheckArgs, interval: Duration) -> bool {
    let stop = interrupted();
    tokio::pin!(stop);
    let text = !settings.json;
    if text {
        check::print_config(settings);
    }
    let mut last = tokio::select! {
        o = check::check_all(settings, args, text, None) => o,
        signal = &mut stop => return stopped(settings, signal, 0, None),
    };
    let mut checks = 1;
    if text {
        outln!();
        outln!(
            "{} watching every {} (Ctrl-C to stop): only changes are printed",
            rfc3339(now_unix()),
            crate::latency::human(interval)
        );
    } else {
        let mut e = Event::new("baseline", last.ok());
        e.brokers = Some(
            last.brokers
                .iter()
                .map(|b| BaselineBroker {
                    broker: &b.broker,
                    ok: b.ok,
                    error: b.error.as_ref(),
                    warnings: &b.warnings,
                })
                .collect(),
        );
        crate::print_json_line(&e);
    }
    loop {
        let next = tokio::select! {
            o = async {
                tokio::time::sleep(interval).await;
                check::check_all(settings, args, false, last.cluster.as_ref()).await
            } => o,
            signal = &mut stop => return stopped(settings, signal, checks, Some(&last)),
        };
        checks += 1;
        for c in changes(&last, &next) {
            if text {
                outln!(
                    "{} {} {} {}",
                    rfc3339(now_unix()),
                    c.broker.as_deref().unwrap_or("round trip"),
                    if c.ok { "✓" } else { "✗" },
                    c.message
                );
            } else {
                let mut e = Event::new("change", next.ok());
                e.change = Some(&c);
                crate::print_json_line(&e);
            }
        }
        last = next;
    }
}

fn stopped(settings: &Settings, signal: &'static str, checks: u64, last: Option<&Outcome>) -> bool {
    let ok = last.is_some_and(Outcome::ok);
    if settings.json {
        let mut e = Event::new("stopped", ok);
        e.signal = Some(signal);
        e.checks = Some(checks);
        crate::print_json_line(&e);
    } else {
        outln!(
            "{} stopped by {signal} after {checks} check{}; the last one {}",
            rfc3339(now_unix()),
            if checks == 1 { "" } else { "s" },
            if ok { "passed" } else { "failed" }
        );
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> BrokerState {
        BrokerState {
            ok: true,
            error: None,
            tls: Some("TLSv1_3, TLS13_AES_256_GCM_SHA384".into()),
            chain: vec![("CN=b".into(), "01".into(), "2030-01-01 00:00:00 UTC".into())],
            sasl: Some("SCRAM-SHA-512".into()),
            apis: [(0, (0, 9)), (18, (0, 3))].into_iter().collect(),
            advertised: vec!["1 at b:9092".into()],
            warnings: Vec::new(),
        }
    }

    fn kinds(changes: &[Change]) -> Vec<&str> {
        changes.iter().map(|c| c.change).collect()
    }

    #[test]
    fn nothing_changed_prints_nothing() {
        assert!(diff("b:9092", &state(), &state()).is_empty());
    }

    #[test]
    fn a_broker_going_away_and_coming_back() {
        let down = BrokerState {
            ok: false,
            error: Some((
                "connection_refused".into(),
                "connection refused by b:9092".into(),
            )),
            ..BrokerState::default()
        };
        let c = diff("b:9092", &state(), &down);
        assert_eq!(kinds(&c), ["reachability", "sasl"]);
        assert_eq!(c[0].message, "went away: connection refused by b:9092");
        assert!(!c[0].ok);
        let mut warned = state();
        warned
            .warnings
            .push("the cluster does not advertise b:9092".into());
        let c = diff("b:9092", &down, &warned);
        assert_eq!(
            kinds(&c),
            ["reachability"],
            "no warning news after a failure"
        );
        assert!(c[0].ok);
        let other = BrokerState {
            error: Some(("tcp_timeout".into(), "no TCP answer".into())),
            ..down.clone()
        };
        assert_eq!(kinds(&diff("b:9092", &down, &other)), ["error"]);
    }

    fn outcome(brokers: &[(&str, i32, bool)]) -> Outcome {
        Outcome {
            brokers: brokers
                .iter()
                .map(|&(b, id, ok)| {
                    let mut r = BrokerReport::new(b);
                    r.ok = ok;
                    r.advertised = true;
                    r.node_id = Some(id);
                    r
                })
                .collect(),
            roundtrip: None,
            cluster: None,
        }
    }

    #[test]
    fn brokers_are_matched_by_address_and_come_and_go() {
        let before = outcome(&[("a:1", 1, true), ("b:2", 2, true)]);
        let after = outcome(&[("a:1", 1, true), ("c:3", 3, true)]);
        let c = changes(&before, &after);
        assert_eq!(kinds(&c), ["broker_added", "broker_removed"]);
        assert_eq!(c[0].broker.as_deref(), Some("c:3"));
        assert_eq!(
            c[0].message,
            "broker 3 is advertised now: every step passes"
        );
        assert_eq!(c[1].broker.as_deref(), Some("b:2"));
        assert_eq!(c[1].message, "broker 2 is no longer advertised");
        // Order does not matter; a broker failing is reachability, not removal.
        let after = outcome(&[("b:2", 2, false), ("a:1", 1, true)]);
        let c = changes(&before, &after);
        assert_eq!(kinds(&c), ["reachability"]);
        assert_eq!(c[0].broker.as_deref(), Some("b:2"));
    }

    #[test]
    fn rotation_versions_mechanisms_and_warnings() {
        let mut b = state();
        b.chain[0].1 = "02".into();
        b.apis.insert(0, (0, 10));
        b.apis.remove(&18);
        b.warnings.push("expires soon".into());
        let c = diff("b:9092", &state(), &b);
        assert_eq!(
            kinds(&c),
            ["certificate", "api_versions", "api_versions", "warning"]
        );
        assert!(c[0].message.contains("serial 02"), "{}", c[0].message);
        assert_eq!(c[1].message, "Produce v0-9 → v0-10");
        assert_eq!(c[2].message, "ApiVersions v0-3 is gone");
        let mut m = state();
        m.ok = false;
        m.sasl = None;
        m.error = Some((
            "mechanism_not_enabled".into(),
            "mechanism SCRAM-SHA-512 is not enabled".into(),
        ));
        let c = diff("b:9092", &state(), &m);
        assert_eq!(kinds(&c), ["reachability", "sasl"]);
        assert!(
            c[1].message
                .starts_with("SCRAM-SHA-512 no longer authenticates: mechanism"),
            "{}",
            c[1].message
        );
    }
}
