//! `kconn check`: connect to each bootstrap broker step by step, then to
//! every broker the cluster advertises in its Metadata (what clients
//! connect to after bootstrapping), and explain the first failure of each.

use crate::output::outln;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use kafka_conn_tokio::{AttemptOutcome, Progress, ProxyInfo, TcpAttempt};
use kafka_conn_tokio::{Client, ConnectError, ConnectInfo, Timings};
use serde::Serialize;

use crate::cli::{CheckArgs, SecurityProtocol};
use crate::diagnose::{self, Diagnosis, Step};
use crate::envelope::Envelope;
use crate::kafka::{self, AdvertisedBroker, MetadataSummary, Probe};
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
        Step::Proxy => t.proxy,
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
    /// Every TCP attempt of the Happy Eyeballs race (RFC 8305), in the
    /// order started; to the proxy when there is one.
    attempts: Vec<AttemptReport>,
    /// The proxy's tunnel, when connected through one.
    proxy: Option<ProxyReport>,
    /// Whether kconn checked it because it is in the bootstrap list.
    pub(crate) bootstrap: bool,
    /// Whether the cluster advertises it (at exactly this `host:port`).
    pub(crate) advertised: bool,
    /// Its node id, when the cluster advertises it.
    pub(crate) node_id: Option<i32>,
    /// Its rack, when the cluster advertises it with one.
    pub(crate) rack: Option<String>,
    /// The broker's API ranges (for watch mode: not in the JSON, which
    /// `api-versions` covers).
    #[serde(skip)]
    pub(crate) apis: Vec<(i16, i16, i16)>,
}

impl BrokerReport {
    /// A report of `broker` with nothing done yet.
    pub(crate) fn new(broker: &str) -> Self {
        Self {
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
            attempts: Vec::new(),
            proxy: None,
            bootstrap: false,
            advertised: false,
            node_id: None,
            rack: None,
            apis: Vec::new(),
        }
    }

    /// The step that failed, if one did.
    pub(crate) fn failed_step(&self) -> Option<Step> {
        self.error.as_ref().map(|d| d.step)
    }

    /// How long a step took, when it ran.
    fn step_ms(&self, s: Step) -> Option<f64> {
        self.steps
            .iter()
            .find(|r| r.step == s && r.status == Status::Ok)
            .and_then(|r| r.ms)
    }
}

/// One TCP connect attempt.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AttemptReport {
    address: SocketAddr,
    /// When it started, from the first attempt's start.
    started_ms: f64,
    /// How long it ran.
    ms: f64,
    /// `connected`, `refused`, `timed_out`, `failed` or `cancelled`.
    outcome: &'static str,
    /// In words.
    reason: String,
}

impl From<&TcpAttempt> for AttemptReport {
    fn from(a: &TcpAttempt) -> Self {
        Self {
            address: a.addr,
            started_ms: ms(a.started),
            ms: ms(a.took),
            outcome: match a.outcome {
                AttemptOutcome::Connected => "connected",
                AttemptOutcome::Refused => "refused",
                AttemptOutcome::TimedOut => "timed_out",
                AttemptOutcome::Cancelled => "cancelled",
                _ => "failed",
            },
            reason: a.reason.clone(),
        }
    }
}

/// The tunnel through a proxy.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProxyReport {
    /// The proxy's URL, the password masked.
    proxy: String,
    /// What the proxy was asked to connect to.
    target: String,
    /// The proxy's side of the tunnel, when it said.
    bound: Option<String>,
    /// The proxy's handshake.
    ms: Option<f64>,
}

/// One broker the cluster advertises, and how its check went: a row of
/// the per-broker table.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterBroker {
    /// Its node id.
    pub(crate) node_id: i32,
    /// The advertised host.
    pub(crate) host: String,
    /// The advertised port.
    pub(crate) port: i32,
    /// Its rack.
    pub(crate) rack: Option<String>,
    /// `host:port`: the `broker` of its report in `brokers`.
    pub(crate) broker: String,
    /// Whether every step passed.
    pub(crate) ok: bool,
    /// The time to a ready connection.
    pub(crate) ready_ms: Option<f64>,
    /// The Metadata round trip.
    pub(crate) metadata_ms: Option<f64>,
    /// The step that failed.
    pub(crate) failed_step: Option<Step>,
    /// The failure, one line.
    pub(crate) error: Option<String>,
    /// The failure without the advice (the table's text).
    #[serde(skip)]
    problem: Option<String>,
}

/// Marks a cluster learned by an earlier check.
const REMEMBERED: &str = ", remembered from an earlier check";

/// What the cluster advertises, and whether each advertised broker passed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterReport {
    /// The bootstrap broker whose Metadata listed the brokers.
    pub(crate) from: String,
    /// The cluster id (Metadata v2+).
    pub(crate) cluster_id: Option<String>,
    /// The controller's node id.
    pub(crate) controller_id: Option<i32>,
    /// Every advertised broker, by node id.
    pub(crate) brokers: Vec<ClusterBroker>,
}

impl ClusterReport {
    /// What this report's Metadata said, to check its brokers again when
    /// no bootstrap broker answers (watch mode).
    fn remembered(&self) -> (String, MetadataSummary) {
        let from = if self.from.ends_with(REMEMBERED) {
            self.from.clone()
        } else {
            format!("{}{REMEMBERED}", self.from)
        };
        let summary = MetadataSummary {
            brokers: self
                .brokers
                .iter()
                .map(|b| AdvertisedBroker {
                    node_id: b.node_id,
                    host: b.host.clone(),
                    port: b.port,
                    rack: b.rack.clone(),
                })
                .collect(),
            cluster_id: self.cluster_id.clone(),
            controller_id: self.controller_id,
        };
        (from, summary)
    }

    /// How many advertised brokers failed.
    fn failed(&self) -> usize {
        self.brokers.iter().filter(|b| !b.ok).count()
    }
}

/// `check --json`'s own fields.
#[derive(Debug, Serialize)]
struct Extra<'a> {
    security_protocol: SecurityProtocol,
    security_protocol_inferred: bool,
    roundtrip: Option<&'a RoundtripReport>,
    /// Every advertised broker's result (`null` with `--bootstrap-only`,
    /// `--no-metadata`, or when no bootstrap broker answered Metadata).
    cluster: Option<&'a ClusterReport>,
}

/// One run of every step against every bootstrap broker.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Each broker's report.
    pub(crate) brokers: Vec<BrokerReport>,
    /// `--roundtrip`'s report.
    pub(crate) roundtrip: Option<RoundtripReport>,
    /// What the cluster advertises, each broker checked.
    pub(crate) cluster: Option<ClusterReport>,
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
    let outcome = check_all(settings, args, !settings.json, None).await;
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
            cluster: outcome.cluster.as_ref(),
        },
    )
    .print();
}

/// Why kconn checks a broker.
#[derive(Debug, Clone, Copy)]
enum Role<'a> {
    /// It is in the bootstrap list; `resolve_advertised`: look up the
    /// advertised names after Metadata (when they are not checked one by one).
    Bootstrap { resolve_advertised: bool },
    /// The cluster advertises it.
    Advertised(&'a AdvertisedBroker),
}

/// Checks every bootstrap broker (and runs the round trip through the
/// first that passes), then every broker the cluster advertises that is
/// not one of them (unless `--bootstrap-only` or `--no-metadata`); prints
/// the text report as it goes when `text`.
///
/// `remembered`: the cluster a previous check learned (watch mode), whose
/// brokers are checked when no bootstrap broker answers Metadata now, so
/// that a bootstrap broker going away does not hide the others.
pub(crate) async fn check_all(
    settings: &Settings,
    args: &CheckArgs,
    text: bool,
    remembered: Option<&ClusterReport>,
) -> Outcome {
    let every_broker = !args.bootstrap_only && !args.no_metadata;
    let mut brokers = Vec::new();
    let mut roundtrip = None;
    for (i, broker) in settings.brokers.iter().enumerate() {
        let wanted = if roundtrip.is_none() {
            args.roundtrip.as_deref().map(|t| (t, args.create_topic))
        } else {
            None
        };
        let role = Role::Bootstrap {
            resolve_advertised: !every_broker,
        };
        let (report, rt) = check_broker(settings, broker, args, role, wanted).await;
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
    let cluster = if every_broker {
        check_advertised(settings, args, &mut brokers, text, remembered).await
    } else {
        None
    };
    Outcome {
        brokers,
        roundtrip,
        cluster,
    }
}

/// `host:port` of an advertised broker, as a client would dial it (an
/// IPv6 literal in brackets).
pub(crate) fn advertised_address(b: &AdvertisedBroker) -> String {
    if b.host.contains(':') && !b.host.starts_with('[') {
        format!("[{}]:{}", b.host, b.port)
    } else {
        format!("{}:{}", b.host, b.port)
    }
}

/// Checks every broker the first Metadata answer advertises (those at a
/// bootstrap address already checked are not checked twice) and prints
/// the per-broker table.
async fn check_advertised(
    settings: &Settings,
    args: &CheckArgs,
    brokers: &mut Vec<BrokerReport>,
    text: bool,
    remembered: Option<&ClusterReport>,
) -> Option<ClusterReport> {
    let (from, summary) = brokers
        .iter()
        .find_map(|r| Some((r.broker.clone(), r.metadata.clone()?)))
        .or_else(|| remembered.map(ClusterReport::remembered))?;
    let mut advertised = summary.brokers.clone();
    advertised.sort_by_key(|b| b.node_id);
    let mut rows = Vec::new();
    for b in &advertised {
        let address = advertised_address(b);
        let known = brokers
            .iter()
            .position(|r| r.broker.eq_ignore_ascii_case(&address));
        let index = match known {
            Some(i) => i,
            None => {
                let (report, _) =
                    check_broker(settings, &address, args, Role::Advertised(b), None).await;
                if text {
                    outln!();
                    print_text(settings, &report, None);
                }
                brokers.push(report);
                brokers.len() - 1
            }
        };
        let report = &mut brokers[index];
        report.advertised = true;
        report.node_id = Some(b.node_id);
        report.rack.clone_from(&b.rack);
        if let (Some(theirs), Some(ours)) = (
            report.metadata.as_ref().and_then(|m| m.cluster_id.clone()),
            summary.cluster_id.as_deref(),
        ) {
            if theirs != ours && report.ok {
                // Clients would mix two clusters' metadata: as bad as no broker.
                let d = Diagnosis::custom(
                    Step::Metadata,
                    "cluster_mismatch",
                    format!(
                        "broker {} at {address} belongs to cluster {theirs}, but {from} said the cluster is {ours}: the advertised address leads to another cluster (check advertised.listeners)",
                        b.node_id
                    ),
                );
                report.ok = false;
                report.error = Some(d);
            }
        }
        rows.push(ClusterBroker {
            node_id: b.node_id,
            host: b.host.clone(),
            port: b.port,
            rack: b.rack.clone(),
            broker: address,
            ok: report.ok,
            ready_ms: report.step_ms(Step::Ready),
            metadata_ms: report.step_ms(Step::Metadata),
            failed_step: report.failed_step(),
            error: report.error.as_ref().map(Diagnosis::line),
            problem: report.error.as_ref().map(|d| d.problem.clone()),
        });
    }
    let cluster = ClusterReport {
        from,
        cluster_id: summary.cluster_id.clone(),
        controller_id: summary.controller_id,
        brokers: rows,
    };
    if text {
        outln!();
        for line in cluster_table(&cluster) {
            outln!("{line}");
        }
        // Kafka advertises live brokers only: a bootstrap broker that is
        // down is missing from the table, so say it here.
        for r in brokers
            .iter()
            .filter(|r| r.bootstrap && !r.advertised && !r.ok)
        {
            outln!(
                "✗ bootstrap broker {} failed, and the cluster does not advertise it (a broker that is down is not in Metadata): is it down, or not a member of this cluster?",
                r.broker
            );
        }
    }
    Some(cluster)
}

/// The per-broker table and its verdict.
pub(crate) fn cluster_table(c: &ClusterReport) -> Vec<String> {
    let n = c.brokers.len();
    let mut lines = vec![format!(
        "cluster {} · {n} broker{} advertised (Metadata from {}) · controller {}",
        c.cluster_id.as_deref().unwrap_or("(no id)"),
        if n == 1 { "" } else { "s" },
        c.from,
        c.controller_id
            .map_or("unknown".to_owned(), |id| id.to_string()),
    )];
    let width = c
        .brokers
        .iter()
        .map(|b| b.broker.len())
        .chain(["ADVERTISED".len()])
        .max()
        .unwrap_or(10);
    let rack_width = c
        .brokers
        .iter()
        .map(|b| b.rack.as_deref().map_or(1, str::len))
        .chain(["RACK".len()])
        .max()
        .unwrap_or(4);
    lines.push(format!(
        "  {:>6}  {:<width$}  {:<rack_width$}  {:<6}  {:>9}  {:>9}  FAILED STEP",
        "NODE", "ADVERTISED", "RACK", "RESULT", "READY", "METADATA"
    ));
    let time = |m: Option<f64>| m.map_or("-".to_owned(), crate::latency::human_ms);
    for b in &c.brokers {
        lines.push(
            format!(
                "  {:>6}  {:<width$}  {:<rack_width$}  {:<6}  {:>9}  {:>9}  {}",
                b.node_id,
                b.broker,
                b.rack.as_deref().unwrap_or("-"),
                if b.ok { "✓ ok" } else { "✗ fail" },
                time(b.ready_ms),
                time(b.metadata_ms),
                b.failed_step.map_or("", Step::label),
            )
            .trim_end()
            .to_owned(),
        );
    }
    let failed = c.failed();
    if failed == 0 {
        lines.push(format!(
            "✓ every advertised broker ({n}) is reachable and ready from here"
        ));
    } else {
        lines.push(format!(
            "✗ {failed} of {n} advertised broker{} failed: clients that bootstrap here will fail on {}",
            if n == 1 { "" } else { "s" },
            if failed == 1 { "it" } else { "them" }
        ));
        for b in c.brokers.iter().filter(|b| !b.ok) {
            lines.push(format!(
                "  ✗ broker {} at {}: {}",
                b.node_id,
                b.broker,
                b.problem.as_deref().unwrap_or("failed")
            ));
        }
        let unreachable: Vec<String> = c
            .brokers
            .iter()
            .filter(|b| matches!(b.failed_step, Some(Step::Dns | Step::Tcp)))
            .map(|b| b.node_id.to_string())
            .collect();
        if !unreachable.is_empty() {
            lines.push(format!(
                "  hint: if {} up, check advertised.listeners: clients connect to the advertised addresses after bootstrapping, so they must be reachable from where the clients run",
                match &unreachable[..] {
                    [one] => format!("broker {one} is"),
                    more => format!("brokers {} are", more.join(", ")),
                }
            ));
        }
    }
    lines
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
    role: Role<'_>,
    roundtrip: Option<(&str, bool)>,
) -> (BrokerReport, Option<RoundtripReport>) {
    let metadata = !args.no_metadata;
    let mut report = BrokerReport::new(broker);
    match role {
        Role::Bootstrap { .. } => report.bootstrap = true,
        Role::Advertised(b) => {
            report.advertised = true;
            report.node_id = Some(b.node_id);
            report.rack.clone_from(&b.rack);
            if u16::try_from(b.port).is_err() {
                let d = Diagnosis::custom(
                    Step::Dns,
                    "invalid_advertised_address",
                    format!(
                        "broker {} advertises port {}, which is not a TCP port: check its advertised.listeners",
                        b.node_id, b.port
                    ),
                );
                report.steps = Step::ALL
                    .iter()
                    .filter(|&&s| s != Step::Proxy || settings.dial.proxy.is_some())
                    .map(|&s| {
                        if s == Step::Dns {
                            step(s, Status::Failed, None, vec![d.problem.clone()])
                        } else {
                            step(s, Status::NotRun, None, Vec::new())
                        }
                    })
                    .collect();
                report.error = Some(d);
                return (report, None);
            }
        }
    }
    tracing::info!(broker, protocol = %settings.protocol, "checking");
    let client = match settings.connect(broker).await {
        Ok(client) => client,
        Err(e) => {
            connect_failed(&mut report, settings, broker, &e, args.cert_warn_days);
            if let (Role::Advertised(b), Some(d)) = (role, report.error.as_mut()) {
                unreachable_advertised(d, b);
            }
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
        let resolve_advertised = matches!(
            role,
            Role::Bootstrap {
                resolve_advertised: true
            }
        );
        let warn = matches!(role, Role::Bootstrap { .. });
        metadata_step(
            &mut report,
            settings,
            &client,
            certificate,
            warn.then_some(resolve_advertised),
        )
        .await;
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

/// An advertised broker that cannot be reached says so: the most common
/// Kafka connection problem is a broker advertising an address that only
/// works where the broker runs (`advertised.listeners`).
fn unreachable_advertised(d: &mut Diagnosis, b: &AdvertisedBroker) {
    if d.kind.starts_with("proxy_") {
        // The proxy failed, not the broker's address.
        return;
    }
    if d.kind == "certificate_name_mismatch" {
        // Reachable, but clients verify the advertised name: the
        // certificate must carry it.
        d.problem = format!(
            "broker {} advertises {}, a name its certificate does not carry ({})",
            b.node_id,
            advertised_address(b),
            d.problem
        );
        d.advice = Some(format!(
            "clients verify the certificate against the advertised name: add {} to the certificate's names, or advertise a name it has (advertised.listeners of broker {})",
            b.host, b.node_id
        ));
        return;
    }
    let what = match d.step {
        Step::Dns => "which does not resolve from here",
        Step::Tcp => "which is unreachable from here",
        _ => return,
    };
    d.problem = format!(
        "broker {} advertises {}, {what} ({})",
        b.node_id,
        advertised_address(b),
        d.problem
    );
    d.advice = Some(format!(
        "if broker {} is up, check its advertised.listeners: clients connect to the advertised address after bootstrapping, so it must be reachable from where they run",
        b.node_id
    ));
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
        report.attempts = p.attempts.iter().map(AttemptReport::from).collect();
        report.proxy = p.proxy.as_ref().map(|i| ProxyReport {
            proxy: i.proxy.clone(),
            target: i.target.clone(),
            bound: i.bound.clone(),
            ms: p.timings.proxy.map(ms),
        });
    }
    let timings = progress.map(|p| p.timings).unwrap_or_default();
    let mut before = Duration::ZERO;
    // The proxy step exists only with a proxy.
    let with_proxy = settings.dial.proxy.is_some();
    for s in Step::ALL
        .into_iter()
        .filter(|&s| s != Step::Proxy || with_proxy)
    {
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
                        passed_detail(s, broker, progress, settings.dial.proxy.as_ref()),
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
fn passed_detail(
    s: Step,
    broker: &str,
    progress: Option<&Progress>,
    proxy: Option<&kafka_conn_tokio::Proxy>,
) -> Vec<String> {
    let (host, of_proxy) = dns_host(broker, proxy);
    match (s, progress) {
        (Step::Dns, _) if host.parse::<IpAddr>().is_ok() => {
            vec![format!("{host}{of_proxy} is an IP address: no lookup")]
        }
        (Step::Dns, Some(p)) => vec![format!("{}{of_proxy}", resolved_line(host, &p.resolved))],
        (Step::Dns, None) => vec![format!("{host} resolved")],
        (Step::Tcp, Some(p)) => tcp_lines(
            p.address
                .map_or_else(|| broker.to_owned(), |a| a.to_string()),
            &p.attempts,
            proxy.is_some(),
        ),
        (Step::Proxy, Some(p)) => p.proxy.iter().map(proxy_line).collect(),
        (Step::Tcp, None) => vec![format!("connected to {broker}")],
        (Step::ApiVersions, _) => vec!["negotiated".to_owned()],
        _ => Vec::new(),
    }
}

/// The host the DNS step looks up: the broker's, or the proxy's when
/// there is one (the broker's name then goes to the proxy, or is resolved
/// with the tunnel's request), with the words saying which.
fn dns_host<'a>(
    broker: &'a str,
    proxy: Option<&'a kafka_conn_tokio::Proxy>,
) -> (&'a str, &'static str) {
    match proxy {
        Some(p) => (host_of(p.address()), " (the proxy)"),
        None => (host_of(broker), ""),
    }
}

fn resolved_line(host: &str, resolved: &[SocketAddr]) -> String {
    // Ports only when they differ (a --resolve entry with its own port).
    let one_port = resolved.windows(2).all(|w| w[0].port() == w[1].port());
    let list: Vec<String> = resolved
        .iter()
        .map(|a| {
            if one_port {
                a.ip().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    format!("{host} → {}", list.join(", "))
}

/// The TCP step's lines: the address that connected and, when several
/// were raced (RFC 8305 Happy Eyeballs), each attempt: when it started,
/// how long it ran and how it ended. `proxied`: the connection is to a proxy.
fn tcp_lines(connected: String, attempts: &[TcpAttempt], proxied: bool) -> Vec<String> {
    let to = if proxied { "the proxy at " } else { "" };
    if attempts.len() < 2 {
        return vec![format!("connected to {to}{connected}")];
    }
    let mut lines = vec![format!(
        "connected to {to}{connected}: won the race of {} addresses (Happy Eyeballs)",
        attempts.len()
    )];
    let width = attempts
        .iter()
        .map(|a| a.addr.to_string().len())
        .max()
        .unwrap_or(0);
    for a in attempts {
        lines.push(format!(
            "{:<width$}  started +{:<9}  {} after {}",
            a.addr.to_string(),
            human(a.started),
            a.reason,
            human(a.took)
        ));
    }
    lines
}

/// The proxy step's line.
fn proxy_line(p: &ProxyInfo) -> String {
    format!(
        "tunnel through {} to {}{}",
        p.proxy,
        p.target,
        p.bound
            .as_ref()
            // microsocks and others leave BND.ADDR unset.
            .filter(|b| !b.starts_with("0.0.0.0:") && !b.starts_with("[::]:"))
            .map_or(String::new(), |b| format!(" (the proxy's side: {b})"))
    )
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

    let (host, of_proxy) = dns_host(broker, settings.dial.proxy.as_ref());
    let dns = if host.parse::<IpAddr>().is_ok() {
        format!("{host}{of_proxy} is an IP address: no lookup")
    } else {
        format!("{}{of_proxy}", resolved_line(host, &info.resolved))
    };
    report
        .steps
        .push(step(Step::Dns, Status::Ok, t.resolve.map(ms), vec![dns]));
    let tcp = tcp_lines(
        info.address.to_string(),
        &info.attempts,
        info.proxy.is_some(),
    );
    report
        .steps
        .push(step(Step::Tcp, Status::Ok, t.tcp.map(ms), tcp));
    report.attempts = info.attempts.iter().map(AttemptReport::from).collect();
    if let Some(p) = &info.proxy {
        report.proxy = Some(ProxyReport {
            proxy: p.proxy.clone(),
            target: p.target.clone(),
            bound: p.bound.clone(),
            ms: t.proxy.map(ms),
        });
        report.steps.push(step(
            Step::Proxy,
            Status::Ok,
            t.proxy.map(ms),
            vec![proxy_line(p)],
        ));
    }

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

/// The Metadata step. `advertised_warnings`: `None` for no warnings about
/// what the cluster advertises (an advertised broker's own check),
/// `Some(resolve)` for them, looking the advertised names up when
/// `resolve` (they are not checked one by one).
async fn metadata_step(
    report: &mut BrokerReport,
    settings: &Settings,
    client: &Client,
    certificate: Option<CertSummary>,
    advertised_warnings: Option<bool>,
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
    // An advertised broker's own check: the table lists the brokers.
    let list = if advertised_warnings.is_some() {
        &summary.brokers[..]
    } else {
        &[]
    };
    for b in list {
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
    // Through a proxy, the address connected to is the proxy's: nothing
    // to compare with what the cluster advertises.
    let advertised_warnings = advertised_warnings.filter(|_| client.info().proxy.is_none());
    if let Some(resolve) = advertised_warnings {
        report.warnings.extend(
            advertised_warnings_of(&summary, client.info().address, settings.timeout, resolve)
                .await,
        );
    }
    report
        .steps
        .push(step(Step::Metadata, Status::Ok, Some(ms(took)), lines));
    report.metadata = Some(summary);
}

/// Problems with what the cluster advertises: names that do not resolve
/// from here, and a bootstrap address the cluster does not list (clients
/// connect to the advertised addresses after bootstrapping).
async fn advertised_warnings_of(
    summary: &MetadataSummary,
    connected: SocketAddr,
    timeout: Duration,
    resolve: bool,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut listed = false;
    for b in &summary.brokers {
        let Ok(port) = u16::try_from(b.port) else {
            if !resolve {
                // Each advertised broker gets its own check, which says more.
                continue;
            }
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
            // Each advertised broker gets its own check, which says more.
            Ok(Err(_)) | Err(_) if !resolve => {}
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
        warnings.push(if resolve {
            format!(
                "the cluster does not advertise {connected}, the address kconn connected to: clients will use the advertised addresses after bootstrapping (check advertised.listeners if they are not reachable from here)"
            )
        } else {
            format!(
                "the cluster does not advertise {connected}, the address kconn connected to: clients will use the advertised addresses after bootstrapping (each is checked below)"
            )
        });
    }
    warnings
}

pub(crate) fn print_text(settings: &Settings, r: &BrokerReport, rt: Option<&RoundtripReport>) {
    let role = match (r.bootstrap, r.node_id) {
        (false, Some(id)) => format!(" (broker {id}, advertised)"),
        _ => String::new(),
    };
    outln!(
        "kconn check {}{role} · {} · timeout {}",
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
            "✓ {} is ready for {} clients{}",
            match (r.address, &r.proxy) {
                (Some(a), None) => a.to_string(),
                _ => r.broker.clone(),
            },
            settings.protocol,
            r.proxy
                .as_ref()
                .map_or(String::new(), |p| format!(" (through {})", p.proxy))
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
        let w = advertised_warnings_of(
            &summary,
            "127.0.0.1:9092".parse().unwrap(),
            Duration::from_secs(5),
            true,
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
        let w = advertised_warnings_of(&summary, at, Duration::from_secs(5), true).await;
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
        assert!(
            advertised_warnings_of(&listed, at, Duration::from_secs(5), true)
                .await
                .is_empty()
        );
        assert!(
            advertised_warnings_of(&listed, at, Duration::from_secs(5), false)
                .await
                .is_empty()
        );
    }
}
