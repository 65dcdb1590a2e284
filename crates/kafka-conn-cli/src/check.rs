//! `kconn check`: connect to each bootstrap broker step by step and explain
//! the first failure.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use kafka_conn_tokio::{Client, ConnectInfo};
use serde::Serialize;

use crate::cli::{CheckArgs, SecurityProtocol};
use crate::diagnose::{self, Diagnosis, Step};
use crate::kafka::{self, MetadataSummary, Probe};
use crate::latency::{human, ms};
use crate::settings::Settings;
use crate::x509::{self, CertSummary, UtcTime};

/// Certificates closer than this to their expiry get a warning.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    /// Done.
    Ok,
    /// Failed: the diagnosis says why.
    Failed,
    /// Not part of this security protocol (TLS, SASL) or not asked for.
    Skipped,
    /// Not reached because an earlier step failed.
    NotRun,
}

/// One step of one broker's check.
#[derive(Debug, Clone, Serialize)]
struct StepReport {
    step: Step,
    status: Status,
    /// How long it took, when known.
    ms: Option<f64>,
    /// What it found, one line each.
    detail: Vec<String>,
}

/// The broker's certificate, as far as `check` decodes it.
#[derive(Debug, Clone, Serialize)]
struct CertificateReport {
    subject: String,
    issuer: String,
    not_before: String,
    not_after: String,
    expires_in_days: i64,
    names: Vec<String>,
}

impl From<&CertSummary> for CertificateReport {
    fn from(c: &CertSummary) -> Self {
        Self {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            not_before: UtcTime(c.not_before).to_string(),
            not_after: UtcTime(c.not_after).to_string(),
            expires_in_days: diagnose::seconds_until(c.not_after).div_euclid(86_400),
            names: c.names(),
        }
    }
}

/// The TLS session.
#[derive(Debug, Clone, Serialize)]
struct TlsReport {
    protocol_version: String,
    cipher_suite: String,
    server_name: String,
    peer_certificates: usize,
    certificate: Option<CertificateReport>,
}

/// The ApiVersions exchange.
#[derive(Debug, Clone, Serialize)]
struct ApiVersionsReport {
    version: Option<i16>,
    fell_back: bool,
    apis: usize,
}

/// The SASL session.
#[derive(Debug, Clone, Serialize)]
struct SaslReport {
    mechanism: String,
    session_lifetime_ms: Option<u128>,
    reauthenticate_after_ms: Option<u128>,
}

/// How long the connection took, step by step.
#[derive(Debug, Clone, Serialize)]
struct TimingsReport {
    dns: f64,
    tcp: f64,
    tls: Option<f64>,
    handshake: f64,
    total: f64,
}

/// One broker's check.
#[derive(Debug, Clone, Serialize)]
struct BrokerReport {
    broker: String,
    ok: bool,
    address: Option<SocketAddr>,
    resolved: Vec<SocketAddr>,
    steps: Vec<StepReport>,
    tls: Option<TlsReport>,
    api_versions: Option<ApiVersionsReport>,
    sasl: Option<SaslReport>,
    metadata: Option<MetadataSummary>,
    timings_ms: Option<TimingsReport>,
    warnings: Vec<String>,
    error: Option<Diagnosis>,
}

/// The whole `check --json` output.
#[derive(Debug, Serialize)]
struct Report {
    command: &'static str,
    ok: bool,
    security_protocol: SecurityProtocol,
    security_protocol_inferred: bool,
    brokers: Vec<BrokerReport>,
}

/// Runs `kconn check`; true when every broker passed.
pub(crate) async fn run(settings: &Settings, args: &CheckArgs) -> bool {
    let mut brokers = Vec::new();
    for (i, broker) in settings.brokers.iter().enumerate() {
        let report = check_broker(settings, broker, !args.no_metadata).await;
        if !settings.json {
            if i > 0 {
                println!();
            }
            print_text(settings, &report);
        }
        brokers.push(report);
    }
    let ok = brokers.iter().all(|b| b.ok);
    if settings.json {
        let report = Report {
            command: "check",
            ok,
            security_protocol: settings.protocol,
            security_protocol_inferred: settings.protocol_inferred,
            brokers,
        };
        crate::print_json(&report);
    }
    ok
}

/// The host part of `host:port`, for deciding whether DNS is involved.
fn host_of(broker: &str) -> &str {
    let host = broker.rsplit_once(':').map_or(broker, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn step(step: Step, status: Status, ms: Option<f64>, detail: Vec<String>) -> StepReport {
    StepReport {
        step,
        status,
        ms,
        detail,
    }
}

async fn check_broker(settings: &Settings, broker: &str, metadata: bool) -> BrokerReport {
    let mut report = BrokerReport {
        broker: broker.to_owned(),
        ok: false,
        address: None,
        resolved: Vec::new(),
        steps: Vec::new(),
        tls: None,
        api_versions: None,
        sasl: None,
        metadata: None,
        timings_ms: None,
        warnings: Vec::new(),
        error: None,
    };
    let start = Instant::now();
    let (config, capture) = match settings.connect_config() {
        Ok(c) => c,
        Err(e) => {
            fail(&mut report, settings, broker, diagnose::tls_setup(&e), None);
            return report;
        }
    };
    tracing::info!(broker, protocol = %settings.protocol, "checking");
    let connected = kafka_conn_tokio::connect(broker, config).await;
    let elapsed = start.elapsed();
    let certificate = capture
        .certificates()
        .first()
        .and_then(|der| match x509::parse(der) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "certificate not decoded");
                None
            }
        });
    let client = match connected {
        Ok(client) => client,
        Err(e) => {
            let diagnosis =
                diagnose::connect_error(&e, &settings.diagnosis_context(certificate.clone()));
            if let Some(c) = &certificate {
                report.tls = Some(TlsReport {
                    protocol_version: String::new(),
                    cipher_suite: String::new(),
                    server_name: String::new(),
                    peer_certificates: capture.certificates().len(),
                    certificate: Some(c.into()),
                });
            }
            fail(&mut report, settings, broker, diagnosis, Some(elapsed));
            return report;
        }
    };
    connected_steps(&mut report, settings, broker, &client, certificate.as_ref());
    report.ok = true;
    if metadata {
        metadata_step(&mut report, settings, &client, certificate).await;
    } else {
        report.steps.push(step(
            Step::Metadata,
            Status::Skipped,
            None,
            vec!["not asked for (--no-metadata)".into()],
        ));
    }
    client.close();
    // The close is local and immediate; do not let a stuck socket hold the report.
    let _ = tokio::time::timeout(settings.timeout, client.closed()).await;
    report
}

/// Fills the steps of a failed connection: those before the failed step
/// passed (without timings: the driver reports them only on success).
fn fail(
    report: &mut BrokerReport,
    settings: &Settings,
    broker: &str,
    diagnosis: Diagnosis,
    elapsed: Option<Duration>,
) {
    for s in Step::ALL {
        let skipped = skipped_reason(settings, s);
        let r = if s < diagnosis.step {
            match skipped {
                Some(why) => step(s, Status::Skipped, None, vec![why]),
                None => step(s, Status::Ok, None, passed_detail(s, broker)),
            }
        } else if s == diagnosis.step {
            let mut detail = vec![diagnosis.detail.clone()];
            if let (
                Step::Tls,
                Some(TlsReport {
                    certificate: Some(c),
                    ..
                }),
            ) = (s, &report.tls)
            {
                detail.extend(certificate_lines(c));
            }
            step(s, Status::Failed, elapsed.map(ms), detail)
        } else {
            match skipped {
                Some(why) => step(s, Status::Skipped, None, vec![why]),
                None => step(s, Status::NotRun, None, Vec::new()),
            }
        };
        report.steps.push(r);
    }
    report.ok = false;
    report.error = Some(diagnosis);
}

fn skipped_reason(settings: &Settings, s: Step) -> Option<String> {
    match s {
        Step::Tls if !settings.protocol.tls() => Some(format!("not used ({})", settings.protocol)),
        Step::Sasl if !settings.protocol.sasl() => {
            Some(format!("not used ({})", settings.protocol))
        }
        _ => None,
    }
}

fn passed_detail(s: Step, broker: &str) -> Vec<String> {
    match s {
        Step::Dns if host_of(broker).parse::<IpAddr>().is_ok() => {
            vec![format!("{} is an IP address: no lookup", host_of(broker))]
        }
        Step::Dns => vec![format!("{} resolved", host_of(broker))],
        Step::Tcp => vec![format!("connected to {broker}")],
        Step::ApiVersions => vec!["negotiated".to_owned()],
        _ => Vec::new(),
    }
}

fn certificate_lines(c: &CertificateReport) -> Vec<String> {
    let mut lines = vec![format!(
        "certificate: {} (issued by {})",
        c.subject, c.issuer
    )];
    let days = c.expires_in_days;
    let when = if days < 0 {
        format!("EXPIRED {} days ago", -days)
    } else {
        format!("in {days} days")
    };
    lines.push(format!("valid until {} ({when})", c.not_after));
    if !c.names.is_empty() {
        lines.push(format!("names: {}", c.names.join(", ")));
    }
    lines
}

fn connected_steps(
    report: &mut BrokerReport,
    settings: &Settings,
    broker: &str,
    client: &Client,
    certificate: Option<&CertSummary>,
) {
    let info: &ConnectInfo = client.info();
    let t = info.timings;
    report.address = Some(info.address);
    report.resolved = info.resolved.clone();
    report.timings_ms = Some(TimingsReport {
        dns: ms(t.resolve),
        tcp: ms(t.tcp),
        tls: t.tls.map(ms),
        handshake: ms(t.handshake),
        total: ms(t.total),
    });

    let host = host_of(broker);
    let (dns_time, dns) = if host.parse::<IpAddr>().is_ok() {
        (None, vec![format!("{host} is an IP address: no lookup")])
    } else {
        let list: Vec<String> = info.resolved.iter().map(|a| a.ip().to_string()).collect();
        (
            Some(ms(t.resolve)),
            vec![format!("{host} → {}", list.join(", "))],
        )
    };
    report
        .steps
        .push(step(Step::Dns, Status::Ok, dns_time, dns));

    let mut tcp = vec![format!("connected to {}", info.address)];
    for (addr, why) in &info.failed_attempts {
        tcp.push(format!("{addr} failed first: {why}"));
    }
    report
        .steps
        .push(step(Step::Tcp, Status::Ok, Some(ms(t.tcp)), tcp));

    match &info.tls {
        Some(tls) => {
            let cert = certificate.map(CertificateReport::from);
            let mut lines = vec![format!(
                "{}, {}, certificate verified for {}",
                tls.protocol_version, tls.cipher_suite, tls.server_name
            )];
            match &cert {
                Some(c) => {
                    lines.extend(certificate_lines(c));
                    let left = diagnose::seconds_until(certificate.map_or(0, |c| c.not_after));
                    if left < EXPIRY_WARNING.as_secs() as i64 {
                        report.warnings.push(format!(
                            "the broker's certificate expires on {} (in {} days)",
                            c.not_after, c.expires_in_days
                        ));
                    }
                }
                None => lines.push(format!(
                    "{} certificate(s) presented (not decoded)",
                    tls.peer_certificates
                )),
            }
            report.tls = Some(TlsReport {
                protocol_version: tls.protocol_version.clone(),
                cipher_suite: tls.cipher_suite.clone(),
                server_name: tls.server_name.clone(),
                peer_certificates: tls.peer_certificates,
                certificate: cert,
            });
            report
                .steps
                .push(step(Step::Tls, Status::Ok, t.tls.map(ms), lines));
        }
        None => report.steps.push(step(
            Step::Tls,
            Status::Skipped,
            None,
            vec![format!("not used ({})", settings.protocol)],
        )),
    }

    let versions = &info.api_versions;
    let version_text = match versions.negotiated_with {
        Some(v) => format!(
            "v{v}{}, {} APIs",
            if versions.fell_back {
                " (after falling back from a higher version the broker refused)"
            } else {
                " (no fallback)"
            },
            versions.len()
        ),
        None => format!("not negotiated (version hint), {} APIs", versions.len()),
    };
    report.api_versions = Some(ApiVersionsReport {
        version: versions.negotiated_with,
        fell_back: versions.fell_back,
        apis: versions.len(),
    });
    // The driver times ApiVersions and SASL together (the Kafka handshake).
    let sasl_on = info.sasl.is_some();
    report.steps.push(step(
        Step::ApiVersions,
        Status::Ok,
        (!sasl_on).then(|| ms(t.handshake)),
        vec![version_text],
    ));

    match &info.sasl {
        Some(s) => {
            let mut line = format!("authenticated with {}", s.mechanism);
            match s.session_lifetime {
                Some(life) => {
                    line.push_str(&format!(", session lifetime {}", human(life)));
                    if let Some(after) = s.reauthenticate_after {
                        line.push_str(&format!(" (re-authenticates after {})", human(after)));
                    }
                }
                None => line.push_str(", no session lifetime (no re-authentication)"),
            }
            report.sasl = Some(SaslReport {
                mechanism: s.mechanism.clone(),
                session_lifetime_ms: s.session_lifetime.map(|d| d.as_millis()),
                reauthenticate_after_ms: s.reauthenticate_after.map(|d| d.as_millis()),
            });
            report.steps.push(step(
                Step::Sasl,
                Status::Ok,
                Some(ms(t.handshake)),
                vec![line, "time includes ApiVersions".to_owned()],
            ));
        }
        None => report.steps.push(step(
            Step::Sasl,
            Status::Skipped,
            None,
            vec![format!("not used ({})", settings.protocol)],
        )),
    }
    report.steps.push(step(
        Step::Ready,
        Status::Ok,
        Some(ms(t.total)),
        vec!["total time to a usable connection".to_owned()],
    ));
}

async fn metadata_step(
    report: &mut BrokerReport,
    settings: &Settings,
    client: &Client,
    certificate: Option<CertSummary>,
) {
    let request = match Probe::Metadata.request(client) {
        Ok(r) => r,
        Err(e) => {
            report.steps.push(step(
                Step::Metadata,
                Status::Skipped,
                None,
                vec![e.to_string()],
            ));
            return;
        }
    };
    let version = request.api_version();
    let start = Instant::now();
    let response = client.send(request).await;
    let took = start.elapsed();
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            let d = diagnose::request_failure(
                &e,
                kafka_conn_tokio::core::ApiKey::METADATA,
                &settings.diagnosis_context(certificate),
            );
            report.steps.push(step(
                Step::Metadata,
                Status::Failed,
                Some(ms(took)),
                vec![d.detail.clone()],
            ));
            report.ok = false;
            report.error = Some(d);
            return;
        }
    };
    let summary = match kafka::decode_metadata(&response.body, version) {
        Ok(s) => s,
        Err(e) => {
            let d = Diagnosis {
                step: Step::Metadata,
                kind: "malformed_metadata",
                problem: format!("cannot decode the Metadata v{version} response: {e}"),
                advice: Some(
                    "the broker is not speaking Kafka's Metadata format: report it".into(),
                ),
                detail: e.to_string(),
                retriable: false,
            };
            report.steps.push(step(
                Step::Metadata,
                Status::Failed,
                Some(ms(took)),
                vec![d.problem.clone()],
            ));
            report.ok = false;
            report.error = Some(d);
            return;
        }
    };
    let mut lines = vec![format!(
        "v{version}: cluster {}, {} broker{}, controller {}",
        summary.cluster_id.as_deref().unwrap_or("(no id)"),
        summary.brokers.len(),
        if summary.brokers.len() == 1 { "" } else { "s" },
        summary
            .controller_id
            .map_or("unknown".to_owned(), |id| id.to_string()),
    )];
    for b in &summary.brokers {
        lines.push(format!(
            "broker {} at {}:{}{}",
            b.node_id,
            b.host,
            b.port,
            b.rack
                .as_ref()
                .map_or(String::new(), |r| format!(" (rack {r})"))
        ));
    }
    report
        .warnings
        .extend(advertised_warnings(&summary, client.info().address, settings.timeout).await);
    report
        .steps
        .push(step(Step::Metadata, Status::Ok, Some(ms(took)), lines));
    report.metadata = Some(summary);
}

/// Problems with what the cluster advertises: names that do not resolve
/// from here, and a bootstrap address the cluster does not list (clients
/// connect to the advertised addresses after bootstrapping).
async fn advertised_warnings(
    summary: &MetadataSummary,
    connected: SocketAddr,
    timeout: Duration,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut listed = false;
    for b in &summary.brokers {
        let Ok(port) = u16::try_from(b.port) else {
            warnings.push(format!(
                "broker {} advertises an invalid port {}",
                b.node_id, b.port
            ));
            continue;
        };
        let lookup =
            tokio::time::timeout(timeout, tokio::net::lookup_host((b.host.as_str(), port))).await;
        match lookup {
            Ok(Ok(addrs)) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                listed |= addrs.contains(&connected);
            }
            Ok(Err(e)) => warnings.push(format!(
                "broker {} advertises {}:{}, which does not resolve from here ({e}): clients will fail after bootstrapping (check advertised.listeners)",
                b.node_id, b.host, b.port
            )),
            Err(_) => warnings.push(format!(
                "broker {} advertises {}:{}, which did not resolve within {}",
                b.node_id, b.host, b.port, human(timeout)
            )),
        }
    }
    if !listed && !summary.brokers.is_empty() && warnings.is_empty() {
        warnings.push(format!(
            "the cluster does not advertise {connected}, the address kconn connected to: clients will use the advertised addresses after bootstrapping (check advertised.listeners if they are not reachable from here)"
        ));
    }
    warnings
}

fn print_text(settings: &Settings, r: &BrokerReport) {
    println!(
        "kconn check {} · {} · timeout {}",
        r.broker,
        settings.protocol,
        human(settings.timeout)
    );
    let width = Step::ALL.iter().map(|s| s.label().len()).max().unwrap_or(0);
    for s in &r.steps {
        let mark = match s.status {
            Status::Ok => "✓",
            Status::Failed => "✗",
            Status::Skipped => "·",
            Status::NotRun => " ",
        };
        if s.status == Status::NotRun {
            continue;
        }
        let time = s.ms.map_or(String::new(), crate::latency::human_ms);
        let mut detail = s.detail.iter();
        println!(
            "  {mark} {:<width$}  {time:>9}  {}",
            s.step.label(),
            detail.next().map_or("", String::as_str)
        );
        for line in detail {
            println!("    {:<width$}  {:>9}  {line}", "", "");
        }
    }
    for w in &r.warnings {
        println!("  ⚠ {w}");
    }
    match &r.error {
        Some(d) => println!("✗ {}", d.line()),
        None => println!(
            "✓ {} is ready for {} clients",
            r.address.map_or(r.broker.clone(), |a| a.to_string()),
            settings.protocol
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_split_from_ports() {
        assert_eq!(host_of("localhost:9092"), "localhost");
        assert_eq!(host_of("[::1]:9092"), "::1");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unresolvable_advertised_host_is_a_warning() {
        let summary = MetadataSummary {
            brokers: vec![kafka::AdvertisedBroker {
                node_id: 1,
                host: "kconn-test-host.invalid".into(),
                port: 9092,
                rack: None,
            }],
            cluster_id: None,
            controller_id: Some(1),
        };
        let w = advertised_warnings(
            &summary,
            "127.0.0.1:9092".parse().unwrap(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("does not resolve"), "{w:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_bootstrap_address_that_is_not_advertised_is_a_warning() {
        let summary = MetadataSummary {
            brokers: vec![kafka::AdvertisedBroker {
                node_id: 1,
                host: "127.0.0.1".into(),
                port: 9093,
                rack: None,
            }],
            cluster_id: None,
            controller_id: Some(1),
        };
        let at = "127.0.0.1:9092".parse().unwrap();
        let w = advertised_warnings(&summary, at, Duration::from_secs(5)).await;
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("does not advertise 127.0.0.1:9092"), "{w:?}");
        let listed = MetadataSummary {
            brokers: vec![kafka::AdvertisedBroker {
                node_id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
            }],
            ..summary
        };
        assert!(advertised_warnings(&listed, at, Duration::from_secs(5))
            .await
            .is_empty());
    }
}
