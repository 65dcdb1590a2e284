//! `kconn check`: connect to each bootstrap broker step by step and explain
//! the first failure.

use crate::output::outln;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use kafka_conn_tokio::{Client, ConnectError, ConnectInfo, Timings};
use kafka_conn_tokio::{Progress, TcpAttempt};
use serde::Serialize;

use crate::cli::{CheckArgs, SecurityProtocol};
use crate::diagnose::{self, Diagnosis, Step};
use crate::envelope::Envelope;
use crate::kafka::{self, MetadataSummary, Probe};
use crate::latency::{human, ms};
use crate::roundtrip::{self, RoundtripReport};
use crate::settings::Settings;
use crate::x509::{self, CertSummary, UtcTime};

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
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
pub(crate) struct StepReport {
    pub(crate) step: Step,
    pub(crate) status: Status,
    /// How long it took, when known.
    pub(crate) ms: Option<f64>,
    /// What it found, one line each.
    pub(crate) detail: Vec<String>,
}

/// A certificate, as far as `check` decodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CertificateReport {
    pub(crate) subject: String,
    pub(crate) issuer: String,
    /// The serial number in hex.
    pub(crate) serial: String,
    pub(crate) not_before: String,
    pub(crate) not_after: String,
    pub(crate) expires_in_days: i64,
    pub(crate) names: Vec<String>,
    /// `not_after` in Unix seconds (for the text).
    #[serde(skip)]
    not_after_unix: i64,
}

impl From<&CertSummary> for CertificateReport {
    fn from(c: &CertSummary) -> Self {
        Self {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            serial: c.serial.clone(),
            not_before: UtcTime(c.not_before).to_string(),
            not_after: UtcTime(c.not_after).to_string(),
            expires_in_days: diagnose::seconds_until(c.not_after).div_euclid(86_400),
            names: c.names(),
            not_after_unix: c.not_after,
        }
    }
}

/// The TLS session (after a failed handshake: the certificate the broker
/// presented, and `null` for what was not negotiated).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TlsReport {
    pub(crate) protocol_version: Option<String>,
    pub(crate) cipher_suite: Option<String>,
    server_name: Option<String>,
    peer_certificates: usize,
    /// The first certificate of the chain (the broker's own).
    certificate: Option<CertificateReport>,
    /// Every certificate the broker presented that kconn could decode,
    /// end entity first.
    pub(crate) chain: Vec<CertificateReport>,
}

/// The ApiVersions exchange.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ApiVersionsReport {
    version: Option<i16>,
    fell_back: bool,
    apis: usize,
}

/// The SASL session.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SaslReport {
    pub(crate) mechanism: String,
    session_lifetime_ms: Option<u128>,
    reauthenticate_after_ms: Option<u128>,
}

/// How long the connection took, step by step (`null`: not done, or not
/// completed before a failure); `total` runs until ready or the failure.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TimingsReport {
    dns: Option<f64>,
    tcp: Option<f64>,
    tls: Option<f64>,
    api_versions: Option<f64>,
    sasl: Option<f64>,
    total: f64,
}

impl From<&Timings> for TimingsReport {
    fn from(t: &Timings) -> Self {
        Self {
            dns: t.resolve.map(ms),
            tcp: t.tcp.map(ms),
            tls: t.tls.map(ms),
            api_versions: t.api_versions.map(ms),
            sasl: t.sasl.map(ms),
            total: ms(t.total),
        }
    }
}

/// The time of a connection step, when it completed.
fn step_time(s: Step, t: &Timings) -> Option<Duration> {
    match s {
        Step::Dns => t.resolve,
        Step::Tcp => t.tcp,
        Step::Tls => t.tls,
        Step::ApiVersions => t.api_versions,
        Step::Sasl => t.sasl,
        Step::Ready | Step::Metadata | Step::Produce | Step::Fetch | Step::Config => None,
    }
}

/// Decodes the certificates of a chain (those that decode; the order kept).
fn decode_chain(chain: &[impl AsRef<[u8]>]) -> Vec<CertSummary> {
    chain
        .iter()
        .filter_map(|der| match x509::parse(der.as_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "certificate not decoded");
                None
            }
        })
        .collect()
}

/// One broker's check.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BrokerReport {
    pub(crate) broker: String,
    pub(crate) ok: bool,
    pub(crate) address: Option<SocketAddr>,
    resolved: Vec<SocketAddr>,
    pub(crate) steps: Vec<StepReport>,
    pub(crate) tls: Option<TlsReport>,
    pub(crate) api_versions: Option<ApiVersionsReport>,
    pub(crate) sasl: Option<SaslReport>,
    pub(crate) metadata: Option<MetadataSummary>,
    timings_ms: Option<TimingsReport>,
    pub(crate) warnings: Vec<String>,
    pub(crate) error: Option<Diagnosis>,
    /// The broker's API ranges (for watch mode: not in the JSON, which
    /// `api-versions` covers).
    #[serde(skip)]
    pub(crate) apis: Vec<(i16, i16, i16)>,
}

/// `check --json`'s own fields.
#[derive(Debug, Serialize)]
struct Extra<'a> {
    security_protocol: SecurityProtocol,
    security_protocol_inferred: bool,
    roundtrip: Option<&'a RoundtripReport>,
}

/// One run of every step against every bootstrap broker.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Each broker's report.
    pub(crate) brokers: Vec<BrokerReport>,
    /// `--roundtrip`'s report.
    pub(crate) roundtrip: Option<RoundtripReport>,
}

impl Outcome {
    /// Whether everything passed.
    pub(crate) fn ok(&self) -> bool {
        self.brokers.iter().all(|b| b.ok) && self.roundtrip.as_ref().is_none_or(|r| r.ok)
    }
}

/// Runs `kconn check`; true when every broker passed.
pub(crate) async fn run(settings: &Settings, args: &CheckArgs) -> bool {
    if let Some(interval) = args.watch {
        return crate::watch::run(settings, args, interval).await;
    }
    if !settings.json {
        print_config(settings);
    }
    let outcome = check_all(settings, args, !settings.json).await;
    let ok = outcome.ok();
    if settings.json {
        print_json(settings, &outcome);
    }
    ok
}

/// The configuration lines, before the text report.
pub(crate) fn print_config(settings: &Settings) {
    if let Some(config) = &settings.config {
        for line in config.lines() {
            outln!("{line}");
        }
        outln!();
    }
}

/// Prints `check --json`'s envelope.
pub(crate) fn print_json(settings: &Settings, outcome: &Outcome) {
    Envelope::new(
        "check",
        Some(settings),
        outcome.ok(),
        outcome.brokers.clone(),
        Extra {
            security_protocol: settings.protocol,
            security_protocol_inferred: settings.protocol_inferred,
            roundtrip: outcome.roundtrip.as_ref(),
        },
    )
    .print();
}

/// Checks every bootstrap broker (and runs the round trip through the
/// first that passes); prints the text report as it goes when `text`.
pub(crate) async fn check_all(settings: &Settings, args: &CheckArgs, text: bool) -> Outcome {
    let mut brokers = Vec::new();
    let mut roundtrip = None;
    for (i, broker) in settings.brokers.iter().enumerate() {
        let wanted = if roundtrip.is_none() {
            args.roundtrip.as_deref().map(|t| (t, args.create_topic))
        } else {
            None
        };
        let (report, rt) = check_broker(settings, broker, args, wanted).await;
        if text {
            if i > 0 {
                outln!();
            }
            print_text(settings, &report, rt.as_ref());
        }
        roundtrip = roundtrip.or(rt);
        brokers.push(report);
    }
    if let (Some(topic), None) = (&args.roundtrip, &roundtrip) {
        // No broker passed: the round trip could not start.
        let mut r = RoundtripReport::not_run(topic);
        r.error = Some(Diagnosis::custom(
            Step::Produce,
            "not_run",
            "no bootstrap broker passed its check, so the round trip did not start",
        ));
        if text {
            outln!("✗ round trip to {topic}: not run (no bootstrap broker passed)");
        }
        roundtrip = Some(r);
    }
    Outcome { brokers, roundtrip }
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

async fn check_broker(
    settings: &Settings,
    broker: &str,
    args: &CheckArgs,
    roundtrip: Option<(&str, bool)>,
) -> (BrokerReport, Option<RoundtripReport>) {
    let metadata = !args.no_metadata;
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
        apis: Vec::new(),
    };
    tracing::info!(broker, protocol = %settings.protocol, "checking");
    let client = match settings.connect(broker).await {
        Ok(client) => client,
        Err(e) => {
            connect_failed(&mut report, settings, broker, &e, args.cert_warn_days);
            return (report, None);
        }
    };
    let chain = client
        .info()
        .tls
        .as_ref()
        .map(|t| decode_chain(&t.peer_certificates))
        .unwrap_or_default();
    report.apis = client
        .api_versions()
        .iter()
        .map(|r| (r.api_key.0, r.min, r.max))
        .collect();
    report.ok = true;
    connected_steps(
        &mut report,
        settings,
        broker,
        &client,
        &chain,
        args.cert_warn_days,
    );
    let certificate = chain.first().cloned();
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
    let rt = match roundtrip {
        Some((topic, create)) if report.ok => {
            Some(roundtrip::run(settings, &client, topic, create).await)
        }
        _ => None,
    };
    client.close();
    // The close is local and immediate; do not let a stuck socket hold the report.
    let _ = tokio::time::timeout(settings.timeout, client.closed()).await;
    (report, rt)
}

/// Reports a failed connect: the certificate the broker presented, if
/// the failure is about it, then the steps.
fn connect_failed(
    report: &mut BrokerReport,
    settings: &Settings,
    broker: &str,
    e: &ConnectError,
    warn_days: u32,
) {
    let presented = settings.presented(e);
    let chain = decode_chain(&presented);
    let certificate = chain.first().cloned();
    let mut diagnosis =
        diagnose::connect_error(e, &settings.diagnosis_context(certificate.clone()));
    // A refused chain with an expired (or not yet valid) certificate:
    // say which one, whatever its place in the chain.
    if let Some(mut expired) = crate::certs::check(&chain, warn_days, diagnose::now_unix()).error {
        expired.detail = diagnosis.detail.clone();
        expired.retriable = diagnosis.retriable;
        diagnosis = expired;
    }
    if !presented.is_empty() {
        report.tls = Some(TlsReport {
            protocol_version: None,
            cipher_suite: None,
            server_name: match e {
                ConnectError::NameMismatch { server_name, .. } => Some(server_name.clone()),
                _ => None,
            },
            peer_certificates: presented.len(),
            certificate: certificate.as_ref().map(CertificateReport::from),
            chain: chain.iter().map(CertificateReport::from).collect(),
        });
    }
    fail(report, settings, broker, diagnosis, e);
}

/// Fills the steps of a failed connection: those before the failed step
/// passed, with the times the driver measured; the failed step gets the
/// rest of the time until the failure.
fn fail(
    report: &mut BrokerReport,
    settings: &Settings,
    broker: &str,
    diagnosis: Diagnosis,
    e: &ConnectError,
) {
    let progress = e.progress();
    if let Some(p) = progress {
        report.address = p.address;
        report.resolved.clone_from(&p.resolved);
        report.timings_ms = Some(TimingsReport::from(&p.timings));
    }
    let timings = progress.map(|p| p.timings).unwrap_or_default();
    let mut before = Duration::ZERO;
    for s in Step::ALL {
        let skipped = skipped_reason(settings, s);
        let r = if s < diagnosis.step {
            match skipped {
                Some(why) => step(s, Status::Skipped, None, vec![why]),
                // Failed before any step (a TLS file that cannot be
                // read): nothing before it ran.
                None if progress.is_none() => step(s, Status::NotRun, None, Vec::new()),
                None => {
                    let took = step_time(s, &timings);
                    before += took.unwrap_or_default();
                    step(
                        s,
                        Status::Ok,
                        took.map(ms),
                        passed_detail(s, broker, progress),
                    )
                }
            }
        } else if s == diagnosis.step {
            let mut detail = vec![diagnosis.detail.clone()];
            if let (Step::Tcp, Some(p)) = (s, progress) {
                if p.failed_attempts.len() > 1 {
                    detail.extend(p.failed_attempts.iter().map(attempt_line));
                }
            }
            if let (Step::Tls, Some(tls)) = (s, &report.tls) {
                for c in &tls.chain {
                    detail.extend(certificate_lines(c));
                }
            }
            let took = progress.map(|_| timings.total.saturating_sub(before));
            step(s, Status::Failed, took.map(ms), detail)
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

/// One failed TCP attempt, for the list under a failed TCP step.
fn attempt_line(a: &TcpAttempt) -> String {
    format!("{}: {} (after {})", a.addr, a.reason, human(a.took))
}

/// What a step that passed before a failure found.
fn passed_detail(s: Step, broker: &str, progress: Option<&Progress>) -> Vec<String> {
    let host = host_of(broker);
    match (s, progress) {
        (Step::Dns, _) if host.parse::<IpAddr>().is_ok() => {
            vec![format!("{host} is an IP address: no lookup")]
        }
        (Step::Dns, Some(p)) => vec![resolved_line(host, &p.resolved)],
        (Step::Dns, None) => vec![format!("{host} resolved")],
        (Step::Tcp, Some(p)) => tcp_lines(
            p.address
                .map_or_else(|| broker.to_owned(), |a| a.to_string()),
            &p.failed_attempts,
        ),
        (Step::Tcp, None) => vec![format!("connected to {broker}")],
        (Step::ApiVersions, _) => vec!["negotiated".to_owned()],
        _ => Vec::new(),
    }
}

fn resolved_line(host: &str, resolved: &[SocketAddr]) -> String {
    let list: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
    format!("{host} → {}", list.join(", "))
}

fn tcp_lines(connected: String, failed_first: &[TcpAttempt]) -> Vec<String> {
    let mut lines = vec![format!("connected to {connected}")];
    for a in failed_first {
        lines.push(format!(
            "{} failed first: {} (after {})",
            a.addr,
            a.reason,
            human(a.took)
        ));
    }
    lines
}

fn certificate_lines(c: &CertificateReport) -> Vec<String> {
    let mut lines = vec![format!(
        "certificate: {} (issued by {})",
        c.subject, c.issuer
    )];
    let days = c.expires_in_days;
    let when = if days < 0 {
        // Whole days since, as the expiry error counts them.
        let ago = (diagnose::now_unix() - c.not_after_unix).div_euclid(86_400);
        format!("EXPIRED {ago} day{} ago", if ago == 1 { "" } else { "s" })
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
    chain: &[CertSummary],
    warn_days: u32,
) {
    let info: &ConnectInfo = client.info();
    let t = info.timings;
    report.address = Some(info.address);
    report.resolved = info.resolved.clone();
    report.timings_ms = Some(TimingsReport::from(&t));

    let host = host_of(broker);
    let dns = if host.parse::<IpAddr>().is_ok() {
        format!("{host} is an IP address: no lookup")
    } else {
        resolved_line(host, &info.resolved)
    };
    report
        .steps
        .push(step(Step::Dns, Status::Ok, t.resolve.map(ms), vec![dns]));
    let tcp = tcp_lines(info.address.to_string(), &info.failed_attempts);
    report
        .steps
        .push(step(Step::Tcp, Status::Ok, t.tcp.map(ms), tcp));

    match &info.tls {
        Some(tls) => {
            let reports: Vec<CertificateReport> =
                chain.iter().map(CertificateReport::from).collect();
            let mut lines = vec![format!(
                "{}, {}, certificate verified for {}",
                tls.protocol_version, tls.cipher_suite, tls.server_name
            )];
            for c in &reports {
                lines.extend(certificate_lines(c));
            }
            if reports.len() < tls.peer_certificates.len() {
                lines.push(format!(
                    "{} of {} certificate(s) presented not decoded",
                    tls.peer_certificates.len() - reports.len(),
                    tls.peer_certificates.len()
                ));
            }
            let findings = crate::certs::check(chain, warn_days, diagnose::now_unix());
            report.warnings.extend(findings.warnings);
            let status = match findings.error {
                // Accepted (the configuration switched verification off),
                // but expired all the same: an error, with the same detail.
                Some(d) => {
                    report.ok = false;
                    report.error = Some(d);
                    Status::Failed
                }
                None => Status::Ok,
            };
            report.tls = Some(TlsReport {
                protocol_version: Some(tls.protocol_version.clone()),
                cipher_suite: Some(tls.cipher_suite.clone()),
                server_name: Some(tls.server_name.clone()),
                peer_certificates: tls.peer_certificates.len(),
                certificate: reports.first().cloned(),
                chain: reports,
            });
            report
                .steps
                .push(step(Step::Tls, status, t.tls.map(ms), lines));
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
    report.steps.push(step(
        Step::ApiVersions,
        Status::Ok,
        t.api_versions.map(ms),
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
            report
                .steps
                .push(step(Step::Sasl, Status::Ok, t.sasl.map(ms), vec![line]));
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
            report.error.get_or_insert(d);
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
            report.error.get_or_insert(d);
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

pub(crate) fn print_text(settings: &Settings, r: &BrokerReport, rt: Option<&RoundtripReport>) {
    outln!(
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
        outln!(
            "  {mark} {:<width$}  {time:>9}  {}",
            s.step.label(),
            detail.next().map_or("", String::as_str)
        );
        for line in detail {
            outln!("    {:<width$}  {:>9}  {line}", "", "");
        }
    }
    if let Some(rt) = rt {
        for line in rt.lines() {
            outln!("{line}");
        }
    }
    for w in &r.warnings {
        outln!("  ⚠ {w}");
    }
    match &r.error {
        Some(d) => outln!("✗ {}", d.line()),
        None => outln!(
            "✓ {} is ready for {} clients",
            r.address.map_or(r.broker.clone(), |a| a.to_string()),
            settings.protocol
        ),
    }
    if let Some(rt) = rt {
        match &rt.error {
            Some(d) => outln!("✗ round trip: {}", d.line()),
            None => outln!("✓ round trip: {}", rt.summary()),
        }
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
